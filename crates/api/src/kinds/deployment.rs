//! Deployments: defaults (one replica, a 25%/25% rolling update, ten revisions kept, a
//! ten-minute progress deadline), validation (selector, template, strategy, immutable
//! selector) and the `kubectl get deployments` columns.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, default, default_str, s};
use super::workload::{self, TemplateRules};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `apps/v1` Deployment.
pub struct DeploymentOps;

const RULES: TemplateRules = TemplateRules {
    kind_word: "deployment",
    owner: "ReplicaSet",
    restart_always: true,
};

impl KindOps for DeploymentOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<apps::Deployment>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default(spec, "replicas", json!(1));
        let strategy = util::obj(spec, "strategy");
        default_str(strategy, "type", "RollingUpdate");
        if s(strategy, "type") == "RollingUpdate" {
            let ru = util::obj(strategy, "rollingUpdate");
            default(ru, "maxUnavailable", json!("25%"));
            default(ru, "maxSurge", json!("25%"));
        }
        default(spec, "revisionHistoryLimit", json!(10));
        default(spec, "progressDeadlineSeconds", json!(600));
        podspec::default_template(util::obj(spec, "template"));
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        workload::replicas_non_negative(spec, &mut errs);
        workload::validate_selector_and_template(spec, RULES, &mut errs);
        validate_strategy(&spec["strategy"], &mut errs);
        util::non_negative(spec, "minReadySeconds", "spec", &mut errs);
        util::non_negative(spec, "revisionHistoryLimit", "spec", &mut errs);
        if let Some(pds) = spec.get("progressDeadlineSeconds").and_then(Value::as_i64) {
            util::non_negative(spec, "progressDeadlineSeconds", "spec", &mut errs);
            if pds <= util::int(spec, "minReadySeconds") {
                errs.push(FieldError::invalid(
                    "spec.progressDeadlineSeconds",
                    &json!(pds),
                    "must be greater than minReadySeconds",
                ));
            }
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
                "Ready",
                "string",
                "",
                0,
                "Ready pods out of desired replicas.",
            ),
            Column::new(
                "Up-to-date",
                "string",
                "",
                0,
                "Pods running the current template.",
            ),
            Column::new(
                "Available",
                "string",
                "",
                0,
                "Pods available for at least minReadySeconds.",
            ),
            Column::age(),
            Column::containers("Names of the template's containers."),
            Column::images("Images of the template's containers."),
            Column::selector("The label selector for the deployment's pods."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let (names, images) = util::container_cells(&spec["template"]["spec"]);
        let selector =
            util::selector_string(spec.get("selector")).unwrap_or_else(|| "<invalid>".into());
        vec![
            json!(crate::meta::name(obj)),
            json!(format!(
                "{}/{}",
                util::int(status, "readyReplicas"),
                util::int(spec, "replicas")
            )),
            json!(util::int(status, "updatedReplicas")),
            json!(util::int(status, "availableReplicas")),
            json!(crate::table::age(obj, now)),
            json!(names),
            json!(images),
            json!(selector),
        ]
    }
}

