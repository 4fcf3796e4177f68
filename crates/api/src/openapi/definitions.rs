//! The schema definitions behind the documents: generated once from the kinds' schemars
//! functions, completed with what k8s-openapi's schemas lack (list kinds, the
//! `x-kubernetes-group-version-kind` of each kind, the patch and list metadata of
//! [`merge_keys`](super::merge_keys)), then cut into per-group-version subsets by reachability.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use super::merge_keys::{ATOMIC_STRUCTS, FIELDS};
use super::schemas::{Gvk, KindSchemas};
use crate::Registry;

/// Where OpenAPI 3 documents keep their schemas.
pub(crate) const V3_REF_PREFIX: &str = "#/components/schemas/";
/// Where Swagger 2.0 documents keep theirs.
pub(crate) const V2_REF_PREFIX: &str = "#/definitions/";

pub(crate) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(crate) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(crate) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(crate) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(crate) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// Definitions every group-version document carries besides its kinds.
pub(crate) const COMMON: &[&str] = &[
    DELETE_OPTIONS,
    STATUS,
    PATCH,
    WATCH_EVENT,
    API_RESOURCE_LIST,
];

const API_VERSION_DOC: &str = "The versioned schema of this representation of an object \
    (`group/version`, or `version` for the core group).";
const KIND_DOC: &str = "The REST resource this object represents, in CamelCase.";

/// All definitions, OpenAPI 3 form, and which of them describe which kind.
pub(crate) struct Definitions {
    pub defs: Map<String, Value>,
    /// Definition name of each kind (served kinds and the kinds of their subresources).
    pub kinds: HashMap<Gvk, String>,
    /// Definition name of each served kind's list kind, keyed by the item kind.
    pub lists: HashMap<Gvk, String>,
}

fn gvk(group: &str, version: &str, kind: &str) -> Gvk {
    (group.to_string(), version.to_string(), kind.to_string())
}

/// The definition name a `{"$ref": ...}` schema points at.
fn ref_name(schema: &Value) -> Option<String> {
    schema
        .get("$ref")?
        .as_str()?
        .strip_prefix(V3_REF_PREFIX)
        .map(str::to_string)
}

/// The name upstream gives definitions of kinds outside `k8s.io` (custom resources): the group
/// reversed, then version and kind (`com.example.stable.v1.CronTab`).
fn fallback_name(group: &str, version: &str, kind: &str) -> String {
    if group.is_empty() {
        return format!("io.k8s.api.core.{version}.{kind}");
    }
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// The name of a definition next to `name` in the same package.
fn sibling(name: &str, kind: &str) -> String {
    match name.rsplit_once('.') {
        Some((package, _)) => format!("{package}.{kind}"),
        None => kind.to_string(),
    }
}

fn gvk_value(g: &Gvk) -> Value {
    json!({"group": g.0, "version": g.1, "kind": g.2})
}

pub(crate) fn build(registry: &Registry, schemas: &KindSchemas) -> Definitions {
    let mut generator = SchemaSettings::openapi3()
        .with(|s| s.meta_schema = None)
        .into_generator();

    let mut wanted: Vec<Gvk> = Vec::new();
    for d in registry.all() {
        wanted.push(gvk(&d.gv.group, &d.gv.version, &d.kind));
        for s in &d.subresources {
            wanted.push(gvk(&s.group, &s.version, &s.kind));
        }
    }
    let mut kinds = HashMap::new();
    let mut untyped = Vec::new();
    for g in wanted {
        if kinds.contains_key(&g) {
            continue;
        }
        let name = schemas
            .get(&g.0, &g.1, &g.2)
            .and_then(|f| ref_name(&Value::from(f(&mut generator))));
        match name {
            Some(name) => {
                kinds.insert(g, name);
            }
            None => {
                let name = fallback_name(&g.0, &g.1, &g.2);
                untyped.push(name.clone());
                kinds.insert(g, name);
            }
        }
    }
    let object_meta = Value::from(generator.subschema_for::<meta::ObjectMeta>());
    for common in [
        generator.subschema_for::<meta::DeleteOptions>(),
        generator.subschema_for::<meta::Status>(),
        generator.subschema_for::<meta::Patch>(),
        generator.subschema_for::<meta::WatchEvent<()>>(),
        generator.subschema_for::<meta::APIResourceList>(),
        generator.subschema_for::<meta::ListMeta>(),
    ] {
        debug_assert!(ref_name(&Value::from(common)).is_some());
    }
    let mut defs = generator.take_definitions(true);

    // A kind without a schema still needs a definition so that its paths and GVK appear
    // (kubectl looks both up before it validates or patches).
    for name in untyped {
        defs.entry(name).or_insert_with(|| {
            json!({
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
                "properties": {
                    "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                    "kind": {"type": "string", "description": KIND_DOC},
                    "metadata": object_meta,
                },
            })
        });
    }

    let mut lists = HashMap::new();
    for d in registry.all() {
        let g = gvk(&d.gv.group, &d.gv.version, &d.kind);
        let Some(item) = kinds.get(&g) else { continue };
        if d.list_kind.is_empty() {
            continue;
        }
        let list_name = sibling(item, &d.list_kind);
        defs.entry(list_name.clone())
            .or_insert_with(|| list_schema(&d.list_kind, &d.kind, item));
        add_gvk(
            &mut defs,
            &list_name,
            &gvk(&d.gv.group, &d.gv.version, &d.list_kind),
        );
        lists.insert(g, list_name);
    }
    for (g, name) in &kinds {
        add_gvk(&mut defs, name, g);
    }
    apply_field_meta(&mut defs);

    Definitions { defs, kinds, lists }
}

fn list_schema(list_kind: &str, kind: &str, item: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": API_VERSION_DOC},
            "items": {
                "description": format!("The {kind} objects in the list."),
                "type": "array",
                "items": {"$ref": format!("{V3_REF_PREFIX}{item}")},
            },
            "kind": {"type": "string", "description": KIND_DOC},
            "metadata": {
                "allOf": [{"$ref": format!("{V3_REF_PREFIX}{LIST_META}")}],
                "description": "Standard list metadata: resourceVersion and continue token.",
            },
        },
    })
}

