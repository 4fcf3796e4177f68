//! Benchmark: real containers under `navarch up` (containerd). With the busybox image
//! imported beforehand, 50 pods are created at once (the scheduler binds them); figures are
//! each pod's seconds from its create to the watch seeing it Running (p50/p99) and the total
//! from the first create to the last Running; the resident memory of the `navarch up`
//! process (server and agent) and of its containerd, and the proportional memory of the pods'
//! shims, idle and with the pods running; then the pods are deleted with a 1 s grace period and the seconds until they
//! are gone from the API and until containerd runs no task are reported. Printed and written
//! to `target/bench-results/containers.json`.
//!
//! `cargo bench -p navarch-e2e --bench containers` as root (`NAVARCH_BIN=target/release/navarch`
//! for release figures; `CONTAINER_PODS` changes the count).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use navarch_e2e::up::{UpCluster, BUSYBOX};
use navarch_e2e::{navarch_bin, wait_for};
use serde_json::json;

use common::{percentile, pss_bytes, rss_bytes, write_results};

const BOUND: Duration = Duration::from_secs(300);
/// How long the processes are left alone before their memory is read.
const SETTLE: Duration = Duration::from_secs(3);

/// The shims serving the containerd at `socket`: their count and summed PSS.
fn shims(socket: &std::path::Path) -> (usize, u64) {
    let socket = socket.to_string_lossy().into_owned();
    let mut count = 0;
    let mut rss = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        if cmdline.contains("containerd-shim") && cmdline.contains(socket.as_str()) {
            count += 1;
            rss += pss_bytes(pid).unwrap_or(0);
        }
    }
    (count, rss)
}

struct Memory {
    navarch: u64,
    containerd: u64,
    shims: usize,
    shims_pss: u64,
}

fn memory(cluster: &UpCluster) -> Result<Memory> {
    let (shims, shims_pss) = shims(&cluster.socket());
    Ok(Memory {
        navarch: rss_bytes(cluster.server().pid())?,
        containerd: rss_bytes(cluster.containerd_pid()?)?,
        shims,
        shims_pss,
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

fn print_memory(when: &str, m: &Memory) {
    println!(
        "{when}: navarch up RSS {:.1} MiB, containerd RSS {:.1} MiB, {} shims PSS {:.1} MiB",
        mib(m.navarch),
        mib(m.containerd),
        m.shims,
        mib(m.shims_pss)
    );
}

fn memory_json(m: &Memory) -> serde_json::Value {
    json!({
        "navarch_up_rss_bytes": m.navarch,
        "containerd_rss_bytes": m.containerd,
        "shims": m.shims,
        "shims_pss_bytes": m.shims_pss,
    })
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": "containers"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "imagePullPolicy": "Never",
                "command": ["sleep", "3600"],
            }],
        },
    }))?)
}

async fn client(cluster: &UpCluster) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(cluster.kubeconfig())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// Create `count` pods at once; return each one's seconds from create to Running and the
/// seconds from the first create to the last Running.
async fn create_pods(client: &Client, count: usize) -> Result<(Vec<f64>, f64)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let running = running.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let config = watcher::Config::default().labels("bench=containers");
            let mut events = std::pin::pin!(watcher::watcher(api, config));
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => pod,
                    _ => continue,
                };
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
                if phase == Some("Running") {
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
    // The watch is established before the first create.
    wait_for_async(Duration::from_secs(10), || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels("bench=containers"))
                .await
                .is_ok()
        }
    })
    .await?;

    let started = Instant::now();
    let creates = (0..count).map(|i| {
        let api = api.clone();
        async move {
            let name = format!("bench-{i:03}");
            let at = Instant::now();
            api.create(&PostParams::default(), &pod(&name)?).await?;
            Ok::<_, anyhow::Error>((name, at))
        }
    });
    let created: HashMap<String, Instant> = futures::future::try_join_all(creates)
        .await?
        .into_iter()
        .collect();
    wait_for_async(BOUND, || {
        let seen = running.lock().unwrap().len();
        async move { seen >= count }
    })
    .await
    .context("pods did not all run")?;
    watch.abort();
    let running = running.lock().unwrap().clone();
    let latencies = created
        .iter()
        .map(|(name, at)| running[name].duration_since(*at).as_secs_f64())
        .collect();
    let last = running.values().max().copied().unwrap_or(started);
    Ok((latencies, last.duration_since(started).as_secs_f64()))
}

/// Delete every benchmark pod with a 1 s grace period; seconds until none is left in the API.
async fn delete_pods(client: &Client) -> Result<f64> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    let params = DeleteParams {
        grace_period_seconds: Some(1),
        ..DeleteParams::default()
    };
    api.delete_collection(&params, &ListParams::default().labels("bench=containers"))
        .await?;
    wait_for_async(BOUND, || {
        let api = api.clone();
        async move {
            api.list(&ListParams::default().labels("bench=containers"))
                .await
                .is_ok_and(|l| l.items.is_empty())
        }
    })
    .await
    .context("pods were not all deleted")?;
    Ok(started.elapsed().as_secs_f64())
}

async fn wait_for_async<F, Fut>(timeout: Duration, mut done: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !done().await {
        ensure!(Instant::now() < deadline, "timed out after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn main() -> Result<()> {
    let count: usize = std::env::var("CONTAINER_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let binary = navarch_bin();
    println!(
        "containers benchmark: {count} busybox pods under navarch up, {}",
        binary.display()
    );

    let cluster = UpCluster::start("navarch-bench-ctr-")?;
    let ready = cluster.server().time_to_kubeconfig.as_secs_f64();
    println!("navarch up ready in {ready:.2} s");
    cluster.import_busybox()?;
    std::thread::sleep(SETTLE);
    let idle = memory(&cluster)?;
    print_memory("idle", &idle);

    let runtime = tokio::runtime::Runtime::new()?;
    let client = runtime.block_on(client(&cluster))?;
    let (latencies, total) = runtime.block_on(create_pods(&client, count))?;
    let mut sorted = latencies;
    sorted.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&sorted, 50.0), percentile(&sorted, 99.0));
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    println!(
        "create -> Running: {count} pods, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms, all in {total:.2} s",
        p50 * 1000.0,
        p99 * 1000.0,
        max * 1000.0,
    );
    std::thread::sleep(SETTLE);
    let loaded = memory(&cluster)?;
    print_memory(&format!("with {count} pods"), &loaded);

    let deleted = runtime.block_on(delete_pods(&client))?;
    let deleted_started = Instant::now();
    wait_for(BOUND, "containerd to run no task", || {
        let tasks = cluster.ctr(&["tasks", "ls", "-q"]).ok()?;
        tasks.trim().is_empty().then_some(())
    })?;
    let tasks_gone = deleted + deleted_started.elapsed().as_secs_f64();
    println!(
        "delete (grace 1 s): gone from the API in {deleted:.2} s, no task left after {tasks_gone:.2} s"
    );

    write_results(
        "containers",
        &json!({
            "binary": binary.display().to_string(),
            "pods": count,
            "up_ready_seconds": ready,
            "create_to_running_ms": {"p50": p50 * 1000.0, "p99": p99 * 1000.0, "max": max * 1000.0},
            "create_to_all_running_seconds": total,
            "idle": memory_json(&idle),
            "with_pods": memory_json(&loaded),
            "delete_grace_1s_to_gone_seconds": deleted,
            "delete_grace_1s_to_no_task_seconds": tasks_gone,
        }),
    )?;
    drop(cluster);
    Ok(())
}
