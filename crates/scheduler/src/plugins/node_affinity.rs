//! NodeAffinity: `spec.nodeSelector` and required node affinity terms filter nodes; preferred
//! terms add their weights to a node's score.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod};

use crate::framework::{default_normalize, CycleState, FilterPlugin, Plugin, ScorePlugin};
use crate::snapshot::NodeInfo;
use crate::status::Status;

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

/// Whether one label requirement holds for `labels` (missing labels satisfy only `NotIn` and
/// `DoesNotExist`; `Gt`/`Lt` compare integers and need exactly one value).
fn requirement_matches(r: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&r.key);
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.contains(v)),
        "NotIn" => !value.is_some_and(|v| values.contains(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            match (v.parse::<i64>(), bound.parse::<i64>()) {
                (Ok(v), Ok(b)) if op == "Gt" => v > b,
                (Ok(v), Ok(b)) => v < b,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Field requirements support `metadata.name` with `In` and `NotIn`.
fn field_matches(r: &NodeSelectorRequirement, node_name: &str) -> bool {
    if r.key != "metadata.name" {
        return false;
    }
    let values = r.values.as_deref().unwrap_or_default();
    let found = values.iter().any(|v| v == node_name);
    match r.operator.as_str() {
        "In" => values.len() == 1 && found,
        "NotIn" => values.len() == 1 && !found,
        _ => false,
    }
}

/// A term matches when all its requirements hold; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = node.labels().unwrap_or(&empty);
    exprs.iter().all(|r| requirement_matches(r, labels))
        && fields.iter().all(|r| field_matches(r, &node.name))
}

/// Whether the node satisfies the pod's nodeSelector and required node affinity.
pub fn required_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(selector) = spec.node_selector.as_ref() {
        let labels = node.labels();
        if !selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        None => true,
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
    }
}

#[derive(Debug, Default)]
pub struct NodeAffinity;

impl NodeAffinity {
    pub fn new() -> Self {
        NodeAffinity
    }
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeAffinity {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        if required_matches(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn score(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let preferred = pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or_default();
        Ok(preferred
            .iter()
            .filter(|p| p.weight != 0 && term_matches(&p.preference, node))
            .map(|p| i64::from(p.weight))
            .sum())
    }

    fn normalize(&self, _: &CycleState, _: &Pod, _: &[&NodeInfo], scores: &mut [i64]) -> Status {
        default_normalize(scores, false);
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::snapshot::testing::*;

    fn labelled(name: &str, labels: Value) -> NodeInfo {
        node_info(
            node(name, "1", "1Gi", json!({"metadata": {"labels": labels}})),
            vec![],
        )
    }

    fn required(exprs: Value) -> Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": exprs}]}}}})
    }

    #[test]
    fn filter_follows_selector_and_required_terms() {
        let labels = json!({"zone": "a", "gen": "5", "ssd": "true"});
        let cases = [
            ("no constraints", json!({}), true),
            (
                "selector matches",
                json!({"nodeSelector": {"zone": "a"}}),
                true,
            ),
            (
                "selector value differs",
                json!({"nodeSelector": {"zone": "b"}}),
                false,
            ),
            (
                "selector label missing",
                json!({"nodeSelector": {"rack": "1"}}),
                false,
            ),
            (
                "In",
                required(json!([{"key": "zone", "operator": "In", "values": ["a", "b"]}])),
                true,
            ),
            (
                "In misses",
                required(json!([{"key": "zone", "operator": "In", "values": ["b"]}])),
                false,
            ),
            (
                "NotIn",
                required(json!([{"key": "zone", "operator": "NotIn", "values": ["b"]}])),
                true,
            ),
            (
                "NotIn on missing label",
                required(json!([{"key": "rack", "operator": "NotIn", "values": ["1"]}])),
                true,
            ),
            (
                "Exists",
                required(json!([{"key": "ssd", "operator": "Exists"}])),
                true,
            ),
            (
                "DoesNotExist",
                required(json!([{"key": "ssd", "operator": "DoesNotExist"}])),
                false,
            ),
            (
                "Gt",
                required(json!([{"key": "gen", "operator": "Gt", "values": ["4"]}])),
                true,
            ),
            (
                "Gt equal fails",
                required(json!([{"key": "gen", "operator": "Gt", "values": ["5"]}])),
                false,
            ),
            (
                "Lt",
                required(json!([{"key": "gen", "operator": "Lt", "values": ["6"]}])),
                true,
            ),
            (
                "Lt non-integer label",
                required(json!([{"key": "zone", "operator": "Lt", "values": ["6"]}])),
                false,
            ),
            (
                "requirements in a term are ANDed",
                required(
                    json!([{"key": "zone", "operator": "In", "values": ["a"]}, {"key": "ssd", "operator": "DoesNotExist"}]),
                ),
                false,
            ),
            (
                "terms are ORed",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}),
                true,
            ),
            (
                "empty term matches nothing",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}}),
                false,
            ),
            (
                "matchFields metadata.name",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}}}}),
                true,
            ),
            (
                "matchFields other name",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}]}}}}),
                false,
            ),
            (
                "selector and affinity both apply",
                {
                    let mut v = required(json!([{"key": "zone", "operator": "Exists"}]));
                    v["nodeSelector"] = json!({"zone": "b"});
                    v
                },
                false,
            ),
        ];
        for (name, spec, want) in cases {
            let s = NodeAffinity::new().filter(
                &CycleState::default(),
                &pod("p", spec),
                &labelled("n1", labels.clone()),
            );
            assert_eq!(s.is_success(), want, "{name}: {s:?}");
            if !want {
                assert_eq!(s.reasons, vec![REASON.to_string()]);
            }
        }
    }

    #[test]
    fn score_sums_matching_preferred_weights_then_normalizes() {
        let p = pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}},
                {"weight": 20, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}}),
        );
        let nodes = [
            labelled("n1", json!({})),
            labelled("n2", json!({"zone": "a"})),
            labelled("n3", json!({"ssd": "1"})),
            labelled("n4", json!({"zone": "a", "ssd": "1"})),
        ];
        let plugin = NodeAffinity::new();
        let state = CycleState::default();
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| plugin.score(&state, &p, n).unwrap())
            .collect();
        assert_eq!(scores, vec![0, 5, 20, 25]);
        plugin.normalize(&state, &p, &[], &mut scores);
        assert_eq!(scores, vec![0, 20, 80, 100]);
    }
}
