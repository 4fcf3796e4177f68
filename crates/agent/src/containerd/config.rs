//! The files the agent writes for containerd, as pure functions of the settings: the
//! containerd configuration (version 2 TOML), the CNI network list and the bridge's name.

use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use sha2::{Digest, Sha256};

/// The CNI network's name (`name` in the conflist; containerd logs it).
pub const CNI_NETWORK: &str = "navarch";
/// Where Debian's containernetworking-plugins installs the plugins.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The CRI namespace inside containerd: images must be imported there to be seen by CRI.
pub const CRI_NAMESPACE: &str = "k8s.io";

/// How runc places containers in cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    /// Directories under `/sys/fs/cgroup` written directly (cgroup v1, or v2 without systemd).
    Cgroupfs,
    /// Transient systemd units (cgroup v2 hosts that boot with systemd).
    Systemd,
}

impl CgroupDriver {
    /// The driver a kubelet would pick on this host: systemd only on a unified (v2) hierarchy
    /// managed by a running systemd.
    pub fn detect() -> CgroupDriver {
        let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let systemd = Path::new("/run/systemd/system").is_dir();
        if unified && systemd {
            CgroupDriver::Systemd
        } else {
            CgroupDriver::Cgroupfs
        }
    }
}

/// Where containerd keeps everything, all under the agent's data dir so that one machine can
/// run several agents (tests do) and `rm -rf DATA_DIR` after a cleanup leaves nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub data_dir: PathBuf,
}

impl Layout {
    pub fn new(data_dir: impl Into<PathBuf>) -> Layout {
        Layout {
            data_dir: data_dir.into(),
        }
    }
    fn dir(&self) -> PathBuf {
        self.data_dir.join("containerd")
    }
    /// containerd's gRPC socket (CRI and its own API).
    pub fn socket(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }
    pub fn config_file(&self) -> PathBuf {
        self.dir().join("config.toml")
    }
    pub fn root(&self) -> PathBuf {
        self.dir().join("root")
    }
    /// Runtime state: task bundles, rootfs mounts, sandbox `/dev/shm` mounts.
    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }
    /// The running containerd's pid, to find one orphaned by an agent that was killed.
    pub fn pid_file(&self) -> PathBuf {
        self.dir().join("containerd.pid")
    }
    pub fn log_file(&self) -> PathBuf {
        self.dir().join("containerd.log")
    }
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.data_dir.join("cni").join("net.d")
    }
    pub fn cni_conf_file(&self) -> PathBuf {
        self.cni_conf_dir().join("10-navarch.conflist")
    }
    /// host-local IPAM's leases (by default global in `/var/lib/cni/networks`).
    pub fn ipam_dir(&self) -> PathBuf {
        self.data_dir.join("cni").join("ipam")
    }
    /// Container logs, one directory per pod (CRI `log_directory`).
    pub fn pod_log_dir(&self) -> PathBuf {
        self.data_dir.join("pods")
    }
    /// The pods' `/etc/hosts` and termination-message files, a directory per pod UID.
    pub fn pod_files_dir(&self) -> PathBuf {
        self.data_dir.join("pod-files")
    }
    /// Where the agent writes archives it imports (the pause image).
    pub fn images_dir(&self) -> PathBuf {
        self.data_dir.join("images")
    }
}

/// Everything the containerd configuration depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    pub layout: Layout,
    pub cgroup_driver: CgroupDriver,
    /// The pod sandbox image (our own pause image, imported before pods run).
    pub sandbox_image: String,
    pub runc: PathBuf,
    /// Keep containers' `oom_score_adj` at or above containerd's own, for hosts where it
    /// cannot be lowered (no `CAP_SYS_RESOURCE`, as in some VMs and containers); without it
    /// runc fails to start the pause container (`-998`).
    pub restrict_oom_score_adj: bool,
}

/// `CAP_SYS_RESOURCE`, needed to lower an `oom_score_adj`.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether this process may lower `oom_score_adj` (has `CAP_SYS_RESOURCE`).
pub fn can_lower_oom_score_adj() -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Plugins this agent never uses; skipping them saves startup time and log noise.
const DISABLED_PLUGINS: &[&str] = &[
    "io.containerd.snapshotter.v1.aufs",
    "io.containerd.snapshotter.v1.btrfs",
    "io.containerd.snapshotter.v1.devmapper",
    "io.containerd.snapshotter.v1.zfs",
    "io.containerd.tracing.processor.v1.otlp",
    "io.containerd.internal.v1.tracing",
];

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialise")
}

fn toml_path(path: &Path) -> String {
    toml_string(&path.to_string_lossy())
}

