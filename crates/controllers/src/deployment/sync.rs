//! The pure core of the Deployment controller: given a Deployment, the ReplicaSets and pods
//! of its namespace and the time, the ordered API actions of one sync. Start at [`plan`].
//!
//! The planner works on copies: an action it plans (create a ReplicaSet, resize one) is
//! applied to its working set at once, so later steps of the same sync see it, exactly as
//! upstream's controller continues with the objects its API calls returned. The caller
//! performs the actions in order and stops at the first failure; the next sync starts over
//! from the caches. The strategies live beside this file: [`super::rolling`],
//! [`super::recreate`], and status and conditions in [`super::progress`].

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use kube::core::{Selector, SelectorExt};

use super::progress;
use super::util::{self, POD_TEMPLATE_HASH};

/// Progressing reasons and Available reasons, as upstream spells them.
pub mod reason {
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    pub const PAUSED: &str = "DeploymentPaused";
    pub const RESUMED: &str = "DeploymentResumed";
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// One API call, in the order the controller makes them.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Make the Deployment the controller of an orphan ReplicaSet its selector matches.
    Adopt { name: String },
    /// Drop the Deployment's controller reference from a ReplicaSet it no longer selects.
    Release { name: String },
    /// Create the new ReplicaSet; a name clash with a different template is a hash collision.
    Create { rs: Box<ReplicaSet> },
    /// Replace a ReplicaSet (size, annotations, minReadySeconds).
    Update { rs: Box<ReplicaSet> },
    /// Delete an old ReplicaSet beyond `revisionHistoryLimit`.
    Delete { name: String, uid: String },
    /// Set the Deployment's revision annotation. Upstream writes it along with the status
    /// (its status strategy keeps annotation changes); a metadata patch works with any
    /// status strategy.
    SetRevision { revision: String },
    /// Write the Deployment's status.
    UpdateStatus { status: Box<DeploymentStatus> },
    /// Record an Event about the Deployment.
    Event {
        type_: &'static str,
        reason: &'static str,
        message: String,
    },
}

/// What one sync decided, and when to look again (a progress deadline that may pass).
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub requeue_after: Option<std::time::Duration>,
}

/// The working state of one sync.
pub(super) struct Planner {
    /// The Deployment; its status carries conditions set earlier in this sync.
    pub d: Deployment,
    original_status: DeploymentStatus,
    /// Names of every ReplicaSet in the namespace, to detect hash collisions.
    taken: Vec<String>,
    pub now: Timestamp,
    pub actions: Vec<Action>,
    pub requeue_after: Option<std::time::Duration>,
}

/// Decide one sync of `d`. `sets` are the ReplicaSets of its namespace, `pods` the pods of
/// its namespace.
pub fn plan(d: &Deployment, sets: &[ReplicaSet], pods: &[Pod], now: Timestamp) -> Plan {
    // Conditions carry whole seconds, as they serialize.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let mut p = Planner {
        d: d.clone(),
        original_status: d.status.clone().unwrap_or_default(),
        taken: sets
            .iter()
            .filter_map(|rs| rs.metadata.name.clone())
            .collect(),
        now,
        actions: Vec::new(),
        requeue_after: None,
    };
    p.sync(sets, pods);
    Plan {
        actions: p.actions,
        requeue_after: p.requeue_after,
    }
}

impl Planner {
    fn sync(&mut self, sets: &[ReplicaSet], pods: &[Pod]) {
        let Some(selector) = selector_of(&self.d) else {
            self.event(
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.".into(),
            );
            let mut status = self.original_status.clone();
            if status.observed_generation < self.d.metadata.generation {
                status.observed_generation = self.d.metadata.generation;
                self.actions.push(Action::UpdateStatus {
                    status: Box::new(status),
                });
            }
            return;
        };
        let sets = self.claim(sets, &selector);
        if self.d.metadata.deletion_timestamp.is_some() {
            if let Some((new_rs, old)) = self.new_and_old(sets, false) {
                self.sync_status(&all_of(&old, &new_rs), new_rs.as_ref());
            }
            return;
        }
        self.check_paused_conditions();
        if self.paused() {
            self.scale_only(sets);
            return;
        }
        if self.is_scaling_event(&sets) {
            self.scale_only(sets);
            return;
        }
        if util::is_rolling_update(&self.d) {
            self.rollout_rolling(sets);
        } else {
            let pods = pods_by_owner(&sets, pods, &selector);
            self.rollout_recreate(sets, &pods);
        }
    }

