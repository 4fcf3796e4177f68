//! Throughput of `kubectl exec` stdout and `kubectl port-forward` against `navarch up` on
//! containerd: 100 MiB through each transport, beside the same bytes read locally and
//! fetched from the pod directly. A benchmark, not a test: it prints figures and is ignored
//! by default.
//!
//!     cargo nextest run -p navarch-e2e --test streaming_throughput --run-ignored only --no-capture

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use navarch_e2e::up::{UpCluster, BUSYBOX};
use navarch_e2e::{free_port, output_within, wait_for, Background, Kubectl};

const SIZE: usize = 100 << 20;
const BOUND: Duration = Duration::from_secs(120);

fn manifest() -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: big}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: {BUSYBOX}
    imagePullPolicy: Never
    command: [sh, -c, 'head -c {SIZE} /dev/urandom > /var/www/big && exec httpd -f -p 8080 -h /var/www']
"#
    )
}

fn mb_per_s(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / elapsed.as_secs_f64()
}

/// GET /big from `addr`; the body's length and the time it took.
fn fetch(addr: &str) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(b"GET /big HTTP/1.0\r\nHost: pod\r\n\r\n")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    let mut header_end = None;
    let mut head = Vec::new();
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if header_end.is_none() {
            head.extend_from_slice(&buf[..n]);
            if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                header_end = Some(i + 4);
                total = head.len() - (i + 4);
            }
        } else {
            total += n;
        }
    }
    Ok((total, started.elapsed()))
}

#[test]
#[ignore = "a benchmark: prints MB/s figures"]
fn exec_and_port_forward_throughput() -> Result<()> {
    let cluster = UpCluster::start("nvbenchstream")?;
    let kubeconfig = cluster.kubeconfig();
    cluster.import_busybox()?;
    let kubectl_new = Kubectl::new("kubectl.1.33")?;
    let kubectl_old = Kubectl::new("kubectl.1.27")?;
    let manifest_path = cluster.data_dir().with_extension("yaml");
    std::fs::write(&manifest_path, manifest())?;
    kubectl_new.stdout(
        &kubeconfig,
        &["apply", "-f", &manifest_path.to_string_lossy()],
    )?;
    wait_for(BOUND, "the file and httpd", || {
        let ip = kubectl_new
            .stdout(
                &kubeconfig,
                &["get", "pod", "big", "-o", "jsonpath={.status.podIP}"],
            )
            .ok()?;
        let (len, _) = fetch(&format!("{ip}:8080")).ok()?;
        (len == SIZE).then_some(ip)
    })?;
    let ip = kubectl_new.stdout(
        &kubeconfig,
        &["get", "pod", "big", "-o", "jsonpath={.status.podIP}"],
    )?;

    // Locally: the same number of bytes from a page-cached file.
    let local = tempfile::NamedTempFile::new()?;
    std::fs::write(local.path(), vec![7u8; SIZE])?;
    let started = Instant::now();
    let read = std::fs::read(local.path())?.len();
    let local_rate = mb_per_s(read, started.elapsed());
    println!("local file read:               {local_rate:8.1} MB/s");
    let (len, took) = fetch(&format!("{ip}:8080"))?;
    ensure!(len == SIZE, "direct: {len} bytes");
    println!(
        "HTTP from the pod IP:          {:8.1} MB/s",
        mb_per_s(len, took)
    );

    for (name, kubectl) in [
        ("1.33 (WebSocket v5)", &kubectl_new),
        ("1.27 (SPDY)", &kubectl_old),
    ] {
        let started = Instant::now();
        let out = output_within(
            kubectl.command(&kubeconfig, &["exec", "big", "--", "cat", "/var/www/big"]),
            BOUND,
        )?;
        let took = started.elapsed();
        ensure!(
            out.status.success() && out.stdout.len() == SIZE,
            "exec: {} bytes",
            out.stdout.len()
        );
        println!(
            "exec cat, kubectl {name:<20}{:8.1} MB/s",
            mb_per_s(SIZE, took)
        );
    }

    for (name, kubectl) in [
        ("1.33 (SPDY in WebSocket)", &kubectl_new),
        ("1.27 (SPDY)", &kubectl_old),
    ] {
        let port = free_port();
        let mut forward = Background::spawn(kubectl.command(
            &kubeconfig,
            &["port-forward", "pod/big", &format!("{port}:8080")],
        ))?;
        forward.wait_for_line(BOUND, "port-forward to listen", |l| {
            l.contains(&format!(":{port} ->"))
        })?;
        let (len, took) = fetch(&format!("127.0.0.1:{port}")).context("through port-forward")?;
        ensure!(len == SIZE, "port-forward: {len} bytes");
        println!(
            "port-forward, kubectl {name:<16}{:8.1} MB/s",
            mb_per_s(len, took)
        );
    }
    Ok(())
}
