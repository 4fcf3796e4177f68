//! The planner against fixtures: each test states the ReplicaSets and pods the caches hold
//! and compares the ordered actions of one sync.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentSpec, DeploymentStatus, DeploymentStrategy,
    ReplicaSet, ReplicaSetSpec, ReplicaSetStatus, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::sync::{self, Action, Plan};
use super::util::{self, POD_TEMPLATE_HASH};

fn now() -> Timestamp {
    "2026-01-01T01:00:00Z".parse().unwrap()
}

fn at_minute(m: u32) -> Time {
    Time(format!("2026-01-01T00:{m:02}:00Z").parse().unwrap())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn template(image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(&[("app", "web")])),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

fn deployment(replicas: i32, image: &str) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web")])),
                ..Default::default()
            },
            template: template(image),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".into())),
                    max_unavailable: Some(IntOrString::String("25%".into())),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

fn recreate(mut d: Deployment) -> Deployment {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("Recreate".into()),
        rolling_update: None,
    });
    d
}

fn hash(image: &str) -> String {
    util::pod_template_hash(&template(image), None)
}

fn rs_name(image: &str) -> String {
    format!("web-{}", hash(image))
}

/// A ReplicaSet as the controller makes it, sized for a Deployment of `desired` replicas
/// (maxSurge 25%), with `available` pods available.
fn rs(
    image: &str,
    replicas: i32,
    available: i32,
    revision: i64,
    desired: i32,
    minute: u32,
) -> ReplicaSet {
    let h = hash(image);
    let mut t = template(image);
    t.metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH.into(), h.clone());
    let max =
        desired + util::scaled_value(&IntOrString::String("25%".into()), desired, true).unwrap();
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{h}")),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{image}")),
            generation: Some(1),
            creation_timestamp: Some(at_minute(minute)),
            labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH, &h)])),
            annotations: Some(
                [
                    (util::REVISION.to_string(), revision.to_string()),
                    (util::DESIRED_REPLICAS.to_string(), desired.to_string()),
                    (util::MAX_REPLICAS.to_string(), max.to_string()),
                ]
                .into(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "d-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels(&[("app", "web"), (POD_TEMPLATE_HASH, &h)])),
                ..Default::default()
            },
            template: Some(t),
            ..Default::default()
        }),
        status: Some(ReplicaSetStatus {
            replicas,
            ready_replicas: Some(available),
            available_replicas: Some(available),
            observed_generation: Some(1),
            ..Default::default()
        }),
    }
}

/// The Deployment's status as the controller last wrote it for these ReplicaSets.
fn with_status(
    mut d: Deployment,
    sets: &[ReplicaSet],
    new: &str,
    progressing: (&str, &str, u32),
) -> Deployment {
    let sum = |f: fn(&ReplicaSet) -> i32| sets.iter().map(f).sum::<i32>();
    let updated = sets
        .iter()
        .find(|rs| rs.metadata.name.as_deref() == Some(&rs_name(new)))
        .map_or(0, util::status_replicas);
    let nz = |v: i32| (v != 0).then_some(v);
    let available = sum(util::available_replicas) >= util::desired(&d) - util::max_unavailable(&d);
    let (status, reason, message) = if available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: nz(sum(util::status_replicas)),
        updated_replicas: nz(updated),
        ready_replicas: nz(sum(util::ready_replicas)),
        available_replicas: nz(sum(util::available_replicas)),
        unavailable_replicas: nz((sum(util::replicas) - sum(util::available_replicas)).max(0)),
        conditions: Some(vec![
            DeploymentCondition {
                type_: "Progressing".into(),
                status: progressing.0.into(),
                reason: Some(progressing.1.into()),
                message: Some("earlier".into()),
                last_update_time: Some(at_minute(progressing.2)),
                last_transition_time: Some(at_minute(progressing.2)),
            },
            DeploymentCondition {
                type_: "Available".into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_update_time: Some(at_minute(0)),
                last_transition_time: Some(at_minute(0)),
            },
        ]),
        ..Default::default()
    });
    d
}

