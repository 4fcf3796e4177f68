//! A compact, typed view of the schema definitions for code that walks objects by schema: the
//! strategic merge patch (patch strategy and merge key of a field at any depth) and, later,
//! server-side apply. Built from the same definitions the documents publish, so the patch code
//! and kubectl see the same metadata.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

use super::definitions::V3_REF_PREFIX;
use super::merge_keys::ListType;

/// The patch metadata of one field (`x-kubernetes-patch-strategy`,
/// `x-kubernetes-patch-merge-key`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatchMeta {
    /// Lists: merge items (by `merge_key`, or as a set of scalars) instead of replacing.
    pub merge: bool,
    /// Maps: replace instead of merging.
    pub replace: bool,
    /// The patch may carry `$retainKeys` (unions such as `Volume` or `DeploymentStrategy`).
    pub retain_keys: bool,
    pub merge_key: Option<String>,
}

impl PatchMeta {
    fn from_extensions(schema: &Map<String, Value>) -> Self {
        let mut meta = PatchMeta {
            merge_key: schema
                .get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..PatchMeta::default()
        };
        if let Some(s) = schema
            .get("x-kubernetes-patch-strategy")
            .and_then(Value::as_str)
        {
            for s in s.split(',') {
                match s.trim() {
                    "merge" => meta.merge = true,
                    "replace" => meta.replace = true,
                    "retainKeys" => meta.retain_keys = true,
                    _ => {}
                }
            }
        }
        meta
    }
}

/// What a schema says about the shape of a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// A named definition, resolved through the index.
    Ref(String),
    Object(BTreeMap<String, Field>),
    Array(Box<Shape>),
    /// An object with arbitrary keys (`additionalProperties`).
    Map(Box<Shape>),
    Scalar,
    /// Anything: no schema, int-or-string, preserve-unknown-fields.
    Any,
}

/// One property of an object definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub shape: Shape,
    pub patch: PatchMeta,
    /// How server-side apply merges the field (`x-kubernetes-list-type`,
    /// `x-kubernetes-list-map-keys`, `x-kubernetes-map-type`).
    pub apply: ApplyMeta,
}

/// The server-side apply metadata of one field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyMeta {
    pub list_type: Option<ListType>,
    pub list_map_keys: Vec<String>,
    /// `x-kubernetes-map-type: atomic` on the field.
    pub atomic_map: bool,
}

impl ApplyMeta {
    fn from_extensions(schema: &Map<String, Value>) -> Self {
        let list_type = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("atomic") => Some(ListType::Atomic),
            Some("set") => Some(ListType::Set),
            Some("map") => Some(ListType::Map),
            _ => None,
        };
        let list_map_keys = schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect();
        ApplyMeta {
            list_type,
            list_map_keys,
            atomic_map: schema.get("x-kubernetes-map-type").and_then(Value::as_str)
                == Some("atomic"),
        }
    }
}

/// Definitions by name, and the definition of each kind.
#[derive(Debug, Default)]
pub struct SchemaIndex {
    defs: HashMap<String, Shape>,
    kinds: HashMap<(String, String, String), String>,
}

static ANY: Shape = Shape::Any;

impl SchemaIndex {
    /// Indexes OpenAPI 3 definitions (refs under `#/components/schemas/`); kinds are found
    /// through each definition's `x-kubernetes-group-version-kind`.
    pub fn from_definitions(defs: &Map<String, Value>) -> Self {
        let mut index = SchemaIndex::default();
        for (name, schema) in defs {
            index.defs.insert(name.clone(), shape_of(schema));
            let gvks = schema
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array);
            for g in gvks.into_iter().flatten() {
                let part = |k: &str| g.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                index
                    .kinds
                    .insert((part("group"), part("version"), part("kind")), name.clone());
            }
        }
        index
    }

    /// The schema of a kind, if the index knows it.
    pub fn kind(&self, group: &str, version: &str, kind: &str) -> Option<SchemaRef<'_>> {
        let name = self
            .kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))?;
        self.definition(name)
    }

    /// The definition name of a kind (`io.k8s.api.apps.v1.Deployment`).
    pub fn kind_definition(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }

    /// The schema of a named definition.
    pub fn definition(&self, name: &str) -> Option<SchemaRef<'_>> {
        let (name, shape) = self.defs.get_key_value(name)?;
        Some(SchemaRef {
            index: Some(self),
            shape,
            name: Some(name),
        })
    }

    pub fn len(&self) -> usize {
        self.defs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }
}

