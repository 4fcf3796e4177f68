//! Pods: pod-only defaulting on top of the pod spec's (requests from limits, resize policy,
//! service links, host-network ports, priority, initial phase and QoS class), the update rule
//! that freezes most of the spec, the `kubectl get pods` columns with upstream's STATUS logic,
//! and the pod field selectors.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::podspec;
use super::util::{self, arr, default, each_mut, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Pod.
pub struct PodOps;

impl KindOps for PodOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Pod>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        let spec = util::obj(obj, "spec");
        podspec::default_pod_spec(spec);
        default_pod_only(spec);
        if obj["status"]["phase"].as_str().unwrap_or("").is_empty() {
            let qos = qos_class(&obj["spec"]);
            let status = util::obj(obj, "status");
            status["phase"] = json!("Pending");
            default(status, "qosClass", json!(qos));
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        podspec::validate_pod_spec(&obj["spec"], "spec", &mut errs);
        if let Some(old) = old {
            validate_spec_update(&obj["spec"], &old["spec"], &mut errs);
        }
        errs
    }

    fn has_status(&self) -> bool {
        true
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        let spec = &obj["spec"];
        let status = &obj["status"];
        Some(match path {
            "spec.nodeName" => s(spec, "nodeName").to_string(),
            "spec.restartPolicy" => s(spec, "restartPolicy").to_string(),
            "spec.schedulerName" => s(spec, "schedulerName").to_string(),
            "spec.serviceAccountName" => s(spec, "serviceAccountName").to_string(),
            "spec.hostNetwork" => util::flag(spec, "hostNetwork").to_string(),
            "status.phase" => s(status, "phase").to_string(),
            "status.podIP" => pod_ip(obj).to_string(),
            "status.nominatedNodeName" => s(status, "nominatedNodeName").to_string(),
            _ => return None,
        })
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Ready",
                "string",
                "",
                0,
                "Ready containers out of all containers in the pod.",
            ),
            Column::new(
                "Status",
                "string",
                "",
                0,
                "Summary of the pod's phase and container states.",
            ),
            Column::new(
                "Restarts",
                "string",
                "",
                0,
                "Container restarts in the pod, with the time of the latest.",
            ),
            Column::age(),
            Column::new("IP", "string", "", 1, "The pod's first IP address."),
            Column::new("Node", "string", "", 1, "The node the pod is bound to."),
            Column::new(
                "Nominated Node",
                "string",
                "",
                1,
                "The node the pod may run on after preemption.",
            ),
            Column::new(
                "Readiness Gates",
                "string",
                "",
                1,
                "Readiness gates whose conditions are true, out of all gates.",
            ),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let summary = summarize(obj, now);
        let or_none = |v: &str| {
            if v.is_empty() {
                "<none>".to_string()
            } else {
                v.to_string()
            }
        };
        let spec = &obj["spec"];
        let gates = arr(spec, "readinessGates");
        let readiness = if gates.is_empty() {
            "<none>".to_string()
        } else {
            let conds = arr(&obj["status"], "conditions");
            let ok = gates
                .iter()
                .filter(|g| {
                    conds
                        .iter()
                        .find(|c| s(c, "type") == s(g, "conditionType"))
                        .is_some_and(|c| s(c, "status") == "True")
                })
                .count();
            format!("{ok}/{}", gates.len())
        };
        vec![
            json!(crate::meta::name(obj)),
            json!(format!("{}/{}", summary.ready, summary.total)),
            json!(summary.status),
            json!(summary.restarts),
            json!(crate::table::age(obj, now)),
            json!(or_none(pod_ip(obj))),
            json!(or_none(s(spec, "nodeName"))),
            json!(or_none(s(&obj["status"], "nominatedNodeName"))),
            json!(readiness),
        ]
    }
}

