//! PriorityClasses: preemption by default, the reserved `system-` names and the ceiling on
//! user-defined values, an immutable value, and the `kubectl get priorityclasses` columns.

use k8s_openapi::api::scheduling::v1 as scheduling;
use serde_json::{json, Value};

use super::util::{self, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `scheduling.k8s.io/v1` PriorityClass.
pub struct PriorityClassOps;

/// The highest priority a user-defined class may have.
pub const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

/// The built-in system classes: (name, value).
pub const SYSTEM_CLASSES: &[(&str, i64)] = &[
    ("system-cluster-critical", 2_000_000_000),
    ("system-node-critical", 2_000_001_000),
];

impl KindOps for PriorityClassOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<scheduling::PriorityClass>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_str(obj, "preemptionPolicy", "PreemptLowerPriority");
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        let name = crate::meta::name(obj);
        let value = util::int(obj, "value");
        if name.starts_with("system-") {
            let known = SYSTEM_CLASSES.iter().find(|(n, _)| *n == name);
            let err = match known {
                None => Some(format!("{name} is not a known system priority class")),
                Some((_, v)) if *v != value => {
                    Some(format!("value of {name} PriorityClass must be {v}"))
                }
                Some(_) if util::flag(obj, "globalDefault") => Some(format!(
                    "globalDefault of {name} PriorityClass must be false"
                )),
                Some(_) => None,
            };
            if let Some(err) = err {
                errs.push(FieldError::forbidden(
                    "metadata.name",
                    &format!("priority class names with 'system-' prefix are reserved for system use only. error: {err}"),
                ));
            }
        } else if value > HIGHEST_USER_PRIORITY {
            errs.push(FieldError::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            ));
        }
        let policy = s(obj, "preemptionPolicy");
        if !policy.is_empty() && policy != "PreemptLowerPriority" && policy != "Never" {
            errs.push(FieldError::not_supported(
                "preemptionPolicy",
                &json!(policy),
                &["Never", "PreemptLowerPriority"],
            ));
        }
        if let Some(old) = old {
            if util::int(old, "value") != value {
                errs.push(FieldError::forbidden(
                    "value",
                    "may not be changed in an update.",
                ));
            }
            if s(old, "preemptionPolicy") != policy {
                errs.push(FieldError::invalid(
                    "preemptionPolicy",
                    &json!(policy),
                    "field is immutable",
                ));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Value",
                "integer",
                "",
                0,
                "The priority of pods using the class.",
            ),
            Column::new(
                "Global-Default",
                "boolean",
                "",
                0,
                "Whether pods without a class get this one.",
            ),
            Column::age(),
            Column::new(
                "PreemptionPolicy",
                "string",
                "",
                0,
                "Whether pods of the class preempt others.",
            ),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(util::int(obj, "value")),
            json!(util::flag(obj, "globalDefault")),
            json!(crate::table::age(obj, now)),
            json!(s(obj, "preemptionPolicy")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_names_and_immutability() {
        let mut pc = json!({"metadata": {"name": "high"}, "value": 1000});
        PriorityClassOps.apply_defaults(&mut pc);
        assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
        assert!(PriorityClassOps.validate(&pc, None).is_empty());
        assert_eq!(
            PriorityClassOps.table_row(&pc, jiff::Timestamp::now()),
            vec![
                json!("high"),
                json!(1000),
                json!(false),
                json!("<unknown>"),
                json!("PreemptLowerPriority")
            ]
        );
        let mut changed = pc.clone();
        changed["value"] = json!(2000);
        assert_eq!(
            PriorityClassOps.validate(&changed, Some(&pc))[0].message,
            "value: Forbidden: may not be changed in an update."
        );
        let mut huge = pc.clone();
        huge["value"] = json!(HIGHEST_USER_PRIORITY + 1);
        assert_eq!(PriorityClassOps.validate(&huge, None)[0].field, "value");
        let mut system =
            json!({"metadata": {"name": "system-node-critical"}, "value": 2_000_001_000});
        PriorityClassOps.apply_defaults(&mut system);
        assert!(PriorityClassOps.validate(&system, None).is_empty());
        system["metadata"]["name"] = json!("system-mine");
        assert_eq!(
            PriorityClassOps.validate(&system, None)[0].field,
            "metadata.name"
        );
    }
}
