//! A fleet: one or more nodes in one process, sharing one client and one pod watch.
//!
//! [`run`] registers every node, starts a heartbeat per node ([`crate::node::Heartbeat`]),
//! then watches pods — with `spec.nodeName=NAME` for a single node, `spec.nodeName!=` for a
//! fleet — and hands each pod to its node, which runs a task per pod ([`crate::pod::run`]).
//! After a relist, pods that are no longer in the API are killed. On cancellation everything
//! stops where it is: the Nodes stay and go NotReady when their Leases expire, as after a real
//! node loss, unless [`FleetConfig::cleanup`] asks to delete them.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::DeleteParams;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use rand::Rng;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::error::Result;
use crate::node::{self, Heartbeat, NodeConfig, Registered, Timing, LEASE_NAMESPACE};
use crate::pod::backoff::BackoffConfig;
use crate::pod::dns;
use crate::pod::env::{ConfigSource, KubeConfigSource};
use crate::pod::files::PodFiles;
use crate::pod::resources::NodeResources;
use crate::pod::worker::WorkerContext;
use crate::pod::{self, KubePodApi, PodApi, PodHandle};
use crate::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
use crate::runtime::Runtime;

/// Nodes registered at once.
const REGISTER_CONCURRENCY: usize = 32;

/// Gives a registered node its container runtime: the node's podCIDR is known only then,
/// and a real runtime's pod network needs it.
#[async_trait::async_trait]
pub trait RuntimeProvider: std::fmt::Debug + Send + Sync + 'static {
    async fn runtime(&self, node: &NodeConfig, registered: &Registered)
        -> Result<Arc<dyn Runtime>>;
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub nodes: Vec<NodeConfig>,
    /// The nodes' runtime; `None` gives each node a simulated one.
    pub runtime: Option<Arc<dyn RuntimeProvider>>,
    /// How long a simulated pod sandbox takes to come up.
    pub sandbox_startup: Duration,
    pub backoff: BackoffConfig,
    pub timing: Timing,
    /// Delete the Nodes and their Leases when cancelled.
    pub cleanup: bool,
    /// Where pods' `/etc/hosts` and termination-message files go (real runtimes only).
    pub pod_files: Option<PathBuf>,
}

/// Progress reports while the fleet starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// `registered` of `total` nodes are registered.
    Registering { registered: usize, total: usize },
    /// Every node is registered and the pod watch is starting.
    Ready { total: usize },
}

/// One node of the fleet.
struct NodeAgent {
    ctx: WorkerContext,
    pods: Mutex<HashMap<String, PodHandle>>,
}

impl NodeAgent {
    fn pods(&self) -> std::sync::MutexGuard<'_, HashMap<String, PodHandle>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Fleet {
    nodes: HashMap<String, Arc<NodeAgent>>,
    api: Arc<dyn PodApi>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl Fleet {
    /// A pod was added or changed: hand it to its node's worker, starting one if needed.
    fn apply(&self, mut pod: Pod) {
        let Some(node_name) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            return;
        };
        let Some(node) = self.nodes.get(node_name) else {
            return;
        };
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        // Workers never read managed fields; thousands of pods are kept in memory.
        pod.metadata.managed_fields = None;
        let pod = Arc::new(pod);
        let mut pods = node.pods();
        if let Some(handle) = pods.get(&uid) {
            handle.pod.send_replace(Some(pod));
            return;
        }
        let (handle, receiver) = PodHandle::new(pod);
        let poke = handle.poke.clone();
        pods.insert(uid.clone(), handle);
        drop(pods);
        let node = node.clone();
        let api = self.api.clone();
        let cancel = self.cancel.clone();
        self.tasks.spawn(async move {
            pod::run(node.ctx.clone(), api, receiver, poke, cancel).await;
            node.pods().remove(&uid);
        });
    }

    /// A pod is gone from the API.
    fn remove(&self, pod: &Pod) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|name| self.nodes.get(name));
        if let (Some(node), Some(uid)) = (node, pod.metadata.uid.as_deref()) {
            if let Some(handle) = node.pods().get(uid) {
                handle.pod.send_replace(None);
            }
        }
    }

    /// After a relist: every pod not in `present` is gone.
    fn retain(&self, present: &HashSet<String>) {
        for node in self.nodes.values() {
            for (uid, handle) in node.pods().iter() {
                if !present.contains(uid) {
                    handle.pod.send_replace(None);
                }
            }
        }
    }
}

