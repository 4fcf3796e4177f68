//! The node lifecycle controller: notices kubelets that stopped reporting and says so in the
//! API, the way upstream's `node-controller` does.
//!
//! Every `node_monitor_period` [`Monitor::monitor`] looks at every node. A heartbeat is a
//! change of the node's Lease `renewTime` or of its Ready condition's `lastHeartbeatTime`;
//! what counts is when *this controller observed* the change, on its own clock, so skew between
//! machines does not matter. A node with no heartbeat for `node_monitor_grace_period` gets its
//! Ready, MemoryPressure, DiskPressure and PIDPressure conditions set to Unknown through
//! `nodes/status`, a `NodeNotReady` event, and the Ready condition of its pods set to False.
//!
//! Taints follow the conditions. `NoSchedule` taints mirror them at once on every node change
//! ([`no_schedule_taints`]); the `NoExecute` taints `node.kubernetes.io/unreachable` (Ready
//! Unknown) and `node.kubernetes.io/not-ready` (Ready False), which make the taint eviction
//! controller remove pods, go through a per-zone rate-limited queue (one node per 10 s), and
//! stop altogether when every node of every zone is down (the controller is then more likely
//! cut off than the nodes dead) or, in small clusters, when most of a zone is down.
//!
//! All decisions are pure methods over the objects and an explicit clock; [`run`] feeds them
//! from watches and performs the returned [`Action`]s in order.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{future, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, ObjectReference, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::events::Recorder;
use crate::{pods, Config};

pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const NO_EXECUTE: &str = "NoExecute";
pub const NO_SCHEDULE: &str = "NoSchedule";

/// Namespace of the nodes' heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// A node that never reported its status gets this long from its creation (upstream's
/// `--node-startup-grace-period` default).
pub const NODE_STARTUP_GRACE_PERIOD: Duration = Duration::from_secs(60);
/// `NoExecute` taints are added to at most this many nodes per second per zone
/// (`--node-eviction-rate`).
pub const EVICTION_QPS: f64 = 0.1;
/// The same in a partially disrupted zone of a large cluster (`--secondary-node-eviction-rate`).
pub const SECONDARY_EVICTION_QPS: f64 = 0.01;
/// Above this many nodes a zone counts as large (`--large-cluster-size-threshold`).
pub const LARGE_CLUSTER_THRESHOLD: usize = 50;
/// The share of not-ready nodes (of at least three) that makes a zone partially disrupted
/// (`--unhealthy-zone-threshold`).
pub const UNHEALTHY_ZONE_THRESHOLD: f64 = 0.55;
/// How often the rate-limited `NoExecute` queue is worked (upstream's `NodeEvictionPeriod`).
pub const TAINTING_PERIOD: Duration = Duration::from_millis(100);
/// Nodes with this label do not count when judging whether a zone is disrupted.
pub const LABEL_EXCLUDE_DISRUPTION: &str = "node.kubernetes.io/exclude-disruption";

const COMPONENT: &str = "node-controller";

/// Which condition status maps to which taint key (the `NoSchedule` taints by condition).
const CONDITION_TAINTS: &[(&str, &str, &str)] = &[
    ("Ready", "False", TAINT_NOT_READY),
    ("Ready", "Unknown", TAINT_UNREACHABLE),
    (
        "MemoryPressure",
        "True",
        "node.kubernetes.io/memory-pressure",
    ),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    (
        "NetworkUnavailable",
        "True",
        "node.kubernetes.io/network-unavailable",
    ),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
];

