//! The ReplicaSet controller: keeps `spec.replicas` pods matching the selector, owned by the
//! ReplicaSet, and reports how many exist, are fully labelled, ready and available.
//!
//! [`plan::plan`] decides (pure, unit-tested); [`run`] watches ReplicaSets and pods, keeps a
//! pod cache, and performs the planned actions. Pod creations go out in slow-start batches
//! (1, 2, 4, …) that stop at the first failure, as upstream's `slowStartBatch`, so a
//! misconfigured template produces one error, not hundreds.

pub mod plan;

use std::sync::Arc;
use std::time::Duration;

use futures::{future, StreamExt};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::SelectorExt;
use kube::runtime::controller::{Action as Requeue, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::pods;
use plan::Action;

struct Context {
    client: Client,
    pods: Store<Pod>,
    expectations: Expectations,
    events: Recorder,
}

impl Context {
    /// Record an Event about `rs` without waiting for it (events never slow a sync down).
    fn event(&self, rs: &ReplicaSet, type_: &'static str, reason: &'static str, message: String) {
        let recorder = self.events.clone();
        let regarding = ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("ReplicaSet".into()),
            name: rs.metadata.name.clone(),
            namespace: rs.metadata.namespace.clone(),
            uid: rs.metadata.uid.clone(),
            resource_version: rs.metadata.resource_version.clone(),
            ..Default::default()
        };
        tokio::spawn(async move {
            recorder.record(regarding, type_, reason, &message).await;
        });
    }
}

/// Run the controller until `shutdown` fires.
pub async fn run(client: Client, shutdown: CancellationToken) {
    // Failed reconciles retry per key with exponential back-off.
    let retry = std::sync::Arc::new(crate::retry::Retry::controller_default());
    let (pod_store, writer) = reflector::store();
    let pod_events = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let controller = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let ctx = Arc::new(Context {
        events: Recorder::new(client.clone(), "replicaset-controller"),
        client,
        pods: pod_store,
        expectations: Expectations::default(),
    });
    controller
        .watches_stream(pod_events, move |pod: Pod| owners_of(&pod, &sets))
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            crate::retry::reconciler(retry.clone(), reconcile),
            crate::retry::error_policy(retry),
            ctx,
        )
        .for_each(|result| {
            if let Err(error) = result {
                tracing::debug!(%error, "replicaset reconcile failed");
            }
            future::ready(())
        })
        .await;
}

/// The ReplicaSets a pod event concerns: its controller if that is a ReplicaSet, otherwise
/// (an orphan) every ReplicaSet in its namespace whose selector matches it.
fn owners_of(pod: &Pod, sets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match pods::controller_ref(pod) {
        Some(r) if r.kind == "ReplicaSet" => vec![ObjectRef::new(&r.name).within(&ns)],
        Some(_) => vec![],
        None => sets
            .state()
            .iter()
            .filter(|rs| rs.namespace().as_deref() == Some(&ns))
            .filter(|rs| plan::selector_of(rs).is_some_and(|s| s.matches(pod.labels())))
            .map(|rs| ObjectRef::from_obj(&**rs))
            .collect(),
    }
}

