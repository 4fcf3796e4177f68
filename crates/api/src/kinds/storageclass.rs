//! StorageClasses: Delete and Immediate binding by default, an immutable provisioner and
//! parameters, and the `kubectl get storageclasses` columns (the default class is marked).

use k8s_openapi::api::storage::v1 as storage;
use serde_json::{json, Value};

use super::util::{default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `storage.k8s.io/v1` StorageClass.
pub struct StorageClassOps;

/// Whether a storage class is annotated as the cluster default.
pub fn is_default_class(obj: &Value) -> bool {
    let ann = crate::meta::annotations(obj);
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| ann.get(*k).is_some_and(|v| v == "true"))
}

impl KindOps for StorageClassOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<storage::StorageClass>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_str(obj, "reclaimPolicy", "Delete");
        default_str(obj, "volumeBindingMode", "Immediate");
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        let provisioner = s(obj, "provisioner");
        if provisioner.is_empty() {
            errs.push(FieldError::required("provisioner", ""));
        } else if !validation::is_qualified_name(provisioner) {
            errs.push(FieldError::invalid(
                "provisioner",
                &json!(provisioner),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
        let policy = s(obj, "reclaimPolicy");
        if !["Delete", "Retain"].contains(&policy) {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                &json!(policy),
                &["Delete", "Retain"],
            ));
        }
        let mode = s(obj, "volumeBindingMode");
        if !["Immediate", "WaitForFirstConsumer"].contains(&mode) {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                &json!(mode),
                &["Immediate", "WaitForFirstConsumer"],
            ));
        }
        if let Some(old) = old {
            for key in [
                "parameters",
                "provisioner",
                "reclaimPolicy",
                "volumeBindingMode",
            ] {
                if obj.get(key) != old.get(key) {
                    errs.push(FieldError::forbidden(
                        key,
                        &format!("updates to {key} are forbidden."),
                    ));
                }
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Provisioner",
                "string",
                "",
                0,
                "Who provisions volumes of this class.",
            ),
            Column::new(
                "ReclaimPolicy",
                "string",
                "",
                0,
                "What happens to released volumes.",
            ),
            Column::new(
                "VolumeBindingMode",
                "string",
                "",
                0,
                "When claims are bound.",
            ),
            Column::new(
                "AllowVolumeExpansion",
                "string",
                "",
                0,
                "Whether claims may grow.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let mut name = crate::meta::name(obj).to_string();
        if is_default_class(obj) {
            name.push_str(" (default)");
        }
        let or = |v: &str, d: &str| {
            if v.is_empty() {
                d.to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            json!(name),
            json!(s(obj, "provisioner")),
            json!(or(s(obj, "reclaimPolicy"), "Delete")),
            json!(or(s(obj, "volumeBindingMode"), "Immediate")),
            json!(obj
                .get("allowVolumeExpansion")
                .and_then(Value::as_bool)
                .unwrap_or(false)),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_class_defaults_row_and_immutability() {
        let mut sc = json!({"metadata": {"name": "local-path",
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "navarch.io/local-path"});
        StorageClassOps.apply_defaults(&mut sc);
        assert_eq!(sc["reclaimPolicy"], "Delete");
        assert_eq!(sc["volumeBindingMode"], "Immediate");
        assert!(StorageClassOps.validate(&sc, None).is_empty());
        let row = StorageClassOps.table_row(&sc, jiff::Timestamp::now());
        assert_eq!(
            &row[..5],
            &[
                json!("local-path (default)"),
                json!("navarch.io/local-path"),
                json!("Delete"),
                json!("Immediate"),
                json!(false)
            ]
        );
        let mut changed = sc.clone();
        changed["provisioner"] = json!("other.io/x");
        assert_eq!(
            StorageClassOps.validate(&changed, Some(&sc))[0].message,
            "provisioner: Forbidden: updates to provisioner are forbidden."
        );
    }
}
