//! The pod spec as every kind that embeds one sees it: defaulting (what kube-apiserver fills in
//! for a `PodSpec` wherever it appears, including workload templates) and validation (the
//! subset of `ValidatePodSpec` users run into). Pod-only behaviour (requests from limits,
//! `enableServiceLinks`, QoS class, update rules) lives in `pod.rs`; templates never get it,
//! as upstream.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::util::{self, arr, default, default_str, each_mut, s, with_mut};
use crate::validation::{self, FieldError, Reason};

/// Default a `PodSpec` object in place (`SetDefaults_PodSpec` and everything nested in it).
pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default_str(spec, "dnsPolicy", "ClusterFirst");
    default_str(spec, "restartPolicy", "Always");
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default_str(spec, "schedulerName", "default-scheduler");
    for key in ["containers", "initContainers", "ephemeralContainers"] {
        each_mut(spec, key, default_container);
    }
    each_mut(spec, "volumes", default_volume);
}

/// Default a `PodTemplateSpec` object (`{metadata, spec}`) in place.
pub fn default_template(template: &mut Value) {
    if let Some(spec) = template.get_mut("spec") {
        default_pod_spec(spec);
    } else if template.is_object() {
        let spec = util::obj(template, "spec");
        default_pod_spec(spec);
    }
}

/// The pull policy kube-apiserver picks for an image: `Always` for `:latest` or no tag (and no
/// digest), `IfNotPresent` otherwise.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    if s(c, "imagePullPolicy").is_empty() {
        let policy = default_pull_policy(s(c, "image"));
        c["imagePullPolicy"] = json!(policy);
    }
    default_str(c, "terminationMessagePath", "/dev/termination-log");
    default_str(c, "terminationMessagePolicy", "File");
    default(c, "resources", json!({}));
    each_mut(c, "ports", |p| default_str(p, "protocol", "TCP"));
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        with_mut(c, probe, default_probe);
    }
    with_mut(c, "lifecycle", |l| {
        for hook in ["postStart", "preStop"] {
            with_mut(l, hook, |h| with_mut(h, "httpGet", default_http_get));
        }
    });
    each_mut(c, "env", |e| {
        with_mut(e, "valueFrom", |vf| {
            with_mut(vf, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
            with_mut(vf, "resourceFieldRef", |r| {
                default(r, "divisor", json!("0"))
            });
        })
    });
}

fn default_probe(p: &mut Value) {
    for (key, val) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if util::int(p, key) == 0 {
            p[key] = json!(val);
        }
    }
    with_mut(p, "httpGet", default_http_get);
    with_mut(p, "grpc", |g| default(g, "service", json!("")));
}

fn default_http_get(h: &mut Value) {
    default_str(h, "path", "/");
    default_str(h, "scheme", "HTTP");
}

fn default_downward_items(v: &mut Value) {
    each_mut(v, "items", |item| {
        with_mut(item, "fieldRef", |f| default_str(f, "apiVersion", "v1"));
        with_mut(item, "resourceFieldRef", |r| {
            default(r, "divisor", json!("0"))
        });
    });
}

fn default_volume(v: &mut Value) {
    let Some(map) = v.as_object() else {
        return;
    };
    if map.keys().all(|k| k == "name") {
        v["emptyDir"] = json!({});
    }
    for key in ["configMap", "secret"] {
        with_mut(v, key, |src| default(src, "defaultMode", json!(420)));
    }
    with_mut(v, "downwardAPI", |src| {
        default(src, "defaultMode", json!(420));
        default_downward_items(src);
    });
    with_mut(v, "projected", |src| {
        default(src, "defaultMode", json!(420));
        each_mut(src, "sources", |source| {
            with_mut(source, "serviceAccountToken", |t| {
                default(t, "expirationSeconds", json!(3600))
            });
            with_mut(source, "downwardAPI", default_downward_items);
        });
    });
    with_mut(v, "hostPath", |h| default(h, "type", json!("")));
    with_mut(v, "ephemeral", |e| {
        with_mut(e, "volumeClaimTemplate", |t| {
            with_mut(t, "spec", |spec| {
                default(spec, "volumeMode", json!("Filesystem"))
            })
        })
    });
}

const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const PULL_POLICIES: &[&str] = &["Always", "IfNotPresent", "Never"];
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

