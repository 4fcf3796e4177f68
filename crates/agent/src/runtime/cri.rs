//! The [`Runtime`] over CRI v1: gRPC (`k8s-cri` + tonic) on a unix socket, to the containerd
//! the agent supervises ([`crate::containerd`]) or to any CRI runtime
//! (`--container-runtime-endpoint`).
//!
//! Start at [`CriRuntime::connect`]. Pods become sandboxes with the kubelet's labels
//! (`io.kubernetes.pod.*`), log directories `PODS/NAMESPACE_NAME_UID` and, with the cgroupfs
//! driver, the cgroup parent `/navarch/pod<UID>`, which is removed with the sandbox.
//!
//! containerd 1.6 has no `GetContainerEvents`, so [`Runtime::container_events`] comes from a
//! relist: `ListContainers` every [`CriOptions::relist_interval`], compared with the last
//! list, the way the kubelet's PLEG works without events.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use jiff::Timestamp;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, DropGuard};
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Status};

use super::{
    ContainerConfig, ContainerEvent, ContainerEventKind, ContainerSecurity, ContainerState,
    ContainerStatus, ExecSyncResult, Image, LinuxResources, PodSandboxConfig, PodSandboxStatus,
    Runtime, RuntimeResult, RuntimeVersion, SandboxState,
};
use crate::containerd::CgroupDriver;
use crate::error::RuntimeError;

/// The kubelet's sandbox and container labels.
const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// CRI's container status does not carry the sandbox id; the agent labels it.
const LABEL_SANDBOX_ID: &str = "navarch.io/sandbox-id";
/// The image as the pod spec names it (runtimes report a normalised or resolved one).
const ANNOTATION_IMAGE: &str = "navarch.io/image";
/// Responses larger than tonic's 4 MiB default: lists of thousands of containers.
const MAX_MESSAGE: usize = 64 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Where cgroupfs hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How to talk to the runtime and lay out pods.
#[derive(Debug, Clone)]
pub struct CriOptions {
    /// The runtime's unix socket.
    pub socket: PathBuf,
    /// Container logs go to `pod_log_dir/NAMESPACE_NAME_UID/CONTAINER/ATTEMPT.log`.
    pub pod_log_dir: PathBuf,
    /// The cgroup driver the runtime uses (the pods' cgroup parent is named to match).
    pub cgroup_driver: CgroupDriver,
    /// How often containers are listed to find state changes.
    pub relist_interval: Duration,
}

impl CriOptions {
    pub fn new(socket: impl Into<PathBuf>, pod_log_dir: impl Into<PathBuf>) -> CriOptions {
        CriOptions {
            socket: socket.into(),
            pod_log_dir: pod_log_dir.into(),
            cgroup_driver: CgroupDriver::detect(),
            relist_interval: Duration::from_secs(1),
        }
    }
}

/// The socket path in a `--container-runtime-endpoint` (`unix:///run/x.sock` or a path).
pub fn endpoint_socket(endpoint: &str) -> Result<PathBuf, RuntimeError> {
    let path = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    if !path.starts_with('/') {
        return Err(RuntimeError::InvalidState(format!(
            "unsupported runtime endpoint {endpoint:?}: want unix:///PATH"
        )));
    }
    Ok(PathBuf::from(path))
}

/// A channel over the unix socket that (re)connects when used, so a restarted runtime is
/// picked up without the agent noticing.
fn channel(socket: &Path) -> Channel {
    let socket = socket.to_path_buf();
    Endpoint::from_static("http://cri.invalid")
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
}