/// The first pod IP (`status.podIPs[0].ip`, falling back to `status.podIP`).
fn pod_ip(obj: &Value) -> &str {
    let status = &obj["status"];
    arr(status, "podIPs")
        .first()
        .map(|p| s(p, "ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| s(status, "podIP"))
}

/// Defaults kube-apiserver applies to a Pod's spec but not to templates (`SetDefaults_Pod`),
/// plus what the Priority admission plugin sets when no priority class is named.
fn default_pod_only(spec: &mut Value) {
    for key in ["containers", "initContainers"] {
        let is_main = key == "containers";
        each_mut(spec, key, |c| {
            let limits = c["resources"]["limits"].as_object().cloned();
            if let Some(limits) = limits {
                let res = util::obj(c, "resources");
                let requests = util::obj(res, "requests");
                for (k, v) in limits {
                    default(requests, &k, v);
                }
            }
            // In-place resize is on by default in 1.33: containers with requests get a
            // NotRequired resize policy for CPU and memory.
            if is_main {
                let requests = c["resources"]["requests"].as_object().cloned();
                if let Some(requests) = requests {
                    let mut policy: Vec<Value> = arr(c, "resizePolicy").to_vec();
                    for res in ["cpu", "memory"] {
                        let known = policy.iter().any(|p| s(p, "resourceName") == res);
                        if requests.contains_key(res) && !known {
                            policy
                                .push(json!({"resourceName": res, "restartPolicy": "NotRequired"}));
                        }
                    }
                    if !policy.is_empty() {
                        c["resizePolicy"] = Value::Array(policy);
                    }
                }
            }
        });
    }
    default(spec, "enableServiceLinks", json!(true));
    if util::flag(spec, "hostNetwork") {
        for key in ["containers", "initContainers"] {
            each_mut(spec, key, |c| {
                each_mut(c, "ports", |p| {
                    if util::int(p, "hostPort") == 0 {
                        p["hostPort"] = p["containerPort"].clone();
                    }
                })
            });
        }
    }
    if s(spec, "priorityClassName").is_empty() && spec.get("priority").is_none() {
        spec["priority"] = json!(0);
        default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    }
}

/// The QoS class of a pod spec (`Guaranteed`, `Burstable` or `BestEffort`), from CPU and
/// memory requests and limits of all containers.
pub fn qos_class(spec: &Value) -> &'static str {
    use std::collections::BTreeMap;
    let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
    let mut limits: BTreeMap<&str, f64> = BTreeMap::new();
    let mut guaranteed = true;
    for key in ["initContainers", "containers"] {
        for c in arr(spec, key) {
            let r = &c["resources"];
            for res in ["cpu", "memory"] {
                if let Some(q) = r["requests"][res].as_str().and_then(util::parse_quantity) {
                    if q > 0.0 {
                        *requests.entry(res).or_default() += q;
                    }
                }
            }
            let mut found = 0;
            for res in ["cpu", "memory"] {
                if let Some(q) = r["limits"][res].as_str().and_then(util::parse_quantity) {
                    if q > 0.0 {
                        *limits.entry(res).or_default() += q;
                        found += 1;
                    }
                }
            }
            if found < 2 {
                guaranteed = false;
            }
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (res, q) in &requests {
            if limits
                .get(res)
                .is_none_or(|l| (l - q).abs() > f64::EPSILON * l.abs().max(1.0))
            {
                guaranteed = false;
            }
        }
    }
    if guaranteed && requests.len() == limits.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

const UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Only images, the active deadline, added tolerations, the grace period and removed
/// scheduling gates may change in a pod's spec; binding may set `nodeName` once.
fn validate_spec_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |spec: &Value, node_name_free: bool| {
        let mut spec = spec.clone();
        for key in ["containers", "initContainers"] {
            each_mut(&mut spec, key, |c| {
                if let Some(m) = c.as_object_mut() {
                    m.remove("image");
                }
            });
        }
        if let Some(m) = spec.as_object_mut() {
            for key in [
                "activeDeadlineSeconds",
                "tolerations",
                "terminationGracePeriodSeconds",
                "schedulingGates",
            ] {
                m.remove(key);
            }
            if node_name_free {
                m.remove("nodeName");
            }
        }
        spec
    };
    let node_name_free = s(old, "nodeName").is_empty();
    let old_tolerations = arr(old, "tolerations");
    let new_tolerations = arr(new, "tolerations");
    let tolerations_kept = old_tolerations.iter().all(|t| new_tolerations.contains(t));
    let old_gates = arr(old, "schedulingGates");
    let gates_only_removed = arr(new, "schedulingGates")
        .iter()
        .all(|g| old_gates.contains(g));
    if strip(new, node_name_free) != strip(old, node_name_free)
        || !tolerations_kept
        || !gates_only_removed
    {
        errs.push(FieldError::forbidden("spec", UPDATE_FORBIDDEN));
    }
}

/// What the pod printer derives from a pod's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSummary {
    pub ready: usize,
    pub total: usize,
    /// The STATUS column.
    pub status: String,
    /// The RESTARTS column (`3` or `3 (5m ago)`).
    pub restarts: String,
}

fn restartable(init_specs: &[Value], name: &str) -> bool {
    init_specs
        .iter()
        .find(|c| s(c, "name") == name)
        .is_some_and(|c| s(c, "restartPolicy") == "Always")
}

fn later(cur: Option<jiff::Timestamp>, cs: &Value) -> Option<jiff::Timestamp> {
    let t = util::parse_time(cs["lastState"]["terminated"].get("finishedAt"));
    match (cur, t) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn terminated_reason(t: &Value, prefix: &str) -> String {
    if !s(t, "reason").is_empty() {
        format!("{prefix}{}", s(t, "reason"))
    } else if util::int(t, "signal") != 0 {
        format!("{prefix}Signal:{}", util::int(t, "signal"))
    } else {
        format!("{prefix}ExitCode:{}", util::int(t, "exitCode"))
    }
}

/// READY, STATUS and RESTARTS of a pod, computed like kube-apiserver's pod printer.
pub fn summarize(pod: &Value, now: jiff::Timestamp) -> PodSummary {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let init_specs = arr(spec, "initContainers");
    let conditions = arr(status, "conditions");
    let cond_true = |ty: &str| {
        conditions
            .iter()
            .find(|c| s(c, "type") == ty)
            .is_some_and(|c| s(c, "status") == "True")
    };

    let phase = s(status, "phase");
    let mut reason = if s(status, "reason").is_empty() {
        phase.to_string()
    } else {
        s(status, "reason").to_string()
    };
    if conditions
        .iter()
        .any(|c| s(c, "type") == "PodScheduled" && s(c, "reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    let total = arr(spec, "containers").len()
        + init_specs
            .iter()
            .filter(|c| s(c, "restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;

    let mut initializing = false;
    let init_statuses = arr(status, "initContainerStatuses");
    for (i, cs) in init_statuses.iter().enumerate() {
        let rc = util::int(cs, "restartCount");
        restarts += rc;
        last_restart = later(last_restart, cs);
        let sidecar = restartable(init_specs, s(cs, "name"));
        if sidecar {
            sidecar_restarts += rc;
            last_sidecar_restart = later(last_sidecar_restart, cs);
        }
        let state = &cs["state"];
        let terminated = state.get("terminated").filter(|t| t.is_object());
        let waiting = state.get("waiting").filter(|w| w.is_object());
        if terminated.is_some_and(|t| util::int(t, "exitCode") == 0) {
            continue;
        }
        if sidecar && util::flag(cs, "started") {
            if util::flag(cs, "ready") {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = terminated_reason(t, "Init:");
        } else if let Some(w) = waiting.filter(|w| {
            let r = s(w, "reason");
            !r.is_empty() && r != "PodInitializing"
        }) {
            reason = format!("Init:{}", s(w, "reason"));
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || cond_true("Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for cs in arr(status, "containerStatuses").iter().rev() {
            restarts += util::int(cs, "restartCount");
            last_restart = later(last_restart, cs);
            let state = &cs["state"];
            let waiting = state.get("waiting").filter(|w| w.is_object());
            let terminated = state.get("terminated").filter(|t| t.is_object());
            if let Some(w) = waiting.filter(|w| !s(w, "reason").is_empty()) {
                reason = s(w, "reason").to_string();
            } else if let Some(t) = terminated {
                reason = terminated_reason(t, "");
            } else if util::flag(cs, "ready") && state.get("running").is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if cond_true("Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if crate::meta::deletion_timestamp(pod).is_some() {
        if s(status, "reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(t) if restarts != 0 => format!(
            "{restarts} ({} ago)",
            crate::table::human_duration(now.as_second() - t.as_second())
        ),
        _ => restarts.to_string(),
    };
    PodSummary {
        ready,
        total,
        status: reason,
        restarts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> jiff::Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    fn pod(spec: Value, status: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "default",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": spec, "status": status})
    }

    fn one() -> Value {
        json!({"containers": [{"name": "app", "image": "x"}]})
    }

    #[test]
    fn status_column_follows_upstream_logic() {
        let init = json!({"initContainers": [{"name": "init", "image": "x"}],
                          "containers": [{"name": "app", "image": "x"}]});
        let cases: Vec<(&str, Value, Value, &str, &str)> = vec![
            ("new pod", one(), json!({}), "", "0/1"),
            (
                "pending",
                one(),
                json!({"phase": "Pending"}),
                "Pending",
                "0/1",
            ),
            (
                "creating",
                one(),
                json!({"phase": "Pending", "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
                "ContainerCreating",
                "0/1",
            ),
            (
                "running",
                one(),
                json!({"phase": "Running", "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0,
                     "state": {"running": {"startedAt": "2026-01-01T00:00:05Z"}}}]}),
                "Running",
                "1/1",
            ),
            (
                "crash loop",
                one(),
                json!({"phase": "Running", "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 4,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "CrashLoopBackOff",
                "0/1",
            ),
            (
                "completed",
                one(),
                json!({"phase": "Succeeded", "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
                "Completed",
                "0/1",
            ),
            (
                "killed without reason",
                one(),
                json!({"phase": "Failed", "containerStatuses": [
                    {"name": "app", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}),
                "Signal:9",
                "0/1",
            ),
            (
                "init waiting",
                init.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init", "ready": false, "restartCount": 0,
                     "state": {"waiting": {"reason": "PodInitializing"}}}]}),
                "Init:0/1",
                "0/1",
            ),
            (
                "init crash",
                init.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init", "ready": false, "restartCount": 2,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
                "Init:CrashLoopBackOff",
                "0/1",
            ),
            (
                "init failed",
                init,
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "init", "ready": false, "restartCount": 0,
                     "state": {"terminated": {"exitCode": 3}}}]}),
                "Init:ExitCode:3",
                "0/1",
            ),
            (
                "gated",
                one(),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
                "SchedulingGated",
                "0/1",
            ),
            (
                "evicted",
                one(),
                json!({"phase": "Failed", "reason": "Evicted"}),
                "Evicted",
                "0/1",
            ),
        ];
        for (what, spec, status, want, ready) in cases {
            let sum = summarize(&pod(spec, status), now());
            assert_eq!(sum.status, want, "{what}");
            assert_eq!(format!("{}/{}", sum.ready, sum.total), ready, "{what}");
        }
    }

    #[test]
    fn deleting_pods_show_terminating_unless_finished() {
        let mut p = pod(one(), json!({"phase": "Running"}));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:09:00Z");
        assert_eq!(summarize(&p, now()).status, "Terminating");
        p["status"]["phase"] = json!("Succeeded");
        assert_eq!(summarize(&p, now()).status, "Succeeded");
        p["status"] = json!({"phase": "Running", "reason": "NodeLost"});
        assert_eq!(summarize(&p, now()).status, "Unknown");
    }

    #[test]
    fn restarts_show_when_the_last_one_happened() {
        let p = pod(
            one(),
            json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "ready": true, "restartCount": 3,
                 "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-01-01T00:09:55Z"}}}]}),
        );
        assert_eq!(summarize(&p, now()).restarts, "3 (5s ago)");
        let p = pod(one(), json!({"phase": "Running"}));
        assert_eq!(summarize(&p, now()).restarts, "0");
    }

    #[test]
    fn sidecars_count_toward_ready_and_total() {
        let spec = json!({"initContainers": [{"name": "proxy", "image": "x", "restartPolicy": "Always"}],
                          "containers": [{"name": "app", "image": "x"}]});
        let status = json!({"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "ready": true, "started": true, "restartCount": 1,
                                       "state": {"running": {}}}],
            "containerStatuses": [{"name": "app", "ready": true, "restartCount": 0, "state": {"running": {}}}]});
        let sum = summarize(&pod(spec, status), now());
        assert_eq!(
            (sum.ready, sum.total, sum.status.as_str()),
            (2, 2, "Running")
        );
        assert_eq!(sum.restarts, "1");
    }

    #[test]
    fn wide_row_has_ip_node_and_placeholders() {
        let p = pod(
            one(),
            json!({"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}], "podIP": "10.42.0.5"}),
        );
        let row = PodOps.table_row(&p, now());
        assert_eq!(row.len(), PodOps.table_columns().len());
        assert_eq!(
            row,
            vec![
                json!("p"),
                json!("0/1"),
                json!("Running"),
                json!("0"),
                json!("10m"),
                json!("10.42.0.5"),
                json!("<none>"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn pods_get_pod_only_defaults() {
        let mut p = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        PodOps.apply_defaults(&mut p);
        let spec = &p["spec"];
        assert_eq!(spec["enableServiceLinks"], true);
        assert_eq!(spec["priority"], 0);
        assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Gi"})
        );
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(
            p["status"],
            json!({"phase": "Pending", "qosClass": "Guaranteed"})
        );
        assert!(PodOps.validate(&p, None).is_empty());
    }

    #[test]
    fn qos_classes() {
        assert_eq!(qos_class(&one()), "BestEffort");
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]})),
            "Burstable"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {
                "requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}}}]})),
            "Guaranteed"
        );
    }

    #[test]
    fn pod_spec_updates_are_limited_to_images_and_tolerations() {
        let mut old = json!({"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "nginx:1"}]}});
        PodOps.apply_defaults(&mut old);
        let mut new = old.clone();
        new["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["spec"]["nodeName"] = json!("node-1");
        assert!(PodOps.validate(&new, Some(&old)).is_empty());
        new["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}]);
        let errs = PodOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "spec");
        assert_eq!(errs[0].reason, crate::Reason::FieldValueForbidden);
    }

    #[test]
    fn field_selectors_cover_upstream_pod_fields() {
        let p = json!({"spec": {"nodeName": "n1", "restartPolicy": "Always", "hostNetwork": true},
                       "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.1"}]}});
        assert_eq!(PodOps.field(&p, "spec.nodeName").as_deref(), Some("n1"));
        assert_eq!(
            PodOps.field(&p, "spec.hostNetwork").as_deref(),
            Some("true")
        );
        assert_eq!(PodOps.field(&p, "status.phase").as_deref(), Some("Running"));
        assert_eq!(
            PodOps.field(&p, "status.podIP").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            PodOps.field(&p, "spec.serviceAccountName").as_deref(),
            Some("")
        );
        assert_eq!(
            PodOps.field(&p, "status.nominatedNodeName").as_deref(),
            Some("")
        );
        assert_eq!(PodOps.field(&p, "spec.containers"), None);
    }
}
