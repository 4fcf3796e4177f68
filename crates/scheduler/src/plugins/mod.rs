//! The in-tree plugins, one module each with a `NAME`, a constructor and table-driven tests,
//! and the default profile that wires them with upstream's default score weights.

pub mod balanced_allocation;
pub mod default_preemption;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod priority_sort;
pub mod taint_toleration;
pub mod volume_binding;

use crate::framework::Framework;

/// The default profile: upstream's default plugins (those implemented here) in upstream's
/// order; weights TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1, PodTopologySpread 2,
/// InterPodAffinity 2, NodeResourcesBalancedAllocation 1. Built by [`crate::config`] from an
/// empty profile, so the two never disagree.
pub fn default_framework() -> Framework {
    crate::config::build_profile(crate::DEFAULT_SCHEDULER_NAME, &serde_json::Value::Null)
        .expect("the default profile is valid")
}