/// Conditions the controller turns Unknown for a silent node. NetworkUnavailable belongs to
/// the network plugin, not the kubelet, and is left alone.
const KUBELET_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// One API call the controller makes, in the order planned.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A `Normal` event about a node.
    NodeEvent {
        node: String,
        uid: String,
        reason: &'static str,
        message: String,
    },
    /// Write the node's status (conditions turned Unknown) through `nodes/status`.
    UpdateStatus { node: Box<Node> },
    /// Add `add` (stamped `timeAdded` now) and remove `remove` (by key and effect).
    SwapTaints {
        node: String,
        add: Vec<Taint>,
        remove: Vec<Taint>,
    },
    /// Set the pod's Ready condition False (and record `NodeNotReady` on it).
    MarkPodNotReady {
        node: String,
        namespace: String,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneState {
    Initial,
    Normal,
    FullDisruption,
    PartialDisruption,
}

/// What the controller last saw of a node, and when (its own clock).
#[derive(Debug, Clone)]
struct Health {
    probe: Timestamp,
    ready_transition: Timestamp,
    ready: Option<NodeCondition>,
    lease_renew: Option<Timestamp>,
}

/// A token bucket holding at most one token; `qps == 0` never admits.
#[derive(Debug, Clone)]
struct Limiter {
    qps: f64,
    tokens: f64,
    last: Timestamp,
}

impl Limiter {
    fn new(qps: f64, now: Timestamp) -> Limiter {
        Limiter {
            qps,
            tokens: if qps > 0.0 { 1.0 } else { 0.0 },
            last: now,
        }
    }

    fn try_accept(&mut self, now: Timestamp) -> bool {
        if self.qps <= 0.0 {
            return false;
        }
        let elapsed = now.duration_since(self.last).as_secs_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * self.qps).min(1.0);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Nodes waiting for a `NoExecute` taint in one zone. A node stays in `set` after it was
/// tainted, so it is not queued again until it has been Ready in between.
#[derive(Debug, Clone)]
struct Tainter {
    limiter: Limiter,
    queue: Vec<(Timestamp, String)>,
    set: BTreeSet<String>,
}

impl Tainter {
    fn new(now: Timestamp) -> Tainter {
        Tainter {
            limiter: Limiter::new(EVICTION_QPS, now),
            queue: Vec::new(),
            set: BTreeSet::new(),
        }
    }

    fn add(&mut self, node: &str, now: Timestamp) -> bool {
        if !self.set.insert(node.to_string()) {
            return false;
        }
        self.queue.push((now, node.to_string()));
        true
    }

    fn remove(&mut self, node: &str) -> bool {
        self.queue.retain(|(_, n)| n != node);
        self.set.remove(node)
    }

    fn swap_limiter(&mut self, qps: f64, now: Timestamp) {
        if self.limiter.qps == qps {
            return;
        }
        let mut fresh = Limiter::new(qps, now);
        // Burst is one: a limiter that was waiting keeps waiting after the swap.
        if qps > 0.0 && !self.limiter.try_accept(now) {
            fresh.try_accept(now);
        }
        self.limiter = fresh;
    }

    fn head(&self) -> Option<usize> {
        (0..self.queue.len()).min_by_key(|&i| (self.queue[i].0, &self.queue[i].1))
    }
}

/// The controller's memory and decisions; pure (the caller passes the clock).
#[derive(Debug)]
pub struct Monitor {
    grace: Duration,
    startup_grace: Duration,
    health: HashMap<String, Health>,
    known: BTreeMap<String, String>,
    zone_states: BTreeMap<String, ZoneState>,
    tainters: BTreeMap<String, Tainter>,
    retry: HashSet<String>,
}

impl Monitor {
    pub fn new(grace: Duration, startup_grace: Duration) -> Monitor {
        Monitor {
            grace,
            startup_grace,
            health: HashMap::new(),
            known: BTreeMap::new(),
            zone_states: BTreeMap::new(),
            tainters: BTreeMap::new(),
            retry: HashSet::new(),
        }
    }

    pub fn zone_state(&self, zone: &str) -> Option<ZoneState> {
        self.zone_states.get(zone).copied()
    }

    /// Marking pods of `node` not ready failed: try again on the next pass.
    pub fn mark_failed(&mut self, node: &str) {
        self.retry.insert(node.to_string());
    }

    /// Tainting `node` failed: put it back in its zone's queue.
    pub fn taint_failed(&mut self, node: &Node, now: Timestamp) {
        if let Some(t) = self.tainters.get_mut(&zone_key(node)) {
            let name = node.name_any();
            t.queue.retain(|(_, n)| *n != name);
            t.queue.push((now, name.clone()));
            t.set.insert(name);
        }
    }

    /// One health pass over all nodes (upstream's `monitorNodeHealth`).
    pub fn monitor<P: Borrow<Pod>>(
        &mut self,
        nodes: &[Node],
        leases: &HashMap<String, Timestamp>,
        pods: &[P],
        now: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let names: BTreeSet<String> = nodes.iter().map(|n| n.name_any()).collect();
        for node in nodes {
            let zone = zone_key(node);
            let name = node.name_any();
            if !self.known.contains_key(&name) {
                actions.push(Action::NodeEvent {
                    node: name.clone(),
                    uid: node.metadata.uid.clone().unwrap_or_default(),
                    reason: "RegisteredNode",
                    message: format!("Registered Node {name} in Controller"),
                });
                self.known
                    .insert(name.clone(), node.metadata.uid.clone().unwrap_or_default());
                self.ensure_zone(&zone, now);
                self.mark_reachable(node, &mut actions);
            } else {
                self.ensure_zone(&zone, now);
            }
        }
        let gone: Vec<(String, String)> = self
            .known
            .iter()
            .filter(|(n, _)| !names.contains(*n))
            .map(|(n, u)| (n.clone(), u.clone()))
            .collect();
        for (name, uid) in gone {
            actions.push(Action::NodeEvent {
                node: name.clone(),
                uid,
                reason: "RemovingNode",
                message: format!("Removing Node {name} from Controller"),
            });
            self.known.remove(&name);
            self.health.remove(&name);
            self.retry.remove(&name);
        }

        let mut zone_conditions: BTreeMap<String, Vec<Option<NodeCondition>>> = BTreeMap::new();
        for node in nodes {
            let name = node.name_any();
            let mut updated = node.clone();
            let lease = leases.get(&name).copied();
            let (observed, current, write) = self.try_update_health(&mut updated, lease, now);
            if let Some(write) = write {
                actions.push(write);
            }
            if !node.labels().contains_key(LABEL_EXCLUDE_DISRUPTION) {
                zone_conditions
                    .entry(zone_key(node))
                    .or_default()
                    .push(current.clone());
            }
            let Some(current) = current else {
                continue;
            };
            self.taint_based_eviction(node, &observed, &mut actions, now);
            let needs_retry = self.retry.contains(&name);
            let transitioned = current.status != "True" && observed.status == "True";
            if transitioned {
                actions.push(Action::NodeEvent {
                    node: name.clone(),
                    // Upstream names the node by its name in the uid field of this event.
                    uid: name.clone(),
                    reason: "NodeNotReady",
                    message: format!("Node {name} status is now: NodeNotReady"),
                });
            }
            if transitioned || (needs_retry && observed.status != "True") {
                actions.extend(mark_pods_not_ready(&name, pods));
            }
            self.retry.remove(&name);
        }

        self.handle_disruption(&zone_conditions, nodes, &mut actions, now);
        actions
    }

    /// Work the rate-limited queues: taint the nodes whose turn it is (upstream's
    /// `doNoExecuteTaintingPass`). `nodes` is the current cache.
    pub fn tainting_pass(
        &mut self,
        nodes: &HashMap<String, Arc<Node>>,
        now: Timestamp,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for tainter in self.tainters.values_mut() {
            while let Some(i) = tainter.head() {
                if !tainter.limiter.try_accept(now) {
                    break;
                }
                let (at, name) = tainter.queue[i].clone();
                if now < at {
                    break;
                }
                let Some(node) = nodes.get(&name) else {
                    tainter.queue.remove(i);
                    continue;
                };
                let Some(ready) = condition(node, "Ready") else {
                    tainter.queue[i].0 = now + Duration::from_millis(50);
                    continue;
                };
                let (add, opposite) = match ready.status.as_str() {
                    "False" => (TAINT_NOT_READY, TAINT_UNREACHABLE),
                    "Unknown" => (TAINT_UNREACHABLE, TAINT_NOT_READY),
                    _ => {
                        tainter.queue.remove(i);
                        continue;
                    }
                };
                tainter.queue.remove(i);
                actions.push(Action::SwapTaints {
                    node: name,
                    add: vec![taint(add, NO_EXECUTE)],
                    remove: vec![taint(opposite, NO_EXECUTE)],
                });
            }
        }
        actions
    }

    /// A pod was just bound to a node: if the node is not Ready, neither is the pod
    /// (upstream's `processPod`).
    pub fn pod_assigned(&self, pod: &Pod) -> Option<Action> {
        let node = pods::node_name(pod)?;
        let ready = self.health.get(node)?.ready.as_ref()?;
        if ready.status == "True" {
            return None;
        }
        mark_pods_not_ready(node, std::slice::from_ref(pod))
            .into_iter()
            .next()
    }

    fn ensure_zone(&mut self, zone: &str, now: Timestamp) {
        if !self.zone_states.contains_key(zone) {
            self.zone_states
                .insert(zone.to_string(), ZoneState::Initial);
            self.tainters.insert(zone.to_string(), Tainter::new(now));
        }
    }

    /// Remove the `NoExecute` taints this controller manages and forget any queued tainting.
    fn mark_reachable(&mut self, node: &Node, actions: &mut Vec<Action>) {
        let remove: Vec<Taint> = [TAINT_UNREACHABLE, TAINT_NOT_READY]
            .into_iter()
            .filter(|k| has_taint(node, k, NO_EXECUTE))
            .map(|k| taint(k, NO_EXECUTE))
            .collect();
        if !remove.is_empty() {
            actions.push(Action::SwapTaints {
                node: node.name_any(),
                add: vec![],
                remove,
            });
        }
        if let Some(t) = self.tainters.get_mut(&zone_key(node)) {
            t.remove(&node.name_any());
        }
    }

    fn taint_based_eviction(
        &mut self,
        node: &Node,
        observed: &NodeCondition,
        actions: &mut Vec<Action>,
        now: Timestamp,
    ) {
        let (wanted, opposite) = match observed.status.as_str() {
            "False" => (TAINT_NOT_READY, TAINT_UNREACHABLE),
            "Unknown" => (TAINT_UNREACHABLE, TAINT_NOT_READY),
            "True" => {
                self.mark_reachable(node, actions);
                return;
            }
            _ => return,
        };
        if has_taint(node, opposite, NO_EXECUTE) {
            // Already tainted the other way: swap at once, no rate limit.
            actions.push(Action::SwapTaints {
                node: node.name_any(),
                add: vec![taint(wanted, NO_EXECUTE)],
                remove: vec![taint(opposite, NO_EXECUTE)],
            });
        } else if let Some(t) = self.tainters.get_mut(&zone_key(node)) {
            t.add(&node.name_any(), now);
        }
    }

    /// Upstream's `tryUpdateNodeHealth`: record heartbeats, and past the grace period turn
    /// the kubelet's conditions Unknown in `node`. Returns the Ready condition as observed,
    /// as it is now, and the status write if one is needed.
    fn try_update_health(
        &mut self,
        node: &mut Node,
        lease_renew: Option<Timestamp>,
        now: Timestamp,
    ) -> (NodeCondition, Option<NodeCondition>, Option<Action>) {
        let name = node.name_any();
        let created = node
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let current = condition(node, "Ready").cloned();
        let mut health = self.health.remove(&name);
        let (observed, grace) = match &current {
            Some(c) => (c.clone(), self.grace),
            None => {
                match &mut health {
                    Some(h) => h.ready = None,
                    None => {
                        health = Some(Health {
                            probe: created,
                            ready_transition: created,
                            ready: None,
                            lease_renew: None,
                        })
                    }
                }
                let fake = NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    last_heartbeat_time: Some(Time(created)),
                    last_transition_time: Some(Time(created)),
                    ..Default::default()
                };
                (fake, self.startup_grace)
            }
        };
        let saved_lease = health.as_ref().and_then(|h| h.lease_renew);
        let fresh = |ready: Option<NodeCondition>, transition: Timestamp| Health {
            probe: now,
            ready_transition: transition,
            ready,
            lease_renew: None,
        };
        let mut health = match health {
            None => fresh(current.clone(), now),
            Some(h) => match (&h.ready, &current) {
                (None, Some(c)) => fresh(Some(c.clone()), now),
                (Some(saved), Some(c)) if saved.last_heartbeat_time != c.last_heartbeat_time => {
                    let transition = if saved.last_transition_time != c.last_transition_time {
                        now
                    } else {
                        h.ready_transition
                    };
                    fresh(Some(c.clone()), transition)
                }
                _ => h,
            },
        };
        if let Some(renew) = lease_renew {
            if saved_lease.is_none_or(|saved| saved < renew) {
                health.lease_renew = Some(renew);
                health.probe = now;
            }
        }

        let mut write = None;
        if now > health.probe + grace {
            let conditions = node
                .status
                .get_or_insert_with(Default::default)
                .conditions
                .get_or_insert_with(Vec::new);
            for kind in KUBELET_CONDITIONS {
                match conditions.iter_mut().find(|c| c.type_ == kind) {
                    None => conditions.push(NodeCondition {
                        type_: kind.into(),
                        status: "Unknown".into(),
                        reason: Some("NodeStatusNeverUpdated".into()),
                        message: Some("Kubelet never posted node status.".into()),
                        last_heartbeat_time: Some(Time(created)),
                        last_transition_time: Some(Time(now)),
                    }),
                    Some(c) if c.status != "Unknown" => {
                        c.status = "Unknown".into();
                        c.reason = Some("NodeStatusUnknown".into());
                        c.message = Some("Kubelet stopped posting node status.".into());
                        c.last_transition_time = Some(Time(now));
                    }
                    Some(_) => {}
                }
            }
            let ready = condition(node, "Ready").cloned();
            if ready.as_ref() != Some(&observed) {
                write = Some(Action::UpdateStatus {
                    node: Box::new(node.clone()),
                });
                health = Health {
                    probe: health.probe,
                    ready_transition: now,
                    ready: ready.clone(),
                    lease_renew,
                };
            } else if current.is_none() {
                health.ready = ready;
            }
        }
        let current = condition(node, "Ready").cloned();
        self.health.insert(name, health);
        (observed, current, write)
    }

    /// Upstream's `handleDisruption`: zone states decide how fast nodes get `NoExecute`
    /// taints; when every zone is fully down, tainting stops and the taints come off.
    fn handle_disruption(
        &mut self,
        zone_conditions: &BTreeMap<String, Vec<Option<NodeCondition>>>,
        nodes: &[Node],
        actions: &mut Vec<Action>,
        now: Timestamp,
    ) {
        let mut new_states = BTreeMap::new();
        let mut all_are_fully_disrupted = true;
        for (zone, conditions) in zone_conditions {
            let state = zone_state(conditions);
            if state != ZoneState::FullDisruption {
                all_are_fully_disrupted = false;
            }
            new_states.insert(zone.clone(), state);
            self.zone_states
                .entry(zone.clone())
                .or_insert(ZoneState::Initial);
        }
        let mut all_were_fully_disrupted = true;
        let zones: Vec<(String, ZoneState)> = self
            .zone_states
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (zone, state) in zones {
            if !zone_conditions.contains_key(&zone) {
                self.zone_states.remove(&zone);
                continue;
            }
            if state != ZoneState::FullDisruption {
                all_were_fully_disrupted = false;
                break;
            }
        }
        if all_are_fully_disrupted && all_were_fully_disrupted {
            return;
        }
        if all_are_fully_disrupted {
            tracing::info!("every node is not ready: stopping NoExecute tainting");
            for node in nodes {
                self.mark_reachable(node, actions);
            }
            for zone in self.zone_states.keys() {
                if let Some(t) = self.tainters.get_mut(zone) {
                    t.swap_limiter(0.0, now);
                }
            }
            for state in self.zone_states.values_mut() {
                *state = ZoneState::FullDisruption;
            }
            return;
        }
        if all_were_fully_disrupted {
            tracing::info!("some nodes are ready again: resuming NoExecute tainting");
            for node in nodes {
                if let Some(h) = self.health.get_mut(&node.name_any()) {
                    h.probe = now;
                    h.ready_transition = now;
                }
            }
            let zones: Vec<String> = self.zone_states.keys().cloned().collect();
            for zone in zones {
                let state = new_states[&zone];
                let size = zone_conditions[&zone].len();
                self.set_limiter(&zone, size, state, now);
                self.zone_states.insert(zone, state);
            }
            return;
        }
        let zones: Vec<(String, ZoneState)> = self
            .zone_states
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (zone, state) in zones {
            let new = new_states[&zone];
            if state == new {
                continue;
            }
            let size = zone_conditions[&zone].len();
            self.set_limiter(&zone, size, new, now);
            self.zone_states.insert(zone, new);
        }
    }

    fn set_limiter(&mut self, zone: &str, size: usize, state: ZoneState, now: Timestamp) {
        let qps = match state {
            ZoneState::Normal | ZoneState::FullDisruption => EVICTION_QPS,
            ZoneState::PartialDisruption if size > LARGE_CLUSTER_THRESHOLD => {
                SECONDARY_EVICTION_QPS
            }
            ZoneState::PartialDisruption => 0.0,
            ZoneState::Initial => return,
        };
        if let Some(t) = self.tainters.get_mut(zone) {
            t.swap_limiter(qps, now);
        }
    }
}

/// Upstream's `ComputeZoneState` over the zone's Ready conditions (absent counts as not
/// ready).
pub fn zone_state(conditions: &[Option<NodeCondition>]) -> ZoneState {
    let ready = conditions
        .iter()
        .filter(|c| c.as_ref().is_some_and(|c| c.status == "True"))
        .count();
    let not_ready = conditions.len() - ready;
    if ready == 0 && not_ready > 0 {
        ZoneState::FullDisruption
    } else if not_ready > 2
        && not_ready as f64 / conditions.len() as f64 >= UNHEALTHY_ZONE_THRESHOLD
    {
        ZoneState::PartialDisruption
    } else {
        ZoneState::Normal
    }
}

/// The zone a node belongs to: `region:\0:zone` from the topology labels (or their beta
/// forms), empty when it has neither.
pub fn zone_key(node: &Node) -> String {
    let labels = node.labels();
    let get = |stable: &str, beta: &str| {
        labels
            .get(stable)
            .or_else(|| labels.get(beta))
            .cloned()
            .unwrap_or_default()
    };
    let zone = get(
        "topology.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/zone",
    );
    let region = get(
        "topology.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/region",
    );
    if region.is_empty() && zone.is_empty() {
        String::new()
    } else {
        format!("{region}:\x00:{zone}")
    }
}

/// The `NoSchedule` taints a node should carry for its conditions and `spec.unschedulable`,
/// as (to add, to remove) against the ones it has; `None` when nothing changes.
pub fn no_schedule_taints(node: &Node) -> Option<(Vec<Taint>, Vec<Taint>)> {
    let mut wanted: Vec<Taint> = Vec::new();
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        for (kind, status, key) in CONDITION_TAINTS {
            if c.type_ == *kind && c.status == *status {
                wanted.push(taint(key, NO_SCHEDULE));
            }
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        wanted.push(taint(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    }
    let managed = |k: &str| k == TAINT_UNSCHEDULABLE || CONDITION_TAINTS.iter().any(|c| c.2 == k);
    let have: Vec<&Taint> = node_taints(node)
        .filter(|t| t.effect == NO_SCHEDULE && managed(&t.key))
        .collect();
    let add: Vec<Taint> = wanted
        .iter()
        .filter(|w| !have.iter().any(|h| same_taint(h, w)))
        .cloned()
        .collect();
    let remove: Vec<Taint> = have
        .iter()
        .filter(|h| !wanted.iter().any(|w| same_taint(h, w)))
        .map(|t| (*t).clone())
        .collect();
    (!add.is_empty() || !remove.is_empty()).then_some((add, remove))
}

/// The node's taints after adding `add` (stamped `timeAdded = now`; one already present with
/// the same key, effect and value stays as it is) and removing `remove` (by key and effect);
/// `None` when that changes nothing.
pub fn swap_taints(
    existing: &[Taint],
    add: &[Taint],
    remove: &[Taint],
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let mut taints: Vec<Taint> = existing.to_vec();
    let mut changed = false;
    for a in add {
        match taints.iter_mut().find(|t| same_taint(t, a)) {
            Some(t) if t.value == a.value => {}
            Some(t) => {
                *t = Taint {
                    time_added: Some(Time(now)),
                    ..a.clone()
                };
                changed = true;
            }
            None => {
                taints.push(Taint {
                    time_added: Some(Time(now)),
                    ..a.clone()
                });
                changed = true;
            }
        }
    }
    let before = taints.len();
    taints.retain(|t| !remove.iter().any(|r| same_taint(t, r)));
    changed |= taints.len() != before;
    changed.then_some(taints)
}

/// The pods on `node` whose Ready condition is not already False (upstream's
/// `MarkPodsNotReady` skips the others).
fn mark_pods_not_ready<P: Borrow<Pod>>(node: &str, pods: &[P]) -> Vec<Action> {
    pods.iter()
        .map(Borrow::borrow)
        .filter(|p| pods::node_name(p) == Some(node))
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status != "False")
        })
        .map(|p| Action::MarkPodNotReady {
            node: node.to_string(),
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
        })
        .collect()
}

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        ..Default::default()
    }
}

