//! containerd as a child of the agent: started with the generated configuration, restarted
//! when it dies (with a growing delay), stopped with SIGTERM and then SIGKILL on shutdown.
//!
//! Containers survive a containerd restart: each runs under its own `containerd-shim-runc-v2`,
//! which containerd reconnects to when it comes back. So stopping the agent does not stop the
//! pods; removing them is the pod workers' (or a cleanup's) job.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::config::{containerd_toml, ContainerdConfig, Layout};
use crate::error::{Error, Result};

/// How long containerd may take to open its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long containerd gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
const RESTART_DELAY_INITIAL: Duration = Duration::from_millis(500);
const RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
/// A containerd that ran this long before dying is restarted without delay growth.
const HEALTHY_RUN: Duration = Duration::from_secs(60);

fn io_error(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A running, supervised containerd. Dropping it stops containerd as [`Containerd::stop`]
/// does, but without waiting.
pub struct Containerd {
    layout: Layout,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
    pid: Arc<AtomicU32>,
}

impl std::fmt::Debug for Containerd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Containerd")
            .field("socket", &self.layout.socket())
            .field("pid", &self.pid())
            .finish()
    }
}

impl Containerd {
    /// Write the configuration, start `binary` (normally `containerd` from `PATH`) and wait
    /// until it answers on its socket, then keep it running.
    pub async fn start(config: ContainerdConfig, binary: impl Into<PathBuf>) -> Result<Self> {
        let binary = binary.into();
        let layout = config.layout.clone();
        for dir in [
            layout.root(),
            layout.state(),
            layout.cni_conf_dir(),
            layout.ipam_dir(),
            layout.pod_log_dir(),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(io_error(format!("cannot create {}", dir.display())))?;
        }
        let file = layout.config_file();
        std::fs::write(&file, containerd_toml(&config))
            .map_err(io_error(format!("cannot write {}", file.display())))?;

        let child = spawn(&binary, &layout).await?;
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        let cancel = CancellationToken::new();
        let task = tokio::spawn(supervise(
            child,
            binary,
            layout.clone(),
            pid.clone(),
            cancel.clone(),
        ));
        Ok(Containerd {
            layout,
            cancel,
            task: Some(task),
            pid,
        })
    }

    /// containerd's gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.layout.socket()
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The current containerd process, if one is running.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }

    /// Stop containerd (SIGTERM, SIGKILL after a grace period) and wait until it has exited.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A containerd left running by an agent that was killed (no one stopped it) still holds
/// the data dir: stop it, so that the new one can start. Its shims and containers live on.
async fn stop_orphan(layout: &Layout) {
    let Ok(text) = std::fs::read_to_string(layout.pid_file()) else {
        return;
    };
    let Some(pid) = text
        .trim()
        .parse::<i32>()
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    let proc_dir = PathBuf::from(format!("/proc/{}", pid.as_raw_nonzero()));
    let config = layout.config_file();
    let ours = |proc_dir: &Path| {
        std::fs::read(proc_dir.join("cmdline"))
            .map(|cmdline| {
                cmdline
                    .split(|b| *b == 0)
                    .any(|arg| arg == config.as_os_str().as_encoded_bytes())
            })
            .unwrap_or(false)
    };
    if !ours(&proc_dir) {
        return;
    }
    tracing::warn!(
        pid = pid.as_raw_nonzero(),
        "stopping a containerd left running on this data dir"
    );
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + STOP_GRACE;
    while ours(&proc_dir) {
        if Instant::now() >= deadline {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // After SIGKILL, wait until the kernel has taken it down.
    while ours(&proc_dir) && Instant::now() < deadline + STOP_GRACE {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Start containerd and wait for its socket.
async fn spawn(binary: &Path, layout: &Layout) -> Result<Child> {
    stop_orphan(layout).await;
    let socket = layout.socket();
    // A socket left by a containerd that was killed would look ready at once.
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(format!("cannot remove {}", socket.display()))(e)),
    }
    let log_path = layout.log_file();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io_error(format!("cannot open {}", log_path.display())))?;
    let stderr = log
        .try_clone()
        .map_err(io_error(format!("cannot open {}", log_path.display())))?;
    let mut child = Command::new(binary)
        .arg("--config")
        .arg(layout.config_file())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        // Its own process group: a Ctrl-C at the terminal reaches the agent, which then
        // stops containerd in order, rather than both at once.
        .process_group(0)
        // If the agent goes away without stopping it (a panic, a test failing), so does it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Command {
            command: binary.display().to_string(),
            message: e.to_string(),
        })?;
    if let Some(pid) = child.id() {
        let file = layout.pid_file();
        std::fs::write(&file, format!("{pid}\n"))
            .map_err(io_error(format!("cannot write {}", file.display())))?;
    }
    tracing::info!(pid = child.id(), socket = %socket.display(), "containerd started");

    let deadline = Instant::now() + START_TIMEOUT;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Containerd(format!(
                "exited with {status} while starting; see {}",
                log_path.display()
            )));
        }
        if tokio::net::UnixStream::connect(&socket).await.is_ok() {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            terminate(&mut child).await;
            return Err(Error::Containerd(format!(
                "no socket at {} after {}s; see {}",
                socket.display(),
                START_TIMEOUT.as_secs(),
                log_path.display()
            )));
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}

/// SIGTERM, then SIGKILL if it has not exited within [`STOP_GRACE`].
async fn terminate(child: &mut Child) {
    if let Some(pid) = child
        .id()
        .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        if let Ok(status) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
            tracing::info!(status = ?status.ok(), "containerd stopped");
            return;
        }
        tracing::warn!("containerd did not stop within {STOP_GRACE:?}; killing it");
    }
    let _ = child.kill().await;
}

async fn supervise(
    child: Child,
    binary: PathBuf,
    layout: Layout,
    pid: Arc<AtomicU32>,
    cancel: CancellationToken,
) {
    let mut child = Some(child);
    let mut started = Instant::now();
    let mut delay = RESTART_DELAY_INITIAL;
    loop {
        if let Some(running) = child.as_mut() {
            tokio::select! {
                _ = cancel.cancelled() => {
                    terminate(running).await;
                    pid.store(0, Ordering::SeqCst);
                    return;
                }
                status = running.wait() => {
                    pid.store(0, Ordering::SeqCst);
                    tracing::warn!(
                        status = ?status.ok(),
                        log = %layout.log_file().display(),
                        "containerd exited; restarting it"
                    );
                }
            }
            child = None;
            if started.elapsed() >= HEALTHY_RUN {
                delay = RESTART_DELAY_INITIAL;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RESTART_DELAY_MAX);
        let spawned = tokio::select! {
            _ = cancel.cancelled() => return,
            spawned = spawn(&binary, &layout) => spawned,
        };
        match spawned {
            Ok(new) => {
                pid.store(new.id().unwrap_or(0), Ordering::SeqCst);
                started = Instant::now();
                child = Some(new);
            }
            Err(e) => tracing::warn!(error = %e, "cannot restart containerd"),
        }
    }
}
