//! What the cluster benchmarks share: a server with simulated nodes, a client, percentiles,
//! process memory from /proc, and writing results.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Result;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use navarch_e2e::{navarch_bin, Background, Server};

/// A server (controllers and scheduler in it) and one `navarch simulate` process.
pub struct Cluster {
    pub server: Server,
    pub simulate: Background,
    pub registration: Duration,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Start a server and `nodes` simulated nodes (a wide pod network, pods starting after
    /// 200 ms); returns once every node is ready.
    pub fn start(nodes: usize, server_flags: &[&str]) -> Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("navarch-bench-")
            .tempdir()?;
        let mut flags = vec![
            "--bind-address",
            "127.0.0.1",
            "--cluster-cidr",
            "10.64.0.0/10",
        ];
        flags.extend_from_slice(server_flags);
        let server = Server::start(&dir.path().join("data"), &flags)?;
        let data = server.data_dir().to_path_buf();
        let token = std::fs::read_to_string(data.join("node-token"))?;
        let mut command = Command::new(navarch_bin());
        command
            .arg("simulate")
            .args(["--server", &format!("https://127.0.0.1:{}", server.port())])
            .arg("--ca-file")
            .arg(data.join("tls/ca.crt"))
            .args(["--nodes", &nodes.to_string()])
            .env("NAVARCH_TOKEN", token.trim())
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null());
        let started = Instant::now();
        let mut simulate = Background::spawn(command)?;
        simulate.wait_for_line(Duration::from_secs(600), "registration", |l| {
            l.contains(&format!("{nodes} nodes ready"))
        })?;
        Ok(Cluster {
            server,
            simulate,
            registration: started.elapsed(),
            _dir: dir,
        })
    }

    pub async fn client(&self) -> Result<Client> {
        let kubeconfig = Kubeconfig::read_from(self.server.kubeconfig())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        Ok(Client::try_from(config)?)
    }

    /// Stop the simulated nodes (SIGINT) and the server.
    pub fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-INT", &self.simulate.pid().to_string()])
            .status();
        let _ = self.simulate.wait(Duration::from_secs(30));
        self.server.stop()?;
        Ok(())
    }
}

/// The `p`-th percentile of sorted values (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Write `target/bench-results/<name>.json`.
pub fn write_results(name: &str, results: &serde_json::Value) -> Result<()> {
    let out_dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-results");
    std::fs::create_dir_all(&out_dir)?;
    let out = out_dir.join(format!("{name}.json"));
    std::fs::write(&out, serde_json::to_string_pretty(results)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// A `KEY:   N kB` figure of a /proc file of process `pid`, in bytes.
fn proc_kib_field(pid: u32, file: &str, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}"))?;
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {key} in /proc/{pid}/{file}"))?;
    Ok(kib * 1024)
}

/// Resident set size of a process.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    proc_kib_field(pid, "status", "VmRSS:")
}

/// Proportional set size of a process (shared pages split among their users): what many
/// copies of one program cost together, which summed RSS overstates.
pub fn pss_bytes(pid: u32) -> Result<u64> {
    proc_kib_field(pid, "smaps_rollup", "Pss:")
}