/// One line per action, for comparing whole plans.
fn summary(plan: &Plan) -> Vec<String> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::Adopt { name } => format!("adopt {name}"),
            Action::Release { name } => format!("release {name}"),
            Action::Create { rs } => format!(
                "create {} replicas={} revision={}",
                rs.metadata.name.as_deref().unwrap(),
                util::replicas(rs),
                util::annotation(rs, util::REVISION).unwrap()
            ),
            Action::Update { rs } => format!(
                "update {} replicas={} revision={}",
                rs.metadata.name.as_deref().unwrap(),
                util::replicas(rs),
                util::annotation(rs, util::REVISION).unwrap_or("-")
            ),
            Action::Delete { name, .. } => format!("delete {name}"),
            Action::SetRevision { revision } => format!("revision {revision}"),
            Action::UpdateStatus { .. } => "status".into(),
            Action::Event {
                reason, message, ..
            } => format!("{reason}: {message}"),
        })
        .collect()
}

fn written_status(plan: &Plan) -> &DeploymentStatus {
    plan.actions
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::UpdateStatus { status } => Some(&**status),
            _ => None,
        })
        .expect("a status write")
}

fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> (&'a str, &'a str, &'a str) {
    let c = s
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {s:?}"));
    (
        c.status.as_str(),
        c.reason.as_deref().unwrap(),
        c.message.as_deref().unwrap(),
    )
}

fn created(plan: &Plan) -> &ReplicaSet {
    plan.actions
        .iter()
        .find_map(|a| match a {
            Action::Create { rs } => Some(&**rs),
            _ => None,
        })
        .expect("a created ReplicaSet")
}

#[test]
fn a_new_deployment_creates_its_first_replicaset_named_by_the_template_hash() {
    let d = deployment(10, "busybox");
    let plan = sync::plan(&d, &[], &[], now());
    let name = rs_name("busybox");
    assert_eq!(
        summary(&plan),
        vec![
            format!("create {name} replicas=10 revision=1"),
            format!("ScalingReplicaSet: Scaled up replica set {name} from 0 to 10"),
            "revision 1".into(),
            "status".into(),
        ]
    );
    let rs = created(&plan);
    let h = hash("busybox");
    let spec = rs.spec.as_ref().unwrap();
    assert_eq!(
        spec.selector.match_labels.as_ref().unwrap()[POD_TEMPLATE_HASH],
        h
    );
    assert_eq!(
        spec.template
            .as_ref()
            .unwrap()
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()[POD_TEMPLATE_HASH],
        h
    );
    assert_eq!(rs.metadata.labels.as_ref().unwrap()[POD_TEMPLATE_HASH], h);
    let owner = &rs.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "d-uid")
    );
    assert_eq!(
        (owner.controller, owner.block_owner_deletion),
        (Some(true), Some(true))
    );
    assert_eq!(util::annotation(rs, util::DESIRED_REPLICAS), Some("10"));
    assert_eq!(util::annotation(rs, util::MAX_REPLICAS), Some("13"));

    let status = written_status(&plan);
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        condition(status, "Progressing"),
        (
            "True",
            "NewReplicaSetCreated",
            &*format!("Created new replica set {name:?}")
        )
    );
    assert_eq!(
        condition(status, "Available"),
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability."
        )
    );
    assert_eq!(status.unavailable_replicas, Some(10));
}

