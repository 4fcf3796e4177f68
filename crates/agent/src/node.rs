//! A node's API objects: the Node (registration and status) and its Lease (heartbeat).
//!
//! [`node_object`] and [`node_status`] are pure: what the kubelet would register and report
//! for a node with the given resources. [`register`] creates the Node (or adopts the one left
//! by an earlier run), [`heartbeat`] renews the Lease in `kube-node-lease` every 10 s (40 s
//! duration) and rewrites the status only when it changed or 5 minutes have passed.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    ContainerImage, DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints,
    NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::clock::{seconds, Clock};
use crate::error::{Error, Result};
use crate::host::{self, HostView, Reserved};
use crate::runtime::{Image, Runtime};

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The label of control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
/// The kubelet's port, advertised in `daemonEndpoints` unless the streaming server listens
/// on another ([`NodeConfig::kubelet_port`]).
pub const KUBELET_PORT: i32 = 10250;
/// How long a new node waits for the node IPAM controller to assign its podCIDR.
const IPAM_WAIT: Duration = Duration::from_secs(5);
const IPAM_POLL_INITIAL: Duration = Duration::from_millis(100);
/// The kubelet reports at most this many images in the node's status.
const MAX_STATUS_IMAGES: usize = 50;

/// What a node has and is called.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// CPU capacity (`32`, `3500m`).
    pub cpu: String,
    /// Memory capacity (`256Gi`).
    pub memory: String,
    pub ephemeral_storage: String,
    pub max_pods: u32,
    /// The node's `InternalIP` and its pods' `hostIP`.
    pub internal_ip: IpAddr,
    /// The pod network; `None` picks one from the name (see [`default_pod_cidr`]) unless the
    /// Node already has one.
    pub pod_cidr: Option<Ipv4Net>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Label the node `node-role.kubernetes.io/control-plane` (the server's own node).
    pub control_plane: bool,
    /// The `kubeletVersion` to report (the server's `gitVersion`).
    pub kubelet_version: String,
    /// `containerRuntimeVersion`, e.g. `simulated://0.1.0`.
    pub runtime_version: String,
    /// Kernel and OS image to report.
    pub kernel_version: String,
    pub os_image: String,
    /// The streaming server's port ([`crate::streaming`]), advertised in
    /// `status.daemonEndpoints.kubeletEndpoint` for the API server.
    pub kubelet_port: i32,
    /// A real machine whose node keeps its state here: capacity, allocatable and the
    /// pressure conditions come from the machine and this directory's filesystem
    /// ([`crate::host`]) instead of `cpu`, `memory` and `ephemeral_storage`.
    pub host_data_dir: Option<PathBuf>,
    /// `--system-reserved` plus `--kube-reserved`, kept out of allocatable.
    pub reserved: Reserved,
}

impl NodeConfig {
    /// The machine's view of this node, for real machines.
    pub fn host_view(&self) -> Option<HostView> {
        let dir = self.host_data_dir.as_ref()?;
        Some(HostView::from(
            &host::sample(dir),
            self.reserved,
            self.max_pods,
        ))
    }

    /// What pods may use: (CPU, memory) quantities.
    pub fn allocatable(&self) -> (String, String) {
        match self.host_view() {
            Some(view) => (
                view.allocatable["cpu"].0.clone(),
                view.allocatable["memory"].0.clone(),
            ),
            None => (self.cpu.clone(), self.memory.clone()),
        }
    }
}

/// Heartbeat timing (the kubelet's defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    /// Status is written at least this often even when nothing changed.
    pub status_report: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(40),
            renew_interval: Duration::from_secs(10),
            status_report: Duration::from_secs(300),
        }
    }
}

/// When no node IPAM controller assigns `spec.podCIDR` (controllers disabled, or the cluster
/// network exhausted), a node falls back to a /24 of 10.42.0.0/16 picked from a hash of its
/// name. There are only 256 of them, so nodes may then share ranges.
pub fn default_pod_cidr(name: &str) -> Ipv4Net {
    let digest = Sha256::digest(name.as_bytes());
    pod_cidr_by_index(u32::from(digest[0]))
}

/// The `index`-th /24 of 10.42.0.0/16 (wrapping after 256).
pub fn pod_cidr_by_index(index: u32) -> Ipv4Net {
    let third = (index % 256) as u8;
    Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, third, 0), 24).expect("a /24 is valid")
}

