//! Requests and limits turned into what the runtime enforces, as the kubelet computes them:
//! a container's CPU shares (from its request), CFS quota and memory limit (from its limits)
//! and OOM score adjustment (from the pod's QoS class) — [`container_resources`] — and the
//! same for the pod's cgroup from the pod's totals — [`pod_resources`]. Pure functions; the
//! CRI runtime writes them ([`crate::runtime::cri`]).

use k8s_openapi::api::core::v1::{Container, PodSpec};

use super::status;
use crate::quantity;
use crate::runtime::LinuxResources;

/// The CFS period the kubelet uses (100 ms, in µs).
pub const CPU_PERIOD: i64 = 100_000;
/// The kernel's smallest CFS quota (1 ms, in µs).
const MIN_CPU_QUOTA: i64 = 1_000;
/// cgroup v1 `cpu.shares` bounds and the shares of one CPU.
const MIN_SHARES: i64 = 2;
const MAX_SHARES: i64 = 262_144;
const SHARES_PER_CPU: i64 = 1024;
/// OOM score adjustments by QoS class.
const GUARANTEED_OOM_SCORE_ADJ: i64 = -997;
const BEST_EFFORT_OOM_SCORE_ADJ: i64 = 1000;

/// What a node offers its pods: the limits of containers that set none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeResources {
    /// Allocatable CPU in millicores.
    pub cpu_milli: i64,
    /// Allocatable memory in bytes.
    pub memory: i64,
}

impl NodeResources {
    /// From the node's capacity as registered (`"4"`, `"16Gi"`); unreadable values count as
    /// zero.
    pub fn new(cpu: &str, memory: &str) -> Self {
        NodeResources {
            cpu_milli: quantity::milli_value(cpu).unwrap_or(0),
            memory: quantity::value(memory).unwrap_or(0),
        }
    }
}

