//! PodTopologySpread: `DoNotSchedule` constraints filter nodes whose domain would exceed
//! `maxSkew` over the least-loaded eligible domain; `ScheduleAnyway` constraints (or, for a pod
//! with no constraints that belongs to a Service, ReplicaSet, StatefulSet or
//! ReplicationController, the system defaults: zone skew 5 and hostname skew 3) score emptier
//! domains higher.
//!
//! Upstream's details kept: `matchLabelKeys` values join the selector; `minDomains` (default 1)
//! treats the global minimum as 0 while fewer domains are eligible; which nodes count is decided
//! per constraint by `nodeAffinityPolicy` (default Honor) and `nodeTaintsPolicy` (default
//! Ignore); terminating pods and pods of other namespaces never count; an empty selector counts
//! nothing; scoring weighs each constraint by `ln(domains + 2)`.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use navarch_api::selector::LabelReq;

use crate::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin, MAX_NODE_SCORE,
};
use crate::labels::Selector;
use crate::plugins::node_affinity::required_matches;
use crate::plugins::taint_toleration::tolerates;
use crate::snapshot::{ClusterObjects, NodeInfo, PodInfo, Snapshot};
use crate::status::Status;

pub const NAME: &str = "PodTopologySpread";
pub const REASON_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
pub const REASON_MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// One constraint, with its selector resolved.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub max_skew: i64,
    pub topology_key: String,
    pub selector: Selector,
    pub min_domains: i64,
    pub honor_node_affinity: bool,
    pub honor_node_taints: bool,
}

impl Constraint {
    fn from_api(c: &TopologySpreadConstraint, pod: &Pod) -> Self {
        let mut selector = Selector::from_api(c.label_selector.as_ref());
        let labels = pod.metadata.labels.as_ref();
        for key in c.match_label_keys.iter().flatten() {
            if let Some(v) = labels.and_then(|l| l.get(key)) {
                selector.add(LabelReq::In(key.clone(), vec![v.clone()]));
            }
        }
        Constraint {
            max_skew: i64::from(c.max_skew),
            topology_key: c.topology_key.clone(),
            selector,
            min_domains: c.min_domains.map_or(1, i64::from),
            honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether the node's pods count for this constraint (its inclusion policies).
    fn includes(&self, pod: &Pod, node: &NodeInfo) -> bool {
        if self.honor_node_affinity && !required_matches(pod, node) {
            return false;
        }
        if self.honor_node_taints {
            let tols = pod
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.as_deref())
                .unwrap_or_default();
            let taints = node
                .node
                .spec
                .as_ref()
                .and_then(|s| s.taints.as_deref())
                .unwrap_or_default();
            let blocked = taints.iter().any(|taint| {
                matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute")
                    && !tols.iter().any(|t| tolerates(t, taint))
            });
            if blocked {
                return false;
            }
        }
        true
    }
}

/// Pods on `pods` in `ns`, not terminating, that `selector` selects; an empty selector counts 0.
fn count_matching<'a>(
    pods: impl Iterator<Item = &'a PodInfo>,
    selector: &Selector,
    ns: &str,
) -> i64 {
    if selector.is_empty() {
        return 0;
    }
    pods.filter(|p| {
        p.pod.metadata.deletion_timestamp.is_none()
            && p.pod.metadata.namespace.as_deref().unwrap_or("default") == ns
            && selector.matches(p.pod.metadata.labels.as_ref())
    })
    .count() as i64
}

