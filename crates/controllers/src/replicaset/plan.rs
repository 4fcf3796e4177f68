//! The pure half of the ReplicaSet controller: given a ReplicaSet and the pods of its
//! namespace, which API actions bring the pod count to `spec.replicas`, and what the status
//! says. No I/O; the caller performs the actions in order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::core::{Selector, SelectorExt};

use crate::pods;

/// The finalizer the API server sets for `propagationPolicy: Foreground`.
pub const FOREGROUND_DELETION: &str = "foregroundDeletion";

/// Upstream's cap on creations or deletions in one sync (`burstReplicas`).
pub const BURST_REPLICAS: usize = 500;

/// One API call the controller makes, in the order it makes them.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Set this ReplicaSet as the controller of an orphan pod that matches the selector.
    Adopt { pod: String },
    /// Drop the controller reference from an owned pod that no longer matches.
    Release { pod: String },
    /// Create this many pods from the template (in slow-start batches).
    Create { count: usize },
    /// Delete these pods, worst-ranked first.
    Delete { pods: Vec<String> },
    /// Foreground deletion of the ReplicaSet: delete these dependents first.
    DeleteDependents { pods: Vec<String> },
    /// Foreground deletion with no dependents left: drop the `foregroundDeletion` finalizer
    /// so that the API server removes the ReplicaSet.
    RemoveForegroundFinalizer,
    /// Write `status` through the status subresource.
    UpdateStatus { status: ReplicaSetStatus },
}

/// What a sync decided, plus when to look again (for `minReadySeconds`).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue_after: Option<std::time::Duration>,
}

/// Decide the actions for one sync. `expectations_satisfied` is false while creations or
/// deletions of an earlier sync have not shown up in `pods` yet; then only status is written,
/// so that watch lag never leads to a second round of creations or deletions.
pub fn plan(rs: &ReplicaSet, pods: &[Pod], expectations_satisfied: bool, now: Timestamp) -> Plan {
    let mut actions = Vec::new();
    let selector = selector_of(rs);
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let rs_deleting = rs.metadata.deletion_timestamp.is_some();

    // Claim: owned pods that match stay, owned pods that stop matching are released, orphans
    // that match are adopted (not while the ReplicaSet itself is going away).
    let mut owned: Vec<&Pod> = Vec::new();
    for pod in pods {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let matches = selector
            .as_ref()
            .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())));
        match pods::controller_uid(pod) {
            Some(owner) if owner == uid => {
                if matches {
                    owned.push(pod);
                } else if !rs_deleting {
                    actions.push(Action::Release { pod: name });
                }
            }
            Some(_) => {}
            None => {
                if matches && !rs_deleting && pod.metadata.deletion_timestamp.is_none() {
                    actions.push(Action::Adopt { pod: name });
                    owned.push(pod);
                }
            }
        }
    }

    let mut active: Vec<&Pod> = owned
        .iter()
        .copied()
        .filter(|p| pods::is_active(p))
        .collect();
    let desired = rs
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0) as usize;
    if expectations_satisfied && !rs_deleting {
        if active.len() < desired {
            actions.push(Action::Create {
                count: (desired - active.len()).min(BURST_REPLICAS),
            });
        } else if active.len() > desired {
            let count = (active.len() - desired).min(BURST_REPLICAS);
            active.sort_by(|a, b| deletion_order(a, b, now));
            actions.push(Action::Delete {
                pods: active[..count]
                    .iter()
                    .map(|p| p.metadata.name.clone().unwrap_or_default())
                    .collect(),
            });
        }
    }

    let foreground = rs
        .metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == FOREGROUND_DELETION);
    if rs_deleting && foreground {
        // Owned by uid, whether or not the labels still match: the GC follows ownerReferences.
        let dependents: Vec<&Pod> = pods
            .iter()
            .filter(|p| pods::controller_uid(p) == Some(uid))
            .collect();
        let live: Vec<String> = dependents
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        if !live.is_empty() {
            actions.push(Action::DeleteDependents { pods: live });
        } else if dependents.is_empty() {
            actions.push(Action::RemoveForegroundFinalizer);
            return Plan {
                actions,
                requeue_after: None,
            };
        }
    }

    let (status, requeue_after) = status(rs, &owned, now);
    if rs.status.as_ref() != Some(&status) {
        actions.push(Action::UpdateStatus { status });
    }
    Plan {
        actions,
        requeue_after,
    }
}

/// The ReplicaSet's selector; `None` (select nothing) when empty or unparsable, which the
/// API server's validation rules out anyway.
pub fn selector_of(rs: &ReplicaSet) -> Option<Selector> {
    let selector = rs.spec.as_ref()?.selector.clone();
    let selector = Selector::try_from(selector).ok()?;
    (!selector.selects_all()).then_some(selector)
}

