//! Benchmark: the scheduling cycle alone, without an API server — the same pods and nodes as
//! the cluster benchmark (`cargo bench -p navarch-e2e --bench scheduler`): 3,000 pods onto 100
//! nodes and 10,000 pods onto 5,000 nodes, plain and with required pod anti-affinity. Each pod
//! is scheduled with the default profile and adaptive sampling, then assumed on its node, as
//! the scheduler's loop does. Filtering and scoring use rayon's pool (`RAYON_NUM_THREADS=1`
//! for one thread). Prints pods/s and per-pod p50/p99, and writes
//! `target/bench-results/scheduler-cycle.json`.
//!
//! `cargo bench -p navarch-scheduler --bench cycle` (`CYCLE_ONLY=5000-plain` runs one, for a
//! profiler).

use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use navarch_scheduler::cycle::{schedule_sampled, Sampling};
use navarch_scheduler::plugins::default_framework;
use navarch_scheduler::Snapshot;
use serde_json::{json, Value};

fn node(i: usize) -> Node {
    let name = format!("node-{i:05}");
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name,
            "topology.kubernetes.io/zone": format!("zone-{}", i % 3),
        }},
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }))
    .expect("valid node")
}

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
        "metadata": {"name": format!("p-{i:05}"), "namespace": "bench",
            "uid": format!("uid-{i}"), "labels": labels},
        "spec": spec,
    }))
    .expect("valid pod")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn run(nodes: usize, pods: usize, groups: Option<usize>) -> Option<Value> {
    let scenario = if groups.is_some() {
        "anti-affinity"
    } else {
        "plain"
    };
    if let Ok(only) = std::env::var("CYCLE_ONLY") {
        if only != format!("{nodes}-{scenario}") {
            return None;
        }
    }
    let framework = default_framework();
    let mut snapshot = Snapshot::new();
    for i in 0..nodes {
        snapshot.upsert_node(Arc::new(node(i)));
    }
    let pods: Vec<Arc<Pod>> = (0..pods).map(|i| Arc::new(pod(i, groups))).collect();
    let mut start = 0;
    let mut per_pod = Vec::with_capacity(pods.len());
    let all = Instant::now();
    for (i, p) in pods.iter().enumerate() {
        let t = Instant::now();
        let result = schedule_sampled(&framework, &snapshot, p, i, Sampling::Adaptive { start })
            .expect("every pod fits");
        start = (start + result.evaluated) % nodes;
        snapshot.assume(p.clone(), &result.node);
        per_pod.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let seconds = all.elapsed().as_secs_f64();
    per_pod.sort_by(f64::total_cmp);
    let rate = pods.len() as f64 / seconds;
    let (p50, p99) = (percentile(&per_pod, 50.0), percentile(&per_pod, 99.0));
    println!(
        "  {nodes} nodes, {} pods, {scenario}: {rate:.0} pods/s, per pod p50 {p50:.0} µs, p99 {p99:.0} µs",
        pods.len()
    );
    Some(json!({
        "nodes": nodes, "pods": pods.len(), "scenario": scenario,
        "pods_per_second": rate, "per_pod_us": {"p50": p50, "p99": p99},
    }))
}

fn main() {
    println!("scheduling cycle benchmark (no API server; rayon's pool for filtering and scoring)");
    let runs: Vec<Value> = [
        run(100, 3000, None),
        run(100, 3000, Some(30)),
        run(5000, 10_000, None),
        run(5000, 10_000, Some(10)),
    ]
    .into_iter()
    .flatten()
    .collect();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-results");
    std::fs::create_dir_all(&dir).expect("results directory");
    let path = dir.join("scheduler-cycle.json");
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&json!({"runs": runs})).expect("json"),
    )
    .expect("results written");
    println!("written to {}", path.display());
}
