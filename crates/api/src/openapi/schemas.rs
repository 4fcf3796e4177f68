//! Where the JSON schema of each kind comes from: a map from group/version/kind to a schemars
//! generator function. The built-in kinds use k8s-openapi's `JsonSchema` impls, which name their
//! definitions as upstream does (`io.k8s.api.apps.v1.Deployment`); kinds added at run time can
//! register their own function.

use std::collections::HashMap;

use k8s_openapi::Resource;
use schemars::{JsonSchema, Schema, SchemaGenerator};

/// Generates the schema of one kind into `generator` and returns the reference to it
/// (`{"$ref": "#/components/schemas/<name>"}`), as [`SchemaGenerator::subschema_for`] does.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A group/version/kind triple (core group is `""`).
pub type Gvk = (String, String, String);

/// The schema source of every kind the OpenAPI documents describe.
#[derive(Clone, Default)]
pub struct KindSchemas {
    by_gvk: HashMap<Gvk, SchemaFn>,
}

fn subschema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

impl KindSchemas {
    /// Registers `T` under its own group, version and kind.
    pub fn insert<T: JsonSchema + Resource>(&mut self) {
        self.insert_fn(T::GROUP, T::VERSION, T::KIND, subschema::<T>);
    }

    /// Registers a generator function for a kind.
    pub fn insert_fn(&mut self, group: &str, version: &str, kind: &str, f: SchemaFn) {
        self.by_gvk.insert(
            (group.to_string(), version.to_string(), kind.to_string()),
            f,
        );
    }

    pub fn get(&self, group: &str, version: &str, kind: &str) -> Option<SchemaFn> {
        self.by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .copied()
    }

    /// The kinds of Kubernetes 1.33 that the built-in registry serves, plus the kinds their
    /// subresources speak (`Scale`, `Binding`, `Eviction`, `TokenRequest`).
    pub fn builtin() -> Self {
        use k8s_openapi::api::{
            apps::v1 as apps, authentication::v1 as authentication,
            autoscaling::v1 as autoscaling1, autoscaling::v2 as autoscaling2, batch::v1 as batch,
            coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
            events::v1 as events, networking::v1 as networking, policy::v1 as policy,
            rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
        };
        let mut s = KindSchemas::default();
        s.insert::<core::Binding>();
        s.insert::<core::ConfigMap>();
        s.insert::<core::Endpoints>();
        s.insert::<core::Event>();
        s.insert::<core::LimitRange>();
        s.insert::<core::Namespace>();
        s.insert::<core::Node>();
        s.insert::<core::PersistentVolume>();
        s.insert::<core::PersistentVolumeClaim>();
        s.insert::<core::Pod>();
        s.insert::<core::PodTemplate>();
        s.insert::<core::ReplicationController>();
        s.insert::<core::ResourceQuota>();
        s.insert::<core::Secret>();
        s.insert::<core::Service>();
        s.insert::<core::ServiceAccount>();
        s.insert::<apps::ControllerRevision>();
        s.insert::<apps::DaemonSet>();
        s.insert::<apps::Deployment>();
        s.insert::<apps::ReplicaSet>();
        s.insert::<apps::StatefulSet>();
        s.insert::<authentication::TokenRequest>();
        s.insert::<autoscaling1::Scale>();
        s.insert::<autoscaling2::HorizontalPodAutoscaler>();
        s.insert::<batch::CronJob>();
        s.insert::<batch::Job>();
        s.insert::<coordination::Lease>();
        s.insert::<discovery::EndpointSlice>();
        s.insert::<events::Event>();
        s.insert::<networking::Ingress>();
        s.insert::<networking::IngressClass>();
        s.insert::<networking::NetworkPolicy>();
        s.insert::<policy::Eviction>();
        s.insert::<policy::PodDisruptionBudget>();
        s.insert::<rbac::ClusterRole>();
        s.insert::<rbac::ClusterRoleBinding>();
        s.insert::<rbac::Role>();
        s.insert::<rbac::RoleBinding>();
        s.insert::<scheduling::PriorityClass>();
        s.insert::<storage::StorageClass>();
        s
    }
}
