//! Namespaces: the `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and the
//! Active phase by default; DNS-label names; `kubectl get namespaces` and `status.phase`.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util::{self, arr, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Namespace.
pub struct NamespaceOps;

/// The label every namespace carries with its own name.
pub const NAME_LABEL: &str = "kubernetes.io/metadata.name";

impl KindOps for NamespaceOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Namespace>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let name = crate::meta::name(obj).to_string();
        if !name.is_empty() {
            let meta = util::obj(obj, "metadata");
            util::obj(meta, "labels")[NAME_LABEL] = json!(name);
        }
        // A namespace being deleted may already have been finalized; never add it back then.
        if crate::meta::deletion_timestamp(obj).is_none() {
            let spec = util::obj(obj, "spec");
            if spec.get("finalizers").is_none() {
                spec["finalizers"] = json!(["kubernetes"]);
            }
        }
        default_str(util::obj(obj, "status"), "phase", "Active");
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, true);
        for (i, f) in arr(&obj["spec"], "finalizers").iter().enumerate() {
            let f = f.as_str().unwrap_or("");
            if !validation::is_qualified_name(f) {
                errs.push(FieldError::invalid(
                    format!("spec.finalizers[{i}]"),
                    &json!(f),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
        let phase = s(&obj["status"], "phase");
        if !phase.is_empty() && phase != "Active" && phase != "Terminating" {
            errs.push(FieldError::not_supported(
                "status.phase",
                &json!(phase),
                &["Active", "Terminating"],
            ));
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "status.phase" => Some(s(&obj["status"], "phase").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "", 0, "The namespace's phase."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(s(&obj["status"], "phase")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_defaults() {
        let mut ns = json!({"metadata": {"name": "team-a"}});
        NamespaceOps.apply_defaults(&mut ns);
        assert_eq!(ns["metadata"]["labels"], json!({NAME_LABEL: "team-a"}));
        assert_eq!(ns["spec"], json!({"finalizers": ["kubernetes"]}));
        assert_eq!(ns["status"], json!({"phase": "Active"}));
        assert!(NamespaceOps.validate(&ns, None).is_empty());
        assert_eq!(
            NamespaceOps.field(&ns, "status.phase").as_deref(),
            Some("Active")
        );
        assert_eq!(
            NamespaceOps.field(&json!({}), "status.phase").as_deref(),
            Some("")
        );

        let mut deleting = json!({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"},
                                  "spec": {}, "status": {"phase": "Terminating"}});
        NamespaceOps.apply_defaults(&mut deleting);
        assert!(deleting["spec"].get("finalizers").is_none());
    }

    #[test]
    fn names_must_be_dns_labels() {
        let mut ns = json!({"metadata": {"name": "a.b"}});
        NamespaceOps.apply_defaults(&mut ns);
        let errs = NamespaceOps.validate(&ns, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        assert!(errs[0].message.contains("RFC 1123 label"));
    }
}
