//! `navarch up` on real containers, for the tests and benchmarks that need root and
//! containerd: [`UpCluster::start`] runs it with a node name, cluster CIDR and service CIDR of
//! its own (so that it runs beside other tests: its bridge, pod subnet and blackhole routes
//! are nobody else's), and removes everything it may leave on the host when dropped — even
//! after a failure: the process stops (SIGTERM, then SIGKILL), a containerd on its data dir
//! removes the pods that are left, mounts and the bridge go, and so do the routes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use navarch_agent::containerd::{self, Layout};
use navarch_agent::runtime::cri::{CriOptions, CriRuntime};

use crate::{run_navarch, Server};

/// The test image (`scripts/build-test-image.sh`).
pub const BUSYBOX: &str = "navarch.local/busybox:1";
const IMPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `navarch up` with a containerd node; see the module docs.
pub struct UpCluster {
    server: Option<Server>,
    data_dir: PathBuf,
    node: String,
    /// The cluster CIDR's second octet: pods get `10.N.0.0/24`.
    second_octet: u32,
    /// The cluster and service CIDRs, which get blackhole routes.
    cidrs: [String; 2],
    root: tempfile::TempDir,
}

impl UpCluster {
    /// Start `navarch up` in a fresh data dir and wait for its kubeconfig (printed once the
    /// node is Ready).
    pub fn start(prefix: &str) -> Result<UpCluster> {
        Self::start_with(prefix, &[])
    }

    /// [`UpCluster::start`] with more `navarch up` flags.
    pub fn start_with(prefix: &str, extra: &[&str]) -> Result<UpCluster> {
        ensure!(
            is_root(),
            "navarch up on containerd runs containers and needs root"
        );
        let root = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
        // 10.150–10.189: apart from the other e2e tests' (10.200–10.249) and the defaults.
        let second_octet = 150 + seed % 40;
        let cidrs = [
            format!("10.{second_octet}.0.0/17"),
            format!("10.{second_octet}.128.0/17"),
        ];
        let node = format!(
            "up-{}",
            root.path()
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        )
        .to_lowercase();
        let data_dir = root.path().join("data");
        let mut cluster = UpCluster {
            server: None,
            data_dir: data_dir.clone(),
            node: node.clone(),
            second_octet,
            cidrs,
            root,
        };
        let mut args = vec![
            "--bind-address",
            "127.0.0.1",
            "--node-name",
            &node,
            "--cluster-cidr",
            &cluster.cidrs[0],
            "--service-cidr",
            &cluster.cidrs[1],
        ];
        args.extend_from_slice(extra);
        let server = Server::start_command("up", &data_dir, &args)?;
        cluster.server = Some(server);
        Ok(cluster)
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("the server runs until stopped")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.server().kubeconfig()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Pod addresses start with this (`10.N.`).
    pub fn pod_prefix(&self) -> String {
        format!("10.{}.", self.second_octet)
    }

    /// The node's containerd socket.
    pub fn socket(&self) -> PathBuf {
        Layout::new(&self.data_dir).socket()
    }

    /// The pid of the node's containerd.
    pub fn containerd_pid(&self) -> Result<u32> {
        let pid_file = Layout::new(&self.data_dir).pid_file();
        let pid = std::fs::read_to_string(&pid_file)
            .with_context(|| format!("cannot read {}", pid_file.display()))?;
        Ok(pid.trim().parse()?)
    }

    /// Build the busybox test image and import it with `navarch images import`.
    pub fn import_busybox(&self) -> Result<()> {
        let archive = self.root.path().join("busybox.tar");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
        let built = Command::new(&script)
            .arg(&archive)
            .stdout(std::process::Stdio::null())
            .status()
            .with_context(|| format!("cannot run {}", script.display()))?;
        ensure!(built.success(), "build-test-image.sh failed");
        let data_dir = self.data_dir.to_string_lossy().into_owned();
        let archive = archive.to_string_lossy().into_owned();
        let imported = run_navarch(
            &["images", "import", "--data-dir", &data_dir, &archive],
            IMPORT_TIMEOUT,
        )?;
        ensure!(
            String::from_utf8_lossy(&imported.stdout).contains(BUSYBOX),
            "navarch images import: {imported:?}"
        );
        Ok(())
    }

    /// `ctr --address SOCKET --namespace k8s.io ARGS…` (CRI's namespace).
    pub fn ctr(&self, args: &[&str]) -> Result<String> {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .context("cannot run ctr")?;
        ensure!(
            output.status.success(),
            "ctr {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// The network namespaces of the node's pod sandboxes (from CRI).
    pub fn sandbox_netns(&self) -> Result<Vec<PathBuf>> {
        let layout = Layout::new(&self.data_dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let cri =
                CriRuntime::connect(CriOptions::new(layout.socket(), layout.pod_log_dir())).await?;
            let mut paths = Vec::new();
            for sandbox in navarch_agent::runtime::Runtime::list_pod_sandboxes(&cri).await? {
                if let Some(path) = cri.sandbox_netns(&sandbox.id).await? {
                    paths.push(path);
                }
            }
            Ok(paths)
        })
    }

    /// Mounts under the data dir (the containers' root filesystems, sandbox files).
    pub fn mounts(&self) -> Vec<PathBuf> {
        containerd::mounts_under(&self.data_dir)
    }

    /// The log of a container's first attempt, as the runtime wrote it (CRI log format).
    pub fn container_log(&self, namespace: &str, pod: &str, uid: &str, container: &str) -> String {
        let path = Layout::new(&self.data_dir)
            .pod_log_dir()
            .join(format!("{namespace}_{pod}_{uid}"))
            .join(container)
            .join("0.log");
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Stop `navarch up` with SIGTERM; it stops its containerd on the way out.
    pub fn stop(&mut self) -> Result<std::process::ExitStatus> {
        let server = self.server.take().context("already stopped")?;
        server.stop()
    }
}

impl Drop for UpCluster {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            if std::thread::panicking() {
                eprintln!("navarch up stderr:\n{}", server.stderr());
            }
            // SIGTERM; dropping the server SIGKILLs it if it did not exit.
            let _ = server.stop();
        }
        let layout = Layout::new(&self.data_dir);
        let bridge = containerd::config::bridge_name(&self.node);
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async {
            // Starting containerd on the data dir also stops one a killed `up` left behind.
            if let Ok(containerd) = containerd::start_containerd(&self.data_dir).await {
                let options = CriOptions::new(containerd.socket(), layout.pod_log_dir());
                if let Ok(cri) = CriRuntime::connect(options).await {
                    if let Err(e) = cri.remove_all_pod_sandboxes().await {
                        eprintln!("cleanup: cannot remove sandboxes: {e}");
                    }
                }
                containerd.stop().await;
            }
            if let Err(e) = containerd::cleanup_host(&layout, &bridge).await {
                eprintln!("cleanup: {e}");
            }
            let routes: Vec<_> = self.cidrs.iter().filter_map(|c| c.parse().ok()).collect();
            let _ = containerd::network::remove_blackhole_routes(&routes).await;
        });
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}
