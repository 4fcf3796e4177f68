//! The garbage collector: the ownerReferences graph over every resource the API serves, and
//! upstream's deletion rules on top of it.
//!
//! - **Background:** an object all of whose owners are gone (absent, or the name now has
//!   another uid — a dangling reference) is deleted; objects that still have an owner lose
//!   their references to the gone ones.
//! - **Foreground:** an owner deleted with `propagationPolicy: Foreground` carries the
//!   `foregroundDeletion` finalizer; its dependents are deleted, and once none with
//!   `blockOwnerDeletion` is left the finalizer goes and the API server removes the owner.
//! - **Orphan:** an owner with the `orphan` finalizer has the references to it removed from
//!   its dependents, then the finalizer.
//!
//! Metadata-only watches (one per resource found by discovery, found again every 30 s so
//! custom resources join) feed one graph ([`graph`]); the uids whose state calls for work go
//! through a queue that never hands the same uid to two workers, with per-item back-off. An
//! absent owner is confirmed with the API before anything is deleted because of it, since
//! its watch may lag. Events are not collected, as upstream.

pub mod graph;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;
use kube::discovery::{verbs, ApiResource, Discovery, Scope};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use graph::{decide, Decision, Graph, Node, OwnerState, Propagation, FOREGROUND, ORPHAN};

/// Workers processing the queue.
const WORKERS: usize = 4;
/// How often discovery runs again to pick up new resources.
const REDISCOVERY: Duration = Duration::from_secs(30);
/// Back-off of a failed item: from this, doubling.
const RETRY_INITIAL: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Attempts at a read-modify-write of an object's metadata before the item is retried later.
const PATCH_ATTEMPTS: usize = 5;

/// A resource the collector watches.
#[derive(Debug, Clone)]
struct Resource {
    api: ApiResource,
    namespaced: bool,
}

type GraphEvent = (usize, Event<PartialObjectMeta<DynamicObject>>);

/// Run until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let collector = Arc::new(Collector {
        client,
        resources: RwLock::default(),
        graph: Mutex::default(),
        queue: Arc::default(),
    });
    tokio::select! {
        () = collector.run() => {}
        () = shutdown.cancelled() => {}
    }
}

struct Collector {
    client: Client,
    resources: RwLock<Vec<Resource>>,
    graph: Mutex<Graph>,
    queue: Arc<WorkQueue>,
}

