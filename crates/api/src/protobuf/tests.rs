//! Bodies built with k8s-pb's prost structs, shaped like the ones client-go writes (Go writes
//! every non-pointer field, zero or not), decoded and compared with the JSON the API shows.
//! Each expected JSON is also decoded into its k8s-openapi type and re-encoded unchanged, which
//! proves the JSON names.

use std::collections::BTreeMap;

use k8s_pb::api::core::v1 as pb_core;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as pb_meta;
use k8s_pb::apimachinery::pkg::runtime::{RawExtension, TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::{decode_unknown, ProtoError, MAGIC, MAX_BODY_LEN};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn quantities(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Quantity { string: s(v) }))
        .collect()
}

/// `k8s\0` + `runtime.Unknown` around an encoded object, as client-go frames it.
fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut body = MAGIC.to_vec();
    body.extend(unknown.encode_to_vec());
    body
}

fn body<M: prost::Message>(api_version: &str, kind: &str, object: &M) -> Vec<u8> {
    envelope(api_version, kind, object.encode_to_vec())
}

/// Object metadata as Go writes it for a new object: every non-pointer field, zero or not.
fn go_meta(name: &str, labels_: &[(&str, &str)]) -> pb_meta::ObjectMeta {
    pb_meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(""),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(pb_meta::Time::default()),
        labels: labels(labels_),
        ..Default::default()
    }
}

/// Decodes `body`, checks apiVersion and kind, compares with `want`, and checks that `want`
/// survives a trip through the k8s-openapi type `T`.
fn check<T: Serialize + DeserializeOwned + k8s_openapi::Resource>(body: &[u8], want: Value) {
    let (api_version, kind, got) = decode_unknown(body).expect("decodes");
    assert_eq!(api_version, T::API_VERSION);
    assert_eq!(kind, T::KIND);
    assert_eq!(
        got,
        want,
        "got:\n{}",
        serde_json::to_string_pretty(&got).unwrap()
    );
    let typed: T = serde_json::from_value(got.clone()).expect("fits the k8s-openapi type");
    assert_eq!(
        serde_json::to_value(&typed).unwrap(),
        got,
        "k8s-openapi changed it"
    );
}

#[test]
fn kubectl_create_deployment_decodes_to_the_api_json() {
    use k8s_pb::api::apps::v1 as pb_apps;
    let container = pb_core::Container {
        name: s("nginx"),
        image: s("nginx:1.27"),
        working_dir: s(""),
        ports: vec![pb_core::ContainerPort {
            name: s(""),
            host_port: Some(0),
            container_port: Some(8080),
            protocol: s(""),
            host_ip: s(""),
        }],
        resources: Some(pb_core::ResourceRequirements::default()),
        termination_message_path: s(""),
        termination_message_policy: s(""),
        image_pull_policy: s(""),
        stdin: Some(false),
        stdin_once: Some(false),
        tty: Some(false),
        ..Default::default()
    };
    let deployment = pb_apps::Deployment {
        metadata: Some(go_meta("imp", &[("app", "imp")])),
        spec: Some(pb_apps::DeploymentSpec {
            replicas: Some(1),
            selector: Some(pb_meta::LabelSelector {
                match_labels: labels(&[("app", "imp")]),
                match_expressions: vec![],
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(go_meta("", &[("app", "imp")])),
                spec: Some(pb_core::PodSpec {
                    containers: vec![container],
                    restart_policy: s(""),
                    dns_policy: s(""),
                    service_account_name: s(""),
                    service_account: s(""),
                    node_name: s(""),
                    host_network: Some(false),
                    host_pid: Some(false),
                    host_ipc: Some(false),
                    hostname: s(""),
                    subdomain: s(""),
                    scheduler_name: s(""),
                    priority_class_name: s(""),
                    ..Default::default()
                }),
            }),
            strategy: Some(pb_apps::DeploymentStrategy {
                r#type: s(""),
                rolling_update: None,
            }),
            min_ready_seconds: Some(0),
            paused: Some(false),
            ..Default::default()
        }),
        status: Some(pb_apps::DeploymentStatus {
            observed_generation: Some(0),
            replicas: Some(0),
            updated_replicas: Some(0),
            ready_replicas: Some(0),
            available_replicas: Some(0),
            unavailable_replicas: Some(0),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::apps::v1::Deployment>(
        &body("apps/v1", "Deployment", &deployment),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "imp", "labels": {"app": "imp"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "imp"}},
                "template": {
                    "metadata": {"labels": {"app": "imp"}},
                    "spec": {"containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "ports": [{"containerPort": 8080}],
                        "resources": {},
                    }]},
                },
                "strategy": {},
            },
            "status": {},
        }),
    );
}

