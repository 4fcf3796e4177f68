//! NodeResourcesFit: the pod's requests (see [`crate::resources::pod_requests`]) must fit in
//! what the node has left; scoring favours the least (default) or most allocated nodes by CPU and
//! memory, counting upstream's defaults for containers without requests.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, ScorePlugin, MAX_NODE_SCORE,
};
use crate::resources::{pod_requests, Resources};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::Status;

pub const NAME: &str = "NodeResourcesFit";

/// How node scores follow utilisation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScoringStrategy {
    /// Emptier nodes score higher (spreading).
    #[default]
    LeastAllocated,
    /// Fuller nodes score higher (bin packing).
    MostAllocated,
    /// A piecewise-linear function of utilisation: `(utilization 0..=100, score 0..=10)`
    /// points, ascending by utilisation.
    RequestedToCapacityRatio(Vec<(i64, i64)>),
}

/// Upstream's scale for `RequestedToCapacityRatio` shape scores.
const MAX_CUSTOM_SCORE: i64 = 10;

/// Interpolates `shape` (scores already scaled to `MAX_NODE_SCORE`) at utilisation `p`.
fn broken_linear(shape: &[(i64, i64)], p: i64) -> i64 {
    for (i, (u, s)) in shape.iter().enumerate() {
        if p <= *u {
            if i == 0 {
                return *s;
            }
            let (pu, ps) = shape[i - 1];
            return ps + (s - ps) * (p - pu) / (u - pu);
        }
    }
    shape.last().map_or(0, |(_, s)| *s)
}

/// The pod's requests, computed once per cycle by the pre-filter.
struct PreFilterState {
    requests: Resources,
    non_zero: Resources,
}

#[derive(Debug)]
pub struct NodeResourcesFit {
    strategy: ScoringStrategy,
    /// Resources scored and their weights (upstream's default: cpu and memory, 1 each).
    resources: Vec<(String, i64)>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeResourcesFit {
    pub fn new() -> Self {
        Self::with_strategy(ScoringStrategy::LeastAllocated)
    }

    pub fn with_strategy(strategy: ScoringStrategy) -> Self {
        NodeResourcesFit {
            strategy,
            resources: vec![("cpu".into(), 1), ("memory".into(), 1)],
        }
    }

    /// Scores these resources with these weights instead of cpu and memory.
    pub fn with_resources(mut self, resources: Vec<(String, i64)>) -> Self {
        if !resources.is_empty() {
            self.resources = resources;
        }
        self
    }

    fn requests<'a>(state: &'a CycleState, pod: &Pod) -> std::borrow::Cow<'a, PreFilterState> {
        match state.read::<PreFilterState>(NAME) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(PreFilterState {
                requests: pod_requests(pod, false),
                non_zero: pod_requests(pod, true),
            }),
        }
    }
}

impl Clone for PreFilterState {
    fn clone(&self) -> Self {
        PreFilterState {
            requests: self.requests.clone(),
            non_zero: self.non_zero.clone(),
        }
    }
}

