//! Pod features on real containers under one `navarch up`: node status from the machine
//! (capacity, allocatable after `--system-reserved`/`--kube-reserved`, images);
//! `securityContext` (user, groups,
//! read-only root, capabilities, no_new_privs, privileged, `runAsNonRoot` refused for a root
//! image), lifecycle hooks (`postStart` exec before the main process goes on, a failing one
//! restarting its container, `preStop` httpGet on deletion), termination messages (from the
//! file and from the log), `hostNetwork`, hostname/subdomain in `/etc/hosts` and resolv.conf
//! from `dnsConfig`; `ErrImageNeverPull` for an absent image, `ImagePullBackOff` for one no
//! registry serves; a gRPC liveness probe failing
//! against a server that is not gRPC; a deleted pod's files removed;
//! and `navarch up --cleanup` removing everything the node left running.
//!
//! Needs root, containerd, runc, the CNI plugins and busybox-static (`make test-deps`).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use navarch_agent::containerd::config::bridge_name;
use navarch_agent::containerd::network;
use navarch_e2e::up::{UpCluster, BUSYBOX};
use navarch_e2e::{run_navarch, wait_for, Kubectl};

const BOUND: Duration = Duration::from_secs(40);

fn manifest(host_port: u16, hook_port: u16) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: secure}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 1000, runAsGroup: 2000, supplementalGroups: [3000], fsGroup: 4000}}
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'id; grep -E "^(CapBnd|NoNewPrivs)" /proc/self/status; (touch /probe 2>/dev/null && echo rootfs=writable) || echo rootfs=readonly; exec sleep 3600']
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: privileged}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'grep CapEff /proc/self/status; exec sleep 3600']
    securityContext: {{privileged: true}}
---
apiVersion: v1
kind: Pod
metadata: {{name: nonroot}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsNonRoot: true}}
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, "3600"]
---
apiVersion: v1
kind: Pod
metadata: {{name: absent}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: navarch.local/absent:1
    imagePullPolicy: Never
---
apiVersion: v1
kind: Pod
metadata: {{name: unpullable}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: 127.0.0.1:1/absent:1
    imagePullPolicy: IfNotPresent
---
apiVersion: v1
kind: Pod
metadata: {{name: grpcprobe}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [httpd, -f, -p, "8080", -h, /var/www]
    livenessProbe:
      grpc: {{port: 8080}}
      initialDelaySeconds: 2
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: hooks}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'while [ ! -f /tmp/hook ]; do sleep 0.1; done; cat /tmp/hook; exec sleep 3600']
    lifecycle:
      postStart:
        exec: {{command: [sh, -c, 'echo post-start-ran > /tmp/hook']}}
      preStop:
        httpGet: {{host: 127.0.0.1, port: {hook_port}, path: /pre-stop}}
---
apiVersion: v1
kind: Pod
metadata: {{name: badhook}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    lifecycle:
      postStart:
        exec: {{command: ["false"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: message}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'printf bye > /dev/termination-log; exit 3']
---
apiVersion: v1
kind: Pod
metadata: {{name: fallback}}
spec:
  restartPolicy: Never
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    terminationMessagePolicy: FallbackToLogsOnError
    command: [sh, -c, 'echo oops; exit 1']
---
apiVersion: v1
kind: Pod
metadata: {{name: hostnet}}
spec:
  terminationGracePeriodSeconds: 1
  hostNetwork: true
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'head -n 1 /etc/hosts; exec httpd -f -p 127.0.0.1:{host_port} -h /var/www']
---
apiVersion: v1
kind: Pod
metadata: {{name: named}}
spec:
  terminationGracePeriodSeconds: 1
  hostname: web-0
  subdomain: web
  hostAliases: [{{ip: 192.0.2.10, hostnames: [db.example]}}]
  dnsPolicy: None
  dnsConfig:
    nameservers: [192.0.2.53]
    searches: [corp.example]
    options: [{{name: ndots, value: "2"}}]
  containers:
  - name: main
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'echo "hostname=$(hostname)"; cat /etc/hosts /etc/resolv.conf; exec sleep 3600']
"#
    )
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Accept one request on `listener` and answer 200; the request line goes to the channel.
fn serve_once(listener: TcpListener) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = stream.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
            let request = String::from_utf8_lossy(&buf[..n]);
            let _ = sender.send(request.lines().next().unwrap_or_default().to_string());
        }
    });
    receiver
}

