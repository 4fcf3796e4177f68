//! One scheduling cycle, pure: pre-filter, filter every node, post-filter when none fits,
//! pre-score, score, normalize, weight, pick the best node. The caller assumes, reserves, binds.
//!
//! Filtering and scoring run on rayon's pool when there are enough nodes to share out (as
//! upstream runs them on 16 goroutines); verdicts are then taken in node order, so the outcome
//! is the one a node-by-node run gives.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;
use rayon::prelude::*;

use crate::framework::{CycleState, Framework};
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::{Code, Status};

/// Below this many nodes a batch of filter or score calls runs on the calling thread: handing
/// it to the pool would cost more than it saves.
const PARALLEL_MIN: usize = 128;
/// Nodes filtered per batch when the feasible nodes still wanted are fewer: a batch is
/// filtered whole, so past the last wanted node this is the most work thrown away.
const FILTER_BATCH_MIN: usize = 256;

/// `f` over `items`, on rayon's pool when there are at least [`PARALLEL_MIN`], in order.
fn map_maybe_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    if items.len() >= PARALLEL_MIN {
        items.par_iter().map(f).collect()
    } else {
        items.iter().map(f).collect()
    }
}

/// A node was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    pub node: String,
    /// Nodes filtered.
    pub evaluated: usize,
    /// Nodes that passed every filter.
    pub feasible: usize,
}

/// No node was chosen: why, per node, in upstream's message form via `Display`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitError {
    pub num_nodes: usize,
    /// Set when a pre-filter rejected the pod for every node.
    pub pre_filter: Option<Status>,
    /// The rejecting status of each node that was filtered out.
    pub node_statuses: Vec<(String, Status)>,
    pub post_filter_msg: Option<String>,
    pub nominated_node: Option<String>,
    /// A post-filter tried and found nothing: an earlier nomination is void (upstream clears
    /// `status.nominatedNodeName` then, but keeps it when the pod may not preempt at all).
    pub clear_nomination: bool,
    /// Pods to evict so the pod fits on `nominated_node` (preemption).
    pub victims: Vec<std::sync::Arc<Pod>>,
    /// A plugin failed (not "does not fit"): the pod is retried with backoff.
    pub internal: Option<Status>,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.internal {
            return write!(f, "running {} plugin: {}", s.plugin, s.reasons.join(", "));
        }
        if self.num_nodes == 0 {
            return f.write_str("no nodes available to schedule pods");
        }
        write!(f, "0/{} nodes are available:", self.num_nodes)?;
        match &self.pre_filter {
            Some(s) => write!(f, " {}.", s.reasons.join(", "))?,
            None => {
                let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
                for (_, s) in &self.node_statuses {
                    for r in &s.reasons {
                        *histogram.entry(r).or_default() += 1;
                    }
                }
                let mut parts: Vec<String> = histogram
                    .into_iter()
                    .map(|(reason, n)| format!("{n} {reason}"))
                    .collect();
                parts.sort();
                if !parts.is_empty() {
                    write!(f, " {}.", parts.join(", "))?;
                }
            }
        }
        if let Some(m) = &self.post_filter_msg {
            // Recent kube-schedulers print one period after preemption's nested message.
            write!(f, " {}.", m.trim_end_matches('.'))?;
        }
        Ok(())
    }
}

