//! The controller manager: one module per controller, each a level-triggered reconcile loop
//! over the public API through a `kube::Client`. Start at [`run`], which runs them all until
//! shutdown; each controller splits into a pure planning function (unit-tested with fixtures
//! and the ordered list of actions it takes) and the loop that performs the actions.
//!
//! - [`deployment`]: ReplicaSets for Deployments: rolling and recreate rollouts, revisions,
//!   rollback, pause, progress deadlines.
//! - [`replicaset`]: pods for ReplicaSets, with expectations and slow-start creation.
//! - [`gc`]: dependents of deleted ReplicaSets are deleted (background propagation).
//! - [`serviceaccount`]: a `default` ServiceAccount in every namespace.

pub mod deployment;
pub mod error;
pub mod events;
pub mod expectations;
pub mod gc;
pub mod pods;
pub mod replicaset;
pub mod serviceaccount;

pub use error::{Error, Result};

use kube::Client;
use tokio_util::sync::CancellationToken;

/// Run every controller until `shutdown` fires, then wait for in-flight reconciles.
pub async fn run(client: Client, shutdown: CancellationToken) {
    tokio::join!(
        deployment::run(client.clone(), shutdown.clone()),
        replicaset::run(client.clone(), shutdown.clone()),
        gc::run(client.clone(), shutdown.clone()),
        serviceaccount::run(client, shutdown),
    );
}