fn has_all_keys(node: &NodeInfo, constraints: &[Constraint]) -> bool {
    let labels = node.labels();
    constraints
        .iter()
        .all(|c| labels.is_some_and(|l| l.contains_key(&c.topology_key)))
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// The selector of the workloads a pod belongs to (upstream's `DefaultSelector`): the merged
/// selectors of Services selecting it, plus its controller's selector.
pub fn default_selector(pod: &Pod, objects: &ClusterObjects) -> Selector {
    let ns = namespace(pod);
    let labels = pod.metadata.labels.as_ref();
    let mut set: BTreeMap<String, String> = BTreeMap::new();
    for svc in ClusterObjects::in_namespace(&objects.services, ns) {
        if let Some(sel) = svc.spec.as_ref().and_then(|s| s.selector.as_ref()) {
            if Selector::from_map(sel).matches(labels) {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
    }
    let mut selector = Selector::from_map(&set);
    let owner = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    let Some(owner) = owner else {
        return selector;
    };
    let key = format!("{ns}/{}", owner.name);
    let extra = match (owner.api_version.as_str(), owner.kind.as_str()) {
        ("v1", "ReplicationController") => {
            if let Some(sel) = objects
                .replication_controllers
                .get(&key)
                .and_then(|rc| rc.spec.as_ref()?.selector.as_ref())
            {
                set.extend(sel.iter().map(|(k, v)| (k.clone(), v.clone())));
                selector = Selector::from_map(&set);
            }
            None
        }
        ("apps/v1", "ReplicaSet") => objects
            .replica_sets
            .get(&key)
            .and_then(|rs| rs.spec.as_ref())
            .map(|s| Selector::from_api(Some(&s.selector))),
        ("apps/v1", "StatefulSet") => objects
            .stateful_sets
            .get(&key)
            .and_then(|ss| ss.spec.as_ref())
            .map(|s| Selector::from_api(Some(&s.selector))),
        _ => None,
    };
    if let Some(Selector::Reqs(reqs)) = extra {
        for r in reqs.0 {
            selector.add(r);
        }
    }
    selector
}

/// Where constraints come from when a pod has none.
#[derive(Debug, Clone)]
pub enum Defaults {
    /// Upstream's system defaults: hostname (skew 3) and zone (skew 5), ScheduleAnyway.
    System,
    /// Explicit default constraints (`defaultingType: List`); their selectors are ignored and
    /// replaced by the pod's workload selector.
    List(Vec<TopologySpreadConstraint>),
}

#[derive(Debug)]
pub struct PodTopologySpread {
    defaults: Defaults,
}

impl Default for PodTopologySpread {
    fn default() -> Self {
        Self::new()
    }
}

impl PodTopologySpread {
    pub fn new() -> Self {
        Self::with_defaults(Defaults::System)
    }

    pub fn with_defaults(defaults: Defaults) -> Self {
        PodTopologySpread { defaults }
    }

    fn system_defaulted(&self) -> bool {
        matches!(self.defaults, Defaults::System)
    }

    /// The pod's constraints with `whenUnsatisfiable == action`, or the defaults.
    pub fn constraints(
        &self,
        pod: &Pod,
        objects: &ClusterObjects,
        action: &str,
    ) -> Vec<Constraint> {
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_deref())
            .unwrap_or_default();
        if !own.is_empty() {
            return own
                .iter()
                .filter(|c| c.when_unsatisfiable == action)
                .map(|c| Constraint::from_api(c, pod))
                .collect();
        }
        let system;
        let defaults = match &self.defaults {
            Defaults::List(l) => l,
            Defaults::System => {
                system = [(HOSTNAME_LABEL, 3), (ZONE_LABEL, 5)].map(|(key, skew)| {
                    TopologySpreadConstraint {
                        max_skew: skew,
                        topology_key: key.into(),
                        when_unsatisfiable: "ScheduleAnyway".into(),
                        ..Default::default()
                    }
                });
                &system[..]
            }
        };
        let wanted: Vec<&TopologySpreadConstraint> = defaults
            .iter()
            .filter(|c| c.when_unsatisfiable == action)
            .collect();
        if wanted.is_empty() {
            return Vec::new();
        }
        let selector = default_selector(pod, objects);
        if selector.is_empty() {
            return Vec::new();
        }
        wanted
            .into_iter()
            .map(|c| Constraint {
                selector: selector.clone(),
                ..Constraint::from_api(c, pod)
            })
            .collect()
    }
}

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        NAME
    }
}

