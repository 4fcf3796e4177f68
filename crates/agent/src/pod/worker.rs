//! The pod worker: one per pod, driving the runtime toward the pod's spec.
//!
//! [`PodWorker::sync`] looks at the runtime, takes the next steps (create the sandbox, pull,
//! create and start the next container, restart an exited one when the restart policy and the
//! back-off allow, run due probes (restarting containers whose liveness or startup probe
//! failed), stop everything once the pod is being deleted) and returns the pod status to
//! report and when to look again. It talks to the runtime only;
//! writing the status and deleting the pod object is the caller's job ([`super::run`]), so the
//! state machine is tested against the simulated runtime with paused time.
//!
//! Containers start in order: each init container must exit 0 before the next one starts
//! (sidecars — init containers with `restartPolicy: Always` — only need to have started), then
//! the regular containers start together. An exited container restarts under `Always`, under
//! `OnFailure` if it failed, never under `Never`; restarts go through the back-off
//! ([`super::backoff`]), showing `CrashLoopBackOff` while they wait.
//!
//! Around each container the worker does what the kubelet does besides CRI calls: the
//! `securityContext` ([`super::security`], `runAsNonRoot` checked before creating), the
//! managed `/etc/hosts` and termination-message files it mounts ([`super::files`]), the
//! pod's resolv.conf ([`super::dns`]), `postStart` after starting and `preStop` before every
//! stop ([`super::hook`]), and the termination message read back when a container exits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus as ApiStatus, HostIP, Pod, PodIP, PodSpec, PodStatus,
    Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use super::backoff::{Backoff, BackoffConfig};
use super::env::{self, ConfigSource, EnvInputs};
use super::files::{self, PodFiles};
use super::resources::{self, NodeResources};
use super::{dns, hook, probe, security, status};
use crate::clock::{seconds, Clock};
use crate::error::RuntimeError;
use crate::runtime::{
    ContainerConfig, ContainerState, ContainerStatus, DnsConfig, Mount, PodSandboxConfig, Runtime,
    SandboxState,
};

/// Default `terminationGracePeriodSeconds`.
const DEFAULT_GRACE_SECONDS: i64 = 30;
/// What a container has to exit after its `preStop` hook, however long the hook took (the
/// kubelet's minimum shutdown window).
const MIN_STOP_AFTER_HOOK: Duration = Duration::from_secs(2);
/// Where a container's termination message is read from unless it says otherwise.
const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// Hostnames are DNS labels.
const MAX_HOSTNAME: usize = 63;
/// Retry delay after a runtime call failed for reasons other than the image.
const RUNTIME_RETRY: Duration = Duration::from_secs(1);
/// How long `ErrImagePull` is shown before `ImagePullBackOff`.
const PULL_ERROR_SHOWN: Duration = Duration::from_secs(1);
/// Retry delay after a container's configuration could not be built (a ConfigMap or Secret
/// missing): the kubelet retries its pod worker after about 10 s; nothing tells the agent
/// when the object appears, so it looks a little more often.
const CONFIG_RETRY: Duration = Duration::from_secs(2);

/// What every worker of a node shares.
#[derive(Clone)]
pub struct WorkerContext {
    pub runtime: Arc<dyn Runtime>,
    pub clock: Clock,
    pub backoff: BackoffConfig,
    /// The node's address: the pods' `hostIP`.
    pub host_ip: IpAddr,
    /// The node's allocatable resources (downward API defaults).
    pub node: NodeResources,
    /// Where ConfigMaps and Secrets for container environments come from; `None` leaves
    /// such variables out (simulated nodes: no API call per container).
    pub config: Option<Arc<dyn ConfigSource>>,
    /// Where the pods' `/etc/hosts` and termination-message files go; `None`: no such files
    /// (simulated nodes).
    pub files: Option<PodFiles>,
    /// The node's resolv.conf settings, which pods' DNS settings start from; `None` leaves
    /// resolv.conf to the runtime.
    pub dns: Option<DnsConfig>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("backoff", &self.backoff)
            .field("host_ip", &self.host_ip)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

/// What one [`PodWorker::sync`] asks of its caller.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOutcome {
    /// The status to report (`None`: nothing to report, e.g. a pod that finished before this
    /// agent started).
    pub status: Option<PodStatus>,
    /// Sync again at this instant even if nothing else happens (back-off end, probe).
    pub wake_at: Option<Instant>,
    /// The pod was being deleted and everything has stopped: report the status, then delete
    /// the pod object with grace period 0.
    pub delete_from_api: bool,
}

#[derive(Debug, Clone)]
struct Waiting {
    reason: &'static str,
    message: Option<String>,
}

#[derive(Debug, Default)]
struct ContainerRecord {
    /// The latest status of the current attempt.
    current: Option<ContainerStatus>,
    /// The final status of the previous attempt.
    last: Option<ContainerStatus>,
    restart_count: i32,
    /// When the last image pull failed (image pull back-off runs from there).
    pull_failed_at: Option<Timestamp>,
    /// Why there is no running container, when there is a reason to say.
    waiting: Option<Waiting>,
    probes: Probes,
    /// The current attempt was stopped because a liveness or startup probe failed: it is
    /// restarted whatever its exit code, unless the restart policy is `Never`.
    killed_by_probe: bool,
}

/// The probes of the current attempt of one container.
#[derive(Debug, Default, Clone)]
struct Probes {
    readiness: ProbeState,
    liveness: ProbeState,
    startup: ProbeState,
}