impl FitError {
    /// The plugins that rejected the pod (pre-filter or any node's filter).
    pub fn plugins(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = self
            .pre_filter
            .iter()
            .chain(self.node_statuses.iter().map(|(_, s)| s))
            .map(|s| s.plugin)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl std::error::Error for FitError {}

/// Schedules `pod` on the nodes of `snapshot`. Ties between the best nodes are broken by
/// `tie_break` modulo their number (the caller passes a random or rotating value). Filters
/// every node; see [`schedule_sampled`] for upstream's adaptive sampling.
pub fn schedule(
    framework: &Framework,
    snapshot: &Snapshot,
    pod: &Pod,
    tie_break: usize,
) -> Result<ScheduleResult, Box<FitError>> {
    schedule_sampled(framework, snapshot, pod, tie_break, Sampling::All)
}

/// How many nodes a cycle filters before it scores what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Every node.
    All,
    /// Upstream's adaptive `percentageOfNodesToScore`: stop once
    /// [`feasible_nodes_to_find`] nodes passed the filters, starting at node `start` and
    /// wrapping around (the caller advances `start` by [`ScheduleResult::evaluated`]).
    Adaptive { start: usize },
}

/// Upstream's `numFeasibleNodesToFind` with the adaptive percentage: all nodes below 100;
/// otherwise `50 - nodes/125` percent (at least 5%), and never fewer than 100 nodes.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(MIN_FEASIBLE)
}

/// [`schedule`], filtering only as many nodes as `sampling` allows.
pub fn schedule_sampled(
    framework: &Framework,
    snapshot: &Snapshot,
    pod: &Pod,
    tie_break: usize,
    sampling: Sampling,
) -> Result<ScheduleResult, Box<FitError>> {
    let mut state = CycleState::default();
    let num_nodes = snapshot.nodes().len();
    let fail = |e: FitError| Err(Box::new(FitError { num_nodes, ..e }));

    if num_nodes == 0 {
        return fail(FitError::default());
    }
    let s = framework.run_pre_filter(&mut state, pod, snapshot);
    if s.code == Code::Error {
        return fail(FitError {
            internal: Some(s),
            ..Default::default()
        });
    }
    if !s.is_success() {
        // Every node is rejected with the pre-filter's status (post-filters see that).
        let node_statuses = snapshot
            .nodes()
            .iter()
            .map(|n| (n.name.clone(), s.clone()))
            .collect();
        let mut err = FitError {
            pre_filter: Some(s),
            node_statuses,
            ..Default::default()
        };
        post_filter(framework, snapshot, pod, &mut err);
        return fail(err);
    }

    let (start, wanted) = match sampling {
        Sampling::All => (0, num_nodes),
        Sampling::Adaptive { start } => (start % num_nodes, feasible_nodes_to_find(num_nodes)),
    };
    let nodes = snapshot.nodes();
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut rejected: Vec<(String, Status)> = Vec::new();
    let mut evaluated = 0;
    let mut next = 0;
    'batches: while next < num_nodes {
        let len = (wanted - feasible.len())
            .max(FILTER_BATCH_MIN)
            .min(num_nodes - next);
        let batch: Vec<&NodeInfo> = (next..next + len)
            .map(|j| &nodes[(start + j) % num_nodes])
            .collect();
        next += len;
        let statuses = map_maybe_parallel(&batch, |node| {
            filter_with_nominated(framework, &state, snapshot, pod, node)
        });
        for (node, s) in batch.into_iter().zip(statuses) {
            evaluated += 1;
            match s.code {
                Code::Success => {
                    feasible.push(node);
                    if feasible.len() >= wanted {
                        break 'batches;
                    }
                }
                Code::Error => {
                    return fail(FitError {
                        internal: Some(s),
                        ..Default::default()
                    })
                }
                _ => rejected.push((node.name.clone(), s)),
            }
        }
    }

    if feasible.is_empty() {
        let mut err = FitError {
            node_statuses: rejected,
            ..Default::default()
        };
        post_filter(framework, snapshot, pod, &mut err);
        return fail(err);
    }
    if feasible.len() == 1 {
        return Ok(ScheduleResult {
            node: feasible[0].name.clone(),
            evaluated,
            feasible: 1,
        });
    }

    match prioritize(framework, &mut state, pod, snapshot, &feasible) {
        Ok(totals) => {
            let best = totals.iter().copied().max().unwrap_or(0);
            let top: Vec<usize> = (0..totals.len()).filter(|i| totals[*i] == best).collect();
            let chosen = top[tie_break % top.len()];
            Ok(ScheduleResult {
                node: feasible[chosen].name.clone(),
                evaluated,
                feasible: feasible.len(),
            })
        }
        Err(s) => fail(FitError {
            internal: Some(s),
            ..Default::default()
        }),
    }
}