#[test]
fn a_template_change_surges_the_new_replicaset_and_shrinks_the_old_within_unavailable() {
    let old = rs("busybox", 10, 10, 1, 10, 1);
    let d = with_status(
        deployment(10, "nginx"),
        std::slice::from_ref(&old),
        "busybox",
        ("True", "NewReplicaSetAvailable", 5),
    );
    let plan = sync::plan(&d, &[old], &[], now());
    let (new, old) = (rs_name("nginx"), rs_name("busybox"));
    assert_eq!(
        summary(&plan),
        vec![
            format!("create {new} replicas=3 revision=2"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 0 to 3"),
            "revision 2".into(),
            format!("update {old} replicas=8 revision=1"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 10 to 8"),
            "status".into(),
        ]
    );
    assert_eq!(
        condition(written_status(&plan), "Progressing").1,
        "NewReplicaSetCreated"
    );
}

#[test]
fn the_new_replicaset_grows_as_old_replicas_leave_and_the_rollout_completes() {
    let sets = [rs("busybox", 8, 8, 1, 10, 1), rs("nginx", 3, 3, 2, 10, 30)];
    let mut d = with_status(
        deployment(10, "nginx"),
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 30),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(
        summary(&plan),
        vec![
            format!("update {} replicas=5 revision=2", rs_name("nginx")),
            format!(
                "ScalingReplicaSet: Scaled up replica set {} from 3 to 5",
                rs_name("nginx")
            ),
            "status".into(),
        ]
    );

    // All new, all available: old ones are gone, Progressing says so.
    let sets = [
        rs("busybox", 0, 0, 1, 10, 1),
        rs("nginx", 10, 10, 2, 10, 30),
    ];
    let before = with_status(
        deployment(10, "nginx"),
        &sets[..1],
        "nginx",
        ("True", "ReplicaSetUpdated", 30),
    );
    let mut d = before;
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(summary(&plan), vec!["status".to_string()]);
    let status = written_status(&plan);
    assert_eq!(
        condition(status, "Progressing"),
        (
            "True",
            "NewReplicaSetAvailable",
            &*format!(
                "ReplicaSet {:?} has successfully progressed.",
                rs_name("nginx")
            )
        )
    );
    assert_eq!(condition(status, "Available").1, "MinimumReplicasAvailable");
    assert_eq!(
        (status.updated_replicas, status.available_replicas),
        (Some(10), Some(10))
    );
}

#[test]
fn maximum_zero_unavailable_waits_for_new_pods_before_removing_old_ones() {
    let mut d = deployment(4, "nginx");
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some("RollingUpdate".into()),
        rolling_update: Some(RollingUpdateDeployment {
            max_surge: Some(IntOrString::Int(1)),
            max_unavailable: Some(IntOrString::Int(0)),
        }),
    });
    // One new pod surged but not yet available: nothing old may go.
    let mut new = rs("nginx", 1, 0, 2, 4, 30);
    util::set_replicas_annotations(&mut new, 4, 5);
    let mut old = rs("busybox", 4, 4, 1, 4, 1);
    util::set_replicas_annotations(&mut old, 4, 5);
    let sets = [old, new];
    let d = with_status(d, &sets, "nginx", ("True", "ReplicaSetUpdated", 59));
    let plan = sync::plan(&d, &sets, &[], now());
    assert!(
        !summary(&plan).iter().any(|a| a.starts_with("update")),
        "{:?}",
        summary(&plan)
    );
}

#[test]
fn rolling_back_reuses_the_old_replicaset_with_a_new_revision_and_history() {
    // Revision 1 ran busybox, revision 2 runs nginx; `rollout undo` puts busybox back.
    let sets = [
        rs("busybox", 0, 0, 1, 10, 1),
        rs("nginx", 10, 10, 2, 10, 30),
    ];
    let mut d = with_status(
        deployment(10, "busybox"),
        &sets,
        "nginx",
        ("True", "NewReplicaSetAvailable", 30),
    );
    d.metadata.generation = Some(3);
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    let (back, current) = (rs_name("busybox"), rs_name("nginx"));
    assert_eq!(
        summary(&plan),
        vec![
            format!("update {back} replicas=0 revision=3"),
            "revision 3".into(),
            format!("update {back} replicas=3 revision=3"),
            format!("ScalingReplicaSet: Scaled up replica set {back} from 0 to 3"),
            "status".into(),
        ]
    );
    let Action::Update { rs } = &plan.actions[0] else {
        panic!()
    };
    assert_eq!(util::annotation(rs, util::REVISION_HISTORY), Some("1"));
    assert!(!summary(&plan)
        .iter()
        .any(|a| a.contains(&current) && a.starts_with("create")));
}

#[test]
fn revision_history_keeps_earlier_revisions_within_its_length_limit() {
    let mut set = rs("busybox", 0, 0, 3, 10, 1);
    set.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(util::REVISION_HISTORY.into(), "1".into());
    let d = deployment(10, "busybox");
    assert!(util::set_new_rs_annotations(&d, &mut set, 5, true));
    assert_eq!(util::annotation(&set, util::REVISION), Some("5"));
    assert_eq!(util::annotation(&set, util::REVISION_HISTORY), Some("1,3"));
    // Never lowered.
    assert!(!util::set_new_rs_annotations(&d, &mut set, 4, true));
}

