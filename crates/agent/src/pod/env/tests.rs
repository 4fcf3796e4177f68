use std::sync::Mutex;

use serde_json::{json, Value};

use super::*;

/// ConfigMaps and Secrets from a fixture; records what was asked for.
#[derive(Default)]
struct Fixture {
    config_maps: BTreeMap<String, BTreeMap<String, String>>,
    secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl ConfigSource for Fixture {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("cm {namespace}/{name}"));
        Ok(self.config_maps.get(name).cloned())
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.asked
            .lock()
            .unwrap()
            .push(format!("secret {namespace}/{name}"));
        Ok(self.secrets.get(name).cloned())
    }
}

fn fixture() -> Fixture {
    Fixture {
        config_maps: BTreeMap::from([(
            "settings".to_string(),
            BTreeMap::from([
                ("MODE".to_string(), "fast".to_string()),
                ("LEVEL".to_string(), "3".to_string()),
                ("bad=key".to_string(), "x".to_string()),
            ]),
        )]),
        secrets: BTreeMap::from([(
            "creds".to_string(),
            BTreeMap::from([("PASSWORD".to_string(), b"hunter2".to_vec())]),
        )]),
        asked: Mutex::default(),
    }
}

fn inputs() -> EnvInputs {
    EnvInputs {
        pod_ip: Some("10.42.0.7".parse().unwrap()),
        host_ip: "192.168.1.2".parse().unwrap(),
        allocatable_cpu_milli: 2000,
        allocatable_memory: 4 << 30,
    }
}

fn pod(container: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {
            "name": "web-1", "namespace": "shop", "uid": "u-9",
            "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "say \"hi\""},
        },
        "spec": {
            "nodeName": "node-a",
            "serviceAccountName": "builder",
            "containers": [container, {"name": "other", "image": "busybox",
                "resources": {"requests": {"memory": "64Mi"}}}],
        },
    }))
    .unwrap()
}

async fn env_of(
    container: Value,
    source: Option<&Fixture>,
) -> Result<Vec<(String, String)>, EnvError> {
    let pod = pod(container);
    let container = pod.spec.as_ref().unwrap().containers[0].clone();
    container_env(
        &pod,
        &container,
        &inputs(),
        source.map(|s| s as &dyn ConfigSource),
    )
    .await
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn env_from_comes_first_then_env_in_order_with_later_names_winning() {
    let source = fixture();
    let env = env_of(
        json!({"name": "app", "image": "busybox",
            "envFrom": [
                {"configMapRef": {"name": "settings"}},
                {"secretRef": {"name": "creds"}, "prefix": "DB_"},
            ],
            "env": [
                {"name": "MODE", "value": "slow"},
                {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "LEVEL"}}},
                {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASSWORD"}}},
            ]}),
        Some(&source),
    )
    .await
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("LEVEL", "3"),
            ("MODE", "slow"),
            ("DB_PASSWORD", "hunter2"),
            ("FROM_CM", "3"),
            ("FROM_SECRET", "hunter2"),
        ])
    );
    // Each object is read once per container start.
    assert_eq!(
        *source.asked.lock().unwrap(),
        ["cm shop/settings", "secret shop/creds"]
    );
}

#[tokio::test]
async fn missing_objects_and_keys_fail_with_the_kubelet_messages_unless_optional() {
    let source = fixture();
    let cases = [
        (
            json!({"envFrom": [{"configMapRef": {"name": "nope"}}]}),
            "configmap \"nope\" not found",
        ),
        (
            json!({"envFrom": [{"secretRef": {"name": "nope"}}]}),
            "secret \"nope\" not found",
        ),
        (
            json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "NOPE"}}}]}),
            "couldn't find key NOPE in ConfigMap shop/settings",
        ),
        (
            json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "NOPE"}}}]}),
            "couldn't find key NOPE in Secret shop/creds",
        ),
        (
            json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "K"}}}]}),
            "secret \"gone\" not found",
        ),
    ];
    for (mut container, message) in cases {
        container["name"] = json!("app");
        let err = env_of(container, Some(&source)).await.unwrap_err();
        assert_eq!(err.0, message);
    }

    let optional = env_of(
        json!({"name": "app",
            "envFrom": [{"configMapRef": {"name": "nope", "optional": true}}],
            "env": [
                {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "NOPE", "optional": true}}},
                {"name": "B", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "K", "optional": true}}},
                {"name": "C", "value": "c"},
            ]}),
        Some(&source),
    )
    .await
    .unwrap();
    assert_eq!(optional, pairs(&[("C", "c")]));
}

