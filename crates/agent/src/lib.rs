//! The node agent (kubelet): node registration and lease, pod workers, and the `Runtime`
//! trait with its CRI ([`runtime::cri`], over the containerd the agent runs itself:
//! [`containerd`]) and simulated implementations.
//!
//! Start at [`fleet::run`]: it registers one or more nodes ([`node`]), keeps their Leases and
//! status fresh, watches the pods bound to them with one watch, and runs a task per pod
//! ([`pod::run`]) around a [`pod::worker::PodWorker`] — the state machine that drives a
//! [`runtime::Runtime`] toward the pod spec and computes the pod status the way the kubelet
//! does. `navarch agent` runs a fleet of one node, `navarch simulate` a fleet of many.

pub mod clock;
pub mod containerd;
pub mod duration;
pub mod error;
pub mod fleet;
pub mod host;
pub mod node;
pub mod pod;
pub mod quantity;
pub mod runtime;
pub mod stats;
pub mod streaming;

pub use error::{Error, Result, RuntimeError};
