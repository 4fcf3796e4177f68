//! Events in both APIs: `core/v1` Event and `events.k8s.io/v1` Event are the same objects seen
//! through different field names. Validation follows kube-apiserver's rules for old-style
//! (no `eventTime`) and new-style events; both share the `kubectl get events` columns and the
//! `involvedObject.*` (core) / `regarding.*` (events.k8s.io) field selectors.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::events::v1 as events;
use serde_json::{json, Map, Value};

use super::util::{self, s};
use crate::registry::{Conversion, KindOps};
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Event.
pub struct CoreEventOps;

/// Behaviour of `events.k8s.io/v1` Event.
pub struct EventsV1Ops;

/// Field names of the two APIs that name the same thing: (events.k8s.io, core). Every other
/// field (`reason`, `type`, `action`, `eventTime`, `series`, `related`, `reportingInstance`)
/// has one name in both, as in kube-apiserver's `events/v1` conversion.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
    ("reportingController", "reportingComponent"),
];

const CORE_API_VERSION: &str = "v1";
const EVENTS_API_VERSION: &str = "events.k8s.io/v1";

/// Rename the top-level fields of an event; `to_core` picks the direction.
fn rename(ev: Value, to_core: bool) -> Value {
    let Value::Object(m) = ev else {
        return ev;
    };
    let mut out = Map::new();
    for (k, v) in m {
        let renamed = RENAMES.iter().find_map(|(new, old)| match to_core {
            true if *new == k => Some(*old),
            false if *old == k => Some(*new),
            _ => None,
        });
        out.insert(renamed.map(str::to_string).unwrap_or(k), v);
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in `core/v1` field names. `involvedObject` is required in
/// `core/v1` (typed clients fail without it), so a missing `regarding` becomes `{}`, as the
/// upstream conversion of an empty reference does.
pub fn to_core(ev: &Value) -> Value {
    let mut out = rename(ev.clone(), true);
    if let Some(m) = out.as_object_mut() {
        m.entry("involvedObject").or_insert_with(|| json!({}));
    }
    out
}

/// The conversion that lets `events.k8s.io/v1` serve the `core/v1` Event storage.
pub struct EventsV1Conversion;

fn set_type(obj: &mut Value, api_version: &str) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!("Event"));
    }
}

impl Conversion for EventsV1Conversion {
    fn to_storage(&self, obj: Value) -> Value {
        let mut out = rename(obj, true);
        if let Some(m) = out.as_object_mut() {
            m.entry("involvedObject").or_insert_with(|| json!({}));
        }
        set_type(&mut out, CORE_API_VERSION);
        out
    }

