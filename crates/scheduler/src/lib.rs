//! The scheduler: places pods without `spec.nodeName` on nodes, with kube-scheduler's decisions.
//!
//! Where to start:
//! - [`framework`]: the extension points (pre-filter, filter, post-filter, pre-score, score with
//!   normalize, reserve, bind) as one small trait each, and [`Status`] results.
//! - [`cycle::schedule`]: one pure scheduling cycle over a [`Snapshot`]; it picks a node or
//!   explains, upstream-style, why none fits ([`FitError`]).
//! - [`plugins`]: the in-tree plugins, one module each, and [`plugins::default_framework`].
//! - [`queue::SchedulingQueue`]: active, backoff and unschedulable pods (pure, clock passed in).
//! - [`Scheduler::run`]: the I/O loop — watches, assumed pods, binding, status feedback,
//!   events and preemption's evictions.
//! - [`config`]: `KubeSchedulerConfiguration` profiles into frameworks.
//!
//! The framework is written here rather than taken from a crate: none exists for Rust.

pub mod config;
pub mod cycle;
mod error;
pub mod events;
pub mod framework;
pub mod labels;
pub mod plugins;
pub mod pod_index;
pub mod queue;
pub mod resources;
mod runtime;
pub mod snapshot;
mod status;

pub use cycle::{schedule, FitError, ScheduleResult};
pub use error::{Error, Result};
pub use framework::Framework;
pub use runtime::{Scheduler, DEFAULT_SCHEDULER_NAME};
pub use snapshot::{NodeInfo, PodInfo, Snapshot};
pub use status::{Code, Status};
