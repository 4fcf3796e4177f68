//! Jobs: defaults (one pod, six retries, non-indexed, not suspended; an auto-generated
//! selector once the object has a uid), validation of the job spec (shared with CronJob
//! templates), the update rules, the `kubectl get jobs` columns and `status.successful`.
//!
//! Selector generation needs `metadata.uid`: the server must assign the uid before it calls
//! `apply_defaults` on create, as kube-apiserver's job strategy does in `PrepareForCreate`.

use k8s_openapi::api::batch::v1 as batch;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, default, go_label_selector, go_string_map, invalid_raw, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `batch/v1` Job.
pub struct JobOps;

const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";

impl KindOps for JobOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<batch::Job>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let name = crate::meta::name(obj).to_string();
        let uid = crate::meta::uid(obj).unwrap_or("").to_string();
        let spec = util::obj(obj, "spec");
        if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
            spec["completions"] = json!(1);
            spec["parallelism"] = json!(1);
        }
        default(spec, "parallelism", json!(1));
        if spec.get("backoffLimitPerIndex").is_some() {
            default(spec, "backoffLimit", json!(i32::MAX));
        } else {
            default(spec, "backoffLimit", json!(6));
        }
        default(spec, "completionMode", json!("NonIndexed"));
        default(spec, "suspend", json!(false));
        let has_failure_policy = spec.get("podFailurePolicy").is_some();
        if let Some(rules) = spec["podFailurePolicy"]["rules"].as_array_mut() {
            for rule in rules {
                util::each_mut(rule, "onPodConditions", |c| {
                    util::default_str(c, "status", "True")
                });
            }
        }
        default(
            spec,
            "podReplacementPolicy",
            json!(if has_failure_policy {
                "Failed"
            } else {
                "TerminatingOrFailed"
            }),
        );
        let template = util::obj(spec, "template");
        podspec::default_template(template);
        let manual = util::flag(spec, "manualSelector");
        if !manual && !uid.is_empty() && spec.get("selector").is_none() {
            let labels = util::obj(util::obj(&mut spec["template"], "metadata"), "labels");
            for key in [LEGACY_JOB_NAME, JOB_NAME] {
                default(labels, key, json!(name));
            }
            for key in [LEGACY_CONTROLLER_UID, CONTROLLER_UID] {
                default(labels, key, json!(uid));
            }
            spec["selector"] = json!({"matchLabels": {CONTROLLER_UID: uid}});
        }
        // kube-apiserver defaults the job's labels from its template whenever it decodes the
        // object, so they show up after the selector has been generated.
        let template_labels = obj["spec"]["template"]["metadata"].get("labels").cloned();
        if let Some(labels) =
            template_labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
        {
            if util::len(&obj["metadata"], "labels") == 0 {
                crate::meta::set(obj, "labels", labels);
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        validate_job_spec(&obj["spec"], "spec", true, &mut errs);
        if let Some(old) = old {
            validate_job_update(&obj["spec"], &old["spec"], &mut errs);
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "status.successful" => Some(util::int(&obj["status"], "succeeded").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Status", "string", "", 0, "The job's state."),
            Column::new(
                "Completions",
                "string",
                "",
                0,
                "Succeeded pods out of the completions wanted.",
            ),
            Column::new(
                "Duration",
                "string",
                "",
                0,
                "How long the job ran, or has been running.",
            ),
            Column::age(),
            Column::containers("Names of the template's containers."),
            Column::images("Images of the template's containers."),
            Column::selector("The label selector for the job's pods."),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        let succeeded = util::int(status, "succeeded");
        let completions = match spec.get("completions").and_then(Value::as_i64) {
            Some(c) => format!("{succeeded}/{c}"),
            None => {
                let parallelism = util::int(spec, "parallelism");
                if parallelism > 1 {
                    format!("{succeeded}/1 of {parallelism}")
                } else {
                    format!("{succeeded}/1")
                }
            }
        };
        let start = util::parse_time(status.get("startTime"));
        let end = util::parse_time(status.get("completionTime"));
        let duration = match (start, end) {
            (None, _) => String::new(),
            (Some(s), None) => crate::table::human_duration(now.as_second() - s.as_second()),
            (Some(s), Some(e)) => crate::table::human_duration(e.as_second() - s.as_second()),
        };
        let (names, images) = util::container_cells(&spec["template"]["spec"]);
        vec![
            json!(crate::meta::name(obj)),
            json!(job_status(obj)),
            json!(completions),
            json!(duration),
            json!(crate::table::age(obj, now)),
            json!(names),
            json!(images),
            json!(util::format_label_selector(spec.get("selector"))),
        ]
    }
}

/// The STATUS column: Complete, Failed, Terminating, Suspended, FailureTarget or Running.
fn job_status(obj: &Value) -> &'static str {
    let conds = util::arr(&obj["status"], "conditions");
    let has = |ty: &str| {
        conds
            .iter()
            .find(|c| s(c, "type") == ty)
            .is_some_and(|c| s(c, "status") == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if crate::meta::deletion_timestamp(obj).is_some() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

/// Validate a `JobSpec` at `path` (`spec` for jobs, `spec.jobTemplate.spec` for cron jobs,
/// whose selector is generated later and so is not required).
pub fn validate_job_spec(
    spec: &Value,
    path: &str,
    require_selector: bool,
    errs: &mut Vec<FieldError>,
) {
    for key in [
        "parallelism",
        "completions",
        "backoffLimit",
        "activeDeadlineSeconds",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        util::non_negative(spec, key, path, errs);
    }
    let mode = spec.get("completionMode").and_then(Value::as_str);
    if let Some(mode) = mode {
        if !["NonIndexed", "Indexed"].contains(&mode) {
            errs.push(FieldError::not_supported(
                format!("{path}.completionMode"),
                &json!(mode),
                &["NonIndexed", "Indexed"],
            ));
        } else if mode == "Indexed" && spec.get("completions").is_none() {
            errs.push(FieldError::required(
                format!("{path}.completions"),
                "when completion mode is Indexed",
            ));
        }
    }
    if let Some(prp) = spec.get("podReplacementPolicy").and_then(Value::as_str) {
        if !["TerminatingOrFailed", "Failed"].contains(&prp) {
            errs.push(FieldError::not_supported(
                format!("{path}.podReplacementPolicy"),
                &json!(prp),
                &["Failed", "TerminatingOrFailed"],
            ));
        }
    }

    let template = spec.get("template").filter(|t| t.is_object());
    match spec.get("selector").filter(|s| s.is_object()) {
        None if require_selector => errs.push(FieldError::required(format!("{path}.selector"), "")),
        None => {}
        Some(sel) => {
            util::validate_label_selector(sel, &format!("{path}.selector"), errs);
            match util::label_selector(Some(sel)) {
                None => errs.push(invalid_raw(
                    &format!("{path}.selector"),
                    &go_label_selector(sel),
                    "invalid label selector",
                )),
                Some(Some(m)) => {
                    if let Some(t) = template {
                        let labels = util::string_map(&t["metadata"], "labels");
                        if !m.is_empty() && !m.matches(&labels) {
                            errs.push(invalid_raw(
                                &format!("{path}.template.metadata.labels"),
                                &go_string_map(t["metadata"].get("labels")),
                                "`selector` does not match template `labels`",
                            ));
                        }
                    }
                }
                Some(None) => {}
            }
        }
    }
    podspec::validate_template(template, &format!("{path}.template"), errs);
    if let Some(t) = template {
        let rp = s(&t["spec"], "restartPolicy");
        if rp != "OnFailure" && rp != "Never" {
            errs.push(FieldError::not_supported(
                format!("{path}.template.spec.restartPolicy"),
                &json!(rp),
                &["OnFailure", "Never"],
            ));
        }
    }
}

/// Fields of a suspended job's template that may change (scheduling directives).
const SUSPENDED_MUTABLE: &[&str] = &["nodeSelector", "affinity", "tolerations", "schedulingGates"];

fn validate_job_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    if new.get("selector") != old.get("selector") {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(&new["selector"]),
            "field is immutable",
        ));
    }
    for key in ["completionMode", "podFailurePolicy"] {
        if new.get(key) != old.get(key) {
            errs.push(FieldError::invalid(
                format!("spec.{key}"),
                new.get(key).unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
    if new.get("completions") != old.get("completions") && s(new, "completionMode") != "Indexed" {
        errs.push(FieldError::invalid(
            "spec.completions",
            new.get("completions").unwrap_or(&Value::Null),
            "field is immutable",
        ));
    }
    let suspended = util::flag(old, "suspend");
    let strip = |t: &Value| {
        let mut t = t.clone();
        if suspended {
            if let Some(m) = t["metadata"].as_object_mut() {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(m) = t["spec"].as_object_mut() {
                m.retain(|k, _| !SUSPENDED_MUTABLE.contains(&k.as_str()));
            }
        }
        t
    };
    if strip(&new["template"]) != strip(&old["template"]) {
        errs.push(invalid_raw(
            "spec.template",
            "core.PodTemplateSpec{...}",
            "field is immutable",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "pi", "namespace": "default", "uid": "1234"},
               "spec": {"template": {"spec": {"restartPolicy": "Never",
                   "containers": [{"name": "pi", "image": "perl:5.34"}]}}}})
    }

    fn defaulted() -> Value {
        let mut j = JobOps.normalize(minimal()).unwrap();
        JobOps.apply_defaults(&mut j);
        j
    }

    #[test]
    fn job_defaults_and_generated_selector() {
        let j = defaulted();
        let spec = &j["spec"];
        assert_eq!(spec["completions"], 1);
        assert_eq!(spec["parallelism"], 1);
        assert_eq!(spec["backoffLimit"], 6);
        assert_eq!(spec["completionMode"], "NonIndexed");
        assert_eq!(spec["suspend"], false);
        assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
        assert!(spec.get("manualSelector").is_none());
        assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}})
        );
        let labels = json!({"batch.kubernetes.io/controller-uid": "1234", "batch.kubernetes.io/job-name": "pi",
                            "controller-uid": "1234", "job-name": "pi"});
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        assert_eq!(j["metadata"]["labels"], labels);
        assert!(
            JobOps.validate(&j, None).is_empty(),
            "{:?}",
            JobOps.validate(&j, None)
        );
    }

    #[test]
    fn parallel_jobs_keep_completions_unset() {
        let mut obj = minimal();
        obj["spec"]["parallelism"] = json!(3);
        let mut j = JobOps.normalize(obj).unwrap();
        JobOps.apply_defaults(&mut j);
        assert!(j["spec"].get("completions").is_none());
        j["status"] = json!({"succeeded": 1});
        let now = jiff::Timestamp::now();
        assert_eq!(JobOps.table_row(&j, now)[2], json!("1/1 of 3"));
    }

    #[test]
    fn template_must_not_restart_always() {
        let mut obj = minimal();
        obj["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let mut j = JobOps.normalize(obj).unwrap();
        JobOps.apply_defaults(&mut j);
        let errs = JobOps.validate(&j, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn selector_and_template_are_immutable() {
        let old = defaulted();
        let mut new = old.clone();
        new["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        let errs = JobOps.validate(&new, Some(&old));
        assert!(errs
            .iter()
            .any(|e| e.field == "spec.selector" && e.message.ends_with("field is immutable")));
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:6");
        let errs = JobOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template");
        let mut new = old.clone();
        new["spec"]["suspend"] = json!(true);
        new["spec"]["activeDeadlineSeconds"] = json!(60);
        assert!(JobOps.validate(&new, Some(&old)).is_empty());
    }

    #[test]
    fn status_and_duration_columns() {
        let mut j = defaulted();
        j["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        j["status"] = json!({"succeeded": 1, "startTime": "2026-01-01T00:00:01Z",
            "completionTime": "2026-01-01T00:00:09Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let now: jiff::Timestamp = "2026-01-01T00:05:00Z".parse().unwrap();
        let row = JobOps.table_row(&j, now);
        assert_eq!(
            &row[..5],
            &[
                json!("pi"),
                json!("Complete"),
                json!("1/1"),
                json!("8s"),
                json!("5m")
            ]
        );
        assert_eq!(row.len(), JobOps.table_columns().len());
        j["status"] = json!({"startTime": "2026-01-01T00:00:00Z"});
        let row = JobOps.table_row(&j, now);
        assert_eq!(&row[1..4], &[json!("Running"), json!("0/1"), json!("5m")]);
        assert_eq!(JobOps.field(&j, "status.successful").as_deref(), Some("0"));
    }
}
