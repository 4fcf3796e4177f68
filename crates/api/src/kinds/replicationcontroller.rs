//! ReplicationControllers: the selector and object labels default to the template's labels,
//! one replica; the template must be selected and restart always.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::podspec;
use super::replicaset::{replica_columns, replica_row};
use super::util::{self, default, go_string_map, invalid_raw};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` ReplicationController.
pub struct ReplicationControllerOps;

impl KindOps for ReplicationControllerOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::ReplicationController>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let labels = obj["spec"]["template"]["metadata"].get("labels").cloned();
        if let Some(labels) = labels.filter(Value::is_object) {
            let spec = util::obj(obj, "spec");
            if util::len(spec, "selector") == 0 {
                spec["selector"] = labels.clone();
            }
            if util::len(&obj["metadata"], "labels") == 0 {
                crate::meta::set(obj, "labels", labels);
            }
        }
        let spec = util::obj(obj, "spec");
        default(spec, "replicas", json!(1));
        if let Some(t) = spec.get_mut("template").filter(|t| t.is_object()) {
            podspec::default_template(t);
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        util::non_negative(spec, "replicas", "spec", &mut errs);
        util::non_negative(spec, "minReadySeconds", "spec", &mut errs);
        let selector = util::string_map(spec, "selector");
        if selector.is_empty() {
            errs.push(FieldError::required("spec.selector", ""));
        } else {
            util::validate_labels(spec.get("selector"), "spec.selector", &mut errs);
        }
        let template = spec.get("template").filter(|t| t.is_object());
        match template {
            None => errs.push(FieldError::required("spec.template", "")),
            Some(t) => {
                let labels = util::string_map(&t["metadata"], "labels");
                if !selector.is_empty() && !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    errs.push(invalid_raw(
                        "spec.template.metadata.labels",
                        &go_string_map(t["metadata"].get("labels")),
                        "`selector` does not match template `labels`",
                    ));
                }
                podspec::validate_template(Some(t), "spec.template", &mut errs);
                let rp = util::s(&t["spec"], "restartPolicy");
                if rp != "Always" {
                    errs.push(FieldError::not_supported(
                        "spec.template.spec.restartPolicy",
                        &json!(rp),
                        &["Always"],
                    ));
                }
            }
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "status.replicas" => Some(util::int(&obj["status"], "replicas").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        replica_columns("The label selector for the controller's pods.")
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let selector = util::format_labels(&util::string_map(&obj["spec"], "selector"));
        replica_row(obj, now, selector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_and_labels_default_from_the_template() {
        let mut rc = json!({"metadata": {"name": "x", "namespace": "default"},
            "spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                  "spec": {"containers": [{"name": "a", "image": "i"}]}}}});
        ReplicationControllerOps.apply_defaults(&mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert!(ReplicationControllerOps.validate(&rc, None).is_empty());
        rc["spec"]["selector"] = json!({"app": "y"});
        let errs = ReplicationControllerOps.validate(&rc, None);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        assert_eq!(
            ReplicationControllerOps.table_row(&rc, jiff::Timestamp::now())[7],
            json!("app=y")
        );
    }
}