/// The message kube-apiserver gives for a port outside 1–65535.
pub const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";

/// An IANA service name as a port name: ≤ 15 lowercase alphanumerics or '-', at least one
/// letter, no leading, trailing or doubled '-'.
pub fn port_name_error(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 15 {
        return Some("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Some("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some("must contain at least one letter (a-z)");
    }
    if name.contains("--") {
        return Some("must not contain consecutive hyphens");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("must not begin or end with a hyphen");
    }
    None
}

/// Validate a pod template (`metadata` labels and annotations, then the spec) at `path`
/// (`spec.template`).
pub fn validate_template(template: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(t) = template.filter(|t| t.is_object()) else {
        errs.push(FieldError::required(path, ""));
        return;
    };
    let meta = &t["metadata"];
    util::validate_labels(meta.get("labels"), &format!("{path}.metadata.labels"), errs);
    if let Some(ann) = meta.get("annotations").and_then(Value::as_object) {
        for k in ann.keys() {
            if !validation::is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    format!("{path}.metadata.annotations"),
                    &json!(k),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    validate_pod_spec(&t["spec"], &format!("{path}.spec"), errs);
}

/// Validate a `PodSpec` at `path` (`spec` for pods, `spec.template.spec` for workloads).
pub fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let volumes = validate_volumes(spec, path, errs);

    if arr(spec, "containers").is_empty() {
        errs.push(FieldError::required(format!("{path}.containers"), ""));
    }
    let mut names = BTreeSet::new();
    let mut port_names = BTreeSet::new();
    for key in ["initContainers", "containers"] {
        for (i, c) in arr(spec, key).iter().enumerate() {
            let cp = format!("{path}.{key}[{i}]");
            validate_container(c, &cp, &volumes, &mut names, &mut port_names, errs);
            if key == "initContainers" {
                if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
                    if rp != "Always" {
                        errs.push(FieldError::not_supported(
                            format!("{cp}.restartPolicy"),
                            &json!(rp),
                            &["Always"],
                        ));
                    }
                }
            }
        }
    }

    let restart = s(spec, "restartPolicy");
    if !RESTART_POLICIES.contains(&restart) {
        errs.push(FieldError::not_supported(
            format!("{path}.restartPolicy"),
            &json!(restart),
            RESTART_POLICIES,
        ));
    }
    let dns = s(spec, "dnsPolicy");
    if !DNS_POLICIES.contains(&dns) {
        errs.push(FieldError::not_supported(
            format!("{path}.dnsPolicy"),
            &json!(dns),
            DNS_POLICIES,
        ));
    } else if dns == "None" && spec.get("dnsConfig").is_none() {
        errs.push(FieldError::required(
            format!("{path}.dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    if let Some(n) = spec.get("activeDeadlineSeconds").and_then(Value::as_i64) {
        if !(1..=i64::from(u32::MAX)).contains(&n) {
            errs.push(FieldError::invalid(
                format!("{path}.activeDeadlineSeconds"),
                &json!(n),
                "must be between 1 and 4294967295, inclusive",
            ));
        }
    }
    util::validate_labels(
        spec.get("nodeSelector"),
        &format!("{path}.nodeSelector"),
        errs,
    );
    for key in ["hostname", "subdomain"] {
        if let Some(h) = spec.get(key).and_then(Value::as_str) {
            if !h.is_empty() && !validation::is_dns1123_label(h) {
                errs.push(FieldError::invalid(
                    format!("{path}.{key}"),
                    &json!(h),
                    validation::DNS1123_LABEL_MSG,
                ));
            }
        }
    }
    for (i, t) in arr(spec, "tolerations").iter().enumerate() {
        let tp = format!("{path}.tolerations[{i}]");
        let op = s(t, "operator");
        if !["", "Equal", "Exists"].contains(&op) {
            errs.push(FieldError::not_supported(
                format!("{tp}.operator"),
                &json!(op),
                &["Equal", "Exists"],
            ));
        }
        if op == "Exists" && !s(t, "value").is_empty() {
            errs.push(FieldError::invalid(
                format!("{tp}.operator"),
                &t["value"],
                "value must be empty when `operator` is 'Exists'",
            ));
        }
        let effect = s(t, "effect");
        if !["", "NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            errs.push(FieldError::not_supported(
                format!("{tp}.effect"),
                &json!(effect),
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// Validate `volumes`; returns the volume names, for checking mounts.
fn validate_volumes(spec: &Value, path: &str, errs: &mut Vec<FieldError>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, v) in arr(spec, "volumes").iter().enumerate() {
        let vp = format!("{path}.volumes[{i}]");
        let name = s(v, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{vp}.name"), ""));
        } else if !validation::is_dns1123_label(name) {
            errs.push(FieldError::invalid(
                format!("{vp}.name"),
                &json!(name),
                validation::DNS1123_LABEL_MSG,
            ));
        } else if !names.insert(name.to_string()) {
            errs.push(FieldError::duplicate(format!("{vp}.name"), &json!(name)));
        }
        let sources = v
            .as_object()
            .map(|m| m.keys().filter(|k| *k != "name").count())
            .unwrap_or(0);
        if sources == 0 {
            errs.push(FieldError::required(
                vp.clone(),
                "must specify a volume type",
            ));
        } else if sources > 1 {
            errs.push(FieldError::forbidden(
                vp.clone(),
                "may not specify more than 1 volume type",
            ));
        }
        for key in ["configMap", "secret"] {
            if let Some(mode) = v
                .get(key)
                .and_then(|s| s.get("defaultMode"))
                .and_then(Value::as_i64)
            {
                if !(0..=0o777).contains(&mode) {
                    errs.push(FieldError::invalid(
                        format!("{vp}.{key}.defaultMode"),
                        &json!(mode),
                        "must be a number between 0 and 0777 (octal), both inclusive",
                    ));
                }
            }
        }
    }
    names
}

fn validate_container(
    c: &Value,
    cp: &str,
    volumes: &BTreeSet<String>,
    names: &mut BTreeSet<String>,
    port_names: &mut BTreeSet<String>,
    errs: &mut Vec<FieldError>,
) {
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(FieldError::required(format!("{cp}.name"), ""));
    } else if !validation::is_dns1123_label(name) {
        errs.push(FieldError::invalid(
            format!("{cp}.name"),
            &json!(name),
            validation::DNS1123_LABEL_MSG,
        ));
    } else if !names.insert(name.to_string()) {
        errs.push(FieldError::duplicate(format!("{cp}.name"), &json!(name)));
    }
    let image = s(c, "image");
    if image.is_empty() {
        errs.push(FieldError::required(format!("{cp}.image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            format!("{cp}.image"),
            &json!(image),
            "must not have leading or trailing whitespace",
        ));
    }
    let pull = s(c, "imagePullPolicy");
    if !PULL_POLICIES.contains(&pull) {
        errs.push(FieldError::not_supported(
            format!("{cp}.imagePullPolicy"),
            &json!(pull),
            PULL_POLICIES,
        ));
    }
    let tmp = s(c, "terminationMessagePolicy");
    if !["File", "FallbackToLogsOnError"].contains(&tmp) {
        errs.push(FieldError::not_supported(
            format!("{cp}.terminationMessagePolicy"),
            &json!(tmp),
            &["File", "FallbackToLogsOnError"],
        ));
    }
    for (j, p) in arr(c, "ports").iter().enumerate() {
        let pp = format!("{cp}.ports[{j}]");
        if let Some(pn) = p.get("name").and_then(Value::as_str) {
            if let Some(msg) = port_name_error(pn) {
                errs.push(FieldError::invalid(format!("{pp}.name"), &json!(pn), msg));
            } else if !port_names.insert(pn.to_string()) {
                errs.push(FieldError::duplicate(format!("{pp}.name"), &json!(pn)));
            }
        }
        match p.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.push(FieldError::required(format!("{pp}.containerPort"), "")),
            Some(n) if !(1..=65535).contains(&n) => errs.push(FieldError::invalid(
                format!("{pp}.containerPort"),
                &json!(n),
                PORT_RANGE_MSG,
            )),
            _ => {}
        }
        if let Some(n) = p.get("hostPort").and_then(Value::as_i64) {
            if n != 0 && !(1..=65535).contains(&n) {
                errs.push(FieldError::invalid(
                    format!("{pp}.hostPort"),
                    &json!(n),
                    PORT_RANGE_MSG,
                ));
            }
        }
        let proto = s(p, "protocol");
        if !PROTOCOLS.contains(&proto) {
            errs.push(FieldError::not_supported(
                format!("{pp}.protocol"),
                &json!(proto),
                PROTOCOLS,
            ));
        }
    }
    for (j, e) in arr(c, "env").iter().enumerate() {
        let name = s(e, "name");
        let ep = format!("{cp}.env[{j}].name");
        if name.is_empty() {
            errs.push(FieldError::required(ep, ""));
        } else if !name.bytes().all(|b| (32..=126).contains(&b) && b != b'=') {
            errs.push(FieldError::invalid(
                ep,
                &json!(name),
                "a valid environment variable name must consist only of printable ASCII characters other than '='",
            ));
        }
    }
    let mut mount_paths = BTreeSet::new();
    for (j, m) in arr(c, "volumeMounts").iter().enumerate() {
        let mp = format!("{cp}.volumeMounts[{j}]");
        let vname = s(m, "name");
        if vname.is_empty() {
            errs.push(FieldError::required(format!("{mp}.name"), ""));
        } else if !volumes.contains(vname) {
            errs.push(FieldError::not_found(format!("{mp}.name"), &json!(vname)));
        }
        let path = s(m, "mountPath");
        if path.is_empty() {
            errs.push(FieldError::required(format!("{mp}.mountPath"), ""));
        } else if !mount_paths.insert(path.to_string()) {
            errs.push(FieldError::invalid(
                format!("{mp}.mountPath"),
                &json!(path),
                "must be unique",
            ));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get(probe) {
            validate_probe(p, &format!("{cp}.{probe}"), probe != "readinessProbe", errs);
        }
    }
    validate_resources(&c["resources"], &format!("{cp}.resources"), errs);
}

fn validate_probe(p: &Value, path: &str, success_must_be_one: bool, errs: &mut Vec<FieldError>) {
    let handlers = ["exec", "httpGet", "tcpSocket", "grpc"]
        .iter()
        .filter(|h| p.get(**h).is_some())
        .count();
    if handlers == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    } else if handlers > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        ));
    }
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        util::non_negative(p, key, path, errs);
    }
    if success_must_be_one {
        let n = util::int(p, "successThreshold");
        if n != 1 {
            errs.push(FieldError::invalid(
                format!("{path}.successThreshold"),
                &json!(n),
                "must be 1",
            ));
        }
    }
    if let Some(port) = p.get("httpGet").and_then(|h| h.get("port")) {
        validate_port_or_name(port, &format!("{path}.httpGet.port"), errs);
    }
    if let Some(port) = p.get("tcpSocket").and_then(|h| h.get("port")) {
        validate_port_or_name(port, &format!("{path}.tcpSocket.port"), errs);
    }
}

/// Validate an `IntOrString` port: a number in range or an IANA service name.
pub fn validate_port_or_name(port: &Value, path: &str, errs: &mut Vec<FieldError>) {
    match port {
        Value::Number(n) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                errs.push(FieldError::invalid(path, &json!(n), PORT_RANGE_MSG));
            }
        }
        Value::String(name) => {
            if let Some(msg) = port_name_error(name) {
                errs.push(FieldError::invalid(path, port, msg));
            }
        }
        _ => {}
    }
}

