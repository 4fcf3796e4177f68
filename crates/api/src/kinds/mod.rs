//! The built-in kinds (Kubernetes 1.33): one [`ResourceDef`] each, built from the k8s-openapi
//! types. Kinds whose behaviour differs from the generic one (defaulting, validation, tables,
//! field selectors) have their own module here.

use std::marker::PhantomData;
use std::sync::Arc;

use k8s_openapi::{ListableResource, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::registry::{
    Conversion, GroupVersion, KindOps, ResourceDef, Scope, StoredAs, Subresource,
};

mod configmap;
mod controllerrevision;
mod cronjob;
mod daemonset;
mod deployment;
mod endpoints;
mod event;
mod horizontalpodautoscaler;
mod ingress;
mod ingressclass;
mod job;
mod lease;
mod limitrange;
mod namespace;
mod networkpolicy;
mod node;
mod persistentvolume;
mod persistentvolumeclaim;
mod pod;
mod poddisruptionbudget;
mod podspec;
mod podtemplate;
mod priorityclass;
mod replicaset;
mod replicationcontroller;
mod resourcequota;
mod role;
mod rolebinding;
mod secret;
mod service;
mod serviceaccount;
mod statefulset;
mod storageclass;
#[cfg(test)]
mod tests;
mod util;
pub use util::parse_quantity;
mod workload;

/// Decode into `T` and encode back: drops unknown fields and `null`s, normalises formats.
pub fn roundtrip<T: Serialize + DeserializeOwned + Resource>(obj: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj).map_err(|e| {
        format!(
            "{} in version \"{}\" cannot be handled as a {}: {}",
            T::KIND,
            T::VERSION,
            T::KIND,
            e
        )
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The generic behaviour of a typed kind: normalisation only.
pub struct Generic<T>(PhantomData<fn() -> T>);

impl<T> Default for Generic<T> {
    fn default() -> Self {
        Generic(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned + Resource + 'static> KindOps for Generic<T> {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        roundtrip::<T>(obj)
    }
}

/// The generic behaviour of a typed kind that has a status subresource.
pub struct WithStatus<T>(PhantomData<fn() -> T>);

impl<T> Default for WithStatus<T> {
    fn default() -> Self {
        WithStatus(PhantomData)
    }
}

impl<T: Serialize + DeserializeOwned + Resource + 'static> KindOps for WithStatus<T> {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        roundtrip::<T>(obj)
    }
    fn has_status(&self) -> bool {
        true
    }
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Builder for one built-in kind.
struct Def {
    def: ResourceDef,
}

fn def<T: ListableResource>(
    singular: &str,
    scope: Scope,
    short: &[&str],
    categories: &[&str],
    ops: Arc<dyn KindOps>,
) -> Def {
    Def {
        def: ResourceDef {
            gv: GroupVersion::new(T::GROUP, T::VERSION),
            kind: T::KIND.to_string(),
            list_kind: T::LIST_KIND.to_string(),
            plural: T::URL_PATH_SEGMENT.to_string(),
            singular: singular.to_string(),
            scope,
            short_names: strings(short),
            categories: strings(categories),
            verbs: strings(RW),
            subresources: Vec::new(),
            ops,
            stored_as: None,
        },
    }
}

impl Def {
    fn status(mut self) -> Self {
        let (g, v, k) = (
            self.def.gv.group.clone(),
            self.def.gv.version.clone(),
            self.def.kind.clone(),
        );
        self.def.subresources.push(Subresource {
            name: "status".into(),
            group: g,
            version: v,
            kind: k,
            verbs: strings(&["get", "patch", "update"]),
        });
        self
    }

    fn scale(mut self) -> Self {
        self.def.subresources.push(Subresource {
            name: "scale".into(),
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale".into(),
            verbs: strings(&["get", "patch", "update"]),
        });
        self
    }

    fn sub(mut self, name: &str, group: &str, version: &str, kind: &str, verbs: &[&str]) -> Self {
        self.def.subresources.push(Subresource {
            name: name.into(),
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            verbs: strings(verbs),
        });
        self
    }

    /// Serve another resource's objects, converted (see [`StoredAs`]).
    fn stored_as(mut self, group: &str, plural: &str, conversion: Arc<dyn Conversion>) -> Self {
        self.def.stored_as = Some(StoredAs {
            group: group.into(),
            plural: plural.into(),
            conversion,
        });
        self
    }

    fn verbs(mut self, verbs: &[&str]) -> Self {
        self.def.verbs = strings(verbs);
        self
    }
}

/// Every built-in kind, core group first (discovery lists groups in this order).
pub fn builtin() -> Vec<ResourceDef> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
        events::v1 as events, networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        scheduling::v1 as scheduling, storage::v1 as storage,
    };
    use Scope::{Cluster, Namespaced};
    let all = &["all"];
    let none: &[&str] = &[];
    let defs = vec![
        // core/v1
        def::<core::ConfigMap>(
            "configmap",
            Namespaced,
            &["cm"],
            none,
            Arc::new(configmap::ConfigMapOps),
        ),
        def::<core::Endpoints>(
            "endpoints",
            Namespaced,
            &["ep"],
            none,
            Arc::new(endpoints::EndpointsOps),
        ),
        def::<core::Event>(
            "event",
            Namespaced,
            &["ev"],
            none,
            Arc::new(event::CoreEventOps),
        ),
        def::<core::LimitRange>(
            "limitrange",
            Namespaced,
            &["limits"],
            none,
            Arc::new(limitrange::LimitRangeOps),
        ),
        def::<core::Namespace>(
            "namespace",
            Cluster,
            &["ns"],
            none,
            Arc::new(namespace::NamespaceOps),
        )
        .verbs(&[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ])
        .status()
        .sub("finalize", "", "v1", "Namespace", &["update"]),
        def::<core::Node>("node", Cluster, &["no"], none, Arc::new(node::NodeOps)).status(),
        def::<core::PersistentVolumeClaim>(
            "persistentvolumeclaim",
            Namespaced,
            &["pvc"],
            none,
            Arc::new(persistentvolumeclaim::PersistentVolumeClaimOps),
        )
        .status(),
        def::<core::PersistentVolume>(
            "persistentvolume",
            Cluster,
            &["pv"],
            none,
            Arc::new(persistentvolume::PersistentVolumeOps),
        )
        .status(),
        def::<core::Pod>("pod", Namespaced, &["po"], all, Arc::new(pod::PodOps))
            .status()
            .sub("binding", "", "v1", "Binding", &["create"])
            .sub("eviction", "policy", "v1", "Eviction", &["create"]),
        def::<core::PodTemplate>(
            "podtemplate",
            Namespaced,
            none,
            none,
            Arc::new(podtemplate::PodTemplateOps),
        ),
        def::<core::ReplicationController>(
            "replicationcontroller",
            Namespaced,
            &["rc"],
            all,
            Arc::new(replicationcontroller::ReplicationControllerOps),
        )
        .status()
        .scale(),
        def::<core::ResourceQuota>(
            "resourcequota",
            Namespaced,
            &["quota"],
            none,
            Arc::new(resourcequota::ResourceQuotaOps),
        )
        .status(),
        def::<core::Secret>(
            "secret",
            Namespaced,
            none,
            none,
            Arc::new(secret::SecretOps),
        ),
        def::<core::ServiceAccount>(
            "serviceaccount",
            Namespaced,
            &["sa"],
            none,
            Arc::new(serviceaccount::ServiceAccountOps),
        )
        .sub(
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &["create"],
        ),
        def::<core::Service>(
            "service",
            Namespaced,
            &["svc"],
            all,
            Arc::new(service::ServiceOps),
        )
        .verbs(&[
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch",
        ])
        .status(),
        // apps/v1
        def::<apps::ControllerRevision>(
            "controllerrevision",
            Namespaced,
            none,
            none,
            Arc::new(controllerrevision::ControllerRevisionOps),
        ),
        def::<apps::DaemonSet>(
            "daemonset",
            Namespaced,
            &["ds"],
            all,
            Arc::new(daemonset::DaemonSetOps),
        )
        .status(),
        def::<apps::Deployment>(
            "deployment",
            Namespaced,
            &["deploy"],
            all,
            Arc::new(deployment::DeploymentOps),
        )
        .status()
        .scale(),
        def::<apps::ReplicaSet>(
            "replicaset",
            Namespaced,
            &["rs"],
            all,
            Arc::new(replicaset::ReplicaSetOps),
        )
        .status()
        .scale(),
        def::<apps::StatefulSet>(
            "statefulset",
            Namespaced,
            &["sts"],
            all,
            Arc::new(statefulset::StatefulSetOps),
        )
        .status()
        .scale(),
        // autoscaling/v2
        def::<autoscaling::HorizontalPodAutoscaler>(
            "horizontalpodautoscaler",
            Namespaced,
            &["hpa"],
            all,
            Arc::new(horizontalpodautoscaler::HorizontalPodAutoscalerOps),
        )
        .status(),
        // batch/v1
        def::<batch::CronJob>(
            "cronjob",
            Namespaced,
            &["cj"],
            all,
            Arc::new(cronjob::CronJobOps),
        )
        .status(),
        def::<batch::Job>("job", Namespaced, none, all, Arc::new(job::JobOps)).status(),
        // coordination.k8s.io/v1
        def::<coordination::Lease>("lease", Namespaced, none, none, Arc::new(lease::LeaseOps)),
        // discovery.k8s.io/v1
        def::<discovery::EndpointSlice>(
            "endpointslice",
            Namespaced,
            none,
            none,
            Arc::new(endpoints::EndpointSliceOps),
        ),
        // events.k8s.io/v1
        def::<events::Event>(
            "event",
            Namespaced,
            &["ev"],
            none,
            Arc::new(event::EventsV1Ops),
        )
        .stored_as("core", "events", Arc::new(event::EventsV1Conversion)),
        // networking.k8s.io/v1
        def::<networking::IngressClass>(
            "ingressclass",
            Cluster,
            none,
            none,
            Arc::new(ingressclass::IngressClassOps),
        ),
        def::<networking::Ingress>(
            "ingress",
            Namespaced,
            &["ing"],
            none,
            Arc::new(ingress::IngressOps),
        )
        .status(),
        def::<networking::NetworkPolicy>(
            "networkpolicy",
            Namespaced,
            &["netpol"],
            none,
            Arc::new(networkpolicy::NetworkPolicyOps),
        ),
        // policy/v1
        def::<policy::PodDisruptionBudget>(
            "poddisruptionbudget",
            Namespaced,
            &["pdb"],
            none,
            Arc::new(poddisruptionbudget::PodDisruptionBudgetOps),
        )
        .status(),
        // rbac.authorization.k8s.io/v1
        def::<rbac::ClusterRoleBinding>(
            "clusterrolebinding",
            Cluster,
            none,
            none,
            Arc::new(rolebinding::ClusterRoleBindingOps),
        ),
        def::<rbac::ClusterRole>(
            "clusterrole",
            Cluster,
            none,
            none,
            Arc::new(role::ClusterRoleOps),
        ),
        def::<rbac::RoleBinding>(
            "rolebinding",
            Namespaced,
            none,
            none,
            Arc::new(rolebinding::RoleBindingOps),
        ),
        def::<rbac::Role>("role", Namespaced, none, none, Arc::new(role::RoleOps)),
        // scheduling.k8s.io/v1
        def::<scheduling::PriorityClass>(
            "priorityclass",
            Cluster,
            &["pc"],
            none,
            Arc::new(priorityclass::PriorityClassOps),
        ),
        // storage.k8s.io/v1
        def::<storage::StorageClass>(
            "storageclass",
            Cluster,
            &["sc"],
            none,
            Arc::new(storageclass::StorageClassOps),
        ),
    ];
    defs.into_iter().map(|d| d.def).collect()
}
