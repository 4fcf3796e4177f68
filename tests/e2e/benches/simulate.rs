//! Benchmark: `navarch simulate` at 1,000 nodes against `navarch server`.
//!
//! Figures: time to register every node, RSS and idle CPU of the simulate process, then pods
//! created already bound (spec.nodeName) at a steady rate and the time from each create to
//! the watch seeing it Running and Ready (p50/p99), and RSS/idle CPU again with the pods
//! running. Printed and written to `target/bench-results/simulate.json`.
//!
//! `cargo bench -p navarch-e2e --bench simulate`; it runs the `navarch` binary the e2e
//! harness finds (`NAVARCH_BIN`, e.g. `target/release/navarch`, for release figures).
//! `SIM_NODES`, `SIM_PODS` and `SIM_RATE` change the scale (defaults 1000, 2000, 100/s).

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use navarch_e2e::{navarch_bin, Background, Server};

mod common;

use common::{percentile, rss_bytes, write_results};
use serde_json::json;

/// Creates in flight at most.
const MAX_IN_FLIGHT: usize = 64;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let hz = 100; // USER_HZ on Linux
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// The share of one core a process used over `window`.
fn idle_cpu(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_time(pid)?;
    let t = Instant::now();
    std::thread::sleep(window);
    let used = cpu_time(pid)? - before;
    Ok(used.as_secs_f64() / t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let nodes = env_or("SIM_NODES", 1000) as usize;
    let pods = env_or("SIM_PODS", 2000) as usize;
    let rate = env_or("SIM_RATE", 100).max(1);
    let binary = navarch_bin();
    println!(
        "simulate benchmark: {nodes} nodes, {pods} pods at {rate}/s, {}",
        binary.display()
    );

    let dir = tempfile::Builder::new()
        .prefix("navarch-bench-sim-")
        .tempdir()?;
    // A wide pod network: a /24 for each of thousands of nodes.
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--bind-address",
            "127.0.0.1",
            "--cluster-cidr",
            "10.64.0.0/10",
        ],
    )?;
    let data = server.data_dir().to_path_buf();
    let token = std::fs::read_to_string(data.join("node-token"))?;
    let mut command = Command::new(&binary);
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
    let mut sim = Background::spawn(command)?;
    sim.wait_for_line(Duration::from_secs(600), "registration", |l| {
        l.contains(&format!("{nodes} nodes ready"))
    })?;
    let registration = started.elapsed();
    println!(
        "registration: {nodes} nodes in {:.2}s",
        registration.as_secs_f64()
    );

    // Let the first Lease renewals spread out, then measure at rest.
    std::thread::sleep(Duration::from_secs(12));
    let rss_idle = rss_bytes(sim.pid())?;
    let cpu_idle = idle_cpu(sim.pid(), Duration::from_secs(20))?;
    println!(
        "idle: RSS {:.1} MiB, CPU {:.1}% of a core",
        rss_idle as f64 / 1048576.0,
        cpu_idle * 100.0
    );

    let runtime = tokio::runtime::Runtime::new()?;
    let (latencies, achieved) = runtime.block_on(create_pods(&server, nodes, pods, rate))?;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    println!(
        "create -> Running+Ready: {} pods, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        sorted.len(),
        p50 * 1000.0,
        p99 * 1000.0,
        max * 1000.0
    );

    std::thread::sleep(Duration::from_secs(5));
    let rss_pods = rss_bytes(sim.pid())?;
    let cpu_pods = idle_cpu(sim.pid(), Duration::from_secs(20))?;
    println!(
        "with {pods} pods: RSS {:.1} MiB, idle CPU {:.1}% of a core",
        rss_pods as f64 / 1048576.0,
        cpu_pods * 100.0
    );

    let results = json!({
        "binary": binary.display().to_string(),
        "nodes": nodes,
        "registration_seconds": registration.as_secs_f64(),
        "idle_rss_bytes": rss_idle,
        "idle_cpu_cores": cpu_idle,
        "pods": pods,
        "pod_create_rate_per_second": rate,
        "achieved_create_rate_per_second": achieved,
        "create_to_running_ms": {"p50": p50 * 1000.0, "p99": p99 * 1000.0, "max": max * 1000.0},
        "with_pods_rss_bytes": rss_pods,
        "with_pods_idle_cpu_cores": cpu_pods,
        "pod_sandbox_startup_ms": 200,
    });
    write_results("simulate", &results)?;

    let _ = Command::new("kill")
        .args(["-INT", &sim.pid().to_string()])
        .status();
    let _ = sim.wait(Duration::from_secs(30));
    server.stop()?;
    Ok(())
}

/// Create `count` pods bound round-robin to the nodes at `rate` per second; return each one's
/// seconds from create to Running with Ready=True as seen by a watch.
async fn create_pods(
    server: &Server,
    nodes: usize,
    count: usize,
    rate: u64,
) -> Result<(Vec<f64>, f64)> {
    let kubeconfig = Kubeconfig::read_from(server.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");

    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let running = running.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => pod,
                    _ => continue,
                };
                let status = pod.status.unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                if status.phase.as_deref() == Some("Running") && ready {
                    let name = pod.metadata.name.unwrap_or_default();
                    running
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;

    let width = (nodes - 1).to_string().len();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let mut ticks = tokio::time::interval(interval);
    // At most this many creates in flight (each may hold a connection): a server that
    // cannot keep up lowers the rate instead of drowning in connections.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let started = Instant::now();
    let mut creates = Vec::new();
    for i in 0..count {
        ticks.tick().await;
        let permit = in_flight.clone().acquire_owned().await?;
        let name = format!("bench-{i:05}");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {
                "nodeName": format!("sim-{:0width$}", i % nodes),
                "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}],
            },
        }))?;
        let api = api.clone();
        let created = created.clone();
        creates.push(tokio::spawn(async move {
            let t = Instant::now();
            let result = api.create(&PostParams::default(), &pod).await;
            created.lock().unwrap().insert(name, t);
            drop(permit);
            result.map(|_| ())
        }));
    }
    for create in creates {
        create.await??;
    }
    let achieved = count as f64 / started.elapsed().as_secs_f64();
    println!("created {count} pods at {achieved:.0}/s");
    let deadline = Instant::now() + Duration::from_secs(120);
    while running.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    watch.abort();
    let missing: Vec<String> = {
        let running = running.lock().unwrap();
        let created = created.lock().unwrap();
        created
            .keys()
            .filter(|n| !running.contains_key(*n))
            .take(5)
            .cloned()
            .collect()
    };
    for name in &missing {
        // What the API says of a pod the watch never saw Running and Ready.
        match api.get(name).await {
            Ok(pod) => eprintln!(
                "not running: {name} on {:?}: {}",
                pod.spec.and_then(|s| s.node_name),
                serde_json::to_string(&pod.status).unwrap_or_default()
            ),
            Err(e) => eprintln!("not running: {name}: {e}"),
        }
    }
    let running = running.lock().unwrap();
    let created = created.lock().unwrap();
    ensure!(
        running.len() == count,
        "only {} of {count} pods became Running and Ready",
        running.len()
    );
    let latencies = created
        .iter()
        .filter_map(|(name, t)| {
            running
                .get(name)
                .map(|r| r.saturating_duration_since(*t).as_secs_f64())
        })
        .collect();
    Ok((latencies, achieved))
}