/// Status computed from the pods this ReplicaSet owns, and when a ready pod becomes available.
fn status(
    rs: &ReplicaSet,
    owned: &[&Pod],
    now: Timestamp,
) -> (ReplicaSetStatus, Option<std::time::Duration>) {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0).max(0) as i64;
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = ReplicaSetStatus {
        conditions: rs.status.as_ref().and_then(|s| s.conditions.clone()),
        observed_generation: rs.metadata.generation,
        ..Default::default()
    };
    // terminatingReplicas stays unset: upstream fills it only behind an alpha feature gate.
    let (mut replicas, mut labelled, mut ready, mut available) = (0, 0, 0, 0);
    let mut requeue: Option<std::time::Duration> = None;
    for pod in owned {
        if !pods::is_active(pod) {
            continue;
        }
        replicas += 1;
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            labelled += 1;
        }
        if let Some(since) = pods::ready_since(pod) {
            ready += 1;
            let available_at = since + jiff::SignedDuration::from_secs(min_ready);
            if min_ready == 0 || available_at <= now {
                available += 1;
            } else {
                let wait = now.duration_until(available_at).unsigned_abs();
                requeue = Some(requeue.map_or(wait, |r| r.min(wait)));
            }
        }
    }
    status.replicas = replicas;
    status.fully_labeled_replicas = Some(labelled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    (status, requeue)
}