    pub fn paused(&self) -> bool {
        self.d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
    }

    /// Adopt matching orphans, release owned ReplicaSets that stopped matching; the owned
    /// ones (after adoption) are returned.
    fn claim(&mut self, sets: &[ReplicaSet], selector: &Selector) -> Vec<ReplicaSet> {
        let uid = self.d.metadata.uid.clone().unwrap_or_default();
        let deleting = self.d.metadata.deletion_timestamp.is_some();
        let mut owned = Vec::new();
        for rs in sets {
            let name = rs.metadata.name.clone().unwrap_or_default();
            let labels = rs.metadata.labels.clone().unwrap_or_default();
            let matches = selector.matches(&labels);
            match controller_of(rs) {
                Some(r) if r.uid == uid => {
                    if matches {
                        owned.push(rs.clone());
                    } else if !deleting {
                        self.actions.push(Action::Release { name });
                    }
                }
                Some(_) => {}
                None => {
                    if matches && !deleting && rs.metadata.deletion_timestamp.is_none() {
                        self.actions.push(Action::Adopt { name });
                        let mut adopted = rs.clone();
                        adopted
                            .metadata
                            .owner_references
                            .get_or_insert_with(Vec::new)
                            .push(self.controller_ref());
                        owned.push(adopted);
                    }
                }
            }
        }
        owned
    }

    pub fn controller_ref(&self) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: self.d.metadata.name.clone().unwrap_or_default(),
            uid: self.d.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    /// Upstream's `sync`: only scale (paused, or a scaling event), clean up, write status.
    fn scale_only(&mut self, sets: Vec<ReplicaSet>) {
        let Some((new_rs, mut old)) = self.new_and_old(sets, false) else {
            return;
        };
        let new_rs = self.scale(new_rs, &mut old);
        // A paused rollout keeps its old ReplicaSets, but history beyond the limit goes.
        self.cleanup(&old);
        self.sync_status(&all_of(&old, &new_rs), new_rs.as_ref());
    }

    /// A scaling event: some active ReplicaSet was last sized for a different
    /// `spec.replicas` than the Deployment has now.
    fn is_scaling_event(&self, sets: &[ReplicaSet]) -> bool {
        let desired = util::desired(&self.d);
        sets.iter()
            .filter(|rs| util::replicas(rs) > 0)
            .filter_map(|rs| util::annotation(rs, util::DESIRED_REPLICAS))
            .filter_map(|v| v.parse::<i32>().ok())
            .any(|v| v != desired)
    }

    /// Split the owned ReplicaSets into the new one (whose template is the Deployment's) and
    /// the old ones, bringing the new one's annotations and the Deployment's revision up to
    /// date and, if `create`, creating the new one. `None` when the sync must stop (a hash
    /// collision was recorded).
    pub fn new_and_old(
        &mut self,
        sets: Vec<ReplicaSet>,
        create: bool,
    ) -> Option<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let new_name = find_new(&self.d, &sets).and_then(|rs| rs.metadata.name.clone());
        let (new, old): (Vec<ReplicaSet>, Vec<ReplicaSet>) = sets
            .into_iter()
            .partition(|rs| rs.metadata.name.is_some() && rs.metadata.name == new_name);
        let new_revision = util::max_revision(&old) + 1;
        if let Some(mut rs) = new.into_iter().next() {
            let annotations_changed =
                util::set_new_rs_annotations(&self.d, &mut rs, new_revision, true);
            let min_ready = self.d.spec.as_ref().and_then(|s| s.min_ready_seconds);
            let spec = rs.spec.get_or_insert_with(Default::default);
            if annotations_changed || spec.min_ready_seconds != min_ready {
                spec.min_ready_seconds = min_ready;
                self.actions.push(Action::Update {
                    rs: Box::new(rs.clone()),
                });
            }
            let revision = util::annotation(&rs, util::REVISION)
                .unwrap_or_default()
                .to_string();
            self.set_revision(&revision);
            if progress::has_deadline(&self.d)
                && progress::condition(&self.d, "Progressing").is_none()
            {
                let message = format!(
                    "Found new replica set {:?}",
                    rs.metadata.name.as_deref().unwrap_or_default()
                );
                self.set_condition("Progressing", "True", reason::FOUND_NEW_RS, message);
            }
            return Some((Some(rs), old));
        }
        if !create {
            return Some((None, old));
        }

