//! StatefulSets: defaults (one replica, ordered pod management, rolling updates from
//! partition 0, retained claims, ten revisions, claim templates in Filesystem mode), the rule
//! that only some spec fields may change, and the `kubectl get statefulsets` columns.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, default, default_str, each_mut, s, with_mut};
use super::workload::{self, TemplateRules};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `apps/v1` StatefulSet.
pub struct StatefulSetOps;

const RULES: TemplateRules = TemplateRules {
    kind_word: "statefulset",
    owner: "StatefulSet",
    restart_always: true,
};

/// The spec fields an update may change.
const MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

impl KindOps for StatefulSetOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<apps::StatefulSet>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default_str(spec, "podManagementPolicy", "OrderedReady");
        let strategy = util::obj(spec, "updateStrategy");
        if s(strategy, "type").is_empty() {
            strategy["type"] = json!("RollingUpdate");
            default(strategy, "rollingUpdate", json!({}));
        }
        if s(strategy, "type") == "RollingUpdate" {
            with_mut(strategy, "rollingUpdate", |ru| {
                default(ru, "partition", json!(0))
            });
        }
        let retention = util::obj(spec, "persistentVolumeClaimRetentionPolicy");
        default_str(retention, "whenDeleted", "Retain");
        default_str(retention, "whenScaled", "Retain");
        default(spec, "replicas", json!(1));
        default(spec, "revisionHistoryLimit", json!(10));
        podspec::default_template(util::obj(spec, "template"));
        each_mut(spec, "volumeClaimTemplates", |pvc| {
            with_mut(pvc, "spec", |s| {
                default(s, "volumeMode", json!("Filesystem"))
            });
            let status = util::obj(pvc, "status");
            default_str(status, "phase", "Pending");
        });
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        workload::replicas_non_negative(spec, &mut errs);
        util::non_negative(spec, "minReadySeconds", "spec", &mut errs);
        util::non_negative(spec, "revisionHistoryLimit", "spec", &mut errs);
        let pmp = s(spec, "podManagementPolicy");
        if !["OrderedReady", "Parallel"].contains(&pmp) {
            errs.push(FieldError::not_supported(
                "spec.podManagementPolicy",
                &json!(pmp),
                &["OrderedReady", "Parallel"],
            ));
        }
        let strategy = &spec["updateStrategy"];
        match s(strategy, "type") {
            "RollingUpdate" => {
                let ru = &strategy["rollingUpdate"];
                util::non_negative(
                    ru,
                    "partition",
                    "spec.updateStrategy.rollingUpdate",
                    &mut errs,
                );
                if let Some(mu) = ru.get("maxUnavailable") {
                    let path = "spec.updateStrategy.rollingUpdate.maxUnavailable";
                    workload::validate_int_or_percent(Some(mu), path, &mut errs);
                    if workload::is_zero(Some(mu)) {
                        errs.push(FieldError::invalid(path, mu, "must be greater than 0"));
                    }
                }
            }
            "OnDelete" => {
                if strategy.get("rollingUpdate").is_some() {
                    errs.push(FieldError::invalid(
                        "spec.updateStrategy.rollingUpdate",
                        &strategy["rollingUpdate"],
                        "only allowed for updateStrategy 'RollingUpdate'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                "spec.updateStrategy.type",
                &json!(other),
                &["OnDelete", "RollingUpdate"],
            )),
        }
        let retention = &spec["persistentVolumeClaimRetentionPolicy"];
        for key in ["whenDeleted", "whenScaled"] {
            let v = s(retention, key);
            if !["Retain", "Delete"].contains(&v) {
                errs.push(FieldError::not_supported(
                    format!("spec.persistentVolumeClaimRetentionPolicy.{key}"),
                    &json!(v),
                    &["Retain", "Delete"],
                ));
            }
        }
        workload::validate_selector_and_template(spec, RULES, &mut errs);
        if let Some(old) = old {
            let strip = |spec: &Value| {
                let mut spec = spec.clone();
                if let Some(m) = spec.as_object_mut() {
                    m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
                }
                spec
            };
            if strip(spec) != strip(&old["spec"]) {
                errs.push(FieldError::forbidden(
                    "spec",
                    "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
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
            Column::new(
                "Ready",
                "string",
                "",
                0,
                "Ready pods out of desired replicas.",
            ),
            Column::age(),
            Column::containers("Names of the template's containers."),
            Column::images("Images of the template's containers."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let (names, images) = util::container_cells(&spec["template"]["spec"]);
        vec![
            json!(crate::meta::name(obj)),
            json!(format!(
                "{}/{}",
                util::int(&obj["status"], "readyReplicas"),
                util::int(spec, "replicas")
            )),
            json!(crate::table::age(obj, now)),
            json!(names),
            json!(images),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        let mut sts = json!({"metadata": {"name": "db", "namespace": "default"},
            "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}});
        StatefulSetOps.apply_defaults(&mut sts);
        sts
    }

    #[test]
    fn statefulset_defaults() {
        let spec = &minimal()["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        assert_eq!(
            spec["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        assert!(StatefulSetOps.validate(&minimal(), None).is_empty());
    }

    #[test]
    fn only_some_spec_fields_may_change() {
        let old = minimal();
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
        assert!(StatefulSetOps.validate(&new, Some(&old)).is_empty());
        new["spec"]["serviceName"] = json!("other");
        let errs = StatefulSetOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
    }

    #[test]
    fn row_shows_ready_over_desired() {
        let mut sts = minimal();
        sts["status"] = json!({"readyReplicas": 1});
        let row = StatefulSetOps.table_row(&sts, jiff::Timestamp::now());
        assert_eq!(row[1], json!("1/1"));
        assert_eq!(row[2], json!("<unknown>"));
        assert_eq!(row[4], json!("postgres:16"));
    }
}