fn same_taint(a: &Taint, b: &Taint) -> bool {
    a.key == b.key && a.effect == b.effect
}

fn node_taints(node: &Node) -> impl Iterator<Item = &Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node_taints(node).any(|t| t.key == key && t.effect == effect)
}

fn condition<'a>(node: &'a Node, kind: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) {
    let (node_store, node_writer) = reflector::store::<Node>();
    let (lease_store, lease_writer) = reflector::store::<Lease>();
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let mut node_events = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .boxed();
    let mut lease_events = reflector::reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects()
    .boxed();
    let mut pod_events = reflector::reflector(
        pod_writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .boxed();
    let mut synced = Box::pin(future::join3(
        node_store.wait_until_ready(),
        lease_store.wait_until_ready(),
        pod_store.wait_until_ready(),
    ));
    let mut ready = false;

    let ctx = Context {
        client: client.clone(),
        recorder: Recorder::new(client, COMPONENT),
    };
    let startup_grace = NODE_STARTUP_GRACE_PERIOD.max(config.node_monitor_grace_period);
    let mut monitor = Monitor::new(config.node_monitor_grace_period, startup_grace);
    let mut monitor_tick = tokio::time::interval(config.node_monitor_period);
    monitor_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut taint_tick = tokio::time::interval(TAINTING_PERIOD);
    taint_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Nodes whose NoSchedule taints need a look, and pods' last seen node (to notice binds).
    let mut dirty_nodes: BTreeSet<String> = BTreeSet::new();
    let mut assigned: HashMap<String, String> = HashMap::new();

    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut synced, if !ready => {
                ready = true;
                dirty_nodes.extend(node_store.state().iter().map(|n| n.name_any()));
            }
            Some(event) = node_events.next() => match event {
                Ok(node) => { dirty_nodes.insert(node.name_any()); }
                Err(error) => tracing::debug!(%error, "node watch failed"),
            },
            Some(event) = lease_events.next() => {
                if let Err(error) = event {
                    tracing::debug!(%error, "lease watch failed");
                }
            }
            Some(event) = pod_events.next() => match event {
                Ok(pod) => {
                    if ready {
                        let uid = pod.metadata.uid.clone().unwrap_or_default();
                        let node = pods::node_name(&pod).map(str::to_string);
                        let changed = node.is_some() && assigned.get(&uid) != node.as_ref();
                        if let Some(node) = node {
                            assigned.insert(uid, node);
                        }
                        if changed {
                            if let Some(action) = monitor.pod_assigned(&pod) {
                                perform(&ctx, &mut monitor, &node_store, vec![action]).await;
                            }
                        }
                    }
                }
                Err(error) => tracing::debug!(%error, "pod watch failed"),
            },
            _ = monitor_tick.tick(), if ready => {
                let nodes: Vec<Node> = node_store.state().iter().map(|n| (**n).clone()).collect();
                let leases: HashMap<String, Timestamp> = lease_store
                    .state()
                    .iter()
                    .filter_map(|l| Some((l.name_any(), l.spec.as_ref()?.renew_time.as_ref()?.0)))
                    .collect();
                let pods: Vec<Arc<Pod>> = pod_store.state();
                let live: HashSet<&str> = pods.iter().filter_map(|p| p.metadata.uid.as_deref()).collect();
                assigned.retain(|uid, _| live.contains(uid.as_str()));
                let actions = monitor.monitor(&nodes, &leases, &pods, Timestamp::now());
                perform(&ctx, &mut monitor, &node_store, actions).await;
            }
            _ = taint_tick.tick(), if ready => {
                let nodes: HashMap<String, Arc<Node>> =
                    node_store.state().into_iter().map(|n| (n.name_any(), n)).collect();
                let actions = monitor.tainting_pass(&nodes, Timestamp::now());
                perform(&ctx, &mut monitor, &node_store, actions).await;
                // NoSchedule taints follow node changes; failures stay dirty for the next tick.
                let names: Vec<String> = std::mem::take(&mut dirty_nodes).into_iter().collect();
                for name in names {
                    let Some(node) = nodes.get(&name) else { continue };
                    if let Some((add, remove)) = no_schedule_taints(node) {
                        if let Err(error) = swap_node_taints(&ctx.client, &name, &add, &remove).await {
                            tracing::debug!(%error, node.name = %name, "cannot update NoSchedule taints");
                            dirty_nodes.insert(name);
                        }
                    }
                }
            }
        }
    }
}