/// Runs the filters on `node`, first as if the pods nominated there (of at least the pod's
/// priority) were placed, then as it is; both must pass (upstream's
/// `RunFilterPluginsWithNominatedPods`, without re-running pre-filters for the nominated pods).
pub fn filter_with_nominated(
    framework: &Framework,
    state: &CycleState,
    snapshot: &Snapshot,
    pod: &Pod,
    node: &NodeInfo,
) -> Status {
    if snapshot.has_nominated() {
        let mut nominated = snapshot.nominated_for(&node.name, pod).peekable();
        if nominated.peek().is_some() {
            let mut with = node.clone();
            for p in nominated {
                with.add_pod(crate::snapshot::PodInfo::new(p.clone()));
            }
            let s = framework.run_filter(state, pod, &with);
            if !s.is_success() {
                return s;
            }
        }
    }
    framework.run_filter(state, pod, node)
}

/// Runs the post-filters until one succeeds; records its nomination or the failure message.
fn post_filter(framework: &Framework, snapshot: &Snapshot, pod: &Pod, err: &mut FitError) {
    for p in &framework.post_filter {
        let r = p.post_filter(framework, pod, snapshot, &err.node_statuses);
        if r.status.is_success() {
            err.nominated_node = r.nominated_node;
            err.victims = r.victims;
            err.post_filter_msg = None;
            break;
        }
        if r.nominated_node.as_deref() == Some("") {
            err.clear_nomination = true;
        }
        if !r.status.reasons.is_empty() {
            err.post_filter_msg = Some(r.status.reasons.join(", "));
        }
    }
}