        let collision_count = self.d.status.as_ref().and_then(|s| s.collision_count);
        let template = self.template();
        let hash = util::pod_template_hash(&template, collision_count);
        let name = format!(
            "{}-{hash}",
            self.d.metadata.name.as_deref().unwrap_or_default()
        );
        if self.taken.contains(&name) {
            // The name is taken by a ReplicaSet that is not ours or not of this template
            // (else it would be the new one): a hash collision. Count it; the next sync
            // tries another name.
            let mut status = self.original_status.clone();
            status.collision_count = Some(collision_count.unwrap_or(0) + 1);
            self.actions.push(Action::UpdateStatus {
                status: Box::new(status),
            });
            return None;
        }
        let mut labels = template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut rs_template = template;
        rs_template
            .metadata
            .get_or_insert_with(Default::default)
            .labels = Some(labels.clone());
        let spec = self.d.spec.clone().unwrap_or_default();
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), hash);
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: self.d.metadata.namespace.clone(),
                owner_references: Some(vec![self.controller_ref()]),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(rs_template),
            }),
            status: None,
        };
        let all = all_of(&old, &Some(rs.clone()));
        let replicas = super::rolling::new_rs_replicas(&self.d, &all, &rs);
        util::set_replicas(&mut rs, replicas);
        util::set_new_rs_annotations(&self.d, &mut rs, new_revision, false);
        self.actions.push(Action::Create {
            rs: Box::new(rs.clone()),
        });
        if replicas > 0 {
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled up replica set {name} from 0 to {replicas}"),
            );
        }
        self.set_revision(&new_revision.to_string());
        if progress::has_deadline(&self.d) {
            let message = format!("Created new replica set {name:?}");
            self.set_condition("Progressing", "True", reason::NEW_RS_CREATED, message);
        }
        // The working copy stands in for the created object: it is the newest.
        rs.metadata.creation_timestamp = Some(Time(self.now));
        Some((Some(rs), old))
    }

    fn template(&self) -> PodTemplateSpec {
        self.d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    }

    fn set_revision(&mut self, revision: &str) {
        let annotations = self
            .d
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        if annotations.get(util::REVISION).map(String::as_str) != Some(revision) {
            annotations.insert(util::REVISION.into(), revision.into());
            self.actions.push(Action::SetRevision {
                revision: revision.into(),
            });
        }
    }

    /// Pause and resume show as a Progressing condition of status Unknown, so that the
    /// time spent paused never counts against the progress deadline.
    fn check_paused_conditions(&mut self) {
        if !progress::has_deadline(&self.d) {
            return;
        }
        let cond = progress::condition(&self.d, "Progressing");
        if cond.is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
            return;
        }
        let paused_shown = cond.is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
        if self.paused() && !paused_shown {
            self.set_condition(
                "Progressing",
                "Unknown",
                reason::PAUSED,
                "Deployment is paused".into(),
            );
        } else if !self.paused() && paused_shown {
            self.set_condition(
                "Progressing",
                "Unknown",
                reason::RESUMED,
                "Deployment is resumed".into(),
            );
        }
    }

    /// Set a condition on the working Deployment's status (upstream's `SetDeploymentCondition`).
    pub fn set_condition(&mut self, type_: &str, status: &str, reason: &str, message: String) {
        let condition = progress::new_condition(type_, status, reason, message, self.now);
        let st = self.d.status.get_or_insert_with(Default::default);
        progress::set_condition(st, condition);
    }

    pub fn event(&mut self, type_: &'static str, reason: &'static str, message: String) {
        self.actions.push(Action::Event {
            type_,
            reason,
            message,
        });
    }

    /// Resize `rs` to `n` (and refresh its replica annotations), with a ScalingReplicaSet
    /// event; `verb` overrides "up"/"down" for proportional scaling. Whether it was resized.
    pub fn scale_rs(&mut self, rs: &mut ReplicaSet, n: i32, verb: Option<&str>) -> bool {
        let old = util::replicas(rs);
        let desired = util::desired(&self.d);
        let max = desired + util::max_surge(&self.d);
        let size_changes = old != n;
        if !size_changes && !util::replicas_annotations_need_update(rs, desired, max) {
            return false;
        }
        util::set_replicas(rs, n);
        util::set_replicas_annotations(rs, desired, max);
        self.actions.push(Action::Update {
            rs: Box::new(rs.clone()),
        });
        if size_changes {
            let verb = verb.unwrap_or(if old < n { "up" } else { "down" });
            let name = rs.metadata.name.clone().unwrap_or_default();
            self.event(
                "Normal",
                "ScalingReplicaSet",
                format!("Scaled {verb} replica set {name} from {old} to {n}"),
            );
        }
        size_changes
    }

    /// Like [`Planner::scale_rs`] but nothing happens when the size is already right.
    pub fn scale_rs_and_record(&mut self, rs: &mut ReplicaSet, n: i32) -> bool {
        if util::replicas(rs) == n {
            return false;
        }
        self.scale_rs(rs, n, None)
    }

    /// Upstream's `scale`: bring the total to `spec.replicas` (+ surge during a rollout),
    /// proportionally across the active ReplicaSets. Returns the new ReplicaSet as resized.
    fn scale(&mut self, new_rs: Option<ReplicaSet>, old: &mut [ReplicaSet]) -> Option<ReplicaSet> {
        let desired = util::desired(&self.d);
        let mut new_rs = new_rs;
        if let Some(target) = active_or_latest(&mut new_rs, old) {
            if util::replicas(target) != desired {
                let mut rs = target.clone();
                self.scale_rs_and_record(&mut rs, desired);
                *target = rs;
            }
            return new_rs;
        }
        if new_rs.as_ref().is_some_and(|rs| is_saturated(&self.d, rs)) {
            for rs in old.iter_mut().filter(|rs| util::replicas(rs) > 0) {
                let mut copy = rs.clone();
                self.scale_rs_and_record(&mut copy, 0);
                *rs = copy;
            }
            return new_rs;
        }
        if !util::is_rolling_update(&self.d) {
            return new_rs;
        }
        // Proportional scaling: the active ReplicaSets share the change.
        let mut active: Vec<&mut ReplicaSet> = old
            .iter_mut()
            .chain(new_rs.iter_mut())
            .filter(|rs| util::replicas(rs) > 0)
            .collect();
        let total: i32 = active.iter().map(|rs| util::replicas(rs)).sum();
        let allowed = if desired > 0 {
            desired + util::max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - total;
        let verb = match to_add.cmp(&0) {
            std::cmp::Ordering::Greater => {
                active.sort_by(|a, b| util::by_size_newer(a, b));
                "up"
            }
            std::cmp::Ordering::Less => {
                active.sort_by(|a, b| util::by_size_older(a, b));
                "down"
            }
            std::cmp::Ordering::Equal => "",
        };
        let mut added = 0;
        let mut sizes = Vec::with_capacity(active.len());
        for rs in &active {
            if to_add != 0 {
                let share = util::proportion(rs, &self.d, to_add, added);
                sizes.push(util::replicas(rs) + share);
                added += share;
            } else {
                sizes.push(util::replicas(rs));
            }
        }
        for (i, rs) in active.into_iter().enumerate() {
            let mut size = sizes[i];
            // Leftovers go to the largest ReplicaSet.
            if i == 0 && to_add != 0 {
                size = (size + to_add - added).max(0);
            }
            let mut copy = rs.clone();
            self.scale_rs(&mut copy, size, Some(verb));
            *rs = copy;
        }
        new_rs
    }

    /// Delete the oldest old ReplicaSets beyond `revisionHistoryLimit`, but only those
    /// that are scaled to zero, have no pods, and whose controller has caught up.
    pub fn cleanup(&mut self, old: &[ReplicaSet]) {
        let Some(limit) = self.d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
            return;
        };
        let mut cleanable: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let excess = cleanable.len() as i64 - i64::from(limit);
        if excess <= 0 {
            return;
        }
        cleanable.sort_by(|a, b| util::by_revision(a, b));
        for rs in cleanable.into_iter().take(excess as usize) {
            let observed = rs.status.as_ref().and_then(|s| s.observed_generation);
            if util::status_replicas(rs) != 0
                || util::replicas(rs) != 0
                || rs.metadata.generation > observed
            {
                continue;
            }
            self.actions.push(Action::Delete {
                name: rs.metadata.name.clone().unwrap_or_default(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
            });
        }
    }

    /// Write the status computed from the ReplicaSets, if it changed (upstream's
    /// `syncDeploymentStatus`, used when not rolling out).
    pub fn sync_status(&mut self, all: &[ReplicaSet], new_rs: Option<&ReplicaSet>) {
        let status = progress::calculate_status(&self.d, all, new_rs, self.now);
        self.finish_status(status);
    }

    /// Queue the status write if it differs from what the server has.
    pub fn finish_status(&mut self, status: DeploymentStatus) {
        if status != self.original_status {
            self.actions.push(Action::UpdateStatus {
                status: Box::new(status),
            });
        }
    }

    pub fn original_status(&self) -> &DeploymentStatus {
        &self.original_status
    }
}

