//! Services: defaults (ClusterIP type, no session affinity, TCP ports whose target is the port,
//! traffic policies, one IPv4 family), validation (DNS-1035 names, ports, types, ExternalName
//! rules, a cluster IP that cannot change), the `kubectl get services` columns and the
//! `spec.clusterIP` / `spec.type` field selectors. Allocating cluster IPs and node ports is the
//! server's job, not this module's.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::podspec::{self, PORT_RANGE_MSG};
use super::util::{self, arr, default, default_str, each_mut, s};
use super::workload::go_int_or_string;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError, NameRule, Reason};

/// Behaviour of `core/v1` Service.
pub struct ServiceOps;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn externally_accessible(spec: &Value) -> bool {
    match s(spec, "type") {
        "LoadBalancer" | "NodePort" => true,
        "ClusterIP" => !arr(spec, "externalIPs").is_empty(),
        _ => false,
    }
}

fn headless(spec: &Value) -> bool {
    s(spec, "clusterIP") == "None"
}

impl KindOps for ServiceOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Service>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default_str(spec, "sessionAffinity", "None");
        match s(spec, "sessionAffinity") {
            "None" => {
                if let Some(m) = spec.as_object_mut() {
                    m.remove("sessionAffinityConfig");
                }
            }
            "ClientIP" => {
                let cfg = util::obj(util::obj(spec, "sessionAffinityConfig"), "clientIP");
                default(cfg, "timeoutSeconds", json!(10800));
            }
            _ => {}
        }
        default_str(spec, "type", "ClusterIP");
        each_mut(spec, "ports", |p| {
            default_str(p, "protocol", "TCP");
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            };
            if unset {
                p["targetPort"] = p.get("port").cloned().unwrap_or(json!(0));
            }
        });
        if externally_accessible(spec) {
            default_str(spec, "externalTrafficPolicy", "Cluster");
        }
        let ty = s(spec, "type").to_string();
        if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&ty.as_str()) {
            default(spec, "internalTrafficPolicy", json!("Cluster"));
        }
        if ty == "LoadBalancer" {
            default(spec, "allocateLoadBalancerNodePorts", json!(true));
        }
        // Keep clusterIP and clusterIPs in step, as the service registry does.
        let ip = s(spec, "clusterIP").to_string();
        let first = arr(spec, "clusterIPs")
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if !ip.is_empty() && first.is_empty() {
            spec["clusterIPs"] = json!([ip]);
        } else if ip.is_empty() && !first.is_empty() {
            spec["clusterIP"] = json!(first);
        }
        if ty != "ExternalName" {
            let policy = if headless(spec) && util::len(spec, "selector") == 0 {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            if arr(spec, "ipFamilies").is_empty() {
                spec["ipFamilies"] = json!(["IPv4"]);
            }
            default(spec, "ipFamilyPolicy", json!(policy));
        }
        if ty == "LoadBalancer" {
            if let Some(ingress) = obj["status"]["loadBalancer"]["ingress"].as_array_mut() {
                for ing in ingress {
                    if !s(ing, "ip").is_empty() {
                        default(ing, "ipMode", json!("VIP"));
                    }
                }
            }
        }
        let status = util::obj(obj, "status");
        util::obj(status, "loadBalancer");
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta_with(obj, true, NameRule::Dns1035Label);
        let spec = &obj["spec"];
        let ty = s(spec, "type");
        if !TYPES.contains(&ty) {
            errs.push(FieldError::not_supported("spec.type", &json!(ty), TYPES));
        }
        validate_ports(spec, &mut errs);
        if ty == "ExternalName" {
            validate_external_name(spec, &mut errs);
        } else {
            validate_cluster_ip(spec, &mut errs);
        }
        let affinity = s(spec, "sessionAffinity");
        if !["ClientIP", "None"].contains(&affinity) {
            errs.push(FieldError::not_supported(
                "spec.sessionAffinity",
                &json!(affinity),
                &["ClientIP", "None"],
            ));
        }
        if let Some(t) = spec["sessionAffinityConfig"]["clientIP"]
            .get("timeoutSeconds")
            .and_then(Value::as_i64)
        {
            if !(1..=86400).contains(&t) {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    &json!(t),
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        if let Some(etp) = spec.get("externalTrafficPolicy").and_then(Value::as_str) {
            if !externally_accessible(spec) {
                errs.push(FieldError::invalid(
                    "spec.externalTrafficPolicy",
                    &json!(etp),
                    "may only be set for externally-accessible services",
                ));
            } else if !["Cluster", "Local"].contains(&etp) {
                errs.push(FieldError::not_supported(
                    "spec.externalTrafficPolicy",
                    &json!(etp),
                    &["Cluster", "Local"],
                ));
            }
        }
        if let Some(itp) = spec.get("internalTrafficPolicy").and_then(Value::as_str) {
            if !["Cluster", "Local"].contains(&itp) {
                errs.push(FieldError::not_supported(
                    "spec.internalTrafficPolicy",
                    &json!(itp),
                    &["Cluster", "Local"],
                ));
            }
        }
        util::validate_labels(spec.get("selector"), "spec.selector", &mut errs);
        if let Some(old) = old {
            let (o, n) = (&old["spec"], spec);
            let (oip, nip) = (s(o, "clusterIP"), s(n, "clusterIP"));
            if s(o, "type") != "ExternalName"
                && ty != "ExternalName"
                && !oip.is_empty()
                && !nip.is_empty()
                && oip != nip
            {
                errs.push(util::invalid_raw(
                    "spec.clusterIPs[0]",
                    &format!("[]string{{{nip:?}}}"),
                    "may not change once set",
                ));
            }
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "spec.clusterIP" => Some(s(&obj["spec"], "clusterIP").to_string()),
            "spec.type" => Some(s(&obj["spec"], "type").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", "", 0, "How the service is exposed."),
            Column::new(
                "Cluster-IP",
                "string",
                "",
                0,
                "The service's virtual IP inside the cluster.",
            ),
            Column::new(
                "External-IP",
                "string",
                "",
                0,
                "Addresses the service is reachable at from outside.",
            ),
            Column::new(
                "Port(s)",
                "string",
                "",
                0,
                "Service ports, with node ports and protocols.",
            ),
            Column::age(),
            Column::selector("Labels of the pods traffic is sent to."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let cluster_ip = arr(spec, "clusterIPs")
            .first()
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("<none>");
        let ports = port_string(spec);
        vec![
            json!(crate::meta::name(obj)),
            json!(s(spec, "type")),
            json!(cluster_ip),
            json!(external_ip(obj)),
            json!(if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports
            }),
            json!(crate::table::age(obj, now)),
            json!(util::format_labels(&util::string_map(spec, "selector"))),
        ]
    }
}

/// The PORT(S) cell: `80/TCP`, `80:30080/TCP`, joined with commas.
pub fn port_string(spec: &Value) -> String {
    arr(spec, "ports")
        .iter()
        .map(|p| {
            let node_port = util::int(p, "nodePort");
            if node_port > 0 {
                format!(
                    "{}:{}/{}",
                    util::int(p, "port"),
                    node_port,
                    s(p, "protocol")
                )
            } else {
                format!("{}/{}", util::int(p, "port"), s(p, "protocol"))
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The EXTERNAL-IP cell.
pub fn external_ip(obj: &Value) -> String {
    let spec = &obj["spec"];
    let external: Vec<&str> = arr(spec, "externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(spec, "type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb: BTreeSet<&str> = arr(&obj["status"]["loadBalancer"], "ingress")
                .iter()
                .filter_map(|i| {
                    let ip = s(i, "ip");
                    let host = s(i, "hostname");
                    if !ip.is_empty() {
                        Some(ip)
                    } else if !host.is_empty() {
                        Some(host)
                    } else {
                        None
                    }
                })
                .collect();
            let mut all: Vec<&str> = lb.into_iter().collect();
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => s(spec, "externalName").to_string(),
        _ => "<unknown>".into(),
    }
}

fn go_service_port(p: &Value) -> String {
    format!(
        "core.ServicePort{{Name:{:?}, Protocol:{:?}, AppProtocol:(*string)(nil), Port:{}, TargetPort:{}, NodePort:{}}}",
        s(p, "name"),
        s(p, "protocol"),
        util::int(p, "port"),
        go_int_or_string(p.get("targetPort").unwrap_or(&json!(0))),
        util::int(p, "nodePort"),
    )
}

fn validate_ports(spec: &Value, errs: &mut Vec<FieldError>) {
    let ty = s(spec, "type");
    let ports = arr(spec, "ports");
    if ports.is_empty() && !headless(spec) && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    let mut names = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        let name = s(p, "name");
        if name.is_empty() {
            if ports.len() > 1 {
                errs.push(FieldError::required(format!("{pp}.name"), ""));
            }
        } else if !validation::is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{pp}.name"),
                &json!(name),
                validation::DNS1123_LABEL_MSG,
            ));
        } else if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{pp}.name"), &json!(name)));
        }
        let port = util::int(p, "port");
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("{pp}.port"),
                &json!(port),
                PORT_RANGE_MSG,
            ));
        }
        let proto = s(p, "protocol");
        if !["SCTP", "TCP", "UDP"].contains(&proto) {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                &json!(proto),
                &["SCTP", "TCP", "UDP"],
            ));
        }
        if let Some(tp) = p.get("targetPort") {
            podspec::validate_port_or_name(tp, &format!("{pp}.targetPort"), errs);
        }
        let node_port = util::int(p, "nodePort");
        if node_port != 0 {
            if ty != "NodePort" && ty != "LoadBalancer" {
                errs.push(FieldError::forbidden(
                    format!("{pp}.nodePort"),
                    &format!("may not be used when `type` is '{ty}'"),
                ));
            } else if !(1..=65535).contains(&node_port) {
                errs.push(FieldError::invalid(
                    format!("{pp}.nodePort"),
                    &json!(node_port),
                    PORT_RANGE_MSG,
                ));
            }
        }
        if !seen.insert((port, proto.to_string())) {
            errs.push(FieldError {
                reason: Reason::FieldValueDuplicate,
                field: pp.clone(),
                message: format!("{pp}: Duplicate value: {}", go_service_port(p)),
            });
        }
    }
}

