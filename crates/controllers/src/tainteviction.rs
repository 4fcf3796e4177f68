//! The taint eviction controller: removes pods from nodes with `NoExecute` taints they do not
//! tolerate, as upstream's `taint-eviction-controller`.
//!
//! For each pod bound to a node, [`decide`] looks at the node's `NoExecute` taints: a pod that
//! does not tolerate all of them is deleted at once; one whose matching tolerations all lack
//! `tolerationSeconds` stays; otherwise it is deleted when the smallest `tolerationSeconds`
//! has passed since the taint arrived (the earliest `timeAdded`, or when the pod was bound if
//! that is later). When the taints go away first, the pending eviction is cancelled. Before
//! deleting, the pod gets a `DisruptionTarget` condition saying why.
//!
//! [`run`] is a kube-runtime `Controller` over pods (a pod is never handled twice at once),
//! re-triggered for all of a node's pods when the node changes, and requeued for the
//! deadline of a pending eviction.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{future, StreamExt};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::events::Recorder;
use crate::pods;

const COMPONENT: &str = "taint-eviction-controller";
const NO_EXECUTE: &str = "NoExecute";

/// What to do about one pod now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing pending (no taints, or tolerated forever).
    Keep,
    /// Delete it now.
    Evict,
    /// Delete it at this time unless the taints change first.
    EvictAt(Timestamp),
}

/// Whether `toleration` tolerates `taint` (upstream's `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// Whether every taint is tolerated, and the first toleration that matched each.
fn matching_tolerations<'a>(
    taints: &[Taint],
    tolerations: &'a [Toleration],
) -> Option<Vec<&'a Toleration>> {
    taints
        .iter()
        .map(|taint| tolerations.iter().find(|t| tolerates(t, taint)))
        .collect()
}

/// The smallest `tolerationSeconds` of the tolerations used; `None` means forever, and zero
/// or less means at once.
fn min_toleration(used: &[&Toleration]) -> Option<Duration> {
    if used.is_empty() {
        return Some(Duration::ZERO);
    }
    used.iter()
        .filter_map(|t| t.toleration_seconds)
        .min()
        .map(|s| Duration::from_secs(s.max(0) as u64))
}

/// The node's `NoExecute` taints.
pub fn no_execute_taints(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .filter(|t| t.effect == NO_EXECUTE)
        .cloned()
        .collect()
}

/// Decide about `pod` on a node with the `NoExecute` `taints`. A taint without `timeAdded`
/// counts from `now`; the caller fills in when it first saw such a taint.
pub fn decide(pod: &Pod, taints: &[Taint], now: Timestamp) -> Decision {
    if taints.is_empty() {
        return Decision::Keep;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[]);
    let Some(used) = matching_tolerations(taints, tolerations) else {
        return Decision::Evict;
    };
    let Some(min) = min_toleration(&used) else {
        return Decision::Keep;
    };
    let tainted = taints
        .iter()
        .map(|t| t.time_added.as_ref().map_or(now, |t| t.0))
        .min()
        .unwrap_or(now);
    let start = tainted.max(bound_at(pod).unwrap_or(tainted));
    let deadline = start + min;
    if now >= deadline {
        Decision::Evict
    } else {
        Decision::EvictAt(deadline)
    }
}

/// When the pod was bound to its node (its PodScheduled condition turned True).
fn bound_at(pod: &Pod) -> Option<Timestamp> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// A taint on a node: node name, key, value.
type TaintKey = (String, String, Option<String>);