/// containerd's configuration (schema version 2, as containerd 1.6 and 1.7 read it).
///
/// The CRI streaming server listens on a random loopback port (containerd's exec/attach
/// streams are not used by the agent, which runs its own), and no metrics or debug socket is
/// opened.
pub fn containerd_toml(config: &ContainerdConfig) -> String {
    let layout = &config.layout;
    let disabled = DISABLED_PLUGINS
        .iter()
        .map(|p| toml_string(p))
        .collect::<Vec<_>>()
        .join(", ");
    let systemd = config.cgroup_driver == CgroupDriver::Systemd;
    format!(
        r#"# Written by the navarch agent at every start; edits are lost.
version = 2
root = {root}
state = {state}
disabled_plugins = [{disabled}]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = {opt}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {sandbox_image}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = {restrict_oom}
  max_container_log_line_size = 16384

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
  disable_snapshot_annotations = true

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = {runc}
  SystemdCgroup = {systemd}

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = {cni_bin}
  conf_dir = {cni_conf}
  max_conf_num = 1
"#,
        root = toml_path(&layout.root()),
        state = toml_path(&layout.state()),
        socket = toml_path(&layout.socket()),
        ttrpc = toml_string(&format!("{}.ttrpc", layout.socket().display())),
        opt = toml_path(&layout.root().join("opt")),
        sandbox_image = toml_string(&config.sandbox_image),
        runc = toml_path(&config.runc),
        restrict_oom = config.restrict_oom_score_adj,
        cni_bin = toml_string(CNI_BIN_DIR),
        cni_conf = toml_path(&layout.cni_conf_dir()),
    )
}

/// The node's bridge: `nv` and 8 hex digits of the node name's hash, so that several nodes on
/// one machine (tests) get distinct bridges within the 15 bytes an interface name may have.
pub fn bridge_name(node_name: &str) -> String {
    let digest = Sha256::digest(node_name.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("nv{hex}")
}

/// The CNI network list: a bridge whose address is the pods' gateway, host-local addresses
/// from the node's podCIDR (leases kept under the data dir), and portmap for hostPorts.
/// containerd adds the loopback interface itself (with the `loopback` plugin).
///
/// `ipMasq` is off: pod traffic is meant to stay on this machine (pods, the host, services),
/// and the blackhole routes ([`super::network`]) drop what would leave it; masquerading would
/// only hide the pods' addresses from the host.
pub fn cni_conflist(bridge: &str, pod_cidr: Ipv4Net, ipam_dir: &Path) -> String {
    let gateway = pod_cidr
        .hosts()
        .next()
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let list = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir.to_string_lossy(),
                    "ranges": [[{ "subnet": pod_cidr.trunc().to_string(), "gateway": gateway }]],
                    "routes": [{ "dst": "0.0.0.0/0" }],
                },
            },
            {
                "type": "portmap",
                "capabilities": { "portMappings": true },
            },
        ],
    });
    serde_json::to_string_pretty(&list).expect("JSON serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ContainerdConfig {
        ContainerdConfig {
            layout: Layout::new("/var/lib/navarch"),
            cgroup_driver: CgroupDriver::Cgroupfs,
            sandbox_image: "navarch.local/pause:1".to_string(),
            runc: PathBuf::from("/usr/sbin/runc"),
            restrict_oom_score_adj: false,
        }
    }

    #[test]
    fn containerd_config_keeps_everything_under_the_data_dir() {
        let text = containerd_toml(&config());
        assert!(text.contains(r#"root = "/var/lib/navarch/containerd/root""#));
        assert!(text.contains(r#"state = "/var/lib/navarch/containerd/state""#));
        assert!(text.contains(r#"address = "/var/lib/navarch/containerd/containerd.sock""#));
        assert!(text.contains(r#"path = "/var/lib/navarch/containerd/root/opt""#));
        assert!(text.contains(r#"conf_dir = "/var/lib/navarch/cni/net.d""#));
        assert!(text.contains(r#"sandbox_image = "navarch.local/pause:1""#));
        assert!(text.contains("SystemdCgroup = false"));
        assert!(text.contains(r#"snapshotter = "overlayfs""#));
    }

    #[test]
    fn systemd_cgroups_only_with_the_systemd_driver() {
        let mut config = config();
        config.cgroup_driver = CgroupDriver::Systemd;
        assert!(containerd_toml(&config).contains("SystemdCgroup = true"));
    }

    #[test]
    fn paths_with_quotes_stay_inside_their_string() {
        let mut config = config();
        config.layout = Layout::new("/tmp/a \"b\"");
        let text = containerd_toml(&config);
        assert!(text.contains(r#"root = "/tmp/a \"b\"/containerd/root""#));
    }

    #[test]
    fn bridge_names_fit_an_interface_name_and_differ_per_node() {
        let a = bridge_name("node-a");
        let b = bridge_name("node-b");
        assert_ne!(a, b);
        assert!(a.len() <= 15 && a.starts_with("nv"));
        assert_eq!(a, bridge_name("node-a"));
    }

    #[test]
    fn conflist_uses_the_pod_cidr_with_the_first_address_as_gateway() {
        let cidr: Ipv4Net = "10.42.7.0/24".parse().unwrap();
        let text = cni_conflist("nv01020304", cidr, Path::new("/d/cni/ipam"));
        let list: serde_json::Value = serde_json::from_str(&text).unwrap();
        let bridge = &list["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], "nv01020304");
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.42.7.0/24");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.42.7.1");
        assert_eq!(bridge["ipam"]["dataDir"], "/d/cni/ipam");
        assert_eq!(list["plugins"][1]["type"], "portmap");
    }
}