#[test]
fn configmap_keeps_data_binary_data_and_a_pointer_false() {
    let cm = pb_core::ConfigMap {
        metadata: Some(go_meta("settings", &[])),
        immutable: Some(false),
        data: labels(&[("mode", "fast"), ("empty", "")]),
        binary_data: [("blob".to_string(), vec![0u8, 1, 2, 254, 255])].into(),
    };
    check::<k8s_openapi::api::core::v1::ConfigMap>(
        &body("v1", "ConfigMap", &cm),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings"},
            "immutable": false,
            "data": {"mode": "fast", "empty": ""},
            "binaryData": {"blob": "AAEC/v8="},
        }),
    );
}

#[test]
fn secret_data_is_base64() {
    let secret = pb_core::Secret {
        metadata: Some(go_meta("creds", &[])),
        data: [
            ("key".to_string(), vec![0u8, 159, 255]),
            ("empty".to_string(), vec![]),
        ]
        .into(),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
        immutable: None,
    };
    check::<k8s_openapi::api::core::v1::Secret>(
        &body("v1", "Secret", &secret),
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds"},
            "data": {"key": "AJ//", "empty": ""},
            "type": "Opaque",
        }),
    );
}

#[test]
fn service_target_ports_are_numbers_or_strings_and_an_empty_one_is_unset() {
    let port = |name: &str, port: i32, target: IntOrString| pb_core::ServicePort {
        name: s(name),
        protocol: s("TCP"),
        app_protocol: None,
        port: Some(port),
        target_port: Some(target),
        node_port: Some(0),
    };
    let svc = pb_core::Service {
        metadata: Some(go_meta("web", &[("app", "web")])),
        spec: Some(pb_core::ServiceSpec {
            ports: vec![
                port(
                    "http",
                    80,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(8080),
                        str_val: s(""),
                    },
                ),
                port(
                    "metrics",
                    9090,
                    IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("prom"),
                    },
                ),
                // What Go writes for a port whose targetPort was never set.
                port(
                    "plain",
                    81,
                    IntOrString {
                        r#type: Some(0),
                        int_val: Some(0),
                        str_val: s(""),
                    },
                ),
            ],
            selector: labels(&[("app", "web")]),
            cluster_ip: s(""),
            r#type: s("ClusterIP"),
            session_affinity: s(""),
            load_balancer_ip: s(""),
            external_name: s(""),
            external_traffic_policy: s(""),
            health_check_node_port: Some(0),
            publish_not_ready_addresses: Some(false),
            ..Default::default()
        }),
        status: Some(pb_core::ServiceStatus {
            load_balancer: Some(pb_core::LoadBalancerStatus::default()),
            conditions: vec![],
        }),
    };
    check::<k8s_openapi::api::core::v1::Service>(
        &body("v1", "Service", &svc),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "ports": [
                    {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
                    {"name": "metrics", "protocol": "TCP", "port": 9090, "targetPort": "prom"},
                    {"name": "plain", "protocol": "TCP", "port": 81},
                ],
                "selector": {"app": "web"},
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        }),
    );
}

#[test]
fn namespace_with_finalizers_decodes() {
    let ns = pb_core::Namespace {
        metadata: Some(go_meta("team-a", &[("tier", "dev")])),
        spec: Some(pb_core::NamespaceSpec {
            finalizers: vec!["kubernetes".into()],
        }),
        status: Some(pb_core::NamespaceStatus {
            phase: s(""),
            conditions: vec![],
        }),
    };
    check::<k8s_openapi::api::core::v1::Namespace>(
        &body("v1", "Namespace", &ns),
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"tier": "dev"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {},
        }),
    );
}

