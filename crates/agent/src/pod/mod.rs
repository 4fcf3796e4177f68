//! Pods on a node: one task per pod ([`run`]) feeding a [`worker::PodWorker`] with the pod's
//! latest version and runtime events, and writing what it reports through [`PodApi`].
//!
//! The task syncs when the pod changes, when the runtime reports an event for one of its
//! containers, and when the worker asked to be woken (back-off end, probe). It writes the
//! status only when it differs from the last one written (or seen in the API), so a pod that
//! starts normally costs two writes. A pod being deleted is stopped within its grace period,
//! reported terminated, then deleted with grace period 0; a pod that disappears from the API
//! is killed and forgotten.

pub mod backoff;
pub mod dns;
pub mod env;
pub mod files;
pub mod grpc_health;
pub mod hook;
pub mod probe;
pub mod resources;
pub mod security;
pub mod status;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::worker::{PodWorker, WorkerContext};

/// Delay before retrying a failed status write or delete.
const API_RETRY: Duration = Duration::from_secs(1);

/// The two writes a pod worker makes.
#[async_trait]
pub trait PodApi: Send + Sync + 'static {
    /// Replace the pod's status (a merge patch of `pods/status`).
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error>;
    /// Delete the pod object with grace period 0, if it still has the same uid.
    async fn delete(&self, pod: &Pod) -> Result<(), kube::Error>;
}

/// [`PodApi`] over a kube client.
#[derive(Clone)]
pub struct KubePodApi {
    client: Client,
}

impl KubePodApi {
    pub fn new(client: Client) -> Self {
        KubePodApi { client }
    }

    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }
}

#[async_trait]
impl PodApi for KubePodApi {
    async fn write_status(&self, pod: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let patch = serde_json::json!({ "status": status });
        self.api(pod)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
    }

    async fn delete(&self, pod: &Pod) -> Result<(), kube::Error> {
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match self.api(pod).delete(name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// How a node talks to one pod's task.
#[derive(Debug, Clone)]
pub struct PodHandle {
    /// The pod's latest version; `None` once it is gone from the API.
    pub pod: watch::Sender<Option<Arc<Pod>>>,
    /// Notified when the runtime reports an event for the pod.
    pub poke: Arc<Notify>,
}

impl PodHandle {
    /// A handle and the receiving end for [`run`].
    pub fn new(pod: Arc<Pod>) -> (PodHandle, watch::Receiver<Option<Arc<Pod>>>) {
        let (tx, rx) = watch::channel(Some(pod));
        (
            PodHandle {
                pod: tx,
                poke: Arc::new(Notify::new()),
            },
            rx,
        )
    }
}

/// Drive one pod until it is gone from the API (or `cancel` fires, which leaves it alone).
pub async fn run(
    ctx: WorkerContext,
    api: Arc<dyn PodApi>,
    mut pods: watch::Receiver<Option<Arc<Pod>>>,
    poke: Arc<Notify>,
    cancel: CancellationToken,
) {
    let Some(first) = pods.borrow_and_update().clone() else {
        return;
    };
    let span = tracing::info_span!(
        "pod",
        pod.namespace = first.metadata.namespace.as_deref().unwrap_or_default(),
        pod.name = first.metadata.name.as_deref().unwrap_or_default(),
    );
    // Only a digest of the last status written is kept: thousands of pods per process.
    let mut written = first.status.as_ref().map(digest);
    let mut worker = PodWorker::new(ctx, first);
    let mut deleted = false;
    async move {
        loop {
            // Boxed: the task itself stays small while it waits (thousands of pods per
            // process); the sync's state exists only while it runs.
            let outcome = Box::pin(worker.sync()).await;
            let mut wake = outcome.wake_at;
            let mut status_current = true;
            if let Some(status) = outcome.status {
                let hash = digest(&status);
                if written != Some(hash) {
                    match api.write_status(worker.pod(), &status).await {
                        Ok(()) => written = Some(hash),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot write pod status");
                            status_current = false;
                            wake = Some(Instant::now() + API_RETRY);
                        }
                    }
                }
            }
            if outcome.delete_from_api && status_current && !deleted {
                match api.delete(worker.pod()).await {
                    Ok(()) => deleted = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot delete terminated pod");
                        wake = Some(Instant::now() + API_RETRY);
                    }
                }
            }
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                changed = pods.changed() => {
                    let latest = if changed.is_ok() {
                        pods.borrow_and_update().clone()
                    } else {
                        None
                    };
                    match latest {
                        Some(pod) => worker.update(pod),
                        None => {
                            Box::pin(worker.kill()).await;
                            return;
                        }
                    }
                }
                _ = poke.notified() => {}
                _ = sleep_until(wake) => {}
            }
        }
    }
    .instrument(span)
    .await
}

/// A digest of a status, to tell whether it changed.
fn digest(status: &PodStatus) -> [u8; 32] {
    use sha2::Digest;
    let bytes = serde_json::to_vec(status).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::json;

    use super::*;
    use crate::clock::Clock;
    use crate::pod::backoff::BackoffConfig;
    use crate::pod::resources::NodeResources;
    use crate::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
    use crate::runtime::Runtime;

    /// Records what the task asked of the API.
    #[derive(Default)]
    struct FakeApi {
        actions: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl PodApi for FakeApi {
        async fn write_status(&self, _: &Pod, status: &PodStatus) -> Result<(), kube::Error> {
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            self.actions.lock().unwrap().push(format!(
                "status {} ready={ready}",
                status.phase.as_deref().unwrap_or_default()
            ));
            Ok(())
        }

        async fn delete(&self, pod: &Pod) -> Result<(), kube::Error> {
            self.actions.lock().unwrap().push(format!(
                "delete uid={}",
                pod.metadata.uid.as_deref().unwrap_or_default()
            ));
            Ok(())
        }
    }

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_is_reported_once_running_then_terminated_and_deleted() {
        let clock = Clock::new();
        let runtime = SimulatedRuntime::new(
            SimulatedConfig {
                sandbox_startup: Duration::from_millis(200),
                pod_cidr: "10.42.1.0/24".parse().unwrap(),
            },
            clock,
        );
        let ctx = WorkerContext {
            runtime: Arc::new(runtime.clone()),
            clock,
            backoff: BackoffConfig::default(),
            host_ip: "172.30.0.1".parse().unwrap(),
            node: NodeResources::new("4", "8Gi"),
            config: None,
            files: None,
            dns: None,
        };
        let api = Arc::new(FakeApi::default());
        let (handle, receiver) = PodHandle::new(Arc::new(pod()));
        let task = tokio::spawn(run(
            ctx,
            api.clone(),
            receiver,
            handle.poke.clone(),
            CancellationToken::new(),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Echoes of the pod (e.g. our own status write) cause no further writes.
        handle.pod.send_replace(Some(Arc::new(pod())));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(*api.actions.lock().unwrap(), ["status Running ready=true"]);

        let mut deleting = pod();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now()),
        );
        deleting.metadata.deletion_grace_period_seconds = Some(30);
        handle.pod.send_replace(Some(Arc::new(deleting)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            *api.actions.lock().unwrap(),
            [
                "status Running ready=true",
                "status Succeeded ready=false",
                "delete uid=u-1"
            ]
        );
        // The API confirms the deletion: the task cleans up and ends.
        handle.pod.send_replace(None);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(runtime.list_pod_sandboxes().await.unwrap().is_empty());
    }
}
