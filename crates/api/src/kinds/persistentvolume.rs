//! PersistentVolumes: defaults (Pending, Retain, Filesystem), validation of capacity, access
//! modes and the one volume source (immutable after creation), and the `kubectl get pv`
//! columns. The access-mode and storage-class helpers are shared with claims.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util::{self, arr, default, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` PersistentVolume.
pub struct PersistentVolumeOps;

pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const RECLAIM: &[&str] = &["Delete", "Recycle", "Retain"];
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";

/// Fields of a PV spec that are not the volume source.
const NOT_SOURCE: &[&str] = &[
    "accessModes",
    "capacity",
    "claimRef",
    "mountOptions",
    "nodeAffinity",
    "persistentVolumeReclaimPolicy",
    "storageClassName",
    "volumeMode",
    "volumeAttributesClassName",
];

/// `RWO,ROX,RWX,RWOP` for the access modes listed at `v[key]`.
pub fn access_modes_string(v: &Value, key: &str) -> String {
    let modes: Vec<&str> = arr(v, key).iter().filter_map(Value::as_str).collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| modes.contains(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a volume or claim: the beta annotation wins over the field.
pub fn storage_class(obj: &Value) -> String {
    crate::meta::annotations(obj)
        .get(BETA_CLASS_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| s(&obj["spec"], "storageClassName").to_string())
}

/// Validate `accessModes` at `path`.
pub fn validate_access_modes(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(format!("{path}.accessModes"), ""));
    }
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                format!("{path}.accessModes"),
                &json!(m),
                ACCESS_MODES,
            ));
        }
    }
    if modes.len() > 1 && modes.iter().any(|m| m == "ReadWriteOncePod") {
        errs.push(FieldError::forbidden(
            format!("{path}.accessModes"),
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
}

/// Validate `volumeMode` at `path`.
pub fn validate_volume_mode(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = spec.get("volumeMode").and_then(Value::as_str) {
        if m != "Block" && m != "Filesystem" {
            errs.push(FieldError::not_supported(
                format!("{path}.volumeMode"),
                &json!(m),
                &["Block", "Filesystem"],
            ));
        }
    }
}

fn source(spec: &Value) -> Value {
    let mut out = spec.clone();
    if let Some(m) = out.as_object_mut() {
        m.retain(|k, _| !NOT_SOURCE.contains(&k.as_str()));
    }
    out
}

impl KindOps for PersistentVolumeOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::PersistentVolume>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_str(util::obj(obj, "status"), "phase", "Pending");
        let spec = util::obj(obj, "spec");
        default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
        default(spec, "volumeMode", json!("Filesystem"));
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        let spec = &obj["spec"];
        validate_access_modes(spec, "spec", &mut errs);
        let cap = spec.get("capacity").and_then(Value::as_object);
        match cap {
            None => errs.push(FieldError::required("spec.capacity", "")),
            Some(c) if !c.contains_key("storage") || c.len() > 1 => {
                errs.push(FieldError::not_supported(
                    "spec.capacity",
                    &spec["capacity"],
                    &["storage"],
                ));
            }
            Some(c) => {
                let q = c["storage"].as_str().unwrap_or("");
                if util::parse_quantity(q).is_none_or(|v| v <= 0.0) {
                    errs.push(FieldError::invalid(
                        "spec.capacity[storage]",
                        &json!(q),
                        "must be greater than zero",
                    ));
                }
            }
        }
        let policy = s(spec, "persistentVolumeReclaimPolicy");
        if !RECLAIM.contains(&policy) {
            errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                &json!(policy),
                RECLAIM,
            ));
        }
        validate_volume_mode(spec, "spec", &mut errs);
        let sources = source(spec).as_object().map(|m| m.len()).unwrap_or(0);
        if sources == 0 {
            errs.push(FieldError::required("spec", "must specify a volume type"));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                "spec",
                "may not specify more than 1 volume type",
            ));
        }
        if spec.get("local").is_some() && spec.get("nodeAffinity").is_none() {
            errs.push(FieldError::required(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
        if let Some(old) = old {
            if source(spec) != source(&old["spec"]) {
                errs.push(FieldError::forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                ));
            }
            if spec.get("volumeMode") != old["spec"].get("volumeMode") {
                errs.push(FieldError::invalid(
                    "spec.volumeMode",
                    spec.get("volumeMode").unwrap_or(&Value::Null),
                    "field is immutable",
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
            Column::new("Capacity", "string", "", 0, "The volume's size."),
            Column::new(
                "Access Modes",
                "string",
                "",
                0,
                "How the volume can be mounted.",
            ),
            Column::new(
                "Reclaim Policy",
                "string",
                "",
                0,
                "What happens to the volume when its claim goes.",
            ),
            Column::new("Status", "string", "", 0, "The volume's phase."),
            Column::new("Claim", "string", "", 0, "The claim bound to the volume."),
            Column::new(
                "StorageClass",
                "string",
                "",
                0,
                "The volume's storage class.",
            ),
            Column::new(
                "VolumeAttributesClass",
                "string",
                "",
                0,
                "The volume's attributes class.",
            ),
            Column::new("Reason", "string", "", 0, "Why the volume is in its phase."),
            Column::age(),
            Column::new("VolumeMode", "string", "", 1, "Filesystem or Block."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let claim = spec
            .get("claimRef")
            .filter(|c| c.is_object())
            .map(|c| format!("{}/{}", s(c, "namespace"), s(c, "name")))
            .unwrap_or_default();
        let phase = if crate::meta::deletion_timestamp(obj).is_some() {
            "Terminating"
        } else {
            s(&obj["status"], "phase")
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
            json!(s(&spec["capacity"], "storage")),
            json!(access_modes_string(spec, "accessModes")),
            json!(s(spec, "persistentVolumeReclaimPolicy")),
            json!(phase),
            json!(claim),
            json!(storage_class(obj)),
            json!(unset(s(spec, "volumeAttributesClassName"))),
            json!(s(&obj["status"], "reason")),
            json!(crate::table::age(obj, now)),
            json!(unset(s(spec, "volumeMode"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv() -> Value {
        let mut pv = json!({"metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                     "hostPath": {"path": "/data"}, "storageClassName": "local",
                     "claimRef": {"namespace": "default", "name": "data"}}});
        PersistentVolumeOps.apply_defaults(&mut pv);
        pv
    }

    #[test]
    fn defaults_and_row() {
        let pv = pv();
        assert_eq!(pv["status"]["phase"], "Pending");
        assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
        assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
        assert!(PersistentVolumeOps.validate(&pv, None).is_empty());
        let row = PersistentVolumeOps.table_row(&pv, jiff::Timestamp::now());
        assert_eq!(
            row,
            vec![
                json!("pv1"),
                json!("10Gi"),
                json!("RWO,ROX"),
                json!("Retain"),
                json!("Pending"),
                json!("default/data"),
                json!("local"),
                json!("<unset>"),
                json!(""),
                json!("<unknown>"),
                json!("Filesystem")
            ]
        );
    }

    #[test]
    fn validation() {
        let mut bad = json!({"metadata": {"name": "pv1"}, "spec": {}});
        PersistentVolumeOps.apply_defaults(&mut bad);
        let fields: Vec<String> = PersistentVolumeOps
            .validate(&bad, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["spec.accessModes", "spec.capacity", "spec"]);
        let old = pv();
        let mut new = old.clone();
        new["spec"]["hostPath"]["path"] = json!("/other");
        assert_eq!(
            PersistentVolumeOps.validate(&new, Some(&old))[0].field,
            "spec.persistentvolumesource"
        );
    }
}
