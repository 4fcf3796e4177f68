//! Expectations: what a controller has asked the API for and not yet seen in its cache.
//!
//! Upstream counts pending creations and deletions; we remember the names, which tells the
//! same thing and survives duplicate or reordered watch events. A key whose expectations are
//! unsatisfied does not create or delete again, so a slow watch never over- or under-creates.
//! Expectations expire after [`TTL`] so that a lost event cannot wedge a key forever.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Upstream's `ExpectationsTimeout`.
pub const TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    creates: BTreeSet<String>,
    deletes: BTreeSet<String>,
    since: Option<Instant>,
}

/// Pending creations and deletions per controller key (`namespace/name`).
#[derive(Default)]
pub struct Expectations {
    keys: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    pub fn expect_created(&self, key: &str, name: String) {
        let mut keys = self.keys.lock().unwrap();
        let p = keys.entry(key.to_string()).or_default();
        p.creates.insert(name);
        p.since.get_or_insert_with(Instant::now);
    }

    pub fn expect_deleted(&self, key: &str, name: String) {
        let mut keys = self.keys.lock().unwrap();
        let p = keys.entry(key.to_string()).or_default();
        p.deletes.insert(name);
        p.since.get_or_insert_with(Instant::now);
    }

    /// Whether the cache has caught up: `present(name)` says whether a pod is in the cache
    /// and not yet being deleted. Settled names are forgotten.
    pub fn satisfied(&self, key: &str, present: impl Fn(&str) -> bool) -> bool {
        let mut keys = self.keys.lock().unwrap();
        let Some(p) = keys.get_mut(key) else {
            return true;
        };
        p.creates.retain(|n| !present(n));
        p.deletes.retain(|n| present(n));
        let done = p.creates.is_empty() && p.deletes.is_empty();
        if done || p.since.is_some_and(|s| s.elapsed() > TTL) {
            keys.remove(key);
            return true;
        }
        false
    }

    pub fn forget(&self, key: &str) {
        self.keys.lock().unwrap().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_are_pending_until_seen() {
        let e = Expectations::default();
        e.expect_created("ns/rs", "rs-abcde".into());
        assert!(!e.satisfied("ns/rs", |_| false));
        assert!(e.satisfied("ns/rs", |n| n == "rs-abcde"));
        // Settled: a later disappearance does not matter any more.
        assert!(e.satisfied("ns/rs", |_| false));
    }

    #[test]
    fn deletions_are_pending_until_gone() {
        let e = Expectations::default();
        e.expect_deleted("ns/rs", "rs-abcde".into());
        assert!(!e.satisfied("ns/rs", |_| true));
        assert!(e.satisfied("ns/rs", |_| false));
    }

    #[test]
    fn unknown_keys_are_satisfied() {
        assert!(Expectations::default().satisfied("ns/other", |_| true));
    }
}
