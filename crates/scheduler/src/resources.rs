//! Resource arithmetic: what a pod requests (containers, init containers, sidecars, overhead) and
//! what a node can hold, in integer units (millicores, bytes, counts).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use navarch_api::kinds::parse_quantity;

/// Requests assumed for a container without a CPU request, for scoring only (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Requests assumed for a container without a memory request, for scoring only (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource. `scalar` holds extended resources and hugepages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList`; unknown quantities count as zero, `pods` is ignored.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            let Some(v) = parse_quantity(&q.0) else {
                continue;
            };
            match name.as_str() {
                "cpu" => r.milli_cpu = (v * 1000.0).ceil() as i64,
                "memory" => r.memory = v.ceil() as i64,
                "ephemeral-storage" => r.ephemeral_storage = v.ceil() as i64,
                "pods" => {}
                other => {
                    r.scalar.insert(other.to_string(), v.ceil() as i64);
                }
            }
        }
        r
    }

    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Each resource becomes the larger of the two.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|v| *v == 0)
    }
}

/// The allocatable `pods` count of a node's status.
pub fn allowed_pods(list: Option<&BTreeMap<String, Quantity>>) -> i64 {
    list.and_then(|l| l.get("pods"))
        .and_then(|q| parse_quantity(&q.0))
        .map(|v| v as i64)
        .unwrap_or(0)
}

fn container_requests(c: &Container, non_zero: bool) -> Resources {
    let mut r = Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()));
    if non_zero {
        let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        let has = |name: &str| requests.is_some_and(|l| l.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// What the pod needs on a node, as upstream's `PodRequests`: the sum over app containers and
/// restartable (sidecar) init containers, at least the peak of any regular init container (plus
/// the sidecars started before it), plus `spec.overhead`. With `non_zero`, containers without a
/// CPU or memory request count upstream's defaults (used by scoring, not by the fit filter).
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut total = Resources::default();
    for c in &spec.containers {
        total.add(&container_requests(c, non_zero));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            sidecars.add(&r);
            total.add(&r);
            init_peak.max_with(&sidecars);
        } else {
            let mut peak = sidecars.clone();
            peak.add(&r);
            init_peak.max_with(&peak);
        }
    }
    total.max_with(&init_peak);
    if let Some(overhead) = spec.overhead.as_ref() {
        total.add(&Resources::from_list(Some(overhead)));
    }
    total
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn requests_sum_containers_take_init_peak_and_add_overhead() {
        let cases = [
            (
                "containers add up",
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "1Ki"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1", "memory": "1Ki"}}}]}),
                (1100, 2048),
            ),
            (
                "a bigger init container wins",
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
                       "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2", "memory": "10"}}}]}),
                (2000, 10),
            ),
            (
                "sidecars run beside later init containers and the app",
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
                       "initContainers": [
                         {"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "500m"}}},
                         {"name": "i", "resources": {"requests": {"cpu": "2"}}}]}),
                (2500, 0),
            ),
            (
                "overhead is added",
                json!({"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}],
                       "overhead": {"cpu": "250m", "memory": "5"}}),
                (1250, 5),
            ),
        ];
        for (name, spec, (cpu, mem)) in cases {
            let r = pod_requests(&pod(spec), false);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
        }
    }

    #[test]
    fn non_zero_requests_default_missing_cpu_and_memory() {
        let p = pod(
            json!({"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "1"}}}]}),
        );
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, 1100);
        assert_eq!(r.memory, 2 * DEFAULT_MEMORY_REQUEST);
        assert!(pod_requests(&p, false).memory == 0);
    }
}
