//! containerd, managed by the agent: the configuration and CNI network it writes
//! ([`config`]), the supervised child process ([`supervisor::Containerd`]), images imported
//! without a registry ([`images`]) and the host routes around the pod network ([`network`]).
//!
//! [`run_containerd_node`] puts it all together for one node. Piece by piece: start at
//! [`supervisor::Containerd::start`]; then [`images::import_pause_image`], and
//! [`write_cni_config`] once the node's podCIDR is known. The CRI client that drives the
//! running containerd is [`crate::runtime::cri`].

pub mod cleanup;
pub mod config;
pub mod images;
pub mod network;
pub mod node;
pub mod oci;
pub mod supervisor;

use ipnet::Ipv4Net;

pub use config::{CgroupDriver, ContainerdConfig, Layout};
pub use images::{import_image, import_pause_image, PAUSE_IMAGE};
pub use node::{run_containerd_node, start_containerd, ContainerdNodeConfig};
pub use supervisor::Containerd;

use crate::error::{Error, Result};

/// Write the node's CNI network list (bridge `bridge`, addresses from `pod_cidr`). containerd
/// watches the directory and loads it without a restart.
pub fn write_cni_config(layout: &Layout, bridge: &str, pod_cidr: Ipv4Net) -> Result<()> {
    let dir = layout.cni_conf_dir();
    std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
        what: format!("cannot create {}", dir.display()),
        source,
    })?;
    let file = layout.cni_conf_file();
    // Written aside and renamed, so containerd never loads half a file.
    let partial = dir.join(".10-navarch.conflist.tmp");
    let text = config::cni_conflist(bridge, pod_cidr, &layout.ipam_dir());
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, &file))
        .map_err(|source| Error::Io {
            what: format!("cannot write {}", file.display()),
            source,
        })
}

/// Mount points under `dir`, deepest first (from `/proc/self/mountinfo`).
pub fn mounts_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut mounts: Vec<std::path::PathBuf> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        // mountinfo escapes spaces and other specials as octal.
        .map(|point| std::path::PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mounts.dedup();
    mounts
}

/// What is left on the host after containerd has stopped and the pods are gone: mounts
/// under the data dir (a containerd that was killed leaves rootfs and shm mounts), the
/// node's bridge and its egress filter table. Part of a node's cleanup; safe to run twice.
pub async fn cleanup_host(layout: &Layout, bridge: &str) -> Result<()> {
    for mount in mounts_under(&layout.data_dir) {
        let output = tokio::process::Command::new("umount")
            .arg("--lazy")
            .arg(&mount)
            .output()
            .await
            .map_err(|e| Error::Command {
                command: "umount".to_string(),
                message: e.to_string(),
            })?;
        if !output.status.success() {
            tracing::warn!(
                mount = %mount.display(),
                error = %String::from_utf8_lossy(&output.stderr).trim(),
                "cannot unmount"
            );
        }
    }
    network::remove_bridge(bridge).await?;
    network::remove_pod_egress_filter(bridge).await
}
