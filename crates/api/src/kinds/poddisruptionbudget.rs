//! PodDisruptionBudgets: either a minimum available or a maximum unavailable, a valid
//! selector, and the `kubectl get pdb` columns.

use k8s_openapi::api::policy::v1 as policy;
use serde_json::{json, Value};

use super::util;
use super::workload::validate_int_or_percent;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `policy/v1` PodDisruptionBudget.
pub struct PodDisruptionBudgetOps;

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

impl KindOps for PodDisruptionBudgetOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<policy::PodDisruptionBudget>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        let min = spec.get("minAvailable");
        let max = spec.get("maxUnavailable");
        if min.is_some() && max.is_some() {
            errs.push(FieldError::invalid(
                "spec",
                spec,
                "minAvailable and maxUnavailable cannot be both set",
            ));
        }
        validate_int_or_percent(min, "spec.minAvailable", &mut errs);
        validate_int_or_percent(max, "spec.maxUnavailable", &mut errs);
        if let Some(sel) = spec.get("selector") {
            util::validate_label_selector(sel, "spec.selector", &mut errs);
        }
        if let Some(p) = spec
            .get("unhealthyPodEvictionPolicy")
            .and_then(Value::as_str)
        {
            if p != "IfHealthyBudget" && p != "AlwaysAllow" {
                errs.push(FieldError::not_supported(
                    "spec.unhealthyPodEvictionPolicy",
                    &json!(p),
                    &["AlwaysAllow", "IfHealthyBudget"],
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
                "Min Available",
                "string",
                "",
                0,
                "Pods that must stay available.",
            ),
            Column::new(
                "Max Unavailable",
                "string",
                "",
                0,
                "Pods that may be unavailable.",
            ),
            Column::new(
                "Allowed Disruptions",
                "integer",
                "",
                0,
                "Pods that may be evicted now.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        vec![
            json!(crate::meta::name(obj)),
            json!(int_or_string(spec.get("minAvailable"))),
            json!(int_or_string(spec.get("maxUnavailable"))),
            json!(util::int(&obj["status"], "disruptionsAllowed")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bound_only_and_row() {
        let mut pdb = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}},
            "status": {"disruptionsAllowed": 1}});
        assert!(PodDisruptionBudgetOps.validate(&pdb, None).is_empty());
        assert_eq!(
            &PodDisruptionBudgetOps.table_row(&pdb, jiff::Timestamp::now())[1..4],
            &[json!("50%"), json!("N/A"), json!(1)]
        );
        pdb["spec"]["maxUnavailable"] = json!(1);
        assert_eq!(PodDisruptionBudgetOps.validate(&pdb, None)[0].field, "spec");
    }
}
