//! The controllers against a real API server, in-process: ReplicaSets get their pods, scale,
//! report readiness; namespaces get a `default` ServiceAccount.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Pod, PodCondition, PodStatus, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

use common::{eventually, start};

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

async fn active_pods(pods: &Api<Pod>) -> Vec<Pod> {
    active_pods_of(pods, "web").await
}

async fn active_pods_of(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

#[tokio::test]
async fn replicaset_creates_scales_and_reports_ready_pods() {
    let cluster = start().await;
    let sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap();
    let rs = sets.create(&PostParams::default(), &rs).await.unwrap();
    let uid = rs.metadata.uid.clone().unwrap();

    let created = eventually("3 pods", || async {
        let p = active_pods(&pods).await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(cluster.client.clone(), "default");
    eventually("a SuccessfulCreate event per pod", || async {
        let list = events
            .list(&ListParams::default().fields("involvedObject.name=web,reason=SuccessfulCreate"))
            .await
            .unwrap();
        let messages: Vec<String> = list.items.into_iter().filter_map(|e| e.message).collect();
        let all = created.iter().all(|p| {
            messages.contains(&format!(
                "Created pod: {}",
                p.metadata.name.as_deref().unwrap()
            ))
        });
        all.then_some(())
    })
    .await;
    for pod in &created {
        let name = pod.metadata.name.as_deref().unwrap();
        assert!(
            name.starts_with("web-") && name.len() == "web-".len() + 5,
            "{name}"
        );
        let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("ReplicaSet", uid.as_str())
        );
        assert_eq!(
            (owner.controller, owner.block_owner_deletion),
            (Some(true), Some(true))
        );
    }
    // Expectations: a few more seconds of watch traffic never yields a fourth pod.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(active_pods(&pods).await.len(), 3);

    // Ready one pod through pods/status: the ReplicaSet reports it ready and available.
    let name = created[0].metadata.name.clone().unwrap();
    let mut pod = pods.get_status(&name).await.unwrap();
    pod.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    pods.replace_status(&name, &PostParams::default(), &pod)
        .await
        .unwrap();
    eventually("status", || async {
        let s = sets.get_status("web").await.unwrap().status?;
        (s.replicas == 3
            && s.ready_replicas == Some(1)
            && s.available_replicas == Some(1)
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == Some(1))
        .then_some(())
    })
    .await;

    // Scale down to 1 through the scale subresource: the ready pod is the one kept.
    sets.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    let left = eventually("1 pod", || async {
        let p = active_pods(&pods).await;
        (p.len() == 1).then_some(p)
    })
    .await;
    assert_eq!(left[0].metadata.name.as_deref(), Some(name.as_str()));

    cluster.shutdown.cancel();
}

#[tokio::test]
async fn deleting_a_replicaset_deletes_its_pods_in_background_and_foreground() {
    let cluster = start().await;
    let sets: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    for (name, params) in [
        ("bg", DeleteParams::background()),
        ("fg", DeleteParams::foreground()),
    ] {
        sets.create(&PostParams::default(), &replicaset(name, 2))
            .await
            .unwrap();
        eventually(name, || async {
            (active_pods_of(&pods, name).await.len() == 2).then_some(())
        })
        .await;
        sets.delete(name, &params).await.unwrap();
        eventually(&format!("{name} pods gone"), || async {
            let left = pods
                .list(&ListParams::default().labels(&format!("app={name}")))
                .await
                .unwrap()
                .items;
            left.is_empty().then_some(())
        })
        .await;
        eventually(&format!("{name} gone"), || async {
            sets.get_opt(name).await.unwrap().is_none().then_some(())
        })
        .await;
    }
    cluster.shutdown.cancel();
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account() {
    let cluster = start().await;
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team-a"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(cluster.client.clone(), "team-a");
    eventually("default sa", || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;
    // Deleted, it comes back.
    sas.delete("default", &Default::default()).await.unwrap();
    eventually("default sa again", || async {
        sas.get_opt("default").await.unwrap()
    })
    .await;
    cluster.shutdown.cancel();
}