#[test]
fn job_keeps_pointer_zeros_and_unpacked_repeated_ints() {
    use k8s_pb::api::batch::v1 as pb_batch;
    let job = pb_batch::Job {
        metadata: Some(go_meta("once", &[])),
        spec: Some(pb_batch::JobSpec {
            backoff_limit: Some(0),
            parallelism: Some(1),
            pod_failure_policy: Some(pb_batch::PodFailurePolicy {
                rules: vec![pb_batch::PodFailurePolicyRule {
                    action: s("FailJob"),
                    on_exit_codes: Some(pb_batch::PodFailurePolicyOnExitCodesRequirement {
                        container_name: None,
                        operator: s("In"),
                        values: vec![1, 42, -3],
                    }),
                    on_pod_conditions: vec![],
                }],
            }),
            template: Some(pb_core::PodTemplateSpec {
                metadata: Some(go_meta("", &[])),
                spec: Some(pb_core::PodSpec {
                    containers: vec![pb_core::Container {
                        name: s("main"),
                        image: s("busybox"),
                        command: vec!["sh".into(), "-c".into(), "exit 0".into()],
                        resources: Some(pb_core::ResourceRequirements::default()),
                        ..Default::default()
                    }],
                    restart_policy: s("Never"),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(pb_batch::JobStatus {
            active: Some(0),
            succeeded: Some(0),
            failed: Some(0),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::batch::v1::Job>(
        &body("batch/v1", "Job", &job),
        json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "once"},
            "spec": {
                "backoffLimit": 0,
                "parallelism": 1,
                "podFailurePolicy": {"rules": [{
                    "action": "FailJob",
                    "onExitCodes": {"operator": "In", "values": [1, 42, -3]},
                }]},
                "template": {
                    "metadata": {},
                    "spec": {
                        "containers": [{
                            "name": "main",
                            "image": "busybox",
                            "command": ["sh", "-c", "exit 0"],
                            "resources": {},
                        }],
                        "restartPolicy": "Never",
                    },
                },
            },
            "status": {},
        }),
    );
}

fn sample_pod() -> pb_core::Pod {
    let probe = pb_core::Probe {
        handler: Some(pb_core::ProbeHandler {
            http_get: Some(pb_core::HttpGetAction {
                path: s("/healthz"),
                port: Some(IntOrString {
                    r#type: Some(1),
                    int_val: Some(0),
                    str_val: s("http"),
                }),
                host: s(""),
                scheme: s("HTTP"),
                http_headers: vec![],
            }),
            ..Default::default()
        }),
        initial_delay_seconds: Some(0),
        period_seconds: Some(10),
        ..Default::default()
    };
    let mut meta = go_meta("web-0", &[("app", "web")]);
    meta.namespace = s("prod");
    meta.uid = s("0b7c5a62-2f4e-4d2a-9b11-0d0f6c2b1e11");
    meta.creation_timestamp = Some(pb_meta::Time {
        seconds: Some(1_795_309_323),
        nanos: Some(0),
    });
    meta.deletion_timestamp = Some(pb_meta::Time {
        seconds: Some(1_795_309_383),
        nanos: Some(500),
    });
    meta.deletion_grace_period_seconds = Some(0);
    meta.annotations = labels(&[("note", "x")]);
    meta.owner_references = vec![pb_meta::OwnerReference {
        api_version: s("apps/v1"),
        kind: s("StatefulSet"),
        name: s("web"),
        uid: s("u1"),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }];
    meta.managed_fields = vec![pb_meta::ManagedFieldsEntry {
        manager: s("kubectl-create"),
        operation: s("Update"),
        api_version: s("v1"),
        time: Some(pb_meta::Time {
            seconds: Some(0),
            nanos: Some(0),
        }),
        fields_type: s("FieldsV1"),
        fields_v1: Some(pb_meta::FieldsV1 {
            raw: Some(br#"{"f:metadata":{"f:labels":{".":{},"f:app":{}}}}"#.to_vec()),
        }),
        subresource: s(""),
    }];
    pb_core::Pod {
        metadata: Some(meta),
        spec: Some(pb_core::PodSpec {
            volumes: vec![pb_core::Volume {
                name: s("scratch"),
                volume_source: Some(pb_core::VolumeSource {
                    empty_dir: Some(pb_core::EmptyDirVolumeSource {
                        medium: s(""),
                        size_limit: Some(Quantity { string: s("1Gi") }),
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![pb_core::Container {
                name: s("web"),
                image: s("nginx"),
                resources: Some(pb_core::ResourceRequirements {
                    limits: quantities(&[("memory", "128Mi")]),
                    requests: quantities(&[("cpu", "100m"), ("memory", "64Mi")]),
                    claims: vec![],
                }),
                liveness_probe: Some(probe),
                security_context: Some(pb_core::SecurityContext {
                    allow_privilege_escalation: Some(false),
                    run_as_non_root: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            termination_grace_period_seconds: Some(0),
            host_network: Some(false),
            automount_service_account_token: Some(false),
            security_context: Some(pb_core::PodSecurityContext {
                supplemental_groups: vec![1000, 2000],
                fs_group: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        }),
        status: Some(pb_core::PodStatus {
            phase: s("Running"),
            host_ip: s("10.0.0.1"),
            pod_ip: s("10.1.0.7"),
            pod_ips: vec![pb_core::PodIp { ip: s("10.1.0.7") }],
            start_time: Some(pb_meta::Time {
                seconds: Some(1_795_309_324),
                nanos: None,
            }),
            qos_class: s("Burstable"),
            ..Default::default()
        }),
    }
}

fn sample_pod_json() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-0",
            "namespace": "prod",
            "uid": "0b7c5a62-2f4e-4d2a-9b11-0d0f6c2b1e11",
            "creationTimestamp": "2026-11-22T01:02:03Z",
            "deletionTimestamp": "2026-11-22T01:03:03Z",
            "deletionGracePeriodSeconds": 0,
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": "web",
                "uid": "u1",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
            "managedFields": [{
                "manager": "kubectl-create",
                "operation": "Update",
                "apiVersion": "v1",
                "time": "1970-01-01T00:00:00Z",
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
            }],
        },
        "spec": {
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}}],
            "containers": [{
                "name": "web",
                "image": "nginx",
                "resources": {
                    "limits": {"memory": "128Mi"},
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                },
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                    "periodSeconds": 10,
                },
                "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true},
            }],
            "terminationGracePeriodSeconds": 0,
            "automountServiceAccountToken": false,
            "securityContext": {"supplementalGroups": [1000, 2000], "fsGroup": 0},
        },
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.1",
            "podIP": "10.1.0.7",
            "podIPs": [{"ip": "10.1.0.7"}],
            "startTime": "2026-11-22T01:02:04Z",
            "qosClass": "Burstable",
        },
    })
}

#[test]
fn pod_with_quantities_times_inline_sources_and_managed_fields_decodes() {
    check::<k8s_openapi::api::core::v1::Pod>(&body("v1", "Pod", &sample_pod()), sample_pod_json());
}

/// Rewrites every (unpacked) occurrence of field `tag` with varint values in `msg` as one packed
/// field; other fields are copied.
fn pack_field(msg: &[u8], tag: u64) -> Vec<u8> {
    let mut r = super::wire::Reader::new(msg);
    let mut out = Vec::new();
    let mut packed = Vec::new();
    while !r.is_empty() {
        let (f, wt) = r.key().unwrap();
        let mut scratch = Vec::new();
        match wt {
            super::wire::VARINT => {
                let v = r.varint().unwrap();
                if u64::from(f) == tag {
                    prost::encoding::encode_varint(v, &mut packed);
                    continue;
                }
                prost::encoding::encode_varint(u64::from(f) << 3, &mut scratch);
                prost::encoding::encode_varint(v, &mut scratch);
            }
            super::wire::LEN => {
                let b = r.bytes().unwrap();
                prost::encoding::encode_varint(u64::from(f) << 3 | 2, &mut scratch);
                prost::encoding::encode_varint(b.len() as u64, &mut scratch);
                scratch.extend_from_slice(b);
            }
            _ => panic!("test helper handles varint and length-delimited fields only"),
        }
        out.extend(scratch);
    }
    prost::encoding::encode_varint(tag << 3 | 2, &mut out);
    prost::encoding::encode_varint(packed.len() as u64, &mut out);
    out.extend(packed);
    out
}

#[test]
fn packed_repeated_ints_decode_like_unpacked_ones() {
    let ctx = pb_core::PodSecurityContext {
        supplemental_groups: vec![1000, -1, 70_000_000_000],
        run_as_user: Some(1000),
        ..Default::default()
    };
    let unpacked = ctx.encode_to_vec();
    // supplementalGroups is field 4.
    let packed = pack_field(&unpacked, 4);
    assert_ne!(packed, unpacked);
    let wrap = |ctx_bytes: Vec<u8>| {
        let mut spec = Vec::new();
        prost::encoding::bytes::encode(14, &ctx_bytes, &mut spec);
        let mut pod = Vec::new();
        prost::encoding::bytes::encode(2, &spec, &mut pod);
        envelope("v1", "Pod", pod)
    };
    let want = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"securityContext": {
            "runAsUser": 1000,
            "supplementalGroups": [1000, -1, 70_000_000_000_i64],
        }},
    });
    assert_eq!(decode_unknown(&wrap(unpacked)).unwrap().2, want);
    assert_eq!(decode_unknown(&wrap(packed)).unwrap().2, want);
}

#[test]
fn scale_decodes_with_its_spec_and_status() {
    use k8s_pb::api::autoscaling::v1 as pb_as;
    let scale = pb_as::Scale {
        metadata: Some(go_meta("web", &[])),
        spec: Some(pb_as::ScaleSpec { replicas: Some(3) }),
        status: Some(pb_as::ScaleStatus {
            replicas: Some(1),
            selector: s("app=web"),
        }),
    };
    check::<k8s_openapi::api::autoscaling::v1::Scale>(
        &body("autoscaling/v1", "Scale", &scale),
        json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {"name": "web"},
            "spec": {"replicas": 3},
            "status": {"replicas": 1, "selector": "app=web"},
        }),
    );
}

#[test]
fn scale_to_zero_leaves_replicas_unset_as_the_go_server_sees_it() {
    use k8s_pb::api::autoscaling::v1 as pb_as;
    let scale = pb_as::Scale {
        metadata: Some(go_meta("web", &[])),
        spec: Some(pb_as::ScaleSpec { replicas: Some(0) }),
        status: None,
    };
    let (_, _, got) = decode_unknown(&body("autoscaling/v1", "Scale", &scale)).unwrap();
    assert_eq!(got["spec"], json!({}));
}

fn delete_options() -> pb_meta::DeleteOptions {
    pb_meta::DeleteOptions {
        grace_period_seconds: Some(0),
        preconditions: Some(pb_meta::Preconditions {
            uid: s("u1"),
            resource_version: None,
        }),
        orphan_dependents: None,
        propagation_policy: s("Background"),
        dry_run: vec!["All".into()],
        ignore_store_read_error_with_cluster_breaking_potential: None,
    }
}

#[test]
fn delete_options_decode_under_any_group_version() {
    for api_version in ["v1", "apps/v1", "meta.k8s.io/v1"] {
        let (v, kind, got) =
            decode_unknown(&body(api_version, "DeleteOptions", &delete_options())).unwrap();
        assert_eq!((v.as_str(), kind.as_str()), (api_version, "DeleteOptions"));
        assert_eq!(
            got,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u1"},
                "propagationPolicy": "Background",
                "dryRun": ["All"],
            })
        );
        let _: k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions =
            serde_json::from_value(got).unwrap();
    }
}

#[test]
fn eviction_embeds_delete_options() {
    use k8s_pb::api::policy::v1 as pb_policy;
    let eviction = pb_policy::Eviction {
        metadata: Some(go_meta("web-0", &[])),
        delete_options: Some(delete_options()),
    };
    check::<k8s_openapi::api::policy::v1::Eviction>(
        &body("policy/v1", "Eviction", &eviction),
        json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": "web-0"},
            "deleteOptions": {
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "u1"},
                "propagationPolicy": "Background",
                "dryRun": ["All"],
            },
        }),
    );
}