#[test]
fn a_paused_deployment_scales_but_does_not_roll_out() {
    let sets = [rs("busybox", 10, 10, 1, 10, 1)];
    let mut d = with_status(
        deployment(10, "nginx"),
        &sets,
        "busybox",
        ("True", "NewReplicaSetAvailable", 30),
    );
    d.spec.as_mut().unwrap().paused = Some(true);
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(summary(&plan), vec!["status".to_string()]);
    assert_eq!(
        condition(written_status(&plan), "Progressing"),
        ("Unknown", "DeploymentPaused", "Deployment is paused")
    );

    // Scaling a paused Deployment resizes the only active ReplicaSet.
    d.spec.as_mut().unwrap().replicas = Some(12);
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(
        summary(&plan)[..2],
        [
            format!("update {} replicas=12 revision=1", rs_name("busybox")),
            format!(
                "ScalingReplicaSet: Scaled up replica set {} from 10 to 12",
                rs_name("busybox")
            ),
        ]
    );

    // Resuming shows DeploymentResumed, then the rollout starts.
    let paused = with_status(
        deployment(10, "nginx"),
        &sets,
        "busybox",
        ("Unknown", "DeploymentPaused", 40),
    );
    let plan = sync::plan(&paused, &sets, &[], now());
    assert!(summary(&plan)[0].starts_with(&format!("create {}", rs_name("nginx"))));
    assert_eq!(
        condition(written_status(&plan), "Progressing").1,
        "NewReplicaSetCreated"
    );
}

#[test]
fn scaling_during_a_rollout_is_proportional_to_replicaset_sizes() {
    let sets = [rs("busybox", 8, 8, 1, 10, 1), rs("nginx", 5, 0, 2, 10, 30)];
    let mut d = with_status(
        deployment(20, "nginx"),
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 59),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    let (old, new) = (rs_name("busybox"), rs_name("nginx"));
    // 20 + 5 surge = 25 allowed, 13 now: old gets round(8*25/13)-8 = 7, new the other 5.
    assert_eq!(
        summary(&plan),
        vec![
            format!("update {old} replicas=15 revision=1"),
            format!("ScalingReplicaSet: Scaled up replica set {old} from 8 to 15"),
            format!("update {new} replicas=10 revision=2"),
            format!("ScalingReplicaSet: Scaled up replica set {new} from 5 to 10"),
            "status".into(),
        ]
    );
    let Action::Update { rs } = &plan.actions[0] else {
        panic!()
    };
    assert_eq!(util::annotation(rs, util::DESIRED_REPLICAS), Some("20"));
    assert_eq!(util::annotation(rs, util::MAX_REPLICAS), Some("25"));
}

