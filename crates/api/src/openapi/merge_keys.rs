//! The strategic-merge-patch and list metadata of the built-in types: one table, keyed by
//! (OpenAPI definition name, field), that both the OpenAPI generator (which turns it into the
//! `x-kubernetes-patch-*`, `x-kubernetes-list-*` and `x-kubernetes-map-type` extensions) and the
//! strategic merge patch (which reads those extensions back through
//! [`SchemaIndex`](super::SchemaIndex)) rely on. k8s-openapi's schemas carry none of it.
//!
//! The entries mirror the struct tags and `+listType`/`+listMapKey` markers of the Kubernetes
//! 1.33 Go types. Two things are easy to get wrong and are deliberate here:
//! - strategic merge patch reads only the patch strategy and merge key; a list with a
//!   `listType=map` but no patch strategy (e.g. `ResourceRequirements.claims`) is replaced
//!   whole by a strategic merge patch, and a list can merge by key in a strategic merge patch
//!   while being atomic for server-side apply (`JobStatus.conditions`, `PodStatus.hostIPs`);
//! - fields that older releases merged but 1.33 does not (`Container.resizePolicy`,
//!   `EndpointSubset.addresses`/`ports`) are atomic, as upstream now has them.

/// How server-side apply treats a list (`x-kubernetes-list-type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// A set of scalars.
    Set,
    /// A map keyed by `list_map_keys`.
    Map,
}

impl ListType {
    pub fn as_str(self) -> &'static str {
        match self {
            ListType::Atomic => "atomic",
            ListType::Set => "set",
            ListType::Map => "map",
        }
    }
}

/// The patch metadata of one field of one definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldMeta {
    /// OpenAPI definition name, e.g. `io.k8s.api.core.v1.PodSpec`.
    pub definition: &'static str,
    /// JSON field name.
    pub field: &'static str,
    /// `x-kubernetes-patch-strategy`: `merge`, `retainKeys`, `merge,retainKeys` or `replace`.
    pub patch_strategy: Option<&'static str>,
    /// `x-kubernetes-patch-merge-key`.
    pub patch_merge_key: Option<&'static str>,
    /// `x-kubernetes-list-type`.
    pub list_type: Option<ListType>,
    /// `x-kubernetes-list-map-keys` (only with [`ListType::Map`]).
    pub list_map_keys: &'static [&'static str],
    /// `x-kubernetes-map-type: atomic` on a map or struct field.
    pub atomic_map: bool,
}

const NONE: FieldMeta = FieldMeta {
    definition: "",
    field: "",
    patch_strategy: None,
    patch_merge_key: None,
    list_type: None,
    list_map_keys: &[],
    atomic_map: false,
};

/// A list merged by `key` in strategic merge patch and keyed by it in server-side apply.
/// The one-element key slices are spelled out by the callers' macros below.
const fn keyed_by(
    definition: &'static str,
    field: &'static str,
    key: &'static str,
    keys: &'static [&'static str],
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        patch_strategy: Some("merge"),
        patch_merge_key: Some(key),
        list_type: Some(ListType::Map),
        list_map_keys: keys,
        ..NONE
    }
}

/// Like [`keyed_by`], and each item also carries the `retainKeys` strategy (a union of
/// sources such as `Volume`: the patch's `$retainKeys` clears the source not listed).
const fn keyed_retain_by(
    definition: &'static str,
    field: &'static str,
    key: &'static str,
    keys: &'static [&'static str],
) -> FieldMeta {
    FieldMeta {
        patch_strategy: Some("merge,retainKeys"),
        ..keyed_by(definition, field, key, keys)
    }
}

/// Merged by `key` in strategic merge patch, atomic for server-side apply.
const fn keyed_atomic(
    definition: &'static str,
    field: &'static str,
    key: &'static str,
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        patch_strategy: Some("merge"),
        patch_merge_key: Some(key),
        list_type: Some(ListType::Atomic),
        ..NONE
    }
}

/// A list of scalars merged as a set (union, `$deleteFromPrimitiveList`).
const fn merged_set(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        patch_strategy: Some("merge"),
        list_type: Some(ListType::Set),
        ..NONE
    }
}

/// A list replaced whole by every kind of patch.
const fn atomic(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        list_type: Some(ListType::Atomic),
        ..NONE
    }
}

/// A set for server-side apply, replaced whole by strategic merge patch.
const fn set(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        list_type: Some(ListType::Set),
        ..NONE
    }
}

