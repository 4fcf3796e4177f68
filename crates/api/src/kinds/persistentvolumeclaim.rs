//! PersistentVolumeClaims: Filesystem mode and the Pending phase by default, a storage request
//! and access modes required, a spec that only grows (requests) or gets bound (volumeName)
//! after creation, and the `kubectl get pvc` columns.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::persistentvolume::{
    access_modes_string, storage_class, validate_access_modes, validate_volume_mode,
};
use super::util::{self, default, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` PersistentVolumeClaim.
pub struct PersistentVolumeClaimOps;

impl KindOps for PersistentVolumeClaimOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::PersistentVolumeClaim>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default(util::obj(obj, "spec"), "volumeMode", json!("Filesystem"));
        default_str(util::obj(obj, "status"), "phase", "Pending");
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        validate_access_modes(spec, "spec", &mut errs);
        validate_volume_mode(spec, "spec", &mut errs);
        match spec["resources"]["requests"]
            .get("storage")
            .and_then(Value::as_str)
        {
            None => errs.push(FieldError::required("spec.resources[storage]", "")),
            Some(q) => {
                if util::parse_quantity(q).is_none_or(|v| v <= 0.0) {
                    errs.push(FieldError::invalid(
                        "spec.resources[storage]",
                        &json!(q),
                        "must be greater than zero",
                    ));
                }
            }
        }
        if let Some(old) = old {
            let bindable = s(&old["spec"], "volumeName").is_empty();
            let strip = |spec: &Value| {
                let mut spec = spec.clone();
                if let Some(m) = spec.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    if bindable {
                        m.remove("volumeName");
                    }
                }
                if let Some(r) = spec["resources"].as_object_mut() {
                    r.remove("requests");
                }
                spec
            };
            if strip(spec) != strip(&old["spec"]) {
                errs.push(FieldError::forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
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
            Column::new("Status", "string", "", 0, "The claim's phase."),
            Column::new("Volume", "string", "", 0, "The volume bound to the claim."),
            Column::new("Capacity", "string", "", 0, "The bound volume's size."),
            Column::new(
                "Access Modes",
                "string",
                "",
                0,
                "How the bound volume can be mounted.",
            ),
            Column::new(
                "StorageClass",
                "string",
                "",
                0,
                "The claim's storage class.",
            ),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "",
                0,
                "The claim's attributes class.",
            ),
            Column::age(),
            Column::new("VolumeMode", "string", "", 1, "Filesystem or Block."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let phase = if crate::meta::deletion_timestamp(obj).is_some() {
            "Terminating"
        } else {
            s(status, "phase")
        };
        let volume = s(spec, "volumeName");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                s(&status["capacity"], "storage").to_string(),
                access_modes_string(status, "accessModes"),
            )
        };
        let unset = |v: &str| {
            if v.is_empty() {
                "<unset>".to_string()
            } else {
                v.to_string()
            }
        };
        vec![
            json!(crate::meta::name(obj)),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(storage_class(obj)),
            json!(unset(s(spec, "volumeAttributesClassName"))),
            json!(crate::table::age(obj, now)),
            json!(unset(s(spec, "volumeMode"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvc() -> Value {
        let mut pvc = json!({"metadata": {"name": "data", "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        PersistentVolumeClaimOps.apply_defaults(&mut pvc);
        pvc
    }

    #[test]
    fn defaults_validation_and_binding() {
        let old = pvc();
        assert_eq!(old["spec"]["volumeMode"], "Filesystem");
        assert_eq!(old["status"]["phase"], "Pending");
        assert!(PersistentVolumeClaimOps.validate(&old, None).is_empty());
        let row = PersistentVolumeClaimOps.table_row(&old, jiff::Timestamp::now());
        assert_eq!(
            &row[1..5],
            &[json!("Pending"), json!(""), json!(""), json!("")]
        );

        let mut bound = old.clone();
        bound["spec"]["volumeName"] = json!("pv1");
        bound["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        assert!(PersistentVolumeClaimOps
            .validate(&bound, Some(&old))
            .is_empty());
        bound["status"] = json!({"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"]});
        let row = PersistentVolumeClaimOps.table_row(&bound, jiff::Timestamp::now());
        assert_eq!(
            &row[1..5],
            &[json!("Bound"), json!("pv1"), json!("2Gi"), json!("RWO")]
        );

        let mut changed = bound.clone();
        changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        assert_eq!(
            PersistentVolumeClaimOps.validate(&changed, Some(&bound))[0].field,
            "spec"
        );
        let mut no_request = pvc();
        no_request["spec"]["resources"] = json!({});
        assert_eq!(
            PersistentVolumeClaimOps.validate(&no_request, None)[0].message,
            "spec.resources[storage]: Required value"
        );
    }
}