#[derive(Debug, Default, Clone)]
struct ProbeState {
    /// The outcome as the probe last decided (after its thresholds); `None` until then.
    ready: Option<bool>,
    successes: i32,
    failures: i32,
    next_at: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// Where a container is, as far as starting the next one is concerned.
enum Progress {
    NotStarted,
    Active,
    Exited { code: i32, finished_at: Timestamp },
}

/// The worker of one pod.
pub struct PodWorker {
    ctx: WorkerContext,
    pod: Arc<Pod>,
    sandbox: Option<(String, PodSandboxConfig)>,
    sandbox_ready: bool,
    pod_ip: Option<IpAddr>,
    containers: HashMap<String, Box<ContainerRecord>>,
    backoff: Backoff,
    start_time: Time,
    /// The pod had finished (per the API) before this worker saw it: never start anything.
    finished_before: bool,
    /// Every container has terminated for good (restart policy) or was stopped (deletion).
    done: bool,
    /// The runtime was asked for what it already runs of this pod ([`PodWorker::adopt`]).
    adopted: bool,
    /// Every container was stopped and the sandbox torn down: stopping again would only make
    /// the runtime tear the pod network down again (a CNI DEL per call).
    stopped: bool,
    last_status: Option<PodStatus>,
}

impl std::fmt::Debug for PodWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWorker")
            .field("pod", &self.pod.metadata.name)
            .field("sandbox", &self.sandbox.as_ref().map(|s| &s.0))
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn container_id(runtime: &str, id: &str) -> String {
    format!("{runtime}://{id}")
}

impl PodWorker {
    pub fn new(ctx: WorkerContext, pod: impl Into<Arc<Pod>>) -> Self {
        let pod = pod.into();
        let existing = pod.status.as_ref();
        let finished_before = existing
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == status::PHASE_SUCCEEDED || p == status::PHASE_FAILED);
        let start_time = existing
            .and_then(|s| s.start_time.clone())
            .unwrap_or_else(|| Time(seconds(ctx.clock.now())));
        PodWorker {
            backoff: Backoff::new(ctx.backoff),
            ctx,
            pod,
            sandbox: None,
            sandbox_ready: false,
            pod_ip: None,
            containers: HashMap::new(),
            start_time,
            finished_before,
            done: false,
            adopted: false,
            stopped: false,
            last_status: None,
        }
    }

    /// The pod as last seen in the API.
    pub fn pod(&self) -> &Pod {
        &self.pod
    }

    /// A newer version of the pod from the API.
    pub fn update(&mut self, pod: impl Into<Arc<Pod>>) {
        self.pod = pod.into();
    }