fn runtime_client(channel: Channel) -> RuntimeServiceClient<Channel> {
    RuntimeServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

fn image_client(channel: Channel) -> ImageServiceClient<Channel> {
    ImageServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

/// A failed call in the runtime's terms: `NotFound` for a missing object, the gRPC message
/// otherwise.
fn call_error(
    operation: &'static str,
    kind: &'static str,
    id: &str,
) -> impl FnOnce(Status) -> RuntimeError {
    let id = id.to_string();
    move |status| match status.code() {
        Code::NotFound => RuntimeError::NotFound { kind, id },
        _ => RuntimeError::Call {
            operation,
            message: status.message().to_string(),
        },
    }
}

fn timestamp(nanos: i64) -> Option<Timestamp> {
    if nanos <= 0 {
        return None;
    }
    Timestamp::from_nanosecond(i128::from(nanos)).ok()
}

/// Whole seconds for CRI's timeouts, rounded up and at least one (zero means "none" there).
fn whole_seconds(duration: Duration) -> i64 {
    let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    secs.max(1) as i64
}

/// The pod's cgroup parent for `driver`: a cgroupfs path, or a systemd slice.
pub fn cgroup_parent(driver: CgroupDriver, pod_uid: &str) -> String {
    match driver {
        CgroupDriver::Cgroupfs => format!("/navarch/pod{pod_uid}"),
        CgroupDriver::Systemd => format!("navarch-pod{}.slice", pod_uid.replace('-', "_")),
    }
}

/// The CRI sandbox configuration for a pod.
pub fn sandbox_config(pod: &PodSandboxConfig, options: &CriOptions) -> cri::PodSandboxConfig {
    let mut labels: HashMap<String, String> = pod.labels.clone().into_iter().collect();
    labels.insert(LABEL_POD_NAME.to_string(), pod.name.clone());
    labels.insert(LABEL_POD_NAMESPACE.to_string(), pod.namespace.clone());
    labels.insert(LABEL_POD_UID.to_string(), pod.uid.clone());
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            namespace: pod.namespace.clone(),
            attempt: pod.attempt,
        }),
        hostname: pod.hostname.clone(),
        log_directory: pod_log_dir(pod, options).to_string_lossy().into_owned(),
        labels,
        annotations: pod.annotations.clone().into_iter().collect(),
        dns_config: pod.dns.as_ref().map(|dns| cri::DnsConfig {
            servers: dns.servers.clone(),
            searches: dns.searches.clone(),
            options: dns.options.clone(),
        }),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent(options.cgroup_driver, &pod.uid),
            resources: pod.resources.map(linux_resources),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(namespace_options(pod.host_network)),
                privileged: pod.privileged,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The kubelet's defaults: the pod shares network and IPC, each container has its own PIDs;
/// a `hostNetwork` pod uses the node's network.
fn namespace_options(host_network: bool) -> cri::NamespaceOption {
    let network = if host_network {
        cri::NamespaceMode::Node
    } else {
        cri::NamespaceMode::Pod
    };
    cri::NamespaceOption {
        network: network as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

fn pod_log_dir(pod: &PodSandboxConfig, options: &CriOptions) -> PathBuf {
    log_dir(options, &pod.namespace, &pod.name, &pod.uid)
}

/// The kubelet's layout: `PODS/NAMESPACE_NAME_UID`.
fn log_dir(options: &CriOptions, namespace: &str, name: &str, uid: &str) -> PathBuf {
    options
        .pod_log_dir
        .join(format!("{namespace}_{name}_{uid}"))
}

/// The CRI container configuration (log path relative to the sandbox's log directory).
pub fn container_config(
    sandbox_id: &str,
    config: &ContainerConfig,
    pod: &PodSandboxConfig,
) -> cri::ContainerConfig {
    let labels = HashMap::from([
        (LABEL_POD_NAME.to_string(), pod.name.clone()),
        (LABEL_POD_NAMESPACE.to_string(), pod.namespace.clone()),
        (LABEL_POD_UID.to_string(), pod.uid.clone()),
        (LABEL_CONTAINER_NAME.to_string(), config.name.clone()),
        (LABEL_SANDBOX_ID.to_string(), sandbox_id.to_string()),
    ]);
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: config.name.clone(),
            attempt: config.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: config.image.clone(),
            user_specified_image: config.image.clone(),
            ..Default::default()
        }),
        command: config.command.clone(),
        args: config.args.clone(),
        working_dir: config.working_dir.clone(),
        envs: config
            .env
            .iter()
            .map(|(key, value)| cri::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        labels,
        annotations: HashMap::from([(ANNOTATION_IMAGE.to_string(), config.image.clone())]),
        log_path: format!("{}/{}.log", config.name, config.attempt),
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
        mounts: config
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.to_string_lossy().into_owned(),
                readonly: m.readonly,
                ..Default::default()
            })
            .collect(),
        linux: Some(cri::LinuxContainerConfig {
            resources: config.resources.map(linux_resources),
            security_context: Some(security_context(&config.security, pod.host_network)),
        }),
        ..Default::default()
    }
}

fn security_context(
    security: &ContainerSecurity,
    host_network: bool,
) -> cri::LinuxContainerSecurityContext {
    let capabilities = (!security.add_capabilities.is_empty()
        || !security.drop_capabilities.is_empty())
    .then(|| cri::Capability {
        add_capabilities: security.add_capabilities.clone(),
        drop_capabilities: security.drop_capabilities.clone(),
        ..Default::default()
    });
    cri::LinuxContainerSecurityContext {
        capabilities,
        privileged: security.privileged,
        namespace_options: Some(namespace_options(host_network)),
        run_as_user: security.run_as_user.map(|value| cri::Int64Value { value }),
        run_as_group: security.run_as_group.map(|value| cri::Int64Value { value }),
        readonly_rootfs: security.readonly_rootfs,
        supplemental_groups: security.supplemental_groups.clone(),
        no_new_privs: security.no_new_privs,
        ..Default::default()
    }
}

fn linux_resources(r: LinuxResources) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit,
        oom_score_adj: r.oom_score_adj,
        ..Default::default()
    }
}

