//! The Recreate strategy: scale every old ReplicaSet to zero, wait until none of their pods
//! is left (terminating ones count), then create and scale up the new ReplicaSet.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use super::sync::{all_of, Planner};
use super::util;

impl Planner {
    pub fn rollout_recreate(&mut self, sets: Vec<ReplicaSet>, pods: &BTreeMap<String, Vec<&Pod>>) {
        // The new ReplicaSet is not created yet: nothing may scale up before old pods are gone.
        let Some((new_rs, mut old)) = self.new_and_old(sets.clone(), false) else {
            return;
        };
        let mut scaled_down = false;
        for rs in old.iter_mut().filter(|rs| util::replicas(rs) > 0) {
            scaled_down |= self.scale_rs_and_record(rs, 0);
        }
        if scaled_down || old_pods_running(new_rs.as_ref(), &old, pods) {
            self.sync_rollout_status(&all_of(&old, &new_rs), new_rs.as_ref());
            return;
        }
        let (mut new_rs, old) = match new_rs {
            Some(rs) => (rs, old),
            None => {
                // Same sets as above, so the revision bookkeeping repeats nothing.
                let Some((Some(rs), old)) = self.new_and_old(sets, true) else {
                    return;
                };
                (rs, old)
            }
        };
        let desired = util::desired(&self.d);
        self.scale_rs_and_record(&mut new_rs, desired);
        let status = self.d.status.clone().unwrap_or_default();
        if super::progress::complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all_of(&old, &Some(new_rs.clone())), Some(&new_rs));
    }
}

/// Old ReplicaSets still report pods, or pods of theirs that have not finished still exist.
fn old_pods_running(
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    pods: &BTreeMap<String, Vec<&Pod>>,
) -> bool {
    if old.iter().map(util::status_replicas).sum::<i32>() > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    pods.iter()
        .filter(|(uid, _)| Some(uid.as_str()) != new_uid)
        .flat_map(|(_, list)| list)
        .any(|p| !crate::pods::is_terminal(p))
}
