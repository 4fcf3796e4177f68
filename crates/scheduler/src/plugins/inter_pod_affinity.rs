//! InterPodAffinity: required pod affinity and anti-affinity filter nodes by the pods already
//! in each topology domain (and existing pods' required anti-affinity repels the incoming pod);
//! preferred terms of both sides, plus existing pods' required affinity at a fixed weight,
//! score the domains.
//!
//! Upstream's semantics, kept exactly: a term's namespaces default to the owner's; a
//! `namespaceSelector` adds namespaces by label (`{}` means all); a missing `labelSelector`
//! matches no pod. Affinity counts a pod only if it matches *all* the incoming pod's required
//! affinity terms; and the first pod of a group with affinity to itself may go to any node that
//! has the topology labels when no pod in the cluster matches its terms yet.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm};
use navarch_api::selector::LabelReq;

use crate::framework::{
    CycleState, FilterPlugin, Plugin, PreFilterPlugin, PreScorePlugin, ScorePlugin, MAX_NODE_SCORE,
};
use crate::labels::Selector;
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::Status;

pub const NAME: &str = "InterPodAffinity";
pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// Upstream's default `hardPodAffinityWeight`.
pub const DEFAULT_HARD_POD_AFFINITY_WEIGHT: i64 = 1;

/// One affinity term, resolved against the pod that declares it.
#[derive(Debug, Clone)]
pub struct Term {
    namespaces: foldhash::HashSet<String>,
    namespace_selector: Selector,
    selector: Selector,
    pub topology_key: String,
    pub weight: i64,
}

impl Term {
    /// Resolves `t` as declared by `owner`: default namespace, and `matchLabelKeys` /
    /// `mismatchLabelKeys` folded into the selector with the owner's label values.
    pub fn new(t: &PodAffinityTerm, owner: &Pod, weight: i64) -> Self {
        let mut namespaces: foldhash::HashSet<String> =
            t.namespaces.iter().flatten().cloned().collect();
        if namespaces.is_empty() && t.namespace_selector.is_none() {
            namespaces.insert(namespace(owner).to_string());
        }
        let mut selector = Selector::from_api(t.label_selector.as_ref());
        if t.label_selector.is_some() {
            let labels = owner.metadata.labels.as_ref();
            for key in t.match_label_keys.iter().flatten() {
                if let Some(v) = labels.and_then(|l| l.get(key)) {
                    selector.add(LabelReq::In(key.clone(), vec![v.clone()]));
                }
            }
            for key in t.mismatch_label_keys.iter().flatten() {
                if let Some(v) = labels.and_then(|l| l.get(key)) {
                    selector.add(LabelReq::NotIn(key.clone(), vec![v.clone()]));
                }
            }
        }
        Term {
            namespaces,
            namespace_selector: Selector::from_api(t.namespace_selector.as_ref()),
            selector,
            topology_key: t.topology_key.clone(),
            weight,
        }
    }

    /// Whether matching depends on namespace labels (a `namespaceSelector` was given).
    pub fn uses_namespace_labels(&self) -> bool {
        !matches!(self.namespace_selector, Selector::Nothing)
    }

    /// Whether the selector can select no pod at all (a missing or invalid one).
    pub fn selects_nothing(&self) -> bool {
        matches!(self.selector, Selector::Nothing)
    }

    /// The label key and values of the selector's first `key=value` or `key in (…)`
    /// requirement: every pod it selects carries one of those labels.
    pub fn required_label(&self) -> Option<(&str, &[String])> {
        let Selector::Reqs(reqs) = &self.selector else {
            return None;
        };
        reqs.0.iter().find_map(|r| match r {
            LabelReq::Eq(k, v) => Some((k.as_str(), std::slice::from_ref(v))),
            LabelReq::In(k, vs) => Some((k.as_str(), vs.as_slice())),
            _ => None,
        })
    }

