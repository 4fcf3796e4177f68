//! Pure helpers of the Deployment controller: the pod-template-hash that names ReplicaSets,
//! and the rolling-update arithmetic over maxSurge/maxUnavailable. No I/O.

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// The label (and ReplicaSet name suffix) that ties a ReplicaSet to one pod template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters that cannot spell words (no vowels) and avoid look-alikes, as upstream's
/// `SafeEncodeString` uses for generated name suffixes.
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A stable hash of `template` (without its own pod-template-hash label) plus
/// `collision_count`, encoded with [`SAFE`] characters. Stable across processes and
/// releases: it hashes the canonical JSON of the template with 32-bit FNV-1a.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    let json = serde_json::to_vec(&template).expect("a pod template serializes");
    let mut hash = fnv1a32(0x811c_9dc5, &json);
    if let Some(count) = collision_count {
        hash = fnv1a32(hash, &(count as u32).to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| SAFE[b as usize % SAFE.len()] as char)
        .collect()
}

fn fnv1a32(mut hash: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// An absolute value or a percentage of `total`, rounded up or down.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let percent: i64 = s.strip_suffix('%')?.parse().ok()?;
            let scaled = percent * i64::from(total);
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v).ok()
        }
    }
}

/// `(maxSurge, maxUnavailable)` for `replicas`: surge rounds up, unavailable rounds down,
/// and when both come out 0 unavailable becomes 1 so that a rollout can make progress.
/// Defaults are 25% each, as the API server defaults them.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    replicas: i32,
) -> (i32, i32) {
    let quarter = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&quarter), replicas, true).unwrap_or(0);
    let unavailable =
        scaled_value(max_unavailable.unwrap_or(&quarter), replicas, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// How many replicas the new ReplicaSet may have in this step of a rolling update: grow it
/// by the headroom that maxSurge leaves over `all_replicas` (every ReplicaSet's spec.replicas),
/// never beyond `desired`.
pub fn new_rs_replicas(desired: i32, max_surge: i32, all_replicas: i32, new_replicas: i32) -> i32 {
    let max_total = desired + max_surge;
    if all_replicas >= max_total {
        return new_replicas;
    }
    let up = (max_total - all_replicas)
        .min(desired - new_replicas)
        .max(0);
    new_replicas + up
}

/// How many old replicas may be scaled down in this step: keep at least
/// `desired - max_unavailable` available, counting the new ReplicaSet's unavailable pods
/// against the budget first (they cannot help availability yet).
pub fn old_replicas_to_scale_down(
    desired: i32,
    max_unavailable: i32,
    all_replicas: i32,
    new_replicas: i32,
    new_available: i32,
) -> i32 {
    let min_available = desired - max_unavailable;
    let new_unavailable = new_replicas - new_available;
    (all_replicas - min_available - new_unavailable).max(0)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn template_hash_is_stable_safe_and_ignores_its_own_label() {
        let t = template("busybox");
        let h = pod_template_hash(&t, None);
        assert_eq!(h, pod_template_hash(&t.clone(), None));
        assert!(h.bytes().all(|b| SAFE.contains(&b)), "{h}");
        let mut labelled = t.clone();
        labelled
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH.into(), h.clone());
        assert_eq!(pod_template_hash(&labelled, None), h);
    }

    #[test]
    fn template_hash_changes_with_image_and_collision_count() {
        let h = pod_template_hash(&template("busybox"), None);
        assert_ne!(h, pod_template_hash(&template("nginx"), None));
        assert_ne!(h, pod_template_hash(&template("busybox"), Some(1)));
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(resolve_fenceposts(None, None, 10), (3, 2));
        assert_eq!(
            resolve_fenceposts(Some(&p("10%")), Some(&p("10%")), 5),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&IntOrString::Int(2)), Some(&IntOrString::Int(0)), 3),
            (2, 0)
        );
        // Both zero would never progress: unavailable becomes 1.
        assert_eq!(
            resolve_fenceposts(Some(&p("0%")), Some(&p("0%")), 4),
            (0, 1)
        );
        assert_eq!(scaled_value(&p("abc"), 4, true), None);
    }

    #[test]
    fn new_replicaset_grows_within_the_surge() {
        // 10 desired, surge 3: old has 10, new 0 -> new may go to 3.
        assert_eq!(new_rs_replicas(10, 3, 10, 0), 3);
        // At the ceiling: no growth.
        assert_eq!(new_rs_replicas(10, 3, 13, 3), 3);
        // Never beyond desired.
        assert_eq!(new_rs_replicas(10, 3, 9, 9), 10);
    }

    #[test]
    fn old_replicas_shrink_only_within_the_unavailable_budget() {
        // 10 desired, 2 unavailable allowed, 13 total with 3 new not yet available: the 10
        // old ones may lose 2 and keep 8 available.
        assert_eq!(old_replicas_to_scale_down(10, 2, 13, 3, 0), 2);
        // 1 unavailable allowed, 9 old available and 2 new stuck: nothing more goes.
        assert_eq!(old_replicas_to_scale_down(10, 1, 11, 2, 0), 0);
        // Once the 3 new pods are available, 5 old may go.
        assert_eq!(old_replicas_to_scale_down(10, 2, 13, 3, 3), 5);
    }
}