/// The ReplicaSet whose template equals the Deployment's (oldest first if several do).
pub fn find_new<'a>(d: &Deployment, sets: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = d.spec.as_ref()?.template.clone();
    let mut sorted: Vec<&ReplicaSet> = sets.iter().collect();
    sorted.sort_by(|a, b| util::by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| util::equal_ignore_hash(t, &template))
    })
}

/// Old ReplicaSets plus the new one.
pub fn all_of(old: &[ReplicaSet], new_rs: &Option<ReplicaSet>) -> Vec<ReplicaSet> {
    old.iter().cloned().chain(new_rs.clone()).collect()
}

/// The one active ReplicaSet when only one has replicas; the new one (or else the newest
/// old one) when none has; `None` when several are active.
fn active_or_latest<'a>(
    new_rs: &'a mut Option<ReplicaSet>,
    old: &'a mut [ReplicaSet],
) -> Option<&'a mut ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let active_old = old.iter().filter(|rs| util::replicas(rs) > 0).count();
    let active_new = new_rs.as_ref().is_some_and(|rs| util::replicas(rs) > 0) as usize;
    match active_old + active_new {
        0 => {
            if new_rs.is_some() {
                new_rs.as_mut()
            } else {
                old.iter_mut().max_by(|a, b| util::by_creation(a, b))
            }
        }
        1 if active_new == 1 => new_rs.as_mut(),
        1 => old.iter_mut().find(|rs| util::replicas(rs) > 0),
        _ => None,
    }
}

