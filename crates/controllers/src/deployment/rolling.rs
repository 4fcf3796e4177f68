//! The RollingUpdate strategy: grow the new ReplicaSet within maxSurge, shrink the old
//! ones within maxUnavailable (unhealthy replicas first), one step per sync; every
//! ReplicaSet and pod status change brings the next step.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::{all_of, Planner};
use super::util;

/// How many replicas the new ReplicaSet should have now (upstream's `NewRSNewReplicas`).
pub fn new_rs_replicas(d: &Deployment, all: &[ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let desired = util::desired(d);
    if !util::is_rolling_update(d) {
        return desired;
    }
    let total: i32 = all.iter().map(util::replicas).sum();
    util::new_rs_replicas(desired, util::max_surge(d), total, util::replicas(new_rs))
}

impl Planner {
    pub fn rollout_rolling(&mut self, sets: Vec<ReplicaSet>) {
        let Some((new_rs, old)) = self.new_and_old(sets, true) else {
            return;
        };
        let Some(mut new_rs) = new_rs else {
            return;
        };
        let all = all_of(&old, &Some(new_rs.clone()));
        if self.reconcile_new(&all, &mut new_rs) {
            let all = all_of(&old, &Some(new_rs.clone()));
            self.sync_rollout_status(&all, Some(&new_rs));
            return;
        }
        let mut old = old;
        if self.reconcile_old(&mut old, &new_rs) {
            let all = all_of(&old, &Some(new_rs.clone()));
            self.sync_rollout_status(&all, Some(&new_rs));
            return;
        }
        let status = self.d.status.clone().unwrap_or_default();
        if super::progress::complete(&self.d, &status) {
            self.cleanup(&old);
        }
        self.sync_rollout_status(&all, Some(&new_rs));
    }

    /// Scale the new ReplicaSet up within the surge (or down to `spec.replicas`).
    fn reconcile_new(&mut self, all: &[ReplicaSet], new_rs: &mut ReplicaSet) -> bool {
        let desired = util::desired(&self.d);
        let current = util::replicas(new_rs);
        if current == desired {
            return false;
        }
        if current > desired {
            return self.scale_rs_and_record(new_rs, desired);
        }
        let n = new_rs_replicas(&self.d, all, new_rs);
        self.scale_rs_and_record(new_rs, n)
    }

    /// Scale old ReplicaSets down as far as availability allows.
    fn reconcile_old(&mut self, old: &mut [ReplicaSet], new_rs: &ReplicaSet) -> bool {
        let old_count: i32 = old
            .iter()
            .filter(|rs| util::replicas(rs) > 0)
            .map(util::replicas)
            .sum();
        if old_count == 0 {
            return false;
        }
        let all_count: i32 = old.iter().map(util::replicas).sum::<i32>() + util::replicas(new_rs);
        let max_scaled_down = util::old_replicas_to_scale_down(
            util::desired(&self.d),
            util::max_unavailable(&self.d),
            all_count,
            util::replicas(new_rs),
            util::available_replicas(new_rs),
        );
        if max_scaled_down <= 0 {
            return false;
        }
        // Unhealthy replicas go first: they would otherwise block the rollout.
        let cleaned = self.cleanup_unhealthy(old, max_scaled_down);
        let scaled = self.scale_down_old(old, new_rs);
        cleaned + scaled > 0
    }

    /// Scale old ReplicaSets down by their unavailable replicas, oldest first, at most `max`.
    fn cleanup_unhealthy(&mut self, old: &mut [ReplicaSet], max: i32) -> i32 {
        old.sort_by(util::by_creation);
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= max {
                break;
            }
            let replicas = util::replicas(rs);
            let available = util::available_replicas(rs);
            // A status that still counts pods of a larger size can report more available
            // than wanted; upstream fails the sync on it, we leave that ReplicaSet alone.
            if replicas == 0 || replicas <= available {
                continue;
            }
            let down = (max - total).min(replicas - available);
            self.scale_rs_and_record(rs, replicas - down);
            total += down;
        }
        total
    }

    /// Scale old ReplicaSets down, oldest first, while more than the minimum are available.
    fn scale_down_old(&mut self, old: &mut [ReplicaSet], new_rs: &ReplicaSet) -> i32 {
        let min_available = util::desired(&self.d) - util::max_unavailable(&self.d);
        // A status that lags behind a scale-down still counts pods that are going away: no
        // ReplicaSet is credited with more available pods than it is meant to have.
        let credited = |rs: &ReplicaSet| util::available_replicas(rs).min(util::replicas(rs));
        let available: i32 = old.iter().map(credited).sum::<i32>() + credited(new_rs);
        if available <= min_available {
            return 0;
        }
        old.sort_by(util::by_creation);
        let budget = available - min_available;
        let mut total = 0;
        for rs in old.iter_mut() {
            if total >= budget {
                break;
            }
            let replicas = util::replicas(rs);
            if replicas == 0 {
                continue;
            }
            let down = replicas.min(budget - total);
            self.scale_rs_and_record(rs, replicas - down);
            total += down;
        }
        total
    }
}
