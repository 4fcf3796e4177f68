//! Deployment status and conditions: the counts summed over the ReplicaSets, Available
//! (minimum availability) and Progressing (created, updated, complete, or past
//! `progressDeadlineSeconds`), and when to look again for a deadline that may pass.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::sync::{reason, Planner};
use super::util;

/// A progress deadline is set (and is not the "never" value `i32::MAX`).
pub fn has_deadline(d: &Deployment) -> bool {
    deadline(d).is_some()
}

fn deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

pub fn condition<'a>(d: &'a Deployment, type_: &str) -> Option<&'a DeploymentCondition> {
    status_condition(d.status.as_ref()?, type_)
}

fn status_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Upstream's `SetDeploymentCondition`: nothing changes if status and reason are the same;
/// a same-status update keeps the transition time; the condition moves to the end.
pub fn set_condition(status: &mut DeploymentStatus, mut condition: DeploymentCondition) {
    if let Some(existing) = status_condition(status, &condition.type_) {
        if existing.status == condition.status && existing.reason == condition.reason {
            return;
        }
        if existing.status == condition.status {
            condition.last_transition_time = existing.last_transition_time.clone();
        }
    }
    remove_condition(status, &condition.type_);
    status
        .conditions
        .get_or_insert_with(Vec::new)
        .push(condition);
}

pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Counts over all ReplicaSets and the Available condition; other conditions are carried
/// over from the working Deployment.
pub fn calculate_status(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> DeploymentStatus {
    let available: i32 = all.iter().map(util::available_replicas).sum();
    let total: i32 = all.iter().map(util::replicas).sum();
    let current = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(all.iter().map(util::status_replicas).sum()),
        updated_replicas: Some(new_rs.map_or(0, util::status_replicas)),
        ready_replicas: Some(all.iter().map(util::ready_replicas).sum()),
        available_replicas: Some(available),
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= util::desired(d) - util::max_unavailable(d) {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "True",
                reason::MIN_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            new_condition(
                "Available",
                "False",
                reason::MIN_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    normalise_counts(status)
}

/// Zero counts are omitted on the wire (`omitempty`), so the server returns them as absent;
/// compare like with like.
fn normalise_counts(mut s: DeploymentStatus) -> DeploymentStatus {
    for v in [
        &mut s.replicas,
        &mut s.updated_replicas,
        &mut s.ready_replicas,
        &mut s.available_replicas,
        &mut s.unavailable_replicas,
    ] {
        if *v == Some(0) {
            *v = None;
        }
    }
    s
}

/// All replicas are updated and available, and the latest spec was observed.
pub fn complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let desired = util::desired(d);
    s.updated_replicas.unwrap_or(0) == desired
        && s.replicas.unwrap_or(0) == desired
        && s.available_replicas.unwrap_or(0) == desired
        && s.observed_generation >= d.metadata.generation
}

/// More updated, fewer old, more ready or more available replicas than last written.
fn progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

fn timed_out(d: &Deployment, s: &DeploymentStatus, now: Timestamp) -> bool {
    let Some(secs) = deadline(d) else {
        return false;
    };
    let Some(c) = status_condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => false,
        Some(reason::TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0 + SignedDuration::from_secs(i64::from(secs)) < now),
    }
}

impl Planner {
    /// Upstream's `syncRolloutStatus`: status, then the Progressing condition (complete,
    /// progressing, or timed out), then the ReplicaFailure condition; written if changed,
    /// with a requeue for the moment the progress deadline would pass.
    pub fn sync_rollout_status(&mut self, all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) {
        let mut status = calculate_status(&self.d, all, new_rs, self.now);
        let has_deadline = has_deadline(&self.d);
        if !has_deadline {
            remove_condition(&mut status, "Progressing");
        }
        let current = condition(&self.d, "Progressing").cloned();
        let rs_name = new_rs.and_then(|rs| rs.metadata.name.clone());
        let d_name = self.d.metadata.name.clone().unwrap_or_default();
        let complete_already = status.replicas == status.updated_replicas
            && current
                .as_ref()
                .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
        if has_deadline && !complete_already {
            let subject = match &rs_name {
                Some(n) => format!("ReplicaSet {n:?}"),
                None => format!("Deployment {d_name:?}"),
            };
            if complete(&self.d, &status) {
                let c = new_condition(
                    "Progressing",
                    "True",
                    reason::NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    self.now,
                );
                set_condition(&mut status, c);
            } else if progressing(&self.d, &status) {
                let mut c = new_condition(
                    "Progressing",
                    "True",
                    reason::RS_UPDATED,
                    format!("{subject} is progressing."),
                    self.now,
                );
                // Progress refreshes lastUpdateTime even when the reason stays the same.
                if let Some(cur) = &current {
                    if cur.status == "True" {
                        c.last_transition_time = cur.last_transition_time.clone();
                    }
                    remove_condition(&mut status, "Progressing");
                }
                set_condition(&mut status, c);
            } else if timed_out(&self.d, &status, self.now) {
                let c = new_condition(
                    "Progressing",
                    "False",
                    reason::TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                    self.now,
                );
                set_condition(&mut status, c);
            }
        }
        match replica_failure(all, new_rs) {
            Some(c) => set_condition(&mut status, c),
            None => remove_condition(&mut status, "ReplicaFailure"),
        }
        if status == *self.original_status() {
            self.requeue_after = self.requeue_stuck(&status);
        }
        self.finish_status(status);
    }

    /// When the progress deadline of an unfinished rollout passes, look again.
    fn requeue_stuck(&self, status: &DeploymentStatus) -> Option<Duration> {
        let secs = deadline(&self.d)?;
        let cond = condition(&self.d, "Progressing")?;
        if complete(&self.d, status) || cond.reason.as_deref() == Some(reason::TIMED_OUT) {
            return None;
        }
        let updated = cond.last_update_time.as_ref()?.0;
        let at = updated + SignedDuration::from_secs(i64::from(secs));
        let after = self.now.duration_until(at);
        if after < SignedDuration::from_secs(1) {
            Some(Duration::from_millis(100))
        } else {
            Some(after.unsigned_abs() + Duration::from_secs(1))
        }
    }
}

/// A ReplicaFailure condition of the new ReplicaSet, else of any old one.
fn replica_failure(all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure")
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure)
        .or_else(|| all.iter().find_map(failure))
}
