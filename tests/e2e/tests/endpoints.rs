//! The Endpoints and EndpointSlice controllers against `navarch server` + `navarch simulate`,
//! driven by the real kubectl 1.33: ready and unready pods (an exec readiness probe the
//! simulated runtime fails for containers named in `navarch.io/sim-probe-fail`) land in
//! `addresses` / `notReadyAddresses` and in slice endpoints with `ready` true / false; a named
//! `targetPort` resolves to the container port; pods added and deleted show up and go away; a
//! headless Service gets its label and the pods' hostnames; a Service without a selector
//! keeps the Endpoints its user wrote.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use navarch_e2e::{navarch_bin, wait_for, Background, Kubectl, KubectlCluster, Server};
use serde_json::Value;

const REGISTER_TIMEOUT: Duration = Duration::from_secs(20);
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(20);

struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _dir: tempfile::TempDir,
}

navarch_e2e::kubectl_cluster!(Cluster);

impl Cluster {
    /// Poll `get ARGS -o json` until `check` accepts it; the error names the last object seen.
    fn wait_json(
        &self,
        what: &str,
        args: &[&str],
        check: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        let mut last = Value::Null;
        wait_for(CONVERGE_TIMEOUT, what, || {
            let v = self.json(args).ok()?;
            if check(&v) {
                return Some(v);
            }
            last = v;
            None
        })
        .with_context(|| format!("last seen: {last}"))
    }

