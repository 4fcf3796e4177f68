//! The controller manager: one module per controller, each a level-triggered reconcile loop
//! over the public API through a `kube::Client`. Start at [`run`], which runs them all until
//! shutdown; each controller splits into a pure planning function (unit-tested with fixtures
//! and the ordered list of actions it takes) and the loop that performs the actions.
//!
//! - [`deployment`]: ReplicaSets for Deployments: rolling and recreate rollouts, revisions,
//!   rollback, pause, progress deadlines.
//! - [`replicaset`]: pods for ReplicaSets, with expectations and slow-start creation.
//! - [`gc`]: the garbage collector over the ownerReferences graph of every resource:
//!   background, foreground and orphan deletion.
//! - [`ipam`]: a block of the cluster network for every node.
//! - [`nodelifecycle`], [`tainteviction`], [`podgc`]: nodes that stop reporting turn Unknown
//!   and tainted, pods leave nodes with `NoExecute` taints, pods of lost nodes are collected.
//! - [`resourcequota`]: ResourceQuota usage in `status.used`.
//! - [`endpoints`], [`endpointslice`]: Endpoints and EndpointSlices for Services with a
//!   selector.
//! - [`serviceaccount`]: a `default` ServiceAccount in every namespace.
//!
//! They run only while this process holds the controller manager's Lease ([`leader`]).

pub mod deployment;
pub mod endpoints;
pub mod endpointslice;
pub mod error;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod ipam;
pub mod leader;
pub mod nodelifecycle;
pub mod podgc;
pub mod pods;
pub mod replicaset;
pub mod resourcequota;
pub mod retry;
pub mod serviceaccount;
pub mod tainteviction;

pub use error::{Error, Result};

use std::time::Duration;

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Settings of the controllers (the server's flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// The pod network; each node gets a block of it (`--cluster-cidr`).
    pub cluster_cidr: ipnet::Ipv4Net,
    /// Prefix length of each node's block.
    pub node_cidr_mask: u8,
    /// A node whose kubelet has not renewed its Lease or posted status for this long turns
    /// Unknown (`--node-monitor-grace-period`).
    pub node_monitor_grace_period: Duration,
    /// How often node health is checked.
    pub node_monitor_period: Duration,
    /// Terminated pods beyond this many are deleted, oldest first.
    pub terminated_pod_gc_threshold: usize,
    /// Timing of the controllers' leader election.
    pub leader_election: leader::Timing,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cluster_cidr: "10.42.0.0/16".parse().expect("valid default"),
            node_cidr_mask: 24,
            node_monitor_grace_period: Duration::from_secs(50),
            node_monitor_period: Duration::from_secs(5),
            terminated_pod_gc_threshold: 12_500,
            leader_election: leader::Timing::default(),
        }
    }
}

/// Run every controller with the default settings; see [`run_with`].
pub async fn run(client: Client, shutdown: CancellationToken) {
    run_with(client, Config::default(), shutdown).await;
}

/// Run every controller until `shutdown` fires, while this process holds the
/// `kube-system/kube-controller-manager` Lease (see [`leader`]).
pub async fn run_with(client: Client, config: Config, shutdown: CancellationToken) {
    let elector = leader::Elector::new(
        client.clone(),
        "kube-controller-manager",
        leader::identity(),
        config.leader_election,
    );
    elector
        .run(shutdown, |term| {
            run_all(client.clone(), config.clone(), term)
        })
        .await;
}

/// Run every controller until `shutdown` fires, then wait for in-flight reconciles.
async fn run_all(client: Client, config: Config, shutdown: CancellationToken) {
    tokio::join!(
        ipam::run(client.clone(), config.clone(), shutdown.clone()),
        deployment::run(client.clone(), shutdown.clone()),
        replicaset::run(client.clone(), shutdown.clone()),
        endpoints::run(client.clone(), shutdown.clone()),
        endpointslice::run(client.clone(), shutdown.clone()),
        gc::run(client.clone(), shutdown.clone()),
        nodelifecycle::run(client.clone(), config.clone(), shutdown.clone()),
        tainteviction::run(client.clone(), shutdown.clone()),
        podgc::run(client.clone(), config.clone(), shutdown.clone()),
        resourcequota::run(client.clone(), shutdown.clone()),
        serviceaccount::run(client, shutdown),
    );
}