    /// Whether `pod` (whose namespace has `ns_labels`) is selected by this term.
    pub fn matches(&self, pod: &Pod, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        (self.namespaces.contains(namespace(pod)) || self.namespace_selector.matches(ns_labels))
            && self.selector.matches(pod.metadata.labels.as_ref())
    }
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// A pod's four kinds of terms.
#[derive(Debug, Default, Clone)]
pub struct PodTerms {
    pub required_affinity: Vec<Term>,
    pub required_anti_affinity: Vec<Term>,
    pub preferred_affinity: Vec<Term>,
    pub preferred_anti_affinity: Vec<Term>,
}

impl PodTerms {
    pub fn of(pod: &Pod) -> Self {
        let mut out = PodTerms::default();
        let Some(aff) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
            return out;
        };
        if let Some(a) = &aff.pod_affinity {
            out.required_affinity = required(
                a.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pod,
            );
            out.preferred_affinity = a
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|w| Term::new(&w.pod_affinity_term, pod, i64::from(w.weight)))
                .collect();
        }
        if let Some(a) = &aff.pod_anti_affinity {
            out.required_anti_affinity = required(
                a.required_during_scheduling_ignored_during_execution
                    .as_deref(),
                pod,
            );
            out.preferred_anti_affinity = a
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|w| Term::new(&w.pod_affinity_term, pod, i64::from(w.weight)))
                .collect();
        }
        out
    }

    /// Whether these terms score nodes for other pods: required affinity (at the hard pod
    /// affinity weight) and preferred terms do; required anti-affinity only filters.
    pub fn scores_others(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty()
    }
}

fn required(terms: Option<&[PodAffinityTerm]>, owner: &Pod) -> Vec<Term> {
    terms
        .unwrap_or_default()
        .iter()
        .map(|t| Term::new(t, owner, 1))
        .collect()
}

fn all_match(terms: &[Term], pod: &Pod, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns_labels))
}

/// Pods per topology domain: topology key → label value → count. Looked up by `&str`, so
/// filtering a node allocates nothing.
type Counts = foldhash::HashMap<String, foldhash::HashMap<String, i64>>;

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, by: i64) {
    let Some(v) = node.labels().and_then(|l| l.get(key)) else {
        return;
    };
    if !counts.contains_key(key) {
        counts.insert(key.to_string(), Default::default());
    }
    if let Some(values) = counts.get_mut(key) {
        match values.get_mut(v) {
            Some(n) => *n += by,
            None => {
                values.insert(v.clone(), by);
            }
        }
    }
}

fn domain_count(counts: &Counts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|values| values.get(value))
        .copied()
        .unwrap_or(0)
}

struct PreFilterState {
    terms: PodTerms,
    /// Domains holding a pod whose required anti-affinity selects the incoming pod.
    existing_anti: Counts,
    /// Domains holding pods that match all the incoming pod's required affinity terms.
    affinity: Counts,
    /// Domains holding pods matched by one of the incoming pod's required anti-affinity terms.
    anti: Counts,
    /// The incoming pod matches its own required affinity terms.
    self_affine: bool,
}

/// Preferred-term totals: topology key → value → score.
struct PreScoreState(HashMap<String, HashMap<String, i64>>);

#[derive(Debug)]
pub struct InterPodAffinity {
    hard_pod_affinity_weight: i64,
}

impl Default for InterPodAffinity {
    fn default() -> Self {
        Self::new()
    }
}

impl InterPodAffinity {
    pub fn new() -> Self {
        Self::with_hard_weight(DEFAULT_HARD_POD_AFFINITY_WEIGHT)
    }