/// A keyed list for server-side apply, replaced whole by strategic merge patch.
const fn map_list(
    definition: &'static str,
    field: &'static str,
    keys: &'static [&'static str],
) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        list_type: Some(ListType::Map),
        list_map_keys: keys,
        ..NONE
    }
}

/// A struct whose members form a union: a patch's `$retainKeys` drops the members it does not
/// list (`DeploymentSpec.strategy`).
const fn retain_keys(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        patch_strategy: Some("retainKeys"),
        ..NONE
    }
}

/// A struct that a strategic merge patch replaces instead of merging.
const fn replace(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        patch_strategy: Some("replace"),
        ..NONE
    }
}

/// A map owned as a whole by server-side apply.
const fn atomic_map(definition: &'static str, field: &'static str) -> FieldMeta {
    FieldMeta {
        definition,
        field,
        atomic_map: true,
        ..NONE
    }
}

macro_rules! keyed {
    ($def:expr, $field:literal, $key:literal) => {
        keyed_by($def, $field, $key, &[$key])
    };
}

macro_rules! keyed_retain {
    ($def:expr, $field:literal, $key:literal) => {
        keyed_retain_by($def, $field, $key, &[$key])
    };
}

macro_rules! core {
    ($t:literal) => {
        concat!("io.k8s.api.core.v1.", $t)
    };
}
macro_rules! apps {
    ($t:literal) => {
        concat!("io.k8s.api.apps.v1.", $t)
    };
}
macro_rules! batch {
    ($t:literal) => {
        concat!("io.k8s.api.batch.v1.", $t)
    };
}
macro_rules! authentication {
    ($t:literal) => {
        concat!("io.k8s.api.authentication.v1.", $t)
    };
}
macro_rules! autoscaling_v2 {
    ($t:literal) => {
        concat!("io.k8s.api.autoscaling.v2.", $t)
    };
}
macro_rules! discovery {
    ($t:literal) => {
        concat!("io.k8s.api.discovery.v1.", $t)
    };
}
macro_rules! networking {
    ($t:literal) => {
        concat!("io.k8s.api.networking.v1.", $t)
    };
}
macro_rules! policy {
    ($t:literal) => {
        concat!("io.k8s.api.policy.v1.", $t)
    };
}
macro_rules! rbac {
    ($t:literal) => {
        concat!("io.k8s.api.rbac.v1.", $t)
    };
}
macro_rules! storage {
    ($t:literal) => {
        concat!("io.k8s.api.storage.v1.", $t)
    };
}
macro_rules! meta {
    ($t:literal) => {
        concat!("io.k8s.apimachinery.pkg.apis.meta.v1.", $t)
    };
}