#[test]
fn recreate_scales_old_to_zero_waits_for_pods_then_creates_the_new_replicaset() {
    let d = recreate(deployment(3, "nginx"));
    let sets = [rs("busybox", 3, 3, 1, 3, 1)];
    let plan1 = sync::plan(&d, &sets, &[], now());
    let old = rs_name("busybox");
    assert_eq!(
        summary(&plan1),
        vec![
            format!("update {old} replicas=0 revision=1"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 3 to 0"),
            "status".into(),
        ]
    );

    // Scaled to zero, but one pod is still terminating: wait.
    let sets = [rs("busybox", 0, 0, 1, 3, 1)];
    let terminating = Pod {
        metadata: ObjectMeta {
            name: Some("web-old-1".into()),
            namespace: Some("default".into()),
            labels: Some(labels(&[("app", "web")])),
            deletion_timestamp: Some(Time(now())),
            owner_references: Some(vec![OwnerReference {
                kind: "ReplicaSet".into(),
                name: old.clone(),
                uid: "uid-busybox".into(),
                controller: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(PodSpec::default()),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        }),
    };
    let plan2 = sync::plan(&d, &sets, &[terminating], now());
    assert!(
        !summary(&plan2).iter().any(|a| a.starts_with("create")),
        "{:?}",
        summary(&plan2)
    );

    // Gone: the new ReplicaSet comes at full size.
    let plan3 = sync::plan(&d, &sets, &[], now());
    assert_eq!(
        summary(&plan3)[..3],
        [
            format!("create {} replicas=3 revision=2", rs_name("nginx")),
            format!(
                "ScalingReplicaSet: Scaled up replica set {} from 0 to 3",
                rs_name("nginx")
            ),
            "revision 2".into(),
        ]
    );
}

#[test]
fn old_replicasets_beyond_the_history_limit_are_deleted_oldest_revision_first() {
    let sets = [
        rs("a", 0, 0, 1, 2, 1),
        rs("b", 0, 0, 2, 2, 2),
        rs("c", 0, 0, 3, 2, 3),
        rs("nginx", 2, 2, 4, 2, 4),
    ];
    let mut d = with_status(
        deployment(2, "nginx"),
        &sets,
        "nginx",
        ("True", "NewReplicaSetAvailable", 4),
    );
    d.spec.as_mut().unwrap().revision_history_limit = Some(1);
    d.metadata.annotations = Some([(util::REVISION.to_string(), "4".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(
        summary(&plan),
        vec![
            format!("delete {}", rs_name("a")),
            format!("delete {}", rs_name("b"))
        ]
    );
}

#[test]
fn a_stalled_rollout_reports_progress_deadline_exceeded() {
    // Five new pods never become ready; the last progress was 20 minutes ago.
    let sets = [rs("busybox", 8, 8, 1, 10, 1), rs("nginx", 5, 0, 2, 10, 30)];
    let mut d = with_status(
        deployment(10, "nginx"),
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 40),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(summary(&plan), vec!["status".to_string()]);
    assert_eq!(
        condition(written_status(&plan), "Progressing"),
        (
            "False",
            "ProgressDeadlineExceeded",
            &*format!(
                "ReplicaSet {:?} has timed out progressing.",
                rs_name("nginx")
            )
        )
    );

    // Five minutes in, nothing to write yet: look again when the deadline passes.
    let d = with_status(
        {
            let mut d = deployment(10, "nginx");
            d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
            d
        },
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 55),
    );
    let plan = sync::plan(&d, &sets, &[], now());
    assert!(plan.actions.is_empty(), "{:?}", summary(&plan));
    assert_eq!(
        plan.requeue_after,
        Some(std::time::Duration::from_secs(301))
    );
}

#[test]
fn orphans_are_adopted_and_replicasets_that_stop_matching_are_released() {
    let mut orphan = rs("busybox", 10, 10, 1, 10, 1);
    orphan.metadata.owner_references = None;
    let mut moved = rs("nginx", 0, 0, 2, 10, 2);
    moved.metadata.labels = Some(labels(&[("app", "debug")]));
    let d = deployment(10, "busybox");
    let plan = sync::plan(&d, &[orphan, moved], &[], now());
    let s = summary(&plan);
    assert_eq!(s[0], format!("adopt {}", rs_name("busybox")));
    assert_eq!(s[1], format!("release {}", rs_name("nginx")));
    assert!(!s.iter().any(|a| a.starts_with("create")), "{s:?}");
}

#[test]
fn a_name_taken_by_another_template_is_a_hash_collision() {
    let mut squatter = rs("busybox", 1, 1, 1, 1, 1);
    squatter.metadata.owner_references = None;
    squatter.metadata.labels = Some(labels(&[("app", "other")]));
    let d = deployment(10, "busybox");
    let plan = sync::plan(&d, &[squatter], &[], now());
    assert_eq!(summary(&plan), vec!["status".to_string()]);
    assert_eq!(written_status(&plan).collision_count, Some(1));

    // With the count the hash (and name) differs.
    let mut d = d;
    d.status = Some(DeploymentStatus {
        collision_count: Some(1),
        ..Default::default()
    });
    let plan = sync::plan(&d, &[], &[], now());
    assert_ne!(created(&plan).metadata.name, Some(rs_name("busybox")));
}

#[test]
fn restart_annotation_in_the_template_makes_a_new_replicaset() {
    let sets = [rs("busybox", 10, 10, 1, 10, 1)];
    let mut d = deployment(10, "busybox");
    d.spec
        .as_mut()
        .unwrap()
        .template
        .metadata
        .as_mut()
        .unwrap()
        .annotations = Some(
        [(
            "kubectl.kubernetes.io/restartedAt".to_string(),
            "2026-01-01T00:59:00Z".to_string(),
        )]
        .into(),
    );
    let plan = sync::plan(&d, &sets, &[], now());
    let name = created(&plan).metadata.name.clone().unwrap();
    assert_ne!(name, rs_name("busybox"));
    assert!(summary(&plan)[0].ends_with("replicas=3 revision=2"));
}

#[test]
fn an_empty_selector_only_records_a_warning() {
    let mut d = deployment(1, "busybox");
    d.spec.as_mut().unwrap().selector = LabelSelector::default();
    let plan = sync::plan(&d, &[], &[], now());
    assert_eq!(
        summary(&plan),
        vec![
            "SelectingAll: This deployment is selecting all pods. A non-empty selector is required.".to_string(),
            "status".into()
        ]
    );
}

#[test]
fn a_stale_status_reporting_more_available_than_wanted_never_scales_an_old_replicaset_up() {
    // The old ReplicaSet was just sized 3 -> 2; its status still counts 3 available.
    let mut old = rs("busybox", 2, 3, 1, 10, 1);
    old.status.as_mut().unwrap().replicas = 3;
    let sets = [old, rs("nginx", 10, 8, 2, 10, 30)];
    let mut d = with_status(
        deployment(10, "nginx"),
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 59),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    let old = rs_name("busybox");
    assert_eq!(
        summary(&plan)[..2],
        [
            format!("update {old} replicas=0 revision=1"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 2 to 0"),
        ]
    );
}

#[test]
fn scaling_down_during_a_rollout_takes_from_the_largest_older_replicaset_first() {
    let sets = [rs("busybox", 8, 8, 1, 10, 1), rs("nginx", 5, 0, 2, 10, 30)];
    let mut d = with_status(
        deployment(5, "nginx"),
        &sets,
        "nginx",
        ("True", "ReplicaSetUpdated", 59),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "2".to_string())].into());
    let plan = sync::plan(&d, &sets, &[], now());
    let (old, new) = (rs_name("busybox"), rs_name("nginx"));
    // 5 + 2 surge = 7 allowed, 13 now: old gives round(8*7/13)-8 = -4, new round(5*7/13)-5 = -2.
    assert_eq!(
        summary(&plan),
        vec![
            format!("update {old} replicas=4 revision=1"),
            format!("ScalingReplicaSet: Scaled down replica set {old} from 8 to 4"),
            format!("update {new} replicas=3 revision=2"),
            format!("ScalingReplicaSet: Scaled down replica set {new} from 5 to 3"),
            "status".into(),
        ]
    );
}

#[test]
fn a_deployment_being_deleted_only_updates_status() {
    let sets = [rs("busybox", 10, 10, 1, 10, 1)];
    let mut d = deployment(10, "nginx");
    d.metadata.deletion_timestamp = Some(Time(now()));
    let plan = sync::plan(&d, &sets, &[], now());
    assert_eq!(summary(&plan), vec!["status".to_string()]);
}

#[test]
fn min_ready_seconds_follows_the_deployment_onto_its_new_replicaset() {
    let sets = [rs("busybox", 10, 10, 1, 10, 1)];
    let mut d = with_status(
        deployment(10, "busybox"),
        &sets,
        "busybox",
        ("True", "NewReplicaSetAvailable", 5),
    );
    d.metadata.annotations = Some([(util::REVISION.to_string(), "1".to_string())].into());
    d.spec.as_mut().unwrap().min_ready_seconds = Some(5);
    let plan = sync::plan(&d, &sets, &[], now());
    let Action::Update { rs } = &plan.actions[0] else {
        panic!("{:?}", summary(&plan))
    };
    assert_eq!(rs.spec.as_ref().unwrap().min_ready_seconds, Some(5));

    let plan = sync::plan(&deployment(3, "nginx"), &[], &[], now());
    let mut d = deployment(3, "nginx");
    d.spec.as_mut().unwrap().min_ready_seconds = Some(5);
    let with_min = sync::plan(&d, &[], &[], now());
    assert_eq!(
        created(&plan).spec.as_ref().unwrap().min_ready_seconds,
        None
    );
    assert_eq!(
        created(&with_min).spec.as_ref().unwrap().min_ready_seconds,
        Some(5)
    );
}

#[test]
fn without_a_progress_deadline_there_is_no_progressing_condition() {
    let mut d = deployment(2, "busybox");
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
    let plan = sync::plan(&d, &[], &[], now());
    let status = written_status(&plan);
    assert!(
        status
            .conditions
            .iter()
            .flatten()
            .all(|c| c.type_ != "Progressing"),
        "{status:?}"
    );
    assert_eq!(condition(status, "Available").0, "False");
}
