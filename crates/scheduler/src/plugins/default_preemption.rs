//! DefaultPreemption: when no node fits, find a node where evicting lower-priority pods lets the
//! pod fit, with as few and as unimportant victims as possible, and nominate it. Pure: the
//! victims are returned and the runtime deletes them.
//!
//! Upstream's algorithm: only nodes rejected as `Unschedulable` (not `...AndUnresolvable`) are
//! tried. On each, remove every lower-priority pod and re-run the filters; if the pod then fits,
//! add pods back most important first (those whose eviction would violate a
//! PodDisruptionBudget before the others), keeping each one that still lets the pod fit. Among
//! the candidate nodes pick, in order: fewest PDB violations, lowest highest victim priority,
//! lowest priority sum, fewest victims, latest start of the most important victims, first.

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;

use crate::cycle::FitError;
use crate::framework::{CycleState, Framework, Plugin, PostFilterPlugin, PostFilterResult};
use crate::labels::Selector;
use crate::snapshot::{pod_key, ClusterObjects, Snapshot};
use crate::status::{Code, Status};

pub const NAME: &str = "DefaultPreemption";
pub const REASON_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const REASON_NO_VICTIMS: &str = "No preemption victims found for incoming pod";
pub const NOT_ELIGIBLE_POLICY: &str = "not eligible due to preemptionPolicy=Never.";
pub const NOT_ELIGIBLE_TERMINATING: &str =
    "not eligible due to a terminating pod on the nominated node.";

pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn start_time(pod: &Pod) -> Timestamp {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0)
        .unwrap_or_else(Timestamp::now)
}

/// Upstream's `MoreImportantPod`: higher priority, then earlier start.
fn more_important(a: &Pod, b: &Pod) -> Ordering {
    priority(b)
        .cmp(&priority(a))
        .then_with(|| start_time(a).cmp(&start_time(b)))
}

/// The victims on one node.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    /// Most important first.
    pub victims: Vec<Arc<Pod>>,
    pub pdb_violations: usize,
}

#[derive(Debug, Default)]
pub struct DefaultPreemption;

impl DefaultPreemption {
    pub fn new() -> Self {
        DefaultPreemption
    }
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        framework: &Framework,
        pod: &Pod,
        snapshot: &Snapshot,
        filtered: &[(String, Status)],
    ) -> PostFilterResult {
        let fail = |msg: String| PostFilterResult {
            status: Status::unschedulable([format!("preemption: {msg}")]),
            ..Default::default()
        };
        if let Some(msg) = not_eligible(pod, snapshot, filtered) {
            return fail(msg.to_string());
        }
        let mut statuses: Vec<(String, Status)> = Vec::new();
        let mut candidates = Vec::new();
        // Upstream dry-runs until it has 10% of the nodes (at least 100) as candidates.
        let wanted = (filtered.len() / 10).max(100).min(filtered.len());
        // A scratch copy for dry runs, made only once a node has something to evict.
        let mut trial: Option<Snapshot> = None;
        let p = priority(pod);
        for (node, status) in filtered {
            if status.code != Code::Unschedulable {
                statuses.push((node.clone(), Status::unresolvable(REASON_NOT_HELPFUL)));
                continue;
            }
            if candidates.len() >= wanted {
                break;
            }
            let evictable = snapshot
                .node(node)
                .is_some_and(|n| n.pods.values().any(|v| priority(&v.pod) < p));
            if !evictable {
                statuses.push((node.clone(), Status::unresolvable(REASON_NO_VICTIMS)));
                continue;
            }
            let trial = trial.get_or_insert_with(|| snapshot.clone());
            match select_victims(framework, pod, trial, node) {
                Ok(c) => candidates.push(c),
                Err(s) => statuses.push((node.clone(), s)),
            }
        }
        match pick(candidates) {
            Some(c) => PostFilterResult {
                nominated_node: Some(c.node.clone()),
                victims: c.victims,
                status: Status::success(),
            },
            None => PostFilterResult {
                nominated_node: Some(String::new()),
                ..fail(
                    FitError {
                        num_nodes: snapshot.nodes().len(),
                        node_statuses: statuses,
                        ..Default::default()
                    }
                    .to_string(),
                )
            },
        }
    }
}

