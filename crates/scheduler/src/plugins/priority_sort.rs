//! PrioritySort: higher `spec.priority` first, then earlier arrival in the queue.

use crate::framework::{Plugin, QueueSortPlugin};
use crate::queue::QueuedPod;

pub const NAME: &str = "PrioritySort";

#[derive(Debug, Default)]
pub struct PrioritySort;

impl PrioritySort {
    pub fn new() -> Self {
        PrioritySort
    }
}

impl Plugin for PrioritySort {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl QueueSortPlugin for PrioritySort {
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool {
        let (pa, pb) = (a.priority(), b.priority());
        pa > pb || (pa == pb && a.timestamp < b.timestamp)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::pod;

    #[test]
    fn orders_by_priority_then_arrival() {
        let t0 = Instant::now();
        let q = |prio: Option<i32>, secs: u64| {
            let spec = match prio {
                Some(p) => json!({"priority": p}),
                None => json!({}),
            };
            QueuedPod::new(Arc::new(pod("p", spec)), t0 + Duration::from_secs(secs))
        };
        let cases = [
            ("higher priority first", q(Some(10), 5), q(Some(1), 0), true),
            ("lower priority later", q(Some(1), 0), q(Some(10), 5), false),
            (
                "same priority, earlier first",
                q(Some(1), 0),
                q(Some(1), 1),
                true,
            ),
            ("unset is zero", q(None, 0), q(Some(0), 1), true),
            ("equal is not less", q(None, 0), q(None, 0), false),
        ];
        for (name, a, b, want) in cases {
            assert_eq!(PrioritySort::new().less(&a, &b), want, "{name}");
        }
    }
}