fn add_gvk(defs: &mut Map<String, Value>, name: &str, g: &Gvk) {
    let Some(Value::Object(def)) = defs.get_mut(name) else {
        return;
    };
    let list = def
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = list {
        let v = gvk_value(g);
        if !list.contains(&v) {
            list.push(v);
        }
    }
}

/// Writes the table of [`merge_keys`](super::merge_keys) into the definitions as extensions.
fn apply_field_meta(defs: &mut Map<String, Value>) {
    for m in FIELDS {
        let Some(prop) = defs
            .get_mut(m.definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(m.field))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        // Siblings of `$ref` are ignored in OpenAPI 3.0; move the reference under `allOf`.
        if let Some(r) = prop.remove("$ref") {
            prop.insert("allOf".into(), json!([{"$ref": r}]));
        }
        if let Some(s) = m.patch_strategy {
            prop.insert("x-kubernetes-patch-strategy".into(), s.into());
        }
        if let Some(k) = m.patch_merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), k.into());
        }
        if let Some(t) = m.list_type {
            prop.insert("x-kubernetes-list-type".into(), t.as_str().into());
        }
        if !m.list_map_keys.is_empty() {
            prop.insert("x-kubernetes-list-map-keys".into(), json!(m.list_map_keys));
        }
        if m.atomic_map {
            prop.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
    for name in ATOMIC_STRUCTS {
        if let Some(Value::Object(def)) = defs.get_mut(*name) {
            def.insert("x-kubernetes-map-type".into(), "atomic".into());
        }
    }
}

/// Every definition reachable from `roots` through `$ref`s (roots included).
pub(crate) fn reachable<'a>(
    defs: &Map<String, Value>,
    roots: impl IntoIterator<Item = &'a str>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<String> = roots.into_iter().map(str::to_string).collect();
    while let Some(name) = stack.pop() {
        let Some(def) = defs.get(&name) else { continue };
        if !seen.insert(name) {
            continue;
        }
        collect_refs(def, &mut |r| {
            if !seen.contains(r) {
                stack.push(r.to_string());
            }
        });
    }
    seen
}

fn collect_refs(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|s| s.strip_prefix(V3_REF_PREFIX)) {
                        f(name);
                    }
                } else {
                    collect_refs(v, f);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, f)),
        _ => {}
    }
}

/// The Swagger 2.0 form of an OpenAPI 3 schema: references point into `#/definitions/`, and a
/// lone `allOf` reference (how OpenAPI 3 attaches a description to a `$ref`) becomes a plain
/// `$ref` with siblings, as upstream's v2 document has it.
pub(crate) fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut out = Map::new();
            let lone_ref = match o.get("allOf") {
                Some(Value::Array(a)) if a.len() == 1 && !o.contains_key("properties") => a[0]
                    .as_object()
                    .filter(|r| r.len() == 1)
                    .and_then(|r| r.get("$ref"))
                    .cloned(),
                _ => None,
            };
            for (k, v) in o {
                match k.as_str() {
                    "allOf" if lone_ref.is_some() => {}
                    "nullable" => {}
                    "$ref" => {
                        out.insert(k.clone(), v2_ref(v));
                    }
                    _ => {
                        out.insert(k.clone(), to_v2(v));
                    }
                }
            }
            if let Some(r) = lone_ref {
                out.insert("$ref".into(), v2_ref(&r));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

fn v2_ref(v: &Value) -> Value {
    match v.as_str().and_then(|s| s.strip_prefix(V3_REF_PREFIX)) {
        Some(name) => Value::String(format!("{V2_REF_PREFIX}{name}")),
        None => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_names_reverse_the_group() {
        assert_eq!(
            fallback_name("stable.example.com", "v1", "CronTab"),
            "com.example.stable.v1.CronTab"
        );
    }

    #[test]
    fn v2_form_flattens_lone_all_of_and_rewrites_refs() {
        let v3 = json!({
            "properties": {
                "spec": {"allOf": [{"$ref": "#/components/schemas/a.B"}], "description": "d"},
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/a.C"}},
            }
        });
        let v2 = to_v2(&v3);
        assert_eq!(
            v2,
            json!({
                "properties": {
                    "spec": {"$ref": "#/definitions/a.B", "description": "d"},
                    "items": {"type": "array", "items": {"$ref": "#/definitions/a.C"}},
                }
            })
        );
    }
}
