//! The scheduler against a real in-process API server: nodes created through the API, pods
//! placed by resources, taints and nodeSelector, feedback (condition and events) on an
//! unschedulable pod, that pod bound once a node that fits is added; pod affinity and
//! anti-affinity, topology spreading over zones, and preemption.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
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
    labelled_pod(api, name, json!({}), spec).await
}

async fn labelled_pod(
    api: &Api<Pod>,
    name: &str,
    labels: serde_json::Value,
    spec: serde_json::Value,
) {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": spec.get("cpu").cloned().unwrap_or(json!("100m"))}}}]);
    spec.as_object_mut().unwrap().remove("cpu");
    let p: Pod = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels}, "spec": spec}))
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
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. \
         preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod."
    );
    // The same text as a FailedScheduling event, seen through the core/v1 API as kubectl
    // describe reads it; and a Scheduled event for a bound pod.
    let events: Api<Event> = Api::namespaced(admin.clone(), "default");
    let event_about = |pod: &'static str, reason: &'static str| {
        let events = events.clone();
        async move || {
            events
                .list(&ListParams::default().fields(&format!("involvedObject.name={pod}")))
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason))
        }
    };
    let failed = wait_for(event_about("too-big", "FailedScheduling")).await;
    assert_eq!(failed.message.as_deref(), Some(message.as_str()));
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.source.and_then(|s| s.component).as_deref(),
        Some("default-scheduler")
    );
    let scheduled = wait_for(event_about("needs-3-cpus", "Scheduled")).await;
    assert_eq!(
        scheduled.message.as_deref(),
        Some("Successfully assigned default/needs-3-cpus to big")
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

/// A server with a running scheduler and an admin client; stop it with [`Cluster::stop`].
struct Cluster {
    _dir: tempfile::TempDir,
    shutdown: tokio_util::sync::CancellationToken,
    server: navarch_apiserver::ApiServer,
    task: tokio::task::JoinHandle<()>,
    nodes: Api<Node>,
    pods: Api<Pod>,
}

impl Cluster {
    async fn start() -> Cluster {
        let (dir, shutdown, server) = crate::in_process::test_server().await;
        let admin = client(server.router(), "admin", &["system:masters"]);
        let sched_client = client(
            server.router(),
            "system:kube-scheduler",
            &["system:masters"],
        );
        let sched =
            navarch_scheduler::Scheduler::new(navarch_scheduler::plugins::default_framework());
        let task = tokio::spawn(sched.run(sched_client, shutdown.clone()));
        Cluster {
            _dir: dir,
            shutdown,
            server,
            task,
            nodes: Api::all(admin.clone()),
            pods: Api::namespaced(admin, "default"),
        }
    }

    /// Nodes with hostname and zone labels, 4 CPUs each.
    async fn zoned_nodes(&self, nodes: &[(&str, &str)]) {
        for (name, zone) in nodes {
            node(
                &self.nodes,
                name,
                "4",
                json!({"labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": zone}}),
            )
            .await;
        }
    }

    async fn node_of(&self, name: &str) -> String {
        let pods = self.pods.clone();
        wait_for(async || {
            pods.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        })
        .await
    }

    async fn unschedulable_message(&self, name: &str) -> String {
        let pods = self.pods.clone();
        wait_for(async || {
            let p = pods.get(name).await.ok()?;
            p.status?
                .conditions?
                .into_iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")?
                .message
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap();
        self.server.stopped().await;
    }
}

fn required(kind: &str, app: &str, key: &str) -> serde_json::Value {
    json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}})
}

