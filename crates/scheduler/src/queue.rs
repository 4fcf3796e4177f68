//! The scheduling queue, as upstream's: an active heap ordered by the queue-sort plugin, a
//! backoff queue (1 s doubling per attempt up to 10 s), and unschedulable pods parked until a
//! cluster event may help them or five minutes pass. Pure: the caller passes the clock.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::framework::QueueSortPlugin;
use crate::snapshot::pod_key;

pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Unschedulable pods are retried after this long even without a cluster event.
pub const MAX_UNSCHEDULABLE: Duration = Duration::from_secs(5 * 60);

/// A pod waiting to be scheduled and its history in the queue.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    pub pod: Arc<Pod>,
    pub key: String,
    /// When the pod first entered the queue (orders equal priorities).
    pub timestamp: Instant,
    /// Scheduling attempts so far.
    pub attempts: u32,
    pub last_attempt: Option<Instant>,
}

impl QueuedPod {
    pub fn new(pod: Arc<Pod>, now: Instant) -> Self {
        QueuedPod {
            key: pod_key(&pod),
            pod,
            timestamp: now,
            attempts: 0,
            last_attempt: None,
        }
    }

    pub fn priority(&self) -> i32 {
        self.pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
    }

    /// When the pod's backoff ends: 1 s after the first failed attempt, doubling, at most 10 s.
    pub fn backoff_until(&self) -> Option<Instant> {
        let last = self.last_attempt?;
        let shift = self.attempts.saturating_sub(1).min(8);
        Some(last + (INITIAL_BACKOFF * (1 << shift)).min(MAX_BACKOFF))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    Unschedulable(Instant),
    /// Popped and being scheduled or bound.
    InFlight,
}

struct Slot {
    info: QueuedPod,
    place: Place,
    /// Bumped on every move; heap entries with an older generation are stale.
    generation: u64,
    /// A move request arrived while the pod was in flight: do not park it as unschedulable.
    moved_in_flight: bool,
    /// The plugins that rejected the pod in its last attempt.
    plugins: Vec<&'static str>,
}

/// Plugins whose verdict may change when a pod is placed or relabelled.
const POD_EVENT_PLUGINS: &[&str] = &[
    crate::plugins::inter_pod_affinity::NAME,
    crate::plugins::pod_topology_spread::NAME,
];

struct ActiveEntry {
    info: QueuedPod,
    generation: u64,
    sort: Arc<dyn QueueSortPlugin>,
}

impl PartialEq for ActiveEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for ActiveEntry {}
impl PartialOrd for ActiveEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ActiveEntry {
    // BinaryHeap is a max-heap: "scheduled first" must compare greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        if self.sort.less(&self.info, &other.info) {
            Ordering::Greater
        } else if self.sort.less(&other.info, &self.info) {
            Ordering::Less
        } else {
            other.generation.cmp(&self.generation)
        }
    }
}

/// Active, backoff and unschedulable pods, keyed by `namespace/name`.
pub struct SchedulingQueue {
    sort: Arc<dyn QueueSortPlugin>,
    slots: HashMap<String, Slot>,
    active: BinaryHeap<ActiveEntry>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_generation: u64,
}