/// CPU shares for a request in millicores (`MilliCPUToShares`): none asks for the minimum.
pub fn milli_cpu_to_shares(milli: i64) -> i64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    (milli * SHARES_PER_CPU / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

/// The CFS quota for a limit in millicores over `period` µs; 0 (no quota) without a limit.
pub fn milli_cpu_to_quota(milli: i64, period: i64) -> i64 {
    if milli <= 0 {
        return 0;
    }
    (milli * period / 1000).max(MIN_CPU_QUOTA)
}

/// One resource of a container: (request, limit) in millicores for `cpu`, bytes otherwise;
/// 0 when unset.
fn amounts(container: &Container, name: &str) -> (i64, i64) {
    let read = |list: Option<&std::collections::BTreeMap<_, _>>| -> i64 {
        let q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity> =
            list.and_then(|l| l.get(name));
        q.and_then(|q| match name {
            "cpu" => quantity::milli_value(&q.0),
            _ => quantity::value(&q.0),
        })
        .unwrap_or(0)
    };
    let resources = container.resources.as_ref();
    (
        read(resources.and_then(|r| r.requests.as_ref())),
        read(resources.and_then(|r| r.limits.as_ref())),
    )
}

/// A container's resources (`generateLinuxContainerResources`). `qos` is the pod's QoS
/// class; `memory_capacity` the node's memory, which a burstable container's OOM score is
/// relative to.
pub fn container_resources(
    spec: &PodSpec,
    container: &Container,
    qos: &str,
    memory_capacity: i64,
) -> LinuxResources {
    let (cpu_request, cpu_limit) = amounts(container, "cpu");
    let (memory_request, memory_limit) = amounts(container, "memory");
    // A request defaults to the limit (the API server does this for new pods; the kubelet
    // repeats it for old ones).
    let cpu_shares = if cpu_request == 0 && cpu_limit != 0 {
        milli_cpu_to_shares(cpu_limit)
    } else {
        milli_cpu_to_shares(cpu_request)
    };
    LinuxResources {
        cpu_shares,
        cpu_quota: milli_cpu_to_quota(cpu_limit, CPU_PERIOD),
        cpu_period: CPU_PERIOD,
        memory_limit,
        oom_score_adj: oom_score_adj(spec, qos, memory_request, memory_capacity),
    }
}

/// The kubelet's OOM score policy: guaranteed (and node-critical) pods are spared, best-effort
/// ones go first, burstable ones in between by how much of the node's memory they request.
fn oom_score_adj(spec: &PodSpec, qos: &str, memory_request: i64, memory_capacity: i64) -> i64 {
    if spec.priority_class_name.as_deref() == Some("system-node-critical") {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match qos {
        "Guaranteed" => GUARANTEED_OOM_SCORE_ADJ,
        "BestEffort" => BEST_EFFORT_OOM_SCORE_ADJ,
        _ => {
            let capacity = memory_capacity.max(1);
            let adj = 1000 - (1000 * i128::from(memory_request) / i128::from(capacity)) as i64;
            if adj < 1000 + GUARANTEED_OOM_SCORE_ADJ {
                1000 + GUARANTEED_OOM_SCORE_ADJ
            } else if adj == BEST_EFFORT_OOM_SCORE_ADJ {
                adj - 1
            } else {
                adj
            }
        }
    }
}

/// The pod cgroup's resources (`ResourceConfigForPod`): shares from the pod's CPU request;
/// a CFS quota only if every container limits CPU, a memory limit only if every container
/// limits memory (always for guaranteed pods); best-effort pods get the minimum shares and
/// nothing else. 0 leaves a setting alone. The pod's amount of a resource is the larger of
/// its regular containers' (and sidecars') sum and its largest init container, plus
/// `overhead`.
pub fn pod_resources(spec: &PodSpec, qos: &str) -> LinuxResources {
    if qos == "BestEffort" {
        return LinuxResources {
            cpu_shares: MIN_SHARES,
            ..LinuxResources::default()
        };
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let long_running = spec
        .containers
        .iter()
        .chain(init.iter().filter(|c| status::is_sidecar(c)));
    let mut cpu_limits_everywhere = true;
    let mut memory_limits_everywhere = true;
    let mut sum = [0i64; 4];
    for c in long_running {
        let (cpu_request, cpu_limit) = amounts(c, "cpu");
        let (memory_request, memory_limit) = amounts(c, "memory");
        cpu_limits_everywhere &= cpu_limit != 0;
        memory_limits_everywhere &= memory_limit != 0;
        for (total, amount) in
            sum.iter_mut()
                .zip([cpu_request, cpu_limit, memory_request, memory_limit])
        {
            *total += amount;
        }
    }
    for c in init.iter().filter(|c| !status::is_sidecar(c)) {
        let (cpu_request, cpu_limit) = amounts(c, "cpu");
        let (memory_request, memory_limit) = amounts(c, "memory");
        cpu_limits_everywhere &= cpu_limit != 0;
        memory_limits_everywhere &= memory_limit != 0;
        for (total, amount) in
            sum.iter_mut()
                .zip([cpu_request, cpu_limit, memory_request, memory_limit])
        {
            *total = (*total).max(amount);
        }
    }
    let overhead = |name: &str| {
        spec.overhead
            .as_ref()
            .and_then(|o| o.get(name))
            .and_then(|q| match name {
                "cpu" => quantity::milli_value(&q.0),
                _ => quantity::value(&q.0),
            })
            .unwrap_or(0)
    };
    let [cpu_request, cpu_limit, _, memory_limit] = sum;
    let cpu_request = cpu_request + overhead("cpu");
    let guaranteed = qos == "Guaranteed";
    LinuxResources {
        cpu_shares: milli_cpu_to_shares(cpu_request),
        cpu_quota: if guaranteed || cpu_limits_everywhere {
            milli_cpu_to_quota(cpu_limit + overhead("cpu"), CPU_PERIOD)
        } else {
            0
        },
        cpu_period: CPU_PERIOD,
        memory_limit: if guaranteed || memory_limits_everywhere {
            memory_limit + overhead("memory")
        } else {
            0
        },
        oom_score_adj: 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(containers: serde_json::Value) -> PodSpec {
        serde_json::from_value(json!({ "containers": containers })).unwrap()
    }

    fn with_resources(
        name: &str,
        requests: serde_json::Value,
        limits: serde_json::Value,
    ) -> serde_json::Value {
        json!({"name": name, "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn shares_and_quota_follow_the_kubelet_formulas() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), 262_144);
        assert_eq!(milli_cpu_to_quota(0, CPU_PERIOD), 0);
        assert_eq!(milli_cpu_to_quota(5, CPU_PERIOD), 1000);
        assert_eq!(milli_cpu_to_quota(250, CPU_PERIOD), 25_000);
        assert_eq!(milli_cpu_to_quota(2000, CPU_PERIOD), 200_000);
    }

    #[test]
    fn a_container_gets_shares_from_its_request_and_quota_and_memory_from_its_limits() {
        let pod = spec(json!([with_resources(
            "app",
            json!({"cpu": "250m", "memory": "64Mi"}),
            json!({"cpu": "500m", "memory": "128Mi"})
        )]));
        let resources = container_resources(&pod, &pod.containers[0], "Burstable", 8 << 30);
        assert_eq!(
            resources,
            LinuxResources {
                cpu_shares: 256,
                cpu_quota: 50_000,
                cpu_period: CPU_PERIOD,
                memory_limit: 128 << 20,
                // 1000 - 1000 × 64Mi / 8Gi
                oom_score_adj: 993,
            }
        );
        // A limit alone: the request defaults to it.
        let pod = spec(json!([with_resources(
            "app",
            json!({}),
            json!({"cpu": "2"})
        )]));
        let resources = container_resources(&pod, &pod.containers[0], "Burstable", 8 << 30);
        assert_eq!(resources.cpu_shares, 2048);
        assert_eq!(resources.cpu_quota, 200_000);
        assert_eq!(resources.memory_limit, 0);
        assert_eq!(resources.oom_score_adj, 999);
    }

    #[test]
    fn oom_scores_follow_the_qos_class() {
        let pod = spec(json!([{"name": "app"}]));
        let best_effort = container_resources(&pod, &pod.containers[0], "BestEffort", 1 << 30);
        assert_eq!(best_effort.oom_score_adj, 1000);
        assert_eq!(best_effort.cpu_shares, 2);
        assert_eq!(best_effort.cpu_quota, 0);
        let pod = spec(json!([with_resources(
            "app",
            json!({"memory": "1Gi"}),
            json!({})
        )]));
        let burstable = container_resources(&pod, &pod.containers[0], "Burstable", 1 << 30);
        assert_eq!(burstable.oom_score_adj, 3, "never below a guaranteed pod's");
        let guaranteed = container_resources(&pod, &pod.containers[0], "Guaranteed", 1 << 30);
        assert_eq!(guaranteed.oom_score_adj, -997);
    }

    #[test]
    fn a_pod_cgroup_limits_only_what_every_container_limits() {
        let pod = spec(json!([
            with_resources(
                "a",
                json!({"cpu": "100m"}),
                json!({"cpu": "200m", "memory": "32Mi"})
            ),
            with_resources("b", json!({"cpu": "300m"}), json!({"memory": "64Mi"})),
        ]));
        assert_eq!(
            pod_resources(&pod, "Burstable"),
            LinuxResources {
                cpu_shares: milli_cpu_to_shares(400),
                cpu_quota: 0,
                cpu_period: CPU_PERIOD,
                memory_limit: 96 << 20,
                oom_score_adj: 0,
            }
        );
        let best_effort = pod_resources(&spec(json!([{"name": "a"}])), "BestEffort");
        assert_eq!(best_effort.cpu_shares, 2);
        assert_eq!((best_effort.cpu_quota, best_effort.memory_limit), (0, 0));
    }

    #[test]
    fn a_pod_counts_its_largest_init_container_and_its_sidecars() {
        let mut pod = spec(json!([with_resources(
            "app",
            json!({"cpu": "100m", "memory": "10Mi"}),
            json!({"cpu": "100m", "memory": "10Mi"})
        )]));
        pod.init_containers = Some(
            serde_json::from_value(json!([
                with_resources("setup", json!({"cpu": "1", "memory": "5Mi"}), json!({"cpu": "1", "memory": "5Mi"})),
                {"name": "proxy", "restartPolicy": "Always", "resources": {
                    "requests": {"cpu": "50m", "memory": "20Mi"},
                    "limits": {"cpu": "50m", "memory": "20Mi"}}},
            ]))
            .unwrap(),
        );
        let resources = pod_resources(&pod, "Guaranteed");
        assert_eq!(resources.cpu_shares, 1024, "the init container's 1 CPU");
        assert_eq!(resources.cpu_quota, 100_000);
        assert_eq!(resources.memory_limit, 30 << 20, "app and sidecar");
    }
}
