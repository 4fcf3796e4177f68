//! The Deployment controller: a Deployment's pod template becomes a ReplicaSet named
//! `<deployment>-<pod-template-hash>`, and a change of template rolls out by moving replicas
//! from the old ReplicaSets to the new one (RollingUpdate within maxSurge/maxUnavailable, or
//! Recreate), recording revisions so that `kubectl rollout undo` can return to an old one.
//!
//! [`sync::plan`] decides one sync (pure, unit-tested against fixtures); the strategies are
//! [`rolling`] and [`recreate`], status and conditions [`progress`], shared arithmetic and
//! annotations [`util`]. [`run`] watches Deployments, ReplicaSets and pod deletions (which
//! Recreate waits for), and performs the planned actions in order, stopping at the first
//! failure; failures requeue with per-key exponential back-off.

pub mod progress;
pub mod recreate;
pub mod rolling;
pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{future, StreamExt};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::events::Recorder;
use crate::retry::Retry;
use sync::Action;

/// The component name on Events, as upstream's.
pub const COMPONENT: &str = "deployment-controller";

struct Context {
    client: Client,
    sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    recorder: Recorder,
    /// Consecutive failures per `namespace/name`, for the back-off.
    retry: Retry,
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    let (set_store, set_writer) = reflector::store();
    let set_events = reflector::reflector(
        set_writer,
        watcher(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let (pod_store, pod_writer) = reflector::store();
    let pod_deletions = reflector::reflector(
        pod_writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .filter_map(|event| {
        future::ready(match event {
            Ok(watcher::Event::Delete(pod)) => Some(Ok(pod)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
    });
    let controller = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let sets_for_pods = set_store.clone();
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), COMPONENT),
        client,
        sets: set_store,
        pods: pod_store,
        retry: Retry::controller_default(),
    });
    controller
        .watches_stream(set_events, move |rs: ReplicaSet| {
            deployments_of(&rs, &deployments)
        })
        .watches_stream(pod_deletions, move |pod: Pod| {
            deployment_of_pod(&pod, &sets_for_pods)
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "deployment reconcile failed");
            }
            future::ready(())
        })
        .await;
}

/// The Deployments a ReplicaSet event concerns: its controller if that is a Deployment;
/// for an orphan, every Deployment of its namespace whose selector matches it.
fn deployments_of(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    match sync::controller_of(rs) {
        Some(r) if r.kind == "Deployment" => vec![ObjectRef::new(&r.name).within(&ns)],
        Some(_) => vec![],
        None => deployments
            .state()
            .iter()
            .filter(|d| d.namespace().as_deref() == Some(&ns))
            .filter(|d| sync::selector_of(d).is_some_and(|s| s.matches(rs.labels())))
            .map(|d| ObjectRef::from_obj(&**d))
            .collect(),
    }
}

/// The Deployment whose ReplicaSet controlled a deleted pod.
fn deployment_of_pod(pod: &Pod, sets: &Store<ReplicaSet>) -> Option<ObjectRef<Deployment>> {
    let owner = crate::pods::controller_ref(pod).filter(|r| r.kind == "ReplicaSet")?;
    let ns = pod.namespace()?;
    let rs = sets.get(&ObjectRef::new(&owner.name).within(&ns))?;
    let d = sync::controller_of(&rs).filter(|r| r.kind == "Deployment")?;
    Some(ObjectRef::new(&d.name).within(&ns))
}

fn key(d: &Deployment) -> String {
    format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any())
}

/// Upstream's per-item rate limit: 5 ms doubling per consecutive failure, at most 1000 s.
fn error_policy(d: Arc<Deployment>, _error: &Error, ctx: Arc<Context>) -> Requeue {
    Requeue::requeue(ctx.retry.failed(&key(&d)))
}

#[tracing::instrument(skip_all, fields(deployment.namespace, deployment.name))]
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Requeue> {
    let ns = d
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = d.name_any();
    tracing::Span::current()
        .record("deployment.namespace", ns.as_str())
        .record("deployment.name", name.as_str());
    // An empty cache before the first list would read as "no ReplicaSets: create one".
    let _ = ctx.sets.wait_until_ready().await;
    let _ = ctx.pods.wait_until_ready().await;
    let sets: Vec<ReplicaSet> = ctx
        .sets
        .state()
        .iter()
        .filter(|rs| rs.metadata.namespace.as_deref() == Some(&ns))
        .map(|rs| (**rs).clone())
        .collect();
    let pods: Vec<Pod> = if util::is_rolling_update(&d) {
        Vec::new()
    } else {
        ctx.pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(&ns))
            .map(|p| (**p).clone())
            .collect()
    };
    let plan = sync::plan(&d, &sets, &pods, jiff::Timestamp::now());
    let outcome = Executor {
        ctx: &ctx,
        d: &d,
        ns: &ns,
        versions: HashMap::new(),
        deployment_version: d.metadata.resource_version.clone(),
        adoption_checked: false,
    }
    .execute(plan.actions)
    .await?;
    ctx.retry.succeeded(&key(&d));
    Ok(match (outcome, plan.requeue_after) {
        (Some(requeue), _) => requeue,
        (None, Some(after)) => Requeue::requeue(after),
        (None, None) => Requeue::await_change(),
    })
}

/// Performs one plan's actions, carrying resourceVersions from one write to the next.
struct Executor<'a> {
    ctx: &'a Context,
    d: &'a Deployment,
    ns: &'a str,
    /// resourceVersions of ReplicaSets written during this sync.
    versions: HashMap<String, String>,
    deployment_version: Option<String>,
    adoption_checked: bool,
}