#[test]
fn binding_decodes() {
    let binding = pb_core::Binding {
        metadata: Some(go_meta("web-0", &[])),
        target: Some(pb_core::ObjectReference {
            kind: s("Node"),
            namespace: s(""),
            name: s("node-1"),
            uid: s(""),
            api_version: s(""),
            resource_version: s(""),
            field_path: s(""),
        }),
    };
    check::<k8s_openapi::api::core::v1::Binding>(
        &body("v1", "Binding", &binding),
        json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "web-0"},
            "target": {"kind": "Node", "name": "node-1"},
        }),
    );
}

#[test]
fn token_request_decodes() {
    use k8s_pb::api::authentication::v1 as pb_authn;
    let request = pb_authn::TokenRequest {
        metadata: Some(go_meta("", &[])),
        spec: Some(pb_authn::TokenRequestSpec {
            audiences: vec!["https://kubernetes.default.svc".into()],
            expiration_seconds: Some(3600),
            bound_object_ref: None,
        }),
        status: Some(pb_authn::TokenRequestStatus {
            token: s(""),
            expiration_timestamp: Some(pb_meta::Time::default()),
        }),
    };
    let (_, _, mut got) =
        decode_unknown(&body("authentication.k8s.io/v1", "TokenRequest", &request)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "metadata": {},
            "spec": {"audiences": ["https://kubernetes.default.svc"], "expirationSeconds": 3600},
            "status": {"token": ""},
        })
    );
    // The zero expirationTimestamp is null in Go and absent here; k8s-openapi requires it, so
    // the server has to ignore a request's status (as it does).
    got.as_object_mut().unwrap().remove("status");
    let _: k8s_openapi::api::authentication::v1::TokenRequest =
        serde_json::from_value(got).unwrap();
}