    fn to_served(&self, obj: Value) -> Value {
        let mut out = rename(obj, false);
        set_type(&mut out, EVENTS_API_VERSION);
        out
    }
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

/// A field of a core-shaped event for field selectors (`involvedObject.*` spelled `prefix.*`,
/// `reportingComponent` spelled `reporting`). Both APIs also select on `source`: the source
/// component, or the reporting controller when there is none.
fn field(ev: &Value, path: &str, prefix: &str, reporting: &str) -> Option<String> {
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
    if path == "source" {
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

/// What an update through `events.k8s.io/v1` may not change (kube-apiserver's
/// `ValidateEventUpdate`), in that API's names.
const IMMUTABLE_IN_EVENTS_V1: &[&str] = &[
    "regarding",
    "reason",
    "note",
    "deprecatedSource",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
    "type",
    "eventTime",
    "action",
    "related",
    "reportingController",
    "reportingInstance",
];

/// A series counts at least two occurrences and says when the last one was.
fn validate_series(ev: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(series) = ev.get("series").filter(|s| s.is_object()) {
        let count = series["count"].as_i64().unwrap_or(0);
        if count < 2 {
            errs.push(FieldError::invalid(
                "series.count",
                &json!(count),
                "should be at least 2",
            ));
        }
        if util::parse_time(series.get("lastObservedTime")).is_none() {
            errs.push(FieldError::required("series.lastObservedTime", ""));
        }
    }
    errs
}

/// A new event created through `events.k8s.io/v1` leaves the deprecated core fields unset.
fn deprecated_fields_set(ev: &Value) -> Vec<FieldError> {
    let source = &ev["deprecatedSource"];
    let set = [
        (
            "deprecatedFirstTimestamp",
            util::parse_time(ev.get("deprecatedFirstTimestamp")).is_some(),
        ),
        (
            "deprecatedLastTimestamp",
            util::parse_time(ev.get("deprecatedLastTimestamp")).is_some(),
        ),
        (
            "deprecatedCount",
            ev["deprecatedCount"].as_i64().unwrap_or(0) != 0,
        ),
        (
            "deprecatedSource",
            !s(source, "component").is_empty() || !s(source, "host").is_empty(),
        ),
    ];
    set.into_iter()
        .filter(|(_, set)| *set)
        .map(|(field, _)| FieldError::invalid(field, &json!(""), "needs to be unset"))
        .collect()
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
        field(obj, path, "involvedObject", "reportingComponent")
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

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let names = Names {
            namespace: "regarding.namespace",
            reporting: "reportingController",
            message: "note",
        };
        let ev = to_core(obj);
        let Some(old) = old else {
            let mut errs = validate(&ev, obj, names, true);
            errs.extend(validate_series(obj));
            errs.extend(deprecated_fields_set(obj));
            return errs;
        };
        // An update may be of an event written through core/v1 (no eventTime): only the
        // legacy rules, and nothing but the series (and metadata) may change.
        let mut errs = validate(&ev, obj, names, false);
        if obj.get("series") != old.get("series") {
            errs.extend(validate_series(obj));
        }
        for field in IMMUTABLE_IN_EVENTS_V1 {
            if obj.get(*field) != old.get(*field) {
                errs.push(FieldError::invalid(
                    *field,
                    obj.get(*field).unwrap_or(&Value::Null),
                    "field is immutable",
                ));
            }
        }
        errs
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        field(&to_core(obj), path, "regarding", "reportingController")
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

    fn events_v1_event() -> Value {
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default", "resourceVersion": "7"},
            "regarding": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u1"},
            "related": {"kind": "Node", "name": "n1"},
            "note": "pulled", "reason": "Pulled", "type": "Normal", "action": "Pull",
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "series": {"count": 4, "lastObservedTime": "2026-01-01T00:09:00.000000Z"},
            "reportingController": "kubelet", "reportingInstance": "node-1",
            "deprecatedSource": {"component": "kubelet", "host": "node-1"},
            "deprecatedFirstTimestamp": "2026-01-01T00:00:00Z",
            "deprecatedLastTimestamp": "2026-01-01T00:09:00Z",
            "deprecatedCount": 4})
    }

    #[test]
    fn events_v1_converts_to_core_field_by_field() {
        let core = EventsV1Conversion.to_storage(events_v1_event());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["kind"], "Event");
        assert_eq!(core["metadata"]["name"], "web.1");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["related"]["name"], "n1");
        assert_eq!(core["message"], "pulled");
        assert_eq!(core["reason"], "Pulled");
        assert_eq!(core["type"], "Normal");
        assert_eq!(core["action"], "Pull");
        assert_eq!(core["eventTime"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(core["series"]["count"], 4);
        assert_eq!(core["reportingComponent"], "kubelet");
        assert_eq!(core["reportingInstance"], "node-1");
        assert_eq!(core["source"]["host"], "node-1");
        assert_eq!(core["firstTimestamp"], "2026-01-01T00:00:00Z");
        assert_eq!(core["lastTimestamp"], "2026-01-01T00:09:00Z");
        assert_eq!(core["count"], 4);
        for gone in [
            "regarding",
            "note",
            "reportingController",
            "deprecatedSource",
            "deprecatedFirstTimestamp",
            "deprecatedLastTimestamp",
            "deprecatedCount",
        ] {
            assert!(core.get(gone).is_none(), "{gone}");
        }
        // The stored shape is a valid core/v1 Event.
        assert_eq!(CoreEventOps.normalize(core.clone()).unwrap(), core);
    }

    #[test]
    fn conversion_round_trips_both_ways() {
        let ev = events_v1_event();
        let back = EventsV1Conversion.to_served(EventsV1Conversion.to_storage(ev.clone()));
        assert_eq!(back, ev);

        let mut core = core_event();
        core["apiVersion"] = json!("v1");
        core["kind"] = json!("Event");
        core["related"] = json!({"kind": "Node", "name": "n1"});
        core["series"] = json!({"count": 2, "lastObservedTime": "2026-01-01T00:09:00.000000Z"});
        core["reportingComponent"] = json!("kubelet");
        core["reportingInstance"] = json!("node-1");
        core["action"] = json!("Pull");
        let served = EventsV1Conversion.to_served(core.clone());
        assert_eq!(served["apiVersion"], "events.k8s.io/v1");
        assert_eq!(served["regarding"], core["involvedObject"]);
        assert_eq!(served["note"], core["message"]);
        assert_eq!(served["deprecatedCount"], 3);
        assert_eq!(served["deprecatedSource"]["component"], "kubelet");
        assert!(EventsV1Ops.normalize(served.clone()).is_ok());
        assert_eq!(EventsV1Conversion.to_storage(served), core);
    }

    #[test]
    fn an_event_without_regarding_is_stored_with_an_empty_involved_object() {
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
                        "metadata": {"name": "e"}, "reason": "X"});
        let core = EventsV1Conversion.to_storage(ev);
        assert_eq!(core["involvedObject"], json!({}));
        assert!(CoreEventOps.normalize(core).is_ok());
    }

    #[test]
    fn each_api_selects_on_its_own_field_names() {
        let ev = events_v1_event();
        for (path, want) in [
            ("regarding.name", Some("web")),
            ("regarding.uid", Some("u1")),
            ("reportingController", Some("kubelet")),
            ("source", Some("kubelet")),
            ("reason", Some("Pulled")),
            ("type", Some("Normal")),
            ("involvedObject.name", None),
            ("reportingComponent", None),
            ("note", None),
        ] {
            assert_eq!(EventsV1Ops.field(&ev, path).as_deref(), want, "{path}");
        }
        let core = EventsV1Conversion.to_storage(ev);
        for (path, want) in [
            ("involvedObject.name", Some("web")),
            ("reportingComponent", Some("kubelet")),
            ("regarding.name", None),
            ("reportingController", None),
        ] {
            assert_eq!(CoreEventOps.field(&core, path).as_deref(), want, "{path}");
        }
    }

    #[test]
    fn events_v1_create_rejects_deprecated_fields_and_short_series() {
        let mut ev = events_v1_event();
        ev["series"]["count"] = json!(1);
        let fields: Vec<String> = EventsV1Ops
            .validate(&ev, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "series.count",
                "deprecatedFirstTimestamp",
                "deprecatedLastTimestamp",
                "deprecatedCount",
                "deprecatedSource"
            ]
        );
    }

    #[test]
    fn events_v1_updates_change_only_the_series() {
        // A core/v1 event (no eventTime) seen through events.k8s.io.
        let old = EventsV1Conversion.to_served(core_event());
        let mut new = old.clone();
        new["series"] = json!({"count": 4, "lastObservedTime": "2026-01-01T00:09:30.000000Z"});
        assert!(EventsV1Ops.validate(&new, Some(&old)).is_empty());
        new["note"] = json!("changed");
        new["series"]["count"] = json!(1);
        let fields: Vec<String> = EventsV1Ops
            .validate(&new, Some(&old))
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["series.count", "note"]);
    }
}