impl Collector {
    async fn run(self: Arc<Self>) {
        let mut tasks = JoinSet::new();
        let (events, mut receive) = mpsc::unbounded_channel::<GraphEvent>();
        let synced = Arc::new(Notify::new());
        // Discovery until it works (the API may still be coming up).
        let initial = loop {
            match self.discover(&events, &mut tasks).await {
                Ok(n) => break n,
                Err(error) => {
                    tracing::warn!(%error, "garbage collector discovery failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        tasks.spawn({
            let this = self.clone();
            let synced = synced.clone();
            async move {
                let mut pending: HashSet<usize> = (0..initial).collect();
                let mut relisting: HashMap<usize, HashSet<String>> = HashMap::new();
                let mut is_synced = pending.is_empty();
                if is_synced {
                    synced.notify_one();
                }
                while let Some((resource, event)) = receive.recv().await {
                    let work = this.apply(resource, event, &mut relisting, &mut pending);
                    if !is_synced {
                        if pending.is_empty() {
                            is_synced = true;
                            let initial = this.graph().initial_work();
                            tracing::info!(
                                objects = this.graph().len(),
                                "garbage collector has its graph"
                            );
                            for uid in initial {
                                this.queue.add(uid);
                            }
                            synced.notify_one();
                        }
                        continue;
                    }
                    for uid in work {
                        this.queue.add(uid);
                    }
                }
            }
        });
        synced.notified().await;
        for _ in 0..WORKERS {
            let this = self.clone();
            tasks.spawn(async move {
                loop {
                    let uid = this.queue.pop().await;
                    let outcome = this.process(&uid).await;
                    if let Err(error) = &outcome {
                        tracing::debug!(%uid, %error, "garbage collection of an object failed");
                    }
                    this.queue.done(&uid, outcome.is_ok());
                }
            });
        }
        loop {
            tokio::time::sleep(REDISCOVERY).await;
            if let Err(error) = self.discover(&events, &mut tasks).await {
                tracing::debug!(%error, "garbage collector rediscovery failed");
            }
        }
    }

    fn graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Find the resources to watch; start a watch for each new one. Returns how many there
    /// are.
    async fn discover(
        &self,
        events: &mpsc::UnboundedSender<GraphEvent>,
        tasks: &mut JoinSet<()>,
    ) -> Result<usize> {
        let discovery = Discovery::new(self.client.clone()).run().await?;
        let mut found = Vec::new();
        for group in discovery.groups() {
            for (api, caps) in group.recommended_resources() {
                let collectable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                    .iter()
                    .all(|v| caps.supports_operation(v));
                if !collectable || api.plural == "events" {
                    continue;
                }
                found.push(Resource {
                    api,
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
        }
        let mut resources = self.resources.write().unwrap_or_else(|e| e.into_inner());
        for resource in found {
            let known = resources
                .iter()
                .any(|r| r.api.group == resource.api.group && r.api.plural == resource.api.plural);
            if known {
                continue;
            }
            let index = resources.len();
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::all_with(self.client.clone(), &resource.api);
            let sender = events.clone();
            tasks.spawn(async move {
                let mut stream = watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            if sender.send((index, event)).is_err() {
                                return;
                            }
                        }
                        Err(error) => tracing::debug!(%error, "garbage collector watch failed"),
                    }
                }
            });
            resources.push(resource);
        }
        Ok(resources.len())
    }

    /// Apply one watch event to the graph; returns the uids to look at.
    fn apply(
        &self,
        resource: usize,
        event: Event<PartialObjectMeta<DynamicObject>>,
        relisting: &mut HashMap<usize, HashSet<String>>,
        pending: &mut HashSet<usize>,
    ) -> Vec<String> {
        let mut graph = self.graph();
        match event {
            Event::Init => {
                relisting.insert(resource, HashSet::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                let Some(node) = Node::from_meta(resource, &object.metadata) else {
                    return Vec::new();
                };
                relisting
                    .entry(resource)
                    .or_default()
                    .insert(node.uid.clone());
                graph.upsert(node)
            }
            Event::InitDone => {
                pending.remove(&resource);
                let seen = relisting.remove(&resource).unwrap_or_default();
                let mut work = Vec::new();
                for uid in graph.uids_of(resource) {
                    if !seen.contains(&uid) {
                        work.extend(graph.remove(&uid));
                    }
                }
                work
            }
            Event::Apply(object) => match Node::from_meta(resource, &object.metadata) {
                Some(node) => graph.upsert(node),
                None => Vec::new(),
            },
            Event::Delete(object) => match object.metadata.uid.as_deref() {
                Some(uid) => graph.remove(uid),
                None => Vec::new(),
            },
        }
    }

    fn resource(&self, index: usize) -> Option<Resource> {
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(index)
            .cloned()
    }

    /// The watched resource of an owner reference's kind (any version of its group).
    fn resource_of(&self, owner: &OwnerReference) -> Option<Resource> {
        let group = owner
            .api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group);
        self.resources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|r| r.api.group == group && r.api.kind == owner.kind)
            .cloned()
    }

    fn api(&self, resource: &Resource, namespace: Option<&str>) -> Api<DynamicObject> {
        match (resource.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource.api),
            _ => Api::all_with(self.client.clone(), &resource.api),
        }
    }

