//! `navarch up` as a user meets it: one process, a single-node cluster whose node is named
//! after the host and labelled control-plane, and a second `up` on the same data dir that
//! carries on with the same cluster. The simulated runtime keeps this test free of containers;
//! the containerd runtime has its own tests.

use anyhow::{ensure, Result};
use navarch_e2e::{wait_for, Kubectl, Server};
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(30);

fn up(data_dir: &std::path::Path) -> Result<Server> {
    Server::start_command(
        "up",
        data_dir,
        &["--runtime", "simulated", "--bind-address", "127.0.0.1"],
    )
}

#[test]
fn up_runs_a_ready_control_plane_node_and_keeps_its_data() -> Result<()> {
    let root = tempfile::tempdir()?;
    let data_dir = root.path().join("data");
    let kubectl = Kubectl::new("kubectl.1.33")?;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_lowercase();

    let server = up(&data_dir)?;
    let kubeconfig = server.kubeconfig();
    // The kubeconfig is printed once the node is Ready.
    let nodes = kubectl.stdout(&kubeconfig, &["get", "nodes", "--no-headers"])?;
    let fields: Vec<&str> = nodes.split_whitespace().collect();
    ensure!(
        fields.len() >= 3
            && fields[0] == hostname
            && fields[1] == "Ready"
            && fields[2] == "control-plane",
        "expected one Ready control-plane node named {hostname}, got {nodes:?}"
    );
    let uid = kubectl.stdout(
        &kubeconfig,
        &["get", "node", &hostname, "-o", "jsonpath={.metadata.uid}"],
    )?;
    kubectl.stdout(
        &kubeconfig,
        &["create", "configmap", "kept", "--from-literal=k=v"],
    )?;
    ensure!(server.stop()?.success(), "navarch up did not exit cleanly");

    // A second `up` continues the same cluster: same node object, same data.
    let server = up(&data_dir)?;
    let kubeconfig = server.kubeconfig();
    let again = kubectl.stdout(
        &kubeconfig,
        &["get", "node", &hostname, "-o", "jsonpath={.metadata.uid}"],
    )?;
    ensure!(again == uid, "the node was recreated: {uid} then {again}");
    let value = kubectl.stdout(
        &kubeconfig,
        &["get", "configmap", "kept", "-o", "jsonpath={.data.k}"],
    )?;
    ensure!(value == "v", "the configmap did not survive: {value:?}");
    wait_for(BOUND, "the node to be Ready again", || {
        kubectl
            .stdout(
                &kubeconfig,
                &[
                    "get",
                    "node",
                    &hostname,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ],
            )
            .ok()
            .filter(|s| s == "True")
    })?;
    ensure!(server.stop()?.success(), "navarch up did not exit cleanly");
    Ok(())
}
