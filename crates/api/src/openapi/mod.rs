//! The OpenAPI documents the server publishes, generated from the registry and the kinds' types
//! (never copied from upstream): `/openapi/v3` (a root listing one document per
//! group-version, each behind a content hash) and `/openapi/v2` (Swagger 2.0, JSON).
//!
//! Start with [`OpenApi::new`]: it builds every document once, serialised, so that serving
//! them is a clone of an `Arc`. kubectl needs them for `apply`/`create -f`/`replace`/`edit`
//! (server-side field validation is switched on by the `fieldValidation` parameter of each
//! PATCH operation), for client-side `apply` (the patch extensions of the schemas) and for
//! `explain` (descriptions and types, found through `x-kubernetes-group-version-kind`).
//!
//! The patch metadata of every field lives in one table, [`merge_keys`]; the generator turns it
//! into schema extensions and [`SchemaIndex`] reads them back for the strategic merge patch.
//!
//! kubectl asks for `/openapi/v2` in protobuf only: [`OpenApi::v2_protobuf`] for it (kubectl
//! 1.27 and 1.28 `explain` read nothing else), [`OpenApi::v2`] (JSON) for other clients.

mod definitions;
mod index;
pub mod merge_keys;
mod paths;
mod protobuf_v2;
mod schemas;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub use index::{ApplyMeta, Field, PatchMeta, SchemaIndex, SchemaRef, Shape};
pub use protobuf_v2::{accepts_protobuf_v2, PROTOBUF_V2_CONTENT_TYPE};
pub use schemas::{Gvk, KindSchemas, SchemaFn};

use crate::Registry;

/// `info.version` of the documents: the Kubernetes release whose API is served.
pub const API_VERSION: &str = "v1.33.0";

/// One group-version document, serialised.
#[derive(Debug, Clone)]
struct GroupVersionDoc {
    bytes: Arc<Vec<u8>>,
    hash: String,
}

/// Every OpenAPI document of one registry, built once.
#[derive(Debug, Clone)]
pub struct OpenApi {
    /// Keyed by `api/v1`, `apis/apps/v1`, …
    group_versions: BTreeMap<String, GroupVersionDoc>,
    v3_root: Arc<Vec<u8>>,
    v2: Arc<Vec<u8>>,
    v2_protobuf: Arc<Vec<u8>>,
    index: Arc<SchemaIndex>,
}

/// `api/v1` or `apis/<group>/<version>`: the key of a group-version under `/openapi/v3/`.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Upper-case hex SHA-512, as kube-apiserver hashes its documents.
fn hash(bytes: &[u8]) -> String {
    Sha512::digest(bytes)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect()
}

impl OpenApi {
    /// Builds the documents of `registry` with the schemas of the built-in kinds.
    pub fn new(registry: &Registry) -> Self {
        Self::with_schemas(registry, &KindSchemas::builtin())
    }