struct Context {
    client: Client,
    recorder: Recorder,
}

/// Perform `actions` in order; a failure is logged and remembered for the next pass.
async fn perform(ctx: &Context, monitor: &mut Monitor, nodes: &Store<Node>, actions: Vec<Action>) {
    for action in actions {
        match action {
            Action::NodeEvent {
                node,
                uid,
                reason,
                message,
            } => {
                let regarding = ObjectReference {
                    kind: Some("Node".into()),
                    name: Some(node),
                    uid: Some(uid),
                    ..Default::default()
                };
                ctx.recorder
                    .record(regarding, "Normal", reason, &message)
                    .await;
            }
            Action::UpdateStatus { node } => {
                let name = node.name_any();
                let api: Api<Node> = Api::all(ctx.client.clone());
                if let Err(error) = api
                    .replace_status(&name, &PostParams::default(), &*node)
                    .await
                {
                    tracing::warn!(%error, node.name = %name, "cannot mark node status unknown");
                }
            }
            Action::SwapTaints { node, add, remove } => {
                if let Err(error) = swap_node_taints(&ctx.client, &node, &add, &remove).await {
                    tracing::warn!(%error, node.name = %node, "cannot update node taints");
                    let is_no_execute = add.iter().any(|t| t.effect == NO_EXECUTE);
                    if is_no_execute {
                        if let Some(n) = nodes.get(&ObjectRef::new(&node)) {
                            monitor.taint_failed(&n, Timestamp::now());
                        }
                    }
                }
            }
            Action::MarkPodNotReady {
                node,
                namespace,
                name,
            } => {
                let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
                let patch = json!({"status": {"conditions": [{
                    "type": "Ready",
                    "status": "False",
                    "lastTransitionTime": Time(Timestamp::now()),
                }]}});
                match api
                    .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                    .await
                {
                    Ok(_) => {
                        let regarding = ObjectReference {
                            api_version: Some("v1".into()),
                            kind: Some("Pod".into()),
                            namespace: Some(namespace),
                            name: Some(name),
                            ..Default::default()
                        };
                        ctx.recorder
                            .record(regarding, "Warning", "NodeNotReady", "Node is not ready")
                            .await;
                    }
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(error) => {
                        tracing::warn!(%error, pod.name = %name, "cannot mark pod not ready");
                        monitor.mark_failed(&node);
                    }
                }
            }
        }
    }
}

