//! Invariants every built-in kind's behaviour must keep, checked across the whole registry.

use serde_json::json;

use crate::registry::Registry;

fn now() -> jiff::Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

#[test]
fn every_row_has_one_cell_per_column_even_for_empty_objects() {
    let r = Registry::builtin();
    for d in r.all() {
        let cols = d.ops.table_columns();
        assert_eq!(
            cols[0].name,
            if d.kind == "Event" {
                "Last Seen"
            } else {
                "Name"
            },
            "{}",
            d.kind
        );
        for obj in [
            json!({}),
            json!({"metadata": {"name": "x", "creationTimestamp": "2025-12-31T23:59:00Z"}}),
        ] {
            let row = d.ops.table_row(&obj, now());
            assert_eq!(row.len(), cols.len(), "{} {}", d.gv.api_version(), d.kind);
        }
    }
}

#[test]
fn defaulting_is_idempotent_and_never_panics() {
    let r = Registry::builtin();
    for d in r.all() {
        let obj = json!({
            "apiVersion": d.gv.api_version(), "kind": d.kind,
            "metadata": {"name": "x", "namespace": "default", "uid": "u"},
        });
        let Ok(mut obj) = d.ops.normalize(obj) else {
            continue;
        };
        d.ops.apply_defaults(&mut obj);
        let once = obj.clone();
        d.ops.apply_defaults(&mut obj);
        assert_eq!(obj, once, "{}", d.kind);
        // Validation of a skeleton may fail, but must not panic.
        let _ = d.ops.validate(&obj, None);
        let _ = d.ops.validate(&obj, Some(&once));
    }
}

#[test]
fn supported_field_selectors_answer_for_any_object() {
    let r = Registry::builtin();
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "",
            "pods",
            &[
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
        ),
        (
            "",
            "events",
            &[
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        ),
        (
            "events.k8s.io",
            "events",
            &[
                "regarding.kind",
                "regarding.name",
                "regarding.uid",
                "reason",
                "type",
                "reportingController",
            ],
        ),
        ("", "nodes", &["spec.unschedulable"]),
        ("", "namespaces", &["status.phase"]),
        ("", "secrets", &["type"]),
        ("", "services", &["spec.clusterIP", "spec.type"]),
        ("", "replicationcontrollers", &["status.replicas"]),
        ("apps", "replicasets", &["status.replicas"]),
        ("batch", "jobs", &["status.successful"]),
    ];
    for (group, plural, fields) in cases {
        let d = r.get(group, "v1", plural).unwrap();
        for f in *fields {
            assert!(d.ops.field(&json!({}), f).is_some(), "{plural} {f}");
        }
        assert!(
            d.ops.field(&json!({}), "spec.nothing").is_none(),
            "{plural}"
        );
    }
    let deploy = r.get("apps", "v1", "deployments").unwrap();
    assert!(deploy.ops.field(&json!({}), "status.replicas").is_none());
}

/// (group, version, plural, default headers, wide-only headers).
type HeaderCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

#[test]
fn column_headers_match_kubectl() {
    let r = Registry::builtin();
    let headers = |group: &str, version: &str, plural: &str| -> (Vec<String>, Vec<String>) {
        let cols = r.get(group, version, plural).unwrap().ops.table_columns();
        let up = |c: &crate::table::Column| c.name.to_uppercase();
        (
            cols.iter().filter(|c| c.priority == 0).map(up).collect(),
            cols.iter().filter(|c| c.priority == 1).map(up).collect(),
        )
    };
    let cases: &[HeaderCase] = &[
        (
            "",
            "v1",
            "pods",
            &["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            &["IP", "NODE", "NOMINATED NODE", "READINESS GATES"],
        ),
        (
            "apps",
            "v1",
            "deployments",
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "apps",
            "v1",
            "replicasets",
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "apps",
            "v1",
            "statefulsets",
            &["NAME", "READY", "AGE"],
            &["CONTAINERS", "IMAGES"],
        ),
        (
            "apps",
            "v1",
            "daemonsets",
            &[
                "NAME",
                "DESIRED",
                "CURRENT",
                "READY",
                "UP-TO-DATE",
                "AVAILABLE",
                "NODE SELECTOR",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "batch",
            "v1",
            "jobs",
            &["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "batch",
            "v1",
            "cronjobs",
            &[
                "NAME",
                "SCHEDULE",
                "TIMEZONE",
                "SUSPEND",
                "ACTIVE",
                "LAST SCHEDULE",
                "AGE",
            ],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        (
            "",
            "v1",
            "services",
            &[
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE",
            ],
            &["SELECTOR"],
        ),
        (
            "",
            "v1",
            "nodes",
            &["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
            &[
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ],
        ),
        ("", "v1", "namespaces", &["NAME", "STATUS", "AGE"], &[]),
        ("", "v1", "configmaps", &["NAME", "DATA", "AGE"], &[]),
        ("", "v1", "secrets", &["NAME", "TYPE", "DATA", "AGE"], &[]),
        (
            "",
            "v1",
            "serviceaccounts",
            &["NAME", "SECRETS", "AGE"],
            &[],
        ),
        (
            "",
            "v1",
            "events",
            &["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            &["SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME"],
        ),
        ("", "v1", "endpoints", &["NAME", "ENDPOINTS", "AGE"], &[]),
        (
            "discovery.k8s.io",
            "v1",
            "endpointslices",
            &["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
            &[],
        ),
        (
            "coordination.k8s.io",
            "v1",
            "leases",
            &["NAME", "HOLDER", "AGE"],
            &[],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            &["NAME", "ROLE", "AGE"],
            &["USERS", "GROUPS", "SERVICEACCOUNTS"],
        ),
        (
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            &["NAME", "CREATED AT"],
            &[],
        ),
        (
            "",
            "v1",
            "persistentvolumeclaims",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            &["VOLUMEMODE"],
        ),
    ];
    for (g, v, plural, normal, wide) in cases {
        let (n, w) = headers(g, v, plural);
        assert_eq!(n, *normal, "{plural}");
        assert_eq!(w, *wide, "{plural}");
    }
}
