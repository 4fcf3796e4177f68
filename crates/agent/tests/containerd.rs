//! The CRI runtime against a real containerd that the test's supervisor starts in a
//! temporary data dir: images imported without a registry, a pod sandbox on its own bridge
//! and pod CIDR, busybox containers that run, answer exec and HTTP, and exit with a code;
//! containerd restarted after a SIGKILL; and nothing left behind afterwards.
//!
//! Needs root, containerd, runc, the CNI plugins and busybox-static (`make test-deps`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ipnet::{IpNet, Ipv4Net};
use navarch_agent::containerd::{
    self, network, CgroupDriver, Containerd, ContainerdConfig, Layout, PAUSE_IMAGE,
};
use navarch_agent::runtime::cri::{self, CriOptions, CriRuntime};
use navarch_agent::runtime::{
    ContainerConfig, ContainerEventKind, ContainerState, PodSandboxConfig, Runtime, SandboxState,
};
use navarch_agent::stats::Collector;
use navarch_agent::RuntimeError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BUSYBOX: &str = "navarch.local/busybox:1";
const WAIT: Duration = Duration::from_secs(30);

/// Poll `check` until it yields a value, for at most [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last = Some(e),
        }
        if Instant::now() > deadline {
            match last {
                Some(e) => bail!("timed out waiting for {what}: {e:#}"),
                None => bail!("timed out waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn runc() -> PathBuf {
    if let Some(path) = std::env::var_os("NAVARCH_TEST_RUNC") {
        return PathBuf::from(path);
    }
    ["/usr/sbin/runc", "/usr/bin/runc"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("runc"))
}

/// A /24 for the pods and the /22 around it for a blackhole route, unique enough for tests
/// running at the same time, outside the cluster CIDR that real nodes use.
fn test_networks() -> (Ipv4Net, Ipv4Net) {
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
    let third = ((seed % 64) * 4) as u8;
    let pods = Ipv4Net::new([10, 241, third, 0].into(), 24).unwrap();
    let around = Ipv4Net::new([10, 241, third, 0].into(), 22).unwrap();
    (pods, around)
}

/// Everything the test creates on the host, removed on drop even when the test fails:
/// sandboxes (through CRI), containerd, mounts under the data dir, the bridge, the route.
struct Node {
    dir: tempfile::TempDir,
    layout: Layout,
    containerd: Option<Containerd>,
    bridge: String,
    blackhole: IpNet,
    /// Set until the test passes, so that a failure shows containerd's log.
    failed: bool,
    /// A dummy interface standing for "off the machine", when the test made one.
    outside: Option<String>,
}

impl Node {
    fn socket(&self) -> PathBuf {
        self.layout.socket()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() || self.failed {
            // The end of containerd's log says why a runtime call failed.
            let log = std::fs::read_to_string(self.layout.log_file()).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("containerd log (last 40 lines):");
            for line in &lines[lines.len().saturating_sub(40)..] {
                eprintln!("  {line}");
            }
        }
        let layout = self.layout.clone();
        let bridge = self.bridge.clone();
        let blackhole = self.blackhole;
        if let Some(outside) = self.outside.take() {
            let _ = std::process::Command::new("ip")
                .args(["link", "delete", &outside])
                .status();
        }
        let pid = self.containerd.as_ref().and_then(|c| c.pid());
        // Drop cannot await, and the test's runtime may be the one unwinding: clean up on a
        // thread with its own runtime while containerd still runs.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                if pid.is_some() {
                    let options = CriOptions::new(layout.socket(), layout.pod_log_dir());
                    if let Ok(runtime) = CriRuntime::connect(options).await {
                        if let Err(e) = runtime.remove_all_pod_sandboxes().await {
                            eprintln!("cleanup: cannot remove sandboxes: {e}");
                        }
                    }
                }
                if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
                if let Err(e) = containerd::cleanup_host(&layout, &bridge).await {
                    eprintln!("cleanup: {e}");
                }
                let _ = network::remove_blackhole_routes(&[blackhole]).await;
            });
        });
        let _ = cleanup.join();
        drop(self.containerd.take());
        // The temporary data dir goes last, after everything that used it.
    }
}

