//! The extension points, one small trait each, and [`Framework`]: a profile's plugins in order,
//! with score weights. Plugins are pure: they see the pod, the [`Snapshot`] or one [`NodeInfo`],
//! and a per-cycle [`CycleState`] where pre-* hooks leave precomputed data for later hooks.

use std::any::Any;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;

use crate::queue::QueuedPod;
use crate::snapshot::{NodeInfo, Snapshot};
use crate::status::Status;

/// The highest score a plugin gives a node (after normalization).
pub const MAX_NODE_SCORE: i64 = 100;

/// Data plugins share within one scheduling cycle, keyed by plugin name. A handful of entries,
/// read for every node filtered and scored: a linear scan beats hashing the key.
#[derive(Default)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn Any + Send + Sync>)>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = Box::new(value),
            None => self.data.push((key, Box::new(value))),
        }
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.downcast_ref())
    }
}

/// Every plugin has a name; statuses and the config refer to it.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// Orders the active queue: `less(a, b)` means `a` is scheduled before `b`.
pub trait QueueSortPlugin: Plugin {
    fn less(&self, a: &QueuedPod, b: &QueuedPod) -> bool;
}

/// Runs once per cycle before filtering; may reject the pod outright or precompute state.
pub trait PreFilterPlugin: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status;
}

/// Decides whether the pod may run on one node.
pub trait FilterPlugin: Plugin {
    fn filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status;
}

/// What a post-filter achieved: on success, a nominated node and the pods to evict there; on
/// failure, `Some("")` as the node voids an earlier nomination.
#[derive(Debug, Clone)]
pub struct PostFilterResult {
    pub nominated_node: Option<String>,
    pub victims: Vec<Arc<Pod>>,
    pub status: Status,
}

impl Default for PostFilterResult {
    fn default() -> Self {
        PostFilterResult {
            nominated_node: None,
            victims: Vec::new(),
            status: Status::unschedulable(Vec::<String>::new()),
        }
    }
}

/// Runs when no node passed filtering (preemption lives here); may nominate a node. It gets
/// the framework to dry-run filters on what-if snapshots.
pub trait PostFilterPlugin: Plugin {
    fn post_filter(
        &self,
        framework: &Framework,
        pod: &Pod,
        snapshot: &Snapshot,
        filtered: &[(String, Status)],
    ) -> PostFilterResult;
}

/// Runs once before scoring over the feasible nodes.
pub trait PreScorePlugin: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &Pod,
        snapshot: &Snapshot,
        nodes: &[&NodeInfo],
    ) -> Status;
}

/// Ranks one feasible node; `normalize` then rescales all of this plugin's scores to
/// `0..=MAX_NODE_SCORE` (upstream's score extensions; the default leaves them alone).
pub trait ScorePlugin: Plugin {
    fn score(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Result<i64, Status>;

    fn normalize(
        &self,
        _state: &CycleState,
        _pod: &Pod,
        _nodes: &[&NodeInfo],
        _scores: &mut [i64],
    ) -> Status {
        Status::success()
    }
}

/// Claims in-memory resources for a chosen node; `unreserve` undoes it when a later step fails.
pub trait ReservePlugin: Plugin {
    fn reserve(&self, state: &CycleState, pod: &Pod, node: &str) -> Status;
    fn unreserve(&self, state: &CycleState, pod: &Pod, node: &str);
}

/// Scales `scores` linearly so the largest becomes `MAX_NODE_SCORE`; with `reverse`, the
/// largest becomes 0 (upstream's `DefaultNormalizeScore`).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = MAX_NODE_SCORE);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = MAX_NODE_SCORE * *s / max;
        if reverse {
            *s = MAX_NODE_SCORE - *s;
        }
    }
}

/// A profile: the plugins enabled at each extension point, in order, and score weights.
#[derive(Clone)]
pub struct Framework {
    pub queue_sort: Arc<dyn QueueSortPlugin>,
    pub pre_filter: Vec<Arc<dyn PreFilterPlugin>>,
    pub filter: Vec<Arc<dyn FilterPlugin>>,
    pub post_filter: Vec<Arc<dyn PostFilterPlugin>>,
    pub pre_score: Vec<Arc<dyn PreScorePlugin>>,
    pub score: Vec<(Arc<dyn ScorePlugin>, i64)>,
    pub reserve: Vec<Arc<dyn ReservePlugin>>,
}

impl Framework {
    /// A framework with only a queue sort; add plugins with the builder methods.
    pub fn new(queue_sort: Arc<dyn QueueSortPlugin>) -> Self {
        Framework {
            queue_sort,
            pre_filter: Vec::new(),
            filter: Vec::new(),
            post_filter: Vec::new(),
            pre_score: Vec::new(),
            score: Vec::new(),
            reserve: Vec::new(),
        }
    }

    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status {
        for p in &self.pre_filter {
            let s = p.pre_filter(state, pod, snapshot);
            if !s.is_success() && s.code != crate::Code::Skip {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    /// Runs the filters in order and stops at the first rejection, like upstream.
    pub fn run_filter(&self, state: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        for p in &self.filter {
            let s = p.filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_reserve(&self, state: &CycleState, pod: &Pod, node: &str) -> Status {
        for (i, p) in self.reserve.iter().enumerate() {
            let s = p.reserve(state, pod, node);
            if !s.is_success() {
                for done in self.reserve[..=i].iter().rev() {
                    done.unreserve(state, pod, node);
                }
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }

    pub fn run_unreserve(&self, state: &CycleState, pod: &Pod, node: &str) {
        for p in self.reserve.iter().rev() {
            p.unreserve(state, pod, node);
        }
    }
}
