//! The registry of API kinds: each kind described once (group, version, plural, scope, short
//! names, categories, subresources) together with its behaviour ([`KindOps`]). The API server's
//! handlers are generic over it, and kinds can be added at run time (custom resources) because
//! the registry is a value, not a set of types.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::kinds;

/// A group/version pair; the core group is `""`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupVersion {
    pub group: String,
    pub version: String,
}

impl GroupVersion {
    pub fn new(group: &str, version: &str) -> Self {
        GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        }
    }

    /// The `apiVersion` string: `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The URL prefix of this group-version: `/api/v1` or `/apis/apps/v1`.
    pub fn url_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Namespaced,
    Cluster,
}

/// A subresource a kind serves besides the object itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subresource {
    /// `status`, `scale`, `binding`, …
    pub name: String,
    /// The kind the subresource speaks (`Scale` in `autoscaling/v1` for `scale`).
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: Vec<String>,
}

/// Per-kind behaviour. Every method has a sensible generic default so that a kind needs only
/// what differs from it.
pub trait KindOps: Send + Sync {
    /// Decode the object into its typed form and back, so that unknown fields and `null`s are
    /// dropped and field order and formats are those of the typed API (what kube-apiserver's
    /// decode/encode round trip does). Returns the normalised object, or a decode error message.
    fn normalize(&self, obj: Value) -> Result<Value, String>;

    /// Fill in the defaults the real API server applies on create and update.
    fn apply_defaults(&self, _obj: &mut Value) {}

    /// Validate an object for create (`old` = `None`) or update. Returns the field errors.
    fn validate(&self, _obj: &Value, _old: Option<&Value>) -> Vec<crate::FieldError> {
        Vec::new()
    }

    /// Whether the kind has a `status` that only the `status` subresource writes.
    fn has_status(&self) -> bool {
        false
    }

    /// Value of a kind-specific field for field selectors (`spec.nodeName`, `status.phase`,
    /// `involvedObject.name`, …). `metadata.name` and `metadata.namespace` are handled for every
    /// kind by the caller; `None` means the field is not supported for this kind.
    fn field(&self, _obj: &Value, _path: &str) -> Option<String> {
        None
    }

    /// Server-side table columns (`kubectl get`); the generic fallback is Name + Created At.
    fn table_columns(&self) -> Vec<crate::table::Column> {
        crate::table::default_columns()
    }

    /// One table row's cells, matching [`KindOps::table_columns`]. `now` is for ages.
    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        crate::table::default_row(obj, now)
    }
}

/// Turns objects of one resource into the shape of the resource they are stored as, and back.
/// Both directions must be inverses on every object the API accepts, so that a write through
/// either resource reads back unchanged through it.
pub trait Conversion: Send + Sync {
    /// The served shape → the stored shape.
    fn to_storage(&self, obj: Value) -> Value;
    /// The stored shape → the served shape.
    fn to_served(&self, obj: Value) -> Value;
}

/// Where a resource keeps its objects when it serves another resource's storage, as
/// kube-apiserver serves `events.k8s.io/v1` Events from the `core/v1` Event storage: both read
/// and write the same keys, so a change through one is seen (and watched) through the other.
#[derive(Clone)]
pub struct StoredAs {
    /// Storage group of the owning resource (`core` for the core group).
    pub group: String,
    /// Plural of the owning resource.
    pub plural: String,
    pub conversion: Arc<dyn Conversion>,
}

/// One kind served by the API.
pub struct ResourceDef {
    pub gv: GroupVersion,
    pub kind: String,
    pub list_kind: String,
    /// Plural lowercase resource name used in URLs (`deployments`).
    pub plural: String,
    pub singular: String,
    pub scope: Scope,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    pub subresources: Vec<Subresource>,
    pub ops: Arc<dyn KindOps>,
    /// Set when the objects are another resource's, stored in that resource's shape; `None`
    /// for a resource that owns its storage.
    pub stored_as: Option<StoredAs>,
}

impl std::fmt::Debug for ResourceDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceDef")
            .field("gv", &self.gv)
            .field("kind", &self.kind)
            .field("plural", &self.plural)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl ResourceDef {
    pub fn namespaced(&self) -> bool {
        self.scope == Scope::Namespaced
    }

    /// The group name used in storage keys (`core` for the core group); the owning resource's
    /// for a resource stored as another.
    pub fn storage_group(&self) -> &str {
        match &self.stored_as {
            Some(s) => &s.group,
            None if self.gv.group.is_empty() => "core",
            None => &self.gv.group,
        }
    }

    /// The plural used in storage keys.
    pub fn storage_plural(&self) -> &str {
        match &self.stored_as {
            Some(s) => &s.plural,
            None => &self.plural,
        }
    }

    /// Storage key prefix for all objects of this kind (ends with `/`).
    pub fn key_prefix(&self) -> String {
        format!(
            "/registry/{}/{}/",
            self.storage_group(),
            self.storage_plural()
        )
    }

    /// Whether this resource serves the storage of another one (and so must not be walked on
    /// its own when visiting every stored object, or each would be seen twice).
    pub fn is_alias(&self) -> bool {
        self.stored_as.is_some()
    }

    /// A served object in the shape it is stored in.
    pub fn to_storage(&self, obj: Value) -> Value {
        match &self.stored_as {
            Some(s) => s.conversion.to_storage(obj),
            None => obj,
        }
    }

    /// A stored object in the shape this resource serves.
    pub fn to_served(&self, obj: Value) -> Value {
        match &self.stored_as {
            Some(s) => s.conversion.to_served(obj),
            None => obj,
        }
    }

    /// [`ResourceDef::to_served`] for a shared (cached) object: no copy unless converted.
    pub fn view(&self, stored: &Arc<Value>) -> Arc<Value> {
        match &self.stored_as {
            Some(s) => Arc::new(s.conversion.to_served((**stored).clone())),
            None => stored.clone(),
        }
    }

    /// Storage key prefix for one namespace (ends with `/`); the kind-wide prefix for
    /// cluster-scoped kinds or when `namespace` is `None`.
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }

    /// Storage key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.scope, namespace) {
            (Scope::Namespaced, Some(ns)) => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }

    pub fn subresource(&self, name: &str) -> Option<&Subresource> {
        self.subresources.iter().find(|s| s.name == name)
    }
}

