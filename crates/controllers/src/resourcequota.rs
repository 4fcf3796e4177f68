//! The ResourceQuota controller: keeps each quota's `status.hard` (a copy of `spec.hard`) and
//! `status.used` current, counting what the namespace holds as the admission plugin does
//! (shared rules in [`navarch_api::quota`]): object counts (`pods`, `count/deployments.apps`,
//! …), the pods' compute requests and limits, claims' storage, NodePorts and LoadBalancers.
//! Pod scopes `Terminating`, `NotTerminating`, `BestEffort` and `NotBestEffort` are honoured.
//!
//! Quotas are recomputed when they change, when pods, services, claims, configmaps or secrets
//! of their namespace change, and every 30 s (which covers counts of any other kind).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{future, StreamExt};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ResourceQuota, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::{ApiResource, Discovery};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use navarch_api::quota;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Full recomputation period.
const RESYNC: Duration = Duration::from_secs(30);

/// Run until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    // Failed reconciles retry per key with exponential back-off.
    let retry = std::sync::Arc::new(crate::retry::Retry::controller_default());
    let controller = Controller::new(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    let in_namespace = |quotas: Store<ResourceQuota>| {
        move |ns: Option<String>| -> Vec<ObjectRef<ResourceQuota>> {
            quotas
                .state()
                .iter()
                .filter(|q| q.namespace() == ns)
                .map(|q| ObjectRef::from_obj(&**q))
                .collect()
        }
    };
    let (for_pods, for_services, for_claims, for_config_maps, for_secrets) = (
        in_namespace(quotas.clone()),
        in_namespace(quotas.clone()),
        in_namespace(quotas.clone()),
        in_namespace(quotas.clone()),
        in_namespace(quotas),
    );
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |p| for_pods(p.namespace()),
        )
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            move |s| for_services(s.namespace()),
        )
        .watches(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
            move |c| for_claims(c.namespace()),
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default(),
            move |c| for_config_maps(c.namespace()),
        )
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |s| for_secrets(s.namespace()),
        )
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            crate::retry::reconciler(retry.clone(), reconcile),
            crate::retry::error_policy(retry),
            Arc::new(client),
        )
        .for_each(|_| future::ready(()))
        .await;
}

/// The resource a quota name counts: (group, plural).
fn resource_of(name: &str) -> Option<(String, String)> {
    if let Some(rest) = name.strip_prefix("count/") {
        return Some(match rest.split_once('.') {
            Some((plural, group)) => (group.to_string(), plural.to_string()),
            None => (String::new(), rest.to_string()),
        });
    }
    let plural = match name {
        "pods" => "pods",
        "services" | "services.loadbalancers" | "services.nodeports" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "persistentvolumeclaims" | "requests.storage" => "persistentvolumeclaims",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        _ if quota::compute_resource(name).is_some() => "pods",
        _ => return None,
    };
    Some((String::new(), plural.to_string()))
}

/// Whether a pod falls within the quota's scopes.
pub fn in_scopes(scopes: &[String], pod: &Value) -> bool {
    let best_effort = ["containers", "initContainers"].iter().all(|list| {
        pod["spec"][list].as_array().into_iter().flatten().all(|c| {
            let empty = |k: &str| c["resources"][k].as_object().is_none_or(|m| m.is_empty());
            empty("requests") && empty("limits")
        })
    });
    let terminating = pod["spec"]["activeDeadlineSeconds"].is_i64();
    scopes.iter().all(|scope| match scope.as_str() {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort,
        "NotBestEffort" => !best_effort,
        _ => true,
    })
}

