//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::{Pod, Taint};

use super::taint_toleration::tolerates;
use crate::framework::{CycleState, FilterPlugin, Plugin};
use crate::snapshot::NodeInfo;
use crate::status::Status;

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";
const TAINT_KEY: &str = "node.kubernetes.io/unschedulable";

#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl NodeUnschedulable {
    pub fn new() -> Self {
        NodeUnschedulable
    }
}

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeUnschedulable {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: TAINT_KEY.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerations = pod.spec.as_ref().and_then(|s| s.tolerations.as_deref());
        if tolerations
            .unwrap_or_default()
            .iter()
            .any(|t| tolerates(t, &taint))
        {
            return Status::success();
        }
        Status::unresolvable(REASON)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::*;
    use crate::Code;

    #[test]
    fn cordoned_nodes_reject_pods_without_the_toleration() {
        let cases = [
            ("schedulable node", json!({}), json!({}), Code::Success),
            (
                "cordoned node",
                json!({"spec": {"unschedulable": true}}),
                json!({}),
                Code::UnschedulableAndUnresolvable,
            ),
            (
                "cordoned, tolerated",
                json!({"spec": {"unschedulable": true}}),
                json!({"tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}),
                Code::Success,
            ),
        ];
        for (name, n, p, want) in cases {
            let info = node_info(node("n", "1", "1Gi", n), vec![]);
            let s = NodeUnschedulable::new().filter(&CycleState::default(), &pod("p", p), &info);
            assert_eq!(s.code, want, "{name}");
        }
    }
}
