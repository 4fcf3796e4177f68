//! `navarch agent --runtime containerd` as a user meets it: a server, an agent that starts
//! its own containerd, the busybox test image imported with `navarch images import`, and
//! pods applied with the real kubectl — an HTTP server the host reaches at the pod's IP, a
//! container whose exit code reaches the pod status — then deleted without leftovers.
//!
//! Needs root, containerd, runc, the CNI plugins and busybox-static (`make test-deps`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use navarch_agent::containerd::{self, Layout};
use navarch_agent::runtime::cri::{CriOptions, CriRuntime};
use navarch_e2e::{navarch_bin, run_navarch, wait_for, Background, Kubectl, Server};

const BOUND: Duration = Duration::from_secs(60);
const BUSYBOX: &str = "navarch.local/busybox:1";

/// The agent and everything it may leave on the host, removed on drop even when the test
/// fails: the agent stops (SIGTERM), then a containerd on its data dir removes what pods are
/// left, and the host cleanup takes mounts and the bridge; blackhole routes the test added
/// go too.
struct Agent {
    process: Option<Background>,
    data_dir: PathBuf,
    node: String,
    routes_before: String,
}

fn blackhole_routes() -> String {
    Command::new("ip")
        .args(["route", "show", "type", "blackhole"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut agent) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &agent.pid().to_string()])
                .status();
            if agent.wait(Duration::from_secs(20)).is_err() {
                let _ = Command::new("kill")
                    .args(["-KILL", &agent.pid().to_string()])
                    .status();
            }
        }
        let layout = Layout::new(&self.data_dir);
        let bridge = containerd::config::bridge_name(&self.node);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            if let Ok(containerd) = containerd::start_containerd(&self.data_dir).await {
                let options = CriOptions::new(containerd.socket(), layout.pod_log_dir());
                if let Ok(cri) = CriRuntime::connect(options).await {
                    let _ = cri.remove_all_pod_sandboxes().await;
                }
                containerd.stop().await;
            }
            let _ = containerd::cleanup_host(&layout, &bridge).await;
            for cidr in ["10.42.0.0/16", "10.43.0.0/16"] {
                if !self.routes_before.contains(cidr) {
                    let _ = containerd::network::remove_blackhole_routes(&[cidr
                        .parse()
                        .expect("a CIDR")])
                    .await;
                }
            }
        });
    }
}