/// Weighted, normalized score totals of `nodes`, in their order.
pub fn prioritize(
    framework: &Framework,
    state: &mut CycleState,
    pod: &Pod,
    snapshot: &Snapshot,
    nodes: &[&NodeInfo],
) -> Result<Vec<i64>, Status> {
    for p in &framework.pre_score {
        let s = p.pre_score(state, pod, snapshot, nodes);
        if s.code == Code::Error {
            return Err(s.with_plugin(p.name()));
        }
    }
    let state: &CycleState = state;
    let mut totals = vec![0i64; nodes.len()];
    for (p, weight) in &framework.score {
        let mut scores = map_maybe_parallel(nodes, |n| p.score(state, pod, n))
            .into_iter()
            .collect::<Result<Vec<i64>, Status>>()
            .map_err(|s| s.with_plugin(p.name()))?;
        let s = p.normalize(state, pod, nodes, &mut scores);
        if !s.is_success() {
            return Err(s.with_plugin(p.name()));
        }
        for (t, s) in totals.iter_mut().zip(&scores) {
            *t += s * weight;
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::plugins::default_framework;
    use crate::snapshot::testing::*;

    fn snapshot(nodes: Vec<k8s_openapi::api::core::v1::Node>) -> Snapshot {
        let mut s = Snapshot::new();
        for n in nodes {
            s.upsert_node(Arc::new(n));
        }
        s
    }

    #[test]
    fn batched_parallel_filtering_gives_the_node_by_node_outcome() {
        // 600 nodes (several filter batches, each shared out): only every 7th has room.
        let nodes: Vec<_> = (0..600)
            .map(|i| {
                let cpu = if i % 7 == 0 { "4" } else { "100m" };
                node(&format!("n{i:03}"), cpu, "1Gi", json!({}))
            })
            .collect();
        let s = snapshot(nodes);
        let p = pod_requesting("p", "1", "0");
        let fitting = (0..600).filter(|i| i % 7 == 0).count();
        let all = schedule(&default_framework(), &s, &p, 0).unwrap();
        assert_eq!((all.evaluated, all.feasible), (600, fitting));
        // Adaptive sampling wants 276 of 600: fewer fit, so every node is still looked at.
        let sampled = schedule_sampled(
            &default_framework(),
            &s,
            &p,
            0,
            Sampling::Adaptive { start: 5 },
        )
        .unwrap();
        assert_eq!((sampled.evaluated, sampled.feasible), (600, fitting));
        // With room everywhere, filtering stops at the 276th node from the start index.
        let roomy = snapshot(
            (0..600)
                .map(|i| node(&format!("n{i:03}"), "4", "1Gi", json!({})))
                .collect(),
        );
        let r = schedule_sampled(
            &default_framework(),
            &roomy,
            &p,
            0,
            Sampling::Adaptive { start: 590 },
        )
        .unwrap();
        assert_eq!((r.evaluated, r.feasible), (276, 276));
    }

    #[test]
    fn message_counts_reasons_per_node_in_upstream_form() {
        let s = snapshot(vec![
            node("a", "1", "1Gi", json!({})),
            node(
                "b",
                "4",
                "1Gi",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
            ),
            node(
                "c",
                "4",
                "1Gi",
                json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
            ),
        ]);
        let err =
            schedule(&default_framework(), &s, &pod_requesting("p", "2", "0"), 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) had untolerated taint {dedicated: gpu}. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn several_reasons_on_one_node_each_count() {
        let s = snapshot(vec![node("a", "1", "1Gi", json!({}))]);
        let err = schedule(
            &default_framework(),
            &s,
            &pod_requesting("p", "2", "2Gi"),
            0,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. \
             preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn adaptive_sampling_matches_upstream_figures() {
        assert_eq!(feasible_nodes_to_find(10), 10);
        assert_eq!(feasible_nodes_to_find(99), 99);
        assert_eq!(feasible_nodes_to_find(100), 100);
        assert_eq!(feasible_nodes_to_find(1000), 420);
        assert_eq!(feasible_nodes_to_find(5000), 500);
        assert_eq!(feasible_nodes_to_find(6000), 300);
        assert_eq!(feasible_nodes_to_find(100_000), 5000);
    }

    #[test]
    fn sampled_cycles_stop_at_enough_feasible_nodes_and_rotate() {
        let nodes = (0..1000)
            .map(|i| node(&format!("n{i:04}"), "4", "8Gi", json!({})))
            .collect();
        let s = snapshot(nodes);
        let p = pod_requesting("p", "1", "1Gi");
        let fw = default_framework();
        let r = schedule_sampled(&fw, &s, &p, 0, Sampling::Adaptive { start: 900 }).unwrap();
        assert_eq!((r.evaluated, r.feasible), (420, 420));
        // Wrapped around: the chosen node is among n0900..n0999 and n0000..n0319.
        let index: usize = r.node[1..].parse().unwrap();
        assert!(!(320..900).contains(&index), "{}", r.node);
        let all = schedule(&fw, &s, &p, 0).unwrap();
        assert_eq!((all.evaluated, all.feasible), (1000, 1000));
    }

    #[test]
    fn no_nodes_says_so() {
        let err = schedule(
            &default_framework(),
            &Snapshot::new(),
            &pod("p", json!({})),
            0,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "no nodes available to schedule pods");
    }

    #[test]
    fn least_allocated_node_wins_and_assumed_pods_count() {
        let mut s = snapshot(vec![
            node("a", "4", "8Gi", json!({})),
            node("b", "4", "8Gi", json!({})),
        ]);
        s.assume(Arc::new(pod_requesting("busy", "3", "6Gi")), "a");
        let r = schedule(
            &default_framework(),
            &s,
            &pod_requesting("p", "1", "1Gi"),
            0,
        )
        .unwrap();
        assert_eq!(r.node, "b");
        assert_eq!((r.evaluated, r.feasible), (2, 2));
    }

    #[test]
    fn score_order_golden() {
        // Golden ordering of default-profile totals for a small, mixed cluster.
        let s = snapshot(vec![
            node("empty", "4", "8Gi", json!({})),
            node("half", "4", "8Gi", json!({})),
            node(
                "preferred",
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"disk": "ssd"}}}),
            ),
            node(
                "soft-taint",
                "4",
                "8Gi",
                json!({"spec": {"taints": [{"key": "k", "effect": "PreferNoSchedule"}]}}),
            ),
        ]);
        let mut s = s;
        s.assume(Arc::new(pod_requesting("x", "2", "4Gi")), "half");
        let p = pod(
            "p",
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}],
                   "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                       {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}}]}}}),
        );
        let fw = default_framework();
        let nodes: Vec<&NodeInfo> = s.nodes().iter().collect();
        let totals = prioritize(&fw, &mut CycleState::default(), &p, &s, &nodes).unwrap();
        let named: Vec<(&str, i64)> = nodes.iter().map(|n| n.name.as_str()).zip(totals).collect();
        assert_eq!(
            named,
            vec![
                ("empty", 475),
                ("half", 425),
                ("preferred", 675),
                ("soft-taint", 175)
            ]
        );
    }

    #[test]
    fn room_made_for_a_nominated_pod_is_kept_from_lower_priorities() {
        let s0 = snapshot(vec![node("a", "2", "1Gi", json!({}))]);
        let mut s = s0;
        s.assume(Arc::new(pod_requesting("running", "1", "0")), "a");
        let mut nominated = pod_requesting("preemptor", "1", "0");
        nominated.spec.as_mut().unwrap().priority = Some(100);
        s.nominate(Arc::new(nominated), Some("a"));
        let err = schedule(
            &default_framework(),
            &s,
            &pod_requesting("low", "1", "0"),
            0,
        )
        .unwrap_err();
        assert_eq!(err.node_statuses[0].1.reasons, ["Insufficient cpu"]);
        // Only pods of higher priority than the nominated one may take its room.
        let mut high = pod_requesting("high", "1", "0");
        high.spec.as_mut().unwrap().priority = Some(200);
        assert_eq!(
            schedule(&default_framework(), &s, &high, 0).unwrap().node,
            "a"
        );
    }

    #[test]
    fn spreading_and_pod_affinity_score_order_golden() {
        // Default profile; a Service selects app=web so system default spreading applies; the
        // incoming web pod also prefers the db's host.
        let mut s = Snapshot::new();
        for (n, zone) in [("a", "z1"), ("b", "z1"), ("c", "z2")] {
            s.upsert_node(Arc::new(node(
                n,
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"kubernetes.io/hostname": n, "topology.kubernetes.io/zone": zone}}}),
            )));
        }
        let svc =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}))
            .unwrap();
        s.objects
            .services
            .insert("default/web".into(), Arc::new(svc));
        let labelled = |name: &str, app: &str, node: &str| {
            let mut p = pod_requesting(name, "500m", "512Mi");
            p.metadata.labels = Some([("app".to_string(), app.to_string())].into());
            p.spec.as_mut().unwrap().node_name = Some(node.into());
            p
        };
        s.upsert_bound_pod(Arc::new(labelled("w1", "web", "a")));
        s.upsert_bound_pod(Arc::new(labelled("w2", "web", "a")));
        s.upsert_bound_pod(Arc::new(labelled("d", "db", "b")));
        let mut p = labelled("p", "web", "");
        p.spec.as_mut().unwrap().node_name = None;
        p.spec.as_mut().unwrap().affinity = serde_json::from_value(json!({"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 50, "podAffinityTerm": {
                "labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}]}}))
        .unwrap();
        let fw = default_framework();
        let nodes: Vec<&NodeInfo> = s.nodes().iter().collect();
        let totals = prioritize(&fw, &mut CycleState::default(), &p, &s, &nodes).unwrap();
        let named: Vec<(&str, i64)> = nodes.iter().map(|n| n.name.as_str()).zip(totals).collect();
        // Per node: taints 3x100, fit (least allocated), spreading 2x (a 50, b 75, c 100),
        // pod affinity 2x (b 100), balanced allocation. b wins by affinity, c beats a by spread.
        assert_eq!(named, vec![("a", 561), ("b", 824), ("c", 686)]);
    }
}
