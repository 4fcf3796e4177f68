//! NodeName: a pod that names a node in `spec.nodeName` fits only that node. (The scheduler
//! never sees bound pods; this matters to preemption and to other schedulers' pods.)

use k8s_openapi::api::core::v1::Pod;

use crate::framework::{CycleState, FilterPlugin, Plugin};
use crate::snapshot::NodeInfo;
use crate::status::Status;

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

#[derive(Debug, Default)]
pub struct NodeName;

impl NodeName {
    pub fn new() -> Self {
        NodeName
    }
}

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl FilterPlugin for NodeName {
    fn filter(&self, _: &CycleState, pod: &Pod, node: &NodeInfo) -> Status {
        match pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            Some(name) if !name.is_empty() && name != node.name => Status::unresolvable(REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::*;
    use crate::Code;

    #[test]
    fn matches_only_the_named_node() {
        let cases = [
            ("no name", json!({}), Code::Success),
            ("same name", json!({"nodeName": "n"}), Code::Success),
            (
                "other name",
                json!({"nodeName": "m"}),
                Code::UnschedulableAndUnresolvable,
            ),
        ];
        for (name, spec, want) in cases {
            let info = node_info(node("n", "1", "1Gi", json!({})), vec![]);
            let s = NodeName::new().filter(&CycleState::default(), &pod("p", spec), &info);
            assert_eq!(s.code, want, "{name}");
        }
    }
}
