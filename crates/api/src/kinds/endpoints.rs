//! Endpoints and EndpointSlices: TCP ports by default (slices also get an empty port name,
//! which `kubectl describe service` relies on), address and port checks, and their tables.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as discovery;
use serde_json::{json, Value};

use super::podspec::PORT_RANGE_MSG;
use super::util::{self, arr, default, default_str, each_mut, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Endpoints.
pub struct EndpointsOps;

/// Behaviour of `discovery.k8s.io/v1` EndpointSlice.
pub struct EndpointSliceOps;

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate_port(p: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(name) = p
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        if !validation::is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{path}.name"),
                &json!(name),
                validation::DNS1123_LABEL_MSG,
            ));
        }
    }
    if let Some(port) = p.get("port").and_then(Value::as_i64) {
        if !(1..=65535).contains(&port) {
            errs.push(FieldError::invalid(
                format!("{path}.port"),
                &json!(port),
                PORT_RANGE_MSG,
            ));
        }
    }
    let proto = s(p, "protocol");
    if !PROTOCOLS.contains(&proto) {
        errs.push(FieldError::not_supported(
            format!("{path}.protocol"),
            &json!(proto),
            PROTOCOLS,
        ));
    }
}

impl KindOps for EndpointsOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Endpoints>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        each_mut(obj, "subsets", |ss| {
            each_mut(ss, "ports", |p| default_str(p, "protocol", "TCP"))
        });
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        for (i, ss) in arr(obj, "subsets").iter().enumerate() {
            for key in ["addresses", "notReadyAddresses"] {
                for (j, a) in arr(ss, key).iter().enumerate() {
                    let ip = s(a, "ip");
                    if ip.parse::<std::net::IpAddr>().is_err() {
                        errs.push(FieldError::invalid(
                            format!("subsets[{i}].{key}[{j}].ip"),
                            &json!(ip),
                            "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                        ));
                    }
                }
            }
            for (j, p) in arr(ss, "ports").iter().enumerate() {
                validate_port(p, &format!("subsets[{i}].ports[{j}]"), &mut errs);
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Endpoints", "string", "", 0, "Ready addresses and ports."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(format_endpoints(obj)),
            json!(crate::table::age(obj, now)),
        ]
    }
}

/// `ip:port` pairs of ready addresses, at most three, then `+ N more...`; `<none>` if empty.
pub fn format_endpoints(obj: &Value) -> String {
    let subsets = arr(obj, "subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addrs = arr(ss, "addresses");
        let ports = arr(ss, "ports");
        if ports.is_empty() {
            count += addrs.len();
            for a in addrs {
                if list.len() < MAX {
                    list.push(s(a, "ip").to_string());
                }
            }
            continue;
        }
        for p in ports {
            count += addrs.len();
            for a in addrs {
                if list.len() < MAX {
                    let ip = s(a, "ip");
                    let port = util::int(p, "port");
                    list.push(if ip.contains(':') {
                        format!("[{ip}]:{port}")
                    } else {
                        format!("{ip}:{port}")
                    });
                }
            }
        }
    }
    let joined = list.join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else {
        joined
    }
}

impl KindOps for EndpointSliceOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<discovery::EndpointSlice>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        each_mut(obj, "ports", |p| {
            default(p, "name", json!(""));
            default(p, "protocol", json!("TCP"));
        });
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let at = s(obj, "addressType");
        if !["IPv4", "IPv6", "FQDN"].contains(&at) {
            errs.push(FieldError::not_supported(
                "addressType",
                &json!(at),
                &["FQDN", "IPv4", "IPv6"],
            ));
        }
        let endpoints = arr(obj, "endpoints");
        if endpoints.len() > 1000 {
            errs.push(FieldError {
                reason: validation::Reason::FieldValueTooMany,
                field: "endpoints".into(),
                message: format!(
                    "endpoints: Too many: {}: must have at most 1000 items",
                    endpoints.len()
                ),
            });
        }
        for (i, e) in endpoints.iter().enumerate() {
            let addrs = arr(e, "addresses");
            if addrs.is_empty() || addrs.len() > 100 {
                errs.push(FieldError::required(
                    format!("endpoints[{i}].addresses"),
                    "must contain at least 1 address but no more than 100 addresses",
                ));
            }
            for (j, a) in addrs.iter().enumerate() {
                let a = a.as_str().unwrap_or("");
                let ok = match at {
                    "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                    "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                    _ => validation::is_dns1123_subdomain(a),
                };
                if !ok {
                    errs.push(FieldError::invalid(
                        format!("endpoints[{i}].addresses[{j}]"),
                        &json!(a),
                        &format!("must be a valid {at} address"),
                    ));
                }
            }
        }
        for (i, p) in arr(obj, "ports").iter().enumerate() {
            validate_port(p, &format!("ports[{i}]"), &mut errs);
        }
        if let Some(old) = old {
            if s(old, "addressType") != at {
                errs.push(FieldError::invalid(
                    "addressType",
                    &json!(at),
                    "field is immutable",
                ));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("AddressType", "string", "", 0, "The type of the addresses."),
            Column::new("Ports", "string", "", 0, "The slice's ports."),
            Column::new("Endpoints", "string", "", 0, "The slice's addresses."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        const MAX: usize = 3;
        let with_more = |list: Vec<String>, count: usize| {
            let joined = list.join(",");
            if count > MAX {
                format!("{joined} + {} more...", count - MAX)
            } else if joined.is_empty() {
                "<unset>".into()
            } else {
                joined
            }
        };
        let ports = arr(obj, "ports");
        let port_list: Vec<String> = ports
            .iter()
            .take(MAX)
            .map(|p| match p.get("port").and_then(Value::as_i64) {
                Some(n) => n.to_string(),
                None => p
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| "*".into()),
            })
            .collect();
        let addrs: Vec<String> = arr(obj, "endpoints")
            .iter()
            .flat_map(|e| arr(e, "addresses").iter())
            .filter_map(|a| a.as_str().map(str::to_string))
            .collect();
        let addr_count = addrs.len();
        vec![
            json!(crate::meta::name(obj)),
            json!(s(obj, "addressType")),
            json!(with_more(port_list, ports.len())),
            json!(with_more(addrs.into_iter().take(MAX).collect(), addr_count)),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_column() {
        let ep = json!({"subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"ip": "10.42.0.6"}],
                                     "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            format_endpoints(&ep),
            "10.42.0.5:80,10.42.0.6:80,10.42.0.5:443 + 1 more..."
        );
        assert_eq!(format_endpoints(&json!({})), "<none>");
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(format_endpoints(&v6), "[fd00::1]:80");
    }

    #[test]
    fn endpoint_slices_default_port_names_and_print() {
        let mut es = json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4",
            "ports": [{"port": 80}], "endpoints": [{"addresses": ["10.42.0.5"]}]});
        EndpointSliceOps.apply_defaults(&mut es);
        assert_eq!(
            es["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        assert!(
            EndpointSliceOps.validate(&es, None).is_empty(),
            "{:?}",
            EndpointSliceOps.validate(&es, None)
        );
        let row = EndpointSliceOps.table_row(&es, jiff::Timestamp::now());
        assert_eq!(
            &row[1..4],
            &[json!("IPv4"), json!("80"), json!("10.42.0.5")]
        );
        let empty = json!({"metadata": {"name": "x"}, "addressType": "IPv4"});
        assert_eq!(
            &EndpointSliceOps.table_row(&empty, jiff::Timestamp::now())[2..4],
            &[json!("<unset>"), json!("<unset>")]
        );
        let mut bad = es.clone();
        bad["endpoints"][0]["addresses"][0] = json!("not-an-ip");
        assert_eq!(
            EndpointSliceOps.validate(&bad, None)[0].field,
            "endpoints[0].addresses[0]"
        );
    }

    #[test]
    fn endpoints_defaults_and_validation() {
        let mut ep = json!({"metadata": {"name": "web", "namespace": "default"},
            "subsets": [{"addresses": [{"ip": "10.42.0.5"}], "ports": [{"port": 80}]}]});
        EndpointsOps.apply_defaults(&mut ep);
        assert_eq!(ep["subsets"][0]["ports"][0]["protocol"], "TCP");
        assert!(EndpointsOps.validate(&ep, None).is_empty());
        ep["subsets"][0]["addresses"][0]["ip"] = json!("nope");
        assert_eq!(
            EndpointsOps.validate(&ep, None)[0].field,
            "subsets[0].addresses[0].ip"
        );
    }
}