impl SchedulingQueue {
    pub fn new(sort: Arc<dyn QueueSortPlugin>) -> Self {
        SchedulingQueue {
            sort,
            slots: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Counts of (active, backoff, unschedulable, in flight) pods.
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let mut c = (0, 0, 0, 0);
        for s in self.slots.values() {
            match s.place {
                Place::Active => c.0 += 1,
                Place::Backoff(_) => c.1 += 1,
                Place::Unschedulable(_) => c.2 += 1,
                Place::InFlight => c.3 += 1,
            }
        }
        c
    }

    fn place(&mut self, key: &str, place: Place) {
        self.next_generation += 1;
        let generation = self.next_generation;
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        slot.place = place;
        slot.generation = generation;
        match place {
            Place::Active => self.active.push(ActiveEntry {
                info: slot.info.clone(),
                generation,
                sort: self.sort.clone(),
            }),
            Place::Backoff(until) => {
                self.backoff
                    .push(Reverse((until, generation, key.to_string())))
            }
            Place::Unschedulable(_) | Place::InFlight => {}
        }
    }

    /// Active, or backoff if the pod is still backing off.
    fn reactivate(&mut self, key: &str, now: Instant) {
        let until = self.slots.get(key).and_then(|s| s.info.backoff_until());
        match until {
            Some(until) if until > now => self.place(key, Place::Backoff(until)),
            _ => self.place(key, Place::Active),
        }
    }

    /// Adds a new pending pod or updates a queued one. An update moves an unschedulable pod
    /// back for another try.
    pub fn add(&mut self, pod: Arc<Pod>, now: Instant) {
        let key = pod_key(&pod);
        match self.slots.get_mut(&key) {
            None => {
                self.slots.insert(
                    key.clone(),
                    Slot {
                        info: QueuedPod::new(pod, now),
                        place: Place::InFlight,
                        generation: 0,
                        moved_in_flight: false,
                        plugins: Vec::new(),
                    },
                );
                self.place(&key, Place::Active);
            }
            Some(slot) => {
                slot.info.pod = pod;
                match slot.place {
                    Place::Active => self.place(&key, Place::Active),
                    Place::Unschedulable(_) => self.reactivate(&key, now),
                    Place::Backoff(_) => {}
                    Place::InFlight => slot.moved_in_flight = true,
                }
            }
        }
    }

    /// Forgets a pod (deleted, or bound).
    pub fn delete(&mut self, key: &str) {
        self.slots.remove(key);
    }

    /// The next pod to schedule, if any is active. It stays in flight until [`Self::done`],
    /// [`Self::unschedulable`] or [`Self::retry_after_error`].
    pub fn pop(&mut self, now: Instant) -> Option<QueuedPod> {
        while let Some(entry) = self.active.pop() {
            let Some(slot) = self.slots.get_mut(&entry.info.key) else {
                continue;
            };
            if slot.generation != entry.generation || slot.place != Place::Active {
                continue;
            }
            slot.place = Place::InFlight;
            slot.moved_in_flight = false;
            slot.info.attempts += 1;
            slot.info.last_attempt = Some(now);
            return Some(slot.info.clone());
        }
        None
    }

    /// The pod was placed (and is bound or being bound): it leaves the queue.
    pub fn done(&mut self, key: &str) {
        self.delete(key);
    }

    /// No node fits. The pod is parked until a cluster event, unless one already came while
    /// it was being scheduled (then it backs off and retries).
    pub fn unschedulable(&mut self, key: &str, now: Instant) {
        self.unschedulable_by(key, now, Vec::new());
    }

    /// As [`Self::unschedulable`], remembering which plugins rejected the pod so that only
    /// events relevant to them move it back.
    pub fn unschedulable_by(&mut self, key: &str, now: Instant, plugins: Vec<&'static str>) {
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        slot.plugins = plugins;
        if slot.moved_in_flight {
            self.reactivate(key, now);
        } else {
            self.place(key, Place::Unschedulable(now));
        }
    }

    /// Scheduling or binding failed: retry after the backoff.
    pub fn retry_after_error(&mut self, key: &str, now: Instant) {
        if self.slots.contains_key(key) {
            self.reactivate(key, now);
        }
    }

    /// A cluster event (node added or changed, pod deleted) may make parked pods schedulable.
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .slots
            .iter()
            .filter_map(|(k, s)| match s.place {
                Place::Unschedulable(_) => Some(k.clone()),
                _ => None,
            })
            .collect();
        for k in keys {
            self.reactivate(&k, now);
        }
        for s in self.slots.values_mut() {
            if s.place == Place::InFlight {
                s.moved_in_flight = true;
            }
        }
    }

    /// A pod was placed or relabelled: retry parked pods that pod affinity or topology spread
    /// rejected, and let in-flight ones retry.
    pub fn move_for_pod_event(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .slots
            .iter()
            .filter_map(|(k, s)| match s.place {
                Place::Unschedulable(_)
                    if s.plugins.iter().any(|p| POD_EVENT_PLUGINS.contains(p)) =>
                {
                    Some(k.clone())
                }
                _ => None,
            })
            .collect();
        for k in keys {
            self.reactivate(&k, now);
        }
        for s in self.slots.values_mut() {
            if s.place == Place::InFlight {
                s.moved_in_flight = true;
            }
        }
    }

    /// Moves pods whose backoff ended to the active queue.
    pub fn flush_backoff(&mut self, now: Instant) {
        while let Some(Reverse((until, generation, key))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            let current = self
                .slots
                .get(&key)
                .is_some_and(|s| s.generation == generation);
            if current {
                self.place(&key, Place::Active);
            }
        }
    }

