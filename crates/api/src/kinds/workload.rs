//! What the workload controllers' kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ReplicationController, Job) share: a selector that must select the pod template, a
//! template that is a valid pod spec, a non-negative replica count, and a selector that cannot
//! change after creation.

use serde_json::{json, Value};

use super::podspec;
use super::util::{self, go_label_selector, go_string_map, invalid_raw};
use crate::validation::FieldError;

/// How strictly a workload treats its template.
#[derive(Debug, Clone, Copy)]
pub struct TemplateRules {
    /// The word used in "empty selector is invalid for deployment".
    pub kind_word: &'static str,
    /// The kind named in "activeDeadlineSeconds in ReplicaSet is not Supported".
    pub owner: &'static str,
    /// The template's restart policy must be `Always` (apps/v1 controllers).
    pub restart_always: bool,
}

/// Validate `spec.selector` (required, valid, non-empty) and `spec.template` (labels selected,
/// a valid pod spec) of an apps/v1 workload at `spec`.
pub fn validate_selector_and_template(
    spec: &Value,
    rules: TemplateRules,
    errs: &mut Vec<FieldError>,
) {
    let selector = spec.get("selector").filter(|s| s.is_object());
    match selector {
        None => errs.push(FieldError::required("spec.selector", "")),
        Some(sel) => {
            util::validate_label_selector(sel, "spec.selector", errs);
            if util::len(sel, "matchLabels") + util::len(sel, "matchExpressions") == 0 {
                errs.push(invalid_raw(
                    "spec.selector",
                    &go_label_selector(sel),
                    &format!("empty selector is invalid for {}", rules.kind_word),
                ));
            }
        }
    }
    let template = spec.get("template").filter(|t| t.is_object());
    match util::label_selector(selector) {
        None => errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(selector.unwrap_or(&Value::Null)),
            "invalid label selector",
        )),
        Some(matcher) => {
            if let (Some(matcher), Some(t)) = (matcher, template) {
                let labels = util::string_map(&t["metadata"], "labels");
                if !matcher.is_empty() && !matcher.matches(&labels) {
                    errs.push(invalid_raw(
                        "spec.template.metadata.labels",
                        &go_string_map(t["metadata"].get("labels")),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    podspec::validate_template(template, "spec.template", errs);
    if let Some(t) = template {
        validate_template_restart(t, rules, errs);
    }
}

fn validate_template_restart(t: &Value, rules: TemplateRules, errs: &mut Vec<FieldError>) {
    let spec = &t["spec"];
    if rules.restart_always {
        let rp = util::s(spec, "restartPolicy");
        if rp != "Always" {
            errs.push(FieldError::not_supported(
                "spec.template.spec.restartPolicy",
                &json!(rp),
                &["Always"],
            ));
        }
        if spec.get("activeDeadlineSeconds").is_some() {
            errs.push(FieldError::forbidden(
                "spec.template.spec.activeDeadlineSeconds",
                &format!("activeDeadlineSeconds in {} is not Supported", rules.owner),
            ));
        }
    }
}

/// `spec.selector` may not change on update.
pub fn selector_immutable(new: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let Some(old) = old else {
        return;
    };
    let (n, o) = (&new["spec"]["selector"], &old["spec"]["selector"]);
    if n != o {
        errs.push(invalid_raw(
            "spec.selector",
            &go_label_selector(n),
            "field is immutable",
        ));
    }
}

/// `spec.replicas` (if present) must be ≥ 0.
pub fn replicas_non_negative(spec: &Value, errs: &mut Vec<FieldError>) {
    util::non_negative(spec, "replicas", "spec", errs);
}

/// Go's `%#v` of an `intstr.IntOrString`, as validation messages show it.
pub fn go_int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}"),
        other => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            other.as_i64().unwrap_or(0)
        ),
    }
}

/// An `IntOrString` that is a non-negative count or a percentage of at most 100%.
pub fn validate_int_or_percent(v: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    match v {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if n < 0 {
                errs.push(FieldError::invalid(
                    path,
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
        Some(Value::String(s)) => match percent(s) {
            None => errs.push(FieldError::invalid(
                path,
                &json!(s),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            Some(p) if p > 100 => errs.push(FieldError::invalid(
                path,
                &json!(s),
                "must not be greater than 100%",
            )),
            _ => {}
        },
        _ => {}
    }
}

/// `"25%"` → 25; `None` if not a percentage.
fn percent(s: &str) -> Option<u64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Whether an `IntOrString` is zero (`0` or `"0%"`).
pub fn is_zero(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        Some(Value::String(s)) => percent(s) == Some(0),
        _ => false,
    }
}

/// Validate a rolling update's `maxUnavailable`/`maxSurge` at `path` (both may not be zero).
pub fn validate_rolling_update(ru: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let unavailable = ru.get("maxUnavailable");
    let surge = ru.get("maxSurge");
    validate_int_or_percent(unavailable, &format!("{path}.maxUnavailable"), errs);
    validate_int_or_percent(surge, &format!("{path}.maxSurge"), errs);
    if is_zero(unavailable) && (surge.is_none() || is_zero(surge)) {
        errs.push(invalid_raw(
            &format!("{path}.maxUnavailable"),
            &go_int_or_string(unavailable.unwrap_or(&Value::Null)),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: TemplateRules = TemplateRules {
        kind_word: "deployment",
        owner: "ReplicaSet",
        restart_always: true,
    };

    fn spec(selector: Value, labels: Value) -> Value {
        let mut spec = json!({
            "selector": selector,
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}},
        });
        podspec::default_template(&mut spec["template"]);
        spec
    }

    #[test]
    fn selector_must_match_template_labels() {
        let mut errs = Vec::new();
        validate_selector_and_template(
            &spec(json!({"matchLabels": {"app": "web"}}), json!({"app": "db"})),
            RULES,
            &mut errs,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec.template.metadata.labels");
        assert_eq!(
            errs[0].message,
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"db\"}: `selector` does not match template `labels`"
        );
    }

    #[test]
    fn empty_and_missing_selectors_are_rejected() {
        let mut errs = Vec::new();
        validate_selector_and_template(&spec(json!({}), json!({"app": "web"})), RULES, &mut errs);
        assert_eq!(errs.len(), 1);
        assert!(errs[0]
            .message
            .ends_with("empty selector is invalid for deployment"));

        let mut s = spec(json!({}), json!({"app": "web"}));
        s.as_object_mut().unwrap().remove("selector");
        let mut errs = Vec::new();
        validate_selector_and_template(&s, RULES, &mut errs);
        assert_eq!(errs[0].message, "spec.selector: Required value");
    }

    #[test]
    fn templates_must_restart_always() {
        let mut s = spec(
            json!({"matchLabels": {"app": "web"}}),
            json!({"app": "web"}),
        );
        s["template"]["spec"]["restartPolicy"] = json!("Never");
        let mut errs = Vec::new();
        validate_selector_and_template(&s, RULES, &mut errs);
        assert_eq!(
            errs[0].message,
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
    }
}
