//! The simulated runtime: sandboxes and containers that exist only as records, for testing
//! the rest of the system at the scale of thousands of nodes (what kubemark's hollow nodes and
//! kwok do upstream). Nothing is executed.
//!
//! A sandbox takes [`SimulatedConfig::sandbox_startup`] to come up and gets the next free
//! address of the node's pod network; containers start at once and run until stopped. Init
//! containers complete (exit 0) as soon as they start. Pod annotations change that, so that
//! controllers, Jobs and the agent's own restart logic can be tested:
//!
//! | annotation | value | effect |
//! |---|---|---|
//! | `navarch.io/sim-exit` | `CODE` or `CODE after DURATION` | every container exits with `CODE`, `DURATION` (e.g. `2s`, `150ms`) after it started |
//! | `navarch.io/sim-exit.NAME` | same | only container `NAME` (wins over the one above) |
//! | `navarch.io/sim-pull-fail` | `*` or `IMAGE,IMAGE…` | pulling those images (as written in the pod) fails |
//! | `navarch.io/sim-probe-fail` | `*` or `NAME,NAME…` | exec in those containers exits 1, so their exec probes fail |
//! | `navarch.io/sim-stop-after` | `DURATION` | containers take that long to exit after TERM; killed (137) at the grace period |
//!
//! A container stopped gracefully exits 0; one killed at the end of its grace period exits 137.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{
    normalize_image, ContainerConfig, ContainerEvent, ContainerEventKind, ContainerState,
    ContainerStatus, ExecSyncResult, Image, PodSandboxConfig, PodSandboxStatus, Runtime,
    RuntimeResult, RuntimeVersion, SandboxState,
};
use crate::clock::Clock;
use crate::duration::parse_duration;
use crate::error::RuntimeError;

/// Annotation: exit code (and delay) of every container.
pub const EXIT_ANNOTATION: &str = "navarch.io/sim-exit";
/// Annotation: images whose pull fails.
pub const PULL_FAIL_ANNOTATION: &str = "navarch.io/sim-pull-fail";
/// Annotation: containers whose exec (probes) fails. Without it, exec succeeds unless the
/// command is `false`.
pub const PROBE_FAIL_ANNOTATION: &str = "navarch.io/sim-probe-fail";
/// Annotation: every container's exec (probes) fails once it has run this long.
pub const PROBE_FAIL_AFTER_ANNOTATION: &str = "navarch.io/sim-probe-fail-after";
/// Annotation: how long containers take to stop after TERM.
pub const STOP_AFTER_ANNOTATION: &str = "navarch.io/sim-stop-after";

/// Exit code of a container killed at the end of its grace period (128 + SIGKILL).
const KILLED_EXIT_CODE: i32 = 137;
/// Capacity of the event channel; slower receivers see `Lagged` and relist.
const EVENT_CAPACITY: usize = 64;

/// Settings of a simulated node's runtime.
#[derive(Debug, Clone)]
pub struct SimulatedConfig {
    /// How long a pod sandbox takes to come up (`--pod-startup`).
    pub sandbox_startup: Duration,
    /// The node's pod network; pod addresses are handed out from it (the first host address
    /// is left for the bridge, as CNI's host-local IPAM does).
    pub pod_cidr: Ipv4Net,
}

/// A simulated container runtime for one node.
#[derive(Clone)]
pub struct SimulatedRuntime {
    inner: Arc<Mutex<Inner>>,
    config: Arc<SimulatedConfig>,
    events: broadcast::Sender<ContainerEvent>,
    clock: Clock,
}

impl std::fmt::Debug for SimulatedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedRuntime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    /// Offsets into the pod CIDR in use.
    addresses: BTreeSet<u32>,
    images: HashMap<String, Image>,
    /// `StopPodSandbox` calls, for tests that a pod is torn down once.
    sandbox_stops: u64,
}

struct Sandbox {
    config: PodSandboxConfig,
    state: SandboxState,
    created_at: jiff::Timestamp,
    ip: Option<Ipv4Addr>,
}

struct Container {
    status: ContainerStatus,
    /// When (after starting) it exits by itself, and with which code.
    exit: Option<(Duration, i32)>,
    exit_at: Option<Instant>,
    probe_fails: bool,
    /// How long after starting its exec (probes) begins to fail.
    probe_fail_after: Option<Duration>,
    probe_fail_at: Option<Instant>,
    stop_after: Duration,
}