fn http_get(addr: &str) -> Option<String> {
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
fn security_contexts_hooks_messages_and_host_files_on_containerd() -> Result<()> {
    let kubectl = Kubectl::new("kubectl.1.33")?;
    let reserved = [
        "--system-reserved",
        "cpu=100m,memory=100Mi",
        "--kube-reserved",
        "memory=100Mi",
    ];
    let mut cluster = UpCluster::start_with("nve2efeat", &reserved)?;
    let kubeconfig = cluster.kubeconfig();
    let get = |args: &[&str]| kubectl.stdout(&kubeconfig, args);
    cluster.import_busybox()?;

    // The node reports this machine: its CPUs, its memory less the reservations and the
    // 100Mi eviction threshold, no pressure, and the images containerd has.
    let node = cluster.node().to_string();
    let resources = get(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.capacity.cpu} {.status.allocatable.cpu} {.status.capacity.memory} {.status.allocatable.memory}",
    ])?;
    let cpus = std::thread::available_parallelism()?.get();
    let fields: Vec<&str> = resources.split_whitespace().collect();
    ensure!(fields.len() == 4, "node resources: {resources}");
    ensure!(fields[0] == cpus.to_string(), "capacity cpu: {resources}");
    ensure!(
        fields[1] == format!("{}m", cpus * 1000 - 100),
        "allocatable cpu: {resources}"
    );
    let kib = |q: &str| q.trim_end_matches("Ki").parse::<i64>().unwrap_or(-1);
    ensure!(
        kib(fields[2]) - kib(fields[3]) == 300 * 1024,
        "allocatable memory: {resources}"
    );
    let memory = get(&[
        "get",
        "node",
        &node,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"MemoryPressure\")].reason}",
    ])?;
    ensure!(memory == "KubeletHasSufficientMemory", "{memory}");
    wait_for(BOUND, "the node's images to list busybox", || {
        let images = get(&[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.status.images[*].names}",
        ])
        .ok()?;
        (images.contains(BUSYBOX) && images.contains("navarch.local/pause:1")).then_some(())
    })?;

    let host_port = free_port()?;
    let hook_listener = TcpListener::bind("127.0.0.1:0")?;
    let hook_port = hook_listener.local_addr()?.port();
    let pre_stop = serve_once(hook_listener);
    let manifest_path = cluster.data_dir().with_extension("yaml");
    std::fs::write(&manifest_path, manifest(host_port, hook_port))?;
    let manifest_arg = manifest_path.to_string_lossy().into_owned();
    get(&["apply", "-f", &manifest_arg])?;

    let jsonpath = |pod: &str, path: &str| -> Option<String> {
        get(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]).ok()
    };
    // What a container printed, once it printed `last`.
    let log = |pod: &str, last: &str| -> Result<String> {
        let uid = get(&["get", "pod", pod, "-o", "jsonpath={.metadata.uid}"])?;
        wait_for(BOUND, &format!("{pod} to print {last:?}"), || {
            let log = cluster.container_log("default", pod, &uid, "main");
            let text: Vec<&str> = log
                .lines()
                .filter_map(|l| l.splitn(4, ' ').nth(3))
                .collect();
            let text = text.join("\n");
            text.contains(last).then_some(text)
        })
    };

    // securityContext: user and groups, bounding set, no_new_privs, read-only root.
    let secure = log("secure", "rootfs=")?;
    // stdout and stderr reach the log file through separate pipes: find the line.
    let id = secure
        .lines()
        .find(|l| l.starts_with("uid="))
        .unwrap_or_default();
    ensure!(
        id.starts_with("uid=1000 gid=2000 ") && id.contains("3000") && id.contains("4000"),
        "id in the secure pod: {secure}"
    );
    ensure!(
        secure.contains("CapBnd:\t0000000000000400"),
        "only NET_BIND_SERVICE is left: {secure}"
    );
    ensure!(secure.contains("NoNewPrivs:\t1"), "{secure}");
    ensure!(secure.contains("rootfs=readonly"), "{secure}");
    // privileged: every capability, CAP_SYS_ADMIN (bit 21) among them.
    let privileged = log("privileged", "CapEff")?;
    let caps = privileged
        .split_whitespace()
        .nth(1)
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .with_context(|| format!("privileged printed {privileged:?}"))?;
    ensure!(caps & (1 << 21) != 0, "CapEff {caps:x} lacks CAP_SYS_ADMIN");
    // runAsNonRoot with an image that runs as root.
    let nonroot = wait_for(BOUND, "nonroot to be refused", || {
        let out = jsonpath(
            "nonroot",
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        )?;
        out.starts_with("CreateContainerConfigError|")
            .then_some(out)
    })?;
    ensure!(
        nonroot.contains("container has runAsNonRoot and image will run as root"),
        "{nonroot}"
    );

    // An image that is not there is never pulled under imagePullPolicy: Never.
    let absent = wait_for(BOUND, "absent to wait for its image", || {
        let out = jsonpath(
            "absent",
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        )?;
        out.starts_with("ErrImageNeverPull|").then_some(out)
    })?;
    ensure!(
        absent.ends_with(
            "Container image \"navarch.local/absent:1\" is not present with pull policy of Never"
        ),
        "{absent}"
    );

    // A pull from a registry nobody serves (on this machine's loopback) fails, then backs off.
    let unpullable = wait_for(BOUND, "unpullable to back off", || {
        let out = jsonpath(
            "unpullable",
            "{.status.containerStatuses[0].state.waiting.reason}|{.status.containerStatuses[0].state.waiting.message}",
        )?;
        out.starts_with("ImagePullBackOff|").then_some(out)
    })?;
    ensure!(
        unpullable.ends_with("Back-off pulling image \"127.0.0.1:1/absent:1\""),
        "{unpullable}"
    );

    // A gRPC health check against an HTTP/1 server fails (a connection alone is not enough:
    // httpd listens well before the first probe).
    wait_for(
        BOUND,
        "grpcprobe to be restarted by its gRPC liveness probe",
        || {
            let restarts = jsonpath("grpcprobe", "{.status.containerStatuses[0].restartCount}")?;
            (restarts.parse::<u32>().ok()? >= 1).then_some(())
        },
    )?;

    // postStart ran before the main process went past its wait.
    ensure!(
        log("hooks", "post-start-ran")? == "post-start-ran",
        "hooks log"
    );
    // A failing postStart hook kills the container, which restarts.
    wait_for(BOUND, "badhook to restart", || {
        let restarts = jsonpath("badhook", "{.status.containerStatuses[0].restartCount}")?;
        (restarts.parse::<u32>().ok()? >= 1).then_some(())
    })?;

    // Termination messages: from the file, and from the log on failure.
    let message = wait_for(BOUND, "message to exit", || {
        let out = jsonpath(
            "message",
            "{.status.containerStatuses[0].state.terminated.exitCode}|{.status.containerStatuses[0].state.terminated.message}",
        )?;
        out.starts_with("3|").then_some(out)
    })?;
    ensure!(message == "3|bye", "message: {message}");
    let fallback = wait_for(BOUND, "fallback to exit", || {
        let out = jsonpath(
            "fallback",
            "{.status.containerStatuses[0].state.terminated.message}",
        )?;
        (!out.is_empty()).then_some(out)
    })?;
    ensure!(fallback.trim() == "oops", "fallback: {fallback:?}");

    // hostNetwork: the node's address, the node's ports, the host's hosts file.
    wait_for(BOUND, "the hostNetwork pod's httpd", || {
        http_get(&format!("127.0.0.1:{host_port}"))
            .filter(|page| page.contains("navarch test image"))
    })?;
    let ips = jsonpath("hostnet", "{.status.podIP} {.status.hostIP}").unwrap_or_default();
    let (pod_ip, host_ip) = ips.split_once(' ').unwrap_or_default();
    ensure!(
        !pod_ip.is_empty() && pod_ip == host_ip,
        "hostnet IPs: {ips}"
    );
    ensure!(
        log("hostnet", "hosts file")? == "# Kubernetes-managed hosts file (host network).",
        "hostnet /etc/hosts"
    );

    // hostname, subdomain and aliases in /etc/hosts; resolv.conf from dnsConfig.
    let named = log("named", "options")?;
    let pod_ip = jsonpath("named", "{.status.podIP}").unwrap_or_default();
    ensure!(named.starts_with("hostname=web-0\n"), "{named}");
    ensure!(
        named.contains(&format!(
            "{pod_ip}\tweb-0.web.default.svc.cluster.local\tweb-0"
        )),
        "{named}"
    );
    ensure!(named.contains("192.0.2.10\tdb.example"), "{named}");
    ensure!(named.contains("nameserver 192.0.2.53"), "{named}");
    ensure!(named.contains("search corp.example"), "{named}");
    ensure!(named.contains("options ndots:2"), "{named}");

    // Deleting runs the preStop hook and removes the pod's files.
    let hooks_uid = get(&["get", "pod", "hooks", "-o", "jsonpath={.metadata.uid}"])?;
    get(&["delete", "pod", "hooks", "--wait=true"])?;
    let request = pre_stop
        .recv_timeout(BOUND)
        .context("the preStop hook never called")?;
    ensure!(request.starts_with("GET /pre-stop HTTP/1."), "{request}");
    let hooks_files = cluster.data_dir().join("pod-files").join(&hooks_uid);
    wait_for(BOUND, "the deleted pod's files to go", || {
        (!hooks_files.exists()).then_some(())
    })?;

    // `navarch up` stops with pods running (their containers outlive it), then
    // `navarch up --cleanup` removes everything the node created.
    let netns = cluster.sandbox_netns()?;
    ensure!(netns.len() >= 8, "sandbox network namespaces: {netns:?}");
    ensure!(cluster.stop()?.success(), "navarch up did not exit cleanly");
    let data_dir = cluster.data_dir().to_path_buf();
    let data_arg = data_dir.to_string_lossy().into_owned();
    let alive = || -> Vec<String> {
        // Shims and containerd name the data dir on their command lines.
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        procs
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&data_arg))
            .collect()
    };
    ensure!(
        !alive().is_empty(),
        "the pods' shims should outlive navarch up"
    );
    // UpCluster's CIDRs: 10.N.0.0/17 for pods and 10.N.128.0/17 for services.
    let octet = cluster
        .pod_prefix()
        .split('.')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let cluster_cidr = format!("10.{octet}.0.0/17");
    let service_cidr = format!("10.{octet}.128.0/17");
    let output = run_navarch(
        &[
            "up",
            "--cleanup",
            "--data-dir",
            &data_arg,
            "--node-name",
            cluster.node(),
            "--cluster-cidr",
            &cluster_cidr,
            "--service-cidr",
            &service_cidr,
        ],
        Duration::from_secs(60),
    )?;
    ensure!(
        output.status.success(),
        "navarch up --cleanup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(alive().is_empty(), "processes left: {:?}", alive());
    ensure!(
        cluster.mounts().is_empty(),
        "mounts left: {:?}",
        cluster.mounts()
    );
    let left: Vec<_> = netns.iter().filter(|p| p.exists()).collect();
    ensure!(left.is_empty(), "network namespaces left: {left:?}");
    let bridge = bridge_name(cluster.node());
    ensure!(!network::link_exists(&bridge), "bridge {bridge} left");
    let table = std::process::Command::new("nft")
        .args(["list", "table", "inet", &network::egress_table(&bridge)])
        .output()?;
    ensure!(!table.status.success(), "nftables table of {bridge} left");
    let routes = std::process::Command::new("ip")
        .args(["route", "show", "type", "blackhole"])
        .output()?;
    let routes = String::from_utf8_lossy(&routes.stdout);
    ensure!(
        !routes.contains(&cluster_cidr) && !routes.contains(&service_cidr),
        "blackhole routes left: {routes}"
    );
    for dir in ["containerd", "cni", "pods", "pod-files", "images"] {
        ensure!(!data_dir.join(dir).exists(), "{dir} left in the data dir");
    }
    ensure!(
        data_dir.join("state.db").exists(),
        "the cluster's state went too"
    );
    Ok(())
}
