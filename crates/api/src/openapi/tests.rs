use std::sync::OnceLock;

use serde_json::Value;

use super::*;

fn built() -> &'static OpenApi {
    static API: OnceLock<OpenApi> = OnceLock::new();
    API.get_or_init(|| OpenApi::new(&Registry::builtin()))
}

fn doc(path: &str) -> Value {
    let (bytes, _) = built().v3_group_version(path).expect(path);
    serde_json::from_slice(&bytes).unwrap()
}

fn schema<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

fn for_each_ref(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::Object(o) => {
            for (k, v) in o {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => f(r),
                    _ => for_each_ref(v, f),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| for_each_ref(v, f)),
        _ => {}
    }
}

#[test]
fn root_lists_every_group_version_behind_its_hash() {
    let api = built();
    let root = api.v3_root();
    let registry = Registry::builtin();
    for gv in registry.group_versions() {
        let path = group_version_path(&gv.group, &gv.version);
        let url = root["paths"][&path]["serverRelativeURL"]
            .as_str()
            .unwrap_or_else(|| panic!("{path} missing from the root"));
        let (_, hash) = api.v3_group_version(&path).unwrap();
        assert_eq!(url, format!("/openapi/v3/{path}?hash={hash}"));
        assert_eq!(hash.len(), 128);
    }
    assert!(api.v3_group_version("apis/apps/v1/").is_some());
    assert!(api.v3_group_version("/openapi/v3/api/v1").is_some());
    assert!(api.v3_group_version("apis/nope/v1").is_none());
}

#[test]
fn documents_are_identical_across_builds() {
    let a = OpenApi::new(&Registry::builtin());
    let b = built();
    assert_eq!(a.v3_root(), b.v3_root());
    assert_eq!(
        a.v3_group_version("api/v1").unwrap().0,
        b.v3_group_version("api/v1").unwrap().0
    );
    assert_eq!(a.v2(), b.v2());
}

#[test]
fn deployment_patch_operation_lets_kubectl_validate_on_the_server() {
    let d = doc("apis/apps/v1");
    let op = &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(op["operationId"], "patchAppsV1NamespacedDeployment");
    assert_eq!(op["x-kubernetes-action"], "patch");
    assert_eq!(
        op["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment"})
    );
    let params = op["parameters"].as_array().unwrap();
    assert!(params
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    for t in [
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
    ] {
        assert!(op["requestBody"]["content"].get(t).is_some(), "{t}");
    }
}

#[test]
fn every_patch_operation_takes_field_validation_and_every_patch_type() {
    // kubectl stops at the first PATCH operation of a GVK it meets (status included), so all
    // of them must say the same.
    let api = built();
    for path in api.v3_paths() {
        let d = doc(path);
        for (p, item) in d["paths"].as_object().unwrap() {
            let Some(op) = item.get("patch") else {
                continue;
            };
            let params = op["parameters"].as_array().unwrap();
            assert!(params.iter().any(|q| q["name"] == "fieldValidation"), "{p}");
            assert_eq!(op["requestBody"]["content"].as_object().unwrap().len(), 4);
        }
    }
}

