//! The scheduler's I/O loop: watches nodes and pods into the [`Snapshot`] and the
//! [`SchedulingQueue`], runs one pure cycle per pod, assumes the result so the next pod is
//! scheduled while the binding is in flight, binds through `pods/binding`, and on failure rolls
//! the assumption back and requeues. Unschedulable pods get the `PodScheduled=False` condition
//! and a `FailedScheduling` event; bound ones a `Scheduled` event. When preemption nominates a
//! node, its victims get a `DisruptionTarget` condition and are deleted, and the preemptor's
//! `status.nominatedNodeName` is set. Namespaces, workloads, disruption budgets and volume
//! objects are mirrored into the snapshot for the plugins that consult them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{
    Binding, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
    ReplicationController, Service,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::ResourceExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cycle::{schedule_sampled, Sampling};
use crate::events::{Kind, Recorder};
use crate::framework::Framework;
use crate::plugins::volume_binding;
use crate::queue::{QueuedPod, SchedulingQueue};
use crate::snapshot::{pod_key, Snapshot};
use crate::{Error, Result};

/// Pods naming this scheduler (or none) are ours.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// How long the scheduler keeps scheduling queued pods before it lets other tasks run.
const BATCH_BUDGET: Duration = Duration::from_millis(5);
/// How often parked unschedulable pods are checked against the periodic-retry bound.
const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

enum Event {
    Node(Box<watcher::Result<watcher::Event<Node>>>),
    Pod(Box<watcher::Result<watcher::Event<Pod>>>),
    Object(Box<ObjectEvent>),
}

/// Events of the other kinds the plugins consult.
enum ObjectEvent {
    Namespace(Box<watcher::Result<watcher::Event<Namespace>>>),
    Pdb(Box<watcher::Result<watcher::Event<PodDisruptionBudget>>>),
    Service(Box<watcher::Result<watcher::Event<Service>>>),
    ReplicaSet(Box<watcher::Result<watcher::Event<ReplicaSet>>>),
    StatefulSet(Box<watcher::Result<watcher::Event<StatefulSet>>>),
    ReplicationController(Box<watcher::Result<watcher::Event<ReplicationController>>>),
    Pvc(Box<watcher::Result<watcher::Event<PersistentVolumeClaim>>>),
    Pv(Box<watcher::Result<watcher::Event<PersistentVolume>>>),
    StorageClass(Box<watcher::Result<watcher::Event<StorageClass>>>),
}

fn watch_all<K>(
    client: &kube::Client,
    wrap: fn(Box<watcher::Result<watcher::Event<K>>>) -> ObjectEvent,
) -> BoxStream<'static, Event>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
    K::DynamicType: Default,
{
    watcher(Api::<K>::all(client.clone()), watcher::Config::default())
        .map(move |e| Event::Object(Box::new(wrap(Box::new(e)))))
        .boxed()
}

/// Applies one watch event to a `namespace/name` map; `seen` collects keys during a relist so
/// that objects gone meanwhile are dropped when it completes.
fn mirror<K: kube::Resource>(
    map: &mut BTreeMap<String, Arc<K>>,
    seen: &mut Option<HashSet<String>>,
    ev: watcher::Event<K>,
) {
    let key = |o: &K| {
        format!(
            "{}/{}",
            o.meta().namespace.as_deref().unwrap_or_default(),
            o.meta().name.as_deref().unwrap_or_default()
        )
    };
    match ev {
        watcher::Event::Init => *seen = Some(HashSet::new()),
        watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
            let k = key(&o);
            if let Some(s) = seen.as_mut() {
                s.insert(k.clone());
            }
            map.insert(k, Arc::new(o));
        }
        watcher::Event::InitDone => {
            if let Some(s) = seen.take() {
                map.retain(|k, _| s.contains(k));
            }
        }
        watcher::Event::Delete(o) => {
            map.remove(&key(&o));
        }
    }
}

struct BindOutcome {
    key: String,
    pod: Arc<Pod>,
    node: String,
    result: Result<()>,
}

/// Scheduler profiles, each bound to a `schedulerName`, sharing one queue and snapshot (like
/// upstream's profiles); [`Scheduler::run`] drives them against an API server.
pub struct Scheduler {
    profiles: Vec<(String, Framework)>,
    snapshot: Snapshot,
    queue: SchedulingQueue,
    nodes_seen: Option<HashSet<String>>,
    pods_seen: Option<HashSet<String>>,
    /// Per object kind, the keys seen during a relist in progress.
    objects_seen: HashMap<&'static str, Option<HashSet<String>>>,
    cycles: usize,
    /// Where the next cycle starts filtering (upstream's `nextStartNodeIndex`).
    next_start: usize,
    events: Recorder,
}

