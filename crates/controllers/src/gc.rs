//! Garbage collector, basic: background deletion of pods whose owning ReplicaSets are gone.
//!
//! Foreground deletion (the `foregroundDeletion` finalizer) of a ReplicaSet is handled by the
//! ReplicaSet controller, orphaning by the API server. Here: when a ReplicaSet disappears,
//! its dependents are deleted; at start, a sweep deletes pods left dangling while the
//! controllers were not running. A dependent is deleted only when every owner is gone
//! (matched by uid, as upstream: a recreated owner with the same name does not count).

use std::collections::HashSet;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// Pods of `pods` all of whose owners are ReplicaSets with uids outside `live`.
pub fn dangling<'a>(pods: &'a [Pod], live: &HashSet<String>) -> Vec<&'a Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let owners = p.owner_references();
            !owners.is_empty()
                && owners
                    .iter()
                    .all(|o| o.kind == "ReplicaSet" && !live.contains(&o.uid))
        })
        .collect()
}

/// Run until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let work = async {
        let mut events = watcher(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
        )
        .boxed();
        let mut live = HashSet::new();
        let mut initial = HashSet::new();
        while let Some(event) = events.next().await {
            let outcome = match event {
                Ok(watcher::Event::Init) => {
                    initial.clear();
                    Ok(())
                }
                Ok(watcher::Event::InitApply(rs)) => {
                    initial.extend(rs.metadata.uid);
                    Ok(())
                }
                Ok(watcher::Event::InitDone) => {
                    live = std::mem::take(&mut initial);
                    sweep(&client, &live, None).await
                }
                Ok(watcher::Event::Apply(rs)) => {
                    live.extend(rs.metadata.uid);
                    Ok(())
                }
                Ok(watcher::Event::Delete(rs)) => {
                    if let Some(uid) = &rs.metadata.uid {
                        live.remove(uid);
                    }
                    sweep(&client, &live, rs.namespace().as_deref()).await
                }
                Err(error) => {
                    tracing::debug!(%error, "gc watch failed");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    Ok(())
                }
            };
            if let Err(error) = outcome {
                tracing::warn!(%error, "garbage collection failed");
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = shutdown.cancelled() => {}
    }
}

/// Delete the dangling pods of one namespace (or all), guarded by uid.
async fn sweep(client: &Client, live: &HashSet<String>, namespace: Option<&str>) -> Result<()> {
    let api: Api<Pod> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let pods = api.list(&ListParams::default()).await?.items;
    for pod in dangling(&pods, live) {
        let ns = pod.namespace().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::background()
        };
        match Api::<Pod>::namespaced(client.clone(), &ns)
            .delete(&pod.name_any(), &params)
            .await
        {
            Ok(_) => {
                tracing::info!(pod.namespace = %ns, pod.name = %pod.name_any(), "deleted dependent of a deleted owner")
            }
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;

    fn pod(name: &str, owners: &[(&str, &str)]) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                owner_references: Some(
                    owners
                        .iter()
                        .map(|(kind, uid)| OwnerReference {
                            kind: kind.to_string(),
                            uid: uid.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_pods_whose_owners_are_all_gone_are_dangling() {
        let live: HashSet<String> = ["alive".to_string()].into();
        let pods = [
            pod("owned-by-live", &[("ReplicaSet", "alive")]),
            pod("owned-by-gone", &[("ReplicaSet", "gone")]),
            pod(
                "one-owner-left",
                &[("ReplicaSet", "gone"), ("ReplicaSet", "alive")],
            ),
            pod("unknown-kind", &[("StatefulSet", "x")]),
            pod("no-owner", &[]),
        ];
        let names: Vec<_> = dangling(&pods, &live)
            .iter()
            .map(|p| p.name_any())
            .collect();
        assert_eq!(names, vec!["owned-by-gone"]);
    }
}
