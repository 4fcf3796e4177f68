//! Events about objects, as `core/v1` Events (what upstream's controllers' recorders
//! write, and what `kubectl describe` shows). Each call creates one Event; recording is
//! best effort: a failure is logged, never fails a reconcile.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::Client;

/// Records Events on behalf of one component (`source.component`, `reportingComponent`).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Recorder {
        Recorder { client, component }
    }

    /// Record an Event of `type_` (`Normal` or `Warning`) about `regarding`.
    pub async fn record(
        &self,
        regarding: ObjectReference,
        type_: &str,
        reason: &str,
        message: &str,
    ) {
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let event = event(
            self.component,
            regarding,
            type_,
            reason,
            message,
            jiff::Timestamp::now(),
        );
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(%error, reason, "cannot record event");
        }
    }
}

/// The Event object: named `<object>.<hex nanoseconds>` like upstream's recorder.
pub fn event(
    component: &str,
    regarding: ObjectReference,
    type_: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
) -> Event {
    let name = format!(
        "{}.{:x}",
        regarding.name.as_deref().unwrap_or(component),
        now.as_nanosecond()
    );
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: regarding.namespace.clone(),
            ..Default::default()
        },
        involved_object: regarding,
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        reporting_component: Some(component.into()),
        reporting_instance: Some(String::new()),
        event_time: None::<MicroTime>,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_after_their_object_and_carry_the_source() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let e = event(
            "deployment-controller",
            ObjectReference {
                kind: Some("Deployment".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            "Normal",
            "ScalingReplicaSet",
            "Scaled up replica set web-abc from 0 to 3",
            now,
        );
        assert!(e.metadata.name.unwrap().starts_with("web."));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(
            e.source.unwrap().component.as_deref(),
            Some("deployment-controller")
        );
        assert_eq!(e.count, Some(1));
    }
}