#[test]
fn self_subject_access_review_decodes() {
    use k8s_pb::api::authorization::v1 as pb_authz;
    let review = pb_authz::SelfSubjectAccessReview {
        metadata: Some(go_meta("", &[])),
        spec: Some(pb_authz::SelfSubjectAccessReviewSpec {
            resource_attributes: Some(pb_authz::ResourceAttributes {
                namespace: s("default"),
                verb: s("create"),
                group: s(""),
                version: s(""),
                resource: s("pods"),
                subresource: s(""),
                name: s(""),
                ..Default::default()
            }),
            non_resource_attributes: None,
        }),
        status: Some(pb_authz::SubjectAccessReviewStatus {
            allowed: Some(false),
            denied: Some(false),
            reason: s(""),
            evaluation_error: s(""),
        }),
    };
    check::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>(
        &body(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &review,
        ),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {},
            "spec": {"resourceAttributes": {
                "namespace": "default",
                "verb": "create",
                "resource": "pods",
            }},
            "status": {"allowed": false},
        }),
    );
}

#[test]
fn subject_access_review_extra_values_are_plain_arrays() {
    use k8s_pb::api::authorization::v1 as pb_authz;
    let review = pb_authz::SubjectAccessReview {
        metadata: Some(go_meta("", &[])),
        spec: Some(pb_authz::SubjectAccessReviewSpec {
            user: s("alice"),
            groups: vec!["devs".into()],
            extra: [(
                "scopes".to_string(),
                pb_authz::ExtraValue {
                    items: vec!["a".into(), "b".into()],
                },
            )]
            .into(),
            non_resource_attributes: Some(pb_authz::NonResourceAttributes {
                path: s("/healthz"),
                verb: s("get"),
            }),
            ..Default::default()
        }),
        status: None,
    };
    check::<k8s_openapi::api::authorization::v1::SubjectAccessReview>(
        &body("authorization.k8s.io/v1", "SubjectAccessReview", &review),
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "metadata": {},
            "spec": {
                "user": "alice",
                "groups": ["devs"],
                "extra": {"scopes": ["a", "b"]},
                "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
            },
        }),
    );
}

