//! Files the agent keeps on the host for each pod and bind-mounts into its containers, as the
//! kubelet keeps them under `/var/lib/kubelet/pods/UID`: the managed `/etc/hosts`
//! ([`hosts_file`]) and one termination-message file per container attempt, read back when
//! the container exits ([`termination_message`]). They live in `DIR/pod-files/UID` and go
//! when the pod's worker removes its sandbox.

use std::io::{Read, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::HostAlias;

/// The kubelet reads at most this much of a termination-message file.
pub const MESSAGE_MAX_BYTES: u64 = 4096;
/// `FallbackToLogsOnError` takes at most this many lines…
pub const LOG_TAIL_LINES: usize = 80;
/// …and bytes from the end of the container's log.
pub const LOG_TAIL_BYTES: usize = 2048;
/// The cluster's DNS domain (pods' FQDNs in `/etc/hosts`).
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The per-pod directories under one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFiles {
    root: PathBuf,
}

impl PodFiles {
    pub fn new(root: impl Into<PathBuf>) -> PodFiles {
        PodFiles { root: root.into() }
    }

    pub fn pod_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join(pod_uid)
    }

    pub fn hosts_path(&self, pod_uid: &str) -> PathBuf {
        self.pod_dir(pod_uid).join("etc-hosts")
    }

    pub fn termination_path(&self, pod_uid: &str, container: &str, attempt: u32) -> PathBuf {
        self.pod_dir(pod_uid)
            .join("containers")
            .join(container)
            .join(format!("{attempt}.termination-log"))
    }

    /// Write the pod's hosts file in place (a running container's bind mount keeps seeing
    /// the same file).
    pub fn write_hosts(&self, pod_uid: &str, content: &str) -> std::io::Result<PathBuf> {
        let path = self.hosts_path(pod_uid);
        std::fs::create_dir_all(self.pod_dir(pod_uid))?;
        std::fs::write(&path, content)?;
        set_mode(&path, 0o644)?;
        Ok(path)
    }

    /// An empty termination-message file for one attempt, writable by any user the
    /// container may run as.
    pub fn create_termination_file(
        &self,
        pod_uid: &str,
        container: &str,
        attempt: u32,
    ) -> std::io::Result<PathBuf> {
        let path = self.termination_path(pod_uid, container, attempt);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, b"")?;
        set_mode(&path, 0o666)?;
        Ok(path)
    }

    /// Remove everything of the pod. A missing directory is fine.
    pub fn remove(&self, pod_uid: &str) -> std::io::Result<()> {
        match std::fs::remove_dir_all(self.pod_dir(pod_uid)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// The kubelet-managed `/etc/hosts` of a pod on the pod network: localhost entries, the
/// pod's address under its hostname (and its FQDN with a subdomain), then `hostAliases`.
pub fn hosts_file(
    pod_ip: IpAddr,
    hostname: &str,
    subdomain: Option<&str>,
    namespace: &str,
    aliases: &[HostAlias],
) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file.\n");
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    match subdomain.filter(|s| !s.is_empty()) {
        Some(subdomain) => out.push_str(&format!(
            "{pod_ip}\t{hostname}.{subdomain}.{namespace}.svc.{CLUSTER_DOMAIN}\t{hostname}\n"
        )),
        None => out.push_str(&format!("{pod_ip}\t{hostname}\n")),
    }
    out.push_str(&alias_entries(aliases));
    out
}

/// The hosts file of a `hostNetwork` pod: the node's own, then `hostAliases`.
pub fn host_network_hosts_file(node_hosts: &str, aliases: &[HostAlias]) -> String {
    let mut out = String::from("# Kubernetes-managed hosts file (host network).\n");
    out.push_str(node_hosts);
    if !node_hosts.is_empty() && !node_hosts.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&alias_entries(aliases));
    out
}

fn alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        let names = alias.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", alias.ip));
    }
    out
}

/// What an exited container reports as `terminated.message`: the runtime's message, then
/// what the container wrote to its termination-message file (first 4 KiB); with
/// `FallbackToLogsOnError`, a failed container that wrote nothing there gets the tail of its
/// log instead. Either part may be missing.
pub fn termination_message(
    runtime_message: Option<&str>,
    message_file: Option<&Path>,
    fallback_to_logs: bool,
    exit_code: i32,
    log_path: Option<&Path>,
) -> Option<String> {
    let mut from_file = message_file.map(read_head).unwrap_or_default();
    if from_file.is_empty() && fallback_to_logs && exit_code != 0 {
        from_file = log_path.map(log_tail).unwrap_or_default();
    }
    let mut message = runtime_message.unwrap_or_default().to_string();
    if !from_file.is_empty() {
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&from_file);
    }
    (!message.is_empty()).then_some(message)
}