/// Why the pod may not preempt at all, if so.
fn not_eligible(
    pod: &Pod,
    snapshot: &Snapshot,
    filtered: &[(String, Status)],
) -> Option<&'static str> {
    let spec = pod.spec.as_ref()?;
    if spec.preemption_policy.as_deref() == Some("Never") {
        return Some(NOT_ELIGIBLE_POLICY);
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())?;
    let unresolvable = filtered
        .iter()
        .any(|(n, s)| n == nominated && s.code == Code::UnschedulableAndUnresolvable);
    if unresolvable {
        return None;
    }
    let node = snapshot.node(nominated)?;
    let p = priority(pod);
    node.pods
        .values()
        .any(|v| v.pod.metadata.deletion_timestamp.is_some() && priority(&v.pod) < p)
        .then_some(NOT_ELIGIBLE_TERMINATING)
}

/// Re-runs pre-filters over `snapshot` and the filters on `node`.
fn fits(framework: &Framework, pod: &Pod, snapshot: &Snapshot, node: &str) -> Status {
    let mut state = CycleState::default();
    let s = framework.run_pre_filter(&mut state, pod, snapshot);
    if !s.is_success() {
        return s;
    }
    match snapshot.node(node) {
        Some(n) => crate::cycle::filter_with_nominated(framework, &state, snapshot, pod, n),
        None => Status::unresolvable("node not found"),
    }
}

/// The minimal victims on `node`, or why preempting there cannot help. `trial` is a scratch
/// copy of the snapshot; it is left as it was found.
pub fn select_victims(
    framework: &Framework,
    pod: &Pod,
    trial: &mut Snapshot,
    node: &str,
) -> Result<Candidate, Status> {
    let info = trial
        .node(node)
        .ok_or_else(|| Status::unresolvable("node not found"))?;
    let p = priority(pod);
    let mut potential: Vec<Arc<Pod>> = info
        .pods
        .values()
        .filter(|v| priority(&v.pod) < p)
        .map(|v| v.pod.clone())
        .collect();
    if potential.is_empty() {
        return Err(Status::unresolvable(REASON_NO_VICTIMS));
    }
    for v in &potential {
        trial.remove_pod(&pod_key(v));
    }
    let s = fits(framework, pod, trial, node);
    if !s.is_success() {
        for v in &potential {
            trial.assume(v.clone(), node);
        }
        return Err(s);
    }
    potential.sort_by(|a, b| more_important(a, b));
    let (violating, non_violating) = split_by_pdb(&potential, &trial.objects);
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (group, violates) in [(violating, true), (non_violating, false)] {
        for v in group {
            trial.assume(v.clone(), node);
            if !fits(framework, pod, trial, node).is_success() {
                trial.remove_pod(&pod_key(&v));
                victims.push(v);
                pdb_violations += usize::from(violates);
            }
        }
    }
    for v in &victims {
        trial.assume(v.clone(), node);
    }
    victims.sort_by(|a, b| more_important(a, b));
    Ok(Candidate {
        node: node.to_string(),
        victims,
        pdb_violations,
    })
}

/// Splits pods (most important first) into those whose eviction would exceed a matching
/// budget's `disruptionsAllowed` and the rest, spending the budgets in order.
fn split_by_pdb(pods: &[Arc<Pod>], objects: &ClusterObjects) -> (Vec<Arc<Pod>>, Vec<Arc<Pod>>) {
    let pdbs: Vec<&Arc<PodDisruptionBudget>> = objects.pdbs.values().collect();
    let mut allowed: Vec<i32> = pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for pod in pods {
        let mut violated = false;
        if pod.metadata.labels.as_ref().is_some_and(|l| !l.is_empty()) {
            for (i, pdb) in pdbs.iter().enumerate() {
                if pdb.metadata.namespace != pod.metadata.namespace {
                    continue;
                }
                let sel = Selector::from_api(pdb.spec.as_ref().and_then(|s| s.selector.as_ref()));
                if sel.is_empty() || !sel.matches(pod.metadata.labels.as_ref()) {
                    continue;
                }
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(name));
                if disrupted {
                    continue;
                }
                allowed[i] -= 1;
                if allowed[i] < 0 {
                    violated = true;
                }
            }
        }
        if violated {
            violating.push(pod.clone());
        } else {
            fine.push(pod.clone());
        }
    }
    (violating, fine)
}

