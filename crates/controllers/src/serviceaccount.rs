//! The ServiceAccount controller: every namespace that is not terminating has a `default`
//! ServiceAccount; deleting it brings it back.

use std::sync::Arc;

use futures::{future, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{reflector::ObjectRef, watcher};
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::Result;

pub const DEFAULT: &str = "default";

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    // Failed reconciles retry per key with exponential back-off.
    let retry = std::sync::Arc::new(crate::retry::Retry::controller_default());
    Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={DEFAULT}")),
        |sa| sa.namespace().map(|ns| ObjectRef::new(&ns)),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(
        crate::retry::reconciler(retry.clone(), reconcile),
        crate::retry::error_policy(retry),
        Arc::new(client),
    )
    .for_each(|_| future::ready(()))
    .await;
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action> {
    let terminating = ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating");
    if terminating {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced((*client).clone(), &ns.name_any());
    if api.get_opt(DEFAULT).await?.is_none() {
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(DEFAULT.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => {}
            // Someone was faster, or the namespace started terminating meanwhile.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
