//! Harness for whole-cluster tests driven by the real kubectl; the tests live in `tests/`.
//!
//! [`Server`] runs the compiled `navarch` binary (`$NAVARCH_BIN`, else `target/debug/navarch`
//! of this workspace — build the workspace first, as `make test` does) on a free port in a
//! temporary data directory and kills it by PID when dropped. [`Kubectl`] runs one of the real
//! kubectl binaries with a private HOME and cache directory, so discovery caches never leak
//! between tests. [`output_within`] bounds a command's run time; [`Background`] keeps one
//! running beside the test (`kubectl get -w`, `kubectl wait`) and reads its stdout by line.
//! [`up::UpCluster`] is `navarch up` on real containerd, cleaned up after. [`KubectlCluster`]
//! gives a test's cluster kubectl helpers from its kubectl and kubeconfig.

pub mod up;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// How long a server may take to print its kubeconfig path.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// The `navarch` binary under test.
pub fn navarch_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NAVARCH_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/navarch")
}

/// A TCP port that was free a moment ago on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}

/// Poll `condition` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut condition: impl FnMut() -> Option<T>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// A running `navarch server`.
pub struct Server {
    child: Child,
    data_dir: PathBuf,
    port: u16,
    stderr_path: PathBuf,
    /// From spawning the process to the kubeconfig path appearing on stdout.
    pub time_to_kubeconfig: Duration,
}

impl Server {
    /// Run `navarch server --data-dir DATA_DIR --secure-port <free port> EXTRA…` and wait until
    /// it prints its kubeconfig path. Its stderr goes to `DATA_DIR.stderr`.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Result<Server> {
        Self::start_command("server", data_dir, extra)
    }

    /// Like [`Server::start`] for another subcommand that serves the API and prints its
    /// kubeconfig path first (`up`).
    pub fn start_command(command: &str, data_dir: &Path, extra: &[&str]) -> Result<Server> {
        let port = free_port();
        let stderr_path = data_dir.with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .with_context(|| format!("cannot create {}", stderr_path.display()))?;
        let started = Instant::now();
        let mut child = Command::new(navarch_bin())
            .arg(command)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--secure-port")
            .arg(port.to_string())
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", navarch_bin().display()))?;

        // Read stdout on a thread so that the wait has a timeout.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            // Keep draining so the server never blocks on a full pipe.
            for _ in lines {}
        });
        let mut server = Server {
            child,
            data_dir: data_dir.to_path_buf(),
            port,
            stderr_path,
            time_to_kubeconfig: Duration::ZERO,
        };
        let first_line = match rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            Ok(_) => bail!(
                "navarch exited before it was ready ({:?}): {}",
                server.child.try_wait(),
                server.stderr()
            ),
            Err(_) => bail!(
                "navarch did not print its kubeconfig within {READY_TIMEOUT:?}: {}",
                server.stderr()
            ),
        };
        server.time_to_kubeconfig = started.elapsed();
        let expected = server.kubeconfig();
        if Path::new(&first_line) != expected {
            bail!(
                "navarch printed {first_line:?}, expected {}",
                expected.display()
            );
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig.yaml")
    }

    /// Everything the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Send SIGTERM and wait for the process to exit.
    pub fn stop(mut self) -> Result<ExitStatus> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid());
        }
        let child = &mut self.child;
        wait_for(STOP_TIMEOUT, "navarch to exit after SIGTERM", || {
            child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Run `navarch ARGS…` to completion (for startup failures), with a timeout.
pub fn run_navarch(args: &[&str], timeout: Duration) -> Result<Output> {
    let mut child = Command::new(navarch_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", navarch_bin().display()))?;
    let exited = wait_for(timeout, "navarch to exit", || {
        child.try_wait().ok().flatten()
    });
    if exited.is_err() {
        let _ = child.kill();
    }
    let output = child.wait_with_output()?;
    exited?;
    Ok(output)
}

/// One of the real kubectl binaries with a private HOME and cache directory.
pub struct Kubectl {
    binary: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    /// `name` is `kubectl` (gcloud's dispatcher, which picks the version from `/version`) or
    /// a versioned binary such as `kubectl.1.33`, looked up beside the dispatcher.
    pub fn new(name: &str) -> Result<Kubectl> {
        let dispatcher =
            find_on_path("kubectl").ok_or_else(|| anyhow!("kubectl is not on PATH"))?;
        let dir = std::fs::canonicalize(&dispatcher)?
            .parent()
            .map(Path::to_path_buf)
            .ok_or_else(|| anyhow!("kubectl has no parent directory"))?;
        // Versioned binaries sit beside the dispatcher; `make test` may instead have put
        // them on PATH (scripts/ensure-kubectl.sh).
        let binary = Some(dir.join(name))
            .filter(|b| b.is_file())
            .or_else(|| find_on_path(name))
            .ok_or_else(|| {
                anyhow!(
                    "{name} is neither beside {} nor on PATH",
                    dispatcher.display()
                )
            })?;
        Ok(Kubectl {
            binary,
            home: tempfile::Builder::new()
                .prefix("navarch-kubectl-")
                .tempdir()?,
        })
    }

    /// The command [`Kubectl::run`] runs, for callers that add environment (`KUBE_EDITOR`),
    /// run it in the [`Background`] or bound it with [`output_within`].
    pub fn command(&self, kubeconfig: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--cache-dir")
            .arg(self.home.path().join("cache"))
            .arg("--request-timeout")
            .arg("20s")
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        command
    }

    /// Run `kubectl --kubeconfig KUBECONFIG ARGS…`.
    pub fn run(&self, kubeconfig: &Path, args: &[&str]) -> Result<Output> {
        self.command(kubeconfig, args)
            .output()
            .with_context(|| format!("cannot run {}", self.binary.display()))
    }

    /// Run and return stdout, failing with stderr if kubectl failed.
    pub fn stdout(&self, kubeconfig: &Path, args: &[&str]) -> Result<String> {
        let output = self.run(kubeconfig, args)?;
        if !output.status.success() {
            bail!(
                "kubectl {} failed ({}): {}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8(output.stdout)?)
    }
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `certificate-authority-data` value of a kubeconfig.
pub fn kubeconfig_ca(kubeconfig: &Path) -> Result<String> {
    let text = std::fs::read_to_string(kubeconfig)?;
    text.lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("certificate-authority-data:")
                .map(|v| v.trim().to_string())
        })
        .ok_or_else(|| anyhow!("{} has no certificate-authority-data", kubeconfig.display()))
}

/// Run `command` to completion and collect its output, killing it if it is still running after
/// `timeout`. Output goes to anonymous files, so a large output never blocks it on a full pipe.
pub fn output_within(mut command: Command, timeout: Duration) -> Result<Output> {
    let stdout = tempfile::tempfile()?;
    let stderr = tempfile::tempfile()?;
    let mut child = command
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?)
        .spawn()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let exited = wait_for(timeout, "the command to exit", || {
        child.try_wait().ok().flatten()
    });
    let status = match exited {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.context(format!("{command:?} was killed")));
        }
    };
    Ok(Output {
        status,
        stdout: read_from_start(&stdout)?,
        stderr: read_from_start(&stderr)?,
    })
}

fn read_from_start(mut file: &std::fs::File) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))?;
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// A process running beside the test (`kubectl get -w`, `kubectl wait`) whose stdout is read
/// line by line on a thread; its stderr goes to an anonymous file. Killed by PID when dropped.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: std::fs::File,
}

