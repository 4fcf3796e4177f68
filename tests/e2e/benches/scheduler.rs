//! Benchmark: the scheduler on simulated nodes. Pods without a node are created as fast as
//! 16 clients manage; a watch records when each gets `spec.nodeName`. Figures per scenario:
//! pods/s from the first create to the last bind, and create → bound p50/p99.
//!
//! Scenarios: 3,000 pods onto 100 nodes and 10,000 pods onto 5,000 nodes, each plain and
//! with required pod anti-affinity (pods of one group never share a node: 30 groups of 100
//! on 100 nodes, 10 groups of 1,000 on 5,000 nodes). Printed and written to
//! `target/bench-results/scheduler.json`.
//!
//! `cargo bench -p navarch-e2e --bench scheduler` (`NAVARCH_BIN=target/release/navarch` for
//! release figures; `SCHED_SMALL_ONLY=1` skips the 5,000-node runs, `SCHED_LARGE_ONLY=1` the
//! 100-node ones, `SCHED_ANTI_ONLY=1` the plain scenarios).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher::{self, Event};
use kube::Client;
use serde_json::{json, Value};

use common::{percentile, write_results, Cluster};

const CREATORS: usize = 16;

fn pod(i: usize, groups: Option<usize>) -> Pod {
    let mut spec = json!({
        "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
    });
    let mut labels = json!({"app": "bench"});
    if let Some(groups) = groups {
        let group = format!("g{}", i % groups);
        labels["group"] = json!(group);
        spec["affinity"] = json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"group": group}},
                "topologyKey": "kubernetes.io/hostname",
            }]
        }});
    }
    serde_json::from_value(json!({
        "metadata": {"name": format!("p-{i:05}"), "labels": labels},
        "spec": spec,
    }))
    .expect("valid pod")
}

/// Create `count` pods in `ns`; returns (pods/s first create → last bound, p50 ms, p99 ms).
async fn run(client: &Client, ns: &str, count: usize, groups: Option<usize>) -> Result<Value> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await?;
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let bound = bound.clone();
        let api = api.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher::watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let pod = match event {
                    Ok(Event::Apply(pod)) | Ok(Event::InitApply(pod)) => pod,
                    _ => continue,
                };
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some()
                {
                    let name = pod.metadata.name.unwrap_or_default();
                    bound
                        .lock()
                        .unwrap()
                        .entry(name)
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            let created = created.clone();
            async move {
                let p = pod(i, groups);
                let t = Instant::now();
                api.create(&PostParams::default(), &p).await?;
                created
                    .lock()
                    .unwrap()
                    .insert(p.metadata.name.unwrap_or_default(), t);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(CREATORS)
        .try_collect::<Vec<()>>()
        .await?;
    let created_all = first.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while bound.lock().unwrap().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    let bound = bound.lock().unwrap();
    let created = created.lock().unwrap();
    ensure!(
        bound.len() == count,
        "only {} of {count} pods were bound",
        bound.len()
    );
    let last = bound.values().max().copied().unwrap_or(first);
    let span = last.duration_since(first).as_secs_f64();
    let mut latencies: Vec<f64> = created
        .iter()
        .filter_map(|(n, t)| {
            bound
                .get(n)
                .map(|b| b.saturating_duration_since(*t).as_secs_f64())
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    let rate = count as f64 / span;
    println!(
        "  {ns}: {count} pods, created in {:.1}s, all bound after {span:.1}s: {rate:.0} pods/s, create->bound p50 {:.0} ms, p99 {:.0} ms",
        created_all.as_secs_f64(),
        p50 * 1000.0,
        p99 * 1000.0
    );
    Ok(json!({
        "pods": count,
        "seconds_first_create_to_last_bound": span,
        "pods_per_second": rate,
        "create_to_bound_ms": {"p50": p50 * 1000.0, "p99": p99 * 1000.0},
    }))
}

fn scenario(nodes: usize, pods: usize, groups: usize) -> Result<Value> {
    let cluster = Cluster::start(nodes, &[])?;
    println!(
        "{nodes} simulated nodes registered in {:.1}s",
        cluster.registration.as_secs_f64()
    );
    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(async {
        let client = cluster.client().await?;
        let plain = if std::env::var_os("SCHED_ANTI_ONLY").is_none() {
            run(&client, "plain", pods, None).await?
        } else {
            Value::Null
        };
        let anti = run(&client, "anti-affinity", pods, Some(groups)).await?;
        anyhow::Ok(json!({"nodes": nodes, "plain": plain, "anti_affinity": anti}))
    })?;
    drop(runtime);
    cluster.stop()?;
    Ok(results)
}

fn main() -> Result<()> {
    println!(
        "scheduler benchmark, {}",
        navarch_e2e::navarch_bin().display()
    );
    let mut results = Vec::new();
    if std::env::var_os("SCHED_LARGE_ONLY").is_none() {
        results.push(scenario(100, 3000, 30)?);
    }
    if std::env::var_os("SCHED_SMALL_ONLY").is_none() {
        results.push(scenario(5000, 10_000, 10)?);
    }
    write_results(
        "scheduler",
        &json!({"binary": navarch_e2e::navarch_bin().display().to_string(), "runs": results}),
    )
}
