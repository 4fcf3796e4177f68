//! `navarch server` as a user meets it: started as a process, reached with the real kubectl
//! through the kubeconfig it writes.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use navarch_e2e::{free_port, kubeconfig_ca, run_navarch, wait_for, Kubectl, Server};
use navarch_store::testing::EtcdServer;

/// Generous bound so that a loaded CI machine does not flake; the measured figure is printed.
const READY_BOUND: Duration = Duration::from_secs(10);

/// Poll `/readyz` with kubectl 1.33 until it answers `ok`; returns when it first did.
fn wait_ready(kubectl: &Kubectl, kubeconfig: &Path) -> Result<()> {
    wait_for(READY_BOUND, "/readyz to answer ok", || {
        kubectl
            .stdout(kubeconfig, &["get", "--raw", "/readyz"])
            .ok()
            .filter(|body| body == "ok")
    })
    .map(|_| ())
}

fn start_and_measure(data_dir: &Path, extra: &[&str], label: &str) -> Result<(Server, Kubectl)> {
    let started = Instant::now();
    let server = Server::start(data_dir, extra)?;
    let kubectl = Kubectl::new("kubectl.1.33")?;
    wait_ready(&kubectl, &server.kubeconfig())?;
    let ready = started.elapsed();
    println!(
        "{label}: kubeconfig after {} ms, first kubectl /readyz ok after {} ms (kubectl itself takes most of that)",
        server.time_to_kubeconfig.as_millis(),
        ready.as_millis()
    );
    assert!(
        ready < READY_BOUND,
        "{label}: not ready within {READY_BOUND:?}"
    );
    Ok((server, kubectl))
}

#[test]
fn server_on_sqlite_answers_readyz_to_kubectl() -> Result<()> {
    let root = tempfile::tempdir()?;
    let (server, kubectl) = start_and_measure(&root.path().join("data"), &[], "sqlite")?;

    let body = kubectl.stdout(&server.kubeconfig(), &["get", "--raw", "/readyz"])?;
    assert_eq!(body, "ok");
    let verbose = kubectl.stdout(&server.kubeconfig(), &["get", "--raw", "/readyz?verbose"])?;
    assert!(verbose.contains("[+]store ok"), "{verbose}");
    assert!(verbose.ends_with("readyz check passed\n"), "{verbose}");
    assert!(server.data_dir().join("state.db").is_file());
    Ok(())
}

#[test]
fn dispatcher_picks_kubectl_1_33_from_version() -> Result<()> {
    let root = tempfile::tempdir()?;
    let server = Server::start(&root.path().join("data"), &[])?;
    let kubectl = Kubectl::new("kubectl")?;
    let out = kubectl.stdout(&server.kubeconfig(), &["version", "-o", "json"])?;
    let version: serde_json::Value = serde_json::from_str(&out)?;
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "33");
    let git_version = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("");
    assert!(git_version.starts_with("v1.33."), "{git_version}");
    assert_eq!(
        version["clientVersion"]["minor"], "33",
        "the dispatcher ran the kubectl matching the server: {out}"
    );
    Ok(())
}

#[test]
fn restart_on_the_same_data_dir_reuses_the_ca() -> Result<()> {
    let root = tempfile::tempdir()?;
    let data_dir = root.path().join("data");
    let first = Server::start(&data_dir, &[])?;
    let ca_before = kubeconfig_ca(&first.kubeconfig())?;
    let status = first.stop()?;
    assert!(status.success(), "graceful shutdown exits 0, got {status}");

    let (second, kubectl) = start_and_measure(&data_dir, &[], "restart")?;
    assert_eq!(kubeconfig_ca(&second.kubeconfig())?, ca_before);
    assert_eq!(
        kubectl.stdout(&second.kubeconfig(), &["get", "--raw", "/readyz"])?,
        "ok"
    );
    let stderr = second.stderr();
    assert!(
        !stderr.contains("generated cluster CA"),
        "the CA was regenerated: {stderr}"
    );
    Ok(())
}

