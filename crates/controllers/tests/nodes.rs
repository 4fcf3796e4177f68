//! Node lifecycle and taint eviction against a real API server, in-process, with short grace
//! periods: a node whose Lease stops being renewed turns Unknown and gets the unreachable
//! taints, its pods turn not ready, a pod tolerating the taint for two seconds is evicted
//! while one tolerating it forever stays, and the taints go once the node reports again.

mod common;

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use common::{eventually, start_with};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

async fn register(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    report_ready(client, name).await;
    renew(client, name).await;
}

/// Post a Ready status with a fresh heartbeat, as a kubelet does.
async fn report_ready(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let now = Timestamp::now().to_string();
    let condition = |kind: &str, status: &str| {
        json!({"type": kind, "status": status, "reason": "KubeletReady",
               "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let status = json!({"status": {"conditions": [
        condition("Ready", "True"),
        condition("MemoryPressure", "False"),
        condition("DiskPressure", "False"),
        condition("PIDPressure", "False"),
    ]}});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

async fn renew(client: &kube::Client, name: &str) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let now = Timestamp::now().to_string();
    let patch = json!({"spec": {"holderIdentity": name, "renewTime": now}});
    match leases
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let mut lease: Lease = serde_json::from_value(patch).unwrap();
            lease.metadata.name = Some(name.into());
            leases.create(&PostParams::default(), &lease).await.unwrap();
        }
        Err(e) => panic!("cannot renew: {e}"),
    }
}

async fn bound_pod(client: &kube::Client, name: &str, node: &str, seconds: Option<i64>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut toleration = json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"});
    if let Some(s) = seconds {
        toleration["tolerationSeconds"] = json!(s);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "tolerations": [toleration],
            "containers": [{"name": "c", "image": "busybox"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let now = Timestamp::now().to_string();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": "True", "lastTransitionTime": now},
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
        .await
        .unwrap();
}

fn condition(node: &Node, kind: &str) -> Option<(String, Option<String>)> {
    let c = node
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)?;
    Some((c.status.clone(), c.reason.clone()))
}

fn has_taint(node: &Node, key: &str, effect: &str) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|t| t.key == key && t.effect == effect && t.time_added.is_some())
}

fn pod_condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn a_silent_node_turns_unknown_is_tainted_and_its_pods_are_evicted() {
    let config = navarch_controllers::Config {
        node_monitor_grace_period: Duration::from_secs(3),
        node_monitor_period: Duration::from_millis(500),
        ..Default::default()
    };
    let cluster = start_with(config).await;
    let client = cluster.client.clone();
    register(&client, "alive").await;
    register(&client, "lost").await;
    // The healthy node keeps renewing; without it every node would be down, and the
    // controller then stops tainting altogether.
    let heartbeat = CancellationToken::new();
    tokio::spawn({
        let client = client.clone();
        let stop = heartbeat.clone();
        async move {
            while !stop.is_cancelled() {
                renew(&client, "alive").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    bound_pod(&client, "short", "lost", Some(2)).await;
    bound_pod(&client, "forever", "lost", None).await;
    bound_pod(&client, "elsewhere", "alive", Some(2)).await;

    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually("the lost node turns Unknown", || async {
        let node = nodes.get("lost").await.ok()?;
        (condition(&node, "Ready") == Some(("Unknown".into(), Some("NodeStatusUnknown".into()))))
            .then_some(())
    })
    .await;
    let node = nodes.get("lost").await.unwrap();
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(condition(&node, kind).unwrap().0, "Unknown", "{kind}");
    }
    eventually("the unreachable taints", || async {
        let node = nodes.get("lost").await.ok()?;
        (has_taint(&node, UNREACHABLE, "NoExecute") && has_taint(&node, UNREACHABLE, "NoSchedule"))
            .then_some(())
    })
    .await;
    eventually("pods of the lost node turn not ready", || async {
        let pod = pods.get("forever").await.ok()?;
        (pod_condition(&pod, "Ready").as_deref() == Some("False")).then_some(())
    })
    .await;
    let evicted = eventually("the short-tolerating pod is evicted", || async {
        let pod = pods.get_opt("short").await.ok()?;
        match pod {
            None => Some(None),
            Some(p) if p.metadata.deletion_timestamp.is_some() => Some(Some(p)),
            Some(_) => None,
        }
    })
    .await;
    if let Some(pod) = evicted {
        assert_eq!(
            pod_condition(&pod, "DisruptionTarget").as_deref(),
            Some("True")
        );
    }
    let alive = nodes.get("alive").await.unwrap();
    assert_eq!(condition(&alive, "Ready").unwrap().0, "True");
    let forever = pods.get("forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    let elsewhere = pods.get("elsewhere").await.unwrap();
    assert!(elsewhere.metadata.deletion_timestamp.is_none());
    assert_eq!(pod_condition(&elsewhere, "Ready").as_deref(), Some("True"));

    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually("NodeNotReady and TaintManagerEviction events", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let has = |reason: &str, message: &str| {
            list.items.iter().any(|e| {
                e.reason.as_deref() == Some(reason) && e.message.as_deref() == Some(message)
            })
        };
        (has("NodeNotReady", "Node lost status is now: NodeNotReady")
            && has(
                "TaintManagerEviction",
                "Marking for deletion Pod default/short",
            ))
        .then_some(())
    })
    .await;

    // The kubelet comes back: Ready again, and the taints go.
    renew(&client, "lost").await;
    report_ready(&client, "lost").await;
    eventually("the taints are removed", || async {
        let node = nodes.get("lost").await.ok()?;
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| !t.is_empty());
        (!tainted).then_some(())
    })
    .await;
    heartbeat.cancel();
    cluster.shutdown.cancel();
}