/// Read the node, swap its taints, write it back; retried on conflicts. A node that is gone
/// needs nothing.
async fn swap_node_taints(
    client: &Client,
    name: &str,
    add: &[Taint],
    remove: &[Taint],
) -> kube::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let mut last = None;
    for _ in 0..5 {
        let mut node = match api.get(name).await {
            Ok(n) => n,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        };
        let existing = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let Some(taints) = swap_taints(&existing, add, remove, Timestamp::now()) else {
            return Ok(());
        };
        node.spec.get_or_insert_with(Default::default).taints =
            (!taints.is_empty()).then_some(taints);
        match api.replace(name, &PostParams::default(), &node).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => last = Some(kube::Error::Api(s)),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("the loop ran"))
}

#[cfg(test)]
mod tests {
    /// An empty pod list for [`Monitor::monitor`].
    const NO_PODS: &[Pod] = &[];

    use super::*;
    use k8s_openapi::api::core::v1::{NodeSpec, NodeStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const GRACE: Duration = Duration::from_secs(50);

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn node(name: &str, ready: Option<(&str, i64)>) -> Node {
        let conditions = ready.map(|(status, heartbeat)| {
            let cond = |kind: &str, status: &str| NodeCondition {
                type_: kind.into(),
                status: status.into(),
                reason: Some("KubeletReady".into()),
                last_heartbeat_time: Some(Time(t(heartbeat))),
                last_transition_time: Some(Time(t(-100))),
                ..Default::default()
            };
            vec![
                cond("Ready", status),
                cond("MemoryPressure", "False"),
                cond("DiskPressure", "False"),
                cond("PIDPressure", "False"),
            ]
        });
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(t(-100))),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions,
                ..Default::default()
            }),
        }
    }

    fn with_taints(mut n: Node, taints: &[(&str, &str)]) -> Node {
        n.spec.get_or_insert_with(Default::default).taints = Some(
            taints
                .iter()
                .map(|(k, e)| Taint {
                    time_added: Some(Time(t(-50))),
                    ..taint(k, e)
                })
                .collect(),
        );
        n
    }

    fn pod(name: &str, node: &str, ready: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn leases(entries: &[(&str, i64)]) -> HashMap<String, Timestamp> {
        entries
            .iter()
            .map(|(n, s)| (n.to_string(), t(*s)))
            .collect()
    }

    /// Apply the planned status writes and taint swaps to the fixture, as the API would.
    fn apply(nodes: &mut [Node], actions: &[Action], now: Timestamp) {
        for a in actions {
            match a {
                Action::UpdateStatus { node } => {
                    let n = nodes.iter_mut().find(|n| n.name_any() == node.name_any());
                    n.unwrap().status = node.status.clone();
                }
                Action::SwapTaints { node, add, remove } => {
                    let n = nodes.iter_mut().find(|n| n.name_any() == *node).unwrap();
                    let spec = n.spec.get_or_insert_with(Default::default);
                    let existing = spec.taints.clone().unwrap_or_default();
                    if let Some(new) = swap_taints(&existing, add, remove, now) {
                        spec.taints = Some(new);
                    }
                }
                _ => {}
            }
        }
    }

    fn by_name(nodes: &[Node]) -> HashMap<String, Arc<Node>> {
        nodes
            .iter()
            .map(|n| (n.name_any(), Arc::new(n.clone())))
            .collect()
    }

    fn reasons(actions: &[Action]) -> Vec<String> {
        actions
            .iter()
            .map(|a| match a {
                Action::NodeEvent { node, reason, .. } => format!("event {node} {reason}"),
                Action::UpdateStatus { node } => format!("status {}", node.name_any()),
                Action::SwapTaints { node, add, remove } => format!(
                    "taints {node} +{:?} -{:?}",
                    add.iter().map(|t| &t.key).collect::<Vec<_>>(),
                    remove.iter().map(|t| &t.key).collect::<Vec<_>>()
                ),
                Action::MarkPodNotReady { name, .. } => format!("pod {name} not ready"),
            })
            .collect()
    }

    #[test]
    fn a_node_renewing_its_lease_stays_ready() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let nodes = vec![node("a", Some(("True", -100)))];
        let first = m.monitor(&nodes, &leases(&[("a", 0)]), NO_PODS, t(0));
        assert_eq!(reasons(&first), ["event a RegisteredNode"]);
        for s in (5..200).step_by(5) {
            let actions = m.monitor(&nodes, &leases(&[("a", s - 1)]), NO_PODS, t(s));
            assert!(actions.is_empty(), "at {s}: {actions:?}");
        }
    }

    #[test]
    fn a_silent_node_turns_unknown_after_the_grace_period_and_its_pods_not_ready() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let mut nodes = vec![node("a", Some(("True", -10)))];
        let pods = vec![
            pod("p1", "a", "True"),
            pod("p2", "a", "False"),
            pod("p3", "b", "True"),
        ];
        m.monitor(&nodes, &leases(&[("a", -5)]), &pods, t(0));
        // The heartbeat was first observed at 0: still within the grace period at 50.
        assert!(m
            .monitor(&nodes, &leases(&[("a", -5)]), &pods, t(50))
            .is_empty());
        let actions = m.monitor(&nodes, &leases(&[("a", -5)]), &pods, t(55));
        assert_eq!(
            reasons(&actions),
            ["status a", "event a NodeNotReady", "pod p1 not ready"]
        );
        let Action::UpdateStatus { node: written } = &actions[0] else {
            unreachable!()
        };
        for c in written
            .status
            .as_ref()
            .unwrap()
            .conditions
            .as_ref()
            .unwrap()
        {
            assert_eq!(c.status, "Unknown", "{c:?}");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusUnknown"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet stopped posting node status.")
            );
            assert_eq!(c.last_transition_time, Some(Time(t(55))));
            assert_eq!(c.last_heartbeat_time, Some(Time(t(-10))));
        }
        let Action::NodeEvent { message, .. } = &actions[1] else {
            unreachable!()
        };
        assert_eq!(message, "Node a status is now: NodeNotReady");
        apply(&mut nodes, &actions, t(55));
        // Written once: the next pass sees its own write and does nothing more.
        let next = m.monitor(&nodes, &leases(&[("a", -5)]), &pods, t(60));
        assert!(!reasons(&next).iter().any(|r| r.starts_with("status")));
    }

    #[test]
    fn a_node_that_never_posted_status_gets_the_startup_grace_period() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        // Created at -100: the startup grace period is measured from creation.
        let nodes = vec![node("a", None)];
        let actions = m.monitor(&nodes, &HashMap::new(), NO_PODS, t(0));
        assert_eq!(reasons(&actions), ["event a RegisteredNode", "status a"]);
        let Action::UpdateStatus { node: written } = &actions[1] else {
            unreachable!()
        };
        let conditions = written.status.as_ref().unwrap().conditions.clone().unwrap();
        let kinds: Vec<&str> = conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(kinds, KUBELET_CONDITIONS);
        for c in &conditions {
            assert_eq!(c.status, "Unknown");
            assert_eq!(c.reason.as_deref(), Some("NodeStatusNeverUpdated"));
            assert_eq!(
                c.message.as_deref(),
                Some("Kubelet never posted node status.")
            );
            assert_eq!(c.last_heartbeat_time, Some(Time(t(-100))));
        }
        // A brand-new node is left alone during the startup grace period.
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let mut young = node("b", None);
        young.metadata.creation_timestamp = Some(Time(t(-30)));
        let actions = m.monitor(&[young], &HashMap::new(), NO_PODS, t(0));
        assert_eq!(reasons(&actions), ["event b RegisteredNode"]);
    }

    #[test]
    fn unreachable_nodes_are_tainted_one_per_ten_seconds_per_zone() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let mut nodes = vec![
            node("a", Some(("True", 0))),
            node("b", Some(("True", 0))),
            node("c", Some(("True", 0))),
        ];
        m.monitor(
            &nodes,
            &leases(&[("a", 0), ("b", 0), ("c", 0)]),
            NO_PODS,
            t(0),
        );
        let actions = m.monitor(
            &nodes,
            &leases(&[("a", 55), ("b", 0), ("c", 0)]),
            NO_PODS,
            t(55),
        );
        assert_eq!(
            reasons(&actions),
            [
                "status b",
                "event b NodeNotReady",
                "status c",
                "event c NodeNotReady"
            ]
        );
        apply(&mut nodes, &actions, t(55));
        assert_eq!(m.zone_state(""), Some(ZoneState::Normal));
        // NoExecute taints are queued on the pass that observes Unknown.
        assert!(m.tainting_pass(&by_name(&nodes), t(56)).is_empty());
        let actions = m.monitor(
            &nodes,
            &leases(&[("a", 60), ("b", 0), ("c", 0)]),
            NO_PODS,
            t(60),
        );
        assert!(actions.is_empty(), "{actions:?}");
        let first = m.tainting_pass(&by_name(&nodes), t(60));
        assert_eq!(
            reasons(&first),
            [r#"taints b +["node.kubernetes.io/unreachable"] -["node.kubernetes.io/not-ready"]"#]
        );
        apply(&mut nodes, &first, t(60));
        assert!(m.tainting_pass(&by_name(&nodes), t(65)).is_empty());
        let second = m.tainting_pass(&by_name(&nodes), t(70));
        assert_eq!(
            reasons(&second),
            [r#"taints c +["node.kubernetes.io/unreachable"] -["node.kubernetes.io/not-ready"]"#]
        );
        apply(&mut nodes, &second, t(70));
        let taints = nodes[1].spec.as_ref().unwrap().taints.clone().unwrap();
        assert_eq!(taints[0].time_added, Some(Time(t(60))));
        // Tainted once: not queued again while it stays unreachable.
        m.monitor(
            &nodes,
            &leases(&[("a", 75), ("b", 0), ("c", 0)]),
            NO_PODS,
            t(75),
        );
        assert!(m.tainting_pass(&by_name(&nodes), t(100)).is_empty());
    }

    #[test]
    fn a_node_that_comes_back_loses_its_taints() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let healthy = node("a", Some(("True", 0)));
        let back = with_taints(
            node("b", Some(("True", 0))),
            &[
                (TAINT_UNREACHABLE, NO_EXECUTE),
                (TAINT_UNREACHABLE, NO_SCHEDULE),
            ],
        );
        // Seen for the first time: a node that is known to be reachable loses them at once.
        let actions = m.monitor(
            &[healthy, back],
            &leases(&[("a", 0), ("b", 0)]),
            NO_PODS,
            t(0),
        );
        assert_eq!(
            reasons(&actions),
            [
                "event a RegisteredNode",
                "event b RegisteredNode",
                r#"taints b +[] -["node.kubernetes.io/unreachable"]"#,
                r#"taints b +[] -["node.kubernetes.io/unreachable"]"#,
            ]
        );
        // The NoSchedule one follows the conditions instead.
        let b = with_taints(
            node("b", Some(("True", 0))),
            &[(TAINT_UNREACHABLE, NO_SCHEDULE)],
        );
        let (add, remove) = no_schedule_taints(&b).unwrap();
        assert!(add.is_empty());
        assert_eq!(remove.len(), 1);
        assert!(same_taint(
            &remove[0],
            &taint(TAINT_UNREACHABLE, NO_SCHEDULE)
        ));
    }

    #[test]
    fn a_kubelet_reporting_not_ready_swaps_unreachable_for_not_ready_at_once() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let a = node("a", Some(("True", 0)));
        let b = with_taints(
            node("b", Some(("False", 0))),
            &[(TAINT_UNREACHABLE, NO_EXECUTE)],
        );
        m.monitor(
            &[a.clone(), node("b", Some(("True", 0)))],
            &leases(&[("a", 0), ("b", 0)]),
            NO_PODS,
            t(0),
        );
        let actions = m.monitor(&[a, b], &leases(&[("a", 5), ("b", 5)]), NO_PODS, t(5));
        assert_eq!(
            reasons(&actions),
            [r#"taints b +["node.kubernetes.io/not-ready"] -["node.kubernetes.io/unreachable"]"#]
        );
    }

    #[test]
    fn when_every_node_is_down_no_node_is_tainted() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let mut nodes = vec![node("a", Some(("True", 0))), node("b", Some(("True", 0)))];
        m.monitor(&nodes, &leases(&[("a", 0), ("b", 0)]), NO_PODS, t(0));
        let actions = m.monitor(&nodes, &leases(&[("a", 0), ("b", 0)]), NO_PODS, t(55));
        apply(&mut nodes, &actions, t(55));
        assert_eq!(m.zone_state(""), Some(ZoneState::FullDisruption));
        nodes[0] = with_taints(nodes[0].clone(), &[(TAINT_UNREACHABLE, NO_EXECUTE)]);
        let actions = m.monitor(&nodes, &leases(&[("a", 0), ("b", 0)]), NO_PODS, t(60));
        // Still fully disrupted: nothing changes, and the queue admits nobody.
        assert!(actions.is_empty(), "{actions:?}");
        assert!(m.tainting_pass(&by_name(&nodes), t(120)).is_empty());
        // One node back: normal again, with every probe restarted.
        nodes[0] = node("a", Some(("True", 65)));
        let actions = m.monitor(&nodes, &leases(&[("a", 65), ("b", 0)]), NO_PODS, t(65));
        assert_eq!(m.zone_state(""), Some(ZoneState::Normal));
        assert!(!reasons(&actions).iter().any(|r| r.starts_with("status b")));
    }

    #[test]
    fn zone_states_follow_the_share_of_ready_nodes() {
        let c = |s: &str| {
            Some(NodeCondition {
                type_: "Ready".into(),
                status: s.into(),
                ..Default::default()
            })
        };
        assert_eq!(zone_state(&[c("Unknown"), None]), ZoneState::FullDisruption);
        assert_eq!(zone_state(&[c("True"), c("Unknown")]), ZoneState::Normal);
        assert_eq!(
            zone_state(&[c("True"), c("False"), c("Unknown"), None]),
            ZoneState::PartialDisruption
        );
        assert_eq!(
            zone_state(&[c("True"), c("True"), c("False"), c("Unknown"), None]),
            ZoneState::PartialDisruption
        );
        assert_eq!(
            zone_state(&[
                c("True"),
                c("True"),
                c("True"),
                c("False"),
                c("Unknown"),
                None
            ]),
            ZoneState::Normal
        );
    }

    #[test]
    fn no_schedule_taints_mirror_conditions_and_unschedulable() {
        let mut n = node("a", Some(("Unknown", 0)));
        n.spec.as_mut().unwrap().unschedulable = Some(true);
        let conditions = n.status.as_mut().unwrap().conditions.as_mut().unwrap();
        conditions[1].status = "True".into();
        let n = with_taints(n, &[(TAINT_NOT_READY, NO_SCHEDULE), ("user", NO_SCHEDULE)]);
        let (add, remove) = no_schedule_taints(&n).unwrap();
        let keys: Vec<&str> = add.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                TAINT_UNREACHABLE,
                "node.kubernetes.io/memory-pressure",
                TAINT_UNSCHEDULABLE
            ]
        );
        assert_eq!(remove.len(), 1);
        assert!(same_taint(&remove[0], &taint(TAINT_NOT_READY, NO_SCHEDULE)));
        assert_eq!(no_schedule_taints(&node("b", Some(("True", 0)))), None);
    }

    #[test]
    fn swapping_taints_stamps_new_ones_and_keeps_existing_ones() {
        let existing = vec![Taint {
            time_added: Some(Time(t(1))),
            ..taint(TAINT_UNREACHABLE, NO_EXECUTE)
        }];
        assert_eq!(
            swap_taints(
                &existing,
                &[taint(TAINT_UNREACHABLE, NO_EXECUTE)],
                &[],
                t(9)
            ),
            None
        );
        let swapped = swap_taints(
            &existing,
            &[taint(TAINT_NOT_READY, NO_EXECUTE)],
            &[taint(TAINT_UNREACHABLE, NO_EXECUTE)],
            t(9),
        )
        .unwrap();
        assert_eq!(
            swapped,
            vec![Taint {
                time_added: Some(Time(t(9))),
                ..taint(TAINT_NOT_READY, NO_EXECUTE)
            }]
        );
    }

    #[test]
    fn a_pod_bound_to_a_not_ready_node_is_marked_not_ready() {
        let mut m = Monitor::new(GRACE, NODE_STARTUP_GRACE_PERIOD);
        let nodes = vec![node("a", Some(("True", 0))), node("b", Some(("False", 0)))];
        m.monitor(&nodes, &leases(&[("a", 0), ("b", 0)]), NO_PODS, t(0));
        assert_eq!(m.pod_assigned(&pod("p", "a", "True")), None);
        assert_eq!(
            m.pod_assigned(&pod("p", "b", "True")),
            Some(Action::MarkPodNotReady {
                node: "b".into(),
                namespace: "default".into(),
                name: "p".into()
            })
        );
        assert_eq!(m.pod_assigned(&pod("p", "b", "False")), None);
    }
}
