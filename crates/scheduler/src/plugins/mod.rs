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

use std::sync::Arc;

use crate::framework::Framework;

/// The default profile: filters in upstream's order; weights TaintToleration 3, NodeAffinity 2,
/// NodeResourcesFit 1, PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation 1.
pub fn default_framework() -> Framework {
    let unschedulable = Arc::new(node_unschedulable::NodeUnschedulable::new());
    let name = Arc::new(node_name::NodeName::new());
    let taints = Arc::new(taint_toleration::TaintToleration::new());
    let affinity = Arc::new(node_affinity::NodeAffinity::new());
    let ports = Arc::new(node_ports::NodePorts::new());
    let fit = Arc::new(node_resources_fit::NodeResourcesFit::new());
    let balanced = Arc::new(balanced_allocation::BalancedAllocation::new());
    let spread = Arc::new(pod_topology_spread::PodTopologySpread::new());
    let pod_affinity = Arc::new(inter_pod_affinity::InterPodAffinity::new());
    let volumes = Arc::new(volume_binding::VolumeBinding::new());
    let mut fw = Framework::new(Arc::new(priority_sort::PrioritySort::new()));
    fw.pre_filter = vec![
        fit.clone(),
        volumes.clone(),
        spread.clone(),
        pod_affinity.clone(),
    ];
    fw.filter = vec![
        unschedulable,
        name,
        taints.clone(),
        affinity.clone(),
        ports,
        fit.clone(),
        volumes,
        spread.clone(),
        pod_affinity.clone(),
    ];
    fw.post_filter = vec![Arc::new(default_preemption::DefaultPreemption::new())];
    fw.pre_score = vec![spread.clone(), pod_affinity.clone()];
    fw.score = vec![
        (taints, 3),
        (affinity, 2),
        (fit, 1),
        (spread, 2),
        (pod_affinity, 2),
        (balanced, 1),
    ];
    fw
}