    fn spec(&self) -> PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    fn deleting(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    fn grace_period(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(DEFAULT_GRACE_SECONDS);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// The pod's QoS class: as the API server set it, else computed.
    fn qos(&self) -> String {
        self.pod
            .status
            .as_ref()
            .and_then(|s| s.qos_class.clone())
            .unwrap_or_else(|| status::qos_class(&self.spec()).to_string())
    }

    fn sandbox_config(&self) -> PodSandboxConfig {
        let meta = &self.pod.metadata;
        let spec = self.spec();
        let resources = resources::pod_resources(&spec, &self.qos());
        PodSandboxConfig {
            name: meta.name.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            attempt: 0,
            // A host-network pod has the node's UTS namespace and hostname.
            hostname: match self.host_network() {
                true => String::new(),
                false => self.hostname(),
            },
            labels: meta.labels.clone().unwrap_or_default(),
            annotations: meta.annotations.clone().unwrap_or_default(),
            resources: Some(resources),
            host_network: spec.host_network.unwrap_or(false),
            privileged: security::pod_privileged(&spec),
            dns: self.ctx.dns.as_ref().map(|host| dns::pod_dns(&spec, host)),
        }
    }

    /// The pod's hostname: `spec.hostname`, else its name cut to a DNS label; its FQDN with
    /// `setHostnameAsFQDN` and a subdomain.
    fn hostname(&self) -> String {
        let spec = self.pod.spec.as_ref();
        let name = self.short_hostname();
        let subdomain = spec
            .and_then(|s| s.subdomain.as_deref())
            .unwrap_or_default();
        if !subdomain.is_empty() && spec.and_then(|s| s.set_hostname_as_fqdn) == Some(true) {
            let namespace = self.pod.metadata.namespace.as_deref().unwrap_or_default();
            return format!(
                "{name}.{subdomain}.{namespace}.svc.{}",
                files::CLUSTER_DOMAIN
            );
        }
        name
    }

    /// `spec.hostname`, else the pod's name cut to a DNS label.
    fn short_hostname(&self) -> String {
        let spec = self.pod.spec.as_ref();
        spec.and_then(|s| s.hostname.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| {
                let name = self.pod.metadata.name.clone().unwrap_or_default();
                let cut = &name[..name.len().min(MAX_HOSTNAME)];
                cut.trim_end_matches(['-', '.']).to_string()
            })
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    /// The pod's address once its sandbox runs: the node's for `hostNetwork` pods.
    fn sandbox_ip(&self, reported: Option<IpAddr>) -> Option<IpAddr> {
        match self.host_network() {
            true => Some(self.ctx.host_ip),
            false => reported,
        }
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    /// Write the pod's managed `/etc/hosts` (once it has an address); its path.
    fn write_hosts(&self) -> Option<std::path::PathBuf> {
        let files = self.ctx.files.as_ref()?;
        let spec = self.spec();
        let aliases = spec.host_aliases.clone().unwrap_or_default();
        let content = if self.host_network() {
            let node = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            files::host_network_hosts_file(&node, &aliases)
        } else {
            files::hosts_file(
                self.pod_ip?,
                &self.short_hostname(),
                spec.subdomain.as_deref(),
                self.pod.metadata.namespace.as_deref().unwrap_or_default(),
                &aliases,
            )
        };
        match files.write_hosts(&self.uid(), &content) {
            Ok(path) => Some(path),
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the pod's hosts file");
                None
            }
        }
    }

    /// The container spec of `name` (init containers included).
    fn container_spec(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .find(|c| c.name == name)
            .cloned()
    }

    /// `status` with the termination message of its container, once it has exited.
    fn with_termination_message(&self, mut status: ContainerStatus) -> ContainerStatus {
        if status.state != ContainerState::Exited {
            return status;
        }
        let Some(files) = &self.ctx.files else {
            return status;
        };
        let container = self.container_spec(&status.name).unwrap_or_default();
        let has_file = container.termination_message_path.as_deref() != Some("");
        let path = files.termination_path(&self.uid(), &status.name, status.attempt);
        let fallback =
            container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        status.message = files::termination_message(
            status.message.as_deref(),
            has_file.then_some(path.as_path()),
            fallback,
            status.exit_code,
            status.log_path.as_deref(),
        );
        status
    }

    /// Stop a container as the kubelet kills one: its `preStop` hook first (if it is
    /// running), then TERM with what is left of `grace`, then KILL.
    async fn stop_container(&self, container: Option<&Container>, id: &str, grace: Duration) {
        let mut timeout = grace;
        let pre_stop =
            container.and_then(|c| c.lifecycle.as_ref()?.pre_stop.as_ref().map(|h| (c, h)));
        if let Some((container, handler)) = pre_stop.filter(|_| !grace.is_zero()) {
            let running = matches!(
                self.ctx.runtime.container_status(id).await,
                Ok(s) if s.state == ContainerState::Running
            );
            if running {
                let started = Instant::now();
                let runtime = self.ctx.runtime.as_ref();
                if let Err(message) = hook::run(
                    runtime,
                    &self.pod,
                    container,
                    id,
                    handler,
                    self.pod_ip,
                    grace,
                )
                .await
                {
                    tracing::info!(container = %container.name, %message, "preStop hook failed");
                }
                timeout = grace
                    .saturating_sub(started.elapsed())
                    .max(MIN_STOP_AFTER_HOOK);
            }
        }
        if let Err(e) = self.ctx.runtime.stop_container(id, timeout).await {
            tracing::warn!(error = %e, "cannot stop container");
        }
    }

    /// After an agent restart the runtime may already run this pod: take over its ready
    /// sandbox and the latest attempt of each container in it (restart counts are the
    /// attempts), as the kubelet does from its runtime cache, instead of starting anew.
    /// Sandboxes of the pod that are no longer ready are removed, so that a new one can take
    /// their name. Until the runtime answers, this is tried again at each sync.
    async fn adopt(&mut self) {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let mut sandboxes = match self.ctx.runtime.pod_sandboxes(&uid).await {
            Ok(sandboxes) => sandboxes,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the pod's sandboxes");
                return;
            }
        };
        sandboxes.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let ready = sandboxes
            .iter()
            .position(|s| s.state == SandboxState::Ready);
        let mut adopted = None;
        for (i, sandbox) in sandboxes.into_iter().enumerate() {
            if Some(i) == ready {
                adopted = Some(sandbox);
                continue;
            }
            let removed = match self.ctx.runtime.stop_pod_sandbox(&sandbox.id).await {
                Ok(()) => self.ctx.runtime.remove_pod_sandbox(&sandbox.id).await,
                Err(e) => Err(e),
            };
            if let Err(e) = removed {
                tracing::warn!(sandbox.id = %sandbox.id, error = %e, "cannot remove a stale sandbox");
                return;
            }
        }
        if let Some(sandbox) = adopted {
            let containers = match self.ctx.runtime.list_containers(Some(&sandbox.id)).await {
                Ok(containers) => containers,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list the pod's containers");
                    return;
                }
            };
            let mut by_name: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
            for container in containers {
                by_name
                    .entry(container.name.clone())
                    .or_default()
                    .push(container);
            }
            for (name, mut attempts) in by_name {
                attempts.sort_by_key(|c| std::cmp::Reverse(c.attempt));
                let mut attempts = attempts.into_iter();
                let record = self.containers.entry(name).or_default();
                record.current = attempts.next();
                record.last = attempts.next();
                record.restart_count = record.current.as_ref().map_or(0, |c| c.attempt as i32);
            }
            let exited: Vec<(String, ContainerStatus)> = self
                .containers
                .iter()
                .filter_map(|(name, r)| Some((name.clone(), r.current.clone()?)))
                .collect();
            for (name, status) in exited {
                let status = self.with_termination_message(status);
                if let Some(record) = self.containers.get_mut(&name) {
                    record.current = Some(status);
                }
            }
            tracing::info!(sandbox.id = %sandbox.id, "adopted the pod's running sandbox");
            self.pod_ip = self.sandbox_ip(sandbox.ip);
            self.sandbox_ready = true;
            self.sandbox = Some((sandbox.id, self.sandbox_config()));
        }
        self.adopted = true;
    }

    /// Look at the runtime and take the next steps; see the module docs.
    pub async fn sync(&mut self) -> SyncOutcome {
        if !self.adopted {
            self.adopt().await;
        }
        self.refresh().await;
        if self.finished_before {
            return SyncOutcome {
                status: None,
                wake_at: None,
                delete_from_api: self.deleting(),
            };
        }
        if self.deleting() {
            if !self.stopped {
                self.stop_all(self.grace_period()).await;
            }
            self.done = true;
            return SyncOutcome {
                status: Some(self.status(true)),
                wake_at: None,
                delete_from_api: true,
            };
        }
        if self.done {
            return SyncOutcome {
                status: Some(self.status(false)),
                wake_at: None,
                delete_from_api: false,
            };
        }

        let mut wake: Option<Instant> = None;
        if self.sandbox.is_none() {
            let config = self.sandbox_config();
            match self.ctx.runtime.run_pod_sandbox(&config).await {
                Ok(id) => {
                    let reported = match self.ctx.runtime.pod_sandbox_status(&id).await {
                        Ok(s) => s.ip,
                        Err(_) => None,
                    };
                    self.pod_ip = self.sandbox_ip(reported);
                    self.write_hosts();
                    self.sandbox_ready = true;
                    self.sandbox = Some((id, config));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot create pod sandbox");
                    wake = Some(Instant::now() + RUNTIME_RETRY);
                    return SyncOutcome {
                        status: Some(self.status(false)),
                        wake_at: wake,
                        delete_from_api: false,
                    };
                }
            }
        }

        let spec = self.spec();
        let policy = status::restart_policy(&spec).to_string();
        let mut initialized = true;
        let mut init_failed = false;
        for container in spec.init_containers.as_deref().unwrap_or_default() {
            let sidecar = status::is_sidecar(container);
            loop {
                match self.progress(&container.name) {
                    Progress::NotStarted => {
                        self.start(container, !sidecar, &mut wake).await;
                        if matches!(self.progress(&container.name), Progress::NotStarted) {
                            break;
                        }
                    }
                    Progress::Active => break,
                    Progress::Exited { code: 0, .. } if !sidecar => break,
                    Progress::Exited { finished_at, .. } => {
                        if !sidecar && policy == "Never" {
                            init_failed = true;
                        } else {
                            self.restart(container, !sidecar, finished_at, &mut wake)
                                .await;
                        }
                        break;
                    }
                }
            }
            let complete = match self.progress(&container.name) {
                Progress::Active if sidecar => true,
                Progress::Exited { code: 0, .. } => !sidecar,
                _ => false,
            };
            if !complete {
                initialized = false;
                break;
            }
        }

        if initialized && !init_failed {
            for container in &spec.containers {
                match self.progress(&container.name) {
                    Progress::NotStarted => self.start(container, false, &mut wake).await,
                    Progress::Active => {}
                    Progress::Exited { code, finished_at } => {
                        let killed = self
                            .containers
                            .get(&container.name)
                            .is_some_and(|r| r.killed_by_probe);
                        let restart = match policy.as_str() {
                            "Never" => false,
                            "OnFailure" => code != 0 || killed,
                            _ => true,
                        };
                        if restart {
                            self.restart(container, false, finished_at, &mut wake).await;
                        }
                    }
                }
            }
        }
        self.probe(&spec, &mut wake).await;

        let status = self.status(false);
        let phase = status.phase.as_deref().unwrap_or_default();
        if phase == status::PHASE_SUCCEEDED || phase == status::PHASE_FAILED {
            // Finished for good: tear the sandbox down, keep reporting the final status.
            self.done = true;
            if let Some((id, _)) = &self.sandbox {
                match self.ctx.runtime.stop_pod_sandbox(id).await {
                    Ok(()) => self.stopped = true,
                    Err(e) => tracing::warn!(error = %e, "cannot stop pod sandbox"),
                }
            }
            self.sandbox_ready = false;
            let status = self.status(false);
            return SyncOutcome {
                status: Some(status),
                wake_at: None,
                delete_from_api: false,
            };
        }
        SyncOutcome {
            status: Some(status),
            wake_at: wake,
            delete_from_api: false,
        }
    }

    /// The pod is gone from the API: stop and remove everything.
    pub async fn kill(&mut self) {
        if !self.stopped {
            self.stop_all(self.grace_period()).await;
        }
        if let Some((id, _)) = self.sandbox.take() {
            if let Err(e) = self.ctx.runtime.remove_pod_sandbox(&id).await {
                tracing::warn!(error = %e, "cannot remove pod sandbox");
            }
        }
        if let Some(files) = &self.ctx.files {
            if let Err(e) = files.remove(&self.uid()) {
                tracing::warn!(error = %e, "cannot remove the pod's files");
            }
        }
        self.sandbox_ready = false;
    }

    /// Refresh the current containers' statuses from the runtime.
    async fn refresh(&mut self) {
        let active: Vec<(String, String)> = self
            .containers
            .iter()
            .filter_map(|(name, record)| {
                let current = record.current.as_ref()?;
                (current.state != ContainerState::Exited)
                    .then(|| (name.clone(), current.id.clone()))
            })
            .collect();
        for (name, id) in active {
            let result = self.ctx.runtime.container_status(&id).await;
            let result = result.map(|status| self.with_termination_message(status));
            let Some(record) = self.containers.get_mut(&name) else {
                continue;
            };
            match result {
                Ok(status) => {
                    if status.state != ContainerState::Running {
                        record.probes = Probes::default();
                    }
                    record.current = Some(status);
                }
                Err(RuntimeError::NotFound { .. }) => {
                    // Removed behind our back: it has to be started again.
                    record.last = record.current.take();
                }
                Err(e) => tracing::warn!(error = %e, "cannot read container status"),
            }
        }
    }

    fn progress(&self, name: &str) -> Progress {
        match self.containers.get(name).and_then(|r| r.current.as_ref()) {
            None => Progress::NotStarted,
            Some(c) if c.state == ContainerState::Exited => Progress::Exited {
                code: c.exit_code,
                finished_at: c.finished_at.unwrap_or(c.created_at),
            },
            Some(_) => Progress::Active,
        }
    }

    fn pull_key(name: &str) -> String {
        format!("pull/{name}")
    }

    /// Pull, create and start `container` (a new attempt).
    async fn start(&mut self, container: &Container, init: bool, wake: &mut Option<Instant>) {
        let Some((sandbox_id, sandbox)) = self.sandbox.clone() else {
            return;
        };
        let now = self.ctx.clock.now();
        let name = container.name.clone();
        let image = container.image.clone().unwrap_or_default();
        let record = self.containers.entry(name.clone()).or_default();

        let pull_key = Self::pull_key(&name);
        if let Some(failed_at) = record.pull_failed_at {
            if let Some((until, _)) = self.backoff.in_backoff(&pull_key, failed_at, now) {
                record.waiting = Some(Waiting {
                    reason: "ImagePullBackOff",
                    message: Some(format!("Back-off pulling image \"{image}\"")),
                });
                min_wake(wake, self.ctx.clock.instant(until));
                return;
            }
        }
        let policy = container.image_pull_policy.as_deref();
        let present = if policy == Some("Always") {
            false
        } else {
            matches!(self.ctx.runtime.image_status(&image).await, Ok(Some(_)))
        };
        if !present && policy == Some("Never") {
            // Not pulled, not backed off: the image may be imported any time.
            let record = self.containers.entry(name).or_default();
            record.waiting = Some(Waiting {
                reason: "ErrImageNeverPull",
                message: Some(format!(
                    "Container image \"{image}\" is not present with pull policy of Never"
                )),
            });
            min_wake(wake, Instant::now() + CONFIG_RETRY);
            return;
        }
        if !present {
            if let Err(e) = self.ctx.runtime.pull_image(&image, &sandbox).await {
                self.backoff.next(&pull_key, now, now);
                let delay = self.backoff.delay(&pull_key).unwrap_or(RUNTIME_RETRY);
                let record = self.containers.entry(name).or_default();
                record.pull_failed_at = Some(now);
                record.waiting = Some(Waiting {
                    reason: "ErrImagePull",
                    message: Some(e.to_string()),
                });
                // Look again soon to report ImagePullBackOff (as the kubelet's next sync
                // does), then at the end of the back-off to pull again.
                min_wake(wake, Instant::now() + delay.min(PULL_ERROR_SHOWN));
                return;
            }
            self.backoff.forget(&pull_key);
        }
        if let Some(record) = self.containers.get_mut(&name) {
            record.pull_failed_at = None;
        }

        let inputs = EnvInputs {
            pod_ip: self.pod_ip,
            host_ip: self.ctx.host_ip,
            allocatable_cpu_milli: self.ctx.node.cpu_milli,
            allocatable_memory: self.ctx.node.memory,
        };
        let source = self.ctx.config.clone();
        let env = match env::container_env(&self.pod, container, &inputs, source.as_deref()).await {
            Ok(env) => env,
            Err(e) => {
                let record = self.containers.entry(name).or_default();
                record.waiting = Some(Waiting {
                    reason: "CreateContainerConfigError",
                    message: Some(e.0),
                });
                min_wake(wake, Instant::now() + CONFIG_RETRY);
                return;
            }
        };
        // runAsNonRoot is checked against the user the container would run as, as the
        // kubelet does before creating it.
        let spec = self.spec();
        let image_user = match security::needs_image_user(&spec, container) {
            true => self.ctx.runtime.image_status(&image).await.ok().flatten(),
            false => None,
        };
        if let Err(message) =
            security::verify_run_as_non_root(&self.pod, container, image_user.as_ref())
        {
            let record = self.containers.entry(name).or_default();
            record.waiting = Some(Waiting {
                reason: "CreateContainerConfigError",
                message: Some(message),
            });
            min_wake(wake, Instant::now() + CONFIG_RETRY);
            return;
        }
        let attempt = self
            .containers
            .get(&name)
            .map_or(0, |r| r.restart_count.max(0) as u32);
        let mounts = match self.container_mounts(container, attempt) {
            Ok(mounts) => mounts,
            Err(message) => {
                let record = self.containers.entry(name).or_default();
                record.waiting = Some(Waiting {
                    reason: "CreateContainerConfigError",
                    message: Some(message),
                });
                min_wake(wake, Instant::now() + CONFIG_RETRY);
                return;
            }
        };
        let config = ContainerConfig {
            name: name.clone(),
            attempt,
            image: image.clone(),
            command: env::expand_command(container.command.as_deref().unwrap_or_default(), &env),
            args: env::expand_command(container.args.as_deref().unwrap_or_default(), &env),
            working_dir: container.working_dir.clone().unwrap_or_default(),
            env,
            init,
            resources: Some(resources::container_resources(
                &spec,
                container,
                &self.qos(),
                self.ctx.node.memory,
            )),
            security: security::container_security(&spec, container),
            mounts,
            stdin: container.stdin.unwrap_or(false),
            stdin_once: container.stdin_once.unwrap_or(false),
            tty: container.tty.unwrap_or(false),
        };
        let runtime = self.ctx.runtime.clone();
        let created = runtime
            .create_container(&sandbox_id, &config, &sandbox)
            .await;
        let id = match created {
            Ok(id) => id,
            Err(e) => {
                let record = self.containers.entry(name).or_default();
                record.waiting = Some(Waiting {
                    reason: "CreateContainerError",
                    message: Some(e.to_string()),
                });
                min_wake(wake, Instant::now() + RUNTIME_RETRY);
                return;
            }
        };
        let started = runtime.start_container(&id).await;
        let post_start = container
            .lifecycle
            .as_ref()
            .and_then(|l| l.post_start.as_ref());
        let hook_failed = match (&started, post_start) {
            (Ok(()), Some(handler)) => {
                let grace = self.grace_period();
                let runtime = runtime.as_ref();
                match hook::run(
                    runtime,
                    &self.pod,
                    container,
                    &id,
                    handler,
                    self.pod_ip,
                    grace,
                )
                .await
                {
                    Ok(()) => None,
                    Err(message) => {
                        // As upstream: the container is killed and restarts per its policy
                        // (until then it waits with the hook's error).
                        tracing::info!(container = %name, %message, "postStart hook failed");
                        self.stop_container(Some(container), &id, grace).await;
                        let never = status::restart_policy(&spec) == "Never";
                        (!never || status::is_sidecar(container)).then_some(message)
                    }
                }
            }
            _ => None,
        };
        let status = runtime
            .container_status(&id)
            .await
            .map(|status| self.with_termination_message(status));
        let record = self.containers.entry(name).or_default();
        match (started, status) {
            (Ok(()), Ok(status)) => {
                record.current = Some(status);
                record.waiting = hook_failed.map(|message| Waiting {
                    reason: "PostStartHookError",
                    message: Some(message),
                });
                record.probes = Probes::default();
            }
            (Err(e), _) | (_, Err(e)) => {
                record.waiting = Some(Waiting {
                    reason: "RunContainerError",
                    message: Some(e.to_string()),
                });
                let _ = runtime.remove_container(&id).await;
                min_wake(wake, Instant::now() + RUNTIME_RETRY);
            }
        }
    }

    /// The host files a new attempt of `container` mounts: the managed `/etc/hosts` (unless
    /// a volume mounts its own) and an empty termination-message file.
    fn container_mounts(&self, container: &Container, attempt: u32) -> Result<Vec<Mount>, String> {
        let Some(files) = &self.ctx.files else {
            return Ok(Vec::new());
        };
        let mut mounts = Vec::new();
        let own_hosts = container
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/etc/hosts");
        let uid = self.uid();
        if !own_hosts && (self.pod_ip.is_some() || self.host_network()) {
            let path = files.hosts_path(&uid);
            let path = match path.exists() {
                true => Some(path),
                false => self.write_hosts(),
            };
            if let Some(path) = path {
                mounts.push(Mount {
                    host_path: path,
                    container_path: "/etc/hosts".to_string(),
                    readonly: false,
                });
            }
        }
        let message_path = container
            .termination_message_path
            .as_deref()
            .unwrap_or(DEFAULT_TERMINATION_MESSAGE_PATH);
        if !message_path.is_empty() {
            let path = files
                .create_termination_file(&uid, &container.name, attempt)
                .map_err(|e| format!("cannot create the termination message file: {e}"))?;
            mounts.push(Mount {
                host_path: path,
                container_path: message_path.to_string(),
                readonly: false,
            });
        }
        Ok(mounts)
    }

    /// Restart an exited container unless it is in back-off.
    async fn restart(
        &mut self,
        container: &Container,
        init: bool,
        finished_at: Timestamp,
        wake: &mut Option<Instant>,
    ) {
        let now = self.ctx.clock.now();
        let key = container.name.clone();
        if let Some((until, delay)) = self.backoff.in_backoff(&key, finished_at, now) {
            let meta = &self.pod.metadata;
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                go_duration(delay),
                container.name,
                meta.name.as_deref().unwrap_or_default(),
                meta.namespace.as_deref().unwrap_or_default(),
                meta.uid.as_deref().unwrap_or_default(),
            );
            if let Some(record) = self.containers.get_mut(&container.name) {
                record.waiting = Some(Waiting {
                    reason: "CrashLoopBackOff",
                    message: Some(message),
                });
            }
            min_wake(wake, self.ctx.clock.instant(until));
            return;
        }
        self.backoff.next(&key, finished_at, now);
        let Some(record) = self.containers.get_mut(&container.name) else {
            return;
        };
        let Some(old) = record.current.take() else {
            return;
        };
        if let Err(e) = self.ctx.runtime.remove_container(&old.id).await {
            tracing::debug!(error = %e, "cannot remove exited container");
        }
        record.last = Some(old);
        record.restart_count += 1;
        record.waiting = None;
        record.killed_by_probe = false;
        self.start(container, init, wake).await;
    }