#[test]
fn server_on_etcd_answers_readyz_to_kubectl() -> Result<()> {
    let etcd = EtcdServer::start()?;
    let root = tempfile::tempdir()?;
    let endpoint = etcd.endpoint();
    let (server, kubectl) = start_and_measure(
        &root.path().join("data"),
        &["--datastore-endpoint", &endpoint],
        "etcd",
    )?;
    assert_eq!(
        kubectl.stdout(&server.kubeconfig(), &["get", "--raw", "/readyz"])?,
        "ok"
    );
    assert!(!server.data_dir().join("state.db").exists());
    Ok(())
}

/// The process fails with exit code `code` and exactly one stderr line starting `prefix`.
fn assert_fails_with_one_line(args: &[&str], code: i32, prefix: &str) -> Result<()> {
    let output = run_navarch(args, Duration::from_secs(20))?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?} printed more than one line: {stderr}"
    );
    assert!(lines[0].starts_with(prefix), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "{args:?} printed to stdout");
    Ok(())
}

#[test]
fn unusable_data_dirs_fail_with_one_line() -> Result<()> {
    let root = tempfile::tempdir()?;
    let file = root.path().join("file");
    std::fs::write(&file, "not a directory")?;
    let port = free_port().to_string();
    let file_arg = file.to_str().unwrap_or_default();
    assert_fails_with_one_line(
        &["server", "--data-dir", file_arg, "--secure-port", &port],
        1,
        &format!("navarch: error: data dir {file_arg} is not a directory"),
    )?;
    let below = file.join("sub");
    assert_fails_with_one_line(
        &[
            "server",
            "--data-dir",
            below.to_str().unwrap_or_default(),
            "--secure-port",
            &port,
        ],
        1,
        "navarch: error: cannot access data dir",
    )
}

#[test]
fn invalid_flags_fail() -> Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("data");
    let data = data.to_str().unwrap_or_default();
    for bad in [
        vec![
            "server",
            "--data-dir",
            data,
            "--cluster-cidr",
            "10.42.0.1/16",
        ],
        vec!["server", "--data-dir", data, "--service-cidr", "nonsense"],
        vec!["server", "--data-dir", data, "--secure-port", "99999"],
        vec![
            "server",
            "--data-dir",
            data,
            "--datastore-endpoint",
            "mysql://x",
        ],
        vec!["server", "--no-such-flag"],
    ] {
        let output = run_navarch(&bad, Duration::from_secs(20))?;
        assert_eq!(output.status.code(), Some(2), "{bad:?} is a usage error");
        assert!(
            String::from_utf8_lossy(&output.stderr).starts_with("error: "),
            "{bad:?}"
        );
    }
    let port = free_port().to_string();
    assert_fails_with_one_line(
        &[
            "server",
            "--data-dir",
            data,
            "--secure-port",
            &port,
            "--cluster-cidr",
            "10.0.0.0/8",
        ],
        1,
        "navarch: error: --cluster-cidr 10.0.0.0/8 and --service-cidr 10.43.0.0/16 overlap",
    )
}

#[test]
fn unreachable_etcd_fails_within_seconds() -> Result<()> {
    let root = tempfile::tempdir()?;
    let data = root.path().join("data");
    // Nothing listens on a port that was just free.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    assert_fails_with_one_line(
        &[
            "server",
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--secure-port",
            &free_port().to_string(),
            "--datastore-endpoint",
            &endpoint,
        ],
        1,
        "navarch: error: cannot ",
    )?;
    let took = started.elapsed();
    println!("unreachable etcd reported after {} ms", took.as_millis());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    Ok(())
}

#[test]
fn a_busy_port_fails_with_one_line() -> Result<()> {
    let root = tempfile::tempdir()?;
    let first = Server::start(&root.path().join("a"), &[])?;
    let port = first.port().to_string();
    let other = root.path().join("b");
    assert_fails_with_one_line(
        &[
            "server",
            "--data-dir",
            other.to_str().unwrap_or_default(),
            "--secure-port",
            &port,
        ],
        1,
        &format!("navarch: error: cannot listen on 0.0.0.0:{port}"),
    )
}
