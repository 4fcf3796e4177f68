//! Requests and limits turned into what the runtime enforces, as the kubelet computes them.

use crate::quantity;

/// What a node offers its pods: the limits of containers that set none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeResources {
    /// Allocatable CPU in millicores.
    pub cpu_milli: i64,
    /// Allocatable memory in bytes.
    pub memory: i64,
}

impl NodeResources {
    /// From the node's capacity as registered (`"4"`, `"16Gi"`); unreadable values count as
    /// zero.
    pub fn new(cpu: &str, memory: &str) -> Self {
        NodeResources {
            cpu_milli: quantity::milli_value(cpu).unwrap_or(0),
            memory: quantity::value(memory).unwrap_or(0),
        }
    }
}