impl Scheduler {
    /// One profile named `default-scheduler`.
    pub fn new(framework: Framework) -> Self {
        Self::with_profiles(vec![(DEFAULT_SCHEDULER_NAME.to_string(), framework)])
    }

    /// Several profiles (as from [`crate::config::profiles_from_str`]); the first one's queue
    /// sort orders the shared queue.
    ///
    /// # Panics
    /// If `profiles` is empty.
    pub fn with_profiles(profiles: Vec<(String, Framework)>) -> Self {
        assert!(!profiles.is_empty(), "a scheduler needs a profile");
        Scheduler {
            queue: SchedulingQueue::new(profiles[0].1.queue_sort.clone()),
            profiles,
            snapshot: Snapshot::new(),
            nodes_seen: None,
            pods_seen: None,
            objects_seen: HashMap::new(),
            cycles: 0,
            next_start: 0,
            events: Recorder::new(),
        }
    }

    /// Renames the first profile: it serves pods whose `spec.schedulerName` is `name`.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.profiles[0].0 = name.into();
        self
    }

    /// Schedules until `cancel` fires. Watch failures are retried by the watchers themselves.
    pub async fn run(mut self, client: kube::Client, cancel: CancellationToken) {
        let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .map(|e| Event::Node(Box::new(e)))
            .boxed();
        let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
            .map(|e| Event::Pod(Box::new(e)))
            .boxed();
        let objects = futures::stream::select_all([
            watcher(
                Api::<Namespace>::all(client.clone()),
                watcher::Config::default(),
            )
            .map(|e| Event::Object(Box::new(ObjectEvent::Namespace(Box::new(e)))))
            .boxed(),
            watch_all(&client, ObjectEvent::Pdb),
            watch_all(&client, ObjectEvent::Service),
            watch_all(&client, ObjectEvent::ReplicaSet),
            watch_all(&client, ObjectEvent::StatefulSet),
            watch_all(&client, ObjectEvent::ReplicationController),
            watch_all(&client, ObjectEvent::Pvc),
            watch_all(&client, ObjectEvent::Pv),
            watch_all(&client, ObjectEvent::StorageClass),
        ]);
        let mut events = futures::stream::select_all([nodes, pods, objects.boxed()]);
        let (bound_tx, mut bound_rx) = mpsc::channel::<BindOutcome>(1024);
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        loop {
            if cancel.is_cancelled() {
                break;
            }
            // Take in everything already observed before deciding.
            while let Some(Some(ev)) = events.next().now_or_never() {
                self.handle(ev);
            }
            while let Ok(outcome) = bound_rx.try_recv() {
                self.bound(outcome, &client);
            }
            let now = Instant::now().into_std();
            self.queue.flush_backoff(now);
            if let Some(info) = self.queue.pop(now) {
                // Schedule a batch before yielding: on a busy runtime every yield waits for
                // all other ready tasks, so one pod per yield would cap throughput. Assumed
                // placements keep the snapshot current within the batch.
                self.schedule_one(info, &client, &bound_tx);
                let batch_end = now + BATCH_BUDGET;
                while std::time::Instant::now() < batch_end {
                    let Some(info) = self.queue.pop(std::time::Instant::now()) else {
                        break;
                    };
                    self.schedule_one(info, &client, &bound_tx);
                }
                tokio::task::yield_now().await;
                continue;
            }
            let wake = self
                .queue
                .next_backoff_deadline()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + FLUSH_INTERVAL);
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(ev) = events.next() => self.handle(ev),
                Some(outcome) = bound_rx.recv() => self.bound(outcome, &client),
                _ = tokio::time::sleep_until(wake) => {}
                _ = flush.tick() => self.queue.flush_unschedulable(Instant::now().into_std()),
            }
        }
    }

    /// The profile serving `pod` (an empty `schedulerName` means `default-scheduler`).
    fn profile_of(&self, pod: &Pod) -> Option<usize> {
        let name = scheduler_name(pod);
        self.profiles.iter().position(|(n, _)| n == name)
    }

    fn is_ours(&self, pod: &Pod) -> bool {
        self.profile_of(pod).is_some()
    }

    fn handle(&mut self, ev: Event) {
        match ev {
            Event::Node(ev) => match *ev {
                Ok(ev) => self.node_event(ev),
                Err(e) => tracing::warn!(error = %e, "node watch failed; retrying"),
            },
            Event::Pod(ev) => match *ev {
                Ok(ev) => self.pod_event(ev),
                Err(e) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            },
            Event::Object(ev) => self.object_event(*ev),
        }
    }

    fn object_event(&mut self, ev: ObjectEvent) {
        // Volume objects may make a pod that VolumeBinding rejected schedulable.
        if matches!(
            ev,
            ObjectEvent::Pvc(_) | ObjectEvent::Pv(_) | ObjectEvent::StorageClass(_)
        ) {
            self.queue
                .move_all_to_active_or_backoff(Instant::now().into_std());
        }
        let objects = &mut self.snapshot.objects;
        let seen = &mut self.objects_seen;
        let result = match ev {
            ObjectEvent::Namespace(ev) => (*ev).map(|ev| self.namespace_event(ev)),
            ObjectEvent::Pdb(ev) => {
                (*ev).map(|ev| mirror(&mut objects.pdbs, seen.entry("pdb").or_default(), ev))
            }
            ObjectEvent::Service(ev) => (*ev).map(|ev| {
                mirror(
                    &mut objects.services,
                    seen.entry("service").or_default(),
                    ev,
                )
            }),
            ObjectEvent::ReplicaSet(ev) => (*ev).map(|ev| {
                mirror(
                    &mut objects.replica_sets,
                    seen.entry("replicaset").or_default(),
                    ev,
                )
            }),
            ObjectEvent::StatefulSet(ev) => (*ev).map(|ev| {
                mirror(
                    &mut objects.stateful_sets,
                    seen.entry("statefulset").or_default(),
                    ev,
                )
            }),
            ObjectEvent::Pvc(ev) => {
                (*ev).map(|ev| mirror(&mut objects.pvcs, seen.entry("pvc").or_default(), ev))
            }
            ObjectEvent::Pv(ev) => {
                (*ev).map(|ev| mirror(&mut objects.pvs, seen.entry("pv").or_default(), ev))
            }
            ObjectEvent::StorageClass(ev) => (*ev).map(|ev| {
                mirror(
                    &mut objects.storage_classes,
                    seen.entry("storageclass").or_default(),
                    ev,
                )
            }),
            ObjectEvent::ReplicationController(ev) => (*ev).map(|ev| {
                mirror(
                    &mut objects.replication_controllers,
                    seen.entry("replicationcontroller").or_default(),
                    ev,
                )
            }),
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "object watch failed; retrying");
        }
    }

    fn namespace_event(&mut self, ev: watcher::Event<Namespace>) {
        let now = Instant::now().into_std();
        let labels = &mut self.snapshot.objects.namespace_labels;
        let seen = self.objects_seen.entry("namespace").or_default();
        match ev {
            watcher::Event::Init => *seen = Some(HashSet::new()),
            watcher::Event::InitApply(ns) | watcher::Event::Apply(ns) => {
                let name = ns.name_any();
                if let Some(s) = seen.as_mut() {
                    s.insert(name.clone());
                }
                let new = ns.metadata.labels.unwrap_or_default();
                if labels.get(&name) != Some(&new) {
                    labels.insert(name, new);
                    // Affinity terms select namespaces by label.
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            watcher::Event::InitDone => {
                if let Some(s) = seen.take() {
                    labels.retain(|k, _| s.contains(k));
                }
            }
            watcher::Event::Delete(ns) => {
                labels.remove(&ns.name_any());
            }
        }
    }

    fn node_event(&mut self, ev: watcher::Event<Node>) {
        let now = Instant::now().into_std();
        match ev {
            watcher::Event::Init => self.nodes_seen = Some(HashSet::new()),
            watcher::Event::InitApply(n) | watcher::Event::Apply(n) => {
                if let Some(seen) = self.nodes_seen.as_mut() {
                    seen.insert(n.metadata.name.clone().unwrap_or_default());
                }
                self.snapshot.upsert_node(Arc::new(n));
                self.queue.move_all_to_active_or_backoff(now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.nodes_seen.take() {
                    self.snapshot.retain_nodes(&seen);
                }
            }
            watcher::Event::Delete(n) => {
                self.snapshot
                    .remove_node(n.metadata.name.as_deref().unwrap_or_default());
            }
        }
    }

    fn pod_event(&mut self, ev: watcher::Event<Pod>) {
        let now = Instant::now().into_std();
        match ev {
            watcher::Event::Init => self.pods_seen = Some(HashSet::new()),
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                if let Some(seen) = self.pods_seen.as_mut() {
                    seen.insert(pod_key(&p));
                }
                self.pod_changed(p, now);
            }
            watcher::Event::InitDone => {
                if let Some(seen) = self.pods_seen.take() {
                    self.snapshot.retain_pods(&seen);
                }
            }
            watcher::Event::Delete(p) => {
                let key = pod_key(&p);
                self.queue.delete(&key);
                self.events.forget(&key);
                if self.snapshot.remove_pod(&key).is_some() {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
        }
    }

    fn pod_changed(&mut self, pod: Pod, now: std::time::Instant) {
        let key = pod_key(&pod);
        let finished = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if finished {
            self.queue.delete(&key);
            if self.snapshot.remove_pod(&key).is_some() {
                self.queue.move_all_to_active_or_backoff(now);
            }
        } else if bound {
            self.queue.delete(&key);
            // A pod newly placed (or relabelled) may satisfy pending pods' pod affinity or
            // change their spreading; upstream's AssignedPodAdd/Update events.
            let known = self
                .snapshot
                .node(self.snapshot.node_of(&key).unwrap_or_default())
                .and_then(|n| n.pods.get(&key))
                .map(|p| p.pod.metadata.labels.clone());
            let changed = known != Some(pod.metadata.labels.clone());
            self.snapshot.upsert_bound_pod(Arc::new(pod));
            if changed {
                self.queue.move_for_pod_event(now);
            }
        } else if self.is_ours(&pod)
            && pod.metadata.deletion_timestamp.is_none()
            && !self.snapshot.is_assumed(&key)
        {
            let pod = Arc::new(pod);
            let nominated = pod
                .status
                .as_ref()
                .and_then(|s| s.nominated_node_name.as_deref());
            self.snapshot.nominate(pod.clone(), nominated);
            self.queue.add(pod, now);
        }
    }

    fn schedule_one(
        &mut self,
        info: QueuedPod,
        client: &kube::Client,
        bound_tx: &mpsc::Sender<BindOutcome>,
    ) {
        self.cycles = self.cycles.wrapping_add(1);
        let pod = info.pod.clone();
        let span = tracing::debug_span!("scheduling cycle", pod.name = %info.key);
        let _enter = span.enter();
        let Some(profile) = self.profile_of(&pod) else {
            self.queue.delete(&info.key);
            return;
        };
        let sampling = Sampling::Adaptive {
            start: self.next_start,
        };
        match schedule_sampled(
            &self.profiles[profile].1,
            &self.snapshot,
            &pod,
            self.cycles,
            sampling,
        ) {
            Ok(result) => {
                self.next_start =
                    (self.next_start + result.evaluated) % self.snapshot.nodes().len().max(1);
                tracing::debug!(node.name = %result.node, feasible = result.feasible, "assumed");
                self.snapshot.assume(pod.clone(), &result.node);
                let api: Api<Pod> = Api::namespaced(client.clone(), namespace(&pod));
                let tx = bound_tx.clone();
                let key = info.key;
                let delayed = volume_binding::resolve(&pod, &self.snapshot.objects)
                    .map(|c| c.delayed)
                    .unwrap_or_default();
                let claims: Api<PersistentVolumeClaim> =
                    Api::namespaced(client.clone(), namespace(&pod));
                tokio::spawn(async move {
                    let node = result.node;
                    let mut result = Ok(());
                    for claim in delayed {
                        result = select_node(&claims, &claim, &node).await;
                        if result.is_err() {
                            break;
                        }
                    }
                    if result.is_ok() {
                        result = bind(&api, &pod, &node).await;
                    }
                    let _ = tx
                        .send(BindOutcome {
                            key,
                            pod,
                            node,
                            result,
                        })
                        .await;
                });
            }
            Err(fit) => {
                let now = Instant::now().into_std();
                let message = fit.to_string();
                tracing::debug!(%message, "unschedulable");
                if fit.internal.is_some() {
                    self.queue.retry_after_error(&info.key, now);
                } else {
                    self.queue.unschedulable_by(&info.key, now, fit.plugins());
                }
                self.events.emit(
                    client,
                    scheduler_name(&pod),
                    &pod,
                    Kind::Warning,
                    "FailedScheduling",
                    "Scheduling",
                    &message,
                );
                let current = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.nominated_node_name.clone())
                    .filter(|n| !n.is_empty());
                // Preemption nominates a node; one that found nothing clears an old nomination.
                let nominate = match (&fit.nominated_node, &current) {
                    (Some(n), _) if Some(n) != current.as_ref() => Some(Some(n.clone())),
                    (None, Some(_)) if fit.clear_nomination => Some(None),
                    _ => None,
                };
                if let Some(node) = &fit.nominated_node {
                    self.snapshot.nominate(pod.clone(), Some(node));
                    for victim in &fit.victims {
                        self.preempt(client, &pod, victim, node);
                    }
                }
                if nominate.is_some() || needs_condition(&pod, &message) {
                    let api: Api<Pod> = Api::namespaced(client.clone(), namespace(&pod));
                    tokio::spawn(async move {
                        if let Err(e) = mark_unschedulable(&api, &pod, &message, nominate).await {
                            tracing::debug!(error = %e, "pod condition not updated");
                        }
                    });
                }
            }
        }
    }

    /// Evicts a preemption victim as upstream does: a `DisruptionTarget` condition, the
    /// deletion, and a `Preempted` event naming the preemptor.
    fn preempt(&mut self, client: &kube::Client, preemptor: &Pod, victim: &Arc<Pod>, node: &str) {
        tracing::info!(pod.name = %pod_key(victim), node.name = node, "preempting");
        let note = format!(
            "Preempted by pod {} on node {node}",
            preemptor.metadata.uid.as_deref().unwrap_or_default()
        );
        self.events.emit(
            client,
            scheduler_name(preemptor),
            victim,
            Kind::Normal,
            "Preempted",
            "Preempting",
            &note,
        );
        self.events.forget(&pod_key(victim));
        let api: Api<Pod> = Api::namespaced(client.clone(), namespace(victim));
        let victim = victim.clone();
        let scheduler = scheduler_name(preemptor).to_string();
        tokio::spawn(async move {
            let name = victim.metadata.name.clone().unwrap_or_default();
            let now = k8s_openapi::jiff::Timestamp::now();
            let patch = serde_json::json!({"status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "PreemptionByScheduler",
                "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
                "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]}});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::debug!(error = %e, "victim condition not set");
            }
            let params =
                kube::api::DeleteParams {
                    preconditions: victim.metadata.uid.clone().map(|uid| {
                        kube::api::Preconditions {
                            uid: Some(uid),
                            resource_version: None,
                        }
                    }),
                    ..Default::default()
                };
            if let Err(e) = api.delete(&name, &params).await {
                tracing::debug!(error = %e, "victim not deleted");
            }
        });
    }

    fn bound(&mut self, outcome: BindOutcome, client: &kube::Client) {
        let now = Instant::now().into_std();
        match outcome.result {
            Ok(()) => {
                self.queue.done(&outcome.key);
                self.events.forget(&outcome.key);
                let note = format!("Successfully assigned {} to {}", outcome.key, outcome.node);
                self.events.emit(
                    client,
                    scheduler_name(&outcome.pod),
                    &outcome.pod,
                    Kind::Normal,
                    "Scheduled",
                    "Binding",
                    &note,
                );
                self.events.forget(&outcome.key);
            }
            Err(e) => {
                tracing::info!(pod.name = %outcome.key, error = %e, "binding failed; requeued");
                self.snapshot.forget(&outcome.key);
                self.queue.retry_after_error(&outcome.key, now);
                self.queue.move_all_to_active_or_backoff(now);
            }
        }
    }
}

fn scheduler_name(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .filter(|n| !n.is_empty())
        .unwrap_or(DEFAULT_SCHEDULER_NAME)
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Pre-bind for a delayed-binding claim: record the chosen node for the provisioner.
async fn select_node(api: &Api<PersistentVolumeClaim>, claim: &str, node: &str) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {
        volume_binding::SELECTED_NODE_ANNOTATION: node}}});
    api.patch(claim, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::ClaimUpdateFailed {
            claim: claim.to_string(),
            source,
        })
}