#[tokio::test]
async fn pod_affinity_follows_and_anti_affinity_spreads_replicas() {
    let c = Cluster::start().await;
    c.zoned_nodes(&[("n1", "z1"), ("n2", "z1"), ("n3", "z2")])
        .await;
    labelled_pod(
        &c.pods,
        "db",
        json!({"app": "db"}),
        json!({"nodeSelector": {"kubernetes.io/hostname": "n3"}}),
    )
    .await;
    assert_eq!(c.node_of("db").await, "n3");

    // Required affinity to the db's zone: only n3 is in z2.
    pod(
        &c.pods,
        "near-db",
        required("podAffinity", "db", "topology.kubernetes.io/zone"),
    )
    .await;
    assert_eq!(c.node_of("near-db").await, "n3");
    // Preferred affinity to the db's host outweighs n3 being the busiest node.
    pod(
        &c.pods,
        "likes-db",
        json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}},
                                                "topologyKey": "kubernetes.io/hostname"}}]}}}),
    )
    .await;
    assert_eq!(c.node_of("likes-db").await, "n3");

    // Replicas that repel each other by hostname: one per node, the fourth explained.
    let mut hosts = Vec::new();
    for i in 0..3 {
        let name = format!("web-{i}");
        labelled_pod(
            &c.pods,
            &name,
            json!({"app": "web"}),
            required("podAntiAffinity", "web", "kubernetes.io/hostname"),
        )
        .await;
        hosts.push(c.node_of(&name).await);
    }
    hosts.sort();
    assert_eq!(hosts, ["n1", "n2", "n3"]);
    labelled_pod(
        &c.pods,
        "web-3",
        json!({"app": "web"}),
        required("podAntiAffinity", "web", "kubernetes.io/hostname"),
    )
    .await;
    assert_eq!(
        c.unschedulable_message("web-3").await,
        "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
    );
    // Required affinity nothing satisfies, and the pod does not match itself.
    pod(
        &c.pods,
        "lonely",
        required("podAffinity", "nothing", "topology.kubernetes.io/zone"),
    )
    .await;
    assert_eq!(
        c.unschedulable_message("lonely").await,
        "0/3 nodes are available: 3 node(s) didn't match pod affinity rules. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    // The pod it wants arrives: it is retried and follows it to z2.
    labelled_pod(
        &c.pods,
        "something",
        json!({"app": "nothing"}),
        json!({"nodeSelector": {"kubernetes.io/hostname": "n3"}}),
    )
    .await;
    assert_eq!(c.node_of("lonely").await, "n3");
    c.stop().await;
}

#[tokio::test]
async fn topology_spread_balances_zones() {
    let c = Cluster::start().await;
    c.zoned_nodes(&[
        ("a1", "za"),
        ("a2", "za"),
        ("a3", "za"),
        ("b1", "zb"),
        ("c1", "zc"),
    ])
    .await;
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1,
        "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "spread"}}}]});
    let mut per_zone = std::collections::BTreeMap::<char, usize>::new();
    for i in 0..6 {
        let name = format!("s-{i}");
        labelled_pod(&c.pods, &name, json!({"app": "spread"}), spread.clone()).await;
        let node = c.node_of(&name).await;
        *per_zone.entry(node.chars().next().unwrap()).or_default() += 1;
    }
    // Three zones, six pods, skew at most 1: two each, although za has three nodes.
    assert_eq!(
        per_zone.into_iter().collect::<Vec<_>>(),
        [('a', 2), ('b', 2), ('c', 2)]
    );
    c.stop().await;
}

#[tokio::test]
async fn a_high_priority_pod_preempts_a_low_priority_one() {
    let c = Cluster::start().await;
    let admin = client(c.server.router(), "admin", &["system:masters"]);
    let classes: Api<k8s_openapi::api::scheduling::v1::PriorityClass> = Api::all(admin.clone());
    let pc = serde_json::from_value(
        json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
               "metadata": {"name": "high"}, "value": 1000}),
    )
    .unwrap();
    classes.create(&PostParams::default(), &pc).await.unwrap();
    node(&c.nodes, "only", "1", json!({})).await;
    pod(&c.pods, "low", json!({"cpu": "800m"})).await;
    assert_eq!(c.node_of("low").await, "only");

    pod(
        &c.pods,
        "high",
        json!({"cpu": "800m", "priorityClassName": "high"}),
    )
    .await;
    // The victim is deleted; the test plays its kubelet and finishes a graceful deletion.
    let pods = c.pods.clone();
    wait_for(async || match pods.get("low").await {
        Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
        Ok(p) if p.metadata.deletion_timestamp.is_some() => {
            let _ = pods
                .delete("low", &DeleteParams::default().grace_period(0))
                .await;
            None
        }
        _ => None,
    })
    .await;
    assert_eq!(c.node_of("high").await, "only");
    let events: Api<Event> = Api::namespaced(admin, "default");
    let preempted = wait_for(async || {
        events
            .list(&ListParams::default().fields("involvedObject.name=low"))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Preempted"))
    })
    .await;
    assert!(
        preempted
            .message
            .as_deref()
            .is_some_and(|m| m.starts_with("Preempted by pod ") && m.ends_with(" on node only")),
        "{preempted:?}"
    );
    c.stop().await;
}