/// All kinds the server knows, indexed for URL routing and kubectl-style name resolution.
#[derive(Default, Clone)]
pub struct Registry {
    defs: Vec<Arc<ResourceDef>>,
    by_path: BTreeMap<(String, String, String), Arc<ResourceDef>>,
}

impl Registry {
    /// The registry of built-in kinds (Kubernetes 1.33).
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for def in kinds::builtin() {
            r.add(def);
        }
        r
    }

    /// Add (or replace) a kind.
    pub fn add(&mut self, def: ResourceDef) {
        let def = Arc::new(def);
        let key = (
            def.gv.group.clone(),
            def.gv.version.clone(),
            def.plural.clone(),
        );
        self.defs.retain(|d| {
            (
                d.gv.group.as_str(),
                d.gv.version.as_str(),
                d.plural.as_str(),
            ) != (key.0.as_str(), key.1.as_str(), key.2.as_str())
        });
        self.defs.push(def.clone());
        self.by_path.insert(key, def);
    }

    /// The kind served at `/api[s]/<group>/<version>/<plural>`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The kind with this group, version and kind name.
    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| d.gv.group == group && d.gv.version == version && d.kind == kind)
            .cloned()
    }

    /// Every kind, in registration order.
    pub fn all(&self) -> &[Arc<ResourceDef>] {
        &self.defs
    }

    /// Group-versions served, core first, then groups in registration order; within a group the
    /// first registered version is the preferred one.
    pub fn group_versions(&self) -> Vec<GroupVersion> {
        let mut out: Vec<GroupVersion> = Vec::new();
        for d in &self.defs {
            if !out.contains(&d.gv) {
                out.push(d.gv.clone());
            }
        }
        out
    }

    /// Group names (excluding core) in registration order.
    pub fn groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.defs {
            if !d.gv.group.is_empty() && !out.contains(&d.gv.group) {
                out.push(d.gv.group.clone());
            }
        }
        out
    }

    /// Kinds in one group-version.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a Arc<ResourceDef>> + 'a {
        self.defs
            .iter()
            .filter(move |d| d.gv.group == group && d.gv.version == version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_routes_core_and_group_kinds() {
        let r = Registry::builtin();
        let pods = r.get("", "v1", "pods").expect("pods");
        assert_eq!(pods.kind, "Pod");
        assert!(pods.namespaced());
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        let deploy = r.get("apps", "v1", "deployments").expect("deployments");
        assert_eq!(deploy.short_names, vec!["deploy"]);
        assert!(deploy.subresource("scale").is_some());
        let ns = r.get("", "v1", "namespaces").expect("namespaces");
        assert_eq!(
            ns.key(None, "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
        assert!(r.get("apps", "v1", "pods").is_none());
    }

    #[test]
    fn both_event_apis_share_the_core_event_keys() {
        let r = Registry::builtin();
        let core = r.get("", "v1", "events").unwrap();
        let events = r.get("events.k8s.io", "v1", "events").unwrap();
        assert!(!core.is_alias());
        assert!(events.is_alias());
        assert_eq!(events.key_prefix(), "/registry/core/events/");
        assert_eq!(
            events.key(Some("default"), "e"),
            core.key(Some("default"), "e")
        );
        let stored = events.to_storage(serde_json::json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "note": "hi"}));
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["message"], "hi");
        assert_eq!(events.to_served(stored.clone())["note"], "hi");
        assert_eq!(core.to_served(stored.clone()), stored);
    }

    #[test]
    fn key_prefixes_do_not_overlap_between_namespaces() {
        let r = Registry::builtin();
        let pods = r.get("", "v1", "pods").unwrap();
        let a = pods.namespace_prefix(Some("a"));
        let ab = pods.key(Some("ab"), "x");
        assert!(!ab.starts_with(&a));
    }

    #[test]
    fn every_builtin_kind_normalizes_a_minimal_object() {
        let r = Registry::builtin();
        for d in r.all() {
            let obj = serde_json::json!({
                "apiVersion": d.gv.api_version(),
                "kind": d.kind,
                "metadata": {"name": "x", "unknownField": 1},
            });
            let out = d.ops.normalize(obj);
            // Some kinds have required fields; a decode error must be a message, not a panic.
            if let Ok(v) = out {
                assert_eq!(v["metadata"]["name"], "x", "{}", d.kind);
                assert!(v["metadata"].get("unknownField").is_none(), "{}", d.kind);
            }
        }
    }
}