/// The Go name of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn hex_digest(parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The Node to register.
pub fn node_object(
    config: &NodeConfig,
    pod_cidr: Option<Ipv4Net>,
    boot_id: &str,
    now: Time,
) -> Node {
    let mut labels = BTreeMap::from([
        ("beta.kubernetes.io/arch".to_string(), go_arch().to_string()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), go_arch().to_string()),
        ("kubernetes.io/hostname".to_string(), config.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
    ]);
    if config.control_plane {
        labels.insert(CONTROL_PLANE_LABEL.to_string(), "true".to_string());
    }
    labels.extend(config.labels.clone());
    Node {
        metadata: ObjectMeta {
            name: Some(config.name.clone()),
            labels: Some(labels),
            annotations: Some(BTreeMap::from([(
                "volumes.kubernetes.io/controller-managed-attach-detach".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: pod_cidr.map(|c| c.to_string()),
            pod_cidrs: pod_cidr.map(|c| vec![c.to_string()]),
            ..Default::default()
        }),
        status: Some(node_status(config, boot_id, None, now)),
    }
}

fn condition(kind: &str, status: &str, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The node's status at `now`. Conditions keep their transition time from `previous` when
/// their status did not change.
pub fn node_status(
    config: &NodeConfig,
    boot_id: &str,
    previous: Option<&NodeStatus>,
    now: Time,
) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(config.cpu.clone())),
        (
            "ephemeral-storage".to_string(),
            Quantity(config.ephemeral_storage.clone()),
        ),
        ("hugepages-1Gi".to_string(), Quantity("0".to_string())),
        ("hugepages-2Mi".to_string(), Quantity("0".to_string())),
        ("memory".to_string(), Quantity(config.memory.clone())),
        ("pods".to_string(), Quantity(config.max_pods.to_string())),
    ]);
    let host = config.host_view();
    let (capacity, allocatable) = match &host {
        Some(view) => (view.capacity.clone(), view.allocatable.clone()),
        None => (resources.clone(), resources),
    };
    fn pressure(
        pressed: bool,
        yes: [&'static str; 2],
        no: [&'static str; 2],
    ) -> (&'static str, [&'static str; 2]) {
        match pressed {
            true => ("True", yes),
            false => ("False", no),
        }
    }
    let memory = pressure(
        host.as_ref().is_some_and(|h| h.memory_pressure),
        [
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ],
        [
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ],
    );
    let disk = pressure(
        host.as_ref().is_some_and(|h| h.disk_pressure),
        ["KubeletHasDiskPressure", "kubelet has disk pressure"],
        ["KubeletHasNoDiskPressure", "kubelet has no disk pressure"],
    );
    let pid = pressure(
        host.as_ref().is_some_and(|h| h.pid_pressure),
        [
            "KubeletHasInsufficientPID",
            "kubelet has insufficient PID available",
        ],
        [
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ],
    );
    let mut conditions = vec![
        condition("MemoryPressure", memory.0, memory.1[0], memory.1[1], &now),
        condition("DiskPressure", disk.0, disk.1[0], disk.1[1], &now),
        condition("PIDPressure", pid.0, pid.1[0], pid.1[1], &now),
        condition(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            &now,
        ),
    ];
    if let Some(before) = previous.and_then(|p| p.conditions.as_ref()) {
        for c in &mut conditions {
            if let Some(old) = before
                .iter()
                .find(|o| o.type_ == c.type_ && o.status == c.status)
            {
                c.last_transition_time = old.last_transition_time.clone();
            }
        }
    }
    let machine_id = hex_digest(&["machine-id", &config.name]);
    let uuid = &hex_digest(&["system-uuid", &config.name]);
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_string(),
                address: config.internal_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_string(),
                address: config.name.clone(),
            },
        ]),
        conditions: Some(conditions),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: config.kubelet_port,
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: go_arch().to_string(),
            boot_id: boot_id.to_string(),
            container_runtime_version: config.runtime_version.clone(),
            kernel_version: config.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: config.kubelet_version.clone(),
            machine_id: machine_id[..32].to_string(),
            operating_system: "linux".to_string(),
            os_image: config.os_image.clone(),
            system_uuid: format!(
                "{}-{}-{}-{}-{}",
                &uuid[0..8],
                &uuid[8..12],
                &uuid[12..16],
                &uuid[16..20],
                &uuid[20..32]
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A registered node: what later writes need.
#[derive(Debug, Clone)]
pub struct Registered {
    pub uid: String,
    pub pod_cidr: Ipv4Net,
    pub status: NodeStatus,
}

fn api_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api { what, source }
}

fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Create the Node, or adopt an existing one of the same name (keeping its pod CIDR), then
/// write its status.
pub async fn register(
    client: &Client,
    config: &NodeConfig,
    boot_id: &str,
    clock: &Clock,
) -> Result<Registered> {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Time(seconds(clock.now()));
    let node = node_object(config, config.pod_cidr, boot_id, now.clone());
    let created = match nodes.create(&PostParams::default(), &node).await {
        Ok(created) => created,
        Err(e) if is_status(&e, 409) => {
            let existing = nodes
                .get(&config.name)
                .await
                .map_err(api_error(format!("cannot read node {}", config.name)))?;
            let patch = serde_json::json!({"metadata": {"labels": node.metadata.labels}});
            nodes
                .patch(&config.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(api_error(format!("cannot relabel node {}", config.name)))?;
            existing
        }
        Err(e) => {
            return Err(api_error(format!("cannot register node {}", config.name))(
                e,
            ))
        }
    };
    let pod_cidr = match pod_cidr_of(&created) {
        Some(cidr) => cidr,
        None => wait_for_pod_cidr(&nodes, &config.name).await?,
    };
    let status = node_status(config, boot_id, created.status.as_ref(), now);
    write_status(&nodes, &config.name, &status).await?;
    Ok(Registered {
        uid: created.metadata.uid.unwrap_or_default(),
        pod_cidr,
        status,
    })
}

fn pod_cidr_of(node: &Node) -> Option<Ipv4Net> {
    node.spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_deref())
        .and_then(|c| c.parse().ok())
}

/// Wait for the node IPAM controller to assign the node's `spec.podCIDR`; without one after a
/// few seconds, take [`default_pod_cidr`] (set once: whoever writes first wins).
async fn wait_for_pod_cidr(nodes: &Api<Node>, name: &str) -> Result<Ipv4Net> {
    let mut delay = IPAM_POLL_INITIAL;
    let mut waited = Duration::ZERO;
    while waited < IPAM_WAIT {
        tokio::time::sleep(delay).await;
        waited += delay;
        delay = (delay * 2).min(Duration::from_secs(1));
        let node = nodes
            .get(name)
            .await
            .map_err(api_error(format!("cannot read node {name}")))?;
        if let Some(cidr) = pod_cidr_of(&node) {
            return Ok(cidr);
        }
    }
    let fallback = default_pod_cidr(name);
    tracing::warn!(node = name, pod_cidr = %fallback, "no podCIDR assigned by the controllers; using a range derived from the name");
    let patch = serde_json::json!({"spec": {"podCIDR": fallback.to_string(), "podCIDRs": [fallback.to_string()]}});
    match nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(node) => Ok(pod_cidr_of(&node).unwrap_or(fallback)),
        // Assigned meanwhile (the field is set once).
        Err(e) if is_status(&e, 422) => {
            let node = nodes
                .get(name)
                .await
                .map_err(api_error(format!("cannot read node {name}")))?;
            Ok(pod_cidr_of(&node).unwrap_or(fallback))
        }
        Err(e) => Err(api_error(format!("cannot set the podCIDR of node {name}"))(
            e,
        )),
    }
}

async fn write_status(nodes: &Api<Node>, name: &str, status: &NodeStatus) -> Result<()> {
    let patch = serde_json::json!({ "status": status });
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_error(format!("cannot write status of node {name}")))?;
    Ok(())
}

fn lease_object(name: &str, node_uid: &str, timing: &Timing, now: MicroTime) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(LEASE_NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "Node".to_string(),
                name: name.to_string(),
                uid: node_uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_string()),
            lease_duration_seconds: Some(timing.lease_duration.as_secs() as i32),
            renew_time: Some(now),
            ..Default::default()
        }),
    }
}

/// Keeps one node's Lease and status fresh.
pub struct Heartbeat {
    pub client: Client,
    /// Whose images to report in `status.images` (real nodes only).
    pub runtime: Option<Arc<dyn Runtime>>,
    pub config: NodeConfig,
    pub registered: Registered,
    pub boot_id: String,
    pub clock: Clock,
    pub timing: Timing,
}