#[test]
fn events_and_leases_carry_micro_times() {
    use k8s_pb::api::coordination::v1 as pb_coord;
    use k8s_pb::api::events::v1 as pb_events;
    let event = pb_events::Event {
        metadata: Some(go_meta("web.1", &[])),
        event_time: Some(pb_meta::MicroTime {
            seconds: Some(1_795_309_323),
            nanos: Some(123_456_789),
        }),
        reporting_controller: s("kubelet"),
        reporting_instance: s("node-1"),
        action: s("Pulling"),
        reason: s("Pulling"),
        regarding: Some(pb_core::ObjectReference {
            kind: s("Pod"),
            name: s("web"),
            ..Default::default()
        }),
        note: s("pulling image"),
        r#type: s("Normal"),
        deprecated_count: Some(0),
        ..Default::default()
    };
    check::<k8s_openapi::api::events::v1::Event>(
        &body("events.k8s.io/v1", "Event", &event),
        json!({
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "web.1"},
            "eventTime": "2026-11-22T01:02:03.123456Z",
            "reportingController": "kubelet",
            "reportingInstance": "node-1",
            "action": "Pulling",
            "reason": "Pulling",
            "regarding": {"kind": "Pod", "name": "web"},
            "note": "pulling image",
            "type": "Normal",
        }),
    );

    let lease = pb_coord::Lease {
        metadata: Some(go_meta("node-1", &[])),
        spec: Some(pb_coord::LeaseSpec {
            holder_identity: s("node-1"),
            lease_duration_seconds: Some(40),
            renew_time: Some(pb_meta::MicroTime {
                seconds: Some(1_795_309_323),
                nanos: Some(0),
            }),
            ..Default::default()
        }),
    };
    check::<k8s_openapi::api::coordination::v1::Lease>(
        &body("coordination.k8s.io/v1", "Lease", &lease),
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "node-1"},
            "spec": {
                "holderIdentity": "node-1",
                "leaseDurationSeconds": 40,
                "renewTime": "2026-11-22T01:02:03.000000Z",
            },
        }),
    );
}

#[test]
fn hpa_v2_metric_targets_decode() {
    use k8s_pb::api::autoscaling::v2 as pb_hpa;
    let hpa = pb_hpa::HorizontalPodAutoscaler {
        metadata: Some(go_meta("web", &[])),
        spec: Some(pb_hpa::HorizontalPodAutoscalerSpec {
            scale_target_ref: Some(pb_hpa::CrossVersionObjectReference {
                kind: s("Deployment"),
                name: s("web"),
                api_version: s("apps/v1"),
            }),
            min_replicas: Some(1),
            max_replicas: Some(5),
            metrics: vec![pb_hpa::MetricSpec {
                r#type: s("Resource"),
                resource: Some(pb_hpa::ResourceMetricSource {
                    name: s("cpu"),
                    target: Some(pb_hpa::MetricTarget {
                        r#type: s("Utilization"),
                        average_utilization: Some(80),
                        value: None,
                        average_value: None,
                    }),
                }),
                ..Default::default()
            }],
            behavior: None,
        }),
        status: None,
    };
    check::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(
        &body("autoscaling/v2", "HorizontalPodAutoscaler", &hpa),
        json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 1,
                "maxReplicas": 5,
                "metrics": [{
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80},
                    },
                }],
            },
        }),
    );
}

