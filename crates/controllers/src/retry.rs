//! Per-key exponential back-off for failed reconciles, as client-go's item rate limiter:
//! `initial` doubling with each consecutive failure of the same key, at most `max`, reset by
//! a success.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kube::runtime::controller::Action;

/// Failure counts per key.
#[derive(Debug)]
pub struct Retry {
    initial: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Retry {
    pub fn new(initial: Duration, max: Duration) -> Retry {
        Retry {
            initial,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Upstream's default controller limits: 5 ms doubling, at most 1000 s.
    pub fn controller_default() -> Retry {
        Retry::new(Duration::from_millis(5), Duration::from_secs(1000))
    }

    /// Record a failure of `key`; returns how long to wait before the next attempt.
    pub fn failed(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let n = failures.entry(key.to_string()).or_insert(0);
        let delay = self
            .initial
            .saturating_mul(1u32 << (*n).min(24))
            .min(self.max);
        *n = n.saturating_add(1);
        delay
    }

    /// `key` succeeded: its next failure starts from `initial` again.
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Wrap a reconcile function so that a success resets its key's back-off; pair it with
/// [`error_policy`] over the same [`Retry`] in `Controller::run`.
pub fn reconciler<K, C, F, Fut>(
    retry: Arc<Retry>,
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<C>) -> BoxFuture<'static, crate::Result<Action>>
where
    K: kube::Resource + 'static,
    F: FnMut(Arc<K>, Arc<C>) -> Fut,
    Fut: Future<Output = crate::Result<Action>> + Send + 'static,
{
    move |object, ctx| {
        let key = key_of(&*object);
        let retry = retry.clone();
        let outcome = reconcile(object, ctx);
        Box::pin(async move {
            let outcome = outcome.await;
            if outcome.is_ok() {
                retry.succeeded(&key);
            }
            outcome
        })
    }
}

/// The error policy of [`reconciler`]: requeue after the key's next back-off delay.
pub fn error_policy<K, C>(retry: Arc<Retry>) -> impl Fn(Arc<K>, &crate::Error, Arc<C>) -> Action
where
    K: kube::Resource,
{
    move |object, _, _| Action::requeue(retry.failed(&key_of(&*object)))
}

/// The key of a namespaced or cluster-scoped object: `ns/name` or `name`.
pub fn key_of<K: kube::Resource>(object: &K) -> String {
    let meta = object.meta();
    match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
        None => meta.name.clone().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_key_and_reset_on_success() {
        let r = Retry::new(Duration::from_millis(5), Duration::from_millis(30));
        let delays: Vec<u128> = (0..5).map(|_| r.failed("a").as_millis()).collect();
        assert_eq!(delays, [5, 10, 20, 30, 30]);
        assert_eq!(r.failed("b"), Duration::from_millis(5));
        r.succeeded("a");
        assert_eq!(r.failed("a"), Duration::from_millis(5));
    }
}
