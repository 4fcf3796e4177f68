//! API discovery, in both forms kubectl uses: aggregated (`APIGroupDiscoveryList`, v2 and
//! v2beta1, chosen by `Accept`) and legacy (`APIVersions`, `APIGroupList`, `APIGroup`,
//! `APIResourceList`). Built from the registry.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use navarch_api::{Registry, ResourceDef};
use serde_json::{json, Value};

use super::codec::json_response;
use super::request::Discovery;
use crate::StatusError;

/// Discovery documents rendered once per registry.
pub struct DiscoveryDocs {
    aggregated_core: Value,
    aggregated_groups: Value,
}

fn aggregated_resource(def: &ResourceDef) -> Value {
    let mut r = json!({
        "resource": def.plural,
        "responseKind": {"group": def.gv.group, "version": def.gv.version, "kind": def.kind},
        "scope": if def.namespaced() { "Namespaced" } else { "Cluster" },
        "singularResource": def.singular,
        "verbs": def.verbs,
    });
    if !def.short_names.is_empty() {
        r["shortNames"] = json!(def.short_names);
    }
    if !def.categories.is_empty() {
        r["categories"] = json!(def.categories);
    }
    if !def.subresources.is_empty() {
        r["subresources"] = def
            .subresources
            .iter()
            .map(|s| {
                json!({
                    "subresource": s.name,
                    "responseKind": {"group": s.group, "version": s.version, "kind": s.kind},
                    "verbs": s.verbs,
                })
            })
            .collect();
    }
    r
}

fn aggregated_group(registry: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|gv| gv.group == group)
        .map(|gv| {
            let resources: Vec<Value> = registry
                .in_group_version(&gv.group, &gv.version)
                .map(|d| aggregated_resource(d))
                .collect();
            json!({"version": gv.version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

fn legacy_resources(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for def in registry.in_group_version(group, version) {
        let mut r = json!({
            "name": def.plural,
            "singularName": def.singular,
            "namespaced": def.namespaced(),
            "kind": def.kind,
            "verbs": def.verbs,
        });
        if !def.short_names.is_empty() {
            r["shortNames"] = json!(def.short_names);
        }
        if !def.categories.is_empty() {
            r["categories"] = json!(def.categories);
        }
        resources.push(r);
        for s in &def.subresources {
            let mut sr = json!({
                "name": format!("{}/{}", def.plural, s.name),
                "singularName": "",
                "namespaced": def.namespaced(),
                "kind": s.kind,
                "verbs": s.verbs,
            });
            if s.group != def.gv.group || s.version != def.gv.version {
                sr["group"] = json!(s.group);
                sr["version"] = json!(s.version);
            }
            resources.push(sr);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

fn legacy_group(registry: &Registry, group: &str) -> Option<Value> {
    let versions: Vec<Value> = registry
        .group_versions()
        .into_iter()
        .filter(|gv| gv.group == group)
        .map(|gv| json!({"groupVersion": gv.api_version(), "version": gv.version}))
        .collect();
    let preferred = versions.first()?.clone();
    Some(json!({"name": group, "versions": versions, "preferredVersion": preferred}))
}

/// Which aggregated discovery version the client accepts, if any.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(header::ACCEPT)?.to_str().ok()?;
    for item in accept.split(',') {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if has("as=APIGroupDiscoveryList") && has("g=apidiscovery.k8s.io") {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
    }
    None
}

fn aggregated_response(doc: &Value, version: &str) -> Response {
    let mut doc = doc.clone();
    doc["apiVersion"] = json!(format!("apidiscovery.k8s.io/{version}"));
    let body = serde_json::to_vec(&doc).unwrap_or_default();
    let mut r = (StatusCode::OK, body).into_response();
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&ct).expect("valid header"),
    );
    r.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    r
}

impl DiscoveryDocs {
    pub fn new(registry: &Registry) -> Self {
        let core = aggregated_group(registry, "");
        let groups: Vec<Value> = registry
            .groups()
            .iter()
            .map(|g| aggregated_group(registry, g))
            .collect();
        DiscoveryDocs {
            aggregated_core: json!({"kind": "APIGroupDiscoveryList", "metadata": {}, "items": [core]}),
            aggregated_groups: json!({"kind": "APIGroupDiscoveryList", "metadata": {}, "items": groups}),
        }
    }

    pub fn respond(
        &self,
        registry: &Registry,
        d: Discovery,
        headers: &HeaderMap,
    ) -> Result<Response, StatusError> {
        let aggregated = aggregated_version(headers);
        match d {
            Discovery::CoreVersions => Ok(match aggregated {
                Some(v) => aggregated_response(&self.aggregated_core, v),
                None => json_response(
                    StatusCode::OK,
                    &json!({
                        "kind": "APIVersions",
                        "versions": ["v1"],
                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
                    }),
                ),
            }),
            Discovery::Groups => Ok(match aggregated {
                Some(v) => aggregated_response(&self.aggregated_groups, v),
                None => {
                    let groups: Vec<Value> = registry
                        .groups()
                        .iter()
                        .filter_map(|g| legacy_group(registry, g))
                        .collect();
                    json_response(
                        StatusCode::OK,
                        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
                    )
                }
            }),
            Discovery::Group(g) => {
                let mut doc = legacy_group(registry, &g).ok_or_else(StatusError::path_not_found)?;
                doc["kind"] = json!("APIGroup");
                doc["apiVersion"] = json!("v1");
                Ok(json_response(StatusCode::OK, &doc))
            }
            Discovery::Resources { group, version } => {
                if registry.in_group_version(&group, &version).next().is_none() {
                    return Err(StatusError::path_not_found());
                }
                Ok(json_response(
                    StatusCode::OK,
                    &legacy_resources(registry, &group, &version),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_lists_groups_with_subresources() {
        let r = Registry::builtin();
        let docs = DiscoveryDocs::new(&r);
        let apps = docs.aggregated_groups["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"], json!(["deploy"]));
        assert!(deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "scale" && s["responseKind"]["group"] == "autoscaling"));
        assert_eq!(docs.aggregated_core["items"][0]["metadata"]["name"], "");
    }

    #[test]
    fn accept_header_selects_the_aggregated_version() {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"));
        assert_eq!(aggregated_version(&h), Some("v2beta1"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert_eq!(aggregated_version(&h), None);
    }

    #[test]
    fn legacy_resource_list_names_subresources() {
        let r = Registry::builtin();
        let doc = legacy_resources(&r, "apps", "v1");
        let names: Vec<&str> = doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"deployments/scale"));
        assert!(names.contains(&"deployments/status"));
    }

    #[test]
    fn service_account_tokens_are_discoverable_for_kubectl_create_token() {
        let r = Registry::builtin();
        let legacy = legacy_resources(&r, "", "v1");
        let token = legacy["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "serviceaccounts/token")
            .unwrap();
        assert_eq!(token["kind"], "TokenRequest");
        assert_eq!(token["group"], "authentication.k8s.io");
        assert_eq!(token["version"], "v1");
        assert_eq!(token["verbs"], json!(["create"]));

        let docs = DiscoveryDocs::new(&r);
        let sa = docs.aggregated_core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "serviceaccounts")
            .unwrap();
        assert_eq!(
            sa["subresources"],
            json!([{
                "subresource": "token",
                "responseKind": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
                "verbs": ["create"],
            }])
        );
    }
}
