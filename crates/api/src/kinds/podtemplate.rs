//! PodTemplates: a named pod template, defaulted and validated like a workload's.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::podspec;
use super::util;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` PodTemplate.
pub struct PodTemplateOps;

impl KindOps for PodTemplateOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::PodTemplate>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        if let Some(t) = obj.get_mut("template").filter(|t| t.is_object()) {
            podspec::default_template(t);
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        podspec::validate_template(obj.get("template"), "template", &mut errs);
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Containers",
                "string",
                "",
                0,
                "Names of the template's containers.",
            ),
            Column::new(
                "Images",
                "string",
                "",
                0,
                "Images of the template's containers.",
            ),
            Column::new("Pod Labels", "string", "", 0, "Labels of the template."),
        ]
    }

    fn table_row(&self, obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
        let t = &obj["template"];
        let (names, images) = util::container_cells(&t["spec"]);
        let labels = util::format_labels(&util::string_map(&t["metadata"], "labels"));
        vec![
            json!(crate::meta::name(obj)),
            json!(names),
            json!(images),
            json!(labels),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_defaulted_and_validated() {
        let mut pt = json!({"metadata": {"name": "t", "namespace": "default"},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}}});
        PodTemplateOps.apply_defaults(&mut pt);
        assert_eq!(pt["template"]["spec"]["restartPolicy"], "Always");
        let errs = PodTemplateOps.validate(&pt, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "template.spec.containers[0].image");
        assert_eq!(
            PodTemplateOps.table_row(&pt, jiff::Timestamp::now()),
            vec![json!("t"), json!("c"), json!(""), json!("a=b")]
        );
    }
}
