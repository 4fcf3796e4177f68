use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::openapi::{builtin_index, SchemaRef};

fn deployment_schema() -> SchemaRef<'static> {
    builtin_index().kind("apps", "v1", "Deployment").unwrap()
}

fn pod_schema() -> SchemaRef<'static> {
    builtin_index().kind("", "v1", "Pod").unwrap()
}

/// A Deployment as the server stores it: defaulted, with status.
fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "0b5d7c3e",
            "resourceVersion": "41",
            "generation": 1,
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":1}\n"},
            "finalizers": ["example.com/a"],
        },
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.25",
                        "imagePullPolicy": "IfNotPresent",
                        "terminationMessagePath": "/dev/termination-log",
                        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    }],
                    "restartPolicy": "Always",
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                },
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": 2,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True"},
            ],
        },
    })
}

fn patched(original: &Value, patch: Value) -> Value {
    apply_strategic(original, &patch, deployment_schema())
        .unwrap_or_else(|e| panic!("{patch} failed: {e}"))
}

#[test]
fn kubectl_three_way_apply_patch_updates_the_live_object() {
    // What kubectl 1.33 `apply` sent (computed from our OpenAPI v3 document) after the manifest
    // went from replicas 2 to 3, nginx:1.25 to 1.26, env [A, B] to [A], RollingUpdate to
    // Recreate.
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"new\":1}\n"}},
        "spec": {
            "replicas": 3,
            "strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"},
            "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{
                    "$setElementOrder/env": [{"name": "A"}],
                    "env": [{"$patch": "delete", "name": "B"}],
                    "image": "nginx:1.26",
                    "name": "nginx",
                }],
            }},
        },
    });
    let mut want = live_deployment();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        "{\"new\":1}\n".into();
    want["spec"]["replicas"] = 3.into();
    want["spec"]["strategy"] = json!({"type": "Recreate"});
    let c = &mut want["spec"]["template"]["spec"]["containers"][0];
    c["image"] = "nginx:1.26".into();
    c["env"] = json!([{"name": "A", "value": "1"}]);
    assert_eq!(patched(&live_deployment(), patch), want);
}

#[test]
fn set_image_changes_one_container_and_keeps_the_others_in_order() {
    let mut live = live_deployment();
    live["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:1.27", "name": "nginx"}],
    }}}});
    let out = patched(&live, patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(
        containers[0]["env"],
        live["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(
        containers[1],
        json!({"name": "sidecar", "image": "busybox"})
    );
}

#[test]
fn rollout_restart_adds_a_template_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-21T23:57:47Z"}}}}});
    let out = patched(&live_deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["metadata"],
        json!({
            "labels": {"app": "web"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-21T23:57:47Z"},
        })
    );
}

#[test]
fn null_removes_a_field() {
    let mut live = live_deployment();
    live["spec"]["paused"] = true.into();
    let out = patched(&live, json!({"spec": {"paused": null}}));
    assert_eq!(out, live_deployment());
    // Nulls for absent fields change nothing.
    assert_eq!(
        patched(&live_deployment(), json!({"spec": {"paused": null}})),
        live_deployment()
    );
}

#[test]
fn empty_patch_changes_nothing() {
    assert_eq!(patched(&live_deployment(), json!({})), live_deployment());
}

/// (name, patch, expected finalizers) on an object whose finalizers are [a, x, b].
#[test]
fn finalizers_merge_as_a_set() {
    let cases = [
        (
            "a new item comes first",
            json!({"finalizers": ["c"]}),
            json!(["c", "a", "x", "b"]),
        ),
        (
            "known items are not repeated",
            json!({"finalizers": ["b", "c"]}),
            json!(["a", "x", "b", "c"]),
        ),
        (
            "set element order places the new item",
            json!({"$setElementOrder/finalizers": ["a", "b", "c"], "finalizers": ["c"]}),
            json!(["a", "x", "b", "c"]),
        ),
        (
            "set element order reorders without a list",
            json!({"$setElementOrder/finalizers": ["b", "a"]}),
            // x stays before b, where the object had it.
            json!(["x", "b", "a"]),
        ),
        (
            "delete from primitive list",
            json!({"$deleteFromPrimitiveList/finalizers": ["x", "nope"]}),
            json!(["a", "b"]),
        ),
        (
            "deletion wins over addition",
            json!({"finalizers": ["c", "x"], "$deleteFromPrimitiveList/finalizers": ["x"]}),
            json!(["c", "a", "b"]),
        ),
        (
            "delete and order together",
            json!({"$setElementOrder/finalizers": ["b", "a"], "$deleteFromPrimitiveList/finalizers": ["x"]}),
            json!(["b", "a"]),
        ),
    ];
    for (name, meta_patch, want) in cases {
        let mut live = live_deployment();
        live["metadata"]["finalizers"] = json!(["a", "x", "b"]);
        let out = patched(&live, json!({"metadata": meta_patch}));
        assert_eq!(out["metadata"]["finalizers"], want, "{name}");
    }
}

#[test]
fn delete_from_primitive_list_does_not_create_the_list() {
    let mut live = live_deployment();
    live["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("finalizers");
    let out = patched(
        &live,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert!(out["metadata"].get("finalizers").is_none());
}

#[test]
fn retain_keys_switches_the_deployment_strategy() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_must_list_what_the_patch_sets() {
    let err = apply_strategic(
        &live_deployment(),
        &json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 1}}}}),
        deployment_schema(),
    )
    .unwrap_err();
    assert_eq!(err.status_code(), 400, "{err}");
}

