//! Kubernetes strategic merge patch, applied on the server (what kube-apiserver does with
//! `application/strategic-merge-patch+json`). Like a JSON merge patch, objects merge
//! recursively and `null` deletes a key; unlike it, a list whose field has the `merge` patch
//! strategy is merged rather than replaced — lists of objects item by item on the field's
//! merge key, lists of scalars as a set — and the patch may carry directives:
//!
//! - `$patch: replace` in an object replaces the object; as a list item, the list.
//! - `$patch: delete` in an object empties it; as a list item `{"$patch": "delete", key: v}`,
//!   removes the item whose merge key is `v`.
//! - `$retainKeys: [..]` drops the object's keys not listed (unions such as a Deployment's
//!   `strategy`, or a volume's source).
//! - `$deleteFromPrimitiveList/<field>: [..]` removes scalars from a merged scalar list.
//! - `$setElementOrder/<field>: [..]` fixes the order of a merged list (items by merge key).
//!
//! Merged lists keep a deterministic order: the patch's items in patch order, interleaved with
//! the object's other items where the object's own order places them (as upstream does).
//! Fields the schema does not know (and kinds without a schema) are treated as atomic: maps
//! still merge, lists are replaced.
//!
//! Where upstream's behaviour is accidental this code chooses the evident meaning, which only
//! differs before the result is decoded into the typed object: values the patch inserts where
//! the object had nothing are stripped of their directives and `null`s, and `$patch: merge` on
//! an object is accepted as the default it is documented to be.

use serde_json::{Map, Value};

use super::PatchError;
use crate::openapi::{PatchMeta, SchemaRef};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

type Result<T, E = PatchError> = std::result::Result<T, E>;

fn bad(msg: impl Into<String>) -> PatchError {
    PatchError::BadDirective(msg.into())
}

fn unmergeable(msg: impl Into<String>) -> PatchError {
    PatchError::Unmergeable(msg.into())
}

/// Applies a strategic merge patch to `original`, reading patch strategies and merge keys from
/// `schema` (the kind's root, from [`SchemaIndex::kind`](crate::openapi::SchemaIndex::kind), or
/// [`SchemaRef::unknown`] to merge without list semantics).
pub fn apply_strategic(
    original: &Value,
    patch: &Value,
    schema: SchemaRef<'_>,
) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("a strategic merge patch"));
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::NotAnObject("the object to patch")),
    };
    merge_map(original, patch.clone(), schema).map(Value::Object)
}

/// The field name after a directive prefix: `$setElementOrder/containers` → `containers`.
fn directive_field<'k>(key: &'k str, prefix: &str) -> Result<&'k str> {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|field| !field.is_empty())
        .ok_or_else(|| bad(format!("{key}: expected {prefix}/<field>")))
}

/// JSON equality as upstream compares merge keys and scalars (all numbers are doubles there).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: SchemaRef<'_>,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.remove(DIRECTIVE) {
        match directive.as_str() {
            // Replacing is merging into nothing: the patch's own directives still apply.
            Some("replace") => return merge_map(Map::new(), patch, schema),
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(bad(format!("unknown {DIRECTIVE} value {directive}"))),
        }
    }

    if let Some(retain) = patch.remove(RETAIN_KEYS) {
        retain_keys(&mut original, &patch, retain)?;
    }

    let orders: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in orders {
        let order = patch.remove(&key).expect("key listed above");
        let field = directive_field(&key, SET_ELEMENT_ORDER)?.to_string();
        set_element_order(&mut original, &mut patch, &field, order, schema)?;
    }

    // Deletions from scalar lists go last, so that they win over additions of the same item
    // (upstream's order is random).
    let (deletions, changes): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(k, _)| k.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, value) in changes.into_iter().chain(deletions) {
        let (field, delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                directive_field(&key, DELETE_FROM_PRIMITIVE_LIST)?.to_string(),
                true,
            )
        } else {
            (key, false)
        };
        if value.is_null() {
            original.remove(&field);
            continue;
        }
        let (sub, meta) = schema.field(&field);
        let merged = match (original.remove(&field), value) {
            (None, _) if delete_list => None,
            (None, value) => materialize(value, sub, meta)?,
            (Some(Value::Object(o)), Value::Object(p)) => {
                if meta.is_some_and(|m| m.replace) {
                    Some(Value::Object(p))
                } else {
                    Some(Value::Object(merge_map(o, p, sub)?))
                }
            }
            (Some(Value::Array(o)), Value::Array(p)) => Some(Value::Array(merge_list_field(
                o,
                p,
                sub.items(),
                meta,
                delete_list,
            )?)),
            (Some(o), _) if delete_list => Some(o),
            // Scalars, or a value of another type: the patch's value replaces.
            (Some(_), value) => materialize(value, sub, meta)?,
        };
        if let Some(v) = merged {
            original.insert(field, v);
        }
    }
    Ok(original)
}

