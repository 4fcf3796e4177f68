//! HorizontalPodAutoscalers (autoscaling/v2): one minimum replica and an 80% CPU target by
//! default, filled-in scaling behaviour when one is given, replica bounds, and the
//! `kubectl get hpa` columns.

use k8s_openapi::api::autoscaling::v2 as autoscaling;
use serde_json::{json, Value};

use super::util::{self, arr, default, default_str, s, with_mut};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `autoscaling/v2` HorizontalPodAutoscaler.
pub struct HorizontalPodAutoscalerOps;

fn default_rules(rules: &mut Value, window: i64, policies: Value) {
    default(rules, "stabilizationWindowSeconds", json!(window));
    default_str(rules, "selectPolicy", "Max");
    default(rules, "policies", policies);
}

impl KindOps for HorizontalPodAutoscalerOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<autoscaling::HorizontalPodAutoscaler>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        default(spec, "minReplicas", json!(1));
        if arr(spec, "metrics").is_empty() {
            spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]);
        }
        with_mut(spec, "behavior", |b| {
            let up = util::obj(b, "scaleUp");
            default_rules(
                up,
                0,
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15},
                       {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
            let down = util::obj(b, "scaleDown");
            default_rules(
                down,
                300,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        });
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        let spec = &obj["spec"];
        let min = util::int(spec, "minReplicas");
        let max = util::int(spec, "maxReplicas");
        if spec.get("minReplicas").is_some() && min < 1 {
            errs.push(FieldError::invalid(
                "spec.minReplicas",
                &json!(min),
                "must be greater than or equal to 1",
            ));
        }
        if max < 1 {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &json!(max),
                "must be greater than 0",
            ));
        } else if max < min {
            errs.push(FieldError::invalid(
                "spec.maxReplicas",
                &json!(max),
                "must be greater than or equal to `minReplicas`",
            ));
        }
        let target = &spec["scaleTargetRef"];
        for key in ["kind", "name"] {
            if s(target, key).is_empty() {
                errs.push(FieldError::required(
                    format!("spec.scaleTargetRef.{key}"),
                    "",
                ));
            }
        }
        for (i, m) in arr(spec, "metrics").iter().enumerate() {
            let ty = s(m, "type");
            let allowed = [
                "ContainerResource",
                "External",
                "Object",
                "Pods",
                "Resource",
            ];
            if !allowed.contains(&ty) {
                errs.push(FieldError::not_supported(
                    format!("spec.metrics[{i}].type"),
                    &json!(ty),
                    &allowed,
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
            Column::new("Reference", "string", "", 0, "The scaled object."),
            Column::new(
                "Targets",
                "string",
                "",
                0,
                "Current and target metric values.",
            ),
            Column::new("MinPods", "string", "", 0, "The lower replica bound."),
            Column::new("MaxPods", "string", "", 0, "The upper replica bound."),
            Column::new("Replicas", "string", "", 0, "The current replica count."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let target = &spec["scaleTargetRef"];
        let min = spec
            .get("minReplicas")
            .and_then(Value::as_i64)
            .map(|m| m.to_string())
            .unwrap_or_else(|| "<unset>".into());
        vec![
            json!(crate::meta::name(obj)),
            json!(format!("{}/{}", s(target, "kind"), s(target, "name"))),
            json!(format_metrics(
                arr(spec, "metrics"),
                arr(&obj["status"], "currentMetrics")
            )),
            json!(min),
            json!(util::int(spec, "maxReplicas")),
            json!(util::int(&obj["status"], "currentReplicas")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

/// The TARGETS cell: `cpu: 40%/80%`, at most two metrics then `+ N more...`.
pub fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let unknown = || "<unknown>".to_string();
    let pct = |v: Option<i64>| v.map(|p| format!("{p}%"));
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let st = statuses.get(i);
            let current = |section: &str, field: &str| {
                st.and_then(|st| st[section]["current"].get(field))
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_i64().map(|n| n.to_string()))
                    })
            };
            match s(m, "type") {
                ty @ ("Resource" | "ContainerResource") => {
                    let section = if ty == "Resource" {
                        "resource"
                    } else {
                        "containerResource"
                    };
                    let src = &m[section];
                    let name = s(src, "name");
                    let target = &src["target"];
                    if let Some(avg) = target.get("averageValue").and_then(Value::as_str) {
                        format!(
                            "{name}: {}/{avg}",
                            current(section, "averageValue").unwrap_or_else(unknown)
                        )
                    } else {
                        let cur = st
                            .and_then(|st| st[section]["current"].get("averageUtilization"))
                            .and_then(Value::as_i64);
                        let tgt = pct(target.get("averageUtilization").and_then(Value::as_i64))
                            .unwrap_or_else(|| "<auto>".into());
                        format!("{name}: {}/{tgt}", pct(cur).unwrap_or_else(unknown))
                    }
                }
                "Pods" => format!(
                    "{}/{}",
                    current("pods", "averageValue").unwrap_or_else(unknown),
                    s(&m["pods"]["target"], "averageValue")
                ),
                ty @ ("Object" | "External") => {
                    let section = if ty == "Object" { "object" } else { "external" };
                    let target = &m[section]["target"];
                    if let Some(avg) = target.get("averageValue").and_then(Value::as_str) {
                        format!(
                            "{}/{avg} (avg)",
                            current(section, "averageValue").unwrap_or_else(unknown)
                        )
                    } else {
                        format!(
                            "{}/{}",
                            current(section, "value").unwrap_or_else(unknown),
                            s(target, "value")
                        )
                    }
                }
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    const MAX: usize = 2;
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_targets() {
        let mut hpa = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 5, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}});
        HorizontalPodAutoscalerOps.apply_defaults(&mut hpa);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        assert_eq!(
            hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(
            hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
        assert_eq!(
            hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["type"],
            "Pods"
        );
        assert!(HorizontalPodAutoscalerOps.validate(&hpa, None).is_empty());
        let row = HorizontalPodAutoscalerOps.table_row(&hpa, jiff::Timestamp::now());
        assert_eq!(
            &row[1..6],
            &[
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5),
                json!(0)
            ]
        );
        hpa["status"] = json!({"currentReplicas": 2, "currentMetrics": [{"type": "Resource",
            "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]});
        assert_eq!(
            HorizontalPodAutoscalerOps.table_row(&hpa, jiff::Timestamp::now())[2],
            json!("cpu: 35%/80%")
        );
        hpa["spec"]["maxReplicas"] = json!(0);
        assert_eq!(
            HorizontalPodAutoscalerOps.validate(&hpa, None)[0].field,
            "spec.maxReplicas"
        );
    }
}