/// Requests must not exceed limits.
fn validate_resources(r: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let requests: BTreeMap<String, String> = util::string_map(r, "requests");
    let limits: BTreeMap<String, String> = util::string_map(r, "limits");
    for (res, req) in &requests {
        let Some(lim) = limits.get(res) else {
            continue;
        };
        if let (Some(rq), Some(lm)) = (util::parse_quantity(req), util::parse_quantity(lim)) {
            if rq > lm {
                errs.push(FieldError::invalid(
                    format!("{path}.requests"),
                    &json!(req),
                    &format!("must be less than or equal to {res} limit of {lim}"),
                ));
            }
        }
    }
    for (kind, map) in [("requests", &requests), ("limits", &limits)] {
        for (res, q) in map {
            match util::parse_quantity(q) {
                Some(v) if v < 0.0 => errs.push(FieldError::invalid(
                    format!("{path}.{kind}[{res}]"),
                    &json!(q),
                    "must be greater than or equal to 0",
                )),
                None => errs.push(FieldError {
                    reason: Reason::FieldValueInvalid,
                    field: format!("{path}.{kind}[{res}]"),
                    message: format!(
                        "{path}.{kind}[{res}]: Invalid value: {q:?}: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
                    ),
                }),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        for (image, want) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/app", "Always"),
            ("localhost:5000/app:v1", "IfNotPresent"),
            ("busybox@sha256:abcd", "IfNotPresent"),
            ("busybox:latest@sha256:abcd", "Always"),
        ] {
            assert_eq!(default_pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn pod_spec_defaults_reach_containers_probes_and_volumes() {
        let mut spec = json!({
            "containers": [{
                "name": "web", "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "livenessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
            }],
            "volumes": [{"name": "scratch"}, {"name": "cfg", "configMap": {"name": "c"}},
                        {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}],
        });
        default_pod_spec(&mut spec);
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["dnsPolicy"], "ClusterFirst");
        assert_eq!(spec["schedulerName"], "default-scheduler");
        assert_eq!(spec["terminationGracePeriodSeconds"], 30);
        assert_eq!(spec["securityContext"], json!({}));
        assert!(spec.get("enableServiceLinks").is_none(), "pod-only default");
        let c = &spec["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c["terminationMessagePolicy"], "File");
        assert_eq!(c["resources"], json!({}));
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert_eq!(
            c["livenessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                   "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(spec["volumes"][0]["emptyDir"], json!({}));
        assert_eq!(spec["volumes"][1]["configMap"]["defaultMode"], 420);
        assert_eq!(spec["volumes"][2]["projected"]["defaultMode"], 420);
        assert_eq!(
            spec["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"]
                ["expirationSeconds"],
            3600
        );
    }

    fn errors(spec: Value) -> Vec<(String, Reason)> {
        let mut spec = spec;
        default_pod_spec(&mut spec);
        let mut errs = Vec::new();
        validate_pod_spec(&spec, "spec", &mut errs);
        errs.into_iter().map(|e| (e.field, e.reason)).collect()
    }

    #[test]
    fn pod_spec_validation_names_each_field() {
        use Reason::*;
        let cases: Vec<(Value, Vec<(&str, Reason)>)> = vec![
            (json!({}), vec![("spec.containers", FieldValueRequired)]),
            (
                json!({"containers": [{"name": "a"}]}),
                vec![("spec.containers[0].image", FieldValueRequired)],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}),
                vec![("spec.containers[1].name", FieldValueDuplicate)],
            ),
            (
                json!({"containers": [{"name": "Web", "image": "x"}]}),
                vec![("spec.containers[0].name", FieldValueInvalid)],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 70000}]}]}),
                vec![(
                    "spec.containers[0].ports[0].containerPort",
                    FieldValueInvalid,
                )],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}]}),
                vec![(
                    "spec.containers[0].ports[0].protocol",
                    FieldValueNotSupported,
                )],
            ),
            (
                json!({"restartPolicy": "Sometimes", "containers": [{"name": "a", "image": "x"}]}),
                vec![("spec.restartPolicy", FieldValueNotSupported)],
            ),
            (
                json!({"dnsPolicy": "Google", "containers": [{"name": "a", "image": "x"}]}),
                vec![("spec.dnsPolicy", FieldValueNotSupported)],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "data", "mountPath": "/d"}]}]}),
                vec![(
                    "spec.containers[0].volumeMounts[0].name",
                    FieldValueNotFound,
                )],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}),
                vec![("spec.containers[0].resources.requests", FieldValueInvalid)],
            ),
            (
                json!({"containers": [{"name": "a", "image": "x", "livenessProbe": {"periodSeconds": 5}}]}),
                vec![("spec.containers[0].livenessProbe", FieldValueRequired)],
            ),
        ];
        for (spec, want) in cases {
            let got = errors(spec.clone());
            let want: Vec<(String, Reason)> =
                want.into_iter().map(|(f, r)| (f.to_string(), r)).collect();
            assert_eq!(got, want, "{spec}");
        }
    }

    #[test]
    fn invalid_port_messages_read_like_the_apiserver() {
        let mut errs = Vec::new();
        let spec = json!({"containers": [{"name": "a", "image": "x", "imagePullPolicy": "Always",
            "terminationMessagePolicy": "File", "ports": [{"containerPort": 0, "protocol": "TCP"}]}],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"});
        validate_pod_spec(&spec, "spec", &mut errs);
        assert_eq!(
            errs[0].message,
            "spec.containers[0].ports[0].containerPort: Required value"
        );
    }
}