impl Background {
    pub fn spawn(mut command: Command) -> Result<Background> {
        let stderr = tempfile::tempfile()?;
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(stderr.try_clone()?)
            .spawn()
            .with_context(|| format!("cannot run {:?}", command.get_program()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Background {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Every stdout line read so far.
    pub fn lines(&self) -> &[String] {
        &self.seen
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        read_from_start(&self.stderr)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Read stdout until a line satisfies `wanted` (lines read earlier count too) and return
    /// it; fails when `timeout` passes or stdout ends first.
    pub fn wait_for_line(
        &mut self,
        timeout: Duration,
        what: &str,
        wanted: impl Fn(&str) -> bool,
    ) -> Result<String> {
        if let Some(line) = self.seen.iter().find(|l| wanted(l)) {
            return Ok(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return Ok(line);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!(
                    "timed out after {timeout:?} waiting for {what}; stdout so far: {:?}; stderr: {}",
                    self.seen,
                    self.stderr()
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!(
                    "stdout ended before {what} ({:?}); stdout: {:?}; stderr: {}",
                    self.child.try_wait(),
                    self.seen,
                    self.stderr()
                ),
            }
        }
    }

    /// Wait for the process to exit by itself, then collect the rest of its stdout.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let child = &mut self.child;
        let status = wait_for(timeout, "the background process to exit", || {
            child.try_wait().ok().flatten()
        })?;
        // The reader thread sees EOF once the process has exited.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        Ok(status)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Implements [`KubectlCluster`] for a struct with `kubectl: Kubectl` and `server: Server`
/// fields.
#[macro_export]
macro_rules! kubectl_cluster {
    ($cluster:ty) => {
        impl $crate::KubectlCluster for $cluster {
            fn kubectl_binary(&self) -> &$crate::Kubectl {
                &self.kubectl
            }

            fn kubeconfig_path(&self) -> std::path::PathBuf {
                self.server.kubeconfig()
            }
        }
    };
}

/// A test's cluster as kubectl sees it: implement the two accessors (or use
/// [`kubectl_cluster!`]), get `kubectl`, `json` and `apply` against its kubeconfig.
pub trait KubectlCluster {
    fn kubectl_binary(&self) -> &Kubectl;
    fn kubeconfig_path(&self) -> PathBuf;

    /// `kubectl ARGS…`, its stdout; fails with stderr if kubectl failed.
    fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_binary().stdout(&self.kubeconfig_path(), args)
    }

    /// `kubectl ARGS… -o json`, parsed.
    fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        Ok(serde_json::from_str(&self.kubectl(&all)?)?)
    }

    /// `kubectl apply -f` of a YAML or JSON manifest (written beside the kubeconfig).
    fn apply(&self, manifest: &str) -> Result<()> {
        let path = self.kubeconfig_path().with_file_name("manifest.yaml");
        std::fs::write(&path, manifest)?;
        let path = path
            .to_str()
            .ok_or_else(|| anyhow!("{} is not UTF-8", path.display()))?
            .to_string();
        self.kubectl(&["apply", "-f", &path])?;
        Ok(())
    }
}