async fn start_node() -> anyhow::Result<(Node, Ipv4Net)> {
    ensure!(
        rustix::process::geteuid().is_root(),
        "this test runs containers and needs root"
    );
    let dir = tempfile::Builder::new().prefix("nvctd").tempdir()?;
    let layout = Layout::new(dir.path());
    let name = dir
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (pods, around) = test_networks();
    let mut node = Node {
        dir,
        layout: layout.clone(),
        containerd: None,
        bridge: containerd::config::bridge_name(&name),
        blackhole: IpNet::V4(around),
        failed: true,
        outside: None,
    };
    let config = ContainerdConfig {
        layout: layout.clone(),
        cgroup_driver: CgroupDriver::detect(),
        sandbox_image: PAUSE_IMAGE.to_string(),
        runc: runc(),
        restrict_oom_score_adj: !containerd::config::can_lower_oom_score_adj(),
    };
    let started = Instant::now();
    node.containerd = Some(
        Containerd::start(config, "containerd")
            .await
            .context("containerd did not start (is the containerd package installed?)")?,
    );
    eprintln!("containerd up in {:?}", started.elapsed());
    Ok((node, pods))
}

fn build_busybox(dir: &Path) -> anyhow::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-test-image.sh");
    let out = dir.join("busybox.tar");
    let status = std::process::Command::new(script)
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot run scripts/build-test-image.sh")?;
    ensure!(status.success(), "build-test-image.sh failed");
    Ok(out)
}

fn pod(name: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        name: name.to_string(),
        namespace: "default".to_string(),
        uid: format!("{name}-{}", std::process::id()),
        attempt: 0,
        hostname: name.to_string(),
        ..Default::default()
    }
}

fn busybox(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.to_string(),
        image: BUSYBOX.to_string(),
        command: vec!["sh".to_string(), "-c".to_string()],
        args: vec![script.to_string()],
        env: vec![("GREETING".to_string(), "hi".to_string())],
        ..Default::default()
    }
}

