//! ReplicaSets: one replica by default, the workload selector/template rules, the
//! `kubectl get replicasets` columns and the `status.replicas` field selector.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, default};
use super::workload::{self, TemplateRules};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `apps/v1` ReplicaSet.
pub struct ReplicaSetOps;

const RULES: TemplateRules = TemplateRules {
    kind_word: "deployment",
    owner: "ReplicaSet",
    restart_always: true,
};

impl KindOps for ReplicaSetOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<apps::ReplicaSet>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default(spec, "replicas", json!(1));
        podspec::default_template(util::obj(spec, "template"));
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        workload::replicas_non_negative(spec, &mut errs);
        util::non_negative(spec, "minReadySeconds", "spec", &mut errs);
        workload::validate_selector_and_template(spec, RULES, &mut errs);
        workload::selector_immutable(obj, old, &mut errs);
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
        replica_columns("The label selector for the replica set's pods.")
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let selector = util::format_label_selector(spec.get("selector"));
        replica_row(obj, now, selector)
    }
}

/// DESIRED CURRENT READY AGE (+ CONTAINERS IMAGES SELECTOR), shared with ReplicationControllers.
pub fn replica_columns(selector_doc: &str) -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Desired", "integer", "", 0, "Number of replicas wanted."),
        Column::new(
            "Current",
            "integer",
            "",
            0,
            "Number of replicas that exist.",
        ),
        Column::new(
            "Ready",
            "integer",
            "",
            0,
            "Number of replicas that are ready.",
        ),
        Column::age(),
        Column::containers("Names of the template's containers."),
        Column::images("Images of the template's containers."),
        Column::selector(selector_doc),
    ]
}

/// The row for [`replica_columns`].
pub fn replica_row(obj: &Value, now: jiff::Timestamp, selector: String) -> Vec<Value> {
    let spec = &obj["spec"];
    let status = &obj["status"];
    let (names, images) = util::container_cells(&spec["template"]["spec"]);
    vec![
        json!(crate::meta::name(obj)),
        json!(util::int(spec, "replicas")),
        json!(util::int(status, "replicas")),
        json!(util::int(status, "readyReplicas")),
        json!(crate::table::age(obj, now)),
        json!(names),
        json!(images),
        json!(selector),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validation_and_row() {
        let mut rs = json!({"metadata": {"name": "web-abc", "namespace": "default",
                                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                     "template": {"metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                                  "spec": {"containers": [{"name": "a", "image": "nginx:1"}]}}}});
        ReplicaSetOps.apply_defaults(&mut rs);
        assert_eq!(rs["spec"]["replicas"], 1);
        assert!(ReplicaSetOps.validate(&rs, None).is_empty());
        rs["status"] = json!({"replicas": 1, "readyReplicas": 1});
        let now: jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        assert_eq!(
            ReplicaSetOps.table_row(&rs, now),
            vec![
                json!("web-abc"),
                json!(1),
                json!(1),
                json!(1),
                json!("60m"),
                json!("a"),
                json!("nginx:1"),
                json!("app=web,pod-template-hash=abc")
            ]
        );
        assert_eq!(
            ReplicaSetOps.field(&rs, "status.replicas").as_deref(),
            Some("1")
        );
        assert_eq!(ReplicaSetOps.field(&rs, "spec.replicas"), None);
    }

    #[test]
    fn empty_selector_is_rejected() {
        let mut rs = json!({"metadata": {"name": "x", "namespace": "default"},
            "spec": {"selector": {}, "template": {"metadata": {"labels": {"a": "b"}},
                     "spec": {"containers": [{"name": "a", "image": "i"}]}}}});
        ReplicaSetOps.apply_defaults(&mut rs);
        let errs = ReplicaSetOps.validate(&rs, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.selector");
    }
}