    /// Retries pods parked as unschedulable for longer than [`MAX_UNSCHEDULABLE`].
    pub fn flush_unschedulable(&mut self, now: Instant) {
        let keys: Vec<String> = self
            .slots
            .iter()
            .filter_map(|(k, s)| match s.place {
                Place::Unschedulable(since) if now.duration_since(since) >= MAX_UNSCHEDULABLE => {
                    Some(k.clone())
                }
                _ => None,
            })
            .collect();
        for k in keys {
            self.reactivate(&k, now);
        }
    }

    /// When the earliest backoff ends, to sleep until then.
    pub fn next_backoff_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((until, generation, key))) = self.backoff.peek() {
            if self
                .slots
                .get(key)
                .is_some_and(|s| s.generation == *generation)
            {
                return Some(*until);
            }
            self.backoff.pop();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plugins::priority_sort::PrioritySort;
    use crate::snapshot::testing::pod;

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(Arc::new(PrioritySort::new()))
    }

    fn p(name: &str, priority: i32) -> Arc<Pod> {
        Arc::new(pod(name, json!({"priority": priority})))
    }

    fn popped(q: &mut SchedulingQueue, now: Instant) -> Vec<String> {
        std::iter::from_fn(|| q.pop(now).map(|i| i.pod.metadata.name.clone().unwrap())).collect()
    }

    #[test]
    fn pops_by_priority_then_arrival() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("low", 0), t);
        q.add(p("high", 10), t + Duration::from_millis(1));
        q.add(p("low2", 0), t + Duration::from_millis(2));
        q.add(p("mid", 5), t + Duration::from_millis(3));
        assert_eq!(popped(&mut q, t), ["high", "mid", "low", "low2"]);
    }

    #[test]
    fn errors_back_off_one_second_doubling_to_ten() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("a", 0), t);
        let mut now = t;
        let mut waits = Vec::new();
        for _ in 0..6 {
            let info = q.pop(now).expect("active");
            q.retry_after_error(&info.key, now);
            assert!(q.pop(now).is_none(), "still backing off");
            let until = q.next_backoff_deadline().unwrap();
            waits.push(until.duration_since(now).as_secs());
            now = until;
            q.flush_backoff(now);
        }
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn unschedulable_pods_wait_for_an_event_or_the_periodic_flush() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("a", 0), t);
        let info = q.pop(t).unwrap();
        q.unschedulable(&info.key, t);
        q.flush_backoff(t + Duration::from_secs(60));
        assert!(q.pop(t + Duration::from_secs(60)).is_none());

        // A node event after the backoff ended: straight back to active.
        q.move_all_to_active_or_backoff(t + Duration::from_secs(2));
        assert_eq!(popped(&mut q, t + Duration::from_secs(2)), ["a"]);
        q.unschedulable("default/a", t + Duration::from_secs(2));
        assert_eq!(q.counts(), (0, 0, 1, 0));

        // An event inside the backoff window: to the backoff queue first.
        q.move_all_to_active_or_backoff(t + Duration::from_secs(3));
        assert_eq!(q.counts(), (0, 1, 0, 0));
        q.flush_backoff(t + Duration::from_secs(4));
        assert_eq!(popped(&mut q, t + Duration::from_secs(4)), ["a"]);

        q.unschedulable("default/a", t + Duration::from_secs(4));
        q.flush_unschedulable(t + Duration::from_secs(100));
        assert_eq!(q.counts(), (0, 0, 1, 0));
        q.flush_unschedulable(t + MAX_UNSCHEDULABLE + Duration::from_secs(4));
        assert_eq!(q.counts(), (1, 0, 0, 0));
    }

    #[test]
    fn an_event_during_the_attempt_prevents_parking() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("a", 0), t);
        let info = q.pop(t).unwrap();
        q.move_all_to_active_or_backoff(t);
        q.unschedulable(&info.key, t);
        assert_eq!(q.counts(), (0, 1, 0, 0));
    }

    #[test]
    fn deleted_and_done_pods_are_not_popped() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("a", 0), t);
        q.add(p("b", 0), t);
        q.delete("default/a");
        let b = q.pop(t).unwrap();
        q.done(&b.key);
        assert!(q.pop(t).is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn updating_a_queued_pod_keeps_one_entry() {
        let t = Instant::now();
        let mut q = queue();
        q.add(p("a", 0), t);
        q.add(p("a", 0), t);
        assert_eq!(popped(&mut q, t), ["a"]);
    }
}
