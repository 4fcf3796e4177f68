//! `navarch agent` and `navarch simulate`: build the client and the node settings from the
//! flags and run a fleet ([`navarch_agent::fleet`]) of one node or of N simulated ones.
//!
//! Credentials: `--kubeconfig`, or `--server` + `--token` with the cluster CA from `--ca-file`.
//! The agent turns the join token into its node's bearer token (`NAME.HMAC`, identity
//! `system:node:NAME`); `simulate` acts for many nodes and sends the join token itself.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use navarch_agent::containerd::{run_containerd_node, ContainerdNodeConfig, Layout};
use navarch_agent::fleet::{self, FleetConfig, Progress};
use navarch_agent::node::{NodeConfig, Timing};
use navarch_agent::pod::backoff::BackoffConfig;
use navarch_agent::streaming::backend::{Backend, CriBackend, SimulatedBackend};
use navarch_agent::streaming::rotate::{self, Rotation};
use navarch_agent::streaming::{self, StreamingConfig};
use navarch_apiserver::JoinToken;
use tokio_util::sync::CancellationToken;

use crate::cli::{AgentArgs, ConnectArgs, RuntimeKind, SimulateArgs, SimulatedNodeArgs};

/// Where `navarch server` keeps the CA by default, for agents on the same machine.
const DEFAULT_CA_FILE: &str = "/var/lib/navarch/tls/ca.crt";

pub async fn run_agent(args: AgentArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let name = match args.node_name {
        Some(name) => name,
        None => hostname()?,
    };
    let client = connect(&args.connect, Some(&name)).await?;
    let config = node_config(&name, args.node_ip, &args.node);
    let streaming_ca = cluster_ca(&args.connect);
    match args.runtime {
        RuntimeKind::Simulated => {
            run_fleet(
                client,
                vec![config],
                &args.node,
                false,
                true,
                streaming_ca,
                shutdown,
            )
            .await
        }
        RuntimeKind::Containerd => {
            let routes = vec![DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR]
                .into_iter()
                .map(|cidr| cidr.parse().expect("a valid CIDR"))
                .collect();
            run_containerd(
                client,
                config,
                &args.data_dir,
                args.container_runtime_endpoint.as_deref(),
                routes,
                &args.node,
                streaming_ca,
                shutdown,
            )
            .await
        }
    }
}

/// The cluster CA (PEM) from the agent's connection settings: the client certificates the
/// streaming server accepts are signed by it.
fn cluster_ca(args: &ConnectArgs) -> Option<String> {
    if let Some(path) = &args.kubeconfig {
        let config = Kubeconfig::read_from(path).ok()?;
        let cluster = config.clusters.first()?.cluster.as_ref()?;
        if let Some(data) = &cluster.certificate_authority_data {
            return String::from_utf8(STANDARD.decode(data.trim()).ok()?).ok();
        }
        return std::fs::read_to_string(cluster.certificate_authority.as_ref()?).ok();
    }
    std::fs::read_to_string(ca_file(args.ca_file.as_deref()).ok()?).ok()
}

/// Start the node's streaming server on `ip` (a free port) for `backend`, accepting only the
/// API server's client certificate signed by `ca_pem`. Returns the port; when `ip` is not
/// this machine's, the node runs without one (logs and exec answer 503) and keeps the
/// kubelet's default port.
async fn start_streaming(
    ip: IpAddr,
    ca_pem: String,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> anyhow::Result<i32> {
    let listener = match streaming::bind(ip).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, %ip, "cannot listen for the streaming server; logs and exec will not work");
            return Ok(navarch_agent::node::KUBELET_PORT);
        }
    };
    let port = listener.local_addr()?.port();
    let mut serving_names = vec![ip.to_string()];
    if let Ok(host) = hostname() {
        serving_names.push(host);
    }
    let config = StreamingConfig {
        client_ca_pem: ca_pem,
        allowed_users: vec![navarch_apiserver::proxy::KUBELET_CLIENT_USER.to_string()],
        serving_names,
    };
    tokio::spawn(async move {
        if let Err(e) = streaming::serve(listener, config, backend, shutdown).await {
            tracing::error!(error = %e, "the streaming server stopped");
        }
    });
    tracing::info!(port, "streaming server listening");
    Ok(i32::from(port))
}