struct FilterState {
    constraints: Vec<Constraint>,
    /// Per constraint: domain value → matching pods, for every eligible domain.
    counts: Vec<HashMap<String, i64>>,
}

impl FilterState {
    fn min_match(&self, i: usize) -> i64 {
        let counts = &self.counts[i];
        if (counts.len() as i64) < self.constraints[i].min_domains {
            return 0;
        }
        counts.values().copied().min().unwrap_or(i64::MAX / 2)
    }
}

impl PreFilterPlugin for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status {
        let constraints = self.constraints(pod, &snapshot.objects, "DoNotSchedule");
        if constraints.is_empty() {
            return Status::skip();
        }
        let ns = namespace(pod);
        let mut counts = vec![HashMap::new(); constraints.len()];
        for node in snapshot.nodes() {
            if !has_all_keys(node, &constraints) {
                continue;
            }
            let labels = node.labels().expect("checked above");
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, node) {
                    continue;
                }
                let n = count_matching(node.pods.values(), &c.selector, ns);
                *counts[i]
                    .entry(labels[&c.topology_key].clone())
                    .or_default() += n;
            }
        }
        state.write(
            NAME,
            FilterState {
                constraints,
                counts,
            },
        );
        Status::success()
    }
}

impl FilterPlugin for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels().and_then(|l| l.get(&c.topology_key)) else {
                return Status::unresolvable(REASON_MISSING_LABEL);
            };
            let self_match = i64::from(c.selector.matches(pod.metadata.labels.as_ref()));
            let here = s.counts[i].get(value).copied().unwrap_or(0);
            if here + self_match - s.min_match(i) > c.max_skew {
                return Status::unschedulable([REASON_CONSTRAINTS]);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<Constraint>,
    /// Per constraint (non-hostname): domain value → matching pods.
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
    ignored: Vec<String>,
}

impl PreScorePlugin for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[&NodeInfo],
    ) -> Status {
        if nodes.is_empty() || snapshot.nodes().is_empty() {
            return Status::success();
        }
        let constraints = self.constraints(pod, &snapshot.objects, "ScheduleAnyway");
        if constraints.is_empty() {
            return Status::skip();
        }
        let own = pod
            .spec
            .as_ref()
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .is_some_and(|c| !c.is_empty());
        let require_all = own || !self.system_defaulted();
        let mut ignored = Vec::new();
        let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); constraints.len()];
        for node in nodes {
            if require_all && !has_all_keys(node, &constraints) {
                ignored.push(node.name.clone());
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if c.topology_key == HOSTNAME_LABEL {
                    continue;
                }
                let value = node
                    .labels()
                    .and_then(|l| l.get(&c.topology_key))
                    .cloned()
                    .unwrap_or_default();
                counts[i].entry(value).or_insert(0);
            }
        }
        let weights = constraints
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == HOSTNAME_LABEL {
                    nodes.len() - ignored.len()
                } else {
                    counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        let ns = namespace(pod);
        for node in snapshot.nodes() {
            if require_all && !has_all_keys(node, &constraints) {
                continue;
            }
            for (i, c) in constraints.iter().enumerate() {
                if !c.includes(pod, node) {
                    continue;
                }
                let value = node
                    .labels()
                    .and_then(|l| l.get(&c.topology_key))
                    .cloned()
                    .unwrap_or_default();
                if let Some(n) = counts[i].get_mut(&value) {
                    *n += count_matching(node.pods.values(), &c.selector, ns);
                }
            }
        }
        state.write(
            NAME,
            ScoreState {
                constraints,
                counts,
                weights,
                ignored,
            },
        );
        Status::success()
    }
}

