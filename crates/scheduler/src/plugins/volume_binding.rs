//! VolumeBinding, the part that does not need a volume binder: a pod's PersistentVolumeClaims
//! must exist and not be terminating; an unbound claim is acceptable only when its StorageClass
//! binds `WaitForFirstConsumer` (the runtime then records the chosen node on the claim as
//! `volume.kubernetes.io/selected-node`, for the provisioner); a bound claim's volume node
//! affinity filters nodes.
//!
//! Not done here (upstream's binder): matching unbound claims to existing volumes per node and
//! waiting in pre-bind until the claims are bound.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, Pod};

use crate::framework::{CycleState, FilterPlugin, Plugin, PreFilterPlugin};
use crate::plugins::node_affinity::term_matches;
use crate::snapshot::{ClusterObjects, NodeInfo, Snapshot};
use crate::status::Status;

pub const NAME: &str = "VolumeBinding";
pub const REASON_UNBOUND_IMMEDIATE: &str = "pod has unbound immediate PersistentVolumeClaims";
pub const REASON_NODE_CONFLICT: &str = "node(s) had volume node affinity conflict";
/// The annotation telling a provisioner where the consumer was scheduled.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";

/// The claim names a pod uses: `persistentVolumeClaim` volumes and generic ephemeral volumes
/// (whose claim is `<pod>-<volume>`).
pub fn claim_names(pod: &Pod) -> Vec<String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| {
            if let Some(c) = &v.persistent_volume_claim {
                Some(c.claim_name.clone())
            } else {
                v.ephemeral.as_ref().map(|_| format!("{name}-{}", v.name))
            }
        })
        .collect()
}

/// What a pod's claims need: bound volumes to check, unbound delayed-binding claims to annotate.
#[derive(Debug, Default, Clone)]
pub struct Claims {
    pub bound: Vec<Arc<PersistentVolume>>,
    pub delayed: Vec<String>,
}

