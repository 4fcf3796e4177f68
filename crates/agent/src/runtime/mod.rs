//! The container runtime as the agent sees it: a trait shaped like the CRI `RuntimeService`
//! and `ImageService`, so that the containerd implementation drops in beside the
//! [`simulated`] one.
//!
//! The vocabulary is CRI's: a *pod sandbox* holds a pod's network namespace and address; a
//! *container* belongs to a sandbox and is created, started, stopped and removed; each
//! (re)start of a container is a new container with a higher `attempt`. Runtimes report state;
//! they do not restart anything or run probes — deciding what should run is the pod worker's
//! job ([`crate::pod`]). [`Runtime::container_events`] is CRI's `GetContainerEvents`: a stream
//! that tells the agent when to look again, so no one polls.

pub mod cri;
pub mod simulated;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use tokio::sync::broadcast;

use crate::error::RuntimeError;

/// A runtime call's result.
pub type RuntimeResult<T> = Result<T, RuntimeError>;

/// A node's container runtime.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Name and version, for the node's `containerRuntimeVersion` (`NAME://VERSION`).
    fn version(&self) -> RuntimeVersion;

    /// Create and start a pod sandbox (network namespace and address); returns its id.
    async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> RuntimeResult<String>;
    /// Stop every container in the sandbox and tear down its network. Idempotent.
    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()>;
    /// Remove a sandbox and its containers. Removing a missing sandbox succeeds.
    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()>;
    async fn pod_sandbox_status(&self, sandbox_id: &str) -> RuntimeResult<PodSandboxStatus>;
    async fn list_pod_sandboxes(&self) -> RuntimeResult<Vec<PodSandboxStatus>>;
    /// The sandboxes of one pod (after an agent restart: what to adopt).
    async fn pod_sandboxes(&self, pod_uid: &str) -> RuntimeResult<Vec<PodSandboxStatus>> {
        let all = self.list_pod_sandboxes().await?;
        Ok(all.into_iter().filter(|s| s.pod_uid == pod_uid).collect())
    }

    /// Create a container in a sandbox (not started); returns its id.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> RuntimeResult<String>;
    async fn start_container(&self, container_id: &str) -> RuntimeResult<()>;
    /// Ask the container to stop (TERM), then kill it once `timeout` has passed. Returns
    /// when it has exited. Stopping an exited container succeeds.
    async fn stop_container(&self, container_id: &str, timeout: Duration) -> RuntimeResult<()>;
    /// Remove an exited container. Removing a missing container succeeds.
    async fn remove_container(&self, container_id: &str) -> RuntimeResult<()>;
    async fn container_status(&self, container_id: &str) -> RuntimeResult<ContainerStatus>;
    /// Containers, optionally only those of one sandbox.
    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> RuntimeResult<Vec<ContainerStatus>>;
    /// Run a command in a running container and wait for it (exec probes).
    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        timeout: Duration,
    ) -> RuntimeResult<ExecSyncResult>;

    /// Pull an image; returns its reference (`repo@sha256:…`, the status' `imageID`).
    async fn pull_image(&self, image: &str, sandbox: &PodSandboxConfig) -> RuntimeResult<String>;
    /// The image if present locally.
    async fn image_status(&self, image: &str) -> RuntimeResult<Option<Image>>;
    /// Every image present locally (the node's `status.images`).
    async fn list_images(&self) -> RuntimeResult<Vec<Image>> {
        Ok(Vec::new())
    }

    /// Whether pods get addresses this machine can reach, so that the agent's own HTTP and
    /// TCP probes mean something. Simulated addresses answer nothing.
    fn pod_network_reachable(&self) -> bool {
        false
    }

    /// Container lifecycle events (created, started, exited, deleted). Receivers that fall
    /// behind get `Lagged` and should look at every container again.
    fn container_events(&self) -> broadcast::Receiver<ContainerEvent>;
}

/// `containerRuntimeVersion` parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    pub name: String,
    pub version: String,
}

/// What identifies a pod to the runtime (CRI `PodSandboxMetadata` and config).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodSandboxConfig {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The pod cgroup's limits (from the pod's requests and limits); `None`: unlimited.
    pub resources: Option<LinuxResources>,
    /// `hostNetwork`: the pod shares the node's network namespace (and has its address).
    pub host_network: bool,
    /// Some container of the pod is privileged (runtimes refuse privileged containers in
    /// sandboxes that are not).
    pub privileged: bool,
    /// The pod's resolv.conf; `None` leaves it to the runtime (the host's).
    pub dns: Option<DnsConfig>,
}

/// CRI `DNSConfig`: what goes into a pod's `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    /// `ndots:5`, `edns0`…
    pub options: Vec<String>,
}

