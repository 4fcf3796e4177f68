//! NetworkPolicies: TCP ports and policy types inferred from the rules by default, selector,
//! port and CIDR validation, and the `kubectl get networkpolicies` columns.

use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, arr, default_str, each_mut, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `networking.k8s.io/v1` NetworkPolicy.
pub struct NetworkPolicyOps;

fn valid_cidr(cidr: &str) -> bool {
    let Some((ip, bits)) = cidr.split_once('/') else {
        return false;
    };
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return false;
    };
    bits.parse::<u8>()
        .is_ok_and(|b| b <= if ip.is_ipv4() { 32 } else { 128 })
}

impl KindOps for NetworkPolicyOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<networking::NetworkPolicy>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        for dir in ["ingress", "egress"] {
            each_mut(spec, dir, |rule| {
                each_mut(rule, "ports", |p| default_str(p, "protocol", "TCP"))
            });
        }
        if arr(spec, "policyTypes").is_empty() {
            let mut types = vec![json!("Ingress")];
            if !arr(spec, "egress").is_empty() {
                types.push(json!("Egress"));
            }
            spec["policyTypes"] = Value::Array(types);
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        util::validate_label_selector(&spec["podSelector"], "spec.podSelector", &mut errs);
        let types = arr(spec, "policyTypes");
        for (i, t) in types.iter().enumerate() {
            let t = t.as_str().unwrap_or("");
            if t != "Ingress" && t != "Egress" {
                errs.push(FieldError::not_supported(
                    format!("spec.policyTypes[{i}]"),
                    &json!(t),
                    &["Ingress", "Egress"],
                ));
            }
        }
        for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
            for (i, rule) in arr(spec, dir).iter().enumerate() {
                let rp = format!("spec.{dir}[{i}]");
                for (j, p) in arr(rule, "ports").iter().enumerate() {
                    let pp = format!("{rp}.ports[{j}]");
                    let proto = s(p, "protocol");
                    if !["SCTP", "TCP", "UDP"].contains(&proto) {
                        errs.push(FieldError::not_supported(
                            format!("{pp}.protocol"),
                            &json!(proto),
                            &["SCTP", "TCP", "UDP"],
                        ));
                    }
                    if let Some(port) = p.get("port") {
                        podspec::validate_port_or_name(port, &format!("{pp}.port"), &mut errs);
                    }
                    if let Some(end) = p.get("endPort").and_then(Value::as_i64) {
                        match p.get("port").and_then(Value::as_i64) {
                            None => errs.push(FieldError::required(
                                format!("{pp}.port"),
                                "when endPort is specified",
                            )),
                            Some(port) if end < port => errs.push(FieldError::invalid(
                                format!("{pp}.endPort"),
                                &json!(end),
                                "must be greater than or equal to `port`",
                            )),
                            _ => {}
                        }
                    }
                }
                for (j, peer) in arr(rule, peers).iter().enumerate() {
                    let pp = format!("{rp}.{peers}[{j}]");
                    if let Some(block) = peer.get("ipBlock") {
                        let cidr = s(block, "cidr");
                        if !valid_cidr(cidr) {
                            errs.push(FieldError::invalid(
                                format!("{pp}.ipBlock.cidr"),
                                &json!(cidr),
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                            ));
                        }
                    }
                    for key in ["podSelector", "namespaceSelector"] {
                        if let Some(sel) = peer.get(key) {
                            util::validate_label_selector(sel, &format!("{pp}.{key}"), &mut errs);
                        }
                    }
                }
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Pod-Selector",
                "string",
                "",
                0,
                "The pods the policy applies to.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(util::format_label_selector(obj["spec"].get("podSelector"))),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_types_follow_the_rules() {
        let mut np = json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"podSelector": {"matchLabels": {"app": "db"}},
                     "ingress": [{"ports": [{"port": 5432}], "from": [{"ipBlock": {"cidr": "10.42.0.0/16"}}]}],
                     "egress": [{}]}});
        NetworkPolicyOps.apply_defaults(&mut np);
        assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(np["spec"]["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert!(NetworkPolicyOps.validate(&np, None).is_empty());
        assert_eq!(
            NetworkPolicyOps.table_row(&np, jiff::Timestamp::now())[1],
            json!("app=db")
        );
        np["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] = json!("10.42.0.0");
        assert_eq!(
            NetworkPolicyOps.validate(&np, None)[0].field,
            "spec.ingress[0].from[0].ipBlock.cidr"
        );
        let mut all = json!({"metadata": {"name": "deny", "namespace": "default"}, "spec": {"podSelector": {}}});
        NetworkPolicyOps.apply_defaults(&mut all);
        assert_eq!(all["spec"]["policyTypes"], json!(["Ingress"]));
        assert_eq!(
            NetworkPolicyOps.table_row(&all, jiff::Timestamp::now())[1],
            json!("<none>")
        );
    }
}
