//! `navarch server` + `navarch simulate --nodes 100`, driven by the real kubectl 1.33: the
//! nodes register Ready and renew their Leases, a pod bound to one of them runs with an
//! address from the pod CIDR node IPAM gave that node, `kubectl delete pod` waits for the agent's graceful
//! termination, and a crashing container shows CrashLoopBackOff with growing restart counts
//! (short back-off settings).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use navarch_e2e::{navarch_bin, wait_for, Background, Kubectl, KubectlCluster, Server};

const NODES: usize = 100;
/// Registration of 100 nodes takes well under a second; debug builds on a loaded machine
/// get more room.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// A Lease is renewed every 10 s, the first time after a random part of that.
const RENEW_TIMEOUT: Duration = Duration::from_secs(25);
const POD_TIMEOUT: Duration = Duration::from_secs(20);

struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

navarch_e2e::kubectl_cluster!(Cluster);

impl Cluster {
    fn apply(&self, manifest: &str) -> Result<()> {
        let path = self.server.data_dir().with_extension("manifest.yaml");
        std::fs::write(&path, manifest)?;
        self.kubectl(&["apply", "-f", path.to_str().unwrap()])?;
        Ok(())
    }
}

fn simulate(server: &Server) -> Result<Background> {
    let data = server.data_dir();
    let token = std::fs::read_to_string(data.join("node-token"))?;
    let mut command = Command::new(navarch_bin());
    command
        .arg("simulate")
        .args(["--server", &format!("https://127.0.0.1:{}", server.port())])
        .args(["--ca-file", path(&data.join("tls/ca.crt"))])
        .args(["--nodes", &NODES.to_string()])
        .args(["--pod-startup", "100ms"])
        .args(["--crashloop-backoff-initial", "1s"])
        .args(["--crashloop-backoff-max", "4s"])
        .env("NAVARCH_TOKEN", token.trim())
        .stdin(std::process::Stdio::null());
    Background::spawn(command)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[test]
fn a_hundred_simulated_nodes_run_pods() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-simulate-")
        .tempdir()?;
    let server = Server::start(&dir.path().join("data"), &["--bind-address", "127.0.0.1"])?;
    let cluster = Cluster {
        kubectl: Kubectl::new("kubectl.1.33")?,
        server,
        _dir: dir,
    };
    let mut sim = simulate(&cluster.server)?;
    let started = Instant::now();
    let ready = sim.wait_for_line(REGISTER_TIMEOUT, "the nodes to register", |l| {
        l.contains(&format!("{NODES} nodes ready"))
    })?;
    println!("{ready} (seen after {:?})", started.elapsed());

    nodes_are_ready(&cluster)?;
    leases_renew(&cluster)?;
    a_bound_pod_runs_and_is_deleted_gracefully(&cluster)?;
    a_crashing_container_backs_off(&cluster)?;

    // Ctrl-C leaves the nodes behind, as a lost machine would.
    let status = Command::new("kill")
        .args(["-INT", &sim.pid().to_string()])
        .status()?;
    ensure!(status.success(), "kill -INT failed");
    let exit = sim.wait(Duration::from_secs(15))?;
    ensure!(
        exit.success(),
        "simulate exited with {exit}: {}",
        sim.stderr()
    );
    let nodes = cluster.kubectl(&["get", "nodes", "--no-headers"])?;
    ensure!(
        nodes.lines().count() == NODES,
        "nodes were removed: {nodes}"
    );
    Ok(())
}

fn nodes_are_ready(cluster: &Cluster) -> Result<()> {
    let table = cluster.kubectl(&["get", "nodes", "--no-headers"])?;
    let rows: Vec<&str> = table.lines().collect();
    ensure!(rows.len() == NODES, "expected {NODES} nodes, got:\n{table}");
    for row in &rows {
        let columns: Vec<&str> = row.split_whitespace().collect();
        ensure!(columns.get(1) == Some(&"Ready"), "not Ready: {row}");
        ensure!(
            columns.get(4).is_some_and(|v| v.starts_with("v1.33.")),
            "kubelet version: {row}"
        );
    }
    let node = cluster.json(&["get", "node", "sim-42"])?;
    ensure!(node["metadata"]["labels"]["kubernetes.io/hostname"] == "sim-42");
    ensure!(
        node["status"]["capacity"]["cpu"] == "32",
        "{}",
        node["status"]
    );
    ensure!(node["status"]["allocatable"]["pods"] == "110");
    // Node IPAM: a distinct /24 of the cluster network for every node.
    let nodes = cluster.json(&["get", "nodes"])?;
    let mut cidrs = std::collections::HashSet::new();
    for n in nodes["items"].as_array().context("items")? {
        let cidr = n["spec"]["podCIDR"].as_str().unwrap_or_default();
        ensure!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "podCIDR {cidr:?}"
        );
        ensure!(cidrs.insert(cidr.to_string()), "{cidr} given twice");
    }
    let conditions = node["status"]["conditions"]
        .as_array()
        .context("conditions")?;
    for (kind, status) in [
        ("Ready", "True"),
        ("MemoryPressure", "False"),
        ("DiskPressure", "False"),
        ("PIDPressure", "False"),
    ] {
        ensure!(
            conditions
                .iter()
                .any(|c| c["type"] == kind && c["status"] == status),
            "{kind} is not {status}: {conditions:?}"
        );
    }
    Ok(())
}