/// A position in the schema: the shape of one value and, when it is a named definition,
/// its name. Walking past what the schema knows yields [`SchemaRef::unknown`], under which
/// maps merge and lists are replaced.
#[derive(Debug, Clone, Copy)]
pub struct SchemaRef<'a> {
    index: Option<&'a SchemaIndex>,
    shape: &'a Shape,
    name: Option<&'a str>,
}

impl<'a> SchemaRef<'a> {
    /// A value without a schema.
    pub fn unknown() -> SchemaRef<'static> {
        SchemaRef {
            index: None,
            shape: &ANY,
            name: None,
        }
    }

    /// Follows references to the shape itself.
    fn resolved(self) -> SchemaRef<'a> {
        let mut cur = self;
        // Definitions that only alias another are rare; the bound guards against cycles.
        for _ in 0..16 {
            let Shape::Ref(name) = cur.shape else {
                return cur;
            };
            let Some(next) = cur.index.and_then(|i| i.definition(name)) else {
                return SchemaRef::unknown();
            };
            cur = next;
        }
        SchemaRef::unknown()
    }

    fn with(self, shape: &'a Shape) -> SchemaRef<'a> {
        SchemaRef {
            index: self.index,
            shape,
            name: None,
        }
        .resolved()
    }

    /// The definition this position is, if it is a named one.
    pub fn definition_name(self) -> Option<&'a str> {
        self.resolved().name
    }

    pub fn shape(self) -> &'a Shape {
        self.resolved().shape
    }

    /// The value under `key`: an object's field (with its patch metadata) or a map's value.
    pub fn field(self, key: &str) -> (SchemaRef<'a>, Option<&'a PatchMeta>) {
        let me = self.resolved();
        match me.shape {
            Shape::Object(fields) => match fields.get(key) {
                Some(f) => (me.with(&f.shape), Some(&f.patch)),
                None => (SchemaRef::unknown(), None),
            },
            Shape::Map(value) => (me.with(value), None),
            _ => (SchemaRef::unknown(), None),
        }
    }

    /// The declaration of an object's field (patch and apply metadata), if the schema has it.
    pub fn field_info(self, key: &str) -> Option<&'a Field> {
        match self.resolved().shape {
            Shape::Object(fields) => fields.get(key),
            _ => None,
        }
    }

    /// The items of a list.
    pub fn items(self) -> SchemaRef<'a> {
        let me = self.resolved();
        match me.shape {
            Shape::Array(item) => me.with(item),
            _ => SchemaRef::unknown(),
        }
    }

    /// Walks a dotted field path the way `kubectl explain` does: lists are transparent
    /// (`spec.template.spec.containers.env` reaches `EnvVar`).
    pub fn walk<'p>(self, path: impl IntoIterator<Item = &'p str>) -> SchemaRef<'a> {
        let mut cur = self;
        for seg in path {
            while matches!(cur.shape(), Shape::Array(_)) {
                cur = cur.items();
            }
            cur = cur.field(seg).0;
        }
        while matches!(cur.shape(), Shape::Array(_)) {
            cur = cur.items();
        }
        cur
    }
}

fn shape_of(schema: &Value) -> Shape {
    let Some(o) = schema.as_object() else {
        return Shape::Any;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        return match r.strip_prefix(V3_REF_PREFIX) {
            Some(name) => Shape::Ref(name.to_string()),
            None => Shape::Any,
        };
    }
    if let Some(first) = o
        .get("allOf")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        if !o.contains_key("properties") {
            return shape_of(first);
        }
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let fields = props
            .iter()
            .map(|(k, v)| {
                let ext = v.as_object();
                (
                    k.clone(),
                    Field {
                        shape: shape_of(v),
                        patch: ext.map(PatchMeta::from_extensions).unwrap_or_default(),
                        apply: ext.map(ApplyMeta::from_extensions).unwrap_or_default(),
                    },
                )
            })
            .collect();
        return Shape::Object(fields);
    }
    match o.get("type").and_then(Value::as_str) {
        Some("array") => Shape::Array(Box::new(o.get("items").map_or(Shape::Any, shape_of))),
        Some("object") => match o.get("additionalProperties") {
            Some(v @ Value::Object(_)) => Shape::Map(Box::new(shape_of(v))),
            _ => Shape::Any,
        },
        Some("string" | "integer" | "number" | "boolean") => Shape::Scalar,
        _ => Shape::Any,
    }
}