impl Heartbeat {
    /// Renew the Lease every `renew_interval` (the first after `initial_delay`, to spread a
    /// fleet's renewals) and write the status every `status_report`, until `cancel`.
    pub async fn run(self, initial_delay: Duration, cancel: CancellationToken) {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = self.config.name.clone();
        let mut lease: Option<Lease> = None;
        let mut last_status = tokio::time::Instant::now();
        let mut status = self.registered.status.clone();
        // The first renewal comes at once: the node is Ready only with a fresh Lease.
        self.renew(&leases, &mut lease).await;
        let start = tokio::time::Instant::now() + initial_delay;
        let mut ticks = tokio::time::interval_at(start, self.timing.renew_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticks.tick() => {}
            }
            self.renew(&leases, &mut lease).await;
            let now = Time(seconds(self.clock.now()));
            let mut next = node_status(&self.config, &self.boot_id, Some(&status), now);
            next.images = status.images.clone();
            if let Some(runtime) = &self.runtime {
                match runtime.list_images().await {
                    Ok(images) => next.images = Some(node_images(images)),
                    Err(e) => tracing::debug!(error = %e, "cannot list images"),
                }
            }
            let changed = !same_status(&next, &status);
            if changed || last_status.elapsed() >= self.timing.status_report {
                match write_status(&nodes, &name, &next).await {
                    Ok(()) => {
                        status = next;
                        last_status = tokio::time::Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(node.name = %name, error = %e, "cannot write node status")
                    }
                }
            }
        }
    }

    async fn renew(&self, leases: &Api<Lease>, lease: &mut Option<Lease>) {
        let name = &self.config.name;
        let now = MicroTime(self.clock.now());
        let result = match lease.take() {
            Some(mut current) => {
                if let Some(spec) = current.spec.as_mut() {
                    spec.renew_time = Some(now.clone());
                    spec.holder_identity = Some(name.clone());
                }
                leases.replace(name, &PostParams::default(), &current).await
            }
            None => match leases.get_opt(name).await {
                Ok(Some(mut current)) => {
                    let spec = current.spec.get_or_insert_with(Default::default);
                    spec.renew_time = Some(now.clone());
                    spec.holder_identity = Some(name.clone());
                    spec.lease_duration_seconds = Some(self.timing.lease_duration.as_secs() as i32);
                    leases.replace(name, &PostParams::default(), &current).await
                }
                Ok(None) => {
                    let fresh = lease_object(name, &self.registered.uid, &self.timing, now);
                    leases.create(&PostParams::default(), &fresh).await
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(renewed) => *lease = Some(renewed),
            // A conflict or a vanished lease: read it again on the next tick.
            Err(e) => tracing::warn!(node.name = %name, error = %e, "cannot renew node lease"),
        }
    }
}

/// Equal but for heartbeat times.
/// `status.images` as the kubelet reports it: the 50 largest, names by digest then by tag.
pub fn node_images(mut images: Vec<Image>) -> Vec<ContainerImage> {
    images.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.id.cmp(&b.id)));
    images
        .into_iter()
        .take(MAX_STATUS_IMAGES)
        .map(|image| ContainerImage {
            names: Some(
                image
                    .repo_digests
                    .into_iter()
                    .chain(image.repo_tags)
                    .collect(),
            ),
            size_bytes: Some(image.size as i64),
        })
        .collect()
}