/// The files that set `resources` on a cgroupfs cgroup at `relative` (below the hierarchy
/// roots), in the order to write them: cgroup v1's `cpu.shares`, `cpu.cfs_*` and
/// `memory.limit_in_bytes`, or v2's `cpu.weight`, `cpu.max` and `memory.max`.
pub fn cgroup_files(
    unified: bool,
    relative: &str,
    resources: &LinuxResources,
) -> Vec<(PathBuf, String)> {
    let root = Path::new(CGROUP_ROOT);
    let mut files = Vec::new();
    if unified {
        let dir = root.join(relative);
        if resources.cpu_shares > 0 {
            // The kubelet's shares-to-weight mapping ([2, 262144] onto [1, 10000]).
            let weight = 1 + ((resources.cpu_shares - 2) * 9999) / 262_142;
            files.push((dir.join("cpu.weight"), weight.to_string()));
        }
        if resources.cpu_quota > 0 {
            let max = format!("{} {}", resources.cpu_quota, resources.cpu_period);
            files.push((dir.join("cpu.max"), max));
        }
        if resources.memory_limit > 0 {
            let limit = resources.memory_limit.to_string();
            files.push((dir.join("memory.max"), limit));
        }
        return files;
    }
    let cpu = root.join("cpu").join(relative);
    if resources.cpu_shares > 0 {
        let shares = resources.cpu_shares.to_string();
        files.push((cpu.join("cpu.shares"), shares));
    }
    if resources.cpu_quota > 0 {
        let period = resources.cpu_period.to_string();
        files.push((cpu.join("cpu.cfs_period_us"), period));
        let quota = resources.cpu_quota.to_string();
        files.push((cpu.join("cpu.cfs_quota_us"), quota));
    }
    if resources.memory_limit > 0 {
        let memory = root.join("memory").join(relative);
        let limit = resources.memory_limit.to_string();
        files.push((memory.join("memory.limit_in_bytes"), limit));
    }
    files
}

fn container_state(state: i32) -> ContainerState {
    match cri::ContainerState::try_from(state) {
        Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(cri::ContainerState::ContainerExited) => ContainerState::Exited,
        _ => ContainerState::Unknown,
    }
}

/// Our view of a CRI container status.
pub fn container_status(status: cri::ContainerStatus) -> ContainerStatus {
    let label = |key: &str| status.labels.get(key).cloned().unwrap_or_default();
    let metadata = status.metadata.clone().unwrap_or_default();
    let image = status
        .annotations
        .get(ANNOTATION_IMAGE)
        .cloned()
        .or_else(|| status.image.as_ref().map(|i| i.image.clone()))
        .unwrap_or_default();
    ContainerStatus {
        id: status.id.clone(),
        sandbox_id: label(LABEL_SANDBOX_ID),
        pod_uid: label(LABEL_POD_UID),
        name: metadata.name,
        attempt: metadata.attempt,
        state: container_state(status.state),
        created_at: timestamp(status.created_at).unwrap_or(Timestamp::UNIX_EPOCH),
        started_at: timestamp(status.started_at),
        finished_at: timestamp(status.finished_at),
        exit_code: status.exit_code,
        reason: Some(status.reason).filter(|r| !r.is_empty()),
        message: Some(status.message).filter(|m| !m.is_empty()),
        image,
        image_ref: status.image_ref,
        log_path: Some(status.log_path)
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    }
}

fn sandbox_status(status: cri::PodSandboxStatus) -> PodSandboxStatus {
    let metadata = status.metadata.unwrap_or_default();
    let ready = status.state == cri::PodSandboxState::SandboxReady as i32;
    PodSandboxStatus {
        id: status.id,
        pod_uid: metadata.uid,
        name: metadata.name,
        namespace: metadata.namespace,
        state: if ready {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        },
        created_at: timestamp(status.created_at).unwrap_or(Timestamp::UNIX_EPOCH),
        ip: status
            .network
            .and_then(|n| n.ip.parse::<IpAddr>().ok())
            .filter(|_| ready),
    }
}

fn image(image: cri::Image) -> Image {
    Image {
        id: image.id,
        repo_tags: image.repo_tags,
        repo_digests: image.repo_digests,
        size: image.size,
        uid: image.uid.map(|uid| uid.value),
        username: image.username,
    }
}

/// A [`Runtime`] speaking CRI to a runtime on a unix socket. Cheap to clone.
#[derive(Clone)]
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    version: RuntimeVersion,
    options: CriOptions,
    events: broadcast::Sender<ContainerEvent>,
    /// Stops the relist when the last clone goes.
    _relist: std::sync::Arc<DropGuard>,
}