fn validate_strategy(strategy: &Value, errs: &mut Vec<FieldError>) {
    let ty = s(strategy, "type");
    match ty {
        "Recreate" => {
            if strategy.get("rollingUpdate").is_some() {
                errs.push(FieldError::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(ru) = strategy.get("rollingUpdate") {
                workload::validate_rolling_update(ru, "spec.strategy.rollingUpdate", errs);
            }
        }
        other => errs.push(FieldError::not_supported(
            "spec.strategy.type",
            &json!(other),
            &["Recreate", "RollingUpdate"],
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    fn minimal() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                             "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}},
            },
        })
    }

    fn defaulted(obj: Value) -> Value {
        let mut obj = DeploymentOps.normalize(obj).unwrap();
        DeploymentOps.apply_defaults(&mut obj);
        obj
    }

    #[test]
    fn a_minimal_deployment_gets_every_default() {
        let d = defaulted(minimal());
        let want = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "replicas": 1,
                "revisionHistoryLimit": 10,
                "progressDeadlineSeconds": 600,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "nginx", "image": "nginx",
                            "imagePullPolicy": "Always",
                            "resources": {},
                            "terminationMessagePath": "/dev/termination-log",
                            "terminationMessagePolicy": "File",
                        }],
                        "dnsPolicy": "ClusterFirst",
                        "restartPolicy": "Always",
                        "schedulerName": "default-scheduler",
                        "securityContext": {},
                        "terminationGracePeriodSeconds": 30,
                    },
                },
            },
        });
        assert_eq!(d, want);
        assert!(DeploymentOps.validate(&d, None).is_empty());
        // Defaulting twice changes nothing.
        let mut again = d.clone();
        DeploymentOps.apply_defaults(&mut again);
        assert_eq!(again, d);
    }

    #[test]
    fn recreate_gets_no_rolling_update_defaults() {
        let mut obj = minimal();
        obj["spec"]["strategy"] = json!({"type": "Recreate"});
        let d = defaulted(obj);
        assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
    }

    fn errors(edit: impl FnOnce(&mut Value)) -> Vec<(String, Reason, String)> {
        let mut d = defaulted(minimal());
        edit(&mut d);
        DeploymentOps
            .validate(&d, None)
            .into_iter()
            .map(|e| (e.field, e.reason, e.message))
            .collect()
    }

    #[test]
    fn validation_rules_name_their_fields() {
        let e = errors(|d| d["spec"]["replicas"] = json!(-1));
        assert_eq!(
            e,
            vec![(
                "spec.replicas".into(),
                Reason::FieldValueInvalid,
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0".into()
            )]
        );
        let e = errors(|d| d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(""));
        assert_eq!(e[0].0, "spec.template.spec.containers[0].image");
        assert_eq!(e[0].1, Reason::FieldValueRequired);
        let e = errors(|d| {
            d["spec"]["strategy"]["rollingUpdate"] = json!({"maxUnavailable": 0, "maxSurge": 0})
        });
        assert_eq!(e[0].0, "spec.strategy.rollingUpdate.maxUnavailable");
        assert!(e[0].2.ends_with("may not be 0 when `maxSurge` is 0"));
        let e = errors(|d| d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] = json!("150%"));
        assert_eq!(e[0].0, "spec.strategy.rollingUpdate.maxSurge");
        let e =
            errors(|d| d["spec"]["strategy"] = json!({"type": "Recreate", "rollingUpdate": {}}));
        assert_eq!(e[0].1, Reason::FieldValueForbidden);
        let e = errors(|d| d["spec"]["strategy"]["type"] = json!("BlueGreen"));
        assert_eq!(e[0].1, Reason::FieldValueNotSupported);
        let e = errors(|d| d["spec"]["progressDeadlineSeconds"] = json!(0));
        assert_eq!(e[0].0, "spec.progressDeadlineSeconds");
        let e = errors(|d| d["metadata"]["name"] = json!("Web"));
        assert_eq!(e[0].0, "metadata.name");
        let e = errors(|d| d["spec"]["template"]["metadata"]["labels"] = json!({"app": "db"}));
        assert_eq!(e[0].0, "spec.template.metadata.labels");
    }

    #[test]
    fn selector_is_immutable() {
        let old = defaulted(minimal());
        let mut new = old.clone();
        new["spec"]["selector"] = json!({"matchLabels": {"app": "web2"}});
        new["spec"]["template"]["metadata"]["labels"] = json!({"app": "web2"});
        let errs = DeploymentOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web2\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
        let mut scaled = old.clone();
        scaled["spec"]["replicas"] = json!(3);
        assert!(DeploymentOps.validate(&scaled, Some(&old)).is_empty());
    }

    #[test]
    fn table_row_shows_ready_over_desired() {
        let mut d = defaulted(minimal());
        d["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        d["spec"]["replicas"] = json!(3);
        d["status"] = json!({"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2});
        let now: jiff::Timestamp = "2026-01-01T00:00:35Z".parse().unwrap();
        let row = DeploymentOps.table_row(&d, now);
        assert_eq!(
            row,
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("35s"),
                json!("nginx"),
                json!("nginx"),
                json!("app=web")
            ]
        );
        assert_eq!(row.len(), DeploymentOps.table_columns().len());
    }
}