async fn bind(api: &Api<Pod>, pod: &Pod, node: &str) -> Result<()> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<_, serde_json::Value>(
        "binding",
        &name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map(|_| ())
    .map_err(|source| Error::BindFailed {
        pod: pod_key(pod),
        node: node.to_string(),
        source,
    })
}

/// Whether the pod lacks the `PodScheduled=False/Unschedulable` condition with this message
/// (to keep status writes to the changes).
fn needs_condition(pod: &Pod, message: &str) -> bool {
    !pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
}

/// Sets `PodScheduled=False/Unschedulable` with `message`; `nominate` sets (`Some(Some)`) or
/// clears (`Some(None)`) `status.nominatedNodeName`.
async fn mark_unschedulable(
    api: &Api<Pod>,
    pod: &Pod,
    message: &str,
    nominate: Option<Option<String>>,
) -> Result<()> {
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut patch = serde_json::json!({"status": {"conditions": [{
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": null,
        "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    }]}});
    if let Some(node) = nominate {
        patch["status"]["nominatedNodeName"] = node.into();
    }
    let name = pod.metadata.name.clone().unwrap_or_default();
    api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .map(|_| ())
        .map_err(|source| Error::StatusUpdateFailed {
            pod: pod_key(pod),
            source,
        })
}