fn retain_keys(
    original: &mut Map<String, Value>,
    patch: &Map<String, Value>,
    retain: Value,
) -> Result<()> {
    let Value::Array(list) = retain else {
        return Err(bad(format!("{RETAIN_KEYS} must be a list of field names")));
    };
    let mut keep = Vec::with_capacity(list.len());
    for k in &list {
        match k.as_str() {
            Some(k) => keep.push(k),
            None => return Err(bad(format!("{RETAIN_KEYS} must be a list of field names"))),
        }
    }
    for (k, v) in patch {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !keep.contains(&k.as_str()) {
            return Err(bad(format!(
                "the patch sets {k}, which its {RETAIN_KEYS} list does not retain"
            )));
        }
    }
    original.retain(|k, _| keep.contains(&k.as_str()));
    Ok(())
}

/// What a patch value becomes where the object has nothing (or something of another type):
/// the value merged into emptiness, so that directives and `null`s do not leak into the
/// object. `None` when nothing remains (`{"$patch": "delete"}`).
fn materialize(
    value: Value,
    schema: SchemaRef<'_>,
    meta: Option<&PatchMeta>,
) -> Result<Option<Value>> {
    match value {
        Value::Object(p) => {
            if p.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            Ok(Some(Value::Object(merge_map(Map::new(), p, schema)?)))
        }
        Value::Array(p) => {
            if meta.is_some_and(|m| m.merge) {
                let merged = merge_list(Vec::new(), p, schema.items(), merge_key(meta), false)?;
                return Ok(Some(Value::Array(merged)));
            }
            let mut out = Vec::with_capacity(p.len());
            for item in p {
                match item {
                    Value::Object(m) if m.contains_key(DIRECTIVE) => {}
                    Value::Null => out.push(Value::Null),
                    item => out.extend(materialize(item, schema.items(), None)?),
                }
            }
            Ok(Some(Value::Array(out)))
        }
        scalar => Ok(Some(scalar)),
    }
}

fn merge_key(meta: Option<&PatchMeta>) -> Option<&str> {
    meta.and_then(|m| m.merge_key.as_deref())
}

