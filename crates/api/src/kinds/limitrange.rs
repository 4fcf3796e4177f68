//! LimitRanges: container items get default limits from the maximum and default requests from
//! the default limits or the minimum (as kube-apiserver defaults them); items are validated.
//! Upstream has no printer for limit ranges, so the table is the generic one.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util::{self, arr, each_mut, s};
use crate::registry::KindOps;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` LimitRange.
pub struct LimitRangeOps;

const TYPES: &[&str] = &["Container", "PersistentVolumeClaim", "Pod"];

impl KindOps for LimitRangeOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::LimitRange>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        each_mut(spec, "limits", |item| {
            if s(item, "type") != "Container" {
                return;
            }
            let max = item.get("max").cloned();
            let min = item.get("min").cloned();
            let defaults = util::obj(item, "default");
            if let Some(Value::Object(max)) = max {
                for (k, v) in max {
                    util::default(defaults, &k, v);
                }
            }
            let default_limits = defaults.clone();
            let requests = util::obj(item, "defaultRequest");
            if let Value::Object(d) = default_limits {
                for (k, v) in d {
                    util::default(requests, &k, v);
                }
            }
            if let Some(Value::Object(min)) = min {
                for (k, v) in min {
                    util::default(requests, &k, v);
                }
            }
            for key in ["default", "defaultRequest"] {
                if item[key].as_object().is_some_and(|m| m.is_empty()) {
                    item.as_object_mut().map(|m| m.remove(key));
                }
            }
        });
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        for (i, item) in arr(&obj["spec"], "limits").iter().enumerate() {
            let ip = format!("spec.limits[{i}]");
            let ty = s(item, "type");
            if !TYPES.contains(&ty) {
                errs.push(FieldError::not_supported(
                    format!("{ip}.type"),
                    &json!(ty),
                    TYPES,
                ));
            }
            let min = util::string_map(item, "min");
            let max = util::string_map(item, "max");
            let q = |v: &str| util::parse_quantity(v);
            for (res, lo) in &min {
                if let Some(hi) = max.get(res) {
                    if q(lo) > q(hi) {
                        errs.push(FieldError::invalid(
                            format!("{ip}.min[{res}]"),
                            &json!(lo),
                            &format!("min value {lo} is greater than max value {hi}"),
                        ));
                    }
                }
            }
            for key in ["default", "defaultRequest"] {
                for (res, v) in util::string_map(item, key) {
                    if let Some(hi) = max.get(&res) {
                        if q(&v) > q(hi) {
                            errs.push(FieldError::invalid(
                                format!("{ip}.{key}[{res}]"),
                                &json!(v),
                                &format!("{key} value {v} is greater than max value {hi}"),
                            ));
                        }
                    }
                    if let Some(lo) = min.get(&res) {
                        if q(&v) < q(lo) {
                            errs.push(FieldError::invalid(
                                format!("{ip}.{key}[{res}]"),
                                &json!(v),
                                &format!("min value {lo} is greater than {key} value {v}"),
                            ));
                        }
                    }
                }
            }
            if ty == "Pod"
                && (item.get("default").is_some() || item.get("defaultRequest").is_some())
            {
                errs.push(FieldError::forbidden(
                    format!("{ip}.default"),
                    "may not be specified when `type` is 'Pod'",
                ));
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_items_get_defaults() {
        let mut lr = json!({"metadata": {"name": "l", "namespace": "default"},
            "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "64Mi"}},
                                {"type": "Pod", "max": {"cpu": "4"}}]}});
        LimitRangeOps.apply_defaults(&mut lr);
        let c = &lr["spec"]["limits"][0];
        assert_eq!(c["default"], json!({"cpu": "2"}));
        assert_eq!(c["defaultRequest"], json!({"cpu": "2", "memory": "64Mi"}));
        assert!(lr["spec"]["limits"][1].get("default").is_none());
        assert!(LimitRangeOps.validate(&lr, None).is_empty());
        lr["spec"]["limits"][0]["min"]["cpu"] = json!("3");
        let fields: Vec<String> = LimitRangeOps
            .validate(&lr, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert!(
            fields.contains(&"spec.limits[0].min[cpu]".to_string()),
            "{fields:?}"
        );
    }
}
