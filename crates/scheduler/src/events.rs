//! Scheduling events as kube-scheduler records them: `Scheduled` (action `Binding`) and
//! `FailedScheduling` (action `Scheduling`) about a pod, `Preempted` about a victim, reported by
//! the scheduler's name. They are written as `core/v1` Events (source and reporting component
//! both the scheduler's name), which is what `kubectl describe` lists; a repeat of the last event
//! about a pod bumps its `count` and `lastTimestamp` instead of creating another object, like
//! client-go's event correlator.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::snapshot::pod_key;

/// Whether an event reports something normal or a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

struct Last {
    reason: String,
    note: String,
    name: String,
    count: i32,
}

/// Records events about pods; one writer (the scheduler loop), writes happen in spawned tasks.
/// Each event is reported by the scheduler name of the pod it is about (or, for a victim, of
/// its preemptor), as each upstream profile has its own recorder.
#[derive(Default)]
pub struct Recorder {
    host: String,
    last: HashMap<String, Last>,
    sequence: u64,
}

impl Recorder {
    pub fn new() -> Self {
        Recorder {
            host: std::env::var("HOSTNAME").unwrap_or_else(|_| "navarch".into()),
            last: HashMap::new(),
            sequence: 0,
        }
    }

    /// Forgets the series state of a pod (bound or deleted).
    pub fn forget(&mut self, pod_key: &str) {
        self.last.remove(pod_key);
    }

    /// Emits an event about `pod`. Failures are logged, never returned: events are best effort.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        client: &kube::Client,
        controller: &str,
        pod: &Pod,
        kind: Kind,
        reason: &str,
        action: &str,
        note: &str,
    ) {
        let key = pod_key(pod);
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(client.clone(), &ns);
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        if let Some(last) = self
            .last
            .get_mut(&key)
            .filter(|l| l.reason == reason && l.note == note)
        {
            last.count += 1;
            let patch = serde_json::json!({"count": last.count, "lastTimestamp": now});
            let name = last.name.clone();
            tokio::spawn(async move {
                if let Err(e) = api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                    .await
                {
                    tracing::debug!(error = %e, "event series not updated");
                }
            });
            return;
        }
        self.sequence += 1;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let nanos = k8s_openapi::jiff::Timestamp::now().as_nanosecond();
        let name = format!("{pod_name}.{:x}", nanos as u128 + u128::from(self.sequence));
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            action: Some(action.to_string()),
            reason: Some(reason.to_string()),
            message: Some(note.to_string()),
            source: Some(EventSource {
                component: Some(controller.to_string()),
                host: None,
            }),
            type_: Some(
                match kind {
                    Kind::Normal => "Normal",
                    Kind::Warning => "Warning",
                }
                .into(),
            ),
            reporting_component: Some(controller.to_string()),
            reporting_instance: Some(format!("{controller}-{}", self.host)),
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name),
                namespace: Some(ns),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        self.last.insert(
            key,
            Last {
                reason: reason.to_string(),
                note: note.to_string(),
                name,
                count: 1,
            },
        );
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "event not recorded");
            }
        });
    }
}