impl ScorePlugin for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(s) = state.read::<ScoreState>(NAME) else {
            return Ok(0);
        };
        if s.ignored.contains(&node.name) {
            return Ok(0);
        }
        let mut score = 0f64;
        for (i, c) in s.constraints.iter().enumerate() {
            let Some(value) = node.labels().and_then(|l| l.get(&c.topology_key)) else {
                continue;
            };
            let n = if c.topology_key == HOSTNAME_LABEL {
                count_matching(node.pods.values(), &c.selector, namespace(pod))
            } else {
                s.counts[i].get(value).copied().unwrap_or(0)
            };
            score += n as f64 * s.weights[i] + (c.max_skew - 1) as f64;
        }
        Ok(score.round() as i64)
    }

    /// Upstream's normalization: fewer matching pods score higher; ignored nodes score 0.
    fn normalize(
        &self,
        state: &CycleState,
        _pod: &Pod,
        nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        let Some(s) = state.read::<ScoreState>(NAME) else {
            return Status::success();
        };
        let ignored = |i: usize| s.ignored.contains(&nodes[i].name);
        let mut min = i64::MAX;
        let mut max = 0;
        for (i, v) in scores.iter().enumerate() {
            if ignored(i) {
                continue;
            }
            min = min.min(*v);
            max = max.max(*v);
        }
        for (i, v) in scores.iter_mut().enumerate() {
            *v = if ignored(i) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *v) / max
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Service;
    use serde_json::{json, Value};

    use super::*;
    use crate::cycle::prioritize;
    use crate::framework::Framework;
    use crate::plugins::priority_sort::PrioritySort;
    use crate::snapshot::testing::*;
    use crate::Code;

    /// Name, placed pods (node, pod), the incoming pod, the expected outcome per node.
    type Case<T> = (&'static str, Vec<(&'static str, Pod)>, Pod, Vec<T>);

    fn web(name: &str, spec: Value) -> Pod {
        let mut p = pod(name, spec);
        p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        p
    }

    /// Nodes a, b in zone z1; c in z2; d in z3 (d tainted, and labelled `pool: spare`).
    fn cluster(placed: Vec<(&str, Pod)>) -> Snapshot {
        let mut s = Snapshot::new();
        for (n, zone, extra) in [
            ("a", "z1", json!({})),
            ("b", "z1", json!({})),
            ("c", "z2", json!({})),
            (
                "d",
                "z3",
                json!({"metadata": {"labels": {"pool": "spare"}},
                       "spec": {"taints": [{"key": "spare", "effect": "NoSchedule"}]}}),
            ),
        ] {
            let mut n = node(n, "4", "8Gi", extra);
            let labels = n.metadata.labels.get_or_insert_with(Default::default);
            labels.insert(ZONE_LABEL.into(), zone.into());
            labels.insert(HOSTNAME_LABEL.into(), n.metadata.name.clone().unwrap());
            s.upsert_node(Arc::new(n));
        }
        for (n, mut p) in placed {
            p.spec.as_mut().unwrap().node_name = Some(n.into());
            s.upsert_bound_pod(Arc::new(p));
        }
        s
    }

    fn spread(key: &str, skew: i32, when: &str, extra: Value) -> Value {
        let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
                           "labelSelector": {"matchLabels": {"app": "web"}}});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        json!({"topologySpreadConstraints": [c]})
    }

    fn feasible(s: &Snapshot, p: &Pod) -> Vec<String> {
        let pl = PodTopologySpread::new();
        let mut state = CycleState::default();
        pl.pre_filter(&mut state, p, s);
        s.nodes()
            .iter()
            .filter(|n| pl.filter(&state, p, n).is_success())
            .map(|n| n.name.clone())
            .collect()
    }

    #[test]
    fn do_not_schedule_filters_by_skew() {
        let z = |extra| spread(ZONE_LABEL, 1, "DoNotSchedule", extra);
        let zones_z1_z2 = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": ZONE_LABEL, "operator": "In", "values": ["z1", "z2"]}]}]}}});
        let cases: Vec<Case<&str>> = vec![
            ("empty cluster: anywhere", vec![], web("p", z(json!({}))), vec!["a", "b", "c", "d"]),
            (
                "z1 has one, z2 and z3 none: not z1",
                vec![("a", web("w1", json!({})))],
                web("p", z(json!({}))),
                vec!["c", "d"],
            ),
            (
                "other namespaces and terminating pods do not count",
                vec![
                    ("a", {
                        let mut p = web("w1", json!({}));
                        p.metadata.namespace = Some("other".into());
                        p
                    }),
                    ("c", {
                        let mut p = web("w2", json!({}));
                        p.metadata.deletion_timestamp = Some(
                            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                            ),
                        );
                        p
                    }),
                ],
                web("p", z(json!({}))),
                vec!["a", "b", "c", "d"],
            ),
            (
                "nodeAffinityPolicy Honor: z3 is outside the pod's affinity, so it does not pin the min",
                vec![("a", web("w1", json!({}))), ("c", web("w2", json!({})))],
                web("p", {
                    let mut s = z(json!({}));
                    s["affinity"] = zones_z1_z2.clone();
                    s
                }),
                vec!["a", "b", "c", "d"],
            ),
            (
                "nodeAffinityPolicy Ignore: the empty z3 is the min",
                vec![("a", web("w1", json!({}))), ("c", web("w2", json!({})))],
                web("p", {
                    let mut s = z(json!({"nodeAffinityPolicy": "Ignore"}));
                    s["affinity"] = zones_z1_z2.clone();
                    s
                }),
                vec!["d"],
            ),
            (
                "minDomains above the domain count makes the global minimum 0",
                vec![("c", web("w1", json!({}))), ("a", web("w2", json!({})))],
                web("p", z(json!({"minDomains": 4}))),
                vec!["d"],
            ),
            (
                "a pod the selector does not select adds no skew",
                vec![("a", web("w1", json!({})))],
                pod("p", z(json!({}))),
                vec!["a", "b", "c", "d"],
            ),
            (
                "matchLabelKeys narrows counting to the same label values",
                vec![("a", {
                    let mut p = web("w1", json!({}));
                    p.metadata.labels.as_mut().unwrap().insert("rev".into(), "1".into());
                    p
                })],
                {
                    let mut p = web("p", z(json!({"matchLabelKeys": ["rev"]})));
                    p.metadata.labels.as_mut().unwrap().insert("rev".into(), "2".into());
                    p
                },
                vec!["a", "b", "c", "d"],
            ),
        ];
        for (name, placed, p, want) in cases {
            let s = cluster(placed);
            assert_eq!(feasible(&s, &p), want, "{name}");
        }
    }

    #[test]
    fn taints_policy_honor_excludes_tainted_domains() {
        let s = cluster(vec![
            ("a", web("w1", json!({}))),
            ("c", web("w2", json!({}))),
        ]);
        // Ignore (default): z3 is an empty eligible domain, so min is 0 and z1/z2 are full.
        let p = web("p", spread(ZONE_LABEL, 1, "DoNotSchedule", json!({})));
        assert_eq!(feasible(&s, &p), ["d"]);
        let p = web(
            "p",
            spread(
                ZONE_LABEL,
                1,
                "DoNotSchedule",
                json!({"nodeTaintsPolicy": "Honor"}),
            ),
        );
        assert_eq!(feasible(&s, &p), ["a", "b", "c", "d"]);
    }

    #[test]
    fn missing_topology_label_is_unresolvable() {
        let s = cluster(vec![]);
        let p = web("p", spread("rack", 1, "DoNotSchedule", json!({})));
        let pl = PodTopologySpread::new();
        let mut state = CycleState::default();
        pl.pre_filter(&mut state, &p, &s);
        let st = pl.filter(&state, &p, &s.nodes()[0]);
        assert_eq!(st.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(st.reasons, [REASON_MISSING_LABEL]);
        let s = cluster(vec![("a", web("w", json!({})))]);
        let p = web("p", spread(ZONE_LABEL, 1, "DoNotSchedule", json!({})));
        pl.pre_filter(&mut state, &p, &s);
        let st = pl.filter(&state, &p, &s.nodes()[0]);
        assert_eq!(
            (st.code, st.reasons),
            (Code::Unschedulable, vec![REASON_CONSTRAINTS.to_string()])
        );
    }

    fn scores(s: &Snapshot, p: &Pod) -> Vec<i64> {
        let pl = Arc::new(PodTopologySpread::new());
        let mut fw = Framework::new(Arc::new(PrioritySort::new()));
        fw.pre_score = vec![pl.clone()];
        fw.score = vec![(pl, 1)];
        let nodes: Vec<&NodeInfo> = s.nodes().iter().collect();
        prioritize(&fw, &mut CycleState::default(), p, s, &nodes).unwrap()
    }

    #[test]
    fn schedule_anyway_scores_golden() {
        let placed = || {
            vec![
                ("a", web("w1", json!({}))),
                ("a", web("w2", json!({}))),
                ("c", web("w3", json!({}))),
            ]
        };
        let cases: Vec<Case<i64>> = vec![
            (
                "zone: z1 has 2, z2 has 1, z3 none",
                placed(),
                web("p", spread(ZONE_LABEL, 1, "ScheduleAnyway", json!({}))),
                // raw = count * ln(3 + 2) rounded: 3, 3, 2, 0 → 100*(3+0-s)/3.
                vec![0, 0, 33, 100],
            ),
            (
                "hostname",
                placed(),
                web("p", spread(HOSTNAME_LABEL, 1, "ScheduleAnyway", json!({}))),
                // raw = count * ln(4 + 2): 4, 0, 2, 0.
                vec![0, 100, 50, 100],
            ),
            (
                "nodes without the key are ignored and score 0",
                placed(),
                web("p", spread("pool", 1, "ScheduleAnyway", json!({}))),
                vec![0, 0, 0, 100],
            ),
            (
                "no constraints and no workload: nothing",
                placed(),
                web("p", json!({})),
                vec![0, 0, 0, 0],
            ),
        ];
        for (name, placed, p, want) in cases {
            let s = cluster(placed);
            assert_eq!(scores(&s, &p), want, "{name}");
        }
    }

    #[test]
    fn system_defaults_apply_to_pods_of_a_service_or_replica_set() {
        let mut s = cluster(vec![
            ("a", web("w1", json!({}))),
            ("a", web("w2", json!({}))),
            ("b", web("w3", json!({}))),
        ]);
        let svc: Service =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}))
            .unwrap();
        s.objects
            .services
            .insert("default/web".into(), Arc::new(svc));
        let p = web("p", json!({}));
        let c = PodTopologySpread::new().constraints(&p, &s.objects, "ScheduleAnyway");
        assert_eq!(
            c.iter()
                .map(|c| (c.topology_key.as_str(), c.max_skew))
                .collect::<Vec<_>>(),
            [(HOSTNAME_LABEL, 3), (ZONE_LABEL, 5)]
        );
        assert!(PodTopologySpread::new()
            .constraints(&p, &s.objects, "DoNotSchedule")
            .is_empty());
        // zone: z1 3 pods, z2 0, z3 0 (weight ln 5); host: a 2, b 1 (weight ln 6); plus
        // maxSkew-1 per constraint: raw a 14, b 13, c 6, d 6 → 100*(14+6-s)/14.
        assert_eq!(scores(&s, &p), vec![42, 50, 100, 100]);

        // Owned by a ReplicaSet: its selector is used even without a Service.
        s.objects.services.clear();
        let rs: ReplicaSet =
            serde_json::from_value(json!({"metadata": {"name": "rs", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}}}))
            .unwrap();
        s.objects
            .replica_sets
            .insert("default/rs".into(), Arc::new(rs));
        let mut p = web("p", json!({}));
        p.metadata.owner_references = Some(vec![serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": true}))
        .unwrap()]);
        let sel = default_selector(&p, &s.objects);
        assert!(sel.matches(p.metadata.labels.as_ref()));
        assert!(!sel.is_empty());
    }
}
