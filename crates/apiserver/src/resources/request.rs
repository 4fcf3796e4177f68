//! Parsing resource URLs and query parameters into what a request addresses.
//!
//! Paths follow the Kubernetes conventions:
//! `/api/v1/[namespaces/NS/]RESOURCE[/NAME[/SUBRESOURCE]]` for the core group and
//! `/apis/GROUP/VERSION/…` for the others, with the legacy `/watch/` segment after the version.

use std::collections::HashMap;
use std::sync::Arc;

use navarch_api::selector::{FieldSelector, LabelSelector};
use navarch_api::{Registry, ResourceDef};

use crate::StatusError;

/// What a resource path points at.
#[derive(Debug, Clone)]
pub struct Target {
    pub def: Arc<ResourceDef>,
    /// The namespace from the URL (None for cluster-scoped kinds and all-namespace requests).
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The legacy `/watch/` form was used.
    pub legacy_watch: bool,
}

/// Non-resource paths under `/api` and `/apis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/GROUP`
    Group(String),
    /// `/api/v1`, `/apis/GROUP/VERSION`
    Resources { group: String, version: String },
}

#[derive(Debug)]
pub enum Route {
    Discovery(Discovery),
    Resource(Target),
}

fn not_found() -> StatusError {
    StatusError::path_not_found()
}

/// Parse `/api/...` or `/apis/...`.
pub fn parse_path(registry: &Registry, path: &str) -> Result<Route, StatusError> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let (group, version, rest): (String, String, &[&str]) = match segs.as_slice() {
        ["api"] => return Ok(Route::Discovery(Discovery::CoreVersions)),
        ["apis"] => return Ok(Route::Discovery(Discovery::Groups)),
        ["apis", g] => return Ok(Route::Discovery(Discovery::Group(g.to_string()))),
        ["api", v] => {
            return Ok(Route::Discovery(Discovery::Resources {
                group: String::new(),
                version: v.to_string(),
            }))
        }
        ["apis", g, v] => {
            return Ok(Route::Discovery(Discovery::Resources {
                group: g.to_string(),
                version: v.to_string(),
            }))
        }
        ["api", v, rest @ ..] => (String::new(), v.to_string(), rest),
        ["apis", g, v, rest @ ..] => (g.to_string(), v.to_string(), rest),
        _ => return Err(not_found()),
    };
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let lookup = |plural: &str| registry.get(&group, &version, plural);
    let decode = |s: &str| -> Result<String, StatusError> {
        percent_decode(s)
            .ok_or_else(|| StatusError::bad_request(format!("invalid path segment {s:?}")))
    };
    // Namespaced forms first: namespaces/NS/RESOURCE[/NAME[/SUB]].
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(def) = lookup(plural).filter(|d| d.namespaced()) {
            let (name, sub) = match tail {
                [] => (None, None),
                [name] => (Some(decode(name)?), None),
                [name, sub] => (Some(decode(name)?), Some(sub.to_string())),
                _ => return Err(not_found()),
            };
            return Ok(Route::Resource(Target {
                def,
                namespace: Some(decode(ns)?),
                name,
                subresource: sub,
                legacy_watch,
            }));
        }
    }
    match rest {
        [plural, tail @ ..] => {
            let def = lookup(plural).ok_or_else(not_found)?;
            let (name, sub) = match tail {
                [] => (None, None),
                [name] if !def.namespaced() => (Some(decode(name)?), None),
                [name, sub] if !def.namespaced() => (Some(decode(name)?), Some(sub.to_string())),
                _ => return Err(not_found()),
            };
            Ok(Route::Resource(Target {
                def,
                namespace: None,
                name,
                subresource: sub,
                legacy_watch,
            }))
        }
        _ => Err(not_found()),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Query parameters, decoded (`application/x-www-form-urlencoded`), last value wins except
/// for repeated parameters read with [`Query::all`].
#[derive(Debug, Default, Clone)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn is_true(value: &str) -> bool {
    value != "0" && !value.eq_ignore_ascii_case("false")
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter read as kube-apiserver reads one: absent, `0` or `false` in any case
    /// is false, any other value is true (the Python client sends `watch=True`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(is_true)
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, StatusError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                StatusError::bad_request(format!("invalid value {v:?} for parameter {key}"))
            }),
        }
    }

    pub fn as_map(&self) -> HashMap<&str, &str> {
        self.pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    pub fn dry_run(&self) -> Result<bool, StatusError> {
        let values = self.all("dryRun");
        for v in &values {
            if *v != "All" {
                return Err(StatusError::bad_request(format!(
                    "Invalid dry run value: {v}; supported values: All"
                )));
            }
        }
        Ok(!values.is_empty())
    }
}