/// A list field: merged if its strategy says so (or it is a `$deleteFromPrimitiveList`),
/// otherwise replaced by the patch's list.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: SchemaRef<'_>,
    meta: Option<&PatchMeta>,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if meta.is_some_and(|m| m.merge) || delete_list {
        merge_list(original, patch, items, merge_key(meta), delete_list)
    } else {
        Ok(patch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Object,
    String,
    Number,
    Bool,
    Null,
}

/// The common kind of the elements of the lists; lists of lists and mixed lists cannot merge.
fn element_kind<'v>(
    lists: impl IntoIterator<Item = &'v Vec<Value>>,
) -> Result<Option<ElementKind>> {
    let mut kind = None;
    for v in lists.into_iter().flatten() {
        let k = match v {
            Value::Object(_) => ElementKind::Object,
            Value::String(_) => ElementKind::String,
            Value::Number(_) => ElementKind::Number,
            Value::Bool(_) => ElementKind::Bool,
            Value::Null => ElementKind::Null,
            Value::Array(_) => return Err(unmergeable("lists of lists cannot be merged")),
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(unmergeable("list elements are not all of the same type"));
            }
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// How items are identified when lists are merged or ordered: by merge key for objects, by
/// value for scalars.
#[derive(Debug, Clone, Copy)]
enum Identity<'k> {
    Key(&'k str),
    Value,
}

impl Identity<'_> {
    fn of(self, item: &Value) -> Option<&Value> {
        match self {
            Identity::Key(k) => item.get(k),
            Identity::Value => Some(item),
        }
    }

    fn position(self, list: &[Value], item: &Value) -> Option<usize> {
        let id = self.of(item)?;
        list.iter()
            .position(|other| self.of(other).is_some_and(|o| same(o, id)))
    }

    /// Every item of the lists must carry the merge key.
    fn check(self, lists: &[&[Value]]) -> Result<()> {
        if let Identity::Key(key) = self {
            for item in lists.iter().flat_map(|l| l.iter()) {
                match item {
                    Value::Object(m) if m.contains_key(key) => {}
                    Value::Object(_) => {
                        return Err(unmergeable(format!(
                            "an item has no merge key {key}: {item}"
                        )))
                    }
                    _ => return Err(unmergeable(format!("an item is not an object: {item}"))),
                }
            }
        }
        Ok(())
    }
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: SchemaRef<'_>,
    merge_key: Option<&str>,
    delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind([&original, &patch])?;
    if kind != Some(ElementKind::Object) {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|p| same(p, v)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| same(m, v)) {
                merged.push(v.clone());
            }
        }
        return order_merged(merged, &patch, &original, Identity::Value);
    }

    let key = merge_key
        .ok_or_else(|| unmergeable("cannot merge a list of objects without a merge key"))?;
    let identity = Identity::Key(key);
    identity.check(&[&original])?;
    let mut original = original;
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let directive = item.get(DIRECTIVE).cloned();
        match directive.as_ref().map(|d| d.as_str()) {
            None => plain.push(item),
            Some(Some("delete")) => {
                let id = item.get(key).ok_or_else(|| {
                    unmergeable(format!("a {DIRECTIVE}: delete item has no merge key {key}"))
                })?;
                original.retain(|o| !o.get(key).is_some_and(|v| same(v, id)));
            }
            Some(Some("replace")) => replace = true,
            Some(Some("merge")) => {
                return Err(bad(format!(
                    "{DIRECTIVE}: merge cannot be given as a list item"
                )))
            }
            _ => {
                return Err(bad(format!(
                    "unknown {DIRECTIVE} value {}",
                    directive.unwrap_or_default()
                )))
            }
        }
    }
    let (original, patch) = if replace {
        let mut replaced = Vec::with_capacity(plain.len());
        for item in plain {
            replaced.extend(materialize(item, items, None)?);
        }
        (replaced, Vec::new())
    } else {
        (original, plain)
    };

    identity.check(&[&patch])?;
    let mut merged = original.clone();
    for item in &patch {
        let Value::Object(p) = item else {
            unreachable!("checked above")
        };
        match identity.position(&merged, item) {
            Some(i) => {
                let Value::Object(o) = std::mem::take(&mut merged[i]) else {
                    unreachable!("checked above")
                };
                merged[i] = Value::Object(merge_map(o, p.clone(), items)?);
            }
            None => merged.extend(materialize(item.clone(), items, None)?),
        }
    }
    order_merged(merged, &patch, &original, identity)
}