#[test]
fn without_directives_lists_merge_by_key_in_patch_order() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "nginx",
            "env": [{"name": "C", "value": "3"}, {"name": "A", "value": "one"}],
            "ports": [{"containerPort": 443}],
        }]}}}}),
    );
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    // Patch items in patch order; B, which the patch does not name, after A where the
    // object had it.
    assert_eq!(
        c["env"],
        json!([{"name": "C", "value": "3"}, {"name": "A", "value": "one"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
    );
    assert_eq!(c["image"], "nginx:1.25");
}

#[test]
fn set_element_order_interleaves_items_the_patch_does_not_know() {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    };
    let mut live = live_deployment();
    live["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "a", "image": "x"}, {"name": "c"}, {"name": "d"}, {"name": "b"}, {"name": "z"},
    ]);
    let out = patched(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "d"}, {"name": "b"}, {"name": "c"}, {"name": "a"}],
        }}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers), ["d", "b", "c", "a", "z"]);
    assert_eq!(containers[3], json!({"name": "a", "image": "x"}));

    live["spec"]["template"]["spec"]["containers"] = json!([
        {"name": "a"}, {"name": "b"}, {"name": "z"}, {"name": "c"}, {"name": "d"},
    ]);
    let out = patched(
        &live,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "d"}, {"name": "c"}],
        }}}}),
    );
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"]),
        ["b", "a", "z", "d", "c"]
    );
}

#[test]
fn patch_replace_directive_replaces_lists_and_maps() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {
            "selector": {"$patch": "replace", "matchLabels": {"tier": "front"}},
            "template": {"spec": {"containers": [
                {"$patch": "replace"},
                {"name": "only", "image": "busybox"},
            ]}},
        }}),
    );
    assert_eq!(
        out["spec"]["selector"],
        json!({"matchLabels": {"tier": "front"}})
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "busybox"}])
    );
}

#[test]
fn patch_delete_directive_empties_a_map() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"strategy": {"$patch": "delete"}}}),
    );
    assert_eq!(out["spec"]["strategy"], json!({}));
    // Where the object has nothing, nothing is created.
    let out = patched(
        &live_deployment(),
        json!({"spec": {"template": {"spec": {"affinity": {"$patch": "delete"}}}}}),
    );
    assert!(out["spec"]["template"]["spec"].get("affinity").is_none());
}