/// Upstream's ranking of which pods to delete first (`ActivePods` order): unassigned before
/// assigned, Pending before Unknown before Running, not ready before ready, lower
/// `controller.kubernetes.io/pod-deletion-cost` first, ready for less time first, more
/// restarts first, newer first.
pub fn deletion_order(a: &Pod, b: &Pod, _now: Timestamp) -> Ordering {
    let assigned = |p: &Pod| pods::node_name(p).is_some();
    let phase_rank = |p: &Pod| match pods::phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    let ready = |p: &Pod| pods::ready_since(p).is_some();
    let cost = |p: &Pod| {
        p.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("controller.kubernetes.io/pod-deletion-cost"))
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
    };
    assigned(a)
        .cmp(&assigned(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| ready(a).cmp(&ready(b)))
        .then_with(|| cost(a).cmp(&cost(b)))
        // Ready more recently (shorter) goes first: later timestamp sorts first.
        .then_with(|| match (pods::ready_since(a), pods::ready_since(b)) {
            (Some(x), Some(y)) => y.cmp(&x),
            _ => Ordering::Equal,
        })
        .then_with(|| pods::restarts(b).cmp(&pods::restarts(a)))
        .then_with(|| {
            let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            created(b).cmp(&created(a))
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        LabelSelector, ObjectMeta, OwnerReference, Time,
    };

    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn rs(replicas: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                uid: Some("rs-uid".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(labels(&[("app", "web")])),
                    ..Default::default()
                },
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(&[("app", "web")])),
                        ..Default::default()
                    }),
                    spec: Some(PodSpec::default()),
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(name: &str, owner: Option<&str>, created_min: u32) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                labels: Some(labels(&[("app", "web")])),
                creation_timestamp: Some(Time(
                    format!("2026-01-01T00:{created_min:02}:00Z")
                        .parse()
                        .unwrap(),
                )),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: "web".into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    fn running_ready(mut p: Pod, node: &str, ready_at: &str) -> Pod {
        p.spec.as_mut().unwrap().node_name = Some(node.into());
        let status = p.status.as_mut().unwrap();
        status.phase = Some("Running".into());
        status.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ready_at.parse().unwrap())),
            ..Default::default()
        }]);
        p
    }

    fn kinds(plan: &Plan) -> Vec<Action> {
        plan.actions
            .iter()
            .filter(|a| !matches!(a, Action::UpdateStatus { .. }))
            .cloned()
            .collect()
    }

    #[test]
    fn missing_pods_are_created_and_status_written() {
        let plan = plan(&rs(3), &[pod("web-a", Some("rs-uid"), 1)], true, now());
        assert_eq!(plan.actions.len(), 2);
        assert_eq!(plan.actions[0], Action::Create { count: 2 });
        let Action::UpdateStatus { status } = &plan.actions[1] else {
            panic!("{:?}", plan.actions)
        };
        assert_eq!(status.replicas, 1);
        assert_eq!(status.fully_labeled_replicas, Some(1));
        assert_eq!(status.ready_replicas, Some(0));
        assert_eq!(status.observed_generation, Some(2));
    }

    #[test]
    fn unsatisfied_expectations_only_update_status() {
        let plan = plan(&rs(3), &[], false, now());
        assert!(kinds(&plan).is_empty(), "{:?}", plan.actions);
    }

    #[test]
    fn orphans_matching_the_selector_are_adopted_and_count() {
        let mut other = pod("other", None, 1);
        other.metadata.labels = Some(labels(&[("app", "db")]));
        let pods = [
            pod("web-a", None, 1),
            other,
            pod("web-b", Some("someone-else"), 1),
        ];
        let plan = plan(&rs(2), &pods, true, now());
        assert_eq!(
            kinds(&plan),
            vec![
                Action::Adopt {
                    pod: "web-a".into()
                },
                Action::Create { count: 1 }
            ]
        );
    }

    #[test]
    fn owned_pods_that_stop_matching_are_released_and_replaced() {
        let mut moved = pod("web-a", Some("rs-uid"), 1);
        moved.metadata.labels = Some(labels(&[("app", "debug")]));
        let plan = plan(&rs(1), &[moved], true, now());
        assert_eq!(
            kinds(&plan),
            vec![
                Action::Release {
                    pod: "web-a".into()
                },
                Action::Create { count: 1 }
            ]
        );
    }

    #[test]
    fn scale_down_deletes_unassigned_then_not_ready_then_newest() {
        let pods = [
            running_ready(
                pod("old-ready", Some("rs-uid"), 1),
                "n1",
                "2026-01-01T00:02:00Z",
            ),
            running_ready(
                pod("new-ready", Some("rs-uid"), 3),
                "n1",
                "2026-01-01T00:04:00Z",
            ),
            pod("pending", Some("rs-uid"), 0),
            {
                let mut p = pod("running-not-ready", Some("rs-uid"), 0);
                p.spec.as_mut().unwrap().node_name = Some("n1".into());
                p.status.as_mut().unwrap().phase = Some("Running".into());
                p
            },
        ];
        let plan = plan(&rs(1), &pods, true, now());
        assert_eq!(
            kinds(&plan),
            vec![Action::Delete {
                pods: vec![
                    "pending".into(),
                    "running-not-ready".into(),
                    "new-ready".into()
                ]
            }]
        );
    }

    #[test]
    fn terminating_and_finished_pods_are_not_active() {
        let mut deleting = pod("deleting", Some("rs-uid"), 1);
        deleting.metadata.deletion_timestamp = Some(Time(now()));
        let mut done = pod("done", Some("rs-uid"), 1);
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let plan = plan(&rs(1), &[deleting, done], true, now());
        assert_eq!(kinds(&plan), vec![Action::Create { count: 1 }]);
        let Some(Action::UpdateStatus { status }) = plan.actions.last() else {
            panic!()
        };
        assert_eq!(status.replicas, 0);
    }

    #[test]
    fn available_waits_for_min_ready_seconds() {
        let mut set = rs(2);
        set.spec.as_mut().unwrap().min_ready_seconds = Some(60);
        let pods = [
            running_ready(pod("a", Some("rs-uid"), 1), "n1", "2026-01-01T00:02:00Z"),
            running_ready(pod("b", Some("rs-uid"), 1), "n1", "2026-01-01T00:09:30Z"),
        ];
        let plan = plan(&set, &pods, true, now());
        let Some(Action::UpdateStatus { status }) = plan.actions.last() else {
            panic!()
        };
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(1));
        assert_eq!(plan.requeue_after, Some(std::time::Duration::from_secs(30)));
    }

    #[test]
    fn unchanged_status_is_not_written() {
        let mut set = rs(1);
        let pods = [pod("a", Some("rs-uid"), 1)];
        let first = plan(&set, &pods, true, now());
        let Some(Action::UpdateStatus { status }) = first.actions.last() else {
            panic!()
        };
        set.status = Some(status.clone());
        assert_eq!(plan(&set, &pods, true, now()), Plan::default());
    }

    #[test]
    fn foreground_deletion_deletes_dependents_then_drops_the_finalizer() {
        let mut set = rs(2);
        set.metadata.deletion_timestamp = Some(Time(now()));
        set.metadata.finalizers = Some(vec![FOREGROUND_DELETION.into()]);
        let mut going = pod("b", Some("rs-uid"), 1);
        going.metadata.deletion_timestamp = Some(Time(now()));
        let pods = [pod("a", Some("rs-uid"), 1), going.clone()];
        assert_eq!(
            kinds(&plan(&set, &pods, true, now())),
            vec![Action::DeleteDependents {
                pods: vec!["a".into()]
            }]
        );
        // Still terminating: wait.
        assert!(kinds(&plan(&set, &[going], true, now())).is_empty());
        assert_eq!(
            plan(&set, &[], true, now()).actions,
            vec![Action::RemoveForegroundFinalizer]
        );
    }

    #[test]
    fn a_deleting_replicaset_neither_adopts_nor_creates() {
        let mut set = rs(3);
        set.metadata.deletion_timestamp = Some(Time(now()));
        let plan = plan(&set, &[pod("orphan", None, 1)], true, now());
        assert!(kinds(&plan).is_empty(), "{:?}", plan.actions);
    }
}
