//! `navarch up`: a single-node cluster in one process. The control plane starts first
//! ([`crate::server::start`]); then this machine's node agent registers the node — named after
//! the host and labelled `node-role.kubernetes.io/control-plane` — through an in-process client
//! acting as `system:node:NAME`. Progress goes to stderr; once the node is Ready, stdout gets the
//! kubeconfig path and a one-line hint. Data stays in the data dir, so a second `navarch up`
//! continues the same cluster.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::wait::await_condition;
use kube::Api;
use tokio_util::sync::CancellationToken;

use crate::agent;
use crate::cli::{RuntimeKind, UpArgs};
use crate::in_process;
use crate::server;

/// How long the node may take to become Ready before `up` says so (it keeps waiting).
const READY_PATIENCE: Duration = Duration::from_secs(30);

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let started = Instant::now();
    let name = match &args.node_name {
        Some(name) => name.clone(),
        None => agent::hostname()?,
    };
    progress(format_args!(
        "starting the control plane in {}",
        args.server.data_dir.display()
    ));
    let Some(control_plane) = server::start(&args.server, shutdown.clone()).await? else {
        return Ok(());
    };
    progress(format_args!(
        "control plane ready ({:.1}s); starting node {name}",
        started.elapsed().as_secs_f64()
    ));
    let client = in_process::client(
        control_plane.server.router(),
        &format!("system:node:{name}"),
        &["system:nodes"],
    );
    let mut config = agent::node_config(&name, args.node_ip, &args.node);
    config.control_plane = true;

    let kubeconfig = control_plane.server.kubeconfig_path().to_path_buf();
    let nodes: Api<Node> = Api::all(client.clone());
    let announce = async {
        let ready = await_condition(nodes, &name, node_is_ready);
        tokio::pin!(ready);
        if tokio::time::timeout(READY_PATIENCE, &mut ready)
            .await
            .is_err()
        {
            progress(format_args!(
                "node {name} is not Ready after {}s; still waiting",
                READY_PATIENCE.as_secs()
            ));
            ready.await.context("cannot watch the node")?;
        }
        progress(format_args!(
            "node {name} is Ready; cluster up in {:.1}s",
            started.elapsed().as_secs_f64()
        ));
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "{path}\nexport KUBECONFIG={path}; kubectl get nodes",
            path = kubeconfig.display()
        )
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
    };
    let streaming_ca = Some(control_plane.server.pki().ca_pem().to_string());
    let node_shutdown = shutdown.clone();
    let fleet = async move {
        let shutdown = node_shutdown;
        match args.runtime {
            RuntimeKind::Simulated => {
                agent::run_fleet(
                    client.clone(),
                    vec![config],
                    &args.node,
                    false,
                    false,
                    streaming_ca,
                    shutdown.clone(),
                )
                .await
            }
            RuntimeKind::Containerd => {
                // Pod and service traffic never leaves the machine.
                let blackhole = vec![args.server.cluster_cidr, args.server.service_cidr];
                agent::run_containerd(
                    client.clone(),
                    config,
                    &args.server.data_dir,
                    args.container_runtime_endpoint.as_deref(),
                    blackhole,
                    &args.node,
                    streaming_ca,
                    shutdown.clone(),
                )
                .await
            }
        }
    };
    tokio::pin!(fleet);
    let result = tokio::select! {
        result = &mut fleet => result,
        announced = announce => match announced {
            Ok(()) => fleet.await,
            Err(e) => Err(e),
        },
    };
    if result.is_err() {
        // The node failed: take the control plane down with it.
        shutdown.cancel();
    }
    control_plane.wait(shutdown).await;
    result
}

fn node_is_ready(node: Option<&Node>) -> bool {
    node.and_then(|n| n.status.as_ref())
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn progress(line: std::fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "navarch up: {line}");
}