/// Run the fleet until `cancel`; see the module docs. `progress` hears about registration.
pub async fn run(
    client: Client,
    config: FleetConfig,
    cancel: CancellationToken,
    mut progress: impl FnMut(Progress),
) -> Result<()> {
    let clock = Clock::new();
    let boot_id = uuid_like();
    let total = config.nodes.len();
    progress(Progress::Registering {
        registered: 0,
        total,
    });
    let mut registrations = futures::stream::iter(config.nodes.iter().cloned())
        .map(|node_config| {
            let client = client.clone();
            let boot_id = boot_id.clone();
            async move {
                let registered = node::register(&client, &node_config, &boot_id, &clock).await?;
                Ok::<_, crate::Error>((node_config, registered))
            }
        })
        .buffer_unordered(REGISTER_CONCURRENCY);

    let tasks = TaskTracker::new();
    let children = cancel.child_token();
    let mut nodes = HashMap::new();
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            next = registrations.try_next() => next?,
        };
        let Some((node_config, registered)) = next else {
            break;
        };
        // Nodes on a real runtime read the ConfigMaps and Secrets their containers use;
        // simulated ones do not (thousands of pods, no GET per container).
        let config_source: Option<Arc<dyn ConfigSource>> = match &config.runtime {
            Some(_) => Some(Arc::new(KubeConfigSource::new(client.clone()))),
            None => None,
        };
        let runtime: Arc<dyn Runtime> = match &config.runtime {
            Some(provider) => provider.runtime(&node_config, &registered).await?,
            None => Arc::new(SimulatedRuntime::new(
                SimulatedConfig {
                    sandbox_startup: config.sandbox_startup,
                    pod_cidr: registered.pod_cidr,
                },
                clock,
            )),
        };
        let agent = Arc::new(NodeAgent {
            ctx: WorkerContext {
                runtime: runtime.clone(),
                clock,
                backoff: config.backoff,
                host_ip: node_config.internal_ip,
                node: {
                    let (cpu, memory) = node_config.allocatable();
                    NodeResources::new(&cpu, &memory)
                },
                config: config_source,
                files: config.pod_files.clone().map(PodFiles::new),
                // Pods' resolv.conf starts from the node's, read once per node.
                dns: config.runtime.as_ref().map(|_| {
                    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
                    dns::parse_resolv_conf(&text)
                }),
            },
            pods: Mutex::new(HashMap::new()),
        });
        tasks.spawn(forward_events(
            runtime.clone(),
            agent.clone(),
            children.clone(),
        ));
        let heartbeat = Heartbeat {
            client: client.clone(),
            runtime: config.runtime.as_ref().map(|_| runtime.clone()),
            config: node_config.clone(),
            registered,
            boot_id: boot_id.clone(),
            clock,
            timing: config.timing,
        };
        let spread = config.timing.renew_interval.as_millis().max(1) as u64;
        let delay = Duration::from_millis(rand::rng().random_range(0..spread));
        tasks.spawn(heartbeat.run(delay, children.clone()));
        nodes.insert(node_config.name.clone(), agent);
        progress(Progress::Registering {
            registered: nodes.len(),
            total,
        });
    }
    drop(registrations);
    progress(Progress::Ready { total });

    let selector = match config.nodes.as_slice() {
        [only] => format!("spec.nodeName={}", only.name),
        _ => "spec.nodeName!=".to_string(),
    };
    let fleet = Fleet {
        nodes,
        api: Arc::new(KubePodApi::new(client.clone())),
        tasks: tasks.clone(),
        cancel: children.clone(),
    };
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events =
        std::pin::pin!(
            watcher::watcher(pods, watcher::Config::default().fields(&selector)).default_backoff()
        );
    let mut relisted: Option<HashSet<String>> = None;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            event = events.next() => event,
        };
        match event {
            None => break,
            Some(Err(e)) => tracing::warn!(error = %e, "pod watch failed; retrying"),
            Some(Ok(Event::Init)) => relisted = Some(HashSet::new()),
            Some(Ok(Event::InitApply(pod))) => {
                if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.metadata.uid.clone()) {
                    seen.insert(uid);
                }
                fleet.apply(pod);
            }
            Some(Ok(Event::InitDone)) => {
                if let Some(seen) = relisted.take() {
                    fleet.retain(&seen);
                }
            }
            Some(Ok(Event::Apply(pod))) => fleet.apply(pod),
            Some(Ok(Event::Delete(pod))) => fleet.remove(&pod),
        }
    }

    children.cancel();
    tasks.close();
    tasks.wait().await;
    if config.cleanup {
        cleanup(&client, &config.nodes).await;
    }
    Ok(())
}

/// Route runtime events to the pods they concern; after falling behind, poke every pod.
async fn forward_events(
    runtime: Arc<dyn Runtime>,
    node: Arc<NodeAgent>,
    cancel: CancellationToken,
) {
    let mut events = runtime.container_events();
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(event) => {
                if let Some(handle) = node.pods().get(&event.pod_uid) {
                    handle.poke.notify_one();
                }
            }
            Err(RecvError::Lagged(_)) => {
                for handle in node.pods().values() {
                    handle.poke.notify_one();
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Delete the fleet's Nodes and Leases (`--cleanup`).
async fn cleanup(client: &Client, nodes: &[NodeConfig]) {
    let node_api: Api<Node> = Api::all(client.clone());
    let lease_api: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    futures::stream::iter(nodes)
        .for_each_concurrent(REGISTER_CONCURRENCY, |node| {
            let node_api = node_api.clone();
            let lease_api = lease_api.clone();
            async move {
                for result in [
                    lease_api
                        .delete(&node.name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                    node_api
                        .delete(&node.name, &DeleteParams::default())
                        .await
                        .map(|_| ()),
                ] {
                    match result {
                        Ok(()) => {}
                        Err(kube::Error::Api(e)) if e.code == 404 => {}
                        Err(e) => {
                            tracing::warn!(node.name = %node.name, error = %e, "cannot clean up")
                        }
                    }
                }
            }
        })
        .await;
}

/// A random id in UUID layout (the nodes' `bootID`).
fn uuid_like() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The runtime version string of the simulated runtime (`simulated://VERSION`).
pub fn simulated_runtime_version() -> String {
    let runtime = SimulatedRuntime::new(
        SimulatedConfig {
            sandbox_startup: Duration::ZERO,
            pod_cidr: node::pod_cidr_by_index(0),
        },
        Clock::new(),
    );
    let version = runtime.version();
    format!("{}://{}", version.name, version.version)
}