fn leases_renew(cluster: &Cluster) -> Result<()> {
    let leases = cluster.kubectl(&["get", "leases", "-n", "kube-node-lease", "--no-headers"])?;
    ensure!(leases.lines().count() == NODES, "leases:\n{leases}");
    let renew_time = |name: &str| -> Result<String> {
        let lease = cluster.json(&["get", "lease", "-n", "kube-node-lease", name])?;
        ensure!(lease["spec"]["leaseDurationSeconds"] == 40, "{lease}");
        ensure!(lease["spec"]["holderIdentity"] == name, "{lease}");
        Ok(lease["spec"]["renewTime"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    let names = ["sim-00", "sim-50", "sim-99"];
    let first: Vec<String> = names.iter().map(|n| renew_time(n)).collect::<Result<_>>()?;
    let mut renewed = [false; 3];
    wait_for(RENEW_TIMEOUT, "the leases to be renewed", || {
        for (i, name) in names.iter().enumerate() {
            if !renewed[i] {
                renewed[i] = renew_time(name).ok().is_some_and(|t| t != first[i]);
            }
        }
        renewed.iter().all(|r| *r).then_some(())
    })
}

fn a_bound_pod_runs_and_is_deleted_gracefully(cluster: &Cluster) -> Result<()> {
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    navarch.io/sim-stop-after: 2s
spec:
  nodeName: sim-42
  containers:
  - name: app
    image: nginx:1.27
",
    )?;
    cluster.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/web",
        &format!("--timeout={}s", POD_TIMEOUT.as_secs()),
    ])?;
    let pod = cluster.json(&["get", "pod", "web"])?;
    let status = &pod["status"];
    ensure!(status["phase"] == "Running", "{status}");
    let ip = status["podIP"].as_str().unwrap_or_default();
    let node = cluster.json(&["get", "node", "sim-42"])?;
    let cidr = node["spec"]["podCIDR"].as_str().unwrap_or_default();
    let prefix = cidr.trim_end_matches("0/24");
    ensure!(
        !prefix.is_empty() && ip.starts_with(prefix),
        "pod IP {ip:?} is not in sim-42's range {cidr}"
    );
    ensure!(status["podIPs"][0]["ip"] == ip);
    ensure!(status["hostIP"] == "172.30.0.43", "{status}");
    ensure!(status["qosClass"] == "BestEffort");
    ensure!(status["startTime"].is_string());
    let container = &status["containerStatuses"][0];
    ensure!(
        container["ready"] == true && container["started"] == true,
        "{container}"
    );
    ensure!(
        container["image"] == "docker.io/library/nginx:1.27",
        "{container}"
    );
    ensure!(container["state"]["running"]["startedAt"].is_string());
    for kind in [
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        ensure!(
            status["conditions"].as_array().is_some_and(|cs| cs
                .iter()
                .any(|c| c["type"] == kind && c["status"] == "True")),
            "{kind}: {status}"
        );
    }
    let table = cluster.kubectl(&["get", "pod", "web", "--no-headers"])?;
    ensure!(
        table.contains("1/1") && table.contains("Running"),
        "{table}"
    );

    // The container takes 2 s to stop; kubectl waits until the agent deletes the pod.
    let t = Instant::now();
    let out = cluster.kubectl(&["delete", "pod", "web", "--timeout=30s"])?;
    let took = t.elapsed();
    ensure!(out.contains("pod \"web\" deleted"), "{out}");
    ensure!(
        took >= Duration::from_millis(1900),
        "deleted after {took:?}: the agent did not wait for the container to stop"
    );
    let gone = cluster
        .kubectl
        .run(&cluster.server.kubeconfig(), &["get", "pod", "web"])?;
    ensure!(!gone.status.success(), "pod still exists");
    ensure!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    Ok(())
}

fn a_crashing_container_backs_off(cluster: &Cluster) -> Result<()> {
    cluster.apply(
        "apiVersion: v1
kind: Pod
metadata:
  name: crash
  annotations:
    navarch.io/sim-exit: 1 after 200ms
spec:
  nodeName: sim-07
  restartPolicy: Always
  containers:
  - name: app
    image: busybox
",
    )?;
    let mut seen_counts = Vec::new();
    let deadline = Instant::now() + POD_TIMEOUT;
    loop {
        let pod = cluster.json(&["get", "pod", "crash"])?;
        let container = &pod["status"]["containerStatuses"][0];
        if let Some(count) = container["restartCount"].as_i64() {
            if seen_counts.last() != Some(&count) {
                seen_counts.push(count);
            }
        }
        if container["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            ensure!(
                container["lastState"]["terminated"]["exitCode"] == 1,
                "{container}"
            );
            ensure!(pod["status"]["phase"] == "Running", "{}", pod["status"]);
            let table = cluster.kubectl(&["get", "pod", "crash", "--no-headers"])?;
            if seen_counts.last().is_some_and(|c| *c >= 3) {
                ensure!(table.contains("CrashLoopBackOff"), "{table}");
                break;
            }
        }
        if Instant::now() > deadline {
            bail!("no CrashLoopBackOff with 3 restarts; restart counts seen: {seen_counts:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    ensure!(
        seen_counts.windows(2).all(|w| w[0] < w[1]),
        "restart counts did not grow: {seen_counts:?}"
    );
    cluster.kubectl(&["delete", "pod", "crash", "--timeout=30s"])?;
    Ok(())
}