fn read_head(path: &Path) -> String {
    let Ok(file) = std::fs::File::open(path) else {
        return String::new();
    };
    let mut bytes = Vec::new();
    let _ = file.take(MESSAGE_MAX_BYTES).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last lines of a CRI log file (`TIMESTAMP STREAM P|F MESSAGE` per line), as the
/// container wrote them: at most [`LOG_TAIL_LINES`] lines and [`LOG_TAIL_BYTES`] bytes.
pub fn log_tail(path: &Path) -> String {
    // Enough for 80 lines of the 2 KiB kept, with their prefixes.
    const READ: u64 = 64 * 1024;
    let Ok(mut file) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(READ);
    if file.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    if start > 0 && !lines.is_empty() {
        // The first line read is probably cut.
        lines.remove(0);
    }
    let first = lines.len().saturating_sub(LOG_TAIL_LINES);
    let mut out = String::new();
    for line in &lines[first..] {
        let mut parts = line.splitn(4, ' ');
        let (Some(_time), Some(_stream), Some(tag)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        out.push_str(parts.next().unwrap_or_default());
        if tag != "P" {
            out.push('\n');
        }
    }
    if out.len() > LOG_TAIL_BYTES {
        let mut cut = out.len() - LOG_TAIL_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(ip: &str, names: &[&str]) -> HostAlias {
        HostAlias {
            ip: ip.into(),
            hostnames: Some(names.iter().map(|n| n.to_string()).collect()),
        }
    }

    #[test]
    fn hosts_files_name_the_pod_its_fqdn_and_aliases() {
        let plain = hosts_file("10.42.0.5".parse().unwrap(), "web-1", None, "ns", &[]);
        assert_eq!(
            plain,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             10.42.0.5\tweb-1\n"
        );
        let full = hosts_file(
            "10.42.0.5".parse().unwrap(),
            "web-1",
            Some("web"),
            "ns",
            &[alias("1.2.3.4", &["a.example", "b.example"])],
        );
        assert!(full.contains("\n10.42.0.5\tweb-1.web.ns.svc.cluster.local\tweb-1\n"));
        assert!(
            full.ends_with("\n\n# Entries added by HostAliases.\n1.2.3.4\ta.example\tb.example\n")
        );
        let host = host_network_hosts_file("127.0.0.1 localhost", &[]);
        assert_eq!(
            host,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        );
    }

    #[test]
    fn termination_messages_come_from_the_file_or_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let files = PodFiles::new(dir.path());
        let path = files.create_termination_file("u1", "app", 0).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        let log = dir.path().join("0.log");
        std::fs::write(
            &log,
            "2026-01-01T00:00:00.1Z stdout F first\n\
             2026-01-01T00:00:00.2Z stderr P part\n\
             2026-01-01T00:00:00.3Z stderr F ial\n",
        )
        .unwrap();
        let message = |runtime, fallback, code| {
            termination_message(runtime, Some(&path), fallback, code, Some(&log))
        };
        assert_eq!(message(None, true, 0), None);
        assert_eq!(message(None, true, 1).as_deref(), Some("first\npartial\n"));
        assert_eq!(message(None, false, 1), None);
        std::fs::write(&path, "x".repeat(5000)).unwrap();
        assert_eq!(message(None, true, 1).unwrap().len(), 4096);
        std::fs::write(&path, "bye").unwrap();
        assert_eq!(message(Some("OOM"), true, 137).as_deref(), Some("OOM: bye"));
        files.remove("u1").unwrap();
        assert!(!files.pod_dir("u1").exists());
        files.remove("u1").unwrap();
    }

    #[test]
    fn log_tails_keep_the_last_lines_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        let lines: String = (0..100)
            .map(|i| format!("2026-01-01T00:00:00Z stdout F line {i}\n"))
            .collect();
        std::fs::write(&log, lines).unwrap();
        let tail = log_tail(&log);
        assert!(
            tail.starts_with("line 20\n") && tail.ends_with("line 99\n"),
            "{tail}"
        );
        let long: String = (0..10)
            .map(|_| format!("2026-01-01T00:00:00Z stdout F {}\n", "y".repeat(500)))
            .collect();
        std::fs::write(&log, long).unwrap();
        assert_eq!(log_tail(&log).len(), LOG_TAIL_BYTES);
    }
}