/// Upstream's `pickOneNodeForPreemption`.
pub fn pick(mut candidates: Vec<Candidate>) -> Option<Candidate> {
    if let Some(i) = candidates.iter().position(|c| c.victims.is_empty()) {
        return Some(candidates.swap_remove(i));
    }
    type Key = fn(&Candidate) -> i128;
    let criteria: [Key; 5] = [
        |c| c.pdb_violations as i128,
        |c| c.victims.first().map_or(0, |v| i128::from(priority(v))),
        |c| {
            c.victims
                .iter()
                .map(|v| i128::from(priority(v)) + i128::from(i32::MAX) + 1)
                .sum()
        },
        |c| c.victims.len() as i128,
        // Latest start among the most important victims wins: negate to minimise.
        |c| {
            let top = c.victims.first().map_or(0, |v| priority(v));
            let earliest = c
                .victims
                .iter()
                .filter(|v| priority(v) == top)
                .map(|v| start_time(v))
                .min()
                .unwrap_or_else(Timestamp::now);
            -earliest.as_nanosecond()
        },
    ];
    for key in criteria {
        if candidates.len() <= 1 {
            break;
        }
        let best = candidates.iter().map(key).min()?;
        candidates.retain(|c| key(c) == best);
    }
    candidates.into_iter().next()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::default_framework;
    use crate::snapshot::testing::*;

    /// Name, placed pods, the preemptor, the nominated node, the victims.
    type Case = (
        &'static str,
        Vec<(&'static str, Pod)>,
        Pod,
        Option<&'static str>,
        Vec<&'static str>,
    );

    fn prio(name: &str, cpu: &str, p: i32, extra: serde_json::Value) -> Pod {
        let mut pod = pod_requesting(name, cpu, "0");
        pod.spec.as_mut().unwrap().priority = Some(p);
        let meta: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta =
            serde_json::from_value(extra.get("metadata").cloned().unwrap_or(json!({}))).unwrap();
        if meta.labels.is_some() {
            pod.metadata.labels = meta.labels;
        }
        if let Some(st) = extra.get("startTime") {
            pod.status = Some(serde_json::from_value(json!({"startTime": st})).unwrap());
        }
        pod
    }

    fn cluster(nodes: &[(&str, &str)], placed: Vec<(&str, Pod)>) -> Snapshot {
        let mut s = Snapshot::new();
        for (n, cpu) in nodes {
            s.upsert_node(Arc::new(node(n, cpu, "8Gi", json!({}))));
        }
        for (n, mut p) in placed {
            p.spec.as_mut().unwrap().node_name = Some(n.to_string());
            s.upsert_bound_pod(Arc::new(p));
        }
        s
    }

    fn preempt(s: &Snapshot, p: &Pod) -> PostFilterResult {
        let fw = default_framework();
        let err = crate::cycle::schedule(&fw, s, p, 0).unwrap_err();
        DefaultPreemption::new().post_filter(&fw, p, s, &err.node_statuses)
    }

    fn names(v: &[Arc<Pod>]) -> Vec<String> {
        v.iter().map(|p| p.metadata.name.clone().unwrap()).collect()
    }

    #[test]
    fn picks_the_node_and_the_fewest_least_important_victims() {
        let t = |s: &str| json!({"startTime": s});
        let cases: Vec<Case> = vec![
            (
                "only lower-priority pods are victims",
                vec![
                    ("a", prio("hi", "1", 100, json!({}))),
                    ("a", prio("lo", "1", 0, json!({}))),
                    ("b", prio("top", "2", 100, json!({}))),
                ],
                prio("p", "1", 50, json!({})),
                Some("a"),
                vec!["lo"],
            ),
            (
                "a node needing a lower-priority victim beats one needing a higher one",
                vec![
                    ("a", prio("mid", "2", 20, json!({}))),
                    ("b", prio("low", "2", 10, json!({}))),
                ],
                prio("p", "1", 50, json!({})),
                Some("b"),
                vec!["low"],
            ),
            (
                "reprieve keeps pods that need not go",
                vec![
                    ("a", prio("x", "1", 1, t("2024-01-01T00:00:00Z"))),
                    ("a", prio("y", "1", 2, t("2024-01-01T00:00:00Z"))),
                    ("b", prio("top", "2", 100, json!({}))),
                ],
                prio("p", "1", 50, json!({})),
                Some("a"),
                vec!["x"],
            ),
            (
                "fewer victims wins at equal priorities",
                vec![
                    ("a", prio("a1", "1", 1, json!({}))),
                    ("a", prio("a2", "1", 1, json!({}))),
                    ("b", prio("b1", "2", 1, json!({}))),
                ],
                prio("p", "2", 50, json!({})),
                Some("b"),
                vec!["b1"],
            ),
            (
                "equal priority pods are not victims",
                vec![
                    ("a", prio("eq", "2", 50, json!({}))),
                    ("b", prio("eq2", "2", 50, json!({}))),
                ],
                prio("p", "1", 50, json!({})),
                None,
                vec![],
            ),
        ];
        for (name, placed, p, want_node, want_victims) in cases {
            let s = cluster(&[("a", "2"), ("b", "2")], placed);
            let r = preempt(&s, &p);
            let nominated = r.nominated_node.as_deref().filter(|n| !n.is_empty());
            assert_eq!(nominated, want_node, "{name}");
            assert_eq!(names(&r.victims), want_victims, "{name}");
        }
    }

    #[test]
    fn budgets_are_respected_where_possible() {
        let mut s = cluster(
            &[("a", "1"), ("b", "1")],
            vec![
                (
                    "a",
                    prio(
                        "guarded",
                        "1",
                        0,
                        json!({"metadata": {"labels": {"app": "db"}}}),
                    ),
                ),
                (
                    "b",
                    prio(
                        "free",
                        "1",
                        0,
                        json!({"metadata": {"labels": {"app": "web"}}}),
                    ),
                ),
            ],
        );
        let pdb: PodDisruptionBudget = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "db"}}},
            "status": {"disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1}}))
        .unwrap();
        s.objects.pdbs.insert("default/db".into(), Arc::new(pdb));
        let r = preempt(&s, &prio("p", "1", 10, json!({})));
        assert_eq!(r.nominated_node.as_deref(), Some("b"));
        assert_eq!(names(&r.victims), ["free"]);
    }

    #[test]
    fn failure_messages_follow_upstream() {
        let s = cluster(&[("a", "2"), ("b", "2")], vec![]);
        let mut tainted = node(
            "t",
            "2",
            "8Gi",
            json!({"spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}),
        );
        tainted.metadata.name = Some("t".into());
        let mut s2 = s;
        s2.upsert_node(Arc::new(tainted));
        let fw = default_framework();
        let p = prio("p", "4", 10, json!({}));
        let mut err = *crate::cycle::schedule(&fw, &s2, &p, 0).unwrap_err();
        let r = DefaultPreemption::new().post_filter(&fw, &p, &s2, &err.node_statuses);
        err.post_filter_msg = Some(r.status.reasons.join(", "));
        assert_eq!(
            err.to_string(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, 2 Insufficient cpu. \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
             2 No preemption victims found for incoming pod."
        );
        let mut never = p.clone();
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let r = DefaultPreemption::new().post_filter(&fw, &never, &s2, &err.node_statuses);
        assert_eq!(
            r.status.reasons,
            ["preemption: not eligible due to preemptionPolicy=Never."]
        );
    }

    #[test]
    fn a_failed_search_voids_the_nomination_but_ineligibility_keeps_it() {
        let s = cluster(&[("a", "1")], vec![("a", prio("eq", "1", 5, json!({})))]);
        let fw = default_framework();
        let p = prio("p", "1", 5, json!({}));
        let err = crate::cycle::schedule(&fw, &s, &p, 0).unwrap_err();
        assert!(err.clear_nomination && err.nominated_node.is_none());
        let mut never = p;
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let err = crate::cycle::schedule(&fw, &s, &never, 0).unwrap_err();
        assert!(!err.clear_nomination);
    }
}