    fn pod_ip(&self, name: &str) -> Result<String> {
        let pod = self.wait_json(
            &format!("{name} to have an IP"),
            &["get", "pod", name],
            |p| {
                p["status"]["podIP"]
                    .as_str()
                    .is_some_and(|ip| !ip.is_empty())
            },
        )?;
        Ok(pod["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .to_string())
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
        .args(["--nodes", "2"])
        .args(["--pod-startup", "100ms"])
        .env("NAVARCH_TOKEN", token.trim())
        .stdin(std::process::Stdio::null());
    Background::spawn(command)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

/// A pod of `app: web` on `node` with a named container port and an exec readiness probe;
/// `unready` makes the probe fail.
fn pod(name: &str, node: &str, unready: bool) -> String {
    let annotation = if unready {
        "\n  annotations:\n    navarch.io/sim-probe-fail: app"
    } else {
        ""
    };
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels:
    app: web{annotation}
spec:
  nodeName: {node}
  hostname: {name}
  subdomain: web-headless
  containers:
  - name: app
    image: nginx:1.27
    ports:
    - name: http
      containerPort: 8080
    readinessProbe:
      exec:
        command: [\"true\"]
      periodSeconds: 1
---
"
    )
}

/// The IPs under `key` (`addresses` or `notReadyAddresses`) of every subset, sorted.
fn ips(endpoints: &Value, key: &str) -> Vec<String> {
    let mut ips: Vec<String> = endpoints["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[key].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a["ip"].as_str().map(str::to_string))
        .collect();
    ips.sort();
    ips
}

/// (pod name, ready) of every endpoint of every slice in a list, sorted.
fn slice_endpoints(list: &Value) -> Vec<(String, bool)> {
    let mut eps: Vec<(String, bool)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["targetRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    eps.sort();
    eps
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn endpoints_and_slices_follow_ready_and_unready_pods() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-endpoints-")
        .tempdir()?;
    let server = Server::start(&dir.path().join("data"), &["--bind-address", "127.0.0.1"])?;
    let cluster = Cluster {
        kubectl: Kubectl::new("kubectl.1.33")?,
        server,
        _dir: dir,
    };
    let mut sim = simulate(&cluster.server)?;
    sim.wait_for_line(REGISTER_TIMEOUT, "the nodes to register", |l| {
        l.contains("2 nodes ready")
    })?;

    let manifest = [
        pod("web-1", "sim-0", false),
        pod("web-2", "sim-1", true),
        "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: http
---
apiVersion: v1
kind: Service
metadata:
  name: web-headless
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - name: http
    port: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: manual
spec:
  ports:
  - port: 80
---
apiVersion: v1
kind: Endpoints
metadata:
  name: manual
subsets:
- addresses:
  - ip: 192.0.2.10
  ports:
  - port: 80
"
        .to_string(),
    ]
    .concat();
    cluster.apply(&manifest)?;
    let ip1 = cluster.pod_ip("web-1")?;
    let ip2 = cluster.pod_ip("web-2")?;

    // The ready pod is an address, the unready one a not-ready address, on the container
    // port the named targetPort resolves to.
    let ep = cluster.wait_json("web's endpoints", &["get", "endpoints", "web"], |ep| {
        ips(ep, "addresses") == [ip1.clone()] && ips(ep, "notReadyAddresses") == [ip2.clone()]
    })?;
    let subset = &ep["subsets"][0];
    assert_eq!(subset["ports"][0]["port"], 8080, "{ep}");
    assert_eq!(subset["ports"][0]["protocol"], "TCP", "{ep}");
    assert_eq!(subset["addresses"][0]["targetRef"]["name"], "web-1", "{ep}");
    assert_eq!(subset["addresses"][0]["nodeName"], "sim-0", "{ep}");
    assert!(subset["addresses"][0]["hostname"].is_null(), "{ep}");
    assert!(
        ep["metadata"]["labels"]["service.kubernetes.io/headless"].is_null(),
        "{ep}"
    );
    let table = cluster.kubectl(&["get", "endpoints", "web", "--no-headers"])?;
    assert!(table.contains(&format!("{ip1}:8080")), "{table}");
    assert!(!table.contains(&ip2), "{table}");

    let slices = &[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ];
    let list = cluster.wait_json("web's slices", slices, |l| {
        slice_endpoints(l) == [("web-1".into(), true), ("web-2".into(), false)]
    })?;
    let slice = &list["items"][0];
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(slice["addressType"], "IPv4", "{slice}");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert!(
        slice["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-")),
        "{slice}"
    );
    let owner = &slice["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "Service", "{slice}");
    assert_eq!(owner["name"], "web", "{slice}");
    assert_eq!(owner["controller"], true, "{slice}");
    assert_eq!(slice["ports"][0]["port"], 8080, "{slice}");
    assert_eq!(slice["ports"][0]["name"], "", "{slice}");
    let unready = slice["endpoints"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["targetRef"]["name"] == "web-2"))
        .context("web-2 endpoint")?;
    assert_eq!(unready["conditions"]["serving"], false, "{unready}");
    assert_eq!(unready["conditions"]["terminating"], false, "{unready}");
    assert_eq!(unready["nodeName"], "sim-1", "{unready}");

    // The headless Service: the label, and pod hostnames (their subdomain names it).
    let headless = cluster.wait_json(
        "web-headless's endpoints",
        &["get", "endpoints", "web-headless"],
        |ep| ips(ep, "addresses") == [ip1.clone()],
    )?;
    assert_eq!(
        headless["metadata"]["labels"]["service.kubernetes.io/headless"], "",
        "{headless}"
    );
    assert_eq!(headless["subsets"][0]["addresses"][0]["hostname"], "web-1");
    assert_eq!(headless["subsets"][0]["ports"][0]["name"], "http");
    let list = cluster.wait_json(
        "web-headless's slices",
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web-headless",
        ],
        |l| slice_endpoints(l).len() == 2,
    )?;
    let hostnames: Vec<&str> = list["items"][0]["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["hostname"].as_str())
        .collect();
    assert_eq!(
        sorted(hostnames.iter().map(|h| h.to_string()).collect()),
        ["web-1", "web-2"]
    );
    assert_eq!(
        list["items"][0]["metadata"]["labels"]["service.kubernetes.io/headless"],
        ""
    );

    // A new ready pod joins; a deleted one leaves.
    cluster.apply(&pod("web-3", "sim-1", false))?;
    let ip3 = cluster.pod_ip("web-3")?;
    cluster.wait_json(
        "web-3 to be an address",
        &["get", "endpoints", "web"],
        |ep| ips(ep, "addresses") == sorted(vec![ip1.clone(), ip3.clone()]),
    )?;
    cluster.kubectl(&["delete", "pod", "web-1", "--wait=false"])?;
    cluster.wait_json("web-1 to leave", &["get", "endpoints", "web"], |ep| {
        ips(ep, "addresses") == [ip3.clone()] && ips(ep, "notReadyAddresses") == [ip2.clone()]
    })?;
    cluster.wait_json("web-1 to leave the slices", slices, |l| {
        slice_endpoints(l) == [("web-2".into(), false), ("web-3".into(), true)]
    })?;

    // A pod that is ready, then fails its readiness probe (after 8 s of running), moves from
    // the addresses to the not-ready ones, and its slice endpoint turns unready.
    let flaky = pod("web-4", "sim-0", false).replace(
        "    app: web\nspec:",
        "    app: web\n  annotations:\n    navarch.io/sim-probe-fail-after: 8s\nspec:",
    );
    cluster.apply(&flaky)?;
    let ip4 = cluster.pod_ip("web-4")?;
    cluster.wait_json("web-4 to be ready", &["get", "endpoints", "web"], |ep| {
        ips(ep, "addresses").contains(&ip4)
    })?;
    cluster.wait_json(
        "web-4 to turn unready",
        &["get", "endpoints", "web"],
        |ep| ips(ep, "notReadyAddresses").contains(&ip4) && !ips(ep, "addresses").contains(&ip4),
    )?;
    cluster.wait_json("web-4's slice endpoint to turn unready", slices, |l| {
        slice_endpoints(l).contains(&("web-4".into(), false))
    })?;

    // The Service without a selector keeps its user's Endpoints, and gets no slice.
    let manual = cluster.json(&["get", "endpoints", "manual"])?;
    assert_eq!(ips(&manual, "addresses"), ["192.0.2.10"], "{manual}");
    let none = cluster.json(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=manual,endpointslice.kubernetes.io/managed-by=endpointslice-controller.k8s.io",
    ])?;
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");

    // Deleting the Service deletes its Endpoints.
    cluster.kubectl(&["delete", "service", "web"])?;
    wait_for(CONVERGE_TIMEOUT, "web's endpoints to go", || {
        let out = cluster
            .kubectl
            .run(&cluster.server.kubeconfig(), &["get", "endpoints", "web"])
            .ok()?;
        (!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NotFound"))
            .then_some(())
    })?;
    Ok(())
}
