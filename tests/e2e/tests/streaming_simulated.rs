//! `kubectl logs` and `kubectl exec` against a simulated node (`navarch up --runtime
//! simulated`): the log is one synthetic line, exec is refused with a reason.

use std::time::Duration;

use anyhow::{ensure, Result};
use navarch_e2e::{wait_for, Kubectl, Server};

const BOUND: Duration = Duration::from_secs(30);

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: sim}
spec:
  containers:
  - {name: main, image: busybox}
"#;

#[test]
fn simulated_nodes_answer_logs_with_a_line_and_refuse_exec() -> Result<()> {
    let root = tempfile::tempdir()?;
    let data_dir = root.path().join("data");
    let server = Server::start_command(
        "up",
        &data_dir,
        &[
            "--runtime",
            "simulated",
            "--bind-address",
            "127.0.0.1",
            "--node-name",
            "sim-streaming",
        ],
    )?;
    let kubeconfig = server.kubeconfig();
    let manifest = root.path().join("pod.yaml");
    std::fs::write(&manifest, POD)?;
    for version in ["kubectl.1.27", "kubectl.1.33"] {
        let kubectl = Kubectl::new(version)?;
        if version == "kubectl.1.27" {
            kubectl.stdout(&kubeconfig, &["apply", "-f", &manifest.to_string_lossy()])?;
            wait_for(BOUND, "the pod to run", || {
                let phase = kubectl
                    .stdout(
                        &kubeconfig,
                        &["get", "pod", "sim", "-o", "jsonpath={.status.phase}"],
                    )
                    .ok()?;
                (phase == "Running").then_some(())
            })?;
        }
        let log = kubectl.stdout(&kubeconfig, &["logs", "sim"])?;
        ensure!(
            log.contains("simulated node") && log.lines().count() == 1,
            "{version} logs: {log:?}"
        );
        let exec = kubectl.run(&kubeconfig, &["exec", "sim", "--", "ls"])?;
        let stderr = String::from_utf8_lossy(&exec.stderr);
        ensure!(
            !exec.status.success() && stderr.contains("not available on a simulated node"),
            "{version} exec: {exec:?}"
        );
    }
    ensure!(server.stop()?.success(), "navarch up did not exit cleanly");
    Ok(())
}
