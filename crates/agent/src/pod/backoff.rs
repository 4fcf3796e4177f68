//! Restart back-off (CrashLoopBackOff and ImagePullBackOff), with the kubelet's rules.
//!
//! Each key (a container of a pod) has a delay. The first failure restarts at once and arms
//! the delay at `initial`; each later failure inside the window doubles it up to `max`. A key
//! whose last restart was more than `2 × max` before the failure (the container ran that long:
//! 10 minutes with the defaults) starts over at `initial`. While `now - failed_at < delay`,
//! the key is *in back-off* and must not be restarted.

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;

/// Back-off parameters. Upstream: 10 s doubling to 5 min.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_update: Timestamp,
}

/// Per-key back-off state.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    entries: HashMap<String, Entry>,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff {
            config,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, entry: &Entry, failed_at: Timestamp) -> bool {
        let window = self.config.max * 2;
        failed_at.duration_since(entry.last_update)
            > jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX)
    }

    /// If `key` failed at `failed_at` and is still in back-off at `now`, when the back-off
    /// ends and how long it is.
    pub fn in_backoff(
        &self,
        key: &str,
        failed_at: Timestamp,
        now: Timestamp,
    ) -> Option<(Timestamp, Duration)> {
        let entry = self.entries.get(key)?;
        if self.expired(entry, failed_at) {
            return None;
        }
        let until = failed_at.checked_add(entry.delay).ok()?;
        (now < until).then_some((until, entry.delay))
    }

    /// Record a restart of `key` after a failure at `failed_at`.
    pub fn next(&mut self, key: &str, failed_at: Timestamp, now: Timestamp) {
        let fresh = match self.entries.get(key) {
            None => true,
            Some(entry) => self.expired(entry, failed_at),
        };
        let delay = if fresh {
            self.config.initial
        } else {
            (self.entries[key].delay * 2).min(self.config.max)
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                delay,
                last_update: now,
            },
        );
    }

    /// The current delay of `key`, if it has one.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.entries.get(key).map(|e| e.delay)
    }

    pub fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut b = Backoff::new(BackoffConfig::default());
        // First failure: not in back-off, restart now and arm 10 s.
        assert!(b.in_backoff("c", at(0), at(0)).is_none());
        b.next("c", at(0), at(0));
        let mut t = 1;
        let mut seen = Vec::new();
        for _ in 0..8 {
            // It fails again one second after each restart.
            let (until, delay) = b.in_backoff("c", at(t), at(t)).unwrap();
            seen.push(delay.as_secs());
            assert_eq!(until, at(t).checked_add(delay).unwrap());
            assert!(b.in_backoff("c", at(t), until).is_none());
            t += delay.as_secs() as i64;
            b.next("c", at(t - delay.as_secs() as i64), at(t));
            t += 1;
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_resets_the_delay() {
        let mut b = Backoff::new(BackoffConfig::default());
        b.next("c", at(0), at(0));
        b.next("c", at(1), at(11));
        assert_eq!(b.delay("c"), Some(Duration::from_secs(20)));
        // Ran 10 min + 1 s after the last restart: a fresh start.
        assert!(b.in_backoff("c", at(11 + 601), at(11 + 601)).is_none());
        b.next("c", at(11 + 601), at(11 + 601));
        assert_eq!(b.delay("c"), Some(Duration::from_secs(10)));
    }
}