#[tokio::test]
async fn a_pod_waits_for_its_claim_and_a_delayed_claim_learns_the_node() {
    let c = Cluster::start().await;
    let admin = client(c.server.router(), "admin", &["system:masters"]);
    node(&c.nodes, "n1", "2", json!({})).await;
    node(&c.nodes, "n2", "2", json!({})).await;
    pod(
        &c.pods,
        "with-data",
        json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}),
    )
    .await;
    assert_eq!(
        c.unschedulable_message("with-data").await,
        "0/2 nodes are available: persistentvolumeclaim \"data\" not found. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    let classes: Api<k8s_openapi::api::storage::v1::StorageClass> = Api::all(admin.clone());
    let sc = serde_json::from_value(json!({"apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass", "metadata": {"name": "later"},
        "provisioner": "example.com/none", "volumeBindingMode": "WaitForFirstConsumer"}))
    .unwrap();
    classes.create(&PostParams::default(), &sc).await.unwrap();
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(admin, "default");
    let pvc = serde_json::from_value(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"storageClassName": "later", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    .unwrap();
    claims.create(&PostParams::default(), &pvc).await.unwrap();
    let node = c.node_of("with-data").await;
    let claim = claims.get("data").await.unwrap();
    assert_eq!(
        claim
            .metadata
            .annotations
            .and_then(|a| a.get("volume.kubernetes.io/selected-node").cloned()),
        Some(node)
    );
    c.stop().await;
}

#[tokio::test]
async fn a_configured_bin_packing_profile_serves_its_scheduler_name() {
    let (_dir, shutdown, server) = crate::in_process::test_server().await;
    let admin = client(server.router(), "admin", &["system:masters"]);
    let profiles = navarch_scheduler::config::profiles_from_str(
        r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packer
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#,
    )
    .unwrap();
    let sched = navarch_scheduler::Scheduler::with_profiles(profiles);
    let task = tokio::spawn(sched.run(
        client(
            server.router(),
            "system:kube-scheduler",
            &["system:masters"],
        ),
        shutdown.clone(),
    ));
    let nodes: Api<Node> = Api::all(admin.clone());
    node(&nodes, "busy", "4", json!({})).await;
    node(&nodes, "idle", "4", json!({})).await;
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    pod(&pods, "anchor", json!({"cpu": "2", "nodeName": "busy"})).await;
    pod(
        &pods,
        "packed",
        json!({"cpu": "1", "schedulerName": "bin-packer"}),
    )
    .await;
    pod(&pods, "spread", json!({"cpu": "1"})).await;
    let node_of = |name: &'static str| {
        let pods = pods.clone();
        async move || {
            pods.get(name)
                .await
                .ok()
                .and_then(|p| p.spec.and_then(|s| s.node_name))
        }
    };
    assert_eq!(wait_for(node_of("packed")).await, "busy");
    assert_eq!(wait_for(node_of("spread")).await, "idle");
    let events: Api<Event> = Api::namespaced(admin, "default");
    let scheduled = wait_for(async || {
        events
            .list(&ListParams::default().fields("involvedObject.name=packed"))
            .await
            .ok()?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Scheduled"))
    })
    .await;
    assert_eq!(scheduled.reporting_component.as_deref(), Some("bin-packer"));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    server.stopped().await;
}
