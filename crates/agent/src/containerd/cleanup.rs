//! `navarch agent --cleanup` and `navarch up --cleanup`: remove everything a containerd node
//! put on the machine, whether the agent stopped cleanly, was killed, or left pods running
//! (containers outlive the agent under their shims).
//!
//! In order: a containerd on the node's data dir (starting one also stops a containerd
//! orphaned by a killed agent) stops and removes every pod sandbox — that stops the
//! containers and their shims, tears down the pods' network namespaces and address leases,
//! and removes the pod cgroups; then it stops, and what it may leave goes: mounts under the
//! data dir, the pod bridge, the node's nftables table, the blackhole routes, and the
//! node's part of the data dir (containerd's state and images, CNI configuration and leases,
//! pod logs and pod files). The cluster's state in the same data dir (`navarch up`) stays.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::config::{bridge_name, Layout};
use super::{cleanup_host, network, start_containerd};
use crate::error::{Error, Result};
use crate::runtime::cri::{CriOptions, CriRuntime};

/// How long containerd may take to load the CNI configuration it needs to tear pod networks
/// down.
const NETWORK_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// What to clean up.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// The agent's data dir.
    pub data_dir: PathBuf,
    /// The node's name (its bridge and nftables table are named after it).
    pub node_name: String,
    /// The blackhole routes the agent added (the cluster and service CIDRs).
    pub blackhole_routes: Vec<IpNet>,
}

/// The directories of the data dir that belong to the node.
pub fn node_dirs(layout: &Layout) -> Vec<PathBuf> {
    vec![
        layout.data_dir.join("containerd"),
        layout.data_dir.join("cni"),
        layout.pod_log_dir(),
        layout.pod_files_dir(),
        layout.images_dir(),
    ]
}

/// Remove everything the node created; see the module docs. Safe to run twice, and on a
/// machine where the agent never ran.
pub async fn cleanup_node(config: &CleanupConfig) -> Result<()> {
    let layout = Layout::new(&config.data_dir);
    let bridge = bridge_name(&config.node_name);
    if layout.root().exists() {
        remove_pods(&layout).await?;
    }
    cleanup_host(&layout, &bridge).await?;
    network::remove_blackhole_routes(&config.blackhole_routes).await?;
    for dir in node_dirs(&layout) {
        remove_dir(&dir)?;
    }
    // The pod cgroups' common parent, unless other agents' pods still use it.
    if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
        for hierarchy in hierarchies.flatten() {
            let _ = std::fs::remove_dir(hierarchy.path().join("navarch"));
        }
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/navarch");
    Ok(())
}

/// Start containerd on the data dir and remove every sandbox it has.
async fn remove_pods(layout: &Layout) -> Result<()> {
    // Returns once containerd serves (the pause image import waits for it).
    let containerd = start_containerd(&layout.data_dir).await?;
    let removed = async {
        let options = CriOptions::new(containerd.socket(), layout.pod_log_dir());
        let runtime = CriRuntime::connect(options).await?;
        if layout.cni_conf_file().exists() {
            // Without its network loaded, containerd cannot tear the pods' networks down.
            let deadline = Instant::now() + NETWORK_READY_TIMEOUT;
            while !runtime.network_ready().await? && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        runtime.remove_all_pod_sandboxes().await?;
        Ok::<_, Error>(())
    }
    .await;
    containerd.stop().await;
    removed
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            what: format!("cannot remove {}", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
