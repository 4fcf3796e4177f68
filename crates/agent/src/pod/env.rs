//! A container's environment, command and args as the kubelet builds them before creating
//! the container.
//!
//! [`container_env`] applies `envFrom` (ConfigMaps and Secrets, with their prefix) in order,
//! then `env` in order, later names replacing earlier ones. A literal `value` may refer to
//! variables defined before it as `$(NAME)` ([`expand`]; `$$` is a literal `$`, unknown
//! references stay as written); values from `valueFrom` are taken as they are: a ConfigMap or
//! Secret key, a field of the pod (`fieldRef`) or a resource of a container
//! (`resourceFieldRef`, limits defaulting to the node's allocatable). [`expand`] is then
//! applied to `command` and `args` with the finished environment.
//!
//! ConfigMaps and Secrets come from a [`ConfigSource`]: a GET per object per container start
//! on a real node ([`KubeConfigSource`]). A missing object or key that is not `optional` is an
//! [`EnvError`] whose message is the kubelet's, reported as `CreateContainerConfigError`.
//! Without a source (simulated nodes, which must not cost thousands of GETs) variables from
//! ConfigMaps and Secrets are left out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, ResourceFieldSelector, Secret};
use kube::{Api, Client};

use crate::quantity;

/// Where ConfigMaps and Secrets come from. `Ok(None)`: the object does not exist; `Err`: it
/// could not be read (the message is reported as it is).
#[async_trait]
pub trait ConfigSource: Send + Sync + 'static {
    /// A ConfigMap's `data`.
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String>;
    /// A Secret's `data`, decoded.
    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String>;
}

/// [`ConfigSource`] through the node's kube client: one GET per object asked for.
#[derive(Clone)]
pub struct KubeConfigSource {
    client: Client,
}

impl KubeConfigSource {
    pub fn new(client: Client) -> Self {
        KubeConfigSource { client }
    }
}

#[async_trait]
impl ConfigSource for KubeConfigSource {
    async fn config_map(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, String>>, String> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(found) => Ok(found.map(|cm| cm.data.unwrap_or_default())),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn secret(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        let api: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        match api.get_opt(name).await {
            Ok(found) => Ok(found.map(|secret| {
                secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect()
            })),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Why a container's environment cannot be built; the message is the kubelet's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the downward API needs besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct EnvInputs {
    /// The pod's address (from its sandbox).
    pub pod_ip: Option<IpAddr>,
    /// The node's address.
    pub host_ip: IpAddr,
    /// The node's allocatable CPU (millicores) and memory (bytes): the limits of containers
    /// that set none.
    pub allocatable_cpu_milli: i64,
    pub allocatable_memory: i64,
}

/// The environment of `container` in `pod`, in order; see the module docs.
pub async fn container_env(
    pod: &Pod,
    container: &Container,
    inputs: &EnvInputs,
    source: Option<&dyn ConfigSource>,
) -> Result<Vec<(String, String)>, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut objects = Objects {
        source,
        namespace,
        config_maps: HashMap::new(),
        secrets: HashMap::new(),
    };
    let mut env = Env::default();

    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        if let Some(cm) = &from.config_map_ref {
            let optional = cm.optional.unwrap_or(false);
            let Some(data) = objects.config_map(&cm.name, optional).await? else {
                continue;
            };
            for (key, value) in data {
                env.set_from_source(format!("{prefix}{key}"), value.clone());
            }
        }
        if let Some(secret) = &from.secret_ref {
            let optional = secret.optional.unwrap_or(false);
            let Some(data) = objects.secret(&secret.name, optional).await? else {
                continue;
            };
            for (key, value) in data {
                env.set_from_source(
                    format!("{prefix}{key}"),
                    String::from_utf8_lossy(value).into_owned(),
                );
            }
        }
    }

    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) if !value.is_empty() => expand(value, |name| env.get(name)),
            (_, Some(from)) => {
                if let Some(selector) = &from.config_map_key_ref {
                    let optional = selector.optional.unwrap_or(false);
                    let Some(data) = objects.config_map(&selector.name, optional).await? else {
                        continue;
                    };
                    match data.get(&selector.key) {
                        Some(value) => value.clone(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in ConfigMap {namespace}/{}",
                                selector.key, selector.name
                            )))
                        }
                    }
                } else if let Some(selector) = &from.secret_key_ref {
                    let optional = selector.optional.unwrap_or(false);
                    let Some(data) = objects.secret(&selector.name, optional).await? else {
                        continue;
                    };
                    match data.get(&selector.key) {
                        Some(value) => String::from_utf8_lossy(value).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(EnvError(format!(
                                "couldn't find key {} in Secret {namespace}/{}",
                                selector.key, selector.name
                            )))
                        }
                    }
                } else if let Some(field) = &from.field_ref {
                    pod_field(pod, &field.field_path, inputs)?
                } else if let Some(selector) = &from.resource_field_ref {
                    container_resource(pod, container, selector, inputs)?
                } else {
                    String::new()
                }
            }
            _ => String::new(),
        };
        env.set(var.name.clone(), value);
    }
    Ok(env.vars)
}