/// Orders a merged list: the items the patch names in the patch's order, the object's other
/// items in the object's order, interleaved.
fn order_merged(
    merged: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    id: Identity<'_>,
) -> Result<Vec<Value>> {
    let (in_patch, server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| id.position(patch_order, v).is_some());
    interleave(in_patch, server_only, patch_order, server_order, id)
}

fn interleave(
    mut in_patch: Vec<Value>,
    mut server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    id: Identity<'_>,
) -> Result<Vec<Value>> {
    id.check(&[patch_order, server_order])?;
    in_patch.sort_by_key(|v| id.position(patch_order, v).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| id.position(server_order, v).unwrap_or(usize::MAX));

    // Walk both: a server-only item goes first only if the object placed it before the next
    // patch item; items the object does not know follow the patch.
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                let li = id.position(server_order, l);
                let ri = id.position(server_order, r);
                match (li, ri) {
                    (Some(li), Some(ri)) if li < ri => out.extend(left.next()),
                    _ => out.extend(right.next()),
                }
            }
            (Some(_), None) => out.extend(left.next()),
            (None, Some(_)) => out.extend(right.next()),
            (None, None) => break,
        }
    }
    Ok(out)
}

fn set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    field: &str,
    order: Value,
    schema: SchemaRef<'_>,
) -> Result<()> {
    let Value::Array(order) = order else {
        return Err(bad(format!("{SET_ELEMENT_ORDER}/{field} must be a list")));
    };
    let original_list = match original.remove(field) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(other) => {
            original.insert(field.to_string(), other);
            return Err(unmergeable(format!("{field} is not a list in the object")));
        }
    };
    let patch_list = match patch.remove(field) {
        None => None,
        Some(Value::Array(a)) => Some(a),
        Some(_) => {
            return Err(bad(format!(
                "{field} must be a list next to its {SET_ELEMENT_ORDER}"
            )))
        }
    };
    let (sub, meta) = schema.field(field);
    let key = merge_key(meta);
    validate_order(patch_list.as_deref().unwrap_or(&[]), &order, key)?;
    let server_order = original_list.clone().unwrap_or_default();
    let merged = match (original_list, patch_list) {
        (None, None) => return Ok(()),
        (Some(o), None) => o,
        (o, Some(p)) => merge_list_field(o.unwrap_or_default(), p, sub.items(), meta, false)?,
    };
    if merged.is_empty() {
        original.insert(field.to_string(), Value::Array(merged));
        return Ok(());
    }
    let id = match element_kind([&merged, &order])? {
        Some(ElementKind::Object) => Identity::Key(
            key.ok_or_else(|| unmergeable(format!("{field} has no merge key to order by")))?,
        ),
        _ => Identity::Value,
    };
    let ordered = order_merged(merged, &order, &server_order, id)?;
    original.insert(field.to_string(), Value::Array(ordered));
    Ok(())
}

/// The patch's items must appear in the `$setElementOrder` list, in the same relative order.
fn validate_order(patch: &[Value], order: &[Value], key: Option<&str>) -> Result<()> {
    if patch.is_empty() || order.is_empty() {
        return Ok(());
    }
    let id = match key {
        Some(k) => Identity::Key(k),
        None => Identity::Value,
    };
    // Deleted items need not be ordered (items of scalar lists cannot be directives).
    let items: Vec<&Value> = patch
        .iter()
        .filter(|v| key.is_none() || v.get(DIRECTIVE).and_then(Value::as_str) != Some("delete"))
        .collect();
    let (mut p, mut o) = (0, 0);
    while p < items.len() && o < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        let (Some(a), Some(b)) = (id.of(items[p]), id.of(&order[o])) else {
            return Err(unmergeable(format!(
                "an item of {SET_ELEMENT_ORDER} or of its list has no merge key"
            )));
        };
        if same(a, b) {
            p += 1;
        }
        o += 1;
    }
    if p < items.len() {
        return Err(bad(format!(
            "the patch's list items do not follow its {SET_ELEMENT_ORDER} list"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
