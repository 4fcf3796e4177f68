//! Leader election with a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`:
//! when several servers share one store only the holder of the Lease runs the controllers
//! (and the scheduler, with a Lease of its own).
//!
//! The holder renews every `retry_period`; another candidate takes the Lease over once it has
//! seen the same record unchanged for `lease_duration` by its own clock (so clock skew between
//! machines does not matter). A holder that could not renew within `renew_deadline` stops
//! leading. On shutdown the holder releases the Lease so a successor need not wait.

use std::future::Future;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timing, upstream's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for one Lease.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The record last seen and when (by our clock) it last changed.
    observed: Option<(LeaseSpec, Instant)>,
}

/// A process-unique identity: host name and a random suffix, as upstream's `<host>_<uuid>`.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "navarch".into());
    let suffix: u64 = rand_u64();
    format!("{host}_{suffix:016x}")
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl Elector {
    /// A candidate for the Lease `kube-system/<name>`.
    pub fn new(client: Client, name: &str, identity: String, timing: Timing) -> Elector {
        Elector {
            api: Api::namespaced(client, "kube-system"),
            name: name.to_string(),
            identity,
            timing,
            observed: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One attempt to take or renew the Lease; true when we hold it afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        let seconds = self.timing.lease_duration.as_secs().max(1) as i32;
        let current = match self.api.get_opt(&self.name).await {
            Ok(current) => current,
            Err(error) => {
                tracing::debug!(%error, lease = %self.name, "cannot read leader lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some("kube-system".into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    true
                }
                Err(error) => {
                    tracing::debug!(%error, lease = %self.name, "cannot create leader lease");
                    false
                }
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        self.observe(spec.clone());
        let holder = spec.holder_identity.as_deref().unwrap_or_default();
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && !self.expired(&spec) {
            return false;
        }
        let mut next = spec.clone();
        if !ours {
            next.acquire_time = Some(now());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(seconds);
        next.renew_time = Some(now());
        lease.spec = Some(next);
        // Guarded by the resourceVersion read: two candidates cannot both win.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default());
                true
            }
            Err(error) => {
                tracing::debug!(%error, lease = %self.name, "cannot update leader lease");
                false
            }
        }
    }

    fn observe(&mut self, spec: LeaseSpec) {
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| *seen != spec);
        if changed {
            self.observed = Some((spec, Instant::now()));
        }
    }

    /// Whether the other holder's record has sat unchanged for a whole lease duration.
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.timing.lease_duration);
        self.observed
            .as_ref()
            .is_some_and(|(_, since)| since.elapsed() >= duration)
    }

    /// Give the Lease up (shutdown): an empty holder lets a successor take it at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        if let Err(error) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(%error, lease = %self.name, "cannot release leader lease");
        }
    }

    /// Run `lead` whenever this candidate holds the Lease, until `shutdown` fires. `lead`
    /// gets a token that fires when leadership is lost; it is started again on re-election.
    pub async fn run<F, Fut>(mut self, shutdown: CancellationToken, mut lead: F)
    where
        F: FnMut(CancellationToken) -> Fut,
        Fut: Future<Output = ()>,
    {
        loop {
            // Campaign.
            loop {
                if self.try_acquire_or_renew().await {
                    break;
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.timing.retry_period) => {}
                }
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            let term = shutdown.child_token();
            let leading = lead(term.clone());
            tokio::pin!(leading);
            let mut last_renew = Instant::now();
            let lost = loop {
                tokio::select! {
                    () = &mut leading => break false,
                    () = tokio::time::sleep(self.timing.retry_period) => {
                        if self.try_acquire_or_renew().await {
                            last_renew = Instant::now();
                        } else if last_renew.elapsed() >= self.timing.renew_deadline {
                            break true;
                        }
                    }
                }
            };
            if lost {
                tracing::warn!(lease = %self.name, "lost leadership; stopping");
                term.cancel();
                leading.await;
                continue;
            }
            // The work ended (shutdown): hand the Lease over.
            self.release().await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_unique_and_carry_the_host() {
        let (a, b) = (identity(), identity());
        assert_ne!(a, b);
        assert!(a.contains('_'));
    }
}
