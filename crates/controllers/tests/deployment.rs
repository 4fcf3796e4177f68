//! The Deployment controller against a real API server in-process, with the ReplicaSet
//! controller making pods; no agent runs, so the test decides when pods become ready and
//! checks the rollout's bounds at every step.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use common::{eventually, start};

fn deployment() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 4,
            "strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

/// Mark every pending pod of `app=web` Running and Ready; how many were marked.
async fn make_pods_ready(pods: &Api<Pod>) -> usize {
    let list = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    let mut marked = 0;
    for pod in list.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastTransitionTime": jiff::Timestamp::now().to_string()}]
        }});
        if pods
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Merge(status),
            )
            .await
            .is_ok()
        {
            marked += 1;
        }
    }
    marked
}

/// spec.replicas and status.availableReplicas of each ReplicaSet, by name.
async fn sizes(sets: &Api<ReplicaSet>) -> BTreeMap<String, (i32, i32)> {
    sets.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|rs| {
            let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            let available = rs
                .status
                .as_ref()
                .and_then(|s| s.available_replicas)
                .unwrap_or(0);
            (rs.name_any(), (spec, available))
        })
        .collect()
}

fn progressing_reason(d: &Deployment) -> Option<String> {
    d.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Progressing")?
        .reason
        .clone()
}

#[tokio::test]
async fn a_rolling_update_with_no_unavailability_moves_one_pod_at_a_time() {
    let cluster = start().await;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "default");
    let sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment())
        .await
        .unwrap();

    // The first ReplicaSet, its pods made ready by hand: the rollout completes.
    eventually("the first rollout", || async {
        make_pods_ready(&pods).await;
        let d = deployments.get("web").await.ok()?;
        (progressing_reason(&d).as_deref() == Some("NewReplicaSetAvailable")).then_some(())
    })
    .await;
    let first = sizes(&sets).await;
    assert_eq!(first.values().collect::<Vec<_>>(), vec![&(4, 4)]);

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();

    // Pods become ready only when this loop says so; maxUnavailable 0 means 4 available
    // at every step, maxSurge 1 means at most 5 replicas.
    let seen_two = std::cell::Cell::new(false);
    eventually("the second rollout", || async {
        let now = sizes(&sets).await;
        let total: i32 = now.values().map(|s| s.0).sum();
        let available: i32 = now.values().map(|s| s.1).sum();
        assert!(total <= 5, "more than 4 + 1 replicas: {now:?}");
        assert!(available >= 4, "fewer than 4 available: {now:?}");
        seen_two.set(seen_two.get() || now.len() == 2);
        make_pods_ready(&pods).await;
        let d = deployments.get("web").await.ok()?;
        let done = d.metadata.generation == d.status.as_ref()?.observed_generation
            && progressing_reason(&d).as_deref() == Some("NewReplicaSetAvailable")
            && d.status.as_ref()?.updated_replicas == Some(4);
        done.then_some(now)
    })
    .await;
    assert!(seen_two.get());
    let end = sizes(&sets).await;
    let mut values: Vec<_> = end.values().copied().collect();
    values.sort();
    assert_eq!(values, vec![(0, 0), (4, 4)], "{end:?}");
    let d = deployments.get("web").await.unwrap();
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    cluster.shutdown.cancel();
}