#[tokio::test]
async fn without_a_source_config_maps_and_secrets_are_left_out() {
    let env = env_of(
        json!({"name": "app",
        "envFrom": [{"configMapRef": {"name": "nope"}}],
        "env": [
            {"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "K"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(env, pairs(&[("POD", "web-1")]));
}

#[tokio::test]
async fn field_refs_read_the_pod_and_node() {
    let field = |name: &str, path: &str| json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}});
    let env = env_of(
        json!({"name": "app", "env": [
            field("NAME", "metadata.name"),
            field("NS", "metadata.namespace"),
            field("UID", "metadata.uid"),
            field("APP", "metadata.labels['app']"),
            field("MISSING", "metadata.labels['nope']"),
            field("NOTE", "metadata.annotations['note']"),
            field("LABELS", "metadata.labels"),
            field("NODE", "spec.nodeName"),
            field("SA", "spec.serviceAccountName"),
            field("HOST", "status.hostIP"),
            field("HOSTS", "status.hostIPs"),
            field("IP", "status.podIP"),
            field("IPS", "status.podIPs"),
        ]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("NAME", "web-1"),
            ("NS", "shop"),
            ("UID", "u-9"),
            ("APP", "web"),
            ("MISSING", ""),
            ("NOTE", "say \"hi\""),
            ("LABELS", "app=\"web\"\ntier=\"front\""),
            ("NODE", "node-a"),
            ("SA", "builder"),
            ("HOST", "192.168.1.2"),
            ("HOSTS", "192.168.1.2"),
            ("IP", "10.42.0.7"),
            ("IPS", "10.42.0.7"),
        ])
    );
    let err = env_of(
        json!({"name": "app", "env": [field("X", "spec.hostname")]}),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, "unsupported fieldPath: spec.hostname");
}

#[tokio::test]
async fn resource_field_refs_divide_and_round_up_with_allocatable_for_missing_limits() {
    let resource = |name: &str, resource: &str, divisor: Option<&str>, container: Option<&str>| {
        let mut selector = json!({"resource": resource});
        if let Some(d) = divisor {
            selector["divisor"] = json!(d);
        }
        if let Some(c) = container {
            selector["containerName"] = json!(c);
        }
        json!({"name": name, "valueFrom": {"resourceFieldRef": selector}})
    };
    let env = env_of(
        json!({"name": "app",
        "resources": {"requests": {"cpu": "250m", "memory": "100Mi"}, "limits": {"cpu": "1500m"}},
        "env": [
            resource("CPU_REQ", "requests.cpu", None, None),
            resource("CPU_REQ_M", "requests.cpu", Some("1m"), None),
            resource("CPU_LIM", "limits.cpu", None, None),
            resource("MEM_REQ_MI", "requests.memory", Some("1Mi"), None),
            resource("MEM_LIM", "limits.memory", None, None),
            resource("OTHER_MEM", "requests.memory", Some("1Mi"), Some("other")),
            resource("OTHER_CPU_LIM", "limits.cpu", Some("1m"), Some("other")),
        ]}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("CPU_REQ", "1"),
            ("CPU_REQ_M", "250"),
            ("CPU_LIM", "2"),
            ("MEM_REQ_MI", "100"),
            ("MEM_LIM", "4294967296"),
            ("OTHER_MEM", "64"),
            ("OTHER_CPU_LIM", "2000"),
        ])
    );
}

#[tokio::test]
async fn values_expand_references_to_earlier_variables() {
    let source = fixture();
    let env = env_of(
        json!({"name": "app",
        "envFrom": [{"configMapRef": {"name": "settings"}}],
        "env": [
            {"name": "A", "value": "mode=$(MODE)"},
            {"name": "B", "value": "$(A),$(LATER),$$(A),$$,$x,$(open"},
            {"name": "LATER", "value": "l"},
        ]}),
        Some(&source),
    )
    .await
    .unwrap();
    assert_eq!(env[2], ("A".to_string(), "mode=fast".to_string()));
    assert_eq!(
        env[3],
        (
            "B".to_string(),
            "mode=fast,$(LATER),$(A),$,$x,$(open".to_string()
        )
    );
}

#[test]
fn commands_expand_with_the_finished_environment() {
    let env = pairs(&[("GREETING", "hi there"), ("N", "3")]);
    let words = [
        "sh".to_string(),
        "-c".to_string(),
        "echo $(GREETING) $(N) $(UNSET) $$(N) $HOME".to_string(),
    ];
    assert_eq!(
        expand_command(&words, &env),
        ["sh", "-c", "echo hi there 3 $(UNSET) $(N) $HOME"]
    );
    assert_eq!(expand("$", |_| None), "$");
    assert_eq!(expand("a$", |_| None), "a$");
    assert_eq!(expand("$()", |_| Some("v".into())), "v");
    assert_eq!(expand("é$(X)ü", |_| Some("ß".into())), "éßü");
}