/// `status.used` for `hard`, given the namespace's objects per (group, plural).
pub fn compute_used(
    hard: &BTreeMap<String, Quantity>,
    scopes: &[String],
    objects: &BTreeMap<(String, String), Vec<Value>>,
) -> BTreeMap<String, Quantity> {
    let mut used = BTreeMap::new();
    for (name, limit) in hard {
        let Some((group, plural)) = resource_of(name) else {
            continue;
        };
        let all = objects
            .get(&(group.clone(), plural.clone()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let counted: Vec<&Value> = all
            .iter()
            .filter(|o| {
                !(group.is_empty() && plural == "pods")
                    || (quota::pod_counts(o) && in_scopes(scopes, o))
            })
            .collect();
        if let Some(v) = quota::usage(name, &group, &plural, &counted) {
            used.insert(name.clone(), Quantity(quota::format_quantity(v, &limit.0)));
        }
    }
    used
}

async fn reconcile(rq: Arc<ResourceQuota>, client: Arc<Client>) -> Result<Action> {
    let ns = rq
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let spec = rq.spec.clone().unwrap_or_default();
    let hard = spec.hard.unwrap_or_default();
    let scopes = spec.scopes.unwrap_or_default();
    let mut wanted: Vec<(String, String)> = hard.keys().filter_map(|n| resource_of(n)).collect();
    wanted.sort();
    wanted.dedup();
    let mut objects = BTreeMap::new();
    let mut discovery: Option<Discovery> = None;
    for (group, plural) in wanted {
        let resource = if group.is_empty() {
            Some(ApiResource {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: String::new(),
                plural: plural.clone(),
            })
        } else {
            if discovery.is_none() {
                discovery = Some(Discovery::new((*client).clone()).run().await?);
            }
            discovery
                .as_ref()
                .and_then(|d| d.groups().find(|g| g.name() == group))
                .and_then(|g| {
                    g.recommended_resources()
                        .into_iter()
                        .find(|(r, _)| r.plural == plural)
                })
                .map(|(r, _)| r)
        };
        let Some(resource) = resource else { continue };
        let api: Api<DynamicObject> = Api::namespaced_with((*client).clone(), &ns, &resource);
        let list = api.list(&ListParams::default()).await?;
        let values: Vec<Value> = list
            .items
            .iter()
            .map(|o| serde_json::to_value(o).unwrap_or_default())
            .collect();
        objects.insert((group, plural), values);
    }
    let used = compute_used(&hard, &scopes, &objects);
    let status = rq.status.clone().unwrap_or_default();
    if status.hard.as_ref() != Some(&hard) || status.used.as_ref() != Some(&used) {
        let api: Api<ResourceQuota> = Api::namespaced((*client).clone(), &ns);
        let patch = json!({"status": {"hard": hard, "used": used}});
        api.patch_status(
            &rq.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    #[test]
    fn used_counts_what_the_quota_names() {
        let hard: BTreeMap<String, Quantity> = [
            ("pods", "10"),
            ("requests.cpu", "2"),
            ("limits.memory", "1Gi"),
            ("services.nodeports", "5"),
            ("count/deployments.apps", "3"),
            ("unknown.example.com/thing", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), q(v)))
        .collect();
        let pod = |cpu: &str, phase: &str| {
            json!({"spec": {"containers": [{"resources": {
                "requests": {"cpu": cpu}, "limits": {"memory": "128Mi"}}}]},
                "status": {"phase": phase}})
        };
        let objects = BTreeMap::from([
            (
                (String::new(), "pods".to_string()),
                vec![
                    pod("500m", "Running"),
                    pod("250m", "Pending"),
                    pod("1", "Succeeded"),
                ],
            ),
            (
                (String::new(), "services".to_string()),
                vec![json!({"spec": {"type": "NodePort", "ports": [{"nodePort": 30000}]}})],
            ),
            (
                ("apps".to_string(), "deployments".to_string()),
                vec![json!({}), json!({})],
            ),
        ]);
        let used = compute_used(&hard, &[], &objects);
        let used: BTreeMap<&str, &str> = used
            .iter()
            .map(|(k, v)| (k.as_str(), v.0.as_str()))
            .collect();
        assert_eq!(
            used,
            BTreeMap::from([
                ("count/deployments.apps", "2"),
                ("limits.memory", "256Mi"),
                ("pods", "2"),
                ("requests.cpu", "750m"),
                ("services.nodeports", "1"),
            ])
        );
    }

    #[test]
    fn scopes_select_pods() {
        let best_effort = json!({"spec": {"containers": [{"name": "a"}]}});
        let burstable = json!({"spec": {"activeDeadlineSeconds": 30,
            "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(in_scopes(
            &s(&["BestEffort", "NotTerminating"]),
            &best_effort
        ));
        assert!(!in_scopes(&s(&["BestEffort"]), &burstable));
        assert!(in_scopes(&s(&["NotBestEffort", "Terminating"]), &burstable));
        assert!(in_scopes(&[], &burstable));
    }
}