/// The ranges an agent keeps on its machine when it does not know the cluster's own.
pub(crate) const DEFAULT_CLUSTER_CIDR: &str = "10.42.0.0/16";
pub(crate) const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";

/// Run one node on containerd — started by the agent in `data_dir`, or the CRI runtime at
/// `endpoint` — until `shutdown`. `blackhole_routes` are the cluster and service CIDRs.
#[allow(clippy::too_many_arguments)] // Each is one flag of `agent`/`up`; a struct would only rename them.
pub(crate) async fn run_containerd(
    client: Client,
    mut node: NodeConfig,
    data_dir: &Path,
    endpoint: Option<&str>,
    blackhole_routes: Vec<ipnet::IpNet>,
    sim: &SimulatedNodeArgs,
    streaming_ca: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    node.os_image = os_image();
    let endpoint = endpoint
        .map(navarch_agent::runtime::cri::endpoint_socket)
        .transpose()?;
    if let Some(ca) = streaming_ca {
        let layout = Layout::new(data_dir);
        let socket = endpoint.clone().unwrap_or_else(|| layout.socket());
        let backend = CriBackend::new(&socket, &layout.pod_log_dir());
        node.kubelet_port = start_streaming(
            node.internal_ip,
            ca,
            Arc::new(backend.clone()),
            shutdown.clone(),
        )
        .await?;
        tokio::spawn(rotate::run(backend, Rotation::default(), shutdown.clone()));
    }
    let config = ContainerdNodeConfig {
        node,
        data_dir: data_dir.to_path_buf(),
        endpoint,
        blackhole_routes,
        backoff: BackoffConfig {
            initial: sim.crashloop_backoff_initial,
            max: sim.crashloop_backoff_max,
        },
        timing: Timing::default(),
        stats: Default::default(),
    };
    let started = Instant::now();
    run_containerd_node(client, config, shutdown, |progress| {
        if let Progress::Ready { .. } = progress {
            tracing::info!(
                seconds = started.elapsed().as_secs_f64(),
                "node registered; running pods on containerd"
            );
        }
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

/// `PRETTY_NAME` from `/etc/os-release`, the Node's `osImage` as the kubelet reports it.
fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                .map(|value| value.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}

pub async fn run_simulate(args: SimulateArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let client = connect(&args.connect, None).await?;
    let width = (args.nodes - 1).to_string().len();
    let nodes = (0..args.nodes)
        .map(|i| {
            let name = format!("{}{:0width$}", args.name_prefix, i);
            // Simulated addresses: 172.30.0.0/16, one per node.
            let offset = i + 1;
            let ip = Ipv4Addr::new(172, 30, (offset >> 8) as u8, (offset & 0xff) as u8);
            node_config(&name, IpAddr::V4(ip), &args.node)
        })
        .collect();
    // Simulated nodes' addresses are not this machine's: no streaming server.
    run_fleet(
        client,
        nodes,
        &args.node,
        args.cleanup,
        true,
        None,
        shutdown,
    )
    .await
}

pub(crate) async fn run_fleet(
    client: Client,
    nodes: Vec<NodeConfig>,
    sim: &SimulatedNodeArgs,
    cleanup: bool,
    report: bool,
    streaming_ca: Option<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut nodes = nodes;
    if let (Some(ca), Some(first)) = (streaming_ca, nodes.first()) {
        // One server answers for every node of the fleet (simulated nodes all answer alike).
        let port = start_streaming(
            first.internal_ip,
            ca,
            Arc::new(SimulatedBackend),
            shutdown.clone(),
        )
        .await?;
        for node in &mut nodes {
            node.kubelet_port = port;
        }
    }
    let config = FleetConfig {
        nodes,
        runtime: None,
        sandbox_startup: sim.pod_startup,
        backoff: BackoffConfig {
            initial: sim.crashloop_backoff_initial,
            max: sim.crashloop_backoff_max,
        },
        timing: Timing::default(),
        cleanup,
        pod_files: None,
    };
    let started = Instant::now();
    let mut last_tenth = 0;
    fleet::run(client, config, shutdown, |progress| {
        if !report {
            return;
        }
        let line = match progress {
            Progress::Registering { registered, total } => {
                // Every tenth of the way, to show progress without flooding.
                let tenth = registered * 10 / total.max(1);
                if registered == 0 || tenth == last_tenth || registered == total {
                    return;
                }
                last_tenth = tenth;
                format!("registered {registered}/{total} nodes")
            }
            Progress::Ready { total } => format!(
                "{total} nodes ready in {:.2}s",
                started.elapsed().as_secs_f64()
            ),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}").and_then(|()| stdout.flush());
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

pub(crate) fn node_config(name: &str, ip: IpAddr, sim: &SimulatedNodeArgs) -> NodeConfig {
    NodeConfig {
        name: name.to_string(),
        cpu: sim.cpu.clone(),
        memory: sim.memory.clone(),
        ephemeral_storage: sim.ephemeral_storage.clone(),
        max_pods: sim.max_pods,
        internal_ip: ip,
        // Assigned by the node IPAM controller.
        pod_cidr: None,
        labels: Default::default(),
        control_plane: false,
        kubelet_version: navarch_apiserver::version::VersionInfo::current().git_version,
        runtime_version: fleet::simulated_runtime_version(),
        kernel_version: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        os_image: "Navarch simulated node".to_string(),
        kubelet_port: navarch_agent::node::KUBELET_PORT,
        host_data_dir: None,
        reserved: sim.system_reserved.plus(sim.kube_reserved),
    }
}

pub(crate) fn hostname() -> anyhow::Result<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .context("cannot read this machine's hostname; pass --node-name")?;
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        bail!("this machine has no hostname; pass --node-name");
    }
    Ok(name)
}

/// A client from `--kubeconfig`, or from `--server` and a bearer token: the node's token
/// derived from the join token when `node` is given, the join token itself otherwise.
async fn connect(args: &ConnectArgs, node: Option<&str>) -> anyhow::Result<Client> {
    let kubeconfig = match (&args.kubeconfig, &args.server, &args.token) {
        (Some(path), _, _) => Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read kubeconfig {}", path.display()))?,
        (None, Some(server), Some(token)) => {
            let join = JoinToken::new(token.trim());
            let bearer = match node {
                Some(name) => join.node_token(name),
                None => join.secret().to_string(),
            };
            let ca_file = ca_file(args.ca_file.as_deref())?;
            let ca = std::fs::read(&ca_file)
                .with_context(|| format!("cannot read CA file {}", ca_file.display()))?;
            Kubeconfig::from_yaml(&token_kubeconfig(server, &ca, &bearer))
                .context("cannot build the client configuration")?
        }
        _ => bail!("pass --server and --token, or --kubeconfig"),
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("invalid client configuration")?;
    Client::try_from(config).context("cannot create the API client")
}

fn ca_file(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let default = PathBuf::from(DEFAULT_CA_FILE);
    if default.is_file() {
        return Ok(default);
    }
    bail!(
        "--ca-file is required with --token: the server's DATA_DIR/tls/ca.crt (not found at {DEFAULT_CA_FILE})"
    )
}

/// A kubeconfig with one cluster trusting `ca_pem` and one bearer-token user. Only a URL,
/// base64 and the token (hex and DNS-name characters) are interpolated; the server URL is
/// quoted.
fn token_kubeconfig(server: &str, ca_pem: &[u8], token: &str) -> String {
    let server = serde_json::to_string(server).unwrap_or_default();
    let token = serde_json::to_string(token).unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: navarch
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: node
  user:
    token: {token}
contexts:
- name: navarch
  context:
    cluster: navarch
    user: node
current-context: navarch
",
        ca = STANDARD.encode(ca_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_kubeconfigs_parse() {
        let text = token_kubeconfig("https://127.0.0.1:6443", b"CA", "n1.abcd");
        let config = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(
            config.clusters[0]
                .cluster
                .as_ref()
                .unwrap()
                .server
                .as_deref(),
            Some("https://127.0.0.1:6443")
        );
        assert_eq!(config.current_context.as_deref(), Some("navarch"));
    }
}