struct Context {
    client: Client,
    nodes: Store<Node>,
    recorder: Recorder,
    /// Pods with an eviction pending, to report its cancellation.
    pending: Mutex<HashSet<String>>,
    /// When taints without `timeAdded` were first seen, by node, key and value.
    first_seen: Mutex<HashMap<TaintKey, Timestamp>>,
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    // Failed reconciles retry per key with exponential back-off.
    let retry = std::sync::Arc::new(crate::retry::Retry::controller_default());
    let (nodes, writer) = reflector::store();
    let node_events = reflector::reflector(
        writer,
        watcher(Api::<Node>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let controller = Controller::new(Api::<Pod>::all(client.clone()), watcher::Config::default());
    let pod_store = controller.store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        nodes,
        recorder: Recorder::new(client, COMPONENT),
        pending: Mutex::new(HashSet::new()),
        first_seen: Mutex::new(HashMap::new()),
    });
    controller
        .watches_stream(node_events, move |node: Node| pods_on(&node, &pod_store))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            crate::retry::reconciler(retry.clone(), reconcile),
            crate::retry::error_policy(retry),
            ctx,
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "taint eviction failed");
            }
            future::ready(())
        })
        .await;
}

fn pods_on(node: &Node, pods: &Store<Pod>) -> Vec<ObjectRef<Pod>> {
    let name = node.name_any();
    pods.state()
        .iter()
        .filter(|p| pods::node_name(p) == Some(name.as_str()))
        .map(|p| ObjectRef::from_obj(&**p))
        .collect()
}

#[tracing::instrument(skip_all, fields(pod.namespace = pod.namespace(), pod.name = pod.name_any()))]
async fn reconcile(pod: Arc<Pod>, ctx: Arc<Context>) -> Result<Requeue> {
    let _ = ctx.nodes.wait_until_ready().await;
    let namespace = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let key = format!("{namespace}/{name}");
    if pod.metadata.deletion_timestamp.is_some() {
        ctx.pending.lock().expect("not poisoned").remove(&key);
        return Ok(Requeue::await_change());
    }
    let now = Timestamp::now();
    let node = pods::node_name(&pod).unwrap_or_default();
    let mut taints = ctx
        .nodes
        .get(&ObjectRef::new(node))
        .map(|n| no_execute_taints(&n))
        .unwrap_or_default();
    if taints.iter().any(|t| t.time_added.is_none()) {
        let mut first_seen = ctx.first_seen.lock().expect("not poisoned");
        for t in taints.iter_mut().filter(|t| t.time_added.is_none()) {
            let key = (node.to_string(), t.key.clone(), t.value.clone());
            t.time_added = Some(Time(*first_seen.entry(key).or_insert(now)));
        }
    }
    match decide(&pod, &taints, now) {
        Decision::Keep => {
            let was_pending = ctx.pending.lock().expect("not poisoned").remove(&key);
            if was_pending {
                ctx.recorder
                    .record(
                        pod_ref(&namespace, &name),
                        "Normal",
                        "TaintManagerEviction",
                        &format!("Cancelling deletion of Pod {key}"),
                    )
                    .await;
            }
            Ok(Requeue::await_change())
        }
        Decision::EvictAt(deadline) => {
            ctx.pending.lock().expect("not poisoned").insert(key);
            let wait = deadline.duration_since(now).unsigned_abs();
            Ok(Requeue::requeue(wait + Duration::from_millis(50)))
        }
        Decision::Evict => {
            ctx.pending.lock().expect("not poisoned").remove(&key);
            tracing::info!("deleting pod for a NoExecute taint");
            ctx.recorder
                .record(
                    pod_ref(&namespace, &name),
                    "Normal",
                    "TaintManagerEviction",
                    &format!("Marking for deletion Pod {key}"),
                )
                .await;
            evict(&ctx.client, &pod).await?;
            Ok(Requeue::await_change())
        }
    }
}