#[test]
fn raw_extensions_hold_json_or_an_embedded_protobuf_object() {
    use k8s_pb::api::apps::v1 as pb_apps;
    let revision = |raw: Vec<u8>| pb_apps::ControllerRevision {
        metadata: Some(go_meta("web-1", &[])),
        data: Some(RawExtension { raw: Some(raw) }),
        revision: Some(1),
    };
    let json_raw = br#"{"spec":{"template":{"spec":{"containers":[{"name":"web"}]}}}}"#;
    check::<k8s_openapi::api::apps::v1::ControllerRevision>(
        &body(
            "apps/v1",
            "ControllerRevision",
            &revision(json_raw.to_vec()),
        ),
        json!({
            "apiVersion": "apps/v1",
            "kind": "ControllerRevision",
            "metadata": {"name": "web-1"},
            "data": {"spec": {"template": {"spec": {"containers": [{"name": "web"}]}}}},
            "revision": 1,
        }),
    );

    let embedded = body("v1", "Pod", &sample_pod());
    let (_, _, got) =
        decode_unknown(&body("apps/v1", "ControllerRevision", &revision(embedded))).unwrap();
    assert_eq!(got["data"], sample_pod_json());

    let bad = body(
        "apps/v1",
        "ControllerRevision",
        &revision(b"{nope".to_vec()),
    );
    assert!(matches!(
        decode_unknown(&bad),
        Err(ProtoError::InvalidJson { .. })
    ));
}

#[test]
fn resource_quota_maps_of_quantities_decode() {
    let quota = pb_core::ResourceQuota {
        metadata: Some(go_meta("compute", &[])),
        spec: Some(pb_core::ResourceQuotaSpec {
            hard: quantities(&[("pods", "10"), ("requests.cpu", "4")]),
            scopes: vec![],
            scope_selector: None,
        }),
        status: Some(pb_core::ResourceQuotaStatus::default()),
    };
    check::<k8s_openapi::api::core::v1::ResourceQuota>(
        &body("v1", "ResourceQuota", &quota),
        json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "compute"},
            "spec": {"hard": {"pods": "10", "requests.cpu": "4"}},
            "status": {},
        }),
    );
}

#[test]
fn rbac_and_networking_kinds_decode() {
    use k8s_pb::api::networking::v1 as pb_net;
    use k8s_pb::api::rbac::v1 as pb_rbac;
    let role = pb_rbac::Role {
        metadata: Some(go_meta("reader", &[])),
        rules: vec![pb_rbac::PolicyRule {
            verbs: vec!["get".into(), "list".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            resource_names: vec![],
            non_resource_ur_ls: vec![],
        }],
    };
    check::<k8s_openapi::api::rbac::v1::Role>(
        &body("rbac.authorization.k8s.io/v1", "Role", &role),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}],
        }),
    );

    let ingress = pb_net::Ingress {
        metadata: Some(go_meta("web", &[])),
        spec: Some(pb_net::IngressSpec {
            ingress_class_name: s(""),
            rules: vec![pb_net::IngressRule {
                host: s("example.com"),
                ingress_rule_value: Some(pb_net::IngressRuleValue {
                    http: Some(pb_net::HttpIngressRuleValue {
                        paths: vec![pb_net::HttpIngressPath {
                            path: s("/"),
                            path_type: s("Prefix"),
                            backend: Some(pb_net::IngressBackend {
                                service: Some(pb_net::IngressServiceBackend {
                                    name: s("web"),
                                    port: Some(pb_net::ServiceBackendPort {
                                        name: s(""),
                                        number: Some(80),
                                    }),
                                }),
                                resource: None,
                            }),
                        }],
                    }),
                }),
            }],
            ..Default::default()
        }),
        status: None,
    };
    check::<k8s_openapi::api::networking::v1::Ingress>(
        &body("networking.k8s.io/v1", "Ingress", &ingress),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                // A pointer: an explicit empty class name is kept.
                "ingressClassName": "",
                "rules": [{
                    "host": "example.com",
                    "http": {"paths": [{
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": "web", "port": {"number": 80}}},
                    }]},
                }],
            },
        }),
    );
}

#[test]
fn unknown_fields_are_skipped() {
    let mut cm = pb_core::ConfigMap {
        metadata: Some(go_meta("x", &[])),
        ..Default::default()
    }
    .encode_to_vec();
    // Field 99 as a varint, a length-delimited field, fixed32, fixed64 and a group.
    prost::encoding::uint64::encode(99, &7, &mut cm);
    prost::encoding::bytes::encode(100, &vec![1u8, 2, 3], &mut cm);
    prost::encoding::fixed32::encode(101, &5, &mut cm);
    prost::encoding::fixed64::encode(102, &6, &mut cm);
    cm.extend([0xab, 0x06, 0x08, 0x01, 0xac, 0x06]); // group 101 { 1: 1 }
    let (_, _, got) = decode_unknown(&envelope("v1", "ConfigMap", cm)).unwrap();
    assert_eq!(
        got,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    );
}

#[test]
fn repeated_message_fields_merge_and_scalars_take_the_last_value() {
    let first = pb_core::ConfigMap {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("a"),
            labels: labels(&[("x", "1")]),
            ..Default::default()
        }),
        data: labels(&[("k", "v")]),
        ..Default::default()
    };
    let second = pb_core::ConfigMap {
        metadata: Some(pb_meta::ObjectMeta {
            name: s("b"),
            labels: labels(&[("y", "2")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut raw = first.encode_to_vec();
    raw.extend(second.encode_to_vec());
    let (_, _, got) = decode_unknown(&envelope("v1", "ConfigMap", raw)).unwrap();
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "b", "labels": {"x": "1", "y": "2"}},
            "data": {"k": "v"},
        })
    );
}

