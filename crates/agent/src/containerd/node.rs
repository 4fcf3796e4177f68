//! One node on real containers: containerd started and supervised by the agent (or an
//! existing CRI runtime), the pause image imported, blackhole routes in place, and the node
//! run as a fleet of one over the CRI runtime. `navarch agent --runtime containerd` and
//! `navarch up` call [`run_containerd_node`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use kube::Client;
use tokio_util::sync::CancellationToken;

use super::config::{bridge_name, can_lower_oom_score_adj, CgroupDriver, ContainerdConfig, Layout};
use super::{images, network, write_cni_config, Containerd, PAUSE_IMAGE};
use crate::error::{Error, Result};
use crate::fleet::{self, FleetConfig, Progress, RuntimeProvider};
use crate::node::{NodeConfig, Registered, Timing};
use crate::pod::backoff::BackoffConfig;
use crate::runtime::cri::{CriOptions, CriRuntime};
use crate::runtime::Runtime;
use crate::stats::{self, Collector, StatsStore};

/// How long containerd may take to load the CNI network once it is written.
const NETWORK_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a containerd node.
#[derive(Debug, Clone)]
pub struct ContainerdNodeConfig {
    pub node: NodeConfig,
    /// The agent's data dir: containerd's state, CNI configuration, pod logs.
    pub data_dir: PathBuf,
    /// An existing CRI runtime's socket (`--container-runtime-endpoint`): then the agent
    /// starts no containerd, imports no pause image and writes no CNI configuration.
    pub endpoint: Option<PathBuf>,
    /// Ranges that must never leave the machine (the cluster and service CIDRs).
    pub blackhole_routes: Vec<IpNet>,
    pub backoff: BackoffConfig,
    pub timing: Timing,
    /// Where the pods' CPU and memory statistics are kept ([`crate::stats`]).
    pub stats: StatsStore,
}

/// Where a program is: `PATH`, then the sbin directories a non-login root shell may lack.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The containerd configuration for this host and data dir.
pub fn host_config(layout: Layout) -> ContainerdConfig {
    ContainerdConfig {
        layout,
        cgroup_driver: CgroupDriver::detect(),
        sandbox_image: PAUSE_IMAGE.to_string(),
        runc: find_program("runc").unwrap_or_else(|| PathBuf::from("runc")),
        restrict_oom_score_adj: !can_lower_oom_score_adj(),
    }
}

/// Start containerd for `data_dir` and import the pause image: what a node needs before its
/// CRI runtime can run pods.
pub async fn start_containerd(data_dir: impl Into<PathBuf>) -> Result<Containerd> {
    let layout = Layout::new(data_dir);
    let binary = find_program("containerd").ok_or_else(|| {
        Error::Containerd("no containerd binary (install the containerd package)".to_string())
    })?;
    let containerd = Containerd::start(host_config(layout.clone()), binary).await?;
    images::import_pause_image(&layout).await?;
    Ok(containerd)
}

/// Writes the node's CNI network once its podCIDR is known, then hands out the runtime.
#[derive(Debug)]
struct CniProvider {
    runtime: CriRuntime,
    /// `None` for an external runtime, whose network is its own business.
    layout: Option<Layout>,
}

#[async_trait::async_trait]
impl RuntimeProvider for CniProvider {
    async fn runtime(
        &self,
        node: &NodeConfig,
        registered: &Registered,
    ) -> Result<Arc<dyn Runtime>> {
        if let Some(layout) = &self.layout {
            write_cni_config(layout, &bridge_name(&node.name), registered.pod_cidr)?;
            let deadline = Instant::now() + NETWORK_READY_TIMEOUT;
            while !self.runtime.network_ready().await? {
                if Instant::now() > deadline {
                    return Err(Error::Containerd(format!(
                        "the CNI network in {} was not loaded within {}s",
                        layout.cni_conf_dir().display(),
                        NETWORK_READY_TIMEOUT.as_secs()
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tracing::info!(pod_cidr = %registered.pod_cidr, "pod network ready");
        }
        Ok(Arc::new(self.runtime.clone()))
    }
}

/// Run one node on containerd until `shutdown`: start containerd (unless `endpoint` names
/// another runtime), import the pause image, add the blackhole routes (and, for our own
/// bridge, the pod egress filter of [`network::pod_egress_filter`]), connect over CRI,
/// register the node and run its pods. containerd is stopped on the way out; the pods'
/// containers keep running under their shims and are adopted by the next start.
pub async fn run_containerd_node(
    client: Client,
    config: ContainerdNodeConfig,
    shutdown: CancellationToken,
    progress: impl FnMut(Progress),
) -> Result<()> {
    let layout = Layout::new(&config.data_dir);
    let (containerd, socket) = match &config.endpoint {
        Some(socket) => (None, socket.clone()),
        None => {
            let containerd = start_containerd(&config.data_dir).await?;
            let socket = containerd.socket();
            (Some(containerd), socket)
        }
    };
    let result = async {
        network::ensure_blackhole_routes(&config.blackhole_routes).await?;
        if containerd.is_some() {
            network::ensure_pod_egress_filter(&bridge_name(&config.node.name)).await?;
        }
        let options = CriOptions::new(socket, layout.pod_log_dir());
        let driver = options.cgroup_driver;
        let runtime = CriRuntime::connect(options).await?;
        let collector = Collector {
            runtime: Arc::new(runtime.clone()),
            driver,
            root: PathBuf::from("/sys/fs/cgroup"),
        };
        tokio::spawn(stats::run(
            collector,
            config.stats.clone(),
            shutdown.child_token(),
        ));
        let version = runtime.version();
        let mut node = config.node.clone();
        // Capacity, allocatable and pressure from this machine and the data dir's disk.
        node.host_data_dir = Some(config.data_dir.clone());
        node.runtime_version = format!("{}://{}", version.name, version.version);
        let fleet_config = FleetConfig {
            nodes: vec![node],
            runtime: Some(Arc::new(CniProvider {
                runtime,
                layout: containerd.is_some().then(|| layout.clone()),
            })),
            sandbox_startup: Duration::ZERO,
            backoff: config.backoff,
            timing: config.timing,
            cleanup: false,
            pod_files: Some(layout.pod_files_dir()),
        };
        fleet::run(client, fleet_config, shutdown, progress).await
    }
    .await;
    if let Some(containerd) = containerd {
        containerd.stop().await;
    }
    result
}