fn same_status(a: &NodeStatus, b: &NodeStatus) -> bool {
    let strip = |s: &NodeStatus| {
        let mut s = s.clone();
        for c in s.conditions.iter_mut().flatten() {
            c.last_heartbeat_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig {
            name: "sim-7".into(),
            cpu: "32".into(),
            memory: "256Gi".into(),
            ephemeral_storage: "100Gi".into(),
            max_pods: 110,
            internal_ip: "172.30.0.7".parse().unwrap(),
            pod_cidr: None,
            labels: BTreeMap::from([("zone".to_string(), "a".to_string())]),
            control_plane: true,
            kubelet_version: "v1.33.1+navarch-0.1.0".into(),
            runtime_version: "simulated://0.1.0".into(),
            kernel_version: "6.1.0".into(),
            os_image: "Navarch simulated node".into(),
            kubelet_port: KUBELET_PORT,
            host_data_dir: None,
            reserved: Reserved::default(),
        }
    }

    fn at(s: i64) -> Time {
        Time(jiff::Timestamp::from_second(1_700_000_000 + s).unwrap())
    }

    #[test]
    fn the_node_carries_resources_labels_and_ready_conditions() {
        let node = node_object(&config(), Some(pod_cidr_by_index(7)), "boot", at(0));
        let labels = node.metadata.labels.unwrap();
        assert_eq!(labels["kubernetes.io/hostname"], "sim-7");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], go_arch());
        assert_eq!(labels[CONTROL_PLANE_LABEL], "true");
        assert_eq!(labels["zone"], "a");
        assert_eq!(node.spec.unwrap().pod_cidr.as_deref(), Some("10.42.7.0/24"));
        let status = node.status.unwrap();
        let capacity = status.capacity.unwrap();
        assert_eq!(capacity["cpu"].0, "32");
        assert_eq!(capacity["memory"].0, "256Gi");
        assert_eq!(capacity["pods"].0, "110");
        assert_eq!(capacity["ephemeral-storage"].0, "100Gi");
        assert_eq!(status.allocatable.unwrap()["pods"].0, "110");
        let conditions = status.conditions.unwrap();
        let ready = conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_deref()),
            ("True", Some("KubeletReady"))
        );
        for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
            assert_eq!(
                conditions.iter().find(|c| c.type_ == kind).unwrap().status,
                "False"
            );
        }
        let info = status.node_info.unwrap();
        assert_eq!(info.kubelet_version, "v1.33.1+navarch-0.1.0");
        assert_eq!(info.container_runtime_version, "simulated://0.1.0");
        assert_eq!(info.machine_id.len(), 32);
        let addresses = status.addresses.unwrap();
        assert_eq!(addresses[0].type_, "InternalIP");
        assert_eq!(addresses[0].address, "172.30.0.7");
    }

    #[test]
    fn heartbeats_keep_transition_times_and_are_not_changes() {
        let first = node_status(&config(), "boot", None, at(0));
        let second = node_status(&config(), "boot", Some(&first), at(10));
        assert!(same_status(&first, &second));
        let ready = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .unwrap()
                .iter()
                .find(|c| c.type_ == "Ready")
                .cloned()
                .unwrap()
        };
        assert_eq!(ready(&second).last_transition_time, Some(at(0)));
        assert_eq!(ready(&second).last_heartbeat_time, Some(at(10)));
        let mut bigger = config();
        bigger.max_pods = 200;
        assert!(!same_status(
            &first,
            &node_status(&bigger, "boot", Some(&first), at(10))
        ));
    }

    #[test]
    fn pod_cidrs_are_24s_of_the_cluster_network() {
        let net: Ipv4Net = "10.42.0.0/16".parse().unwrap();
        let a = default_pod_cidr("node-a");
        assert!(net.contains(&a) && a.prefix_len() == 24);
        assert_eq!(a, default_pod_cidr("node-a"));
        assert_eq!(pod_cidr_by_index(258).to_string(), "10.42.2.0/24");
    }

    #[test]
    fn real_nodes_report_the_machine_and_their_images() {
        let dir = tempfile::tempdir().unwrap();
        let mut real = config();
        real.host_data_dir = Some(dir.path().join("data"));
        real.reserved = Reserved::parse("cpu=100m").unwrap();
        let status = node_status(&real, "boot", None, at(0));
        let capacity = status.capacity.unwrap();
        let cpus = std::thread::available_parallelism().unwrap().get() as i64;
        assert_eq!(capacity["cpu"].0, cpus.to_string());
        assert_ne!(capacity["memory"].0, "256Gi");
        let allocatable = status.allocatable.unwrap();
        assert_eq!(allocatable["cpu"].0, format!("{}m", cpus * 1000 - 100));
        assert_eq!(real.allocatable().0, allocatable["cpu"].0);

        let image = |id: &str, size: u64| Image {
            id: id.into(),
            repo_tags: vec![format!("{id}:1")],
            repo_digests: vec![format!("{id}@sha256:0")],
            size,
            uid: None,
            username: String::new(),
        };
        let mut images: Vec<Image> = (0..60).map(|i| image(&format!("i{i}"), i)).collect();
        images.push(image("big", 1 << 30));
        let listed = node_images(images);
        assert_eq!(listed.len(), 50);
        assert_eq!(
            listed[0].names.as_deref().unwrap(),
            ["big@sha256:0", "big:1"]
        );
        assert_eq!(listed[0].size_bytes, Some(1 << 30));
        assert_eq!(listed[49].size_bytes, Some(11));
    }
}