/// CRI `LinuxContainerResources`, the parts the agent sets. A zero quota or memory limit is
/// no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinuxResources {
    pub cpu_shares: i64,
    /// CFS quota per period, in µs.
    pub cpu_quota: i64,
    pub cpu_period: i64,
    /// Bytes.
    pub memory_limit: i64,
    pub oom_score_adj: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSandboxStatus {
    pub id: String,
    pub pod_uid: String,
    pub name: String,
    pub namespace: String,
    pub state: SandboxState,
    pub created_at: Timestamp,
    /// The pod's address (none once the network is torn down).
    pub ip: Option<IpAddr>,
}

/// What to run (CRI `ContainerConfig`, the parts the agent fills in so far).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerConfig {
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// `workingDir`; empty keeps the image's.
    pub working_dir: String,
    /// Environment variables, resolved, in order.
    pub env: Vec<(String, String)>,
    /// True for init containers: they are expected to run to completion.
    pub init: bool,
    /// cgroup settings from the container's requests and limits; `None` leaves them to the
    /// runtime.
    pub resources: Option<LinuxResources>,
    /// From the pod's and the container's `securityContext`.
    pub security: ContainerSecurity,
    /// Host files bind-mounted into the container (`/etc/hosts`, the termination log).
    pub mounts: Vec<Mount>,
    /// Keep stdin open for `kubectl attach -i`; `stdin_once` closes it when the first attach
    /// ends.
    pub stdin: bool,
    pub stdin_once: bool,
    /// Run on a terminal (`kubectl attach -t`, `run -it`).
    pub tty: bool,
}

/// CRI `LinuxContainerSecurityContext`, the parts the agent sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContainerSecurity {
    /// `None`: the image's user.
    pub run_as_user: Option<i64>,
    /// `None`: the user's primary group.
    pub run_as_group: Option<i64>,
    /// Extra groups of the container's processes (the pod's `fsGroup` first).
    pub supplemental_groups: Vec<i64>,
    pub readonly_rootfs: bool,
    pub privileged: bool,
    /// `no_new_privs`: no process gains privileges through setuid binaries or file
    /// capabilities (`allowPrivilegeEscalation: false`).
    pub no_new_privs: bool,
    /// Capability names as the pod spells them (`NET_ADMIN`, `ALL`).
    pub add_capabilities: Vec<String>,
    pub drop_capabilities: Vec<String>,
}

/// CRI `Mount`: a host path bind-mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: std::path::PathBuf,
    pub container_path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// CRI `ContainerStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: String,
    pub sandbox_id: String,
    pub pod_uid: String,
    pub name: String,
    pub attempt: u32,
    pub state: ContainerState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: i32,
    /// Why it exited, when the runtime knows better than the exit code (`OOMKilled`).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub image: String,
    pub image_ref: String,
    /// Where the runtime writes its output (CRI log format), if it says.
    pub log_path: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSyncResult {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub repo_tags: Vec<String>,
    /// `repo@sha256:…` references.
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// The image's user as a number, when its configuration names one that way.
    pub uid: Option<i64>,
    /// The image's user as a name, when it is not a number.
    pub username: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerEventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

/// CRI `ContainerEventResponse`: something happened to a container of a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerEvent {
    pub container_id: String,
    pub pod_uid: String,
    pub kind: ContainerEventKind,
}

/// The reference a runtime reports for an image name: `docker.io/library/nginx:latest` for
/// `nginx`, as containerd normalises Docker Hub names.
pub fn normalize_image(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or(name);
    let has_registry =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = match (has_registry, name.contains('/')) {
        (true, _) => name.to_string(),
        (false, true) => format!("docker.io/{name}"),
        (false, false) => format!("docker.io/library/{name}"),
    };
    let last = full.rsplit('/').next().unwrap_or(&full);
    if digest.is_none() && !last.contains(':') {
        full.push_str(":latest");
    }
    match digest {
        Some(digest) => format!("{full}@{digest}"),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_image;

    #[test]
    fn image_names_are_normalised_like_containerd() {
        assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(
            normalize_image("nginx:1.27"),
            "docker.io/library/nginx:1.27"
        );
        assert_eq!(
            normalize_image("bitnami/redis"),
            "docker.io/bitnami/redis:latest"
        );
        assert_eq!(
            normalize_image("registry.k8s.io/pause:3.10"),
            "registry.k8s.io/pause:3.10"
        );
        assert_eq!(
            normalize_image("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            normalize_image("busybox@sha256:abc"),
            "docker.io/library/busybox@sha256:abc"
        );
    }
}