impl Container {
    /// Apply a self-exit that is due.
    fn refresh(&mut self, clock: &Clock, now: Instant) {
        if self.status.state == ContainerState::Running {
            if let (Some(at), Some((_, code))) = (self.exit_at, self.exit) {
                if at <= now {
                    self.finish(clock.at(at), code);
                }
            }
        }
    }

    fn finish(&mut self, at: jiff::Timestamp, code: i32) {
        self.status.state = ContainerState::Exited;
        self.status.finished_at = Some(at);
        self.status.exit_code = code;
    }

    /// Stopped from outside: it no longer exits by itself.
    fn stop(&mut self, at: jiff::Timestamp, code: i32) {
        self.finish(at, code);
        self.exit_at = None;
    }
}

impl SimulatedRuntime {
    pub fn new(config: SimulatedConfig, clock: Clock) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        SimulatedRuntime {
            inner: Arc::new(Mutex::new(Inner::default())),
            config: Arc::new(config),
            events,
            clock,
        }
    }

    /// Stop a sandbox's containers and release its address (`StopPodSandbox`).
    async fn stop_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()> {
        let running: Vec<String> = {
            let inner = self.lock();
            inner
                .containers
                .iter()
                .filter(|(_, c)| {
                    c.status.sandbox_id == sandbox_id && c.status.state == ContainerState::Running
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in running {
            self.stop_container(&id, Duration::ZERO).await?;
        }
        let mut inner = self.lock();
        let ip = match inner.sandboxes.get_mut(sandbox_id) {
            Some(sandbox) => {
                sandbox.state = SandboxState::NotReady;
                sandbox.ip.take()
            }
            None => None,
        };
        if let Some(ip) = ip {
            self.release_address(&mut inner, ip);
        }
        Ok(())
    }

    /// How many times a sandbox was stopped.
    #[cfg(test)]
    pub(crate) fn sandbox_stops(&self) -> u64 {
        self.lock().sandbox_stops
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain records behind, still consistent enough.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn emit(&self, container_id: &str, pod_uid: &str, kind: ContainerEventKind) {
        // No receiver is fine: nobody is waiting.
        let _ = self.events.send(ContainerEvent {
            container_id: container_id.to_string(),
            pod_uid: pod_uid.to_string(),
            kind,
        });
    }

    fn allocate_address(&self, inner: &mut Inner) -> RuntimeResult<Ipv4Addr> {
        let net = self.config.pod_cidr;
        let size = 1u64 << (32 - u32::from(net.prefix_len()));
        // Skip the network address, the bridge (first host) and the broadcast address.
        let last = (size.saturating_sub(2)) as u32;
        let offset = (2..=last)
            .find(|o| !inner.addresses.contains(o))
            .ok_or_else(|| RuntimeError::AddressesExhausted {
                cidr: net.to_string(),
            })?;
        inner.addresses.insert(offset);
        Ok(Ipv4Addr::from(u32::from(net.network()) + offset))
    }

    fn release_address(&self, inner: &mut Inner, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.config.pod_cidr.network()));
        inner.addresses.remove(&offset);
    }

    /// The exit behaviour of container `name` from the pod's annotations; init containers
    /// complete at once unless told otherwise.
    fn exit_behaviour(
        sandbox: &PodSandboxConfig,
        name: &str,
        init: bool,
    ) -> RuntimeResult<Option<(Duration, i32)>> {
        let specific = sandbox
            .annotations
            .get(&format!("{EXIT_ANNOTATION}.{name}"));
        match specific.or_else(|| sandbox.annotations.get(EXIT_ANNOTATION)) {
            Some(value) => parse_exit(value).map(Some).map_err(|e| {
                RuntimeError::InvalidState(format!("annotation {EXIT_ANNOTATION}: {e}"))
            }),
            None if init => Ok(Some((Duration::ZERO, 0))),
            None => Ok(None),
        }
    }

    fn sandbox_status(id: &str, sandbox: &Sandbox) -> PodSandboxStatus {
        PodSandboxStatus {
            id: id.to_string(),
            pod_uid: sandbox.config.uid.clone(),
            name: sandbox.config.name.clone(),
            namespace: sandbox.config.namespace.clone(),
            state: sandbox.state,
            created_at: sandbox.created_at,
            ip: sandbox.ip.map(IpAddr::V4),
        }
    }
}

/// `CODE` or `CODE after DURATION`.
fn parse_exit(value: &str) -> Result<(Duration, i32), String> {
    let (code, after) = match value.split_once(" after ") {
        Some((code, after)) => (code.trim(), parse_duration(after.trim())?),
        None => (value.trim(), Duration::ZERO),
    };
    let code = code
        .parse::<i32>()
        .map_err(|_| format!("{value:?} is not CODE or CODE after DURATION"))?;
    Ok((after, code))
}

/// Whether a `*`-or-list annotation names `item`.
fn names(list: Option<&String>, item: &str) -> bool {
    list.is_some_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|entry| entry == "*" || entry == item)
    })
}