/// The reasons a pod with `requests` does not fit on `node`, in upstream's order and wording.
pub fn insufficient(requests: &Resources, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    if node.pods.len() as i64 + 1 > node.allowed_pods {
        reasons.push("Too many pods".to_string());
    }
    let free = |alloc: i64, used: i64| alloc - used;
    if requests.milli_cpu > 0
        && requests.milli_cpu > free(node.allocatable.milli_cpu, node.requested.milli_cpu)
    {
        reasons.push("Insufficient cpu".into());
    }
    if requests.memory > 0 && requests.memory > free(node.allocatable.memory, node.requested.memory)
    {
        reasons.push("Insufficient memory".into());
    }
    if requests.ephemeral_storage > 0
        && requests.ephemeral_storage
            > free(
                node.allocatable.ephemeral_storage,
                node.requested.ephemeral_storage,
            )
    {
        reasons.push("Insufficient ephemeral-storage".into());
    }
    for (name, want) in &requests.scalar {
        let alloc = node.allocatable.scalar.get(name).copied().unwrap_or(0);
        let used = node.requested.scalar.get(name).copied().unwrap_or(0);
        if *want > 0 && *want > alloc - used {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

fn least_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

fn most_requested(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 {
        return 0;
    }
    requested.min(capacity) * MAX_NODE_SCORE / capacity
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for NodeResourcesFit {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, _: &Snapshot) -> Status {
        state.write(
            NAME,
            PreFilterState {
                requests: pod_requests(pod, false),
                non_zero: pod_requests(pod, true),
            },
        );
        Status::success()
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let reasons = insufficient(&Self::requests(state, pod).requests, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::unschedulable(reasons)
        }
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let reqs = Self::requests(state, pod);
        let shape: Vec<(i64, i64)> = match &self.strategy {
            ScoringStrategy::RequestedToCapacityRatio(points) => points
                .iter()
                .map(|(u, s)| (*u, s * (MAX_NODE_SCORE / MAX_CUSTOM_SCORE)))
                .collect(),
            _ => Vec::new(),
        };
        let (mut total, mut weights) = (0, 0);
        for (name, weight) in &self.resources {
            // CPU and memory count upstream's defaults for containers without requests.
            let (requested, capacity) = match name.as_str() {
                "cpu" => (
                    node.non_zero_requested.milli_cpu + reqs.non_zero.milli_cpu,
                    node.allocatable.milli_cpu,
                ),
                "memory" => (
                    node.non_zero_requested.memory + reqs.non_zero.memory,
                    node.allocatable.memory,
                ),
                "ephemeral-storage" => (
                    node.requested.ephemeral_storage + reqs.requests.ephemeral_storage,
                    node.allocatable.ephemeral_storage,
                ),
                other => (
                    node.requested.scalar.get(other).copied().unwrap_or(0)
                        + reqs.requests.scalar.get(other).copied().unwrap_or(0),
                    node.allocatable.scalar.get(other).copied().unwrap_or(0),
                ),
            };
            if capacity == 0 {
                continue;
            }
            let score = match &self.strategy {
                ScoringStrategy::LeastAllocated => least_requested(requested, capacity),
                ScoringStrategy::MostAllocated => most_requested(requested, capacity),
                ScoringStrategy::RequestedToCapacityRatio(_) => {
                    let utilization = if requested > capacity {
                        100
                    } else {
                        requested * 100 / capacity
                    };
                    broken_linear(&shape, utilization)
                }
            };
            total += score * weight;
            weights += weight;
        }
        Ok(if weights == 0 { 0 } else { total / weights })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::*;

    #[test]
    fn filter_reports_each_insufficient_resource() {
        let full = |n: &str| {
            node(
                n,
                "2",
                "2Gi",
                json!({"status": {"allocatable": {"ephemeral-storage": "1Gi", "example.com/gpu": "1", "pods": "2"}}}),
            )
        };
        let cases: Vec<(
            &str,
            Vec<k8s_openapi::api::core::v1::Pod>,
            k8s_openapi::api::core::v1::Pod,
            Vec<&str>,
        )> = vec![
            ("fits", vec![], pod_requesting("p", "1", "1Gi"), vec![]),
            (
                "exactly fits",
                vec![pod_requesting("a", "1", "1Gi")],
                pod_requesting("p", "1", "1Gi"),
                vec![],
            ),
            (
                "cpu",
                vec![pod_requesting("a", "1500m", "0")],
                pod_requesting("p", "1", "0"),
                vec!["Insufficient cpu"],
            ),
            (
                "cpu and memory",
                vec![],
                pod_requesting("p", "3", "3Gi"),
                vec!["Insufficient cpu", "Insufficient memory"],
            ),
            (
                "pod count",
                vec![pod_requesting("a", "0", "0"), pod_requesting("b", "0", "0")],
                pod("p", json!({})),
                vec!["Too many pods"],
            ),
            (
                "ephemeral storage and extended resources",
                vec![],
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "resources": {"requests": {"ephemeral-storage": "2Gi", "example.com/gpu": "2"}}}]}),
                ),
                vec![
                    "Insufficient ephemeral-storage",
                    "Insufficient example.com/gpu",
                ],
            ),
            (
                "unknown extended resource",
                vec![],
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/fpga": "1"}}}]}),
                ),
                vec!["Insufficient example.com/fpga"],
            ),
            (
                "init container peak counts",
                vec![],
                pod(
                    "p",
                    json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "3"}}}]}),
                ),
                vec!["Insufficient cpu"],
            ),
            (
                "overhead counts",
                vec![pod_requesting("a", "1", "0")],
                pod(
                    "p",
                    json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "900m"}}}], "overhead": {"cpu": "200m"}}),
                ),
                vec!["Insufficient cpu"],
            ),
        ];
        for (name, existing, p, want) in cases {
            let info = node_info(full("n"), existing);
            let s = NodeResourcesFit::new().filter(&CycleState::default(), &p, &info);
            assert_eq!(s.reasons, want, "{name}");
            assert_eq!(s.is_success(), want.is_empty(), "{name}");
        }
    }

    #[test]
    fn least_and_most_allocated_scores() {
        let n = node_info(
            node("n", "4", "4Gi", json!({})),
            vec![pod_requesting("a", "1", "1Gi")],
        );
        let p = pod_requesting("p", "1", "2Gi");
        let state = CycleState::default();
        // cpu 2/4 used, memory 3/4 used.
        assert_eq!(
            NodeResourcesFit::new().score(&state, &p, &n).unwrap(),
            (50 + 25) / 2
        );
        assert_eq!(
            NodeResourcesFit::with_strategy(ScoringStrategy::MostAllocated)
                .score(&state, &p, &n)
                .unwrap(),
            (50 + 75) / 2
        );
        // A pod without requests counts 100m and 200Mi for scoring.
        let empty = node_info(node("e", "1", "400Mi", json!({})), vec![]);
        assert_eq!(
            NodeResourcesFit::new()
                .score(&state, &pod("q", json!({})), &empty)
                .unwrap(),
            (90 + 50) / 2
        );
    }

    #[test]
    fn requested_to_capacity_ratio_follows_the_shape() {
        // Bin packing shape: 0% → 0, 100% → 10 (scaled to 100).
        let pl = NodeResourcesFit::with_strategy(ScoringStrategy::RequestedToCapacityRatio(vec![
            (0, 0),
            (100, 10),
        ]))
        .with_resources(vec![("cpu".into(), 3), ("memory".into(), 1)]);
        let n = node_info(
            node("n", "4", "4Gi", json!({})),
            vec![pod_requesting("a", "1", "1Gi")],
        );
        let p = pod_requesting("p", "1", "1Gi");
        // cpu 50% → 50, memory 50% → 50.
        assert_eq!(pl.score(&CycleState::default(), &p, &n).unwrap(), 50);
        let p = pod_requesting("p", "3", "1Gi");
        // cpu 100% → 100 (weight 3), memory 50% → 50: (300 + 50) / 4.
        assert_eq!(pl.score(&CycleState::default(), &p, &n).unwrap(), 87);
        assert_eq!(broken_linear(&[(0, 100), (50, 0), (100, 50)], 75), 25);
    }
}