/// The new ReplicaSet runs exactly the desired number, all available, and was sized for it.
fn is_saturated(d: &Deployment, rs: &ReplicaSet) -> bool {
    let desired = util::desired(d);
    let annotated =
        util::annotation(rs, util::DESIRED_REPLICAS).and_then(|v| v.parse::<i32>().ok());
    util::replicas(rs) == desired
        && annotated == Some(desired)
        && util::available_replicas(rs) == desired
}

/// The Deployment's selector, `None` when it is empty (selects everything) or unparsable.
pub fn selector_of(d: &Deployment) -> Option<Selector> {
    let selector: LabelSelector = d.spec.as_ref()?.selector.clone();
    let selector = Selector::try_from(selector).ok()?;
    (!selector.selects_all()).then_some(selector)
}

pub fn controller_of(rs: &ReplicaSet) -> Option<&OwnerReference> {
    rs.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// Pods that the Deployment selects, by the uid of the owned ReplicaSet controlling them.
fn pods_by_owner<'a>(
    sets: &[ReplicaSet],
    pods: &'a [Pod],
    selector: &Selector,
) -> BTreeMap<String, Vec<&'a Pod>> {
    let mut map: BTreeMap<String, Vec<&Pod>> = sets
        .iter()
        .filter_map(|rs| rs.metadata.uid.clone())
        .map(|uid| (uid, Vec::new()))
        .collect();
    for pod in pods {
        if !selector.matches(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())) {
            continue;
        }
        if let Some(owner) = crate::pods::controller_uid(pod) {
            if let Some(list) = map.get_mut(owner) {
                list.push(pod);
            }
        }
    }
    map
}
