//! The scheduler on simulated nodes, end to end: `navarch server` with `navarch simulate`
//! processes for nodes of different sizes, labelled and tainted with the real kubectl 1.33.
//! Pods land as their constraints demand — resources, nodeSelector, required and preferred node
//! affinity, taints with and without tolerations, pod anti-affinity spreading replicas over
//! nodes, topology spread over zones, preemption of a low-priority pod by a high-priority one —
//! and a pod no node fits is bound once a node that fits registers.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use navarch_e2e::{navarch_bin, wait_for, Background, Kubectl, KubectlCluster, Server};
use serde_json::{json, Value};

const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
const BIND_TIMEOUT: Duration = Duration::from_secs(20);

struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
    simulators: Vec<Background>,
}

navarch_e2e::kubectl_cluster!(Cluster);

impl Cluster {
    fn apply_objects(&self, objects: &[Value]) -> Result<()> {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
        self.apply(&serde_json::to_string(&list)?)
    }

    /// Start `count` simulated nodes named PREFIX0… with `cpu` each; wait until they are Ready.
    fn simulate(&mut self, prefix: &str, count: usize, cpu: &str) -> Result<()> {
        let data = self.server.data_dir();
        let token = std::fs::read_to_string(data.join("node-token"))?;
        let mut command = Command::new(navarch_bin());
        command
            .arg("simulate")
            .args([
                "--server",
                &format!("https://127.0.0.1:{}", self.server.port()),
            ])
            .args(["--ca-file", path(&data.join("tls/ca.crt"))])
            .args(["--nodes", &count.to_string()])
            .args(["--name-prefix", prefix])
            .args(["--cpu", cpu, "--memory", "8Gi"])
            .args(["--pod-startup", "100ms"])
            .env("NAVARCH_TOKEN", token.trim())
            .stdin(std::process::Stdio::null());
        let mut sim = Background::spawn(command)?;
        sim.wait_for_line(REGISTER_TIMEOUT, "the nodes to register", |l| {
            l.contains(&format!("{count} nodes ready"))
        })?;
        self.simulators.push(sim);
        Ok(())
    }

    /// The node `pod` (in `ns`) is bound to, once it is.
    fn node_of(&self, ns: &str, pod: &str) -> Result<String> {
        wait_for(BIND_TIMEOUT, &format!("{ns}/{pod} to be bound"), || {
            let p = self.json(&["get", "pod", "-n", ns, pod]).ok()?;
            p["spec"]["nodeName"].as_str().map(str::to_string)
        })
    }

    /// The nodes of the pods labelled `app=APP` in `ns`, once `count` of them are bound.
    fn nodes_of_app(&self, ns: &str, app: &str, count: usize) -> Result<Vec<String>> {
        wait_for(BIND_TIMEOUT, &format!("{count} pods of {app}"), || {
            let list = self
                .json(&["get", "pods", "-n", ns, "-l", &format!("app={app}")])
                .ok()?;
            let nodes: Vec<String> = list["items"]
                .as_array()?
                .iter()
                .filter_map(|p| p["spec"]["nodeName"].as_str().map(str::to_string))
                .collect();
            (nodes.len() == count).then_some(nodes)
        })
    }

    /// The `PodScheduled=False` message of a pending pod, once the scheduler gave up on it.
    fn unschedulable(&self, ns: &str, pod: &str) -> Result<String> {
        wait_for(
            BIND_TIMEOUT,
            &format!("{ns}/{pod} to be unschedulable"),
            || {
                let p = self.json(&["get", "pod", "-n", ns, pod]).ok()?;
                p["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
                    .and_then(|c| c["message"].as_str().map(str::to_string))
            },
        )
    }

    fn zone(&self, node: &str) -> Result<String> {
        let n = self.json(&["get", "node", node])?;
        Ok(n["metadata"]["labels"]["topology.kubernetes.io/zone"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn pod(ns: &str, name: &str, cpu: &str, spec: Value) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
            "name": "app", "image": "registry.k8s.io/pause:3.10",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
    });
    if let (Some(base), Some(extra)) = (p["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    p
}

fn deployment(ns: &str, app: &str, replicas: u32, spec: Value) -> Value {
    let mut template = pod(ns, app, "100m", spec);
    template["metadata"] = json!({"labels": {"app": app}});
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": app, "namespace": ns},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": template["metadata"], "spec": template["spec"]}},
    })
}

fn hostname_is(node: &str) -> Value {
    json!({"nodeSelector": {"kubernetes.io/hostname": node}})
}

