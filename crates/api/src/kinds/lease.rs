//! Leases: positive durations; `kubectl get leases` shows the holder.

use k8s_openapi::api::coordination::v1 as coordination;
use serde_json::{json, Value};

use super::util::s;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `coordination.k8s.io/v1` Lease.
pub struct LeaseOps;

impl KindOps for LeaseOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<coordination::Lease>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        if let Some(d) = spec.get("leaseDurationSeconds").and_then(Value::as_i64) {
            if d <= 0 {
                errs.push(FieldError::invalid(
                    "spec.leaseDurationSeconds",
                    &json!(d),
                    "must be greater than 0",
                ));
            }
        }
        if let Some(t) = spec.get("leaseTransitions").and_then(Value::as_i64) {
            if t < 0 {
                errs.push(FieldError::invalid(
                    "spec.leaseTransitions",
                    &json!(t),
                    "must be greater than or equal to 0",
                ));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Holder", "string", "", 0, "Who holds the lease."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(s(&obj["spec"], "holderIdentity")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_column_and_duration_check() {
        let mut l = json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
                           "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}});
        assert_eq!(
            LeaseOps.table_row(&l, jiff::Timestamp::now())[1],
            json!("node-1")
        );
        assert!(LeaseOps.validate(&l, None).is_empty());
        l["spec"]["leaseDurationSeconds"] = json!(0);
        assert_eq!(
            LeaseOps.validate(&l, None)[0].field,
            "spec.leaseDurationSeconds"
        );
    }
}
