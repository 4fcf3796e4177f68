//! `navarch up` on real containers, as a user meets it (issue [6]'s "done when"): ready in
//! seconds; the busybox image imported; `kubectl apply` of a Deployment of three `httpd`
//! replicas with a readiness probe until it is Available, each pod answering HTTP from the
//! host; a failing liveness probe restarting its container; a container over its memory limit
//! reported `OOMKilled`; variables from a ConfigMap and a Secret seen by the container; and
//! `kubectl delete` leaving no containerd task, mount or network namespace behind.
//!
//! Needs root, containerd, runc, the CNI plugins and busybox-static (`make test-deps`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use navarch_e2e::up::{UpCluster, BUSYBOX};
use navarch_e2e::{wait_for, Kubectl};

const BOUND: Duration = Duration::from_secs(40);
/// The issue's bound for a warm start.
const READY_WITHIN: Duration = Duration::from_secs(5);

fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{greeting: hello-from-configmap}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: hunter2}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
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
metadata: {{name: hog}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, "x=$(head -c 100m /dev/zero | tr '\\0' a); sleep 1"]
    resources:
      limits: {{memory: 32Mi}}
---
apiVersion: v1
kind: Pod
metadata: {{name: env}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo "cm=$FROM_CM secret=$FROM_SECRET pod=$(POD_NAME)"; exec sleep 3600']
    env:
    - name: FROM_CM
      valueFrom: {{configMapKeyRef: {{name: settings, key: greeting}}}}
    - name: FROM_SECRET
      valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}
    - name: POD_NAME
      valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}
"#
    )
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
fn navarch_up_runs_a_deployment_probes_limits_and_env_on_containerd() -> Result<()> {
    let kubectl = Kubectl::new("kubectl.1.33")?;
    let mut cluster = UpCluster::start("nve2eup")?;
    let ready_in = cluster.server().time_to_kubeconfig;
    eprintln!("navarch up ready in {:.2} s", ready_in.as_secs_f64());
    ensure!(
        ready_in < READY_WITHIN,
        "navarch up took {ready_in:?} to be ready"
    );
    let kubeconfig = cluster.kubeconfig();
    let get = |args: &[&str]| kubectl.stdout(&kubeconfig, args);

    cluster.import_busybox()?;
    let started = Instant::now();
    let manifest_path = cluster.data_dir().with_extension("yaml");
    std::fs::write(&manifest_path, manifest())?;
    let manifest_arg = manifest_path.to_string_lossy().into_owned();
    get(&["apply", "-f", &manifest_arg])?;

    // The Deployment becomes Available once the readiness probes pass over the pod network.
    wait_for(BOUND, "the Deployment to be Available", || {
        let status = get(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.status.availableReplicas} {.status.conditions[?(@.type==\"Available\")].status}",
        ])
        .ok()?;
        (status == "3 True").then_some(())
    })?;
    eprintln!(
        "Deployment Available {:.1} s after apply",
        started.elapsed().as_secs_f64()
    );
    let ips = get(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ])?;
    let ips: Vec<&str> = ips.split_whitespace().collect();
    ensure!(ips.len() == 3, "pod IPs: {ips:?}");
    for ip in &ips {
        ensure!(
            ip.starts_with(&cluster.pod_prefix()),
            "pod IP {ip} is not in the cluster CIDR"
        );
        let page = http_get(&format!("{ip}:8080")).with_context(|| format!("GET {ip}:8080"))?;
        ensure!(page.contains("navarch test image"), "{ip}: {page}");
    }

    // A liveness probe that finds nothing listening restarts the container, again and again.
    wait_for(BOUND, "the unhealthy container to restart", || {
        let restarts = get(&[
            "get",
            "pod",
            "unhealthy",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ])
        .ok()?;
        (restarts.parse::<u32>().ok()? >= 1).then_some(())
    })?;

    // 100 MB in a shell variable does not fit in 32 MiB.
    let hog = wait_for(BOUND, "the hog to be OOM-killed", || {
        let out = get(&[
            "get",
            "pod",
            "hog",
            "-o",
            "jsonpath={.status.phase} {.status.containerStatuses[0].state.terminated.reason} {.status.containerStatuses[0].state.terminated.exitCode}",
        ])
        .ok()?;
        out.starts_with("Failed ").then_some(out)
    })?;
    ensure!(hog == "Failed OOMKilled 137", "hog: {hog}");

    // The variables reach the container: it echoes them into its log.
    let uid = get(&["get", "pod", "env", "-o", "jsonpath={.metadata.uid}"])?;
    let line = wait_for(BOUND, "the env pod's log", || {
        let log = cluster.container_log("default", "env", &uid, "main");
        log.lines()
            .find(|l| l.contains("cm="))
            .map(|l| l.to_string())
    })?;
    ensure!(
        line.ends_with("cm=hello-from-configmap secret=hunter2 pod=env"),
        "env pod printed {line:?}"
    );

    // Deleting leaves nothing running: no task, no mount, no network namespace.
    let netns: Vec<PathBuf> = cluster.sandbox_netns()?;
    ensure!(netns.len() >= 6, "sandbox network namespaces: {netns:?}");
    get(&["delete", "-f", &manifest_arg, "--wait=true"])?;
    wait_for(BOUND, "every pod to be gone", || {
        let pods = get(&["get", "pods", "-o", "name"]).ok()?;
        pods.trim().is_empty().then_some(())
    })?;
    wait_for(BOUND, "the containerd tasks to go", || {
        let tasks = cluster.ctr(&["tasks", "ls", "-q"]).ok()?;
        tasks.trim().is_empty().then_some(())
    })
    .with_context(|| format!("tasks left: {:?}", cluster.ctr(&["tasks", "ls"])))?;
    wait_for(BOUND, "the mounts and network namespaces to go", || {
        let mounts = cluster.mounts();
        let left: Vec<_> = netns.iter().filter(|p| p.exists()).collect();
        (mounts.is_empty() && left.is_empty()).then_some(())
    })
    .with_context(|| {
        format!(
            "mounts left: {:?}; netns left: {:?}",
            cluster.mounts(),
            netns.iter().filter(|p| p.exists()).collect::<Vec<_>>()
        )
    })?;

    // `navarch up` stops its containerd when it stops.
    let containerd = cluster.containerd_pid()?;
    ensure!(cluster.stop()?.success(), "navarch up did not exit cleanly");
    let cmdline = format!("/proc/{containerd}/cmdline");
    ensure!(
        std::fs::read(&cmdline).map_or(true, |c| c.is_empty()),
        "containerd {containerd} outlived navarch up"
    );
    eprintln!("whole test: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
