//! Background compaction: every `compaction_interval`, compact to the newest revision that is at
//! least `retention` old, found from a small ring of (time, revision) samples.

use std::collections::VecDeque;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

use super::{Inner, SqliteOptions};

/// Runs until the store is dropped (its `stop` sender goes away).
pub(super) async fn run(
    store: Weak<Inner>,
    mut stop: tokio::sync::watch::Receiver<()>,
    opts: SqliteOptions,
) {
    let mut samples = Samples::default();
    let mut ticker = tokio::time::interval(opts.compaction_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Nothing is ever sent: this completes when the sender is dropped with the store.
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        let Some(inner) = store.upgrade() else {
            return;
        };
        let now = Instant::now();
        samples.record(now, inner.heads.revision());
        let Some(revision) = samples.take_compactable(now, opts.retention) else {
            continue;
        };
        if revision > inner.heads.compacted() {
            if let Err(e) = inner.compact(revision).await {
                tracing::warn!(revision, error = %e, "background compaction failed");
            }
        }
    }
}

/// Revisions observed over time, oldest first.
#[derive(Debug, Default)]
pub(super) struct Samples {
    ring: VecDeque<(Instant, i64)>,
}

impl Samples {
    pub(super) fn record(&mut self, at: Instant, revision: i64) {
        self.ring.push_back((at, revision));
    }

    /// The revision of the newest sample at least `retention` old, if any; that sample and the
    /// older ones are dropped (they are no longer needed).
    pub(super) fn take_compactable(&mut self, now: Instant, retention: Duration) -> Option<i64> {
        let old_enough = self
            .ring
            .iter()
            .take_while(|(at, _)| now.saturating_duration_since(*at) >= retention)
            .count();
        let (_, revision) = *self.ring.get(old_enough.checked_sub(1)?)?;
        self.ring.drain(..old_enough);
        Some(revision)
    }
}
