//! Events in both APIs: `core/v1` Event and `events.k8s.io/v1` Event are the same objects seen
//! through different field names. Validation follows kube-apiserver's rules for old-style
//! (no `eventTime`) and new-style events; both share the `kubectl get events` columns and the
//! `involvedObject.*` (core) / `regarding.*` (events.k8s.io) field selectors.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use serde_json::{json, Map, Value};

use super::util::{self, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Event.
pub struct CoreEventOps;

/// Behaviour of `events.k8s.io/v1` Event.
pub struct EventsV1Ops;

/// Field names of the two APIs that name the same thing: (events.k8s.io, core).
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

/// An `events.k8s.io/v1` Event in `core/v1` field names.
pub fn to_core(ev: &Value) -> Value {
    let mut out = Map::new();
    if let Some(m) = ev.as_object() {
        for (k, v) in m {
            let key = RENAMES
                .iter()
                .find(|(new, _)| new == k)
                .map(|(_, old)| *old)
                .unwrap_or(k.as_str());
            out.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

fn columns() -> Vec<Column> {
    vec![
        Column::new(
            "Last Seen",
            "string",
            "",
            0,
            "When the event was last observed.",
        ),
        Column::new("Type", "string", "", 0, "Normal or Warning."),
        Column::new(
            "Reason",
            "string",
            "",
            0,
            "Why the event happened, in CamelCase.",
        ),
        Column::new("Object", "string", "", 0, "The object the event is about."),
        Column::new(
            "Subobject",
            "string",
            "",
            1,
            "The part of the object the event is about.",
        ),
        Column::new(
            "Source",
            "string",
            "",
            1,
            "The component that reported the event.",
        ),
        Column::new("Message", "string", "", 0, "What happened, for humans."),
        Column::new(
            "First Seen",
            "string",
            "",
            1,
            "When the event was first observed.",
        ),
        Column::new(
            "Count",
            "string",
            "",
            1,
            "How many times the event was observed.",
        ),
        Column::new("Name", "string", "name", 1, "The event object's name."),
    ]
}

/// The row of a core-shaped event.
fn row(ev: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let first = if util::parse_time(ev.get("firstTimestamp")).is_some() {
        util::since(ev.get("firstTimestamp"), now)
    } else {
        util::since(ev.get("eventTime"), now)
    };
    let mut last = if util::parse_time(ev.get("lastTimestamp")).is_some() {
        util::since(ev.get("lastTimestamp"), now)
    } else {
        first.clone()
    };
    let mut count = util::int(ev, "count");
    if let Some(series) = ev.get("series").filter(|s| s.is_object()) {
        last = util::since(series.get("lastObservedTime"), now);
        count = util::int(series, "count");
    } else if count == 0 {
        count = 1;
    }
    let inv = &ev["involvedObject"];
    let kind = s(inv, "kind").to_lowercase();
    let target = if s(inv, "name").is_empty() {
        kind
    } else {
        format!("{kind}/{}", s(inv, "name"))
    };
    let first_non_empty = |a: &str, b: &str| {
        if a.is_empty() {
            b.to_string()
        } else {
            a.to_string()
        }
    };
    let component = first_non_empty(s(&ev["source"], "component"), s(ev, "reportingComponent"));
    let instance = first_non_empty(s(&ev["source"], "host"), s(ev, "reportingInstance"));
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(s(ev, "type")),
        json!(s(ev, "reason")),
        json!(target),
        json!(s(inv, "fieldPath")),
        json!(source),
        json!(s(ev, "message").trim()),
        json!(first),
        json!(count),
        json!(crate::meta::name(ev)),
    ]
}

/// A field of a core-shaped event (`involvedObject.*` spelled `prefix.*`).
fn field(ev: &Value, path: &str, prefix: &str, reporting: &str, source: &str) -> Option<String> {
    if let Some(sub) = path.strip_prefix(prefix).and_then(|p| p.strip_prefix('.')) {
        return match sub {
            "kind" | "namespace" | "name" | "uid" | "apiVersion" | "resourceVersion"
            | "fieldPath" => Some(s(&ev["involvedObject"], sub).to_string()),
            _ => None,
        };
    }
    if path == reporting {
        return Some(s(ev, "reportingComponent").to_string());
    }
    if path == source {
        let c = s(&ev["source"], "component");
        return Some(
            if c.is_empty() {
                s(ev, "reportingComponent")
            } else {
                c
            }
            .to_string(),
        );
    }
    match path {
        "reason" | "type" => Some(s(ev, path).to_string()),
        _ => None,
    }
}

/// Path names of the API being validated.
struct Names {
    namespace: &'static str,
    reporting: &'static str,
    message: &'static str,
}

/// kube-apiserver's event validation, on a core-shaped event.
fn validate(
    ev: &Value,
    original: &Value,
    names: Names,
    require_event_time: bool,
) -> Vec<FieldError> {
    let mut errs = validation::validate_object_meta(original, true, false);
    let ns = crate::meta::namespace(ev).unwrap_or("");
    let inv_ns = s(&ev["involvedObject"], "namespace");
    let new_style = util::parse_time(ev.get("eventTime")).is_some();
    if require_event_time && !new_style {
        errs.push(FieldError::required("eventTime", ""));
    }
    let mismatch = if new_style {
        inv_ns.is_empty() && ns != "default" && ns != "kube-system"
    } else if inv_ns.is_empty() {
        !ns.is_empty() && ns != "default"
    } else {
        ns != inv_ns
    };
    if mismatch || (new_style && !inv_ns.is_empty() && ns != inv_ns) {
        errs.push(FieldError::invalid(
            names.namespace,
            &json!(inv_ns),
            "does not match event.namespace",
        ));
    }
    if new_style {
        let reporting = s(ev, "reportingComponent");
        if reporting.is_empty() {
            errs.push(FieldError::required(names.reporting, ""));
        } else if !validation::is_qualified_name(reporting) {
            errs.push(FieldError::invalid(
                names.reporting,
                &json!(reporting),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
        for (key, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = s(ev, key);
            if v.is_empty() {
                errs.push(FieldError::required(key, ""));
            } else if v.len() > limit {
                errs.push(FieldError::invalid(
                    key,
                    &json!(v),
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        let ty = s(ev, "type");
        if ty != "Normal" && ty != "Warning" {
            errs.push(FieldError::invalid(
                "type",
                &json!(ty),
                "has invalid value, should be one of: Normal, Warning",
            ));
        }
        let msg = s(ev, "message");
        if msg.len() > 1024 {
            errs.push(FieldError::invalid(
                names.message,
                &json!(msg),
                "can have at most 1024 characters",
            ));
        }
    }
    errs
}

impl KindOps for CoreEventOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Event>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let names = Names {
            namespace: "involvedObject.namespace",
            reporting: "reportingComponent",
            message: "message",
        };
        validate(obj, obj, names, false)
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        field(obj, path, "involvedObject", "reportingComponent", "source")
    }

    fn table_columns(&self) -> Vec<Column> {
        columns()
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        row(obj, now)
    }
}

impl KindOps for EventsV1Ops {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<events::Event>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let names = Names {
            namespace: "regarding.namespace",
            reporting: "reportingController",
            message: "note",
        };
        validate(&to_core(obj), obj, names, true)
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        field(
            &to_core(obj),
            path,
            "regarding",
            "reportingController",
            "deprecatedSource",
        )
    }

    fn table_columns(&self) -> Vec<Column> {
        columns()
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        row(&to_core(obj), now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn core_event() -> Value {
        json!({"metadata": {"name": "web.1", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1",
                                  "apiVersion": "v1", "fieldPath": "spec.containers{nginx}"},
               "reason": "Pulled", "message": "Successfully pulled image \"nginx\" ",
               "source": {"component": "kubelet", "host": "node-1"},
               "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:09:00Z",
               "count": 3, "type": "Normal"})
    }

    #[test]
    fn core_event_row() {
        let row = CoreEventOps.table_row(&core_event(), now());
        assert_eq!(
            row,
            vec![
                json!("60s"),
                json!("Normal"),
                json!("Pulled"),
                json!("pod/web"),
                json!("spec.containers{nginx}"),
                json!("kubelet, node-1"),
                json!("Successfully pulled image \"nginx\""),
                json!("10m"),
                json!(3),
                json!("web.1")
            ]
        );
        assert_eq!(row.len(), CoreEventOps.table_columns().len());
    }

    #[test]
    fn new_style_events_use_event_time_and_series() {
        let ev = json!({"metadata": {"name": "e", "namespace": "default"},
            "regarding": {"kind": "Node", "name": "n1"}, "reason": "Starting", "note": "hi",
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "navarch.io/agent",
            "reportingInstance": "n1", "action": "Start", "type": "Normal",
            "series": {"count": 7, "lastObservedTime": "2026-01-01T00:09:30.000000Z"}});
        let row = EventsV1Ops.table_row(&ev, now());
        assert_eq!(
            &row[..4],
            &[
                json!("30s"),
                json!("Normal"),
                json!("Starting"),
                json!("node/n1")
            ]
        );
        assert_eq!(row[5], json!("navarch.io/agent, n1"));
        assert_eq!(row[7], json!("10m"));
        assert_eq!(row[8], json!(7));
        assert!(
            EventsV1Ops.validate(&ev, None).is_empty(),
            "{:?}",
            EventsV1Ops.validate(&ev, None)
        );
        assert_eq!(
            EventsV1Ops.field(&ev, "regarding.name").as_deref(),
            Some("n1")
        );
        assert_eq!(
            EventsV1Ops.field(&ev, "reportingController").as_deref(),
            Some("navarch.io/agent")
        );
        assert_eq!(EventsV1Ops.field(&ev, "involvedObject.name"), None);
    }

    #[test]
    fn field_selectors() {
        let ev = core_event();
        for (path, want) in [
            ("involvedObject.kind", "Pod"),
            ("involvedObject.uid", "u1"),
            ("involvedObject.namespace", "default"),
            ("involvedObject.resourceVersion", ""),
            ("reason", "Pulled"),
            ("source", "kubelet"),
            ("type", "Normal"),
            ("reportingComponent", ""),
        ] {
            assert_eq!(
                CoreEventOps.field(&ev, path).as_deref(),
                Some(want),
                "{path}"
            );
        }
        assert_eq!(CoreEventOps.field(&ev, "involvedObject.color"), None);
        assert_eq!(CoreEventOps.field(&ev, "message"), None);
        assert!(CoreEventOps
            .field(&json!({}), "involvedObject.uid")
            .is_some());
    }

    #[test]
    fn validation_checks_namespaces_and_new_style_fields() {
        assert!(CoreEventOps.validate(&core_event(), None).is_empty());
        let mut ev = core_event();
        ev["involvedObject"]["namespace"] = json!("other");
        let errs = CoreEventOps.validate(&ev, None);
        assert_eq!(
            errs[0].message,
            "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"
        );
        let mut ev = core_event();
        ev["eventTime"] = json!("2026-01-01T00:00:00.000000Z");
        let fields: Vec<String> = CoreEventOps
            .validate(&ev, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec!["reportingComponent", "reportingInstance", "action"]
        );
        let ev = json!({"metadata": {"name": "e", "namespace": "default"}, "reason": "X", "type": "Normal"});
        assert_eq!(EventsV1Ops.validate(&ev, None)[0].field, "eventTime");
    }
}