#[test]
fn operations_follow_upstream_naming() {
    let core = doc("api/v1");
    let paths = &core["paths"];
    let pods = "/api/v1/namespaces/{namespace}/pods";
    assert_eq!(paths[pods]["get"]["operationId"], "listCoreV1NamespacedPod");
    assert_eq!(
        paths[pods]["post"]["operationId"],
        "createCoreV1NamespacedPod"
    );
    assert_eq!(
        paths[pods]["delete"]["operationId"],
        "deleteCoreV1CollectionNamespacedPod"
    );
    assert_eq!(
        paths["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    let status = &paths["/api/v1/namespaces/{namespace}/pods/{name}/status"];
    assert_eq!(
        status["put"]["operationId"],
        "replaceCoreV1NamespacedPodStatus"
    );
    let binding = &paths["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
    assert_eq!(binding["operationId"], "createCoreV1NamespacedPodBinding");
    assert_eq!(
        binding["x-kubernetes-group-version-kind"]["kind"],
        "Binding"
    );
    assert_eq!(
        paths["/api/v1/nodes/{name}"]["get"]["operationId"],
        "readCoreV1Node"
    );
    let list = &paths[pods]["get"];
    for p in [
        "labelSelector",
        "fieldSelector",
        "limit",
        "continue",
        "watch",
    ] {
        assert!(
            list["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|q| q["name"] == p),
            "{p}"
        );
    }
    let apps = doc("apis/apps/v1");
    let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["patch"]["operationId"],
        "patchAppsV1NamespacedDeploymentScale"
    );
    assert_eq!(
        scale["get"]["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(schema(&apps, "io.k8s.api.autoscaling.v1.Scale").is_object());
    let rbac = doc("apis/rbac.authorization.k8s.io/v1");
    assert_eq!(
        rbac["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["get"]["operationId"],
        "listRbacAuthorizationV1ClusterRole"
    );
}

#[test]
fn every_reference_resolves_within_its_document() {
    let api = built();
    for path in api.v3_paths() {
        let d = doc(path);
        let schemas = d["components"]["schemas"].as_object().unwrap();
        for_each_ref(&d, &mut |r| {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{path}: foreign ref {r}"));
            assert!(schemas.contains_key(name), "{path}: dangling {r}");
        });
    }
    let v2: Value = serde_json::from_slice(&api.v2()).unwrap();
    let defs = v2["definitions"].as_object().unwrap();
    for_each_ref(&v2, &mut |r| {
        let name = r
            .strip_prefix("#/definitions/")
            .unwrap_or_else(|| panic!("v2: foreign ref {r}"));
        assert!(defs.contains_key(name), "v2: dangling {r}");
    });
}

#[test]
fn kind_schemas_carry_their_group_version_kind() {
    let registry = Registry::builtin();
    let api = built();
    for def in registry.all() {
        let d = doc(&group_version_path(&def.gv.group, &def.gv.version));
        let want = serde_json::json!({
            "group": def.gv.group, "version": def.gv.version, "kind": def.kind,
        });
        let found = d["components"]["schemas"]
            .as_object()
            .unwrap()
            .values()
            .filter(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(&want))
            })
            .count();
        assert_eq!(found, 1, "{want}");
        let list = serde_json::json!({
            "group": def.gv.group, "version": def.gv.version, "kind": def.list_kind,
        });
        assert!(
            d["components"]["schemas"]
                .as_object()
                .unwrap()
                .values()
                .any(|s| s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.contains(&list))),
            "{list}"
        );
        assert!(
            api.schema_index()
                .kind(&def.gv.group, &def.gv.version, &def.kind)
                .is_some(),
            "{want}"
        );
    }
}

#[test]
fn every_builtin_kind_has_a_typed_schema() {
    // Otherwise it would silently get the open fallback schema.
    let schemas = KindSchemas::builtin();
    for def in Registry::builtin().all() {
        assert!(
            schemas
                .get(&def.gv.group, &def.gv.version, &def.kind)
                .is_some(),
            "{}/{} {}",
            def.gv.group,
            def.gv.version,
            def.kind
        );
        for s in &def.subresources {
            assert!(
                schemas.get(&s.group, &s.version, &s.kind).is_some(),
                "{}/{}: {}/{} {}",
                def.plural,
                s.name,
                s.group,
                s.version,
                s.kind
            );
        }
    }
}

#[test]
fn schemas_carry_the_patch_metadata_of_the_table() {
    let core = doc("api/v1");
    let pod_spec = schema(&core, "io.k8s.api.core.v1.PodSpec");
    let containers = &pod_spec["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(
        containers["x-kubernetes-list-map-keys"],
        serde_json::json!(["name"])
    );
    assert_eq!(
        pod_spec["properties"]["volumes"]["x-kubernetes-patch-strategy"],
        "merge,retainKeys"
    );
    assert_eq!(
        pod_spec["properties"]["tolerations"]["x-kubernetes-list-type"],
        "atomic"
    );
    let meta = schema(&core, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta");
    assert_eq!(
        meta["properties"]["finalizers"]["x-kubernetes-patch-strategy"],
        "merge"
    );
    assert_eq!(
        meta["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
        "uid"
    );
    let apps = doc("apis/apps/v1");
    let strategy = &schema(&apps, "io.k8s.api.apps.v1.DeploymentSpec")["properties"]["strategy"];
    assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
    // The reference moved under allOf so that the extension is not a sibling of `$ref`.
    assert!(strategy.get("$ref").is_none());
    assert_eq!(
        strategy["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"
    );
    assert_eq!(
        schema(&apps, "io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector")
            ["x-kubernetes-map-type"],
        "atomic"
    );
}

#[test]
fn every_table_entry_names_a_generated_field() {
    let defs = definitions::build(&Registry::builtin(), &KindSchemas::builtin());
    let mut missing = Vec::new();
    for m in merge_keys::FIELDS {
        match defs.defs.get(m.definition) {
            None => missing.push(m.definition.to_string()),
            Some(def) if def["properties"].get(m.field).is_none() => {
                missing.push(format!("{}.{}", m.definition, m.field))
            }
            Some(_) => {}
        }
    }
    for name in merge_keys::ATOMIC_STRUCTS {
        if !defs.defs.contains_key(*name) {
            missing.push(name.to_string());
        }
    }
    assert!(missing.is_empty(), "not generated: {missing:#?}");
}

/// What `kubectl explain` does with a v3 document: find the kind's schema by GVK, then follow
/// properties, `$ref`s, `allOf`s and array items.
fn explain<'a>(d: &'a Value, gvk: Value, path: &[&str]) -> &'a Value {
    let schemas = d["components"]["schemas"].as_object().unwrap();
    let resolve = |s: &'a Value| -> &'a Value {
        let mut s = s;
        loop {
            if let Some(r) = s["$ref"].as_str() {
                s = &schemas[r.strip_prefix("#/components/schemas/").unwrap()];
            } else if s.get("properties").is_none() && s["allOf"].is_array() {
                s = &s["allOf"][0];
            } else if s["items"].is_object() {
                s = &s["items"];
            } else {
                return s;
            }
        }
    };
    let mut cur = schemas
        .values()
        .find(|s| {
            s["x-kubernetes-group-version-kind"]
                .as_array()
                .is_some_and(|a| a.contains(&gvk))
        })
        .expect("kind schema");
    for seg in path {
        cur = &resolve(cur)["properties"][*seg];
        assert!(cur.is_object(), "no field {seg}");
    }
    cur
}

#[test]
fn explain_finds_descriptions_and_types() {
    let apps = doc("apis/apps/v1");
    let replicas = explain(
        &apps,
        serde_json::json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
        &["spec", "replicas"],
    );
    assert_eq!(replicas["type"], "integer");
    assert!(replicas["description"]
        .as_str()
        .unwrap()
        .contains("desired pods"));
    let core = doc("api/v1");
    let containers = explain(
        &core,
        serde_json::json!({"group": "", "version": "v1", "kind": "Pod"}),
        &["spec", "containers"],
    );
    assert_eq!(containers["type"], "array");
    assert_eq!(
        containers["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    let image = explain(
        &core,
        serde_json::json!({"group": "", "version": "v1", "kind": "Pod"}),
        &["spec", "containers", "image"],
    );
    assert_eq!(image["type"], "string");
}

#[test]
fn v2_document_is_swagger_with_definitions() {
    let v2: Value = serde_json::from_slice(&built().v2()).unwrap();
    assert_eq!(v2["swagger"], "2.0");
    let deploy = &v2["definitions"]["io.k8s.api.apps.v1.Deployment"];
    assert_eq!(
        deploy["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    );
    let op = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
    assert_eq!(op["operationId"], "patchAppsV1NamespacedDeployment");
    assert!(op["consumes"]
        .as_array()
        .unwrap()
        .contains(&"application/strategic-merge-patch+json".into()));
    let body = op["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["in"] == "body")
        .unwrap();
    assert_eq!(
        body["schema"]["$ref"],
        "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
    );
}

/// The top-level fields of a protobuf message: (field number, length-delimited payload).
fn protobuf_fields(mut b: &[u8]) -> Vec<(u64, &[u8])> {
    fn varint(b: &mut &[u8]) -> u64 {
        let mut v = 0;
        for shift in (0..64).step_by(7) {
            let byte = b[0];
            *b = &b[1..];
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                break;
            }
        }
        v
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let key = varint(&mut b);
        match key & 7 {
            0 => {
                varint(&mut b);
            }
            1 => b = &b[8..],
            2 => {
                let len = varint(&mut b) as usize;
                out.push((key >> 3, &b[..len]));
                b = &b[len..];
            }
            t => panic!("unexpected wire type {t}"),
        }
    }
    out
}

#[test]
fn v2_protobuf_carries_every_definition_and_path() {
    let api = built();
    let json: Value = serde_json::from_slice(&api.v2()).unwrap();
    let pb = api.v2_protobuf();
    let top = protobuf_fields(&pb);
    let field = |n: u64| top.iter().find(|(f, _)| *f == n).map(|(_, b)| *b).unwrap();
    assert_eq!(field(1), b"2.0");
    // definitions = 9 { repeated NamedSchema additional_properties = 1 { name = 1, ... } }
    let names: Vec<&[u8]> = protobuf_fields(field(9))
        .into_iter()
        .map(|(_, named)| protobuf_fields(named)[0].1)
        .collect();
    assert_eq!(names.len(), json["definitions"].as_object().unwrap().len());
    assert!(names.contains(&&b"io.k8s.api.apps.v1.Deployment"[..]));
    // paths = 8 { repeated NamedPathItem path = 2 }
    let paths = protobuf_fields(field(8));
    assert_eq!(paths.len(), json["paths"].as_object().unwrap().len());
}

#[test]
fn kinds_without_a_schema_get_an_open_one() {
    let mut registry = Registry::builtin();
    let mut crd = registry
        .get("apps", "v1", "deployments")
        .map(|d| crate::ResourceDef {
            gv: crate::GroupVersion::new("stable.example.com", "v1"),
            kind: "CronTab".into(),
            list_kind: "CronTabList".into(),
            plural: "crontabs".into(),
            singular: "crontab".into(),
            scope: d.scope,
            short_names: vec![],
            categories: vec![],
            verbs: d.verbs.clone(),
            subresources: vec![],
            ops: d.ops.clone(),
            stored_as: None,
        });
    registry.add(crd.take().unwrap());
    let api = OpenApi::new(&registry);
    let (bytes, _) = api.v3_group_version("apis/stable.example.com/v1").unwrap();
    let d: Value = serde_json::from_slice(&bytes).unwrap();
    let s = &d["components"]["schemas"]["com.example.stable.v1.CronTab"];
    assert_eq!(s["x-kubernetes-preserve-unknown-fields"], true);
    assert_eq!(s["x-kubernetes-group-version-kind"][0]["kind"], "CronTab");
    assert!(
        d["paths"]["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}"]["patch"]
            .is_object()
    );
}

#[test]
fn schema_index_walks_like_explain() {
    let index = built().schema_index();
    let deploy = index.kind("apps", "v1", "Deployment").unwrap();
    assert_eq!(
        deploy.definition_name(),
        Some("io.k8s.api.apps.v1.Deployment")
    );
    let container = deploy.walk(["spec", "template", "spec", "containers"]);
    assert_eq!(
        container.definition_name(),
        Some("io.k8s.api.core.v1.Container")
    );
    let env = deploy.walk("spec.template.spec.containers.env".split('.'));
    assert_eq!(env.definition_name(), Some("io.k8s.api.core.v1.EnvVar"));
    let (_, meta) = container.field("env");
    let meta = meta.unwrap();
    assert!(meta.merge);
    assert_eq!(meta.merge_key.as_deref(), Some("name"));
    let ports = container.field_info("ports").unwrap();
    assert_eq!(ports.apply.list_type, Some(merge_keys::ListType::Map));
    assert_eq!(ports.apply.list_map_keys, ["containerPort", "protocol"]);
    assert_eq!(ports.patch.merge_key.as_deref(), Some("containerPort"));
    let node_selector = deploy
        .walk(["spec", "template", "spec"])
        .field_info("nodeSelector")
        .unwrap();
    assert!(node_selector.apply.atomic_map);
    // Map values: labels are strings.
    let labels = deploy.walk(["metadata", "labels"]);
    assert_eq!(labels.shape(), &Shape::Map(Box::new(Shape::Scalar)));
    assert_eq!(labels.field("app").0.shape(), &Shape::Scalar);
    // Past the schema: unknown.
    assert_eq!(deploy.walk(["spec", "nope", "deeper"]).shape(), &Shape::Any);
    assert_eq!(
        builtin_index().kind_definition("", "v1", "Pod"),
        Some("io.k8s.api.core.v1.Pod")
    );
}