#[test]
fn lists_without_merge_strategy_are_replaced() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"template": {"spec": {
            "tolerations": [{"key": "b", "operator": "Exists"}],
            "containers": [{"name": "nginx", "args": ["--x"]}],
        }}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["args"],
        json!(["--x"])
    );
}

#[test]
fn fields_the_schema_does_not_know_are_atomic() {
    let mut live = live_deployment();
    live["spec"]["extra"] = json!({"list": [1, 2], "keep": true});
    let out = patched(&live, json!({"spec": {"extra": {"list": [3]}}}));
    assert_eq!(out["spec"]["extra"], json!({"list": [3], "keep": true}));
    // Without any schema, maps merge and lists are replaced.
    let out = apply_strategic(
        &live_deployment(),
        &json!({"spec": {"template": {"spec": {"containers": [{"name": "other"}]}}}}),
        SchemaRef::unknown(),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "other"}])
    );
}

#[test]
fn status_conditions_merge_by_type() {
    let out = patched(
        &live_deployment(),
        json!({"status": {"conditions": [{"type": "Available", "status": "False", "reason": "X"}]}}),
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([
            {"type": "Available", "status": "False", "reason": "X"},
            {"type": "Progressing", "status": "True"},
        ])
    );
}

#[test]
fn pod_lists_merge_by_their_own_keys() {
    let pod = json!({
        "metadata": {"name": "p", "ownerReferences": [{"uid": "1", "name": "rs", "kind": "ReplicaSet"}]},
        "spec": {
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "cfg", "configMap": {"name": "a"}},
            ],
            "imagePullSecrets": [{"name": "reg"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        },
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "2", "name": "other", "kind": "ReplicaSet"}]},
        "spec": {
            "volumes": [{"name": "cfg", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}],
            "imagePullSecrets": [{"name": "reg2"}],
            "containers": [{"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}]}],
        },
    });
    let out = apply_strategic(&pod, &patch, pod_schema()).unwrap();
    assert_eq!(
        out["metadata"]["ownerReferences"],
        json!([
            {"uid": "2", "name": "other", "kind": "ReplicaSet"},
            {"uid": "1", "name": "rs", "kind": "ReplicaSet"},
        ])
    );
    // The volume's source switched from configMap to secret.
    assert_eq!(
        out["spec"]["volumes"],
        json!([
            {"name": "data", "emptyDir": {}},
            {"name": "cfg", "secret": {"secretName": "s"}},
        ])
    );
    assert_eq!(
        out["spec"]["imagePullSecrets"],
        json!([{"name": "reg2"}, {"name": "reg"}])
    );
    assert_eq!(
        out["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": "data", "mountPath": "/data", "readOnly": true}])
    );
}

#[test]
fn inserted_values_lose_their_directives_and_nulls() {
    let mut live = live_deployment();
    live["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("env");
    let out = patched(
        &live,
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "nginx",
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"name": "A", "value": "1", "valueFrom": null}, {"$patch": "delete", "name": "Z"}],
        }, {
            "name": "new",
            "resources": null,
            "env": [{"name": "E", "value": null}],
        }]}}}}),
    );
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["env"], json!([{"name": "A", "value": "1"}]));
    assert_eq!(
        containers[1],
        json!({"name": "new", "env": [{"name": "E"}]})
    );
}

