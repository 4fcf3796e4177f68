//! ResourceQuotas: valid quantities and scopes; `kubectl get quota` shows used/hard per
//! resource, limits separately from requests.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util::{self, arr};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` ResourceQuota.
pub struct ResourceQuotaOps;

const SCOPES: &[&str] = &[
    "BestEffort",
    "CrossNamespacePodAffinity",
    "NotBestEffort",
    "NotTerminating",
    "PriorityClass",
    "Terminating",
    "VolumeAttributesClass",
];

impl KindOps for ResourceQuotaOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::ResourceQuota>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        for (res, q) in util::string_map(&obj["spec"], "hard") {
            match util::parse_quantity(&q) {
                Some(v) if v >= 0.0 => {}
                _ => errs.push(FieldError::invalid(
                    format!("spec.hard[{res}]"),
                    &json!(q),
                    "must be greater than or equal to 0",
                )),
            }
        }
        for (i, sc) in arr(&obj["spec"], "scopes").iter().enumerate() {
            let sc = sc.as_str().unwrap_or("");
            if !SCOPES.contains(&sc) {
                errs.push(FieldError::not_supported(
                    format!("spec.scopes[{i}]"),
                    &json!(sc),
                    SCOPES,
                ));
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
                "Request",
                "string",
                "",
                0,
                "Used and hard limits of requests and counts.",
            ),
            Column::new(
                "Limit",
                "string",
                "",
                0,
                "Used and hard limits of resource limits.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let status = &obj["status"];
        let hard = util::string_map(status, "hard");
        let used = util::string_map(status, "used");
        let (mut requests, mut limits) = (Vec::new(), Vec::new());
        for (res, h) in &hard {
            let u = used.get(res).map(String::as_str).unwrap_or("0");
            let cell = format!("{res}: {u}/{h}");
            if res.split('.').next() == Some("limits") && res.contains('.') {
                limits.push(cell);
            } else {
                requests.push(cell);
            }
        }
        vec![
            json!(crate::meta::name(obj)),
            json!(requests.join(", ")),
            json!(limits.join(", ")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_and_limit_columns() {
        let rq = json!({"metadata": {"name": "q", "namespace": "default"},
            "spec": {"hard": {"pods": "10", "limits.cpu": "4"}},
            "status": {"hard": {"pods": "10", "requests.cpu": "2", "limits.cpu": "4"},
                       "used": {"pods": "3", "limits.cpu": "500m"}}});
        assert!(ResourceQuotaOps.validate(&rq, None).is_empty());
        let row = ResourceQuotaOps.table_row(&rq, jiff::Timestamp::now());
        assert_eq!(
            &row[1..3],
            &[
                json!("pods: 3/10, requests.cpu: 0/2"),
                json!("limits.cpu: 500m/4")
            ]
        );
        let bad = json!({"metadata": {"name": "q", "namespace": "default"}, "spec": {"hard": {"pods": "lots"}}});
        assert_eq!(
            ResourceQuotaOps.validate(&bad, None)[0].field,
            "spec.hard[pods]"
        );
    }
}
