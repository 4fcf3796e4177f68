//! NodeResourcesBalancedAllocation: favours nodes whose CPU and memory would be used in equal
//! proportion after placing the pod (score = (1 - standard deviation of the fractions) × 100).

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, Plugin, PreScorePlugin, ScorePlugin, MAX_NODE_SCORE};
use crate::resources::{pod_requests, Resources};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::Status;

pub const NAME: &str = "NodeResourcesBalancedAllocation";

#[derive(Debug, Default)]
pub struct BalancedAllocation;

impl BalancedAllocation {
    pub fn new() -> Self {
        BalancedAllocation
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }
}

/// The pod's requests, computed once per cycle rather than once per node.
struct PreScoreState(Resources);

impl PreScorePlugin for BalancedAllocation {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        _: &Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        // Actual requests, not the scoring defaults, as upstream.
        state.write(NAME, PreScoreState(pod_requests(pod, false)));
        Status::success()
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let computed;
        let req = match state.read::<PreScoreState>(NAME) {
            Some(PreScoreState(r)) => r,
            None => {
                computed = pod_requests(pod, false);
                &computed
            }
        };
        let pairs = [
            (
                node.requested.milli_cpu + req.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (node.requested.memory + req.memory, node.allocatable.memory),
        ];
        let fractions: Vec<f64> = pairs
            .iter()
            .filter(|(_, alloc)| *alloc > 0)
            .map(|(used, alloc)| (*used as f64 / *alloc as f64).min(1.0))
            .collect();
        let std = match fractions.as_slice() {
            [a, b] => ((a - b) / 2.0).abs(),
            _ => 0.0,
        };
        Ok(((1.0 - std) * MAX_NODE_SCORE as f64) as i64)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::*;

    #[test]
    fn balanced_nodes_score_higher() {
        let cases = [
            ("even use", vec![], ("1", "1Gi"), 100),
            (
                "cpu heavy",
                vec![pod_requesting("a", "2", "0")],
                ("1", "1Gi"),
                75,
            ),
            ("all cpu, no memory", vec![], ("4", "0"), 50),
            (
                "over capacity is capped",
                vec![pod_requesting("a", "8", "0")],
                ("0", "0"),
                50,
            ),
        ];
        for (name, existing, (cpu, mem), want) in cases {
            let n = node_info(node("n", "4", "4Gi", json!({})), existing);
            let got = BalancedAllocation::new()
                .score(&CycleState::default(), &pod_requesting("p", cpu, mem), &n)
                .unwrap();
            assert_eq!(got, want, "{name}");
        }
    }
}
