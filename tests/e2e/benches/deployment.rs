//! Benchmark: the controllers on 100 simulated nodes. A Deployment of 3,000 replicas:
//! seconds from its create until all pods exist, all are bound, all are Running, and the
//! Deployment is Available (condition) and complete (3,000 available). Then a Deployment of
//! 1,000 replicas gets a new image: seconds until the rolling update is complete. Printed
//! and written to `target/bench-results/deployment.json`.
//!
//! `cargo bench -p navarch-e2e --bench deployment` (`NAVARCH_BIN=target/release/navarch`
//! for release figures; `DEPLOY_REPLICAS` and `ROLL_REPLICAS` change the sizes).

mod common;

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

use common::{write_results, Cluster};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn deployment(name: &str, replicas: usize) -> Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
            },
        },
    }))?)
}

struct Counts {
    exist: usize,
    bound: usize,
    running: usize,
}

async fn pod_counts(client: &Client, app: &str) -> Result<Counts> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let live: Vec<&Pod> = list
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    Ok(Counts {
        exist: live.len(),
        bound: live
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some())
            .count(),
        running: live
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count(),
    })
}

fn available_condition(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Available" && c.status == "True")
}

fn complete(d: &Deployment, replicas: usize) -> bool {
    let Some(s) = &d.status else { return false };
    let n = replicas as i32;
    s.observed_generation == d.metadata.generation
        && s.updated_replicas == Some(n)
        && s.available_replicas == Some(n)
        && s.replicas == Some(n)
}

async fn create_and_measure(client: &Client, replicas: usize) -> Result<Value> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let start = Instant::now();
    api.create(&PostParams::default(), &deployment("big", replicas)?)
        .await?;
    let (mut exist, mut bound, mut running, mut available, mut done) =
        (None, None, None, None, None);
    let deadline = start + Duration::from_secs(900);
    while done.is_none() {
        if Instant::now() > deadline {
            bail!("the deployment did not complete in 900 s");
        }
        let counts = pod_counts(client, "big").await?;
        let at = start.elapsed().as_secs_f64();
        if exist.is_none() && counts.exist >= replicas {
            exist = Some(at);
        }
        if bound.is_none() && counts.bound >= replicas {
            bound = Some(at);
        }
        if running.is_none() && counts.running >= replicas {
            running = Some(at);
        }
        let d = api.get("big").await?;
        if available.is_none() && available_condition(&d) {
            available = Some(at);
        }
        if complete(&d, replicas) {
            done = Some(at);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let figures = json!({
        "replicas": replicas,
        "seconds_until_all_pods_exist": exist,
        "seconds_until_all_bound": bound,
        "seconds_until_all_running": running,
        "seconds_until_available_condition": available,
        "seconds_until_all_available": done,
    });
    println!("create deployment of {replicas}: {figures}");
    Ok(figures)
}

async fn rolling_update(client: &Client, replicas: usize) -> Result<Value> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &deployment("roll", replicas)?)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(900);
    while !complete(&api.get("roll").await?, replicas) {
        if Instant::now() > deadline {
            bail!("the deployment to update did not come up in 900 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "app", "image": "busybox:1.37"}]}}}});
    api.patch("roll", &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    loop {
        let d = api.get("roll").await?;
        if complete(&d, replicas) {
            let old_gone = pod_counts(client, "roll").await?.exist == replicas;
            if old_gone {
                break;
            }
        }
        if Instant::now() > start + Duration::from_secs(900) {
            bail!("the rolling update did not complete in 900 s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!("rolling update of {replicas}: complete after {seconds:.1}s");
    Ok(json!({"replicas": replicas, "seconds_until_complete": seconds}))
}

fn main() -> Result<()> {
    let replicas = env_or("DEPLOY_REPLICAS", 3000);
    let roll = env_or("ROLL_REPLICAS", 1000);
    let nodes = 100;
    println!(
        "deployment benchmark: {nodes} simulated nodes, {}",
        navarch_e2e::navarch_bin().display()
    );
    let cluster = Cluster::start(nodes, &[])?;
    let runtime = tokio::runtime::Runtime::new()?;
    let results = runtime.block_on(async {
        let client = cluster.client().await?;
        let create = create_and_measure(&client, replicas).await?;
        let update = rolling_update(&client, roll).await?;
        anyhow::Ok(json!({"nodes": nodes, "create": create, "rolling_update": update}))
    })?;
    drop(runtime);
    cluster.stop()?;
    let mut results = results;
    results["binary"] = json!(navarch_e2e::navarch_bin().display().to_string());
    write_results("deployment", &results)
}