/// Resolves a pod's claims, or the upstream-worded reason it cannot be scheduled at all.
pub fn resolve(pod: &Pod, objects: &ClusterObjects) -> Result<Claims, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Claims::default();
    for claim in claim_names(pod) {
        let Some(pvc) = objects.pvcs.get(&format!("{ns}/{claim}")) else {
            return Err(format!("persistentvolumeclaim \"{claim}\" not found"));
        };
        if pvc.metadata.deletion_timestamp.is_some() {
            return Err(format!(
                "persistentvolumeclaim \"{claim}\" is being deleted"
            ));
        }
        let spec = pvc.spec.as_ref();
        match spec
            .and_then(|s| s.volume_name.as_deref())
            .filter(|v| !v.is_empty())
        {
            Some(pv) => {
                if let Some(pv) = objects.pvs.get(&format!("/{pv}")) {
                    out.bound.push(pv.clone());
                }
            }
            None => {
                let class = spec
                    .and_then(|s| s.storage_class_name.as_deref())
                    .unwrap_or_default();
                let wait = objects
                    .storage_classes
                    .get(&format!("/{class}"))
                    .and_then(|sc| sc.volume_binding_mode.as_deref())
                    == Some("WaitForFirstConsumer");
                if !wait {
                    return Err(REASON_UNBOUND_IMMEDIATE.to_string());
                }
                out.delayed.push(claim);
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
pub struct VolumeBinding;

impl VolumeBinding {
    pub fn new() -> Self {
        VolumeBinding
    }
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }
}

impl PreFilterPlugin for VolumeBinding {
    fn pre_filter(&self, state: &mut CycleState, pod: &Pod, snapshot: &Snapshot) -> Status {
        if claim_names(pod).is_empty() {
            return Status::skip();
        }
        match resolve(pod, &snapshot.objects) {
            Ok(claims) => {
                state.write(NAME, claims);
                Status::success()
            }
            Err(reason) => Status::unresolvable(reason),
        }
    }
}

impl FilterPlugin for VolumeBinding {
    fn filter(&self, state: &CycleState, _pod: &Pod, node: &NodeInfo) -> Status {
        let Some(claims) = state.read::<Claims>(NAME) else {
            return Status::success();
        };
        let conflict = claims.bound.iter().any(|pv| {
            let required = pv
                .spec
                .as_ref()
                .and_then(|s| s.node_affinity.as_ref())
                .and_then(|a| a.required.as_ref());
            required.is_some_and(|r| !r.node_selector_terms.iter().any(|t| term_matches(t, node)))
        });
        if conflict {
            Status::unresolvable(REASON_NODE_CONFLICT)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use k8s_openapi::api::storage::v1::StorageClass;
    use serde_json::json;

    use super::*;
    use crate::snapshot::testing::*;
    use crate::Code;

    fn objects() -> ClusterObjects {
        let mut o = ClusterObjects::default();
        let pvc = |name: &str, class: &str, volume: Option<&str>| -> Arc<PersistentVolumeClaim> {
            Arc::new(
                serde_json::from_value(json!({"metadata": {"name": name, "namespace": "default"},
                    "spec": {"storageClassName": class, "volumeName": volume}}))
                .unwrap(),
            )
        };
        o.pvcs
            .insert("default/wait".into(), pvc("wait", "local", None));
        o.pvcs
            .insert("default/now".into(), pvc("now", "fast", None));
        o.pvcs
            .insert("default/bound".into(), pvc("bound", "local", Some("pv1")));
        for (name, mode) in [("local", "WaitForFirstConsumer"), ("fast", "Immediate")] {
            let sc: StorageClass = serde_json::from_value(json!({"metadata": {"name": name},
                "provisioner": "x", "volumeBindingMode": mode}))
            .unwrap();
            o.storage_classes.insert(format!("/{name}"), Arc::new(sc));
        }
        let pv: PersistentVolume = serde_json::from_value(json!({"metadata": {"name": "pv1"},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["a"]}]}]}}}}))
        .unwrap();
        o.pvs.insert("/pv1".into(), Arc::new(pv));
        o
    }

    fn with_claim(claim: &str) -> Pod {
        pod(
            "p",
            json!({"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}),
        )
    }

    #[test]
    fn claims_gate_and_filter_the_pod() {
        let mut snap = Snapshot::new();
        snap.objects = objects();
        let a = node_info(
            node(
                "a",
                "1",
                "1Gi",
                json!({"metadata": {"labels": {"kubernetes.io/hostname": "a"}}}),
            ),
            vec![],
        );
        let b = node_info(
            node(
                "b",
                "1",
                "1Gi",
                json!({"metadata": {"labels": {"kubernetes.io/hostname": "b"}}}),
            ),
            vec![],
        );
        let cases = [
            (
                "no claims",
                pod("p", json!({})),
                Code::Skip,
                "",
                vec![true, true],
            ),
            (
                "missing claim",
                with_claim("nope"),
                Code::UnschedulableAndUnresolvable,
                "persistentvolumeclaim \"nope\" not found",
                vec![],
            ),
            (
                "unbound immediate claim",
                with_claim("now"),
                Code::UnschedulableAndUnresolvable,
                REASON_UNBOUND_IMMEDIATE,
                vec![],
            ),
            (
                "wait for first consumer",
                with_claim("wait"),
                Code::Success,
                "",
                vec![true, true],
            ),
            (
                "bound volume pins the node",
                with_claim("bound"),
                Code::Success,
                "",
                vec![true, false],
            ),
        ];
        let pl = VolumeBinding::new();
        for (name, p, code, reason, feasible) in cases {
            let mut state = CycleState::default();
            let s = pl.pre_filter(&mut state, &p, &snap);
            assert_eq!(s.code, code, "{name}");
            assert_eq!(s.reasons.join(""), reason, "{name}");
            if !feasible.is_empty() {
                let got: Vec<bool> = [&a, &b]
                    .iter()
                    .map(|n| pl.filter(&state, &p, n).is_success())
                    .collect();
                assert_eq!(got, feasible, "{name}");
            }
        }
        assert_eq!(
            resolve(&with_claim("wait"), &snap.objects).unwrap().delayed,
            ["wait"]
        );
    }
}