fn ctr(socket: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()?;
    ensure!(output.status.success(), "ctr {args:?} failed");
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().ok()?;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn an_agent_on_containerd_runs_pods_that_kubectl_applies() -> Result<()> {
    let root = tempfile::Builder::new().prefix("nve2ectd").tempdir()?;
    let kubectl = Kubectl::new("kubectl.1.33")?;
    // A cluster CIDR of its own, so that tests running at once never share a pod subnet.
    let second = 200 + std::process::id() % 50;
    let cluster_cidr = format!("10.{second}.0.0/16");
    let server = Server::start(
        &root.path().join("server"),
        &[
            "--bind-address",
            "127.0.0.1",
            "--cluster-cidr",
            &cluster_cidr,
        ],
    )?;
    let kubeconfig = server.kubeconfig();

    let node = format!(
        "ctd-{}",
        root.path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
    )
    .to_lowercase();
    let data_dir = root.path().join("agent");
    let mut agent = Agent {
        process: None,
        data_dir: data_dir.clone(),
        node: node.clone(),
        routes_before: blackhole_routes(),
    };
    let mut command = Command::new(navarch_bin());
    command
        .args(["agent", "--runtime", "containerd", "--node-name", &node])
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--kubeconfig")
        .arg(&kubeconfig);
    agent.process = Some(Background::spawn(command)?);
    let runtime_version = wait_for(BOUND, "the node to be Ready", || {
        let ready = kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "node",
                    &node,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.nodeInfo.containerRuntimeVersion}",
                ],
            )
            .ok()?;
        ready.strip_prefix("True ").map(str::to_string)
    })?;
    ensure!(
        runtime_version.starts_with("containerd://"),
        "{runtime_version}"
    );

    let archive = root.path().join("busybox.tar");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
    ensure!(Command::new(script).arg(&archive).status()?.success());
    let data_dir_arg = data_dir.to_string_lossy().into_owned();
    let archive_arg = archive.to_string_lossy().into_owned();
    let imported = run_navarch(
        &[
            "images",
            "import",
            "--data-dir",
            &data_dir_arg,
            &archive_arg,
        ],
        BOUND,
    )?;
    ensure!(
        String::from_utf8_lossy(&imported.stdout).contains(BUSYBOX),
        "{imported:?}"
    );
    let listed = run_navarch(&["images", "ls", "--data-dir", &data_dir_arg], BOUND)?;
    ensure!(String::from_utf8_lossy(&listed.stdout).contains("navarch.local/pause:1"));

    let manifest = root.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        format!(
            r#"apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /var/www]
    ports: [{{name: http, containerPort: 8080}}]
    readinessProbe:
      httpGet: {{path: /, port: http}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: unhealthy}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    livenessProbe:
      tcpSocket: {{port: 9999}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: fails}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo "$GREETING"; exit 3']
    env: [{{name: GREETING, value: hello}}]
"#
        ),
    )?;
    let manifest_arg = manifest.to_string_lossy().into_owned();
    kubectl.stdout(&kubeconfig, &["apply", "-f", &manifest_arg])?;

    let ip = wait_for(BOUND, "the web pod to run", || {
        let out = kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "pod",
                    "web",
                    "-o",
                    "jsonpath={.status.phase} {.status.podIP}",
                ],
            )
            .ok()?;
        out.strip_prefix("Running ").map(str::to_string)
    })?;
    // The readiness probe reaches httpd over the pod network.
    wait_for(BOUND, "the web pod to be Ready", || {
        let ready = kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "pod",
                    "web",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            )
            .ok()?;
        (ready == "True").then_some(())
    })?;
    // A liveness probe that finds nothing listening restarts the container.
    wait_for(BOUND, "the unhealthy pod to restart", || {
        let restarts = kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "pod",
                    "unhealthy",
                    "-o",
                    "jsonpath={.status.containerStatuses[0].restartCount}",
                ],
            )
            .ok()?;
        (restarts.parse::<u32>().ok()? >= 1).then_some(())
    })?;
    let pod_net = format!("10.{second}.");
    ensure!(
        ip.starts_with(&pod_net),
        "pod IP {ip} not in {cluster_cidr}"
    );
    let page = wait_for(BOUND, "HTTP from the pod", || {
        http_get(&format!("{ip}:8080"))
    })?;
    ensure!(page.contains("navarch test image"), "{page}");

    let exit = wait_for(BOUND, "the failing pod to finish", || {
        let out = kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "pod",
                    "fails",
                    "-o",
                    "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.exitCode}",
                ],
            )
            .ok()?;
        out.strip_prefix("Failed ").map(str::to_string)
    })?;
    ensure!(exit == "3", "exit code {exit}");

    kubectl.stdout(&kubeconfig, &["delete", "-f", &manifest_arg, "--wait=true"])?;
    let socket = Layout::new(&data_dir).socket();
    wait_for(BOUND, "the pods' containers and sandboxes to go", || {
        let containers = ctr(&socket, &["containers", "ls", "-q"]).ok()?;
        containers.trim().is_empty().then_some(())
    })
    .context("containers are left after kubectl delete")?;
    let mounts = containerd::mounts_under(&data_dir);
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");

    // The agent stops its containerd when it stops.
    let mut process = agent.process.take().context("agent")?;
    let pid_file = Layout::new(&data_dir).pid_file();
    let containerd_pid = std::fs::read_to_string(&pid_file)?.trim().to_string();
    Command::new("kill")
        .args(["-TERM", &process.pid().to_string()])
        .status()?;
    ensure!(process.wait(BOUND)?.success(), "{}", process.stderr());
    ensure!(
        !Path::new(&format!("/proc/{containerd_pid}/cmdline")).exists()
            || std::fs::read(format!("/proc/{containerd_pid}/cmdline"))?.is_empty(),
        "containerd {containerd_pid} outlived the agent"
    );
    drop(agent);
    ensure!(!containerd::network::link_exists(
        &containerd::config::bridge_name(&node)
    ));
    drop(server);
    Ok(())
}