    /// Run the probes that are due (exec probes through the runtime): the startup probe until
    /// it succeeds, then liveness and readiness. A container whose liveness or startup probe
    /// reached its failure threshold is stopped here; the restart logic brings it back.
    async fn probe(&mut self, spec: &PodSpec, wake: &mut Option<Instant>) {
        let sidecars = spec
            .init_containers
            .iter()
            .flatten()
            .filter(|c| status::is_sidecar(c));
        let mut kill = Vec::new();
        for container in sidecars.chain(spec.containers.iter()) {
            let Some(record) = self.containers.get(&container.name) else {
                continue;
            };
            let Some(current) = record
                .current
                .as_ref()
                .filter(|c| c.state == ContainerState::Running)
            else {
                continue;
            };
            let id = current.id.clone();
            let started_at = self
                .ctx
                .clock
                .instant(current.started_at.unwrap_or(current.created_at));
            let startup_done =
                container.startup_probe.is_none() || record.probes.startup.ready == Some(true);
            let mut kinds = Vec::new();
            if !startup_done {
                kinds.extend(
                    container
                        .startup_probe
                        .iter()
                        .map(|p| (ProbeKind::Startup, p)),
                );
            } else {
                kinds.extend(
                    container
                        .liveness_probe
                        .iter()
                        .map(|p| (ProbeKind::Liveness, p)),
                );
                kinds.extend(
                    container
                        .readiness_probe
                        .iter()
                        .map(|p| (ProbeKind::Readiness, p)),
                );
            }
            for (kind, probe) in kinds {
                let Some(result) = self
                    .run_probe(container, &id, kind, probe, started_at, wake)
                    .await
                else {
                    continue;
                };
                match (kind, result) {
                    (ProbeKind::Startup, true) => {
                        // Started: liveness and readiness begin now.
                        min_wake(wake, Instant::now());
                    }
                    (ProbeKind::Startup | ProbeKind::Liveness, false) => {
                        let grace = probe
                            .termination_grace_period_seconds
                            .map(|s| Duration::from_secs(s.max(0) as u64))
                            .unwrap_or_else(|| self.grace_period());
                        tracing::info!(
                            container = %container.name,
                            probe = kind.name(),
                            "container failed its probe, will be restarted"
                        );
                        kill.push((container.name.clone(), id.clone(), grace));
                        break;
                    }
                    _ => {}
                }
            }
        }
        for (name, id, grace) in kill {
            let container = self.container_spec(&name);
            self.stop_container(container.as_ref(), &id, grace).await;
            if let Some(record) = self.containers.get_mut(&name) {
                record.killed_by_probe = true;
                record.probes = Probes::default();
            }
            min_wake(wake, Instant::now());
        }
    }

