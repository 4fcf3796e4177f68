//! The scheduler against a real in-process API server: nodes created through the API, pods
//! placed by resources, taints and nodeSelector, feedback on an unschedulable pod, and that pod
//! bound once a node that fits is added.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::in_process::client;

async fn node(api: &Api<Node>, name: &str, cpu: &str, extra: serde_json::Value) {
    let mut n = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}});
    if let Some(spec) = extra.get("spec") {
        n["spec"] = spec.clone();
    }
    if let Some(labels) = extra.get("labels") {
        n["metadata"]["labels"] = labels.clone();
    }
    let n: Node = serde_json::from_value(n).unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": {
        "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

async fn pod(api: &Api<Pod>, name: &str, spec: serde_json::Value) {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": spec.get("cpu").cloned().unwrap_or(json!("100m"))}}}]);
    spec.as_object_mut().unwrap().remove("cpu");
    let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name}, "spec": spec}))
    .unwrap();
    api.create(&PostParams::default(), &p).await.unwrap();
}

async fn wait_for<T>(mut f: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..200 {
        if let Some(v) = f().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out");
}

#[tokio::test]
async fn pods_are_bound_as_constraints_demand_and_misfits_are_explained_until_a_node_fits() {
    let (_dir, shutdown, server) = crate::in_process::test_server().await;
    let admin = client(server.router(), "admin", &["system:masters"]);
    let nodes: Api<Node> = Api::all(admin.clone());
    node(&nodes, "small", "1", json!({})).await;
    node(&nodes, "big", "4", json!({})).await;
    node(
        &nodes,
        "gpu",
        "8",
        json!({"labels": {"gpu": "true"},
               "spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
    )
    .await;

    let sched_client = client(
        server.router(),
        "system:kube-scheduler",
        &["system:masters"],
    );
    let sched = navarch_scheduler::Scheduler::new(navarch_scheduler::plugins::default_framework());
    let task = tokio::spawn(sched.run(sched_client, shutdown.clone()));

    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    pod(&pods, "needs-3-cpus", json!({"cpu": "3"})).await;
    pod(
        &pods,
        "wants-gpu",
        json!({"nodeSelector": {"gpu": "true"},
               "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
    )
    .await;
    pod(&pods, "too-big", json!({"cpu": "16"})).await;
    pod(
        &pods,
        "other-scheduler",
        json!({"schedulerName": "someone-else"}),
    )
    .await;

    let node_of = |name: &'static str| {
        let pods = pods.clone();
        async move || {
            pods.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        }
    };
    assert_eq!(wait_for(node_of("needs-3-cpus")).await, "big");
    assert_eq!(wait_for(node_of("wants-gpu")).await, "gpu");

    let message = wait_for(async || {
        let p = pods.get("too-big").await.ok()?;
        let c = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")?;
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref()),
            ("False", Some("Unschedulable"))
        );
        c.message
    })
    .await;
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu."
    );
    // A node that fits arrives: the parked pod is retried and bound there.
    node(&nodes, "huge", "32", json!({})).await;
    assert_eq!(wait_for(node_of("too-big")).await, "huge");

    let other = pods.get("other-scheduler").await.unwrap();
    assert!(other.spec.unwrap().node_name.is_none());
    assert!(other
        .status
        .and_then(|s| s.conditions)
        .is_none_or(|c| c.is_empty()));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    server.stopped().await;
}