#[test]
fn pods_land_where_their_constraints_demand_on_simulated_nodes() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-scheduling-")
        .tempdir()?;
    let server = Server::start(&dir.path().join("data"), &["--bind-address", "127.0.0.1"])?;
    let mut c = Cluster {
        server,
        kubectl: Kubectl::new("kubectl.1.33")?,
        _dir: dir,
        simulators: Vec::new(),
    };
    // Three small nodes in zones a, b, c and a big one in zone a.
    c.simulate("small-", 3, "2")?;
    c.simulate("big-", 1, "8")?;
    for (node, zone) in [
        ("small-0", "a"),
        ("small-1", "b"),
        ("small-2", "c"),
        ("big-0", "a"),
    ] {
        c.kubectl(&[
            "label",
            "node",
            node,
            &format!("topology.kubernetes.io/zone={zone}"),
        ])?;
    }
    c.kubectl(&["label", "node", "small-1", "disk=ssd"])?;
    c.kubectl(&["create", "namespace", "s"])?;

    // Resources: only the big node has 3 CPUs free.
    c.apply_objects(&[pod("s", "fat", "3", json!({}))])?;
    ensure!(c.node_of("s", "fat")? == "big-0");

    // nodeSelector, required and preferred node affinity.
    c.apply_objects(&[
        pod("s", "ssd", "100m", json!({"nodeSelector": {"disk": "ssd"}})),
        pod(
            "s",
            "in-c",
            "100m",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "topology.kubernetes.io/zone",
                    "operator": "In", "values": ["c"]}]}]}}}}),
        ),
        pod(
            "s",
            "rather-b",
            "100m",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "preference": {"matchExpressions": [{
                    "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}}]}}}),
        ),
    ])?;
    ensure!(c.node_of("s", "ssd")? == "small-1");
    ensure!(c.node_of("s", "in-c")? == "small-2");
    ensure!(c.node_of("s", "rather-b")? == "small-1");

    // Taints: kept off without a toleration, let on with one.
    c.kubectl(&["taint", "node", "small-0", "dedicated=gpu:NoSchedule"])?;
    c.apply_objects(&[pod("s", "intolerant", "100m", hostname_is("small-0"))])?;
    let message = c.unschedulable("s", "intolerant")?;
    ensure!(
        message.starts_with("0/4 nodes are available:")
            && message.contains("1 node(s) had untolerated taint {dedicated: gpu}")
            && message.contains("3 node(s) didn't match Pod's node affinity/selector"),
        "unexpected message: {message}"
    );
    let mut tolerant = hostname_is("small-0");
    tolerant["tolerations"] = json!([{"key": "dedicated", "operator": "Equal", "value": "gpu",
        "effect": "NoSchedule"}]);
    c.apply_objects(&[pod("s", "tolerant", "100m", tolerant)])?;
    ensure!(c.node_of("s", "tolerant")? == "small-0");
    c.kubectl(&["taint", "node", "small-0", "dedicated-"])?;
    ensure!(
        c.node_of("s", "intolerant")? == "small-0",
        "the untainted node takes the waiting pod"
    );

    // Required anti-affinity spreads 4 replicas over the 4 nodes.
    c.apply_objects(&[deployment(
        "s",
        "apart",
        4,
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "apart"}},
            "topologyKey": "kubernetes.io/hostname"}]}}}),
    )])?;
    let mut nodes = c.nodes_of_app("s", "apart", 4)?;
    nodes.sort();
    nodes.dedup();
    ensure!(nodes.len() == 4, "replicas share nodes: {nodes:?}");

    // Topology spread: 3 replicas over zones a, b and c, one each.
    c.apply_objects(&[deployment(
        "s",
        "zoned",
        3,
        json!({"topologySpreadConstraints": [{"maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "zoned"}}}]}),
    )])?;
    let mut zones = c
        .nodes_of_app("s", "zoned", 3)?
        .iter()
        .map(|n| c.zone(n))
        .collect::<Result<Vec<_>>>()?;
    zones.sort();
    ensure!(zones == ["a", "b", "c"], "zones {zones:?}");

    // Preemption: a high-priority pod evicts the low-priority one in its way.
    c.apply_objects(&[
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "low"}, "value": 10}),
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": "high"}, "value": 1000}),
    ])?;
    let mut low = hostname_is("small-2");
    low["priorityClassName"] = json!("low");
    c.apply_objects(&[pod("s", "low", "1500m", low)])?;
    ensure!(c.node_of("s", "low")? == "small-2");
    let mut high = hostname_is("small-2");
    high["priorityClassName"] = json!("high");
    c.apply_objects(&[pod("s", "high", "1500m", high)])?;
    ensure!(c.node_of("s", "high")? == "small-2");
    wait_for(BIND_TIMEOUT, "the low-priority pod to be gone", || {
        let out = c.kubectl.run(
            &c.server.kubeconfig(),
            &[
                "get",
                "pod",
                "-n",
                "s",
                "low",
                "--ignore-not-found",
                "-o",
                "name",
            ],
        );
        out.ok()
            .filter(|o| o.status.success() && o.stdout.is_empty())
    })?;

    // Nothing fits 16 CPUs until a node that does registers.
    c.apply_objects(&[pod("s", "giant", "16", json!({}))])?;
    let message = c.unschedulable("s", "giant")?;
    ensure!(
        message.starts_with("0/4 nodes are available:") && message.contains("Insufficient cpu"),
        "unexpected message: {message}"
    );
    c.simulate("huge-", 1, "32")?;
    ensure!(c.node_of("s", "giant")? == "huge-0");

    for sim in &mut c.simulators {
        let _ = Command::new("kill")
            .args(["-INT", &sim.pid().to_string()])
            .status();
        let _ = sim.wait(Duration::from_secs(15));
    }
    c.server.stop()?;
    Ok(())
}
