//! The ResourceQuota controller against a real API server, in-process: `status.used` follows
//! the pods and objects of the namespace.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use common::{eventually, start};

async fn used(quotas: &Api<ResourceQuota>) -> BTreeMap<String, String> {
    quotas
        .get("compute")
        .await
        .unwrap()
        .status
        .and_then(|s| s.used)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

#[tokio::test]
async fn used_follows_the_namespace() {
    let cluster = start().await;
    let quotas: Api<ResourceQuota> = Api::namespaced(cluster.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client.clone(), "default");
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "10", "requests.cpu": "4", "requests.memory": "1Gi",
            "count/configmaps": "20"}},
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    for (name, cpu) in [("a", "500m"), ("b", "250m")] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let want = |pods: &str, cpu: &str, memory: &str, configmaps: usize| {
        BTreeMap::from([
            ("count/configmaps".to_string(), configmaps.to_string()),
            ("pods".to_string(), pods.to_string()),
            ("requests.cpu".to_string(), cpu.to_string()),
            ("requests.memory".to_string(), memory.to_string()),
        ])
    };
    // The namespace may hold configmaps of its own (kube-root-ca.crt): count what is there.
    let configmaps = cms.list(&Default::default()).await.unwrap().items.len();
    let expected = want("2", "750m", "128Mi", configmaps);
    eventually("used counts both pods", || async {
        (used(&quotas).await == expected).then_some(())
    })
    .await;
    pods.delete("a", &DeleteParams::default()).await.unwrap();
    let expected = want("1", "250m", "64Mi", configmaps);
    eventually("used drops with the deleted pod", || async {
        (used(&quotas).await == expected).then_some(())
    })
    .await;
    cluster.shutdown.cancel();
}
