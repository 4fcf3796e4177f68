//! Nodes: allocatable defaults to capacity; taint validation; the `kubectl get nodes` columns
//! (STATUS from the Ready condition, ROLES from `node-role.kubernetes.io/*` labels) and the
//! `spec.unschedulable` field selector.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util::{self, arr, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Node.
pub struct NodeOps;

const ROLE_PREFIX: &str = "node-role.kubernetes.io/";
const ROLE_LABEL: &str = "kubernetes.io/role";
const EFFECTS: &[&str] = &["NoExecute", "NoSchedule", "PreferNoSchedule"];

impl KindOps for NodeOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Node>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let capacity = obj["status"].get("capacity").cloned();
        if let Some(cap) = capacity.filter(Value::is_object) {
            let status = util::obj(obj, "status");
            util::default(status, "allocatable", cap);
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        let mut seen = BTreeSet::new();
        for (i, t) in arr(&obj["spec"], "taints").iter().enumerate() {
            let tp = format!("spec.taints[{i}]");
            let key = s(t, "key");
            if !validation::is_qualified_name(key) {
                errs.push(FieldError::invalid(
                    format!("{tp}.key"),
                    &json!(key),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            let effect = s(t, "effect");
            if !EFFECTS.contains(&effect) {
                if effect.is_empty() {
                    errs.push(FieldError::required(format!("{tp}.effect"), ""));
                } else {
                    errs.push(FieldError::not_supported(
                        format!("{tp}.effect"),
                        &json!(effect),
                        EFFECTS,
                    ));
                }
            }
            if !seen.insert((key.to_string(), effect.to_string())) {
                errs.push(FieldError::duplicate(tp, &json!(format!("{key}:{effect}"))));
            }
        }
        if let Some(cidr) = obj["spec"].get("podCIDR").and_then(Value::as_str) {
            if !valid_cidr(cidr) {
                errs.push(FieldError::invalid(
                    "spec.podCIDR",
                    &json!(cidr),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
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
            "spec.unschedulable" => Some(util::flag(&obj["spec"], "unschedulable").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Status",
                "string",
                "",
                0,
                "Whether the node is ready, and schedulable.",
            ),
            Column::new(
                "Roles",
                "string",
                "",
                0,
                "Roles from node-role.kubernetes.io labels.",
            ),
            Column::age(),
            Column::new("Version", "string", "", 0, "The node agent's version."),
            Column::new(
                "Internal-IP",
                "string",
                "",
                1,
                "The node's first internal address.",
            ),
            Column::new(
                "External-IP",
                "string",
                "",
                1,
                "The node's first external address.",
            ),
            Column::new(
                "OS-Image",
                "string",
                "",
                1,
                "The node's operating system image.",
            ),
            Column::new(
                "Kernel-Version",
                "string",
                "",
                1,
                "The node's kernel version.",
            ),
            Column::new(
                "Container-Runtime",
                "string",
                "",
                1,
                "The node's container runtime and version.",
            ),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let status = &obj["status"];
        let info = &status["nodeInfo"];
        let or_unknown = |v: &str| {
            if v.is_empty() {
                "<unknown>".to_string()
            } else {
                v.to_string()
            }
        };
        let address = |ty: &str| {
            arr(status, "addresses")
                .iter()
                .find(|a| s(a, "type") == ty)
                .map(|a| s(a, "address").to_string())
                .unwrap_or_else(|| "<none>".into())
        };
        vec![
            json!(crate::meta::name(obj)),
            json!(node_status(obj)),
            json!(roles(obj)),
            json!(crate::table::age(obj, now)),
            json!(s(info, "kubeletVersion")),
            json!(address("InternalIP")),
            json!(address("ExternalIP")),
            json!(or_unknown(s(info, "osImage"))),
            json!(or_unknown(s(info, "kernelVersion"))),
            json!(or_unknown(s(info, "containerRuntimeVersion"))),
        ]
    }
}

fn valid_cidr(cidr: &str) -> bool {
    let Some((ip, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    bits.parse::<u8>().is_ok_and(|b| b <= max)
}

/// The STATUS cell: `Ready`/`NotReady`/`Unknown`, plus `,SchedulingDisabled` when cordoned.
pub fn node_status(obj: &Value) -> String {
    let ready = arr(&obj["status"], "conditions")
        .iter()
        .find(|c| s(c, "type") == "Ready");
    let mut parts = vec![match ready {
        Some(c) if s(c, "status") == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if util::flag(&obj["spec"], "unschedulable") {
        parts.push("SchedulingDisabled");
    }
    parts.join(",")
}

/// The ROLES cell: sorted roles from `node-role.kubernetes.io/<role>` and `kubernetes.io/role`.
pub fn roles(obj: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in crate::meta::labels(obj) {
        if let Some(role) = k.strip_prefix(ROLE_PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == ROLE_LABEL && !v.is_empty() {
            roles.insert(v);
        }
    }
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_roles_columns() {
        let node = |conds: Value, unsched: bool, labels: Value| {
            json!({"metadata": {"name": "n1", "labels": labels},
                   "spec": {"unschedulable": unsched}, "status": {"conditions": conds}})
        };
        let ready = json!([{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}]);
        assert_eq!(node_status(&node(ready.clone(), false, json!({}))), "Ready");
        assert_eq!(
            node_status(&node(ready, true, json!({}))),
            "Ready,SchedulingDisabled"
        );
        assert_eq!(
            node_status(&node(
                json!([{"type": "Ready", "status": "Unknown"}]),
                false,
                json!({})
            )),
            "NotReady"
        );
        assert_eq!(node_status(&node(json!([]), false, json!({}))), "Unknown");
        let labels = json!({"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "",
                            "kubernetes.io/role": "edge", "node-role.kubernetes.io/": "x"});
        assert_eq!(
            roles(&node(json!([]), false, labels)),
            "control-plane,edge,master"
        );
        assert_eq!(roles(&node(json!([]), false, json!({}))), "<none>");
    }

    #[test]
    fn wide_row() {
        let n = json!({"metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "192.168.1.10"}],
                       "nodeInfo": {"kubeletVersion": "v1.33.0-navarch", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.24"},
                       "conditions": [{"type": "Ready", "status": "True"}]}});
        let row = NodeOps.table_row(&n, jiff::Timestamp::now());
        assert_eq!(
            row,
            vec![
                json!("n1"),
                json!("Ready"),
                json!("<none>"),
                json!("<unknown>"),
                json!("v1.33.0-navarch"),
                json!("192.168.1.10"),
                json!("<none>"),
                json!("Debian GNU/Linux 12 (bookworm)"),
                json!("6.1.0"),
                json!("containerd://1.7.24")
            ]
        );
        assert_eq!(row.len(), NodeOps.table_columns().len());
    }

    #[test]
    fn allocatable_defaults_to_capacity_and_taints_are_checked() {
        let mut n = json!({"metadata": {"name": "n1"}, "status": {"capacity": {"cpu": "4", "pods": "110"}},
                           "spec": {"taints": [{"key": "dedicated", "effect": "Sometimes"}]}});
        NodeOps.apply_defaults(&mut n);
        assert_eq!(
            n["status"]["allocatable"],
            json!({"cpu": "4", "pods": "110"})
        );
        let errs = NodeOps.validate(&n, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.taints[0].effect");
        assert_eq!(
            NodeOps.field(&n, "spec.unschedulable").as_deref(),
            Some("false")
        );
    }
}