async fn http_get(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
            .await??;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut response)).await??;
    Ok(response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_in_real_containers_and_leave_nothing_behind() -> anyhow::Result<()> {
    let (mut node, pod_cidr) = start_node().await?;
    let socket = node.socket();

    // Images without a registry: the agent's pause image and the busybox test image.
    containerd::import_pause_image(&node.layout).await?;
    let archive = build_busybox(node.dir.path())?;
    let imported = containerd::import_image(&socket, &archive).await?;
    ensure!(
        imported.iter().any(|name| name == BUSYBOX),
        "imported {imported:?}"
    );
    let listed = cri::list_images(&socket).await?;
    for wanted in [PAUSE_IMAGE, BUSYBOX] {
        ensure!(
            listed
                .iter()
                .any(|i| i.repo_tags.iter().any(|t| t == wanted)),
            "{wanted} not in {listed:?}"
        );
    }

    // The pod network, and the blackhole around it.
    containerd::write_cni_config(&node.layout, &node.bridge, pod_cidr)?;
    network::ensure_blackhole_routes(&[node.blackhole]).await?;
    let runtime = CriRuntime::connect(CriOptions::new(&socket, node.layout.pod_log_dir())).await?;
    wait_for("the CNI network", || async {
        Ok(runtime.network_ready().await?.then_some(()))
    })
    .await?;
    ensure!(runtime.version().name == "containerd");
    let mut events = runtime.container_events();

    // A registry that cannot be reached: the pull fails, as the pod worker expects.
    let config = pod("web");
    let pull = runtime.pull_image("127.0.0.1:1/absent:1", &config).await;
    ensure!(
        matches!(pull, Err(RuntimeError::ImagePull { .. })),
        "{pull:?}"
    );
    ensure!(runtime.image_status(BUSYBOX).await?.is_some());

    let sandbox_id = runtime.run_pod_sandbox(&config).await?;
    let sandbox = runtime.pod_sandbox_status(&sandbox_id).await?;
    ensure!(sandbox.state == SandboxState::Ready);
    let Some(std::net::IpAddr::V4(pod_ip)) = sandbox.ip else {
        bail!("the sandbox has no IPv4 address: {sandbox:?}");
    };
    ensure!(pod_cidr.contains(&pod_ip), "{pod_ip} not in {pod_cidr}");
    let netns = runtime
        .sandbox_netns(&sandbox_id)
        .await?
        .context("the sandbox has no network namespace path")?;
    ensure!(netns.exists());

    // The range around the pods is a blackhole; the pods' /24 goes to the bridge.
    let ip = |args: &[&str]| -> anyhow::Result<String> {
        let output = std::process::Command::new("ip").args(args).output()?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let blackholes = ip(&["route", "show", "type", "blackhole"])?;
    ensure!(
        blackholes.contains(&node.blackhole.to_string()),
        "{blackholes}"
    );
    let to_pod = ip(&["route", "get", &pod_ip.to_string()])?;
    ensure!(to_pod.contains(&format!("dev {}", node.bridge)), "{to_pod}");

    let server = busybox(
        "server",
        "httpd -p 8080 -h /var/www; echo $GREETING; exec sleep 3600",
    );
    let server_id = runtime
        .create_container(&sandbox_id, &server, &config)
        .await?;
    runtime.start_container(&server_id).await?;
    let status = runtime.container_status(&server_id).await?;
    ensure!(status.state == ContainerState::Running, "{status:?}");
    ensure!(status.sandbox_id == sandbox_id && status.pod_uid == config.uid);
    ensure!(status.started_at.is_some() && status.image == BUSYBOX);

    let exec = runtime
        .exec_sync(
            &server_id,
            &["echo".to_string(), "ok".to_string()],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(exec.exit_code == 0, "{exec:?}");
    ensure!(String::from_utf8_lossy(&exec.stdout).trim() == "ok");

    // The host reaches the pod over the bridge.
    let page = wait_for("the pod's HTTP server", || async {
        Ok(http_get((pod_ip, 8080).into()).await.ok())
    })
    .await?;
    ensure!(page.contains("navarch test image"), "{page}");

    // The pod's and the container's cgroups give CPU time and a working set.
    let collector = Collector {
        runtime: std::sync::Arc::new(runtime.clone()),
        driver: CgroupDriver::detect(),
        root: "/sys/fs/cgroup".into(),
    };
    if collector.driver == CgroupDriver::Cgroupfs {
        let stats = collector.collect().await;
        let pod_stats = stats
            .get(&config.uid)
            .context("no statistics for the pod")?;
        let usage = pod_stats
            .containers
            .get("server")
            .context("no statistics for the server container")?;
        ensure!(
            usage.memory_working_set > 0 && usage.cpu_usage_ns > 0,
            "{pod_stats:?}"
        );
        ensure!(
            pod_stats.usage.memory_usage >= usage.memory_usage,
            "{pod_stats:?}"
        );
    }

    // A connection from the pod to an address beyond another interface is dropped by the
    // egress filter. That interface is one end of a veth pair whose other end is on this
    // machine too (and ignores the frames), so nothing could leave even without the filter.
    let outside = format!("ctdo{}", &node.bridge[2..]);
    let peer = format!("ctdp{}", &node.bridge[2..]);
    let third = pod_cidr.network().octets()[2];
    let far = format!("198.18.{third}.2");
    let subnet = format!("198.18.{third}.1/24");
    node.outside = Some(outside.clone());
    let ip_ok = |args: &[&str]| -> anyhow::Result<()> {
        let status = std::process::Command::new("ip").args(args).status()?;
        ensure!(status.success(), "ip {args:?} failed");
        Ok(())
    };
    ip_ok(&[
        "link", "add", &outside, "type", "veth", "peer", "name", &peer,
    ])?;
    for name in [&outside, &peer] {
        // No IPv6 chatter on these links, so their packet counters move only for the pod.
        std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1")?;
    }
    ip_ok(&["addr", "add", &subnet, "dev", &outside])?;
    ip_ok(&["link", "set", &outside, "up"])?;
    ip_ok(&["link", "set", &peer, "up"])?;
    ip_ok(&[
        "neigh",
        "replace",
        &far,
        "lladdr",
        "02:00:00:00:00:01",
        "dev",
        &outside,
    ])?;
    network::ensure_pod_egress_filter(&node.bridge).await?;
    let sent = || -> anyhow::Result<u64> {
        let path = format!("/sys/class/net/{outside}/statistics/tx_packets");
        Ok(std::fs::read_to_string(path)?.trim().parse()?)
    };
    let before = sent()?;
    let attempt = runtime
        .exec_sync(
            &server_id,
            &[
                "nc".into(),
                "-w".into(),
                "1".into(),
                far.clone(),
                "80".into(),
            ],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(attempt.exit_code != 0, "the pod reached {far}: {attempt:?}");
    ensure!(
        sent()? == before,
        "the pod's packets went out through {outside}"
    );

    // The relist turns the start into an event.
    wait_for("a Started event", || {
        let found = loop {
            match events.try_recv() {
                Ok(event)
                    if event.container_id == server_id
                        && event.kind == ContainerEventKind::Started =>
                {
                    break Some(())
                }
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        async move { Ok(found) }
    })
    .await?;

    let exiter_id = runtime
        .create_container(&sandbox_id, &busybox("exiter", "exit 3"), &config)
        .await?;
    runtime.start_container(&exiter_id).await?;
    let exited = wait_for("the exiting container", || async {
        let status = runtime.container_status(&exiter_id).await?;
        Ok((status.state == ContainerState::Exited).then_some(status))
    })
    .await?;
    ensure!(exited.exit_code == 3, "{exited:?}");
    ensure!(exited.finished_at.is_some());
    let log = std::fs::read_to_string(
        node.layout
            .pod_log_dir()
            .join(format!("default_web_{}", config.uid))
            .join("server/0.log"),
    )?;
    ensure!(log.contains(" stdout F hi"), "{log}");

    // containerd killed outright comes back, and the running container with it.
    let first = node
        .containerd
        .as_ref()
        .and_then(|c| c.pid())
        .context("pid")?;
    let pid = rustix::process::Pid::from_raw(first as i32).context("pid")?;
    rustix::process::kill_process(pid, rustix::process::Signal::KILL)?;
    wait_for("containerd to restart", || async {
        let pid = node.containerd.as_ref().and_then(|c| c.pid());
        if pid.is_none() || pid == Some(first) {
            return Ok(None);
        }
        let status = runtime.container_status(&server_id).await?;
        Ok((status.state == ContainerState::Running).then_some(()))
    })
    .await?;

    runtime
        .stop_container(&server_id, Duration::from_secs(1))
        .await?;
    let stopped = runtime.container_status(&server_id).await?;
    ensure!(stopped.state == ContainerState::Exited, "{stopped:?}");
    for id in [&server_id, &exiter_id] {
        runtime.remove_container(id).await?;
    }
    ensure!(runtime.list_containers(Some(&sandbox_id)).await?.is_empty());
    runtime.stop_pod_sandbox(&sandbox_id).await?;
    runtime.remove_pod_sandbox(&sandbox_id).await?;
    ensure!(matches!(
        runtime.pod_sandbox_status(&sandbox_id).await,
        Err(RuntimeError::NotFound { .. })
    ));
    ensure!(!netns.exists(), "{} is left", netns.display());
    ensure!(
        std::fs::read_dir(node.layout.pod_log_dir())?
            .next()
            .is_none(),
        "pod logs are left"
    );
    let cgroups: HashSet<_> = std::fs::read_dir("/sys/fs/cgroup")?
        .flatten()
        .map(|h| h.path().join(format!("navarch/pod{}", config.uid)))
        .filter(|p| p.exists())
        .collect();
    ensure!(cgroups.is_empty(), "cgroups left: {cgroups:?}");

    // Stopping containerd and cleaning the host leaves nothing.
    let containerd = node.containerd.take().context("containerd")?;
    let pid = containerd.pid().context("containerd runs")?;
    containerd.stop().await;
    ensure!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "containerd {pid} still runs"
    );
    containerd::cleanup_host(&node.layout, &node.bridge).await?;
    ensure!(!network::link_exists(&node.bridge), "bridge left");
    let mounts = containerd::mounts_under(node.dir.path());
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
    let shims = std::fs::read_dir("/proc")?
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .filter(|cmd| {
            String::from_utf8_lossy(cmd).contains(&*node.layout.socket().to_string_lossy())
        })
        .count();
    ensure!(shims == 0, "{shims} processes still use the socket");
    node.failed = false;
    Ok(())
}

/// An agent that was killed leaves its containerd running; the next start on the same
/// data dir stops that one and runs its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containerd_left_running_is_replaced_on_start() -> anyhow::Result<()> {
    let (mut node, _) = start_node().await?;
    let first = node.containerd.take().context("containerd")?;
    first.stop().await;

    // What a killed agent leaves behind: containerd running with the node's configuration.
    let layout = node.layout.clone();
    let mut orphan = std::process::Command::new("containerd")
        .arg("--config")
        .arg(layout.config_file())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    std::fs::write(layout.pid_file(), format!("{}\n", orphan.id()))?;
    wait_for("the orphan's socket", || async {
        Ok(tokio::net::UnixStream::connect(layout.socket())
            .await
            .ok()
            .map(|_| ()))
    })
    .await?;

    let config = ContainerdConfig {
        layout: layout.clone(),
        cgroup_driver: CgroupDriver::detect(),
        sandbox_image: PAUSE_IMAGE.to_string(),
        runc: runc(),
        restrict_oom_score_adj: !containerd::config::can_lower_oom_score_adj(),
    };
    let second = Containerd::start(config, "containerd").await?;
    let status = orphan.try_wait()?;
    ensure!(status.is_some(), "the orphaned containerd still runs");
    ensure!(second.pid() != Some(orphan.id()));
    node.containerd = Some(second);
    ensure!(cri::list_images(&layout.socket()).await.is_ok());
    node.failed = false;
    Ok(())
}