/// Add the `DisruptionTarget` condition (unless present), then delete the pod.
async fn evict(client: &Client, pod: &Pod) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let name = pod.name_any();
    let marked = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| {
            c.type_ == "DisruptionTarget"
                && c.status == "True"
                && c.reason.as_deref() == Some("DeletionByTaintManager")
        });
    if !marked {
        let patch = json!({
            "metadata": {"uid": pod.metadata.uid},
            "status": {"conditions": [{
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "DeletionByTaintManager",
                "message": "Taint manager: deleting due to NoExecute taint",
                "lastTransitionTime": Time(Timestamp::now()),
            }]},
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn pod_ref(namespace: &str, name: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(namespace.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn taint(key: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: NO_EXECUTE.into(),
            time_added: Some(Time(t(added))),
            value: None,
        }
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: seconds,
            value: None,
        }
    }

    fn pod(tolerations: Vec<Toleration>, bound: Option<i64>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                node_name: Some("n".into()),
                tolerations: Some(tolerations),
                ..Default::default()
            }),
            status: bound.map(|b| PodStatus {
                conditions: Some(vec![PodCondition {
                    type_: "PodScheduled".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(t(b))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
    const NOT_READY: &str = "node.kubernetes.io/not-ready";

    #[test]
    fn a_pod_that_does_not_tolerate_a_taint_is_evicted_at_once() {
        let p = pod(vec![toleration(NOT_READY, Some(300))], None);
        assert_eq!(decide(&p, &[taint(UNREACHABLE, 0)], t(1)), Decision::Evict);
        let none = pod(vec![], None);
        assert_eq!(
            decide(&none, &[taint(UNREACHABLE, 0)], t(1)),
            Decision::Evict
        );
    }

    #[test]
    fn a_pod_is_evicted_when_its_shortest_toleration_runs_out() {
        let p = pod(
            vec![
                toleration(UNREACHABLE, Some(5)),
                toleration(NOT_READY, Some(300)),
            ],
            Some(-100),
        );
        let taints = [taint(UNREACHABLE, 10)];
        assert_eq!(decide(&p, &taints, t(12)), Decision::EvictAt(t(15)));
        assert_eq!(decide(&p, &taints, t(15)), Decision::Evict);
        // Both taints: the earliest timeAdded and the smallest tolerationSeconds count.
        let both = [taint(NOT_READY, 20), taint(UNREACHABLE, 10)];
        assert_eq!(decide(&p, &both, t(12)), Decision::EvictAt(t(15)));
        // Zero or negative seconds mean at once.
        let zero = pod(vec![toleration(UNREACHABLE, Some(0))], None);
        assert_eq!(decide(&zero, &taints, t(10)), Decision::Evict);
    }

    #[test]
    fn a_pod_bound_after_the_taint_gets_its_full_toleration() {
        let p = pod(vec![toleration(UNREACHABLE, Some(60))], Some(100));
        assert_eq!(
            decide(&p, &[taint(UNREACHABLE, 0)], t(101)),
            Decision::EvictAt(t(160))
        );
    }

    #[test]
    fn a_pod_tolerating_forever_stays_and_no_taint_means_no_eviction() {
        let p = pod(
            vec![Toleration {
                operator: Some("Exists".into()),
                ..Default::default()
            }],
            None,
        );
        assert_eq!(
            decide(&p, &[taint(UNREACHABLE, 0)], t(1_000)),
            Decision::Keep
        );
        let timed = pod(vec![toleration(UNREACHABLE, Some(5))], None);
        assert_eq!(decide(&timed, &[], t(1_000)), Decision::Keep);
    }

    #[test]
    fn tolerations_match_by_key_effect_operator_and_value() {
        let mut taint = taint("k", 0);
        taint.value = Some("v".into());
        let equal = |value: &str| Toleration {
            key: Some("k".into()),
            operator: Some("Equal".into()),
            value: Some(value.into()),
            ..Default::default()
        };
        assert!(tolerates(&equal("v"), &taint));
        assert!(!tolerates(&equal("w"), &taint));
        let other_effect = Toleration {
            effect: Some("NoSchedule".into()),
            ..equal("v")
        };
        assert!(!tolerates(&other_effect, &taint));
        let any_key = Toleration {
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            ..Default::default()
        };
        assert!(tolerates(&any_key, &taint));
    }
}