    /// Run one probe if it is due. Returns the outcome when the probe's thresholds decided
    /// one this time (startup and liveness), or readiness as it now stands.
    async fn run_probe(
        &mut self,
        container: &Container,
        container_id: &str,
        kind: ProbeKind,
        probe: &Probe,
        started_at: Instant,
        wake: &mut Option<Instant>,
    ) -> Option<bool> {
        let name = container.name.as_str();
        let now = Instant::now();
        let state = self.probe_state(name, kind)?;
        let initial_delay = probe.initial_delay_seconds.unwrap_or(0).max(0) as u64;
        let due = state
            .next_at
            .unwrap_or(started_at + Duration::from_secs(initial_delay));
        if now < due {
            min_wake(wake, due);
            return None;
        }
        let period = Duration::from_secs(probe.period_seconds.unwrap_or(10).max(1) as u64);
        let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
        let success = match &probe.exec {
            Some(exec) => {
                let command = exec.command.clone().unwrap_or_default();
                matches!(
                    self.ctx.runtime.exec_sync(container_id, &command, timeout).await,
                    Ok(result) if result.exit_code == 0
                )
            }
            // HTTP, TCP and gRPC probes need a pod network this machine reaches; on
            // simulated nodes they count as passing.
            None if !self.ctx.runtime.pod_network_reachable() => true,
            None => {
                let ports = container.ports.as_deref().unwrap_or_default();
                match probe::check(probe, self.pod_ip, ports) {
                    Some(Ok(check)) => probe::run(&check, timeout).await,
                    Some(Err(e)) => {
                        tracing::debug!(container = %name, error = %e, "probe cannot run");
                        false
                    }
                    None => true,
                }
            }
        };
        let state = self.probe_state(name, kind)?;
        state.next_at = Some(now + period);
        min_wake(wake, now + period);
        // Liveness and startup probes have a success threshold of 1 (validation ensures it).
        let success_threshold = match kind {
            ProbeKind::Readiness => probe.success_threshold.unwrap_or(1).max(1),
            _ => 1,
        };
        let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
        if success {
            state.successes += 1;
            state.failures = 0;
            if state.ready != Some(true) && state.successes >= success_threshold {
                state.ready = Some(true);
                return Some(true);
            }
        } else {
            state.failures += 1;
            state.successes = 0;
            let first_readiness = kind == ProbeKind::Readiness && state.ready.is_none();
            if first_readiness || state.failures >= failure_threshold {
                state.ready = Some(false);
                return Some(false);
            }
        }
        match kind {
            ProbeKind::Readiness => state.ready,
            _ => None,
        }
    }