    /// Look at one object: finish a foreground or orphan deletion, or act on its owners.
    async fn process(&self, uid: &str) -> Result<()> {
        let Some(node) = self.graph().get(uid).cloned() else {
            return Ok(());
        };
        if node.orphaning() {
            return self.orphan_dependents(&node).await;
        }
        if node.deleting_dependents() {
            return self.delete_dependents(&node).await;
        }
        if node.deleting || node.owners.is_empty() {
            return Ok(());
        }
        let mut owners = Vec::new();
        for owner in &node.owners {
            owners.push((owner.uid.clone(), self.classify(&node, owner).await?));
        }
        let decision = {
            let graph = self.graph();
            decide(&node, &owners, &graph.dependents(uid))
        };
        match decision {
            Decision::Nothing => Ok(()),
            Decision::RemoveOwnerReferences(gone) => {
                self.update_meta(&node, |meta| {
                    let refs = owner_refs(meta)
                        .into_iter()
                        .filter(|r| !gone.iter().any(|g| r["uid"] == g.as_str()))
                        .collect::<Vec<_>>();
                    Some(json!({"ownerReferences": none_if_empty(refs)}))
                })
                .await
            }
            Decision::DeleteForeground { unblock } => {
                self.update_meta(&node, |meta| {
                    let mut changed = false;
                    let refs = owner_refs(meta)
                        .into_iter()
                        .map(|mut r| {
                            let blocks = r["blockOwnerDeletion"] == true;
                            if blocks && unblock.iter().any(|w| r["uid"] == w.as_str()) {
                                r["blockOwnerDeletion"] = json!(false);
                                changed = true;
                            }
                            r
                        })
                        .collect::<Vec<_>>();
                    changed.then(|| json!({"ownerReferences": refs}))
                })
                .await?;
                self.delete(&node, Propagation::Foreground).await
            }
            Decision::Delete(policy) => self.delete(&node, policy).await,
        }
    }

    /// Whether an owner reference still holds its dependent. The graph answers when it knows
    /// the owner; an owner it does not know is looked up in the API.
    async fn classify(&self, node: &Node, owner: &OwnerReference) -> Result<OwnerState> {
        let known = self.graph().get(&owner.uid).cloned();
        if let Some(known) = known {
            let scoped = self.resource(known.resource).is_some_and(|r| {
                !r.namespaced || (node.namespace.is_some() && known.namespace == node.namespace)
            });
            if scoped {
                return Ok(if known.deleting_dependents() {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                });
            }
        }
        let Some(resource) = self.resource_of(owner) else {
            return Err(Error::UnknownOwnerKind(format!(
                "{}/{}",
                owner.api_version, owner.kind
            )));
        };
        if resource.namespaced && node.namespace.is_none() {
            // A cluster-scoped object cannot be owned by a namespaced one.
            return Ok(OwnerState::Dangling);
        }
        let current = self
            .api(&resource, node.namespace.as_deref())
            .get_metadata_opt(&owner.name)
            .await?;
        Ok(match current {
            Some(o) if o.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                let waiting = o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND);
                if waiting {
                    OwnerState::Waiting
                } else {
                    OwnerState::Solid
                }
            }
            _ => OwnerState::Dangling,
        })
    }

    /// Orphan deletion: remove the references to `node` from its dependents, then the
    /// `orphan` finalizer.
    async fn orphan_dependents(&self, node: &Node) -> Result<()> {
        let dependents: Vec<Node> = self
            .graph()
            .dependents(&node.uid)
            .into_iter()
            .cloned()
            .collect();
        for dependent in &dependents {
            self.update_meta(dependent, |meta| {
                let refs = owner_refs(meta);
                let kept: Vec<Value> = refs
                    .iter()
                    .filter(|r| r["uid"] != node.uid.as_str())
                    .cloned()
                    .collect();
                (kept.len() != refs.len()).then(|| json!({"ownerReferences": none_if_empty(kept)}))
            })
            .await?;
        }
        self.remove_finalizer(node, ORPHAN).await
    }

    /// Foreground deletion: the dependents that block the owner are deleted; once none is
    /// left, the finalizer goes (the others are collected once the owner is gone).
    async fn delete_dependents(&self, node: &Node) -> Result<()> {
        let blocking: Vec<Node> = self
            .graph()
            .dependents(&node.uid)
            .into_iter()
            .filter(|d| {
                d.owners
                    .iter()
                    .any(|o| o.uid == node.uid && o.block_owner_deletion == Some(true))
            })
            .cloned()
            .collect();
        if blocking.is_empty() {
            return self.remove_finalizer(node, FOREGROUND).await;
        }
        for dependent in blocking {
            if !dependent.deleting_dependents() {
                self.queue.add(dependent.uid.clone());
            }
        }
        Ok(())
    }

    async fn remove_finalizer(&self, node: &Node, finalizer: &str) -> Result<()> {
        self.update_meta(node, |meta| {
            let finalizers: Vec<Value> = meta["finalizers"].as_array().cloned().unwrap_or_default();
            let kept: Vec<Value> = finalizers
                .iter()
                .filter(|f| *f != finalizer)
                .cloned()
                .collect();
            (kept.len() != finalizers.len()).then(|| json!({"finalizers": none_if_empty(kept)}))
        })
        .await
    }

    /// Read the object's metadata, compute a change, and patch it guarded by the
    /// resourceVersion read; retried on conflicts. `change` returns the metadata fields to
    /// set, or `None` for no change.
    async fn update_meta(
        &self,
        node: &Node,
        change: impl Fn(&Value) -> Option<Value>,
    ) -> Result<()> {
        let Some(resource) = self.resource(node.resource) else {
            return Ok(());
        };
        let api = self.api(&resource, node.namespace.as_deref());
        for _ in 0..PATCH_ATTEMPTS {
            let Some(current) = api.get_metadata_opt(&node.name).await? else {
                return Ok(());
            };
            if current.metadata.uid.as_deref() != Some(node.uid.as_str()) {
                return Ok(());
            }
            let meta = serde_json::to_value(&current.metadata).unwrap_or_default();
            let Some(mut fields) = change(&meta) else {
                return Ok(());
            };
            fields["resourceVersion"] = meta["resourceVersion"].clone();
            let patch = Patch::Merge(json!({ "metadata": fields }));
            match api.patch(&node.name, &PatchParams::default(), &patch).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(node.name.clone()))
    }

    async fn delete(&self, node: &Node, policy: Propagation) -> Result<()> {
        let Some(resource) = self.resource(node.resource) else {
            return Ok(());
        };
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some(node.uid.clone()),
                resource_version: None,
            }),
            propagation_policy: Some(match policy {
                Propagation::Background => kube::api::PropagationPolicy::Background,
                Propagation::Foreground => kube::api::PropagationPolicy::Foreground,
                Propagation::Orphan => kube::api::PropagationPolicy::Orphan,
            }),
            ..DeleteParams::default()
        };
        match self
            .api(&resource, node.namespace.as_deref())
            .delete(&node.name, &params)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    kind = %resource.api.kind,
                    namespace = node.namespace.as_deref().unwrap_or(""),
                    name = %node.name,
                    propagation = policy.as_str(),
                    "garbage collector deleted a dependent"
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

