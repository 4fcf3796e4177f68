//! The pod garbage collector, as upstream's `pod-garbage-collector`: every 20 s it
//! force-deletes (grace period 0)
//! - terminated pods (Succeeded or Failed) beyond `terminated_pod_gc_threshold`, evicted ones
//!   first, then oldest first;
//! - terminating pods on a node that is not Ready and carries the
//!   `node.kubernetes.io/out-of-service` taint (the node is known to be down for good);
//! - pods bound to nodes that do not exist. A node name first missing from the cache is
//!   quarantined for 40 s and then looked up with a GET before its pods go, so a node that
//!   is merely late in the cache keeps its pods. These pods are first marked Failed with a
//!   `DisruptionTarget` condition (reason `DeletionByPodGC`);
//! - terminating pods that were never scheduled.
//!
//! Pods that are not yet terminal are patched to phase Failed before deletion: with no
//! kubelet left to finish them they would otherwise stay Running forever in the eyes of
//! their controllers. [`plan`] decides (pure); [`run`] is the periodic loop.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use crate::{pods, Config};

/// How often the collector runs.
pub const GC_CHECK_PERIOD: Duration = Duration::from_secs(20);
/// How long a missing node is given to show up in the cache before it is looked up.
pub const QUARANTINE_TIME: Duration = Duration::from_secs(40);
pub const TAINT_OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

/// One forced deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct Delete {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    /// Patch the pod's phase to Failed first (it is not terminal yet), adding this condition
    /// if any.
    pub mark_failed: Option<Option<PodCondition>>,
}

/// Node names missing from the cache, each with the time it may be looked up.
#[derive(Debug, Default)]
pub struct Quarantine {
    waiting: BTreeMap<String, Timestamp>,
}

impl Quarantine {
    /// Quarantine the nodes that pods refer to but the cache lacks (a node already waiting
    /// keeps its time).
    pub fn add_missing(&mut self, pods: &[Pod], existing: &HashSet<String>, now: Timestamp) {
        for node in pods.iter().filter_map(|p| pods::node_name(p)) {
            if !existing.contains(node) {
                self.waiting
                    .entry(node.to_string())
                    .or_insert(now + QUARANTINE_TIME);
            }
        }
    }

    /// The quarantined names whose time has come and are still missing from the cache; they
    /// leave the quarantine (a node still referred to comes back on the next pass).
    pub fn due(&mut self, existing: &HashSet<String>, now: Timestamp) -> Vec<String> {
        let due: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &due {
            self.waiting.remove(n);
        }
        due.into_iter().filter(|n| !existing.contains(n)).collect()
    }
}

fn is_terminated(pod: &Pod) -> bool {
    !matches!(pods::phase(pod), "Pending" | "Running" | "Unknown")
}

