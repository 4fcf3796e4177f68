//! `navarch agent --cleanup` and `navarch up --cleanup`: remove what the node put on this
//! machine ([`navarch_agent::containerd::cleanup`]) and exit.

use anyhow::Context;
use ipnet::IpNet;
use navarch_agent::containerd::cleanup::{cleanup_node, CleanupConfig};

use crate::agent::{self, DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR};
use crate::cli::{AgentArgs, UpArgs};

/// The agent's cleanup: its blackhole routes are the default cluster and service CIDRs.
pub async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    let routes = [DEFAULT_CLUSTER_CIDR, DEFAULT_SERVICE_CIDR]
        .iter()
        .map(|cidr| cidr.parse::<IpNet>())
        .collect::<Result<Vec<_>, _>>()?;
    let node_name = match args.node_name {
        Some(name) => name,
        None => agent::hostname()?,
    };
    run(CleanupConfig {
        data_dir: args.data_dir,
        node_name,
        blackhole_routes: routes,
    })
    .await
}

/// `navarch up`'s node: the routes are the cluster's CIDRs as given to `up`.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let node_name = match args.node_name {
        Some(name) => name,
        None => agent::hostname()?,
    };
    run(CleanupConfig {
        data_dir: args.server.data_dir,
        node_name,
        blackhole_routes: vec![args.server.cluster_cidr, args.server.service_cidr],
    })
    .await
}

async fn run(config: CleanupConfig) -> anyhow::Result<()> {
    cleanup_node(&config).await.with_context(|| {
        format!(
            "cannot clean up node {} in {}",
            config.node_name,
            config.data_dir.display()
        )
    })?;
    eprintln!(
        "navarch: removed node {}'s containers, network and state in {}",
        config.node_name,
        config.data_dir.display()
    );
    Ok(())
}