    pub fn with_hard_weight(hard_pod_affinity_weight: i64) -> Self {
        InterPodAffinity {
            hard_pod_affinity_weight,
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status {
        let terms = PodTerms::of(pod);
        let pod_ns_labels = snapshot.objects.namespace_labels(namespace(pod));
        let mut existing_anti = Counts::default();
        let mut affinity = Counts::default();
        let mut anti = Counts::default();
        // Namespace labels are looked up per pod only when a term selects namespaces by label.
        let own_required_ns_labels = terms
            .required_affinity
            .iter()
            .chain(&terms.required_anti_affinity)
            .any(Term::uses_namespace_labels);
        let ns_labels_of = |existing: &Pod| {
            if own_required_ns_labels {
                snapshot.objects.namespace_labels(namespace(existing))
            } else {
                None
            }
        };
        // Placed pods' required anti-affinity terms that may select this pod (indexed by the
        // labels they demand, so pods whose terms cannot match are not looked at).
        for (key, i) in snapshot
            .pod_index
            .anti_terms_for(pod.metadata.labels.as_ref())
        {
            let Some((node, existing)) = snapshot.placed_pod(key) else {
                continue;
            };
            let term = existing
                .terms
                .as_ref()
                .and_then(|t| t.required_anti_affinity.get(*i));
            if let Some(t) = term.filter(|t| t.matches(pod, pod_ns_labels)) {
                bump(&mut existing_anti, node, &t.topology_key, 1);
            }
        }
        // Placed pods matching all the pod's required affinity terms: candidates from the first.
        if let Some(first) = terms.required_affinity.first() {
            for (node, existing) in snapshot.candidates(first) {
                if all_match(
                    &terms.required_affinity,
                    &existing.pod,
                    ns_labels_of(&existing.pod),
                ) {
                    for t in &terms.required_affinity {
                        bump(&mut affinity, node, &t.topology_key, 1);
                    }
                }
            }
        }
        for t in &terms.required_anti_affinity {
            for (node, existing) in snapshot.candidates(t) {
                if t.matches(&existing.pod, ns_labels_of(&existing.pod)) {
                    bump(&mut anti, node, &t.topology_key, 1);
                }
            }
        }
        for values in affinity.values_mut() {
            values.retain(|_, n| *n > 0);
        }
        affinity.retain(|_, values| !values.is_empty());
        let nothing_to_do = terms.required_affinity.is_empty()
            && terms.required_anti_affinity.is_empty()
            && existing_anti.is_empty();
        let self_affine = all_match(&terms.required_affinity, pod, pod_ns_labels);
        state.write(
            NAME,
            PreFilterState {
                terms,
                existing_anti,
                affinity,
                anti,
                self_affine,
            },
        );
        if nothing_to_do {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

fn count(counts: &Counts, key: &str, node: &NodeInfo) -> Option<i64> {
    let v = node.labels()?.get(key)?;
    Some(domain_count(counts, key, v))
}

impl FilterPlugin for InterPodAffinity {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<PreFilterState>(NAME) else {
            return Status::success();
        };
        // Affinity: every term's topology label must be on the node; matching pods must be in
        // each of those domains, unless this is the first pod of a self-affine group.
        let mut pods_exist = true;
        for t in &s.terms.required_affinity {
            match count(&s.affinity, &t.topology_key, node) {
                None => return Status::unresolvable(REASON_AFFINITY),
                Some(n) if n <= 0 => pods_exist = false,
                Some(_) => {}
            }
        }
        if !(pods_exist || s.affinity.is_empty() && s.self_affine) {
            return Status::unresolvable(REASON_AFFINITY);
        }
        if s.terms
            .required_anti_affinity
            .iter()
            .any(|t| count(&s.anti, &t.topology_key, node).unwrap_or(0) > 0)
        {
            return Status::unschedulable([REASON_ANTI_AFFINITY]);
        }
        if !s.existing_anti.is_empty() {
            // Few topology keys, many node labels: look each key up on the node.
            let labels = node.labels();
            let repelled = s.existing_anti.iter().any(|(key, values)| {
                labels
                    .and_then(|l| l.get(key))
                    .and_then(|v| values.get(v))
                    .is_some_and(|n| *n > 0)
            });
            if repelled {
                return Status::unschedulable([REASON_EXISTING_ANTI_AFFINITY]);
            }
        }
        Status::success()
    }
}

impl PreScorePlugin for InterPodAffinity {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        _nodes: &[&NodeInfo],
    ) -> Status {
        let terms = PodTerms::of(pod);
        let pod_ns_labels = snapshot.objects.namespace_labels(namespace(pod));
        let mut scores: HashMap<String, HashMap<String, i64>> = HashMap::new();
        let mut add = |t: &Term, node: &NodeInfo, by: i64| {
            if let Some(v) = node.labels().and_then(|l| l.get(&t.topology_key)) {
                *scores
                    .entry(t.topology_key.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += by;
            }
        };
        let own_preferred =
            !(terms.preferred_affinity.is_empty() && terms.preferred_anti_affinity.is_empty());
        if !own_preferred && snapshot.pod_index.with_scoring_terms == 0 {
            return Status::skip();
        }
        let own_preferred_ns_labels = terms
            .preferred_affinity
            .iter()
            .chain(&terms.preferred_anti_affinity)
            .any(Term::uses_namespace_labels);
        for node in snapshot.nodes() {
            if node.labels().is_none_or(|l| l.is_empty())
                || !own_preferred && node.pods_with_affinity == 0
            {
                continue;
            }
            for existing in node.pods.values() {
                if own_preferred {
                    let their_ns_labels = if own_preferred_ns_labels {
                        snapshot.objects.namespace_labels(namespace(&existing.pod))
                    } else {
                        None
                    };
                    for t in &terms.preferred_affinity {
                        if t.matches(&existing.pod, their_ns_labels) {
                            add(t, node, t.weight);
                        }
                    }
                    for t in &terms.preferred_anti_affinity {
                        if t.matches(&existing.pod, their_ns_labels) {
                            add(t, node, -t.weight);
                        }
                    }
                }
                let Some(theirs) = &existing.terms else {
                    continue;
                };
                if self.hard_pod_affinity_weight > 0 {
                    for t in &theirs.required_affinity {
                        if t.matches(pod, pod_ns_labels) {
                            add(t, node, self.hard_pod_affinity_weight);
                        }
                    }
                }
                for t in &theirs.preferred_affinity {
                    if t.matches(pod, pod_ns_labels) {
                        add(t, node, t.weight);
                    }
                }
                for t in &theirs.preferred_anti_affinity {
                    if t.matches(pod, pod_ns_labels) {
                        add(t, node, -t.weight);
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write(NAME, PreScoreState(scores));
        Status::success()
    }
}

impl ScorePlugin for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Result<i64, Status> {
        let Some(PreScoreState(scores)) = state.read::<PreScoreState>(NAME) else {
            return Ok(0);
        };
        let Some(labels) = node.labels() else {
            return Ok(0);
        };
        Ok(scores
            .iter()
            .filter_map(|(key, values)| values.get(labels.get(key)?))
            .sum())
    }

    fn normalize(
        &self,
        state: &CycleState,
        _pod: &Pod,
        _nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        if state.read::<PreScoreState>(NAME).is_none() {
            return Status::success();
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::cycle::prioritize;
    use crate::framework::Framework;
    use crate::plugins::priority_sort::PrioritySort;
    use crate::snapshot::testing::*;
    use crate::Code;

    /// Name, placed pods (node, pod), the incoming pod, the expected outcome per node.
    type Case<T> = (&'static str, Vec<(&'static str, Pod)>, Pod, Vec<T>);

    fn labelled_pod(name: &str, ns: &str, labels: Value, spec: Value) -> Pod {
        let mut p = pod(name, spec);
        p.metadata.namespace = Some(ns.into());
        p.metadata.labels = serde_json::from_value(labels).unwrap();
        p
    }

    /// Three nodes: a and b in zone z1, c in zone z2.
    fn cluster(placed: Vec<(&str, Pod)>) -> Snapshot {
        let mut s = Snapshot::new();
        for (n, zone) in [("a", "z1"), ("b", "z1"), ("c", "z2")] {
            s.upsert_node(Arc::new(node(
                n,
                "4",
                "8Gi",
                json!({"metadata": {"labels": {"zone": zone, "kubernetes.io/hostname": n}}}),
            )));
        }
        s.objects
            .namespace_labels
            .insert("default".into(), [("team".into(), "x".into())].into());
        s.objects
            .namespace_labels
            .insert("other".into(), [("team".into(), "y".into())].into());
        for (n, mut p) in placed {
            p.spec.as_mut().unwrap().node_name = Some(n.into());
            s.upsert_bound_pod(Arc::new(p));
        }
        s
    }

    fn filter_all(s: &Snapshot, p: &Pod) -> Vec<(String, Code, String)> {
        let pl = InterPodAffinity::new();
        let mut state = CycleState::default();
        let pre = pl.pre_filter(&mut state, p, s);
        assert!(matches!(pre.code, Code::Success | Code::Skip));
        s.nodes()
            .iter()
            .map(|n| {
                let st = pl.filter(&state, p, n);
                (n.name.clone(), st.code, st.reasons.join(""))
            })
            .collect()
    }

    fn ok(results: &[(String, Code, String)]) -> Vec<&str> {
        results
            .iter()
            .filter(|r| r.1 == Code::Success)
            .map(|r| r.0.as_str())
            .collect()
    }

    fn term(kind: &str, sel: Value, key: &str) -> Value {
        json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": sel, "topologyKey": key}]}}})
    }

    #[test]
    fn required_terms_filter_nodes() {
        let web = |n: &str| labelled_pod(n, "default", json!({"app": "web"}), json!({}));
        let web_other_ns = labelled_pod("w", "other", json!({"app": "web"}), json!({}));
        let sel = json!({"matchLabels": {"app": "web"}});
        let cases: Vec<Case<&str>> = vec![
            (
                "affinity to a zone holding a match",
                vec![("a", web("w1"))],
                pod("p", term("podAffinity", sel.clone(), "zone")),
                vec!["a", "b"],
            ),
            (
                "affinity by hostname",
                vec![("c", web("w1"))],
                pod(
                    "p",
                    term("podAffinity", sel.clone(), "kubernetes.io/hostname"),
                ),
                vec!["c"],
            ),
            (
                "affinity with no match anywhere and not self-affine",
                vec![],
                pod("p", term("podAffinity", sel.clone(), "zone")),
                vec![],
            ),
            (
                "first pod of a self-affine group goes anywhere with the label",
                vec![],
                labelled_pod(
                    "p",
                    "default",
                    json!({"app": "web"}),
                    term("podAffinity", sel.clone(), "zone"),
                ),
                vec!["a", "b", "c"],
            ),
            (
                "self-affine but a match exists: follow it",
                vec![("c", web("w1"))],
                labelled_pod(
                    "p",
                    "default",
                    json!({"app": "web"}),
                    term("podAffinity", sel.clone(), "zone"),
                ),
                vec!["c"],
            ),
            (
                "missing topology label rejects the node",
                vec![("a", web("w1"))],
                pod("p", term("podAffinity", sel.clone(), "rack")),
                vec![],
            ),
            (
                "matches in another namespace do not count by default",
                vec![("a", web_other_ns.clone())],
                pod("p", term("podAffinity", sel.clone(), "zone")),
                vec![],
            ),
            (
                "namespaceSelector {} spans all namespaces",
                vec![("a", web_other_ns.clone())],
                pod(
                    "p",
                    json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": sel, "topologyKey": "zone", "namespaceSelector": {}}]}}}),
                ),
                vec!["a", "b"],
            ),
            (
                "namespaceSelector by namespace labels",
                vec![("c", web_other_ns.clone())],
                pod(
                    "p",
                    json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"labelSelector": sel, "topologyKey": "zone",
                         "namespaceSelector": {"matchLabels": {"team": "y"}}}]}}}),
                ),
                vec!["c"],
            ),
            (
                "anti-affinity keeps replicas apart",
                vec![("a", web("w1"))],
                labelled_pod(
                    "p",
                    "default",
                    json!({"app": "web"}),
                    term("podAntiAffinity", sel.clone(), "kubernetes.io/hostname"),
                ),
                vec!["b", "c"],
            ),
            (
                "anti-affinity by zone",
                vec![("a", web("w1"))],
                pod("p", term("podAntiAffinity", sel.clone(), "zone")),
                vec!["c"],
            ),
            (
                "an existing pod's anti-affinity repels the incoming pod",
                vec![(
                    "c",
                    labelled_pod(
                        "guard",
                        "default",
                        json!({}),
                        term("podAntiAffinity", sel.clone(), "zone"),
                    ),
                )],
                web("p"),
                vec!["a", "b"],
            ),
            (
                "a missing labelSelector selects nothing",
                vec![("a", web("w1"))],
                pod(
                    "p",
                    json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                        {"topologyKey": "zone"}]}}}),
                ),
                vec!["a", "b", "c"],
            ),
        ];
        for (name, placed, p, want) in cases {
            let s = cluster(placed);
            assert_eq!(ok(&filter_all(&s, &p)), want, "{name}");
        }
    }

    #[test]
    fn rejections_carry_upstream_reasons_and_codes() {
        let sel = json!({"matchLabels": {"app": "web"}});
        let web = labelled_pod("w", "default", json!({"app": "web"}), json!({}));
        let s = cluster(vec![("a", web.clone())]);
        let r = filter_all(&s, &pod("p", term("podAffinity", sel.clone(), "zone")));
        assert_eq!(
            r[2],
            (
                "c".into(),
                Code::UnschedulableAndUnresolvable,
                REASON_AFFINITY.into()
            )
        );
        let r = filter_all(&s, &pod("p", term("podAntiAffinity", sel.clone(), "zone")));
        assert_eq!(
            r[0],
            ("a".into(), Code::Unschedulable, REASON_ANTI_AFFINITY.into())
        );
        let guard = labelled_pod(
            "g",
            "default",
            json!({}),
            term("podAntiAffinity", sel, "zone"),
        );
        let s = cluster(vec![("a", guard)]);
        let r = filter_all(&s, &web);
        assert_eq!(
            r[1],
            (
                "b".into(),
                Code::Unschedulable,
                REASON_EXISTING_ANTI_AFFINITY.into()
            )
        );
    }

    fn scores(s: &Snapshot, p: &Pod) -> Vec<i64> {
        let pl = Arc::new(InterPodAffinity::new());
        let mut fw = Framework::new(Arc::new(PrioritySort::new()));
        fw.pre_score = vec![pl.clone()];
        fw.score = vec![(pl, 1)];
        let nodes: Vec<&NodeInfo> = s.nodes().iter().collect();
        prioritize(&fw, &mut CycleState::default(), p, s, &nodes).unwrap()
    }

    #[test]
    fn preferred_terms_score_domains_golden() {
        let web = |n: &str| labelled_pod(n, "default", json!({"app": "web"}), json!({}));
        let db = |n: &str| labelled_pod(n, "default", json!({"app": "db"}), json!({}));
        let spec = json!({"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 5, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}}]}}});
        let cases: Vec<Case<i64>> = vec![
            (
                "no terms anywhere",
                vec![("a", web("w"))],
                pod("p", json!({})),
                vec![0, 0, 0],
            ),
            (
                "affinity to zone z1, anti-affinity to host a",
                vec![("a", web("w")), ("a", db("d"))],
                pod("p", spec.clone()),
                // a: 10-5=5, b: 10, c: 0 → normalized over [0, 10].
                vec![50, 100, 0],
            ),
            (
                "two matches in z2 outweigh one in z1",
                vec![("a", web("w1")), ("c", web("w2")), ("c", web("w3"))],
                pod("p", spec.clone()),
                vec![0, 0, 100],
            ),
            (
                "existing pod's required affinity to the incoming pod counts with weight 1",
                vec![(
                    "c",
                    labelled_pod(
                        "x",
                        "default",
                        json!({}),
                        term(
                            "podAffinity",
                            json!({"matchLabels": {"app": "web"}}),
                            "zone",
                        ),
                    ),
                )],
                web("p"),
                vec![0, 0, 100],
            ),
            (
                "existing pod's preferred anti-affinity pushes the incoming pod away",
                vec![(
                    "a",
                    labelled_pod(
                        "x",
                        "default",
                        json!({}),
                        json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                            {"weight": 3, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "zone"}}]}}}),
                    ),
                )],
                web("p"),
                vec![0, 0, 100],
            ),
        ];
        for (name, placed, p, want) in cases {
            let s = cluster(placed);
            assert_eq!(scores(&s, &p), want, "{name}");
        }
    }
}