fn validate_external_name(spec: &Value, errs: &mut Vec<FieldError>) {
    let name = s(spec, "externalName");
    if name.is_empty() {
        errs.push(FieldError::required("spec.externalName", ""));
    } else {
        let trimmed = name.strip_suffix('.').unwrap_or(name);
        if !validation::is_dns1123_subdomain(trimmed) {
            errs.push(FieldError::invalid(
                "spec.externalName",
                &json!(name),
                validation::DNS1123_SUBDOMAIN_MSG,
            ));
        }
    }
    if !arr(spec, "clusterIPs").is_empty() || !s(spec, "clusterIP").is_empty() {
        errs.push(FieldError::forbidden(
            "spec.clusterIPs",
            "may not be set for ExternalName services",
        ));
    }
    if spec.get("ipFamilies").is_some() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilies",
            "may not be set for ExternalName services",
        ));
    }
    if spec.get("ipFamilyPolicy").is_some() {
        errs.push(FieldError::forbidden(
            "spec.ipFamilyPolicy",
            "may not be set for ExternalName services",
        ));
    }
}

fn validate_cluster_ip(spec: &Value, errs: &mut Vec<FieldError>) {
    for (i, ip) in arr(spec, "clusterIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let path = format!("spec.clusterIPs[{i}]");
        if ip == "None" {
            if i > 0 {
                errs.push(FieldError::invalid(
                    path,
                    &json!(ip),
                    "must be a valid IP address",
                ));
            } else if matches!(s(spec, "type"), "NodePort" | "LoadBalancer") {
                errs.push(FieldError::invalid(
                    path,
                    &json!(ip),
                    "may not be set to 'None' for LoadBalancer services or NodePort services",
                ));
            }
        } else if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            errs.push(FieldError::invalid(
                path,
                &json!(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    for (i, f) in arr(spec, "ipFamilies").iter().enumerate() {
        let f = f.as_str().unwrap_or("");
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                format!("spec.ipFamilies[{i}]"),
                &json!(f),
                &["IPv4", "IPv6"],
            ));
        }
    }
    if let Some(p) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        let allowed = ["PreferDualStack", "RequireDualStack", "SingleStack"];
        if !allowed.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                &json!(p),
                &allowed,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        let mut obj = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec});
        obj = ServiceOps.normalize(obj).unwrap();
        ServiceOps.apply_defaults(&mut obj);
        obj
    }

    #[test]
    fn a_minimal_service_gets_upstream_defaults() {
        let s = svc(json!({"selector": {"app": "web"}, "ports": [{"port": 80}]}));
        assert_eq!(
            s["spec"],
            json!({
                "selector": {"app": "web"},
                "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                "type": "ClusterIP",
                "sessionAffinity": "None",
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
            })
        );
        assert_eq!(s["status"], json!({"loadBalancer": {}}));
        assert!(ServiceOps.validate(&s, None).is_empty());
    }

    #[test]
    fn node_port_and_headless_defaults() {
        let s = svc(json!({"type": "NodePort", "selector": {"app": "web"},
                           "ports": [{"port": 80, "targetPort": "http"}]}));
        assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        let s = svc(json!({"clusterIP": "None", "ports": [{"port": 5432}]}));
        assert_eq!(s["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(s["spec"]["clusterIPs"], json!(["None"]));
        let s = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(s["spec"].get("ipFamilies").is_none());
        assert!(s["spec"].get("internalTrafficPolicy").is_none());
        assert!(ServiceOps.validate(&s, None).is_empty());
    }

    #[test]
    fn ports_column() {
        let spec = json!({"ports": [
            {"port": 80, "nodePort": 30080, "protocol": "TCP"},
            {"port": 443, "protocol": "TCP"},
            {"port": 53, "protocol": "UDP"}]});
        assert_eq!(port_string(&spec), "80:30080/TCP,443/TCP,53/UDP");
        assert_eq!(port_string(&json!({})), "");
    }

    #[test]
    fn external_ip_column() {
        let mut s = svc(json!({"type": "LoadBalancer", "ports": [{"port": 80}]}));
        assert_eq!(external_ip(&s), "<pending>");
        s["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "192.0.2.2"}, {"hostname": "lb.example"}, {"ip": "192.0.2.1"}]);
        assert_eq!(external_ip(&s), "192.0.2.1,192.0.2.2,lb.example");
        let s = svc(json!({"ports": [{"port": 80}]}));
        assert_eq!(external_ip(&s), "<none>");
        let s = svc(json!({"ports": [{"port": 80}], "externalIPs": ["198.51.100.1"]}));
        assert_eq!(external_ip(&s), "198.51.100.1");
    }

    #[test]
    fn table_row() {
        let mut s = svc(json!({"type": "NodePort", "selector": {"app": "web"},
                               "ports": [{"port": 80, "nodePort": 30080}]}));
        s["spec"]["clusterIP"] = json!("10.43.0.20");
        s["spec"]["clusterIPs"] = json!(["10.43.0.20"]);
        let now: jiff::Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(
            ServiceOps.table_row(&s, now),
            vec![
                json!("web"),
                json!("NodePort"),
                json!("10.43.0.20"),
                json!("<none>"),
                json!("80:30080/TCP"),
                json!("10s"),
                json!("app=web")
            ]
        );
    }

    fn fields(spec: Value) -> Vec<(String, Reason)> {
        ServiceOps
            .validate(&svc(spec), None)
            .into_iter()
            .map(|e| (e.field, e.reason))
            .collect()
    }

    #[test]
    fn validation_rules() {
        use Reason::*;
        let cases: Vec<(Value, Vec<(&str, Reason)>)> = vec![
            (json!({}), vec![("spec.ports", FieldValueRequired)]),
            (
                json!({"ports": [{"port": 0}]}),
                vec![
                    ("spec.ports[0].port", FieldValueInvalid),
                    ("spec.ports[0].targetPort", FieldValueInvalid),
                ],
            ),
            (
                json!({"ports": [{"port": 80}, {"port": 81}]}),
                vec![
                    ("spec.ports[0].name", FieldValueRequired),
                    ("spec.ports[1].name", FieldValueRequired),
                ],
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]}),
                vec![("spec.ports[1].name", FieldValueDuplicate)],
            ),
            (
                json!({"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]}),
                vec![("spec.ports[1]", FieldValueDuplicate)],
            ),
            (
                json!({"type": "Magic", "ports": [{"port": 80}]}),
                vec![("spec.type", FieldValueNotSupported)],
            ),
            (
                json!({"type": "ExternalName"}),
                vec![("spec.externalName", FieldValueRequired)],
            ),
            (
                json!({"ports": [{"port": 80, "nodePort": 30001}]}),
                vec![("spec.ports[0].nodePort", FieldValueForbidden)],
            ),
            (
                json!({"ports": [{"port": 80, "protocol": "HTTP"}]}),
                vec![("spec.ports[0].protocol", FieldValueNotSupported)],
            ),
            (json!({"clusterIP": "None"}), vec![]),
        ];
        for (spec, want) in cases {
            let want: Vec<(String, Reason)> =
                want.into_iter().map(|(f, r)| (f.into(), r)).collect();
            assert_eq!(fields(spec.clone()), want, "{spec}");
        }
        let mut bad = svc(json!({"ports": [{"port": 80}]}));
        bad["metadata"]["name"] = json!("1web");
        let errs = ServiceOps.validate(&bad, None);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(errs[0].message.contains("DNS-1035"));
    }

    #[test]
    fn cluster_ip_may_not_change() {
        let mut old = svc(json!({"ports": [{"port": 80}]}));
        old["spec"]["clusterIP"] = json!("10.43.0.5");
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.43.0.6");
        let errs = ServiceOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "spec.clusterIPs[0]: Invalid value: []string{\"10.43.0.6\"}: may not change once set"
        );
        assert_eq!(
            ServiceOps.field(&old, "spec.clusterIP").as_deref(),
            Some("10.43.0.5")
        );
        assert_eq!(
            ServiceOps.field(&old, "spec.type").as_deref(),
            Some("ClusterIP")
        );
    }
}