impl std::fmt::Debug for CriRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriRuntime")
            .field("options", &self.options)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl CriRuntime {
    /// Connect, ask the runtime's version and start the relist.
    pub async fn connect(options: CriOptions) -> RuntimeResult<CriRuntime> {
        let channel = channel(&options.socket);
        let mut runtime = runtime_client(channel.clone());
        let version = runtime
            .version(cri::VersionRequest {
                version: "v1".to_string(),
            })
            .await
            .map_err(|status| RuntimeError::Call {
                operation: "Version",
                message: format!("{}: {}", options.socket.display(), status.message()),
            })?
            .into_inner();
        let (events, _) = broadcast::channel(1024);
        let cancel = CancellationToken::new();
        let known = list_states(&mut runtime).await.unwrap_or_default();
        tokio::spawn(relist(
            runtime.clone(),
            events.clone(),
            known,
            options.relist_interval,
            cancel.clone(),
        ));
        Ok(CriRuntime {
            runtime,
            images: image_client(channel),
            version: RuntimeVersion {
                name: version.runtime_name,
                version: version.runtime_version,
            },
            options,
            events,
            _relist: std::sync::Arc::new(cancel.drop_guard()),
        })
    }

    /// Whether the runtime reports its network ready (a CNI configuration loaded).
    pub async fn network_ready(&self) -> RuntimeResult<bool> {
        let status = self
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .map_err(call_error("Status", "runtime", ""))?
            .into_inner();
        Ok(status
            .status
            .map(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.r#type == "NetworkReady" && c.status)
            })
            .unwrap_or(false))
    }

    /// Stop and remove every pod sandbox (and so every container) the runtime has: a
    /// node's cleanup.
    pub async fn remove_all_pod_sandboxes(&self) -> RuntimeResult<()> {
        for sandbox in self.list_pod_sandboxes().await? {
            self.stop_pod_sandbox(&sandbox.id).await?;
            self.remove_pod_sandbox(&sandbox.id).await?;
        }
        Ok(())
    }

    /// The network namespace a sandbox runs in (from the runtime's verbose status), for
    /// checks that it is gone afterwards.
    pub async fn sandbox_netns(&self, sandbox_id: &str) -> RuntimeResult<Option<PathBuf>> {
        let response = self
            .runtime
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                verbose: true,
            })
            .await
            .map_err(call_error("PodSandboxStatus", "pod sandbox", sandbox_id))?
            .into_inner();
        let Some(info) = response.info.get("info") else {
            return Ok(None);
        };
        let info: serde_json::Value = serde_json::from_str(info).unwrap_or_default();
        let namespaces = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok(namespaces
            .iter()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .map(PathBuf::from))
    }

    /// Sandboxes with their statuses (the list has no addresses).
    async fn sandboxes(
        &self,
        filter: Option<cri::PodSandboxFilter>,
    ) -> RuntimeResult<Vec<PodSandboxStatus>> {
        let list = self
            .runtime
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter })
            .await
            .map_err(call_error("ListPodSandbox", "pod sandbox", ""))?
            .into_inner();
        let mut out = Vec::with_capacity(list.items.len());
        for item in list.items {
            match self.pod_sandbox_status(&item.id).await {
                Ok(status) => out.push(status),
                // Removed in between.
                Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Create the pod's cgroup with its limits before its sandbox, as the kubelet's pod
    /// container manager does (runc then only adds the containers below it). Only with the
    /// cgroupfs driver; under systemd the limits reach the runtime in the sandbox config.
    fn create_pod_cgroup(&self, pod_uid: &str, resources: &LinuxResources) -> RuntimeResult<()> {
        if self.options.cgroup_driver != CgroupDriver::Cgroupfs || pod_uid.is_empty() {
            return Ok(());
        }
        let parent = cgroup_parent(CgroupDriver::Cgroupfs, pod_uid);
        let relative = parent.trim_start_matches('/');
        let unified = Path::new(CGROUP_ROOT).join("cgroup.controllers").exists();
        let fail = |path: &Path, e: std::io::Error| RuntimeError::Call {
            operation: "RunPodSandbox",
            message: format!("cannot set up the pod cgroup {}: {e}", path.display()),
        };
        if unified {
            // Controllers must be enabled down the path before the pod's files exist.
            let mut dir = PathBuf::from(CGROUP_ROOT);
            for part in Path::new(relative).iter() {
                let control = dir.join("cgroup.subtree_control");
                std::fs::write(&control, "+cpu +memory").map_err(|e| fail(&control, e))?;
                dir = dir.join(part);
                std::fs::create_dir_all(&dir).map_err(|e| fail(&dir, e))?;
            }
        }
        for (path, value) in cgroup_files(unified, relative, resources) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
            }
            std::fs::write(&path, &value).map_err(|e| fail(&path, e))?;
        }
        Ok(())
    }

    fn remove_cgroup_parent(&self, pod_uid: &str) {
        if self.options.cgroup_driver != CgroupDriver::Cgroupfs || pod_uid.is_empty() {
            return;
        }
        let parent = cgroup_parent(CgroupDriver::Cgroupfs, pod_uid);
        let relative = parent.trim_start_matches('/');
        let Ok(hierarchies) = std::fs::read_dir(CGROUP_ROOT) else {
            return;
        };
        let unified = Path::new(CGROUP_ROOT).join(relative);
        let dirs = hierarchies
            .flatten()
            .map(|h| h.path().join(relative))
            .chain([unified]);
        for dir in dirs {
            // Fails when the hierarchy has no such directory, or while a process is still
            // in it; either way nothing more can be done here.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Every container's state and pod, by id.
async fn list_states(
    runtime: &mut RuntimeServiceClient<Channel>,
) -> Result<HashMap<String, (ContainerState, String)>, Status> {
    let list = runtime
        .list_containers(cri::ListContainersRequest { filter: None })
        .await?
        .into_inner();
    Ok(list
        .containers
        .into_iter()
        .map(|c| {
            let pod_uid = c.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
            (c.id, (container_state(c.state), pod_uid))
        })
        .collect())
}

/// The events that take `before` to `after`.
pub fn diff_states(
    before: &HashMap<String, (ContainerState, String)>,
    after: &HashMap<String, (ContainerState, String)>,
) -> Vec<ContainerEvent> {
    let mut events = Vec::new();
    let event = |id: &str, pod_uid: &str, kind| ContainerEvent {
        container_id: id.to_string(),
        pod_uid: pod_uid.to_string(),
        kind,
    };
    for (id, (state, pod_uid)) in after {
        let old = before.get(id).map(|(s, _)| *s);
        if old == Some(*state) {
            continue;
        }
        if old.is_none() {
            events.push(event(id, pod_uid, ContainerEventKind::Created));
        }
        match state {
            ContainerState::Running => events.push(event(id, pod_uid, ContainerEventKind::Started)),
            ContainerState::Exited | ContainerState::Unknown => {
                events.push(event(id, pod_uid, ContainerEventKind::Stopped))
            }
            ContainerState::Created => {}
        }
    }
    for (id, (_, pod_uid)) in before {
        if !after.contains_key(id) {
            events.push(event(id, pod_uid, ContainerEventKind::Deleted));
        }
    }
    events
}

async fn relist(
    mut runtime: RuntimeServiceClient<Channel>,
    events: broadcast::Sender<ContainerEvent>,
    mut known: HashMap<String, (ContainerState, String)>,
    interval: Duration,
    cancel: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let current = match list_states(&mut runtime).await {
            Ok(current) => current,
            Err(status) => {
                if !failing {
                    tracing::warn!(error = %status.message(), "cannot list containers");
                }
                failing = true;
                continue;
            }
        };
        failing = false;
        for event in diff_states(&known, &current) {
            // No receivers is fine: nobody is interested yet.
            let _ = events.send(event);
        }
        known = current;
    }
}

#[async_trait]
impl Runtime for CriRuntime {
    fn version(&self) -> RuntimeVersion {
        self.version.clone()
    }

    async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> RuntimeResult<String> {
        let log_dir = pod_log_dir(config, &self.options);
        std::fs::create_dir_all(&log_dir).map_err(|e| RuntimeError::Call {
            operation: "RunPodSandbox",
            message: format!("cannot create {}: {e}", log_dir.display()),
        })?;
        if let Some(resources) = &config.resources {
            if let Err(e) = self.create_pod_cgroup(&config.uid, resources) {
                self.remove_cgroup_parent(&config.uid);
                return Err(e);
            }
        }
        let response = self
            .runtime
            .clone()
            .run_pod_sandbox(cri::RunPodSandboxRequest {
                config: Some(sandbox_config(config, &self.options)),
                runtime_handler: String::new(),
            })
            .await;
        match response {
            Ok(response) => Ok(response.into_inner().pod_sandbox_id),
            Err(status) => {
                // runc created the parent on its way to failing; nothing removes it later.
                self.remove_cgroup_parent(&config.uid);
                Err(call_error("RunPodSandbox", "pod sandbox", &config.name)(
                    status,
                ))
            }
        }
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()> {
        match self
            .runtime
            .clone()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: sandbox_id.to_string(),
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call_error("StopPodSandbox", "pod sandbox", sandbox_id)(
                status,
            )),
        }
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()> {
        let sandbox = match self.pod_sandbox_status(sandbox_id).await {
            Ok(status) => status,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .runtime
            .clone()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: sandbox_id.to_string(),
            })
            .await
        {
            Ok(_) => {}
            Err(status) if status.code() == Code::NotFound => {}
            Err(status) => {
                return Err(call_error("RemovePodSandbox", "pod sandbox", sandbox_id)(
                    status,
                ))
            }
        }
        self.remove_cgroup_parent(&sandbox.pod_uid);
        // The pod's logs go with it, as the kubelet's garbage collection removes them.
        let logs = log_dir(
            &self.options,
            &sandbox.namespace,
            &sandbox.name,
            &sandbox.pod_uid,
        );
        match std::fs::remove_dir_all(&logs) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %logs.display(), error = %e, "cannot remove pod logs"),
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> RuntimeResult<PodSandboxStatus> {
        let response = self
            .runtime
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                verbose: false,
            })
            .await
            .map_err(call_error("PodSandboxStatus", "pod sandbox", sandbox_id))?;
        let status = response
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "pod sandbox",
                id: sandbox_id.to_string(),
            })?;
        Ok(sandbox_status(status))
    }

    async fn list_pod_sandboxes(&self) -> RuntimeResult<Vec<PodSandboxStatus>> {
        self.sandboxes(None).await
    }

    async fn pod_sandboxes(&self, pod_uid: &str) -> RuntimeResult<Vec<PodSandboxStatus>> {
        let filter = cri::PodSandboxFilter {
            label_selector: HashMap::from([(LABEL_POD_UID.to_string(), pod_uid.to_string())]),
            ..Default::default()
        };
        self.sandboxes(Some(filter)).await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> RuntimeResult<String> {
        let log_dir = pod_log_dir(sandbox, &self.options).join(&config.name);
        std::fs::create_dir_all(&log_dir).map_err(|e| RuntimeError::Call {
            operation: "CreateContainer",
            message: format!("cannot create {}: {e}", log_dir.display()),
        })?;
        let response = self
            .runtime
            .clone()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                config: Some(container_config(sandbox_id, config, sandbox)),
                sandbox_config: Some(sandbox_config(sandbox, &self.options)),
            })
            .await
            .map_err(call_error("CreateContainer", "pod sandbox", sandbox_id))?;
        Ok(response.into_inner().container_id)
    }

    async fn start_container(&self, container_id: &str) -> RuntimeResult<()> {
        self.runtime
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: container_id.to_string(),
            })
            .await
            .map_err(call_error("StartContainer", "container", container_id))?;
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> RuntimeResult<()> {
        match self
            .runtime
            .clone()
            .stop_container(cri::StopContainerRequest {
                container_id: container_id.to_string(),
                timeout: timeout.as_secs() as i64,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call_error("StopContainer", "container", container_id)(
                status,
            )),
        }
    }

    async fn remove_container(&self, container_id: &str) -> RuntimeResult<()> {
        match self
            .runtime
            .clone()
            .remove_container(cri::RemoveContainerRequest {
                container_id: container_id.to_string(),
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::NotFound => Ok(()),
            Err(status) => Err(call_error("RemoveContainer", "container", container_id)(
                status,
            )),
        }
    }

    async fn container_status(&self, container_id: &str) -> RuntimeResult<ContainerStatus> {
        let response = self
            .runtime
            .clone()
            .container_status(cri::ContainerStatusRequest {
                container_id: container_id.to_string(),
                verbose: false,
            })
            .await
            .map_err(call_error("ContainerStatus", "container", container_id))?;
        let status = response
            .into_inner()
            .status
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "container",
                id: container_id.to_string(),
            })?;
        Ok(container_status(status))
    }

    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> RuntimeResult<Vec<ContainerStatus>> {
        let filter = sandbox_id.map(|id| cri::ContainerFilter {
            pod_sandbox_id: id.to_string(),
            ..Default::default()
        });
        let list = self
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest { filter })
            .await
            .map_err(call_error(
                "ListContainers",
                "pod sandbox",
                sandbox_id.unwrap_or(""),
            ))?
            .into_inner();
        let mut out = Vec::with_capacity(list.containers.len());
        for container in list.containers {
            match self.container_status(&container.id).await {
                Ok(status) => out.push(status),
                Err(RuntimeError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> RuntimeResult<ExecSyncResult> {
        let response = self
            .runtime
            .clone()
            .exec_sync(cri::ExecSyncRequest {
                container_id: container_id.to_string(),
                cmd: command.to_vec(),
                timeout: whole_seconds(timeout),
            })
            .await
            .map_err(call_error("ExecSync", "container", container_id))?
            .into_inner();
        Ok(ExecSyncResult {
            exit_code: response.exit_code,
            stdout: response.stdout,
            stderr: response.stderr,
        })
    }

    async fn pull_image(&self, image: &str, sandbox: &PodSandboxConfig) -> RuntimeResult<String> {
        let response = self
            .images
            .clone()
            .pull_image(cri::PullImageRequest {
                image: Some(cri::ImageSpec {
                    image: image.to_string(),
                    user_specified_image: image.to_string(),
                    ..Default::default()
                }),
                auth: None,
                sandbox_config: Some(sandbox_config(sandbox, &self.options)),
            })
            .await
            .map_err(|status| RuntimeError::ImagePull {
                image: image.to_string(),
                message: status.message().to_string(),
            })?;
        Ok(response.into_inner().image_ref)
    }

    async fn image_status(&self, image: &str) -> RuntimeResult<Option<Image>> {
        image_status(&mut self.images.clone(), image).await
    }

    async fn list_images(&self) -> RuntimeResult<Vec<Image>> {
        let list = self
            .images
            .clone()
            .list_images(cri::ListImagesRequest { filter: None })
            .await
            .map_err(call_error("ListImages", "image", ""))?
            .into_inner();
        Ok(list.images.into_iter().map(image).collect())
    }

    fn pod_network_reachable(&self) -> bool {
        true
    }

    fn container_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}

async fn image_status(
    images: &mut ImageServiceClient<Channel>,
    reference: &str,
) -> RuntimeResult<Option<Image>> {
    let response = images
        .image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: reference.to_string(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .map_err(call_error("ImageStatus", "image", reference))?;
    Ok(response.into_inner().image.map(image))
}

/// The images of the CRI runtime at `socket` (`navarch images ls`).
pub async fn list_images(socket: &Path) -> RuntimeResult<Vec<Image>> {
    let list = image_client(channel(socket))
        .list_images(cri::ListImagesRequest { filter: None })
        .await
        .map_err(call_error("ListImages", "image", ""))?
        .into_inner();
    Ok(list.images.into_iter().map(image).collect())
}

/// Remove an image by name or id (`navarch images rm`); a missing image is `NotFound`.
pub async fn remove_image(socket: &Path, reference: &str) -> RuntimeResult<()> {
    let mut images = image_client(channel(socket));
    let Some(found) = image_status(&mut images, reference).await? else {
        return Err(RuntimeError::NotFound {
            kind: "image",
            id: reference.to_string(),
        });
    };
    images
        .remove_image(cri::RemoveImageRequest {
            image: Some(cri::ImageSpec {
                image: found.id,
                ..Default::default()
            }),
        })
        .await
        .map_err(call_error("RemoveImage", "image", reference))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn pod() -> PodSandboxConfig {
        PodSandboxConfig {
            name: "web-1".into(),
            namespace: "default".into(),
            uid: "0b1c-2d".into(),
            attempt: 0,
            hostname: "web-1".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            annotations: BTreeMap::new(),
            resources: Some(LinuxResources {
                cpu_shares: 512,
                cpu_quota: 50_000,
                cpu_period: 100_000,
                memory_limit: 32 << 20,
                oom_score_adj: 0,
            }),
            ..Default::default()
        }
    }

    fn options(driver: CgroupDriver) -> CriOptions {
        CriOptions {
            socket: "/d/containerd/containerd.sock".into(),
            pod_log_dir: "/d/pods".into(),
            cgroup_driver: driver,
            relist_interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn sandboxes_carry_the_kubelet_labels_log_directory_and_cgroup_parent() {
        let config = sandbox_config(&pod(), &options(CgroupDriver::Cgroupfs));
        assert_eq!(config.labels[LABEL_POD_UID], "0b1c-2d");
        let resources = config.linux.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!(resources.memory_limit_in_bytes, 32 << 20);
        assert_eq!(config.labels["app"], "web");
        assert_eq!(config.log_directory, "/d/pods/default_web-1_0b1c-2d");
        let linux = config.linux.unwrap();
        assert_eq!(linux.cgroup_parent, "/navarch/pod0b1c-2d");
        let ns = linux.security_context.unwrap().namespace_options.unwrap();
        assert_eq!(ns.network, cri::NamespaceMode::Pod as i32);
        assert_eq!(ns.pid, cri::NamespaceMode::Container as i32);
        let systemd = sandbox_config(&pod(), &options(CgroupDriver::Systemd));
        assert_eq!(
            systemd.linux.unwrap().cgroup_parent,
            "navarch-pod0b1c_2d.slice"
        );
    }

    #[test]
    fn containers_pass_command_env_and_working_dir_through() {
        let config = ContainerConfig {
            name: "app".into(),
            attempt: 2,
            image: "busybox".into(),
            command: vec!["sh".into(), "-c".into()],
            args: vec!["echo hi".into()],
            working_dir: "/tmp".into(),
            env: vec![("A".into(), "1".into())],
            init: false,
            resources: Some(LinuxResources {
                cpu_shares: 2,
                cpu_quota: 0,
                cpu_period: 100_000,
                memory_limit: 0,
                oom_score_adj: 1000,
            }),
            ..Default::default()
        };
        let cri = container_config("sb1", &config, &pod());
        assert_eq!(cri.command, ["sh", "-c"]);
        assert_eq!(cri.args, ["echo hi"]);
        assert_eq!(cri.working_dir, "/tmp");
        assert_eq!(cri.envs[0].key, "A");
        assert_eq!(cri.log_path, "app/2.log");
        assert_eq!(cri.labels[LABEL_SANDBOX_ID], "sb1");
        assert_eq!(cri.annotations[ANNOTATION_IMAGE], "busybox");
        let resources = cri.linux.unwrap().resources.unwrap();
        assert_eq!(resources.cpu_shares, 2);
        assert_eq!(resources.cpu_period, 100_000);
        assert_eq!(resources.oom_score_adj, 1000);
    }

    #[test]
    fn security_settings_mounts_and_host_network_reach_cri() {
        let config = ContainerConfig {
            name: "app".into(),
            image: "busybox".into(),
            security: ContainerSecurity {
                run_as_user: Some(1000),
                run_as_group: None,
                supplemental_groups: vec![4000, 3000],
                readonly_rootfs: true,
                privileged: true,
                no_new_privs: true,
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
            },
            mounts: vec![super::super::Mount {
                host_path: "/d/pods/x/etc-hosts".into(),
                container_path: "/etc/hosts".into(),
                readonly: false,
            }],
            ..Default::default()
        };
        let mut sandbox = pod();
        sandbox.host_network = true;
        sandbox.privileged = true;
        sandbox.dns = Some(super::super::DnsConfig {
            servers: vec!["1.1.1.1".into()],
            searches: vec!["example.com".into()],
            options: vec!["ndots:2".into()],
        });
        let cri = container_config("sb1", &config, &sandbox);
        assert_eq!(cri.mounts[0].container_path, "/etc/hosts");
        assert_eq!(cri.mounts[0].host_path, "/d/pods/x/etc-hosts");
        let security = cri.linux.unwrap().security_context.unwrap();
        assert_eq!(security.run_as_user, Some(cri::Int64Value { value: 1000 }));
        assert_eq!(security.run_as_group, None);
        assert_eq!(security.supplemental_groups, [4000, 3000]);
        assert!(security.readonly_rootfs && security.privileged && security.no_new_privs);
        let capabilities = security.capabilities.unwrap();
        assert_eq!(capabilities.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(capabilities.drop_capabilities, ["ALL"]);
        let network = security.namespace_options.unwrap().network;
        assert_eq!(network, cri::NamespaceMode::Node as i32);
        let plain = container_config("sb1", &ContainerConfig::default(), &pod());
        let security = plain.linux.unwrap().security_context.unwrap();
        assert!(security.capabilities.is_none() && security.run_as_user.is_none());

        let config = sandbox_config(&sandbox, &options(CgroupDriver::Cgroupfs));
        let dns = config.dns_config.unwrap();
        assert_eq!(dns.servers, ["1.1.1.1"]);
        assert_eq!(dns.options, ["ndots:2"]);
        let security = config.linux.unwrap().security_context.unwrap();
        assert!(security.privileged);
        let network = security.namespace_options.unwrap().network;
        assert_eq!(network, cri::NamespaceMode::Node as i32);
    }

    #[test]
    fn pod_cgroups_get_the_pod_limits_in_the_hierarchy_version_at_hand() {
        let resources = pod().resources.unwrap();
        let v1 = cgroup_files(false, "navarch/podu1", &resources);
        let expect = |list: &[(&str, &str)]| -> Vec<(PathBuf, String)> {
            list.iter()
                .map(|(p, v)| (PathBuf::from(p), v.to_string()))
                .collect()
        };
        assert_eq!(
            v1,
            expect(&[
                ("/sys/fs/cgroup/cpu/navarch/podu1/cpu.shares", "512"),
                (
                    "/sys/fs/cgroup/cpu/navarch/podu1/cpu.cfs_period_us",
                    "100000"
                ),
                ("/sys/fs/cgroup/cpu/navarch/podu1/cpu.cfs_quota_us", "50000"),
                (
                    "/sys/fs/cgroup/memory/navarch/podu1/memory.limit_in_bytes",
                    "33554432"
                ),
            ])
        );
        let v2 = cgroup_files(true, "navarch/podu1", &resources);
        assert_eq!(
            v2,
            expect(&[
                ("/sys/fs/cgroup/navarch/podu1/cpu.weight", "20"),
                ("/sys/fs/cgroup/navarch/podu1/cpu.max", "50000 100000"),
                ("/sys/fs/cgroup/navarch/podu1/memory.max", "33554432"),
            ])
        );
        let best_effort = LinuxResources {
            cpu_shares: 2,
            ..Default::default()
        };
        assert_eq!(
            cgroup_files(false, "navarch/podu1", &best_effort),
            expect(&[("/sys/fs/cgroup/cpu/navarch/podu1/cpu.shares", "2")])
        );
    }

    #[test]
    fn statuses_map_states_times_and_reasons() {
        let status = container_status(cri::ContainerStatus {
            id: "c1".into(),
            metadata: Some(cri::ContainerMetadata {
                name: "app".into(),
                attempt: 1,
            }),
            state: cri::ContainerState::ContainerExited as i32,
            created_at: 1_000_000_000,
            started_at: 2_000_000_000,
            finished_at: 3_000_000_000,
            exit_code: 137,
            reason: "OOMKilled".into(),
            labels: HashMap::from([
                (LABEL_POD_UID.to_string(), "u1".to_string()),
                (LABEL_SANDBOX_ID.to_string(), "s1".to_string()),
            ]),
            image: Some(cri::ImageSpec {
                image: "docker.io/library/busybox:latest".into(),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(status.state, ContainerState::Exited);
        assert_eq!(status.pod_uid, "u1");
        assert_eq!(status.sandbox_id, "s1");
        assert_eq!(status.exit_code, 137);
        assert_eq!(status.reason.as_deref(), Some("OOMKilled"));
        assert_eq!(status.started_at.unwrap().as_second(), 2);
        assert_eq!(status.image, "docker.io/library/busybox:latest");
        assert_eq!(status.message, None);
    }

    #[test]
    fn relists_turn_state_changes_into_events() {
        let state = |s| (s, "u1".to_string());
        let before = HashMap::from([
            ("a".to_string(), state(ContainerState::Created)),
            ("b".to_string(), state(ContainerState::Running)),
            ("c".to_string(), state(ContainerState::Exited)),
        ]);
        let after = HashMap::from([
            ("a".to_string(), state(ContainerState::Running)),
            ("b".to_string(), state(ContainerState::Exited)),
            ("d".to_string(), state(ContainerState::Running)),
        ]);
        let mut events: Vec<_> = diff_states(&before, &after)
            .into_iter()
            .map(|e| (e.container_id, e.kind))
            .collect();
        events.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            events,
            [
                ("a".to_string(), ContainerEventKind::Started),
                ("b".to_string(), ContainerEventKind::Stopped),
                ("c".to_string(), ContainerEventKind::Deleted),
                ("d".to_string(), ContainerEventKind::Created),
                ("d".to_string(), ContainerEventKind::Started),
            ]
        );
        assert!(diff_states(&after, &after).is_empty());
    }

    #[test]
    fn endpoints_are_unix_sockets() {
        assert_eq!(
            endpoint_socket("unix:///run/containerd/containerd.sock").unwrap(),
            PathBuf::from("/run/containerd/containerd.sock")
        );
        assert!(endpoint_socket("tcp://1.2.3.4:1").is_err());
        assert_eq!(whole_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }
}