/// How strictly to treat unknown and duplicate fields in a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn from_query(q: &Query) -> Result<Self, StatusError> {
        match q.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(StatusError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}; must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// The list/watch options of a collection request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<String>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub watch: bool,
    pub allow_bookmarks: bool,
    pub send_initial_events: Option<bool>,
    pub timeout_seconds: Option<i64>,
}

impl ListOptions {
    pub fn from_query(q: &Query) -> Result<Self, StatusError> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(StatusError::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(StatusError::bad_request)?;
        let limit = q.int("limit")?.unwrap_or(0).max(0) as usize;
        let send_initial_events = match q.get("sendInitialEvents") {
            None | Some("") => None,
            Some(v) => Some(is_true(v)),
        };
        Ok(ListOptions {
            labels,
            fields,
            limit,
            continue_token: q
                .get("continue")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            resource_version: q
                .get("resourceVersion")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            resource_version_match: q
                .get("resourceVersionMatch")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            watch: q.flag("watch"),
            allow_bookmarks: q.flag("allowWatchBookmarks"),
            send_initial_events,
            timeout_seconds: q.int("timeoutSeconds")?,
        })
    }
}

/// Parse a resourceVersion parameter.
pub fn parse_rv(rv: &str) -> Result<i64, StatusError> {
    rv.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| StatusError::bad_request(format!("invalid resource version: {rv}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> Target {
        match parse_path(&Registry::builtin(), path).unwrap() {
            Route::Resource(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespaced_item_and_subresource_paths() {
        let t = target("/apis/apps/v1/namespaces/default/deployments/web/scale");
        assert_eq!(t.def.plural, "deployments");
        assert_eq!(t.namespace.as_deref(), Some("default"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("scale"));
    }

    #[test]
    fn namespace_objects_are_cluster_scoped() {
        let t = target("/api/v1/namespaces/kube-system");
        assert_eq!(t.def.plural, "namespaces");
        assert_eq!(t.name.as_deref(), Some("kube-system"));
        let t = target("/api/v1/namespaces/x/status");
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = target("/api/v1/namespaces/x/pods");
        assert_eq!(t.def.plural, "pods");
        assert!(t.name.is_none());
    }

    #[test]
    fn all_namespace_lists_and_legacy_watch() {
        let t = target("/api/v1/pods");
        assert!(t.namespace.is_none() && t.name.is_none());
        let t = target("/api/v1/watch/namespaces/default/pods");
        assert!(t.legacy_watch);
    }

    #[test]
    fn boolean_parameters_are_read_as_upstream_reads_them() {
        let q = Query::parse(Some(
            "watch=True&allowWatchBookmarks=1&a=false&b=FALSE&c=0&d=t",
        ));
        assert!(q.flag("watch") && q.flag("allowWatchBookmarks") && q.flag("d"));
        assert!(!q.flag("a") && !q.flag("b") && !q.flag("c") && !q.flag("absent"));
        let opts =
            ListOptions::from_query(&Query::parse(Some("watch=True&sendInitialEvents=True")));
        let opts = opts.unwrap();
        assert!(opts.watch);
        assert_eq!(opts.send_initial_events, Some(true));
    }

    #[test]
    fn unknown_resources_are_not_found() {
        assert!(parse_path(&Registry::builtin(), "/api/v1/nothings").is_err());
        assert!(parse_path(&Registry::builtin(), "/apis/apps/v1/namespaces/d/pods").is_err());
    }
}
