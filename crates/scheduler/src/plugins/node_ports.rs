//! NodePorts: a pod's host ports must not clash with host ports already used on the node.

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, FilterPlugin, Plugin};
use crate::snapshot::{pod_host_ports, NodeInfo};
use crate::status::Status;

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

#[derive(Debug, Default)]
pub struct NodePorts;

impl NodePorts {
    pub fn new() -> Self {
        NodePorts
    }
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodePorts {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let wanted = pod_host_ports(pod);
        if wanted
            .iter()
            .any(|w| node.used_ports.iter().any(|u| u.conflicts(w)))
        {
            return Status::unschedulable([REASON]);
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::snapshot::testing::*;
    use crate::Code;

    fn with_port(port: Value) -> k8s_openapi::api::core::v1::Pod {
        pod(
            "other",
            json!({"containers": [{"name": "c", "ports": [port]}]}),
        )
    }

    #[test]
    fn host_ports_conflict_by_protocol_port_and_address() {
        let cases = [
            (
                "no host port",
                json!({"containerPort": 80}),
                json!({"containerPort": 80, "hostPort": 80}),
                Code::Success,
            ),
            (
                "same port",
                json!({"containerPort": 80, "hostPort": 80}),
                json!({"containerPort": 80, "hostPort": 80}),
                Code::Unschedulable,
            ),
            (
                "other port",
                json!({"containerPort": 80, "hostPort": 81}),
                json!({"containerPort": 80, "hostPort": 80}),
                Code::Success,
            ),
            (
                "other protocol",
                json!({"containerPort": 53, "hostPort": 53, "protocol": "UDP"}),
                json!({"containerPort": 53, "hostPort": 53}),
                Code::Success,
            ),
            (
                "different addresses",
                json!({"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.1"}),
                json!({"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.2"}),
                Code::Success,
            ),
            (
                "wildcard against address",
                json!({"containerPort": 80, "hostPort": 80, "hostIP": "0.0.0.0"}),
                json!({"containerPort": 80, "hostPort": 80, "hostIP": "10.0.0.2"}),
                Code::Unschedulable,
            ),
        ];
        for (name, existing, wanted, want) in cases {
            let info = node_info(node("n", "1", "1Gi", json!({})), vec![with_port(existing)]);
            let s = NodePorts::new().filter(&CycleState::default(), &with_port(wanted), &info);
            assert_eq!(s.code, want, "{name}");
        }
    }
}
