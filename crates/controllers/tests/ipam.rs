//! Node IPAM against a real API server, in-process: nodes get distinct blocks of the cluster
//! network, and a block set on a node is kept.

mod common;

use std::collections::HashSet;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, PostParams};
use serde_json::json;

use common::{eventually, start};

#[tokio::test]
async fn nodes_get_distinct_pod_cidrs() {
    let cluster = start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let preset: Node = serde_json::from_value(json!({
        "metadata": {"name": "preset"},
        "spec": {"podCIDR": "10.42.0.0/24", "podCIDRs": ["10.42.0.0/24"]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &preset).await.unwrap();
    for name in ["a", "b", "c"] {
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }
    let cidrs = eventually("every node has a pod CIDR", || async {
        let mut cidrs = Vec::new();
        for name in ["preset", "a", "b", "c"] {
            let node = nodes.get(name).await.unwrap();
            let spec = node.spec.unwrap_or_default();
            let cidr = spec.pod_cidr?;
            assert_eq!(spec.pod_cidrs, Some(vec![cidr.clone()]));
            cidrs.push(cidr);
        }
        Some(cidrs)
    })
    .await;
    assert_eq!(cidrs[0], "10.42.0.0/24", "a block set by hand is kept");
    let distinct: HashSet<&String> = cidrs.iter().collect();
    assert_eq!(distinct.len(), 4, "{cidrs:?}");
    for cidr in &cidrs {
        assert!(
            cidr.starts_with("10.42.") && cidr.ends_with(".0/24"),
            "{cidr}"
        );
    }
    cluster.shutdown.cancel();
}