/// `command` and `args` with `$(NAME)` references to `env` expanded.
pub fn expand_command(words: &[String], env: &[(String, String)]) -> Vec<String> {
    let lookup: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    words
        .iter()
        .map(|word| expand(word, |name| lookup.get(name).map(|v| v.to_string())))
        .collect()
}

/// Expand `$(NAME)` references with `lookup`: `$$` is a literal `$`, a reference `lookup`
/// does not know and an unclosed `$(` stay as written, any other `$` is kept.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(reference) = after.strip_prefix('(') {
            match reference.find(')') {
                Some(close) => {
                    let name = &reference[..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &reference[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = reference;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Variables in definition order; setting a name again replaces its value in place.
#[derive(Default)]
struct Env {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Env {
    fn set(&mut self, name: String, value: String) {
        match self.index.get(&name) {
            Some(&i) => self.vars[i].1 = value,
            None => {
                self.index.insert(name.clone(), self.vars.len());
                self.vars.push((name, value));
            }
        }
    }

    /// A key of a ConfigMap or Secret becomes a variable if it can be one: printable ASCII
    /// without `=` (the relaxed rule the kubelet applies since 1.32).
    fn set_from_source(&mut self, name: String, value: String) {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'=');
        if valid {
            self.set(name, value);
        } else {
            tracing::debug!(name = %name, "not a valid environment variable name; skipped");
        }
    }

    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|&i| self.vars[i].1.clone())
    }
}

/// The ConfigMaps and Secrets read for one container, each read once.
struct Objects<'a> {
    source: Option<&'a dyn ConfigSource>,
    namespace: &'a str,
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl Objects<'_> {
    /// The ConfigMap's data; `None` when it is to be skipped (optional and missing, or no
    /// source).
    async fn config_map(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<&BTreeMap<String, String>>, EnvError> {
        let Some(source) = self.source else {
            return Ok(None);
        };
        if !self.config_maps.contains_key(name) {
            let found = source
                .config_map(self.namespace, name)
                .await
                .map_err(EnvError)?;
            self.config_maps.insert(name.to_string(), found);
        }
        match self.config_maps.get(name).and_then(Option::as_ref) {
            Some(data) => Ok(Some(data)),
            None if optional => Ok(None),
            None => Err(EnvError(format!("configmap \"{name}\" not found"))),
        }
    }

    async fn secret(
        &mut self,
        name: &str,
        optional: bool,
    ) -> Result<Option<&BTreeMap<String, Vec<u8>>>, EnvError> {
        let Some(source) = self.source else {
            return Ok(None);
        };
        if !self.secrets.contains_key(name) {
            let found = source
                .secret(self.namespace, name)
                .await
                .map_err(EnvError)?;
            self.secrets.insert(name.to_string(), found);
        }
        match self.secrets.get(name).and_then(Option::as_ref) {
            Some(data) => Ok(Some(data)),
            None if optional => Ok(None),
            None => Err(EnvError(format!("secret \"{name}\" not found"))),
        }
    }
}

/// A `fieldRef` value (the kubelet's `podFieldSelectorRuntimeValue`).
fn pod_field(pod: &Pod, path: &str, inputs: &EnvInputs) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let pod_ip = inputs.pod_ip.map(|ip| ip.to_string()).unwrap_or_default();
    if let Some((map, key)) = subscripted(path) {
        let value = match map {
            "metadata.labels" => meta.labels.as_ref().and_then(|m| m.get(key)),
            "metadata.annotations" => meta.annotations.as_ref().and_then(|m| m.get(key)),
            _ => {
                return Err(EnvError(format!(
                    "fieldPath {path:?} does not support subscript"
                )))
            }
        };
        return Ok(value.cloned().unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => inputs.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => pod_ip,
        other => return Err(EnvError(format!("unsupported fieldPath: {other}"))),
    })
}

/// `metadata.labels['key']` → (`metadata.labels`, `key`).
fn subscripted(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (map, key) = inner.split_once("['")?;
    (!map.is_empty()).then_some((map, key))
}

/// A whole label or annotation map: `key="value"` lines, sorted, values quoted as Go's `%q`.
fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `resourceFieldRef` value: the named container's (or this one's) request or limit over
/// the divisor, rounded up; a limit the container does not set is the node's allocatable.
fn container_resource(
    pod: &Pod,
    container: &Container,
    selector: &ResourceFieldSelector,
    inputs: &EnvInputs,
) -> Result<String, EnvError> {
    let target = match selector.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => container,
        Some(name) => pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError(format!("container {name} not found")))?,
    };
    let resources = target.resources.as_ref();
    let get = |list: &str, name: &str| {
        let quantities = match list {
            "limits" => resources.and_then(|r| r.limits.as_ref()),
            _ => resources.and_then(|r| r.requests.as_ref()),
        };
        quantities.and_then(|q| q.get(name)).map(|q| q.0.clone())
    };
    let divisor = selector
        .divisor
        .as_ref()
        .map(|d| d.0.as_str())
        .filter(|d| quantity::milli_value(d).is_some_and(|v| v > 0))
        .unwrap_or("1");
    let (list, name) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| unsupported(&selector.resource))?;
    let amount = get(list, name);
    let value = match (list, name) {
        ("limits" | "requests", "cpu") => {
            let milli = match (&amount, list) {
                (Some(q), _) => quantity::milli_value(q).unwrap_or(0),
                (None, "limits") => inputs.allocatable_cpu_milli,
                (None, _) => 0,
            };
            let per = quantity::milli_value(divisor).unwrap_or(1000).max(1);
            div_ceil(milli, per)
        }
        ("limits" | "requests", "memory" | "ephemeral-storage") => {
            let bytes = match (&amount, list, name) {
                (Some(q), _, _) => quantity::value(q).unwrap_or(0),
                (None, "limits", "memory") => inputs.allocatable_memory,
                _ => 0,
            };
            let per = quantity::value(divisor).unwrap_or(1).max(1);
            div_ceil(bytes, per)
        }
        ("limits" | "requests", huge) if huge.starts_with("hugepages-") => {
            let bytes = amount.and_then(|q| quantity::value(&q)).unwrap_or(0);
            div_ceil(bytes, quantity::value(divisor).unwrap_or(1).max(1))
        }
        _ => return Err(unsupported(&selector.resource)),
    };
    Ok(value.to_string())
}

fn unsupported(resource: &str) -> EnvError {
    EnvError(format!("unsupported container resource : {resource}"))
}

fn div_ceil(value: i64, divisor: i64) -> i64 {
    value.div_euclid(divisor) + i64::from(value.rem_euclid(divisor) != 0)
}

#[cfg(test)]
mod tests;