/// (what, patch): each must fail with `status`.
#[test]
fn malformed_patches_are_rejected() {
    let cases: &[(&str, Value, u16)] = &[
        (
            "unknown $patch on a map",
            json!({"spec": {"strategy": {"$patch": "frobnicate"}}}),
            400,
        ),
        (
            "unknown $patch in a list",
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "nope", "name": "nginx"}]}}}}),
            400,
        ),
        (
            "$patch: merge as a list item",
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}}),
            400,
        ),
        (
            "$retainKeys not a list",
            json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
            400,
        ),
        (
            "$setElementOrder not a list",
            json!({"metadata": {"$setElementOrder/finalizers": "a"}}),
            400,
        ),
        (
            "$setElementOrder without a field",
            json!({"metadata": {"$setElementOrder": ["a"]}}),
            400,
        ),
        (
            "$deleteFromPrimitiveList without a field",
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            400,
        ),
        (
            "patch items out of $setElementOrder order",
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                "containers": [{"name": "b"}, {"name": "a"}],
            }}}}),
            400,
        ),
        (
            "list item without its merge key",
            json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}),
            422,
        ),
        (
            "$patch: delete without a merge key",
            json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete"}]}}}}),
            422,
        ),
        (
            "list of lists",
            json!({"metadata": {"finalizers": [["a"]]}}),
            422,
        ),
        ("mixed list", json!({"metadata": {"finalizers": [1]}}), 422),
    ];
    for (what, patch, status) in cases {
        let err = apply_strategic(&live_deployment(), patch, deployment_schema()).expect_err(what);
        assert_eq!(err.status_code(), *status, "{what}: {err}");
    }
    let err = apply_strategic(&live_deployment(), &json!([1]), deployment_schema()).unwrap_err();
    assert_eq!(err, PatchError::NotAnObject("a strategic merge patch"));
}

#[test]
fn explicit_merge_directive_on_a_map_is_the_default() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"selector": {"$patch": "merge", "matchLabels": {"tier": "x"}}}}),
    );
    assert_eq!(
        out["spec"]["selector"],
        json!({"matchLabels": {"app": "web", "tier": "x"}})
    );
}

#[test]
fn merge_keys_compare_numbers_by_value() {
    let out = patched(
        &live_deployment(),
        json!({"spec": {"template": {"spec": {"containers": [{
            "name": "nginx",
            "ports": [{"containerPort": 80.0, "name": "http"}],
        }]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// JSON objects without lists or nulls, where strategic merge patch and merge patch agree.
fn plain_object() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(Value::from),
        any::<i16>().prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 3, |inner| {
        prop::collection::btree_map("[a-c]", inner, 0..3)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    prop::collection::btree_map("[a-d]", value, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Deployments with some of the list fields that strategic merge patch merges.
fn deployment() -> impl Strategy<Value = Value> {
    let env = prop::collection::btree_map("[A-D]", "[a-z]{0,3}", 0..4).prop_map(|m| {
        Value::Array(
            m.into_iter()
                .map(|(k, v)| json!({"name": k, "value": v}))
                .collect(),
        )
    });
    let finalizers = prop::collection::btree_set("[a-d]", 0..4)
        .prop_map(|s| Value::Array(s.into_iter().map(Value::from).collect()));
    (env, finalizers, 0..5i32, plain_object()).prop_map(|(env, finalizers, replicas, labels)| {
        json!({
            "metadata": {"name": "d", "finalizers": finalizers, "annotations": labels},
            "spec": {
                "replicas": replicas,
                "template": {"spec": {"containers": [{"name": "c", "env": env}]}},
            },
        })
    })
}

proptest! {
    #[test]
    fn an_empty_patch_is_the_identity(d in deployment()) {
        prop_assert_eq!(apply_strategic(&d, &json!({}), deployment_schema()).unwrap(), d);
    }

    #[test]
    fn without_lists_it_is_a_merge_patch(a in plain_object(), b in plain_object()) {
        let smp = apply_strategic(&a, &b, deployment_schema()).unwrap();
        let merge = crate::patch::apply_merge_patch(&a, &b).unwrap();
        prop_assert_eq!(smp, merge);
    }

    #[test]
    fn patching_env_by_name_keeps_unnamed_items(d in deployment(), name in "[A-D]", value in "[a-z]{1,3}") {
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "env": [{"name": name, "value": value}]},
        ]}}}});
        let out = apply_strategic(&d, &patch, deployment_schema()).unwrap();
        let before = d["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
        let after = out["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
        for item in before.iter().filter(|e| e["name"] != name.as_str()) {
            prop_assert!(after.contains(item));
        }
        let set = json!({"name": name, "value": value});
        prop_assert!(after.contains(&set));
        prop_assert_eq!(after.len(), before.len() + usize::from(!before.iter().any(|e| e["name"] == name.as_str())));
    }
}