#[test]
fn a_wrong_wire_type_for_a_known_field_is_an_error() {
    // ConfigMap.metadata (field 1) as a varint.
    let err = decode_unknown(&envelope("v1", "ConfigMap", vec![0x08, 0x01])).unwrap_err();
    assert_eq!(
        err,
        ProtoError::WireType {
            message: "k8s.io.api.core.v1.ConfigMap",
            field: 1,
            wire_type: 0
        }
    );
}

#[test]
fn envelope_errors_are_reported() {
    assert_eq!(
        decode_unknown(b"{\"kind\":\"Pod\"}"),
        Err(ProtoError::MissingMagic)
    );
    assert_eq!(
        decode_unknown(&envelope("", "Pod", vec![])),
        Err(ProtoError::MissingTypeMeta)
    );
    assert_eq!(
        decode_unknown(&envelope("example.com/v1", "Widget", vec![])),
        Err(ProtoError::UnknownKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        })
    );
    let big = vec![0u8; MAX_BODY_LEN + 1];
    assert!(matches!(
        decode_unknown(&big),
        Err(ProtoError::TooLarge { .. })
    ));
    let mut bad_int_or_string = Vec::new();
    // Service.spec(2).ports(1).targetPort(4) = IntOrString{type: 7}
    let ios = [0x08, 0x07];
    let mut port = Vec::new();
    prost::encoding::bytes::encode(4, &ios.to_vec(), &mut port);
    let mut spec = Vec::new();
    prost::encoding::bytes::encode(1, &port, &mut spec);
    prost::encoding::bytes::encode(2, &spec, &mut bad_int_or_string);
    assert_eq!(
        decode_unknown(&envelope("v1", "Service", bad_int_or_string)),
        Err(ProtoError::InvalidIntOrString(7))
    );
}

#[test]
fn every_truncation_of_a_body_fails_cleanly_or_decodes() {
    let full = body("v1", "Pod", &sample_pod());
    let mut errors = 0;
    for len in 0..full.len() {
        if decode_unknown(&full[..len]).is_err() {
            errors += 1;
        }
    }
    // Most prefixes cut a length-delimited field short; a few end on a field boundary.
    assert!(errors > full.len() * 9 / 10, "{errors} of {}", full.len());
    assert!(decode_unknown(&full).is_ok());
}

#[test]
fn deeply_embedded_objects_are_refused() {
    use k8s_pb::api::apps::v1 as pb_apps;
    let mut raw = body("v1", "ConfigMap", &pb_core::ConfigMap::default());
    for _ in 0..200 {
        let revision = pb_apps::ControllerRevision {
            data: Some(RawExtension { raw: Some(raw) }),
            ..Default::default()
        };
        raw = body("apps/v1", "ControllerRevision", &revision);
    }
    assert_eq!(decode_unknown(&raw), Err(ProtoError::TooDeep));
}

#[test]
fn deeply_nested_unknown_groups_are_refused() {
    let mut raw = Vec::new();
    for _ in 0..1000 {
        raw.extend([0xab, 0x06]); // start group 101
    }
    for _ in 0..1000 {
        raw.extend([0xac, 0x06]); // end group 101
    }
    assert_eq!(
        decode_unknown(&envelope("v1", "ConfigMap", raw)),
        Err(ProtoError::TooDeep)
    );
}

/// SplitMix64: a fixed seed makes failures reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    let mut rng = Rng(0x5eed);
    let seeds = [
        body("v1", "Pod", &sample_pod()),
        body("policy/v1", "Eviction", &pb_meta::DeleteOptions::default()),
        envelope("apps/v1", "Deployment", vec![]),
    ];
    for i in 0..20_000 {
        let input = if i % 2 == 0 {
            // Random bytes after the magic, so the envelope parser gets past the prefix.
            let len = rng.below(256);
            let mut b = MAGIC.to_vec();
            b.extend((0..len).map(|_| rng.next() as u8));
            b
        } else {
            // A valid body with a few bytes flipped, inserted or removed.
            let mut b = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(4) {
                let at = MAGIC.len() + rng.below(b.len() - MAGIC.len());
                match rng.below(3) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b.insert(at, rng.next() as u8),
                    _ => {
                        b.remove(at);
                    }
                }
                if b.len() <= MAGIC.len() {
                    break;
                }
            }
            b
        };
        // Any result is fine; a panic fails the test.
        let _ = decode_unknown(&input);
    }
}