impl Executor<'_> {
    /// Run the actions in order; `Some` when the sync stopped early and says when to retry.
    async fn execute(mut self, actions: Vec<Action>) -> Result<Option<Requeue>> {
        for action in actions {
            if let Some(stop) = self.perform(action).await? {
                return Ok(Some(stop));
            }
        }
        Ok(None)
    }

    fn sets(&self) -> Api<ReplicaSet> {
        Api::namespaced(self.ctx.client.clone(), self.ns)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.ctx.client.clone(), self.ns)
    }

    async fn perform(&mut self, action: Action) -> Result<Option<Requeue>> {
        match action {
            Action::Adopt { name } => {
                // Adopt only for a Deployment that still exists and is not being deleted,
                // read fresh: the cache may be behind a deletion.
                if !self.adoption_checked {
                    let fresh = self.deployments().get_opt(&self.d.name_any()).await?;
                    let live = fresh.is_some_and(|f| {
                        f.metadata.uid == self.d.metadata.uid
                            && f.metadata.deletion_timestamp.is_none()
                    });
                    if !live {
                        return Ok(Some(Requeue::await_change()));
                    }
                    self.adoption_checked = true;
                }
                let Some(rs) = self.cached(&name) else {
                    return Ok(None);
                };
                let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
                refs.push(self.owner_ref());
                self.patch_owners(&rs, json!(refs)).await?;
            }
            Action::Release { name } => {
                let Some(rs) = self.cached(&name) else {
                    return Ok(None);
                };
                let uid = self.d.metadata.uid.clone().unwrap_or_default();
                let refs: Vec<_> = rs
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|r| r.uid != uid)
                    .collect();
                let refs = if refs.is_empty() {
                    json!(null)
                } else {
                    json!(refs)
                };
                self.patch_owners(&rs, refs).await?;
            }
            Action::Create { rs } => {
                let name = rs.name_any();
                match self.sets().create(&PostParams::default(), &rs).await {
                    Ok(created) => {
                        self.versions
                            .insert(name, created.resource_version().unwrap_or_default());
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        return self.name_taken(&name).await;
                    }
                    Err(e) => {
                        let message = format!("Failed to create new replica set {name:?}: {e}");
                        self.event("Warning", "ReplicaSetCreateError", &message)
                            .await;
                        return Err(e.into());
                    }
                }
            }
            Action::Update { rs } => {
                let mut rs = *rs;
                let name = rs.name_any();
                if let Some(v) = self.versions.get(&name) {
                    rs.metadata.resource_version = Some(v.clone());
                }
                let updated = self
                    .sets()
                    .replace(&name, &PostParams::default(), &rs)
                    .await?;
                self.versions
                    .insert(name, updated.resource_version().unwrap_or_default());
            }
            Action::Delete { name, uid } => {
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(uid),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self.sets().delete(&name, &params).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Action::SetRevision { revision } => {
                let patch = json!({"metadata": {"annotations": {util::REVISION: revision}}});
                let updated = self
                    .deployments()
                    .patch(
                        &self.d.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(patch),
                    )
                    .await?;
                self.deployment_version = updated.metadata.resource_version;
            }
            Action::UpdateStatus { status } => self.write_status(*status).await?,
            Action::Event {
                type_,
                reason,
                message,
            } => self.event(type_, reason, &message).await,
        }
        Ok(None)
    }

    fn cached(&self, name: &str) -> Option<Arc<ReplicaSet>> {
        self.ctx.sets.get(&ObjectRef::new(name).within(self.ns))
    }

    fn owner_ref(&self) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: self.d.name_any(),
            uid: self.d.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    async fn patch_owners(&mut self, rs: &ReplicaSet, refs: serde_json::Value) -> Result<()> {
        let patch = json!({"metadata": {
            "ownerReferences": refs,
            "uid": rs.metadata.uid,
            "resourceVersion": rs.metadata.resource_version,
        }});
        match self
            .sets()
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(patch),
            )
            .await
        {
            Ok(updated) => {
                self.versions.insert(
                    rs.name_any(),
                    updated.resource_version().unwrap_or_default(),
                );
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creating the new ReplicaSet found its name taken. If it is ours with this template
    /// the cache is merely behind; otherwise it is a hash collision: count it, so that the
    /// next sync hashes to another name.
    async fn name_taken(&mut self, name: &str) -> Result<Option<Requeue>> {
        let existing = self.sets().get_opt(name).await?;
        let template = self
            .d
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let ours = existing.as_ref().is_some_and(|rs| {
            sync::controller_of(rs).map(|r| r.uid.as_str()) == self.d.metadata.uid.as_deref()
                && rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &template))
        });
        if ours {
            return Ok(Some(Requeue::requeue(Duration::from_millis(100))));
        }
        let mut status = self.d.status.clone().unwrap_or_default();
        status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
        self.write_status(status).await?;
        tracing::info!(replicaset.name = name, "pod-template-hash collision");
        Ok(Some(Requeue::requeue(Duration::from_millis(5))))
    }

    async fn write_status(&mut self, status: DeploymentStatus) -> Result<()> {
        let mut d = self.d.clone();
        d.metadata.resource_version = self.deployment_version.clone();
        d.status = Some(status);
        let updated = self
            .deployments()
            .replace_status(&self.d.name_any(), &PostParams::default(), &d)
            .await?;
        self.deployment_version = updated.metadata.resource_version;
        Ok(())
    }

    async fn event(&self, type_: &str, reason: &str, message: &str) {
        let regarding = ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("Deployment".into()),
            name: Some(self.d.name_any()),
            namespace: Some(self.ns.to_string()),
            uid: self.d.metadata.uid.clone(),
            resource_version: self.d.metadata.resource_version.clone(),
            field_path: None,
        };
        self.ctx
            .recorder
            .record(regarding, type_, reason, message)
            .await;
    }
}
