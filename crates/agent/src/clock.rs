//! Wall-clock time that follows tokio's clock.
//!
//! Pod and node status carry wall-clock timestamps, while every timer in the agent is a tokio
//! timer. [`Clock`] derives the wall clock from tokio's monotonic clock, anchored once, so that
//! tests running with `tokio::time::pause` see timestamps advance exactly as far as their
//! timers did.

use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

/// A wall clock anchored to tokio's monotonic clock. Cheap to copy.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: Timestamp,
    mono: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Anchor at the current system time.
    pub fn new() -> Self {
        Clock {
            wall: Timestamp::now(),
            mono: Instant::now(),
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> Timestamp {
        self.at(Instant::now())
    }

    /// The wall-clock time of a tokio instant.
    pub fn at(&self, instant: Instant) -> Timestamp {
        let elapsed = instant.saturating_duration_since(self.mono);
        self.wall.checked_add(elapsed).unwrap_or(Timestamp::MAX)
    }

    /// The tokio instant of a wall-clock time (the anchor for times before it).
    pub fn instant(&self, at: Timestamp) -> Instant {
        let since = at.duration_since(self.wall);
        let since = Duration::try_from(since).unwrap_or(Duration::ZERO);
        self.mono + since
    }
}

/// A timestamp truncated to whole seconds, as the API serialises `metav1.Time`; status
/// computed here is compared with what was written, so both must agree.
pub fn seconds(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second()).unwrap_or(at)
}