#[tracing::instrument(skip_all, fields(replicaset.namespace, replicaset.name))]
async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Context>) -> Result<Requeue> {
    let ns = rs
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = rs.name_any();
    tracing::Span::current()
        .record("replicaset.namespace", ns.as_str())
        .record("replicaset.name", name.as_str());
    // Until the first full list of pods arrives the cache is empty, which would read as
    // "create everything".
    let _ = ctx.pods.wait_until_ready().await;
    let key = format!("{ns}/{name}");
    let pods: Vec<Pod> = ctx
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(&ns))
        .map(|p| (**p).clone())
        .collect();
    let satisfied = ctx.expectations.satisfied(&key, |n| {
        pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(n) && p.metadata.deletion_timestamp.is_none()
        })
    });
    let plan = plan::plan(&rs, &pods, satisfied, jiff::Timestamp::now());
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    for action in plan.actions {
        match action {
            Action::Adopt { pod } => {
                let Some(p) = pods.iter().find(|p| p.name_any() == pod) else {
                    continue;
                };
                let mut refs = p.metadata.owner_references.clone().unwrap_or_default();
                refs.push(owner_ref(&rs)?);
                let patch = json!({"metadata": {
                    "ownerReferences": refs,
                    "uid": p.metadata.uid,
                    "resourceVersion": p.metadata.resource_version,
                }});
                ignore_gone(
                    pod_api
                        .patch(&pod, &PatchParams::default(), &Patch::Merge(patch))
                        .await,
                )?;
            }
            Action::Release { pod } => {
                let Some(p) = pods.iter().find(|p| p.name_any() == pod) else {
                    continue;
                };
                let uid = rs.metadata.uid.clone().unwrap_or_default();
                let refs: Vec<_> = p
                    .metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|r| r.uid != uid)
                    .collect();
                let patch = json!({"metadata": {
                    "ownerReferences": if refs.is_empty() { None } else { Some(refs) },
                    "uid": p.metadata.uid,
                    "resourceVersion": p.metadata.resource_version,
                }});
                ignore_gone(
                    pod_api
                        .patch(&pod, &PatchParams::default(), &Patch::Merge(patch))
                        .await,
                )?;
            }
            Action::Create { count } => create_pods(&ctx, &key, &rs, &pod_api, count).await?,
            Action::Delete { pods: names } => {
                let (pod_api, ctx, key, rs) = (&pod_api, &ctx, &key, &rs);
                let results = future::join_all(names.iter().map(|n| async move {
                    let r = ignore_gone(
                        pod_api
                            .delete(n, &DeleteParams::default())
                            .await
                            .map(|_| ()),
                    );
                    if r.is_ok() {
                        ctx.expectations.expect_deleted(key, n.clone());
                        ctx.event(
                            rs,
                            "Normal",
                            "SuccessfulDelete",
                            format!("Deleted pod: {n}"),
                        );
                    }
                    r
                }))
                .await;
                results.into_iter().collect::<Result<Vec<_>>>()?;
            }
            Action::DeleteDependents { pods: names } => {
                let background = DeleteParams::background();
                for n in &names {
                    ignore_gone(pod_api.delete(n, &background).await.map(|_| ()))?;
                }
                // Pod deletions trigger another sync that removes the finalizer.
            }
            Action::RemoveForegroundFinalizer => {
                let finalizers: Vec<&String> = rs
                    .metadata
                    .finalizers
                    .iter()
                    .flatten()
                    .filter(|f| *f != plan::FOREGROUND_DELETION)
                    .collect();
                let patch = json!({"metadata": {
                    "finalizers": finalizers,
                    "resourceVersion": rs.metadata.resource_version,
                }});
                ignore_gone(
                    Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
                        .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                        .map(|_| ()),
                )?;
                ctx.expectations.forget(&key);
            }
            Action::UpdateStatus { status } => {
                let mut updated = (*rs).clone();
                updated.status = Some(status);
                ignore_gone(
                    Api::<ReplicaSet>::namespaced(ctx.client.clone(), &ns)
                        .replace_status(&name, &PostParams::default(), &updated)
                        .await
                        .map(|_| ()),
                )?;
            }
        }
    }
    Ok(match plan.requeue_after {
        Some(after) => Requeue::requeue(after + Duration::from_millis(100)),
        None => Requeue::await_change(),
    })
}

/// Create `count` pods in batches of 1, 2, 4, … and stop at the first batch with a failure.
async fn create_pods(
    ctx: &Context,
    key: &str,
    rs: &ReplicaSet,
    api: &Api<Pod>,
    count: usize,
) -> Result<()> {
    let pod = pod_from_template(rs)?;
    let mut remaining = count;
    let params = PostParams::default();
    let mut batch = 1;
    while remaining > 0 {
        let n = batch.min(remaining);
        let results = future::join_all((0..n).map(|_| api.create(&params, &pod))).await;
        let mut first_error = None;
        for r in results {
            match r {
                Ok(created) => {
                    let name = created.name_any();
                    ctx.event(
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                    ctx.expectations.expect_created(key, name);
                }
                Err(e) => {
                    let why = match &e {
                        kube::Error::Api(status) => status.message.clone(),
                        other => other.to_string(),
                    };
                    ctx.event(
                        rs,
                        "Warning",
                        "FailedCreate",
                        format!("Error creating: {why}"),
                    );
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e.into());
        }
        remaining -= n;
        batch *= 2;
    }
    Ok(())
}

/// A pod from the ReplicaSet's template: `generateName: <rs>-`, the template's labels and
/// annotations, and this ReplicaSet as its controller.
pub fn pod_from_template(rs: &ReplicaSet) -> Result<Pod> {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .ok_or(Error::MissingField("spec.template"))?;
    let meta = template.metadata.unwrap_or_default();
    Ok(Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner_ref(rs)?]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    })
}

fn owner_ref(rs: &ReplicaSet) -> Result<OwnerReference> {
    Ok(OwnerReference {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        name: rs.name_any(),
        uid: rs
            .metadata
            .uid
            .clone()
            .ok_or(Error::MissingField("metadata.uid"))?,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// A 404 means someone else already did it (or the object went away): not an error.
fn ignore_gone<T: Default>(r: kube::Result<T>) -> Result<T> {
    match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(T::default()),
        other => Ok(other?),
    }
}
