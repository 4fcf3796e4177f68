//! A lost node, seen through the real kubectl: `navarch server` with a 20 s node grace period
//! and two `navarch simulate` fleets; the fleet holding one node is killed with SIGKILL (its
//! nodes stay registered, as a crashed machine's would). The node turns NotReady, gets the
//! `node.kubernetes.io/unreachable` taint, and once the pods' 5 s toleration of it runs out
//! they are evicted and the ReplicaSet replaces them on the surviving nodes. The evicted pods
//! stay Terminating (no kubelet is left to confirm), and do not count as replicas.
//!
//! The lost fleet has a single node because `NoExecute` taints are added to one node per
//! 10 s per zone (upstream's eviction rate), which would only make the test slower.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use navarch_e2e::{navarch_bin, wait_for, Background, Kubectl, KubectlCluster, Server};

const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
const POD_TIMEOUT: Duration = Duration::from_secs(30);
/// Grace period (20 s) plus the 5 s monitor period, with room for a loaded machine.
const NOT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Taint (next monitor pass), 5 s toleration, then a new pod scheduled and started.
const REPLACE_TIMEOUT: Duration = Duration::from_secs(60);

const REPLICA_SET: &str = r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      affinity:
        nodeAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
          - weight: 100
            preference:
              matchExpressions:
              - {key: kubernetes.io/hostname, operator: In, values: [lost-0]}
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}
      containers:
      - {name: web, image: busybox}
"#;

struct Cluster {
    server: Server,
    kubectl: Kubectl,
}

navarch_e2e::kubectl_cluster!(Cluster);

impl Cluster {
    /// The ReplicaSet's pods as (name, node, phase, terminating).
    fn pods(&self) -> Result<Vec<(String, String, String, bool)>> {
        let list = self.json(&["get", "pods", "-l", "app=web"])?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                    p["status"]["phase"].as_str().unwrap_or("").to_string(),
                    !p["metadata"]["deletionTimestamp"].is_null(),
                )
            })
            .collect())
    }
}

fn simulate(server: &Server, prefix: &str, nodes: usize) -> Result<Background> {
    let data = server.data_dir();
    let token = std::fs::read_to_string(data.join("node-token"))?;
    let mut command = Command::new(navarch_bin());
    command
        .arg("simulate")
        .args(["--server", &format!("https://127.0.0.1:{}", server.port())])
        .args(["--ca-file", path(&data.join("tls/ca.crt"))])
        .args(["--nodes", &nodes.to_string()])
        .args(["--name-prefix", prefix])
        .args(["--pod-startup", "100ms"])
        .env("NAVARCH_TOKEN", token.trim())
        .stdin(std::process::Stdio::null());
    let mut fleet = Background::spawn(command)?;
    fleet.wait_for_line(REGISTER_TIMEOUT, "the nodes to register", |l| {
        l.contains(&format!("{nodes} nodes ready"))
    })?;
    Ok(fleet)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn pods_of_a_lost_node_are_evicted_and_replaced() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-node-loss-")
        .tempdir()?;
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--bind-address",
            "127.0.0.1",
            "--node-monitor-grace-period",
            "20s",
        ],
    )?;
    let cluster = Cluster {
        kubectl: Kubectl::new("kubectl.1.33")?,
        server,
    };
    let _keep = simulate(&cluster.server, "keep-", 2)?;
    let lost = simulate(&cluster.server, "lost-", 1)?;

    let manifest = cluster.server.data_dir().with_extension("web.yaml");
    std::fs::write(&manifest, REPLICA_SET)?;
    cluster.kubectl(&["apply", "-f", path(&manifest)])?;
    let before = wait_for(POD_TIMEOUT, "three running pods", || {
        let pods = cluster.pods().ok()?;
        (pods.len() == 3 && pods.iter().all(|p| p.2 == "Running")).then_some(pods)
    })?;
    let on_lost: Vec<String> = before
        .iter()
        .filter(|p| p.1 == "lost-0")
        .map(|p| p.0.clone())
        .collect();
    ensure!(!on_lost.is_empty(), "no pod landed on lost-0: {before:?}");

    // SIGKILL: no chance to clean up, the node objects stay.
    let status = Command::new("kill")
        .args(["-KILL", &lost.pid().to_string()])
        .status()?;
    ensure!(status.success(), "kill -KILL failed");

    wait_for(NOT_READY_TIMEOUT, "lost-0 to be NotReady", || {
        let row = cluster
            .kubectl(&["get", "node", "lost-0", "--no-headers"])
            .ok()?;
        (row.split_whitespace().nth(1) == Some("NotReady")).then_some(())
    })?;
    let node = cluster.json(&["get", "node", "lost-0"])?;
    let ready = node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .cloned()
        .unwrap_or_default();
    ensure!(
        ready["status"] == "Unknown" && ready["reason"] == "NodeStatusUnknown",
        "{ready}"
    );
    ensure!(ready["message"] == "Kubelet stopped posting node status.");
    for name in ["keep-0", "keep-1"] {
        let row = cluster.kubectl(&["get", "node", name, "--no-headers"])?;
        ensure!(
            row.split_whitespace().nth(1) == Some("Ready"),
            "a surviving node is not Ready: {row}"
        );
    }

    wait_for(REPLACE_TIMEOUT, "the unreachable NoExecute taint", || {
        let taints = cluster
            .kubectl(&[
                "get",
                "node",
                "lost-0",
                "-o",
                "jsonpath={range .spec.taints[*]}{.key}:{.effect}:{.timeAdded} {end}",
            ])
            .ok()?;
        taints
            .split_whitespace()
            .any(|t| t.starts_with("node.kubernetes.io/unreachable:NoExecute:20"))
            .then_some(())
    })?;

    let after = wait_for(
        REPLACE_TIMEOUT,
        "replacements on the surviving nodes",
        || {
            let pods = cluster.pods().ok()?;
            let evicted = on_lost
                .iter()
                .all(|n| pods.iter().all(|p| &p.0 != n || p.3));
            let live: Vec<_> = pods.iter().filter(|p| !p.3).collect();
            let replaced = live.len() == 3
                && live
                    .iter()
                    .all(|p| p.2 == "Running" && p.1.starts_with("keep-"));
            (evicted && replaced).then_some(pods)
        },
    )?;
    println!("pods after the loss: {after:?}");

    // The node's events live in `default`, like the pods'.
    let events = cluster.kubectl(&["get", "events"])?;
    ensure!(
        events.contains(&format!("Marking for deletion Pod default/{}", on_lost[0])),
        "{events}"
    );
    ensure!(
        events.contains("Node lost-0 status is now: NodeNotReady"),
        "{events}"
    );
    Ok(())
}
