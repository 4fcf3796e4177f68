//! Ingresses: rule, path and backend validation, and the `kubectl get ingresses` columns.

use std::collections::BTreeSet;

use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

use super::podspec::PORT_RANGE_MSG;
use super::util::{arr, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `networking.k8s.io/v1` Ingress.
pub struct IngressOps;

const PATH_TYPES: &[&str] = &["Exact", "ImplementationSpecific", "Prefix"];

fn validate_backend(b: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let service = b.get("service").filter(|s| s.is_object());
    let resource = b.get("resource").filter(|s| s.is_object());
    match (service, resource) {
        (Some(_), Some(_)) => errs.push(FieldError::invalid(
            path,
            &Value::Null,
            "cannot set both resource and service backends",
        )),
        (None, None) => errs.push(FieldError::invalid(
            path,
            &Value::Null,
            "resource or service backend is required",
        )),
        (Some(svc), None) => {
            let name = s(svc, "name");
            if name.is_empty() {
                errs.push(FieldError::required(format!("{path}.service.name"), ""));
            } else if !validation::is_dns1035_label(name) {
                errs.push(FieldError::invalid(
                    format!("{path}.service.name"),
                    &json!(name),
                    validation::DNS1035_LABEL_MSG,
                ));
            }
            let port = &svc["port"];
            let has_name = !s(port, "name").is_empty();
            let number = port.get("number").and_then(Value::as_i64);
            match (has_name, number) {
                (true, Some(_)) => errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port,
                    "cannot set both port name & port number",
                )),
                (false, None) => errs.push(FieldError::invalid(
                    format!("{path}.service.port"),
                    port,
                    "port name or number is required",
                )),
                (false, Some(n)) if !(1..=65535).contains(&n) => errs.push(FieldError::invalid(
                    format!("{path}.service.port.number"),
                    &json!(n),
                    PORT_RANGE_MSG,
                )),
                _ => {}
            }
        }
        (None, Some(_)) => {}
    }
}

impl KindOps for IngressOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<networking::Ingress>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        let rules = arr(spec, "rules");
        match spec.get("defaultBackend") {
            Some(b) => validate_backend(b, "spec.defaultBackend", &mut errs),
            None if rules.is_empty() => errs.push(FieldError::invalid(
                "spec",
                &Value::Null,
                "either `defaultBackend` or `rules` must be specified",
            )),
            None => {}
        }
        if let Some(class) = spec.get("ingressClassName").and_then(Value::as_str) {
            if !validation::is_dns1123_subdomain(class) {
                errs.push(FieldError::invalid(
                    "spec.ingressClassName",
                    &json!(class),
                    validation::DNS1123_SUBDOMAIN_MSG,
                ));
            }
        }
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("spec.rules[{i}]");
            let host = s(r, "host");
            if !host.is_empty() {
                let bare = host.strip_prefix("*.").unwrap_or(host);
                if host.parse::<std::net::IpAddr>().is_ok() {
                    errs.push(FieldError::invalid(
                        format!("{rp}.host"),
                        &json!(host),
                        "must be a DNS name, not an IP address",
                    ));
                } else if !validation::is_dns1123_subdomain(bare) {
                    errs.push(FieldError::invalid(
                        format!("{rp}.host"),
                        &json!(host),
                        validation::DNS1123_SUBDOMAIN_MSG,
                    ));
                }
            }
            let Some(http) = r.get("http") else {
                continue;
            };
            let paths = arr(http, "paths");
            if paths.is_empty() {
                errs.push(FieldError::required(format!("{rp}.http.paths"), ""));
            }
            for (j, p) in paths.iter().enumerate() {
                let pp = format!("{rp}.http.paths[{j}]");
                let ty = s(p, "pathType");
                if ty.is_empty() {
                    errs.push(FieldError::required(
                        format!("{pp}.pathType"),
                        "pathType must be specified",
                    ));
                } else if !PATH_TYPES.contains(&ty) {
                    errs.push(FieldError::not_supported(
                        format!("{pp}.pathType"),
                        &json!(ty),
                        PATH_TYPES,
                    ));
                }
                let path = s(p, "path");
                if (ty == "Exact" || ty == "Prefix") && !path.starts_with('/') {
                    errs.push(FieldError::invalid(
                        format!("{pp}.path"),
                        &json!(path),
                        "must be an absolute path",
                    ));
                }
                validate_backend(&p["backend"], &format!("{pp}.backend"), &mut errs);
            }
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Class",
                "string",
                "",
                0,
                "The ingress class handling the ingress.",
            ),
            Column::new("Hosts", "string", "", 0, "Hosts the rules match."),
            Column::new(
                "Address",
                "string",
                "",
                0,
                "Addresses of the load balancer.",
            ),
            Column::new("Ports", "string", "", 0, "Ports the ingress serves."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let rules = arr(spec, "rules");
        const MAX: usize = 3;
        let hosts: Vec<&str> = rules
            .iter()
            .map(|r| s(r, "host"))
            .filter(|h| !h.is_empty())
            .take(MAX)
            .collect();
        let hosts = if hosts.is_empty() {
            "*".to_string()
        } else if rules.len() > MAX {
            format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
        } else {
            hosts.join(",")
        };
        let address: BTreeSet<&str> = arr(&obj["status"]["loadBalancer"], "ingress")
            .iter()
            .map(|i| {
                if s(i, "ip").is_empty() {
                    s(i, "hostname")
                } else {
                    s(i, "ip")
                }
            })
            .filter(|a| !a.is_empty())
            .collect();
        let ports = if arr(spec, "tls").is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            json!(crate::meta::name(obj)),
            json!(spec
                .get("ingressClassName")
                .and_then(Value::as_str)
                .unwrap_or("<none>")),
            json!(hosts),
            json!(address.into_iter().collect::<Vec<_>>().join(",")),
            json!(ports),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ing() -> Value {
        json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"ingressClassName": "traefik", "tls": [{"hosts": ["a.example"]}],
                     "rules": [{"host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}})
    }

    #[test]
    fn row_and_validation() {
        let i = ing();
        assert!(
            IngressOps.validate(&i, None).is_empty(),
            "{:?}",
            IngressOps.validate(&i, None)
        );
        let row = IngressOps.table_row(&i, jiff::Timestamp::now());
        assert_eq!(
            &row[..5],
            &[
                json!("web"),
                json!("traefik"),
                json!("a.example"),
                json!("192.0.2.10"),
                json!("80, 443")
            ]
        );
        let mut bad = ing();
        bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = json!("");
        bad["spec"]["rules"][0]["http"]["paths"][0]["path"] = json!("api");
        bad["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"] = json!({});
        let fields: Vec<String> = IngressOps
            .validate(&bad, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "spec.rules[0].http.paths[0].pathType",
                "spec.rules[0].http.paths[0].backend.service.port"
            ]
        );
        let empty = json!({"metadata": {"name": "x", "namespace": "default"}, "spec": {}});
        assert_eq!(IngressOps.validate(&empty, None)[0].field, "spec");
    }
}
