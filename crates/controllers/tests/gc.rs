//! The garbage collector against a real API server, in-process, with owners and dependents of
//! ordinary kinds (ConfigMaps owning Secrets and ConfigMaps): background, foreground and
//! orphan deletion, dangling references, owners that still hold.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::ResourceExt;
use serde_json::json;

use common::{eventually, start};

fn owner_ref(owner: &ConfigMap, block: bool) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.name_any(),
        "uid": owner.uid().unwrap(),
        "blockOwnerDeletion": block,
    })
}

async fn config_map(api: &Api<ConfigMap>, name: &str, owners: Vec<serde_json::Value>) -> ConfigMap {
    let mut meta = json!({"name": name});
    if !owners.is_empty() {
        meta["ownerReferences"] = json!(owners);
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": meta})).unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap()
}

async fn secret(api: &Api<Secret>, name: &str, owners: Vec<serde_json::Value>) -> Secret {
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "ownerReferences": owners, "finalizers": []},
    }))
    .unwrap();
    api.create(&PostParams::default(), &s).await.unwrap()
}

#[tokio::test]
async fn background_deletion_collects_dependents_and_keeps_co_owned_ones() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    let owner = config_map(&cms, "owner", vec![]).await;
    let other = config_map(&cms, "other", vec![]).await;
    secret(&secrets, "dep", vec![owner_ref(&owner, false)]).await;
    config_map(
        &cms,
        "co-owned",
        vec![owner_ref(&owner, false), owner_ref(&other, false)],
    )
    .await;

    cms.delete("owner", &DeleteParams::background())
        .await
        .unwrap();
    eventually("the dependent is collected", || async {
        secrets
            .get_opt("dep")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    let refs = eventually("the co-owned object loses the gone owner", || async {
        let cm = cms.get("co-owned").await.unwrap();
        let refs = cm.owner_references().to_vec();
        (refs.len() == 1).then_some(refs)
    })
    .await;
    assert_eq!(refs[0].uid, other.uid().unwrap());
    cluster.shutdown.cancel();
}

#[tokio::test]
async fn foreground_deletion_removes_dependents_first() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    let owner = config_map(&cms, "owner", vec![]).await;
    let child = config_map(&cms, "child", vec![owner_ref(&owner, true)]).await;
    // The grandchild holds on with a finalizer of its own, so the chain stays visible.
    let grandchild: Secret = serde_json::from_value(json!({"metadata": {
        "name": "grandchild",
        "ownerReferences": [owner_ref(&child, true)],
        "finalizers": ["example.com/hold"],
    }}))
    .unwrap();
    secrets
        .create(&PostParams::default(), &grandchild)
        .await
        .unwrap();

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually("the grandchild is being deleted", || async {
        let g = secrets.get("grandchild").await.unwrap();
        g.metadata.deletion_timestamp.is_some().then_some(())
    })
    .await;
    // Owner and child wait for it, in the foreground.
    for name in ["owner", "child"] {
        let cm = cms.get(name).await.unwrap();
        assert!(cm.metadata.deletion_timestamp.is_some(), "{name}");
        assert!(
            cm.finalizers().iter().any(|f| f == "foregroundDeletion"),
            "{name}"
        );
    }
    secrets
        .patch(
            "grandchild",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    eventually("the whole chain is gone", || async {
        let gone = cms.get_opt("owner").await.unwrap().is_none()
            && cms.get_opt("child").await.unwrap().is_none()
            && secrets.get_opt("grandchild").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    cluster.shutdown.cancel();
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    let owner = config_map(&cms, "owner", vec![]).await;
    secret(&secrets, "dep", vec![owner_ref(&owner, true)]).await;

    cms.delete("owner", &DeleteParams::orphan()).await.unwrap();
    eventually("the owner is gone", || async {
        cms.get_opt("owner").await.unwrap().is_none().then_some(())
    })
    .await;
    let dep = secrets.get("dep").await.unwrap();
    assert!(dep.owner_references().is_empty());
    assert!(dep.metadata.deletion_timestamp.is_none());
    cluster.shutdown.cancel();
}

#[tokio::test]
async fn dangling_references_are_collected_unless_another_owner_holds() {
    let cluster = start().await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let secrets: Api<Secret> = Api::namespaced(cluster.client.clone(), "default");
    // An owner that never existed, and one whose name now has another uid.
    let ghost =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "no-such-uid"});
    secret(&secrets, "orphaned-at-birth", vec![ghost.clone()]).await;
    let reborn = config_map(&cms, "reborn", vec![]).await;
    let stale = owner_ref(&reborn, false);
    cms.delete("reborn", &DeleteParams::default())
        .await
        .unwrap();
    config_map(&cms, "reborn", vec![]).await;
    secret(&secrets, "stale-owner", vec![stale]).await;
    // The same dangling reference next to a live owner is only removed.
    let live = config_map(&cms, "live", vec![]).await;
    secret(&secrets, "held", vec![ghost, owner_ref(&live, false)]).await;

    eventually("dangling dependents are collected", || async {
        let gone = secrets
            .get_opt("orphaned-at-birth")
            .await
            .unwrap()
            .is_none()
            && secrets.get_opt("stale-owner").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    eventually(
        "the held dependent only loses the dangling reference",
        || async {
            let held = secrets.get("held").await.unwrap();
            let refs = held.owner_references();
            (refs.len() == 1 && refs[0].uid == live.uid().unwrap()).then_some(())
        },
    )
    .await;
    cluster.shutdown.cancel();
}