/// Every field of the built-in types with patch or list metadata.
pub static FIELDS: &[FieldMeta] = &[
    // apps/v1
    atomic(apps!("StatefulSetSpec"), "volumeClaimTemplates"),
    keyed!(apps!("StatefulSetStatus"), "conditions", "type"),
    retain_keys(apps!("DeploymentSpec"), "strategy"),
    keyed!(apps!("DeploymentStatus"), "conditions", "type"),
    keyed!(apps!("DaemonSetStatus"), "conditions", "type"),
    keyed!(apps!("ReplicaSetStatus"), "conditions", "type"),
    // authentication/v1
    atomic(authentication!("TokenRequestSpec"), "audiences"),
    // autoscaling/v2
    atomic(autoscaling_v2!("HorizontalPodAutoscalerSpec"), "metrics"),
    atomic(autoscaling_v2!("HPAScalingRules"), "policies"),
    atomic(
        autoscaling_v2!("HorizontalPodAutoscalerStatus"),
        "currentMetrics",
    ),
    keyed!(
        autoscaling_v2!("HorizontalPodAutoscalerStatus"),
        "conditions",
        "type"
    ),
    // batch/v1
    set(batch!("PodFailurePolicyOnExitCodesRequirement"), "values"),
    atomic(batch!("PodFailurePolicyRule"), "onPodConditions"),
    atomic(batch!("PodFailurePolicy"), "rules"),
    atomic(batch!("SuccessPolicy"), "rules"),
    keyed_atomic(batch!("JobStatus"), "conditions", "type"),
    set(batch!("UncountedTerminatedPods"), "succeeded"),
    set(batch!("UncountedTerminatedPods"), "failed"),
    atomic(batch!("CronJobStatus"), "active"),
    // core/v1
    atomic(core!("PersistentVolumeSpec"), "accessModes"),
    atomic(core!("PersistentVolumeSpec"), "mountOptions"),
    atomic(core!("PersistentVolumeClaimSpec"), "accessModes"),
    atomic(core!("PersistentVolumeClaimStatus"), "accessModes"),
    keyed!(core!("PersistentVolumeClaimStatus"), "conditions", "type"),
    atomic(core!("RBDVolumeSource"), "monitors"),
    atomic(core!("RBDPersistentVolumeSource"), "monitors"),
    atomic(core!("CephFSVolumeSource"), "monitors"),
    atomic(core!("CephFSPersistentVolumeSource"), "monitors"),
    atomic(core!("SecretVolumeSource"), "items"),
    atomic(core!("SecretProjection"), "items"),
    atomic(core!("ISCSIVolumeSource"), "portals"),
    atomic(core!("ISCSIPersistentVolumeSource"), "portals"),
    atomic(core!("FCVolumeSource"), "targetWWNs"),
    atomic(core!("FCVolumeSource"), "wwids"),
    atomic(core!("ConfigMapVolumeSource"), "items"),
    atomic(core!("ConfigMapProjection"), "items"),
    atomic(core!("ProjectedVolumeSource"), "sources"),
    atomic(core!("HTTPGetAction"), "httpHeaders"),
    atomic(core!("ExecAction"), "command"),
    atomic(core!("Capabilities"), "add"),
    atomic(core!("Capabilities"), "drop"),
    map_list(core!("ResourceRequirements"), "claims", &["name"]),
    atomic(core!("Container"), "command"),
    atomic(core!("Container"), "args"),
    keyed_by(
        core!("Container"),
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    atomic(core!("Container"), "envFrom"),
    keyed!(core!("Container"), "env", "name"),
    atomic(core!("Container"), "resizePolicy"),
    keyed!(core!("Container"), "volumeMounts", "mountPath"),
    keyed!(core!("Container"), "volumeDevices", "devicePath"),
    keyed!(core!("ContainerStatus"), "volumeMounts", "mountPath"),
    keyed!(core!("ContainerStatus"), "allocatedResourcesStatus", "name"),
    map_list(core!("ResourceStatus"), "resources", &["resourceID"]),
    atomic(core!("LinuxContainerUser"), "supplementalGroups"),
    atomic(core!("NodeSelector"), "nodeSelectorTerms"),
    atomic(core!("NodeSelectorTerm"), "matchExpressions"),
    atomic(core!("NodeSelectorTerm"), "matchFields"),
    atomic(core!("NodeSelectorRequirement"), "values"),
    atomic(core!("TopologySelectorTerm"), "matchLabelExpressions"),
    atomic(core!("TopologySelectorLabelRequirement"), "values"),
    atomic(
        core!("PodAffinity"),
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        core!("PodAffinity"),
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        core!("PodAntiAffinity"),
        "requiredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(
        core!("PodAntiAffinity"),
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    atomic(core!("PodAffinityTerm"), "namespaces"),
    atomic(core!("PodAffinityTerm"), "matchLabelKeys"),
    atomic(core!("PodAffinityTerm"), "mismatchLabelKeys"),
    atomic(
        core!("NodeAffinity"),
        "preferredDuringSchedulingIgnoredDuringExecution",
    ),
    keyed_retain!(core!("PodSpec"), "volumes", "name"),
    keyed!(core!("PodSpec"), "initContainers", "name"),
    keyed!(core!("PodSpec"), "containers", "name"),
    keyed!(core!("PodSpec"), "ephemeralContainers", "name"),
    atomic_map(core!("PodSpec"), "nodeSelector"),
    keyed!(core!("PodSpec"), "imagePullSecrets", "name"),
    atomic(core!("PodSpec"), "tolerations"),
    keyed!(core!("PodSpec"), "hostAliases", "ip"),
    atomic(core!("PodSpec"), "readinessGates"),
    keyed_by(
        core!("PodSpec"),
        "topologySpreadConstraints",
        "topologyKey",
        &["topologyKey", "whenUnsatisfiable"],
    ),
    keyed!(core!("PodSpec"), "schedulingGates", "name"),
    keyed_retain!(core!("PodSpec"), "resourceClaims", "name"),
    atomic(core!("TopologySpreadConstraint"), "matchLabelKeys"),
    atomic(core!("HostAlias"), "hostnames"),
    atomic(core!("PodSecurityContext"), "supplementalGroups"),
    atomic(core!("PodSecurityContext"), "sysctls"),
    atomic(core!("PodDNSConfig"), "nameservers"),
    atomic(core!("PodDNSConfig"), "searches"),
    atomic(core!("PodDNSConfig"), "options"),
    atomic(core!("EphemeralContainer"), "command"),
    atomic(core!("EphemeralContainer"), "args"),
    keyed_by(
        core!("EphemeralContainer"),
        "ports",
        "containerPort",
        &["containerPort", "protocol"],
    ),
    atomic(core!("EphemeralContainer"), "envFrom"),
    keyed!(core!("EphemeralContainer"), "env", "name"),
    atomic(core!("EphemeralContainer"), "resizePolicy"),
    keyed!(core!("EphemeralContainer"), "volumeMounts", "mountPath"),
    keyed!(core!("EphemeralContainer"), "volumeDevices", "devicePath"),
    keyed!(core!("PodStatus"), "conditions", "type"),
    keyed_atomic(core!("PodStatus"), "hostIPs", "ip"),
    keyed!(core!("PodStatus"), "podIPs", "ip"),
    atomic(core!("PodStatus"), "initContainerStatuses"),
    atomic(core!("PodStatus"), "containerStatuses"),
    atomic(core!("PodStatus"), "ephemeralContainerStatuses"),
    keyed_retain!(core!("PodStatus"), "resourceClaimStatuses", "name"),
    atomic_map(core!("ReplicationControllerSpec"), "selector"),
    keyed!(core!("ReplicationControllerStatus"), "conditions", "type"),
    keyed!(core!("ServiceStatus"), "conditions", "type"),
    atomic(core!("LoadBalancerStatus"), "ingress"),
    atomic(core!("LoadBalancerIngress"), "ports"),
    keyed_by(core!("ServiceSpec"), "ports", "port", &["port", "protocol"]),
    atomic_map(core!("ServiceSpec"), "selector"),
    atomic(core!("ServiceSpec"), "clusterIPs"),
    atomic(core!("ServiceSpec"), "externalIPs"),
    atomic(core!("ServiceSpec"), "loadBalancerSourceRanges"),
    atomic(core!("ServiceSpec"), "ipFamilies"),
    keyed!(core!("ServiceAccount"), "secrets", "name"),
    atomic(core!("ServiceAccount"), "imagePullSecrets"),
    atomic(core!("Endpoints"), "subsets"),
    atomic(core!("EndpointSubset"), "addresses"),
    atomic(core!("EndpointSubset"), "notReadyAddresses"),
    atomic(core!("EndpointSubset"), "ports"),
    merged_set(core!("NodeSpec"), "podCIDRs"),
    atomic(core!("NodeSpec"), "taints"),
    keyed!(core!("NodeStatus"), "conditions", "type"),
    keyed!(core!("NodeStatus"), "addresses", "type"),
    atomic(core!("NodeStatus"), "images"),
    atomic(core!("NodeStatus"), "volumesInUse"),
    atomic(core!("NodeStatus"), "volumesAttached"),
    atomic(core!("NodeStatus"), "runtimeHandlers"),
    atomic(core!("ContainerImage"), "names"),
    atomic(core!("NamespaceSpec"), "finalizers"),
    keyed!(core!("NamespaceStatus"), "conditions", "type"),
    atomic(core!("LimitRangeSpec"), "limits"),
    atomic(core!("ResourceQuotaSpec"), "scopes"),
    atomic(core!("ScopeSelector"), "matchExpressions"),
    atomic(core!("ScopedResourceSelectorRequirement"), "values"),
    atomic(core!("DownwardAPIVolumeSource"), "items"),
    atomic(core!("DownwardAPIProjection"), "items"),
    // discovery/v1
    atomic(discovery!("EndpointSlice"), "endpoints"),
    atomic(discovery!("EndpointSlice"), "ports"),
    set(discovery!("Endpoint"), "addresses"),
    atomic(discovery!("EndpointHints"), "forZones"),
    atomic(discovery!("EndpointHints"), "forNodes"),
    // networking/v1
    atomic(networking!("NetworkPolicySpec"), "ingress"),
    atomic(networking!("NetworkPolicySpec"), "egress"),
    atomic(networking!("NetworkPolicySpec"), "policyTypes"),
    atomic(networking!("NetworkPolicyIngressRule"), "ports"),
    atomic(networking!("NetworkPolicyIngressRule"), "from"),
    atomic(networking!("NetworkPolicyEgressRule"), "ports"),
    atomic(networking!("NetworkPolicyEgressRule"), "to"),
    atomic(networking!("IPBlock"), "except"),
    atomic(networking!("IngressSpec"), "tls"),
    atomic(networking!("IngressSpec"), "rules"),
    atomic(networking!("IngressTLS"), "hosts"),
    atomic(networking!("IngressLoadBalancerStatus"), "ingress"),
    atomic(networking!("IngressLoadBalancerIngress"), "ports"),
    atomic(networking!("HTTPIngressRuleValue"), "paths"),
    // policy/v1
    replace(policy!("PodDisruptionBudgetSpec"), "selector"),
    keyed!(policy!("PodDisruptionBudgetStatus"), "conditions", "type"),
    // rbac/v1
    atomic(rbac!("PolicyRule"), "verbs"),
    atomic(rbac!("PolicyRule"), "apiGroups"),
    atomic(rbac!("PolicyRule"), "resources"),
    atomic(rbac!("PolicyRule"), "resourceNames"),
    atomic(rbac!("PolicyRule"), "nonResourceURLs"),
    atomic(rbac!("Role"), "rules"),
    atomic(rbac!("RoleBinding"), "subjects"),
    atomic(rbac!("ClusterRole"), "rules"),
    atomic(rbac!("AggregationRule"), "clusterRoleSelectors"),
    atomic(rbac!("ClusterRoleBinding"), "subjects"),
    // storage/v1
    atomic(storage!("StorageClass"), "mountOptions"),
    atomic(storage!("StorageClass"), "allowedTopologies"),
    // meta/v1
    keyed!(meta!("ObjectMeta"), "ownerReferences", "uid"),
    merged_set(meta!("ObjectMeta"), "finalizers"),
    atomic(meta!("ObjectMeta"), "managedFields"),
    atomic(meta!("DeleteOptions"), "dryRun"),
    atomic(meta!("StatusDetails"), "causes"),
    atomic(meta!("LabelSelector"), "matchExpressions"),
    atomic(meta!("LabelSelectorRequirement"), "values"),
];

/// Definitions that server-side apply owns as a whole (`x-kubernetes-map-type: atomic`).
pub static ATOMIC_STRUCTS: &[&str] = &[
    core!("SecretReference"),
    core!("ObjectFieldSelector"),
    core!("ResourceFieldSelector"),
    core!("ConfigMapKeySelector"),
    core!("SecretKeySelector"),
    core!("NodeSelector"),
    core!("NodeSelectorTerm"),
    core!("TopologySelectorTerm"),
    core!("EndpointAddress"),
    core!("EndpointPort"),
    core!("ObjectReference"),
    core!("LocalObjectReference"),
    core!("TypedLocalObjectReference"),
    core!("ScopeSelector"),
    discovery!("EndpointPort"),
    networking!("ServiceBackendPort"),
    rbac!("Subject"),
    rbac!("RoleRef"),
    meta!("OwnerReference"),
    meta!("LabelSelector"),
];

/// The metadata of `field` in `definition`, if it has any.
pub fn lookup(definition: &str, field: &str) -> Option<&'static FieldMeta> {
    FIELDS
        .iter()
        .find(|m| m.definition == definition && m.field == field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn each_field_appears_once() {
        let mut seen = HashSet::new();
        for m in FIELDS {
            assert!(
                seen.insert((m.definition, m.field)),
                "{}.{} listed twice",
                m.definition,
                m.field
            );
        }
    }

    #[test]
    fn merge_keys_come_with_the_merge_strategy() {
        for m in FIELDS {
            if m.patch_merge_key.is_some() {
                let s = m.patch_strategy.unwrap_or_default();
                assert!(
                    s.split(',').any(|s| s == "merge"),
                    "{}.{}",
                    m.definition,
                    m.field
                );
            }
            if m.list_type == Some(ListType::Map) {
                assert!(!m.list_map_keys.is_empty(), "{}.{}", m.definition, m.field);
            } else {
                assert!(m.list_map_keys.is_empty(), "{}.{}", m.definition, m.field);
            }
        }
    }

    #[test]
    fn pod_spec_containers_merge_by_name() {
        let m = lookup(core!("PodSpec"), "containers").unwrap();
        assert_eq!(m.patch_strategy, Some("merge"));
        assert_eq!(m.patch_merge_key, Some("name"));
        let v = lookup(core!("PodSpec"), "volumes").unwrap();
        assert_eq!(v.patch_strategy, Some("merge,retainKeys"));
        assert!(lookup(core!("PodSpec"), "tolerations")
            .unwrap()
            .patch_strategy
            .is_none());
        let t = lookup(core!("PodSpec"), "topologySpreadConstraints").unwrap();
        assert_eq!(t.patch_merge_key, Some("topologyKey"));
        assert_eq!(t.list_map_keys, ["topologyKey", "whenUnsatisfiable"]);
    }
}
