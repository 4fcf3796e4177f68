//! DaemonSets: rolling updates of one pod at a time by default, ten revisions, the workload
//! selector/template rules, and the `kubectl get daemonsets` columns.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, default, default_str, s};
use super::workload::{self, TemplateRules};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `apps/v1` DaemonSet.
pub struct DaemonSetOps;

const RULES: TemplateRules = TemplateRules {
    kind_word: "daemonset",
    owner: "DaemonSet",
    restart_always: true,
};

impl KindOps for DaemonSetOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<apps::DaemonSet>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        let strategy = util::obj(spec, "updateStrategy");
        default_str(strategy, "type", "RollingUpdate");
        if s(strategy, "type") == "RollingUpdate" {
            let ru = util::obj(strategy, "rollingUpdate");
            default(ru, "maxUnavailable", json!(1));
            default(ru, "maxSurge", json!(0));
        }
        default(spec, "revisionHistoryLimit", json!(10));
        podspec::default_template(util::obj(spec, "template"));
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        workload::validate_selector_and_template(spec, RULES, &mut errs);
        util::non_negative(spec, "minReadySeconds", "spec", &mut errs);
        util::non_negative(spec, "revisionHistoryLimit", "spec", &mut errs);
        let strategy = &spec["updateStrategy"];
        match s(strategy, "type") {
            "RollingUpdate" => {
                if let Some(ru) = strategy.get("rollingUpdate") {
                    workload::validate_rolling_update(
                        ru,
                        "spec.updateStrategy.rollingUpdate",
                        &mut errs,
                    );
                }
            }
            "OnDelete" => {}
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        workload::selector_immutable(obj, old, &mut errs);
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Desired",
                "integer",
                "",
                0,
                "Number of nodes that should run the daemon pod.",
            ),
            Column::new(
                "Current",
                "integer",
                "",
                0,
                "Number of nodes running the daemon pod.",
            ),
            Column::new(
                "Ready",
                "integer",
                "",
                0,
                "Number of nodes whose daemon pod is ready.",
            ),
            Column::new(
                "Up-to-date",
                "integer",
                "",
                0,
                "Number of nodes running the current template.",
            ),
            Column::new(
                "Available",
                "integer",
                "",
                0,
                "Number of nodes whose daemon pod is available.",
            ),
            Column::new(
                "Node Selector",
                "string",
                "",
                0,
                "The template's node selector.",
            ),
            Column::age(),
            Column::containers("Names of the template's containers."),
            Column::images("Images of the template's containers."),
            Column::selector("The label selector for the daemon set's pods."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let pod_spec = &spec["template"]["spec"];
        let (names, images) = util::container_cells(pod_spec);
        vec![
            json!(crate::meta::name(obj)),
            json!(util::int(status, "desiredNumberScheduled")),
            json!(util::int(status, "currentNumberScheduled")),
            json!(util::int(status, "numberReady")),
            json!(util::int(status, "updatedNumberScheduled")),
            json!(util::int(status, "numberAvailable")),
            json!(util::format_labels(&util::string_map(
                pod_spec,
                "nodeSelector"
            ))),
            json!(crate::table::age(obj, now)),
            json!(names),
            json!(images),
            json!(util::format_label_selector(spec.get("selector"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daemonset_defaults_validation_and_row() {
        let mut ds = json!({"metadata": {"name": "agent", "namespace": "kube-system"},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                           "containers": [{"name": "a", "image": "agent:1"}]}}}});
        DaemonSetOps.apply_defaults(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        assert!(DaemonSetOps.validate(&ds, None).is_empty());
        let row = DaemonSetOps.table_row(&ds, jiff::Timestamp::now());
        assert_eq!(row.len(), DaemonSetOps.table_columns().len());
        assert_eq!(row[6], json!("kubernetes.io/os=linux"));
        assert_eq!(row[10], json!("app=agent"));

        let mut changed = ds.clone();
        changed["spec"]["selector"] = json!({"matchLabels": {"app": "agent", "x": "y"}});
        changed["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let errs = DaemonSetOps.validate(&changed, Some(&ds));
        assert_eq!(errs.len(), 1);
        assert!(errs[0].message.ends_with("field is immutable"));
    }
}