    /// Builds the documents of `registry`; kinds missing from `schemas` get an open object
    /// schema (with their GVK and paths, so kubectl still finds them).
    pub fn with_schemas(registry: &Registry, schemas: &KindSchemas) -> Self {
        let defs = definitions::build(registry, schemas);
        let kind_def = |g: &Gvk| defs.kinds.get(g).cloned();
        let list_def = |g: &Gvk| defs.lists.get(g).cloned();
        let lookup = paths::Lookup {
            kind_def: &kind_def,
            list_def: &list_def,
        };

        let mut group_versions = BTreeMap::new();
        for gv in registry.group_versions() {
            let kinds: Vec<_> = registry
                .in_group_version(&gv.group, &gv.version)
                .map(|d| d.as_ref())
                .collect();
            let (paths, used) = paths::paths(
                std::slice::from_ref(&gv),
                kinds.iter().copied(),
                &lookup,
                true,
            );
            let reachable = definitions::reachable(
                &defs.defs,
                used.iter()
                    .map(String::as_str)
                    .chain(definitions::COMMON.iter().copied()),
            );
            let schemas: Map<String, Value> = reachable
                .into_iter()
                .filter_map(|name| defs.defs.get(&name).map(|d| (name, d.clone())))
                .collect();
            let doc = json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": API_VERSION},
                "paths": paths,
                "components": {"schemas": schemas},
            });
            let bytes = serde_json::to_vec(&doc).expect("documents serialise");
            let hash = hash(&bytes);
            group_versions.insert(
                group_version_path(&gv.group, &gv.version),
                GroupVersionDoc {
                    bytes: Arc::new(bytes),
                    hash,
                },
            );
        }

        let root_paths: Map<String, Value> = group_versions
            .iter()
            .map(|(path, doc)| {
                let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
                (path.clone(), json!({"serverRelativeURL": url}))
            })
            .collect();
        let v3_root = serde_json::to_vec(&json!({"paths": root_paths})).expect("serialise");

        let all: Vec<_> = registry.all().iter().map(|d| d.as_ref()).collect();
        let (v2_paths, used) = paths::paths(
            &registry.group_versions(),
            all.iter().copied(),
            &lookup,
            false,
        );
        let reachable = definitions::reachable(
            &defs.defs,
            used.iter()
                .map(String::as_str)
                .chain(definitions::COMMON.iter().copied()),
        );
        let v2_defs: Map<String, Value> = reachable
            .into_iter()
            .filter_map(|name| {
                let d = defs.defs.get(&name)?;
                Some((name, definitions::to_v2(d)))
            })
            .collect();
        let v2 = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": API_VERSION},
            "paths": v2_paths,
            "definitions": v2_defs,
        });
        let v2_protobuf = protobuf_v2::encode(&v2);
        let v2 = serde_json::to_vec(&v2).expect("serialise");

        OpenApi {
            group_versions,
            v3_root: Arc::new(v3_root),
            v2: Arc::new(v2),
            v2_protobuf: Arc::new(v2_protobuf),
            index: Arc::new(SchemaIndex::from_definitions(&defs.defs)),
        }
    }

    /// The `/openapi/v3` discovery document: `{"paths": {"apis/apps/v1": {"serverRelativeURL":
    /// "/openapi/v3/apis/apps/v1?hash=…"}, …}}`.
    pub fn v3_root(&self) -> Value {
        serde_json::from_slice(&self.v3_root).expect("the root is JSON")
    }

    /// [`OpenApi::v3_root`], serialised.
    pub fn v3_root_bytes(&self) -> Arc<Vec<u8>> {
        self.v3_root.clone()
    }

    /// The document of one group-version (`api/v1`, `apis/apps/v1`; a leading `/` or
    /// `openapi/v3/` is tolerated) as JSON bytes, with its hash. The hash changes whenever the
    /// document does, so the document behind a hashed URL can be cached as immutable.
    pub fn v3_group_version(&self, path: &str) -> Option<(Arc<Vec<u8>>, String)> {
        let path = path.trim_start_matches('/');
        let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
        let path = path.trim_end_matches('/');
        self.group_versions
            .get(path)
            .map(|d| (d.bytes.clone(), d.hash.clone()))
    }

    /// The group-version paths that have a document.
    pub fn v3_paths(&self) -> impl Iterator<Item = &str> {
        self.group_versions.keys().map(String::as_str)
    }

    /// The Swagger 2.0 document (JSON) of all group-versions.
    pub fn v2(&self) -> Arc<Vec<u8>> {
        self.v2.clone()
    }

    /// The Swagger 2.0 document as gnostic protobuf, for clients that ask for
    /// [`PROTOBUF_V2_CONTENT_TYPE`] (kubectl always does).
    pub fn v2_protobuf(&self) -> Arc<Vec<u8>> {
        self.v2_protobuf.clone()
    }

    /// The schemas, indexed for the strategic merge patch.
    pub fn schema_index(&self) -> &Arc<SchemaIndex> {
        &self.index
    }
}

/// The schema index of the built-in registry, built on first use; for code that needs patch
/// metadata without an [`OpenApi`] at hand (tests, clients of the patch module).
pub fn builtin_index() -> &'static SchemaIndex {
    static INDEX: OnceLock<SchemaIndex> = OnceLock::new();
    INDEX.get_or_init(|| {
        let defs = definitions::build(&Registry::builtin(), &KindSchemas::builtin());
        SchemaIndex::from_definitions(&defs.defs)
    })
}

#[cfg(test)]
mod tests;