fn owner_refs(meta: &Value) -> Vec<Value> {
    meta["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// A list for a merge patch: `null` removes the field when nothing is left.
fn none_if_empty(list: Vec<Value>) -> Value {
    if list.is_empty() {
        Value::Null
    } else {
        Value::Array(list)
    }
}

/// A work queue as client-go's: an item is queued once, never processed by two workers at
/// once (an item added while it is processed runs again afterwards), and failures retry
/// with per-item exponential back-off.
#[derive(Default)]
struct WorkQueue {
    state: Mutex<QueueState>,
    ready: Notify,
}

#[derive(Default)]
struct QueueState {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    active: HashSet<String>,
    dirty: HashSet<String>,
    failures: HashMap<String, u32>,
}

impl WorkQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, uid: String) {
        let mut state = self.lock();
        if state.active.contains(&uid) {
            state.dirty.insert(uid);
            return;
        }
        if state.queued.insert(uid.clone()) {
            state.queue.push_back(uid);
            drop(state);
            self.ready.notify_one();
        }
    }

    async fn pop(&self) -> String {
        loop {
            let notified = self.ready.notified();
            {
                let mut state = self.lock();
                if let Some(uid) = state.queue.pop_front() {
                    state.queued.remove(&uid);
                    state.active.insert(uid.clone());
                    if !state.queue.is_empty() {
                        drop(state);
                        self.ready.notify_one();
                    }
                    return uid;
                }
            }
            notified.await;
        }
    }

    fn done(self: &Arc<Self>, uid: &str, ok: bool) {
        let mut state = self.lock();
        state.active.remove(uid);
        let again = state.dirty.remove(uid);
        if ok {
            state.failures.remove(uid);
        } else {
            let failures = state.failures.entry(uid.to_string()).or_default();
            *failures = failures.saturating_add(1);
            let delay = RETRY_INITIAL
                .saturating_mul(1 << (*failures - 1).min(16))
                .min(RETRY_MAX);
            let this = self.clone();
            let uid = uid.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                this.add(uid);
            });
        }
        drop(state);
        if again {
            self.add(uid.to_string());
        }
    }
}