fn is_evicted(pod: &Pod) -> bool {
    pods::phase(pod) == "Failed"
        && pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// Evicted pods first, then by creation time, then by name.
fn sort_for_deletion(pods: &mut [&Pod]) {
    pods.sort_by(|a, b| {
        is_evicted(b)
            .cmp(&is_evicted(a))
            .then_with(|| {
                a.metadata
                    .creation_timestamp
                    .cmp(&b.metadata.creation_timestamp)
            })
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
}

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn delete(pod: &Pod, condition: Option<PodCondition>) -> Delete {
    Delete {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        uid: pod.metadata.uid.clone(),
        mark_failed: (!matches!(pods::phase(pod), "Succeeded" | "Failed")).then_some(condition),
    }
}

/// The deletions of one pass, in upstream's order: terminated beyond the threshold,
/// terminating on out-of-service nodes, orphaned (bound to a node in `deleted_nodes`, which
/// the caller confirmed gone), unscheduled terminating. A pod appears at most once.
pub fn plan(
    pods: &[Pod],
    nodes: &[Node],
    threshold: usize,
    deleted_nodes: &BTreeSet<String>,
    now: Timestamp,
) -> Vec<Delete> {
    let mut out: Vec<Delete> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut push = |out: &mut Vec<Delete>, pod: &Pod, condition: Option<PodCondition>| {
        let key = format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any());
        if seen.insert(key) {
            out.push(delete(pod, condition));
        }
    };

    if threshold > 0 {
        let mut terminated: Vec<&Pod> = pods.iter().filter(|p| is_terminated(p)).collect();
        if terminated.len() > threshold {
            sort_for_deletion(&mut terminated);
            let excess = terminated.len() - threshold;
            for pod in &terminated[..excess] {
                push(&mut out, pod, None);
            }
        }
    }

    let by_name: BTreeMap<String, &Node> = nodes.iter().map(|n| (n.name_any(), n)).collect();
    let mut out_of_service: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
        .filter(|p| {
            let Some(node) = pods::node_name(p).and_then(|n| by_name.get(n)) else {
                return false;
            };
            !node_is_ready(node)
                && node
                    .spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .into_iter()
                    .flatten()
                    .any(|t| t.key == TAINT_OUT_OF_SERVICE)
        })
        .collect();
    sort_for_deletion(&mut out_of_service);
    for pod in out_of_service {
        push(&mut out, pod, None);
    }

    for pod in pods {
        if pods::node_name(pod).is_some_and(|n| deleted_nodes.contains(n)) {
            let condition = PodCondition {
                type_: "DisruptionTarget".into(),
                status: "True".into(),
                reason: Some("DeletionByPodGC".into()),
                message: Some("PodGC: node no longer exists".into()),
                last_transition_time: Some(Time(now)),
                ..Default::default()
            };
            push(&mut out, pod, Some(condition));
        }
    }

    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() && pods::node_name(pod).is_none() {
            push(&mut out, pod, None);
        }
    }
    out
}

/// Run the collector until `shutdown` fires.
pub async fn run(client: Client, config: Config, shutdown: CancellationToken) {
    let (pod_store, pod_writer) = reflector::store::<Pod>();
    let (node_store, node_writer) = reflector::store::<Node>();
    let pod_events = reflector::reflector(
        pod_writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| futures::future::ready(()));
    let node_events = reflector::reflector(
        node_writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .for_each(|_| futures::future::ready(()));
    let collect = async {
        let _ = pod_store.wait_until_ready().await;
        let _ = node_store.wait_until_ready().await;
        let mut quarantine = Quarantine::default();
        let mut tick = tokio::time::interval(GC_CHECK_PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            collect(&client, &pod_store, &node_store, &config, &mut quarantine).await;
        }
    };
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = pod_events => {}
        _ = node_events => {}
        _ = collect => {}
    }
}

#[tracing::instrument(skip_all)]
async fn collect(
    client: &Client,
    pod_store: &Store<Pod>,
    node_store: &Store<Node>,
    config: &Config,
    quarantine: &mut Quarantine,
) {
    let pods: Vec<Pod> = pod_store.state().iter().map(|p| (**p).clone()).collect();
    let nodes: Vec<Node> = node_store.state().iter().map(|n| (**n).clone()).collect();
    let existing: HashSet<String> = nodes.iter().map(|n| n.name_any()).collect();
    let now = Timestamp::now();
    quarantine.add_missing(&pods, &existing, now);
    let node_api: Api<Node> = Api::all(client.clone());
    let mut deleted = BTreeSet::new();
    for name in quarantine.due(&existing, now) {
        match node_api.get_opt(&name).await {
            Ok(None) => {
                deleted.insert(name);
            }
            Ok(Some(_)) => {}
            // Still referred to, it is quarantined again on the next pass.
            Err(error) => tracing::debug!(%error, node.name = %name, "cannot look up node"),
        }
    }
    for d in plan(
        &pods,
        &nodes,
        config.terminated_pod_gc_threshold,
        &deleted,
        now,
    ) {
        if let Err(error) = force_delete(client, &d).await {
            tracing::warn!(%error, pod.namespace = %d.namespace, pod.name = %d.name, "cannot delete pod");
        }
    }
}

/// Mark the pod Failed if planned, then delete it with a zero grace period.
async fn force_delete(client: &Client, d: &Delete) -> kube::Result<()> {
    tracing::info!(pod.namespace = %d.namespace, pod.name = %d.name, "force deleting pod");
    let api: Api<Pod> = Api::namespaced(client.clone(), &d.namespace);
    if let Some(condition) = &d.mark_failed {
        let mut status = json!({"phase": "Failed"});
        if let Some(c) = condition {
            status["conditions"] = json!([c]);
        }
        let patch = json!({"metadata": {"uid": d.uid}, "status": status});
        match api
            .patch_status(&d.name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    match api
        .delete(&d.name, &DeleteParams::default().grace_period(0))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeCondition, NodeSpec, NodeStatus, PodSpec, PodStatus, Taint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn pod(name: &str, node: Option<&str>, phase: &str, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(t(created))),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: node.map(Into::into),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn terminating(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = Some(Time(t(0)));
        p
    }

    fn node(name: &str, ready: &str, taints: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|k| Taint {
                            key: k.to_string(),
                            effect: "NoExecute".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn names(plan: &[Delete]) -> Vec<&str> {
        plan.iter().map(|d| d.name.as_str()).collect()
    }

    #[test]
    fn terminated_pods_beyond_the_threshold_go_evicted_first_then_oldest() {
        let mut evicted = pod("evicted", Some("n"), "Failed", 50);
        evicted.status.as_mut().unwrap().reason = Some("Evicted".into());
        let pods = vec![
            pod("new", Some("n"), "Succeeded", 30),
            pod("old", Some("n"), "Failed", 10),
            pod("running", Some("n"), "Running", 0),
            evicted,
            pod("middle", Some("n"), "Succeeded", 20),
        ];
        let nodes = [node("n", "True", &[])];
        let plan = plan(&pods, &nodes, 2, &BTreeSet::new(), t(100));
        assert_eq!(names(&plan), ["evicted", "old"]);
        assert!(plan.iter().all(|d| d.mark_failed.is_none()));
        assert!(super::plan(&pods, &nodes, 0, &BTreeSet::new(), t(100)).is_empty());
    }

    #[test]
    fn pods_of_a_deleted_node_are_marked_failed_and_deleted() {
        let pods = vec![
            pod("orphan", Some("gone"), "Running", 0),
            pod("done", Some("gone"), "Succeeded", 0),
            pod("fine", Some("here"), "Running", 0),
        ];
        let nodes = [node("here", "True", &[])];
        let deleted = BTreeSet::from(["gone".to_string()]);
        let plan = plan(&pods, &nodes, 100, &deleted, t(5));
        assert_eq!(names(&plan), ["orphan", "done"]);
        let condition = plan[0].mark_failed.clone().unwrap().unwrap();
        assert_eq!(condition.type_, "DisruptionTarget");
        assert_eq!(condition.reason.as_deref(), Some("DeletionByPodGC"));
        assert_eq!(
            condition.message.as_deref(),
            Some("PodGC: node no longer exists")
        );
        assert_eq!(plan[1].mark_failed, None);
    }

    #[test]
    fn missing_nodes_are_quarantined_before_their_pods_go() {
        let pods = vec![pod("p", Some("gone"), "Running", 0)];
        let existing = HashSet::new();
        let mut q = Quarantine::default();
        q.add_missing(&pods, &existing, t(0));
        q.add_missing(&pods, &existing, t(20));
        assert!(q.due(&existing, t(39)).is_empty());
        assert_eq!(q.due(&existing, t(40)), ["gone"]);
        // A node that appeared in the meantime is not reported.
        q.add_missing(&pods, &existing, t(60));
        let now_there = HashSet::from(["gone".to_string()]);
        assert!(q.due(&now_there, t(100)).is_empty());
    }

    #[test]
    fn terminating_pods_go_when_unscheduled_or_on_an_out_of_service_node() {
        let pods = vec![
            terminating(pod("unscheduled", None, "Pending", 0)),
            terminating(pod("lost", Some("down"), "Running", 0)),
            terminating(pod("waiting", Some("unreachable"), "Running", 0)),
            pod("alive", Some("down"), "Running", 0),
        ];
        let nodes = [
            node("down", "Unknown", &[TAINT_OUT_OF_SERVICE]),
            node(
                "unreachable",
                "Unknown",
                &["node.kubernetes.io/unreachable"],
            ),
        ];
        let plan = plan(&pods, &nodes, 100, &BTreeSet::new(), t(0));
        assert_eq!(names(&plan), ["lost", "unscheduled"]);
        assert_eq!(plan[0].mark_failed, Some(None));
    }
}
