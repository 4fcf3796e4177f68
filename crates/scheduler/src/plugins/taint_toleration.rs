//! TaintToleration: a node's `NoSchedule`/`NoExecute` taints must each be tolerated by the pod;
//! scoring prefers nodes with fewer untolerated `PreferNoSchedule` taints.

use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};

use crate::framework::{default_normalize, CycleState, FilterPlugin, Plugin, ScorePlugin};
use crate::snapshot::NodeInfo;
use crate::status::Status;

pub const NAME: &str = "TaintToleration";

/// Whether `t` tolerates `taint`, as upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = t.key.as_deref().unwrap_or_default();
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            !key.is_empty()
                && t.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct TaintToleration;

impl TaintToleration {
    pub fn new() -> Self {
        TaintToleration
    }
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for TaintToleration {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = taints(node).iter().find(|taint| {
            matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tols.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Status::success(),
            Some(taint) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        Ok(taints(node)
            .iter()
            .filter(|taint| {
                taint.effect == "PreferNoSchedule" && !tols.iter().any(|t| tolerates(t, taint))
            })
            .count() as i64)
    }

    fn normalize(&self, _: &CycleState, _: &Pod, _: &[&NodeInfo], scores: &mut [i64]) -> Status {
        default_normalize(scores, true);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::snapshot::testing::*;
    use crate::Code;

    fn taint_node(taints: Value) -> NodeInfo {
        node_info(
            node("n", "1", "1Gi", json!({"spec": {"taints": taints}})),
            vec![],
        )
    }

    #[test]
    fn filter_requires_every_hard_taint_tolerated() {
        let cases = [
            ("no taints", json!([]), json!([]), Ok(())),
            (
                "untolerated NoSchedule",
                json!([{"key": "a", "value": "b", "effect": "NoSchedule"}]),
                json!([]),
                Err("node(s) had untolerated taint {a: b}"),
            ),
            (
                "untolerated NoExecute",
                json!([{"key": "a", "effect": "NoExecute"}]),
                json!([]),
                Err("node(s) had untolerated taint {a: }"),
            ),
            (
                "PreferNoSchedule does not filter",
                json!([{"key": "a", "effect": "PreferNoSchedule"}]),
                json!([]),
                Ok(()),
            ),
            (
                "Equal with matching value",
                json!([{"key": "a", "value": "b", "effect": "NoSchedule"}]),
                json!([{"key": "a", "operator": "Equal", "value": "b", "effect": "NoSchedule"}]),
                Ok(()),
            ),
            (
                "Equal with other value",
                json!([{"key": "a", "value": "b", "effect": "NoSchedule"}]),
                json!([{"key": "a", "value": "c"}]),
                Err("node(s) had untolerated taint {a: b}"),
            ),
            (
                "Exists with empty key tolerates all",
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoExecute"}]),
                json!([{"operator": "Exists"}]),
                Ok(()),
            ),
            (
                "effect must match when set",
                json!([{"key": "a", "effect": "NoExecute"}]),
                json!([{"key": "a", "operator": "Exists", "effect": "NoSchedule"}]),
                Err("node(s) had untolerated taint {a: }"),
            ),
            (
                "first untolerated taint is reported",
                json!([{"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}]),
                json!([{"key": "a", "operator": "Exists"}]),
                Err("node(s) had untolerated taint {b: }"),
            ),
        ];
        for (name, taints, tols, want) in cases {
            let s = TaintToleration::new().filter(
                &CycleState::default(),
                &pod("p", json!({"tolerations": tols})),
                &taint_node(taints),
            );
            match want {
                Ok(()) => assert!(s.is_success(), "{name}: {s:?}"),
                Err(reason) => {
                    assert_eq!(s.code, Code::UnschedulableAndUnresolvable, "{name}");
                    assert_eq!(s.reasons, vec![reason.to_string()], "{name}");
                }
            }
        }
    }

    #[test]
    fn score_prefers_fewer_untolerated_soft_taints() {
        let nodes = [
            taint_node(json!([])),
            taint_node(json!([{"key": "a", "effect": "PreferNoSchedule"}])),
            taint_node(
                json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]),
            ),
            taint_node(json!([{"key": "t", "effect": "PreferNoSchedule"}])),
        ];
        let p = pod(
            "p",
            json!({"tolerations": [{"key": "t", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        let plugin = TaintToleration::new();
        let state = CycleState::default();
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| plugin.score(&state, &p, n).unwrap())
            .collect();
        assert_eq!(scores, vec![0, 1, 2, 0]);
        plugin.normalize(&state, &p, &[], &mut scores);
        assert_eq!(scores, vec![100, 50, 0, 100]);
    }
}