    fn probe_state(&mut self, name: &str, kind: ProbeKind) -> Option<&mut ProbeState> {
        let probes = &mut self.containers.get_mut(name)?.probes;
        Some(match kind {
            ProbeKind::Startup => &mut probes.startup,
            ProbeKind::Liveness => &mut probes.liveness,
            ProbeKind::Readiness => &mut probes.readiness,
        })
    }

    /// Stop every running container (concurrently, each within `grace`), then the sandbox.
    async fn stop_all(&mut self, grace: Duration) {
        let runtime = self.ctx.runtime.clone();
        let running: Vec<(Option<Container>, String)> = self
            .containers
            .iter()
            .filter_map(|(name, r)| Some((name, r.current.as_ref()?)))
            .filter(|(_, c)| c.state != ContainerState::Exited)
            .map(|(name, c)| (self.container_spec(name), c.id.clone()))
            .collect();
        let stops = running
            .iter()
            .map(|(container, id)| self.stop_container(container.as_ref(), id, grace));
        futures::future::join_all(stops).await;
        // A container that would not stop is still there: try again at the next sync.
        let mut stopped = true;
        for (_, id) in &running {
            if let Ok(status) = runtime.container_status(id).await {
                stopped &= status.state == ContainerState::Exited;
            }
        }
        if let Some((id, _)) = &self.sandbox {
            if let Err(e) = runtime.stop_pod_sandbox(id).await {
                tracing::warn!(error = %e, "cannot stop pod sandbox");
                stopped = false;
            }
        }
        self.stopped = stopped;
        self.sandbox_ready = false;
        for record in self.containers.values_mut() {
            record.waiting = None;
        }
        self.refresh().await;
    }