fn random_id() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_of(text: &str) -> String {
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[async_trait]
impl Runtime for SimulatedRuntime {
    fn version(&self) -> RuntimeVersion {
        RuntimeVersion {
            name: "simulated".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    async fn run_pod_sandbox(&self, config: &PodSandboxConfig) -> RuntimeResult<String> {
        if !self.config.sandbox_startup.is_zero() {
            tokio::time::sleep(self.config.sandbox_startup).await;
        }
        let id = random_id();
        let mut inner = self.lock();
        let ip = self.allocate_address(&mut inner)?;
        inner.sandboxes.insert(
            id.clone(),
            Sandbox {
                config: config.clone(),
                state: SandboxState::Ready,
                created_at: self.clock.now(),
                ip: Some(ip),
            },
        );
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()> {
        self.lock().sandbox_stops += 1;
        self.stop_sandbox(sandbox_id).await
    }

    async fn remove_pod_sandbox(&self, sandbox_id: &str) -> RuntimeResult<()> {
        self.stop_sandbox(sandbox_id).await?;
        let removed: Vec<(String, String)> = {
            let mut inner = self.lock();
            inner.sandboxes.remove(sandbox_id);
            let ids: Vec<String> = inner
                .containers
                .iter()
                .filter(|(_, c)| c.status.sandbox_id == sandbox_id)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter()
                .filter_map(|id| inner.containers.remove(&id).map(|c| (id, c.status.pod_uid)))
                .collect()
        };
        for (id, uid) in removed {
            self.emit(&id, &uid, ContainerEventKind::Deleted);
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, sandbox_id: &str) -> RuntimeResult<PodSandboxStatus> {
        let inner = self.lock();
        let sandbox = inner
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "sandbox",
                id: sandbox_id.to_string(),
            })?;
        Ok(Self::sandbox_status(sandbox_id, sandbox))
    }

    async fn list_pod_sandboxes(&self) -> RuntimeResult<Vec<PodSandboxStatus>> {
        let inner = self.lock();
        Ok(inner
            .sandboxes
            .iter()
            .map(|(id, s)| Self::sandbox_status(id, s))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> RuntimeResult<String> {
        let exit = Self::exit_behaviour(sandbox, &config.name, config.init)?;
        let stop_after = match sandbox.annotations.get(STOP_AFTER_ANNOTATION) {
            Some(value) => parse_duration(value).map_err(|e| {
                RuntimeError::InvalidState(format!("annotation {STOP_AFTER_ANNOTATION}: {e}"))
            })?,
            None => Duration::ZERO,
        };
        let probe_fails = names(sandbox.annotations.get(PROBE_FAIL_ANNOTATION), &config.name);
        let probe_fail_after = match sandbox.annotations.get(PROBE_FAIL_AFTER_ANNOTATION) {
            Some(value) => Some(parse_duration(value).map_err(|e| {
                RuntimeError::InvalidState(format!("annotation {PROBE_FAIL_AFTER_ANNOTATION}: {e}"))
            })?),
            None => None,
        };
        let image = normalize_image(&config.image);
        let id = random_id();
        let mut inner = self.lock();
        let pod_uid = match inner.sandboxes.get(sandbox_id) {
            Some(s) if s.state == SandboxState::Ready => s.config.uid.clone(),
            Some(_) => {
                return Err(RuntimeError::InvalidState(format!(
                    "sandbox {sandbox_id} is not ready"
                )))
            }
            None => {
                return Err(RuntimeError::NotFound {
                    kind: "sandbox",
                    id: sandbox_id.to_string(),
                })
            }
        };
        let image_ref = inner
            .images
            .get(&image)
            .map(|i| i.id.clone())
            .unwrap_or_else(|| digest_of(&image));
        inner.containers.insert(
            id.clone(),
            Container {
                status: ContainerStatus {
                    id: id.clone(),
                    sandbox_id: sandbox_id.to_string(),
                    pod_uid: pod_uid.clone(),
                    name: config.name.clone(),
                    attempt: config.attempt,
                    state: ContainerState::Created,
                    created_at: self.clock.now(),
                    started_at: None,
                    finished_at: None,
                    exit_code: 0,
                    reason: None,
                    message: None,
                    image,
                    image_ref,
                    log_path: None,
                },
                exit,
                exit_at: None,
                probe_fails,
                probe_fail_after,
                probe_fail_at: None,
                stop_after,
            },
        );
        drop(inner);
        self.emit(&id, &pod_uid, ContainerEventKind::Created);
        Ok(id)
    }

    async fn start_container(&self, container_id: &str) -> RuntimeResult<()> {
        let now = Instant::now();
        let (uid, exit_at) =
            {
                let mut inner = self.lock();
                let container = inner.containers.get_mut(container_id).ok_or_else(|| {
                    RuntimeError::NotFound {
                        kind: "container",
                        id: container_id.to_string(),
                    }
                })?;
                if container.status.state != ContainerState::Created {
                    return Err(RuntimeError::InvalidState(format!(
                        "container {container_id} is not in created state"
                    )));
                }
                container.status.state = ContainerState::Running;
                container.status.started_at = Some(self.clock.at(now));
                container.exit_at = container.exit.map(|(after, _)| now + after);
                container.probe_fail_at = container.probe_fail_after.map(|after| now + after);
                if container.exit_at.is_some_and(|at| at <= now) {
                    container.refresh(&self.clock, now);
                }
                (container.status.pod_uid.clone(), container.exit_at)
            };
        self.emit(container_id, &uid, ContainerEventKind::Started);
        match exit_at {
            None => {}
            Some(at) if at <= now => {}
            Some(at) => {
                let runtime = self.clone();
                let id = container_id.to_string();
                let uid = uid.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(at).await;
                    let exited = {
                        let mut inner = runtime.lock();
                        match inner.containers.get_mut(&id) {
                            Some(c) if c.exit_at == Some(at) => {
                                c.refresh(&runtime.clock, Instant::now());
                                c.status.state == ContainerState::Exited
                            }
                            _ => false,
                        }
                    };
                    if exited {
                        runtime.emit(&id, &uid, ContainerEventKind::Stopped);
                    }
                });
            }
        }
        if exit_at.is_some_and(|at| at <= now) {
            self.emit(container_id, &uid, ContainerEventKind::Stopped);
        }
        Ok(())
    }

    async fn stop_container(&self, container_id: &str, timeout: Duration) -> RuntimeResult<()> {
        let stop_after = {
            let mut inner = self.lock();
            let Some(container) = inner.containers.get_mut(container_id) else {
                return Err(RuntimeError::NotFound {
                    kind: "container",
                    id: container_id.to_string(),
                });
            };
            container.refresh(&self.clock, Instant::now());
            match container.status.state {
                ContainerState::Running => container.stop_after,
                ContainerState::Created => {
                    let at = self.clock.now();
                    container.stop(at, 0);
                    return Ok(());
                }
                _ => return Ok(()),
            }
        };
        let graceful = stop_after <= timeout;
        let wait = stop_after.min(timeout);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let uid = {
            let mut inner = self.lock();
            let Some(container) = inner.containers.get_mut(container_id) else {
                return Ok(());
            };
            let now = Instant::now();
            container.refresh(&self.clock, now);
            if container.status.state != ContainerState::Running {
                return Ok(());
            }
            container.stop(
                self.clock.at(now),
                if graceful { 0 } else { KILLED_EXIT_CODE },
            );
            container.status.pod_uid.clone()
        };
        self.emit(container_id, &uid, ContainerEventKind::Stopped);
        Ok(())
    }

    async fn remove_container(&self, container_id: &str) -> RuntimeResult<()> {
        let removed = {
            let mut inner = self.lock();
            match inner.containers.get_mut(container_id) {
                Some(c) => {
                    c.refresh(&self.clock, Instant::now());
                    if c.status.state == ContainerState::Running {
                        return Err(RuntimeError::InvalidState(format!(
                            "container {container_id} is running"
                        )));
                    }
                }
                None => return Ok(()),
            }
            inner.containers.remove(container_id)
        };
        if let Some(c) = removed {
            self.emit(container_id, &c.status.pod_uid, ContainerEventKind::Deleted);
        }
        Ok(())
    }

    async fn container_status(&self, container_id: &str) -> RuntimeResult<ContainerStatus> {
        let mut inner = self.lock();
        let container =
            inner
                .containers
                .get_mut(container_id)
                .ok_or_else(|| RuntimeError::NotFound {
                    kind: "container",
                    id: container_id.to_string(),
                })?;
        container.refresh(&self.clock, Instant::now());
        Ok(container.status.clone())
    }

    async fn list_containers(
        &self,
        sandbox_id: Option<&str>,
    ) -> RuntimeResult<Vec<ContainerStatus>> {
        let now = Instant::now();
        let mut inner = self.lock();
        Ok(inner
            .containers
            .values_mut()
            .filter(|c| sandbox_id.is_none_or(|id| c.status.sandbox_id == id))
            .map(|c| {
                c.refresh(&self.clock, now);
                c.status.clone()
            })
            .collect())
    }

    async fn exec_sync(
        &self,
        container_id: &str,
        command: &[String],
        _timeout: Duration,
    ) -> RuntimeResult<ExecSyncResult> {
        let mut inner = self.lock();
        let container =
            inner
                .containers
                .get_mut(container_id)
                .ok_or_else(|| RuntimeError::NotFound {
                    kind: "container",
                    id: container_id.to_string(),
                })?;
        container.refresh(&self.clock, Instant::now());
        if container.status.state != ContainerState::Running {
            return Err(RuntimeError::InvalidState(format!(
                "container {container_id} is not running"
            )));
        }
        // Nothing runs, but a command that is `false` fails, as it would anywhere.
        let fails = container.probe_fails
            || container
                .probe_fail_at
                .is_some_and(|at| Instant::now() >= at)
            || command
                .first()
                .is_some_and(|c| c.rsplit('/').next() == Some("false"));
        Ok(ExecSyncResult {
            exit_code: i32::from(fails),
            stdout: Vec::new(),
            stderr: Vec::new(),
        })
    }

    async fn pull_image(&self, image: &str, sandbox: &PodSandboxConfig) -> RuntimeResult<String> {
        if names(sandbox.annotations.get(PULL_FAIL_ANNOTATION), image) {
            return Err(RuntimeError::ImagePull {
                image: image.to_string(),
                message: format!(
                    "simulated pull failure ({PULL_FAIL_ANNOTATION}): {image} not found"
                ),
            });
        }
        let name = normalize_image(image);
        let mut inner = self.lock();
        let entry = inner.images.entry(name.clone()).or_insert_with(|| {
            let repo = name.split(['@']).next().unwrap_or(&name);
            let repo = match repo.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo,
                _ => repo,
            };
            Image {
                id: format!("{repo}@{}", digest_of(&name)),
                repo_tags: vec![name.clone()],
                repo_digests: Vec::new(),
                size: 0,
                uid: None,
                username: String::new(),
            }
        });
        Ok(entry.id.clone())
    }

    async fn image_status(&self, image: &str) -> RuntimeResult<Option<Image>> {
        Ok(self.lock().images.get(&normalize_image(image)).cloned())
    }

    async fn list_images(&self) -> RuntimeResult<Vec<Image>> {
        Ok(self.lock().images.values().cloned().collect())
    }

    fn container_events(&self) -> broadcast::Receiver<ContainerEvent> {
        self.events.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> SimulatedRuntime {
        SimulatedRuntime::new(
            SimulatedConfig {
                sandbox_startup: Duration::from_millis(200),
                pod_cidr: "10.42.7.0/24".parse().unwrap(),
            },
            Clock::new(),
        )
    }

    fn pod(annotations: &[(&str, &str)]) -> PodSandboxConfig {
        PodSandboxConfig {
            name: "p".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn container(name: &str) -> ContainerConfig {
        ContainerConfig {
            name: name.into(),
            image: "busybox".into(),
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn sandboxes_take_the_startup_delay_and_get_consecutive_addresses() {
        let rt = runtime();
        let started = Instant::now();
        let a = rt.run_pod_sandbox(&pod(&[])).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(200));
        let b = rt.run_pod_sandbox(&pod(&[])).await.unwrap();
        let ip = |id: String| {
            let rt = rt.clone();
            async move { rt.pod_sandbox_status(&id).await.unwrap().ip }
        };
        assert_eq!(ip(a.clone()).await, Some("10.42.7.2".parse().unwrap()));
        assert_eq!(ip(b).await, Some("10.42.7.3".parse().unwrap()));
        // A stopped sandbox gives its address back.
        rt.stop_pod_sandbox(&a).await.unwrap();
        let c = rt.run_pod_sandbox(&pod(&[])).await.unwrap();
        assert_eq!(ip(c).await, Some("10.42.7.2".parse().unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn annotated_containers_exit_with_their_code_after_the_delay() {
        let rt = runtime();
        let mut events = rt.container_events();
        let sandbox = pod(&[("navarch.io/sim-exit.app", "3 after 2s")]);
        let sb = rt.run_pod_sandbox(&sandbox).await.unwrap();
        let id = rt
            .create_container(&sb, &container("app"), &sandbox)
            .await
            .unwrap();
        let other = rt
            .create_container(&sb, &container("other"), &sandbox)
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        rt.start_container(&other).await.unwrap();
        assert_eq!(
            rt.container_status(&id).await.unwrap().state,
            ContainerState::Running
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        let status = rt.container_status(&id).await.unwrap();
        assert_eq!(
            (status.state, status.exit_code),
            (ContainerState::Exited, 3)
        );
        assert_eq!(
            rt.container_status(&other).await.unwrap().state,
            ContainerState::Running
        );
        // Let the exit timer's task run.
        tokio::task::yield_now().await;
        let mut kinds = Vec::new();
        while let Ok(e) = events.try_recv() {
            if e.container_id == id {
                kinds.push(e.kind);
            }
        }
        assert_eq!(
            kinds,
            [
                ContainerEventKind::Created,
                ContainerEventKind::Started,
                ContainerEventKind::Stopped
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_containers_are_killed_at_the_grace_period() {
        let rt = runtime();
        let sandbox = pod(&[(STOP_AFTER_ANNOTATION, "10s")]);
        let sb = rt.run_pod_sandbox(&sandbox).await.unwrap();
        let id = rt
            .create_container(&sb, &container("app"), &sandbox)
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        let t = Instant::now();
        rt.stop_container(&id, Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(t.elapsed(), Duration::from_secs(3));
        assert_eq!(rt.container_status(&id).await.unwrap().exit_code, 137);

        let id = rt
            .create_container(&sb, &container("app2"), &sandbox)
            .await
            .unwrap();
        rt.start_container(&id).await.unwrap();
        rt.stop_container(&id, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(rt.container_status(&id).await.unwrap().exit_code, 0);
    }

    #[tokio::test]
    async fn pull_and_probe_failures_follow_the_annotations() {
        let rt = runtime();
        let sandbox = pod(&[
            (PULL_FAIL_ANNOTATION, "bad:1, worse"),
            (PROBE_FAIL_ANNOTATION, "app"),
        ]);
        assert!(matches!(
            rt.pull_image("bad:1", &sandbox).await,
            Err(RuntimeError::ImagePull { .. })
        ));
        let image_ref = rt.pull_image("nginx", &sandbox).await.unwrap();
        assert!(
            image_ref.starts_with("docker.io/library/nginx@sha256:"),
            "{image_ref}"
        );
        assert!(rt.image_status("nginx:latest").await.unwrap().is_some());

        let sb = rt.run_pod_sandbox(&sandbox).await.unwrap();
        let app = rt
            .create_container(&sb, &container("app"), &sandbox)
            .await
            .unwrap();
        let ok = rt
            .create_container(&sb, &container("ok"), &sandbox)
            .await
            .unwrap();
        rt.start_container(&app).await.unwrap();
        rt.start_container(&ok).await.unwrap();
        let exec = |id: String| {
            let rt = rt.clone();
            async move {
                rt.exec_sync(&id, &[], Duration::from_secs(1))
                    .await
                    .unwrap()
                    .exit_code
            }
        };
        assert_eq!(exec(app).await, 1);
        assert_eq!(exec(ok).await, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_can_start_failing_after_a_while() {
        let rt = runtime();
        let sandbox = pod(&[(PROBE_FAIL_AFTER_ANNOTATION, "5s")]);
        let sb = rt.run_pod_sandbox(&sandbox).await.unwrap();
        let app = rt
            .create_container(&sb, &container("app"), &sandbox)
            .await
            .unwrap();
        rt.start_container(&app).await.unwrap();
        let exec = || async {
            rt.exec_sync(&app, &[], Duration::from_secs(1))
                .await
                .unwrap()
                .exit_code
        };
        assert_eq!(exec().await, 0);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(exec().await, 1);
    }

    #[test]
    fn exit_annotations_parse() {
        assert_eq!(parse_exit("1"), Ok((Duration::ZERO, 1)));
        assert_eq!(
            parse_exit("0 after 150ms"),
            Ok((Duration::from_millis(150), 0))
        );
        assert!(parse_exit("one").is_err());
        assert!(parse_exit("1 after soon").is_err());
    }
}