    /// The API status of one container.
    fn container_status(&self, container: &Container, default_waiting: &str) -> ApiStatus {
        let runtime = self.ctx.runtime.version().name;
        let record = self.containers.get(&container.name);
        let spec_image = container.image.clone().unwrap_or_default();
        let terminated = |c: &ContainerStatus| ApiState {
            terminated: Some(ContainerStateTerminated {
                exit_code: c.exit_code,
                reason: Some(c.reason.clone().unwrap_or_else(|| {
                    if c.exit_code == 0 {
                        "Completed"
                    } else {
                        "Error"
                    }
                    .to_string()
                })),
                message: c.message.clone(),
                started_at: c.started_at.map(|t| Time(seconds(t))),
                finished_at: c.finished_at.map(|t| Time(seconds(t))),
                container_id: Some(container_id(&runtime, &c.id)),
                signal: None,
            }),
            ..Default::default()
        };
        let waiting = |w: Option<&Waiting>| ApiState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(w.map_or(default_waiting, |w| w.reason).to_string()),
                message: w.and_then(|w| w.message.clone()),
            }),
            ..Default::default()
        };
        let mut status = ApiStatus {
            name: container.name.clone(),
            image: spec_image,
            image_id: String::new(),
            ready: false,
            started: Some(false),
            restart_count: record.map_or(0, |r| r.restart_count),
            ..Default::default()
        };
        let Some(record) = record else {
            status.state = Some(waiting(None));
            return status;
        };
        let mut last = record.last.as_ref();
        match &record.current {
            None => status.state = Some(waiting(record.waiting.as_ref())),
            Some(c) => {
                status.image = c.image.clone();
                status.image_id = c.image_ref.clone();
                status.container_id = Some(container_id(&runtime, &c.id));
                match c.state {
                    ContainerState::Running => {
                        status.state = Some(ApiState {
                            running: Some(ContainerStateRunning {
                                started_at: c.started_at.map(|t| Time(seconds(t))),
                            }),
                            ..Default::default()
                        });
                        let started = container.startup_probe.is_none()
                            || record.probes.startup.ready == Some(true);
                        status.started = Some(started);
                        status.ready = started
                            && match &container.readiness_probe {
                                None => true,
                                Some(_) => record.probes.readiness.ready == Some(true),
                            };
                    }
                    ContainerState::Exited if record.waiting.is_some() => {
                        // Waiting to restart: the exit is the last state.
                        status.state = Some(waiting(record.waiting.as_ref()));
                        status.last_state = Some(terminated(c));
                        last = None;
                    }
                    ContainerState::Exited => status.state = Some(terminated(c)),
                    ContainerState::Created | ContainerState::Unknown => {
                        status.state = Some(waiting(Some(&Waiting {
                            reason: "ContainerCreating",
                            message: None,
                        })))
                    }
                }
            }
        }
        if let Some(last) = last {
            status.last_state = Some(terminated(last));
        }
        if status.last_state.is_none() {
            status.last_state = Some(ApiState::default());
        }
        status
    }

    /// The pod status as the kubelet would report it now.
    fn status(&mut self, terminal: bool) -> PodStatus {
        let spec = self.spec();
        let has_init = spec.init_containers.as_ref().is_some_and(|c| !c.is_empty());
        let default_waiting = if has_init {
            "PodInitializing"
        } else {
            "ContainerCreating"
        };
        let init_statuses: Vec<ApiStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| self.container_status(c, default_waiting))
            .collect();
        let statuses: Vec<ApiStatus> = spec
            .containers
            .iter()
            .map(|c| self.container_status(c, default_waiting))
            .collect();
        let phase = status::phase(&spec, &init_statuses, &statuses, terminal);
        let conditions = status::conditions(
            &self.pod,
            self.sandbox_ready,
            phase,
            &init_statuses,
            &statuses,
        );
        let now = Time(seconds(self.ctx.clock.now()));
        let previous = self.last_status.as_ref().or(self.pod.status.as_ref());
        let conditions = status::with_transition_times(conditions, previous, now);
        let qos = self.qos();
        let host_ip = self.ctx.host_ip.to_string();
        let pod_ip = self.pod_ip.map(|ip| ip.to_string());
        let status = PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(conditions),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![HostIP { ip: host_ip }]),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time: Some(self.start_time.clone()),
            qos_class: Some(qos),
            init_container_statuses: has_init.then_some(init_statuses),
            container_statuses: Some(statuses),
            ..Default::default()
        };
        self.last_status = Some(status.clone());
        status
    }
}

fn min_wake(wake: &mut Option<Instant>, at: Instant) {
    *wake = Some(match *wake {
        Some(current) => current.min(at),
        None => at,
    });
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), for back-off messages.
fn go_duration(d: Duration) -> String {
    let total = d.as_secs();
    if d.subsec_millis() != 0 && total < 60 {
        return format!("{}s", d.as_secs_f64());
    }
    match (total / 3600, (total % 3600) / 60, total % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

#[cfg(test)]
mod tests;
