//! Pod status as the kubelet reports it, computed from the pod and its container statuses.
//! Pure functions: the worker ([`super::worker`]) gathers container statuses from the runtime,
//! these turn them into the phase and the conditions.
//!
//! Phase (kubelet `getPhase`): `Failed` if an init container failed under `restartPolicy:
//! Never`; `Pending` while init containers are incomplete or a container is waiting without
//! having run; `Running` while a container runs (or will be restarted); `Succeeded`/`Failed`
//! once every container has terminated for good. Conditions come in the kubelet's order:
//! `PodReadyToStartContainers`, `Initialized`, `Ready`, `ContainersReady`, `PodScheduled`,
//! with the kubelet's reasons and messages; conditions owned by others are kept.

use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodCondition, PodSpec, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

pub const PHASE_PENDING: &str = "Pending";
pub const PHASE_RUNNING: &str = "Running";
pub const PHASE_SUCCEEDED: &str = "Succeeded";
pub const PHASE_FAILED: &str = "Failed";

/// Condition types the agent owns.
pub const READY_TO_START: &str = "PodReadyToStartContainers";
pub const INITIALIZED: &str = "Initialized";
pub const READY: &str = "Ready";
pub const CONTAINERS_READY: &str = "ContainersReady";
pub const SCHEDULED: &str = "PodScheduled";

/// A pod's restart policy (`Always` when unset, as defaulted by the API).
pub fn restart_policy(spec: &PodSpec) -> &str {
    spec.restart_policy.as_deref().unwrap_or("Always")
}

/// An init container with `restartPolicy: Always` is a sidecar: it keeps running beside the
/// regular containers and counts as initialised once started.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

fn exited_with(status: &ContainerStatus) -> Option<i32> {
    status
        .state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

fn is_running(status: &ContainerStatus) -> bool {
    status.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn last_exit(status: &ContainerStatus) -> Option<i32> {
    status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code)
}

/// The pod phase. `terminal` is true once the pod's containers were stopped for good
/// (deletion), which turns a would-be `Running` into `Succeeded` or `Failed`.
pub fn phase(
    spec: &PodSpec,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let policy = restart_policy(spec);
    let init_specs = spec.init_containers.as_deref().unwrap_or_default();
    let mut pending_init = 0;
    let mut failed_init = 0;
    for container in init_specs {
        let Some(status) = init_statuses.iter().find(|s| s.name == container.name) else {
            pending_init += 1;
            continue;
        };
        if is_sidecar(container) {
            if !status.started.unwrap_or(false) {
                pending_init += 1;
            }
            continue;
        }
        match exited_with(status) {
            Some(0) => {}
            Some(_) => failed_init += 1,
            None if is_running(status) => pending_init += 1,
            // Waiting: after a failure (back-off) it counts as failed.
            None => match last_exit(status) {
                Some(code) if code != 0 => failed_init += 1,
                _ => pending_init += 1,
            },
        }
    }
    if failed_init > 0 && policy == "Never" {
        return PHASE_FAILED;
    }
    if (pending_init > 0 || failed_init > 0) && !terminal {
        return PHASE_PENDING;
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for container in &spec.containers {
        let Some(status) = statuses.iter().find(|s| s.name == container.name) else {
            unknown += 1;
            continue;
        };
        if is_running(status) {
            running += 1;
        } else if let Some(code) = exited_with(status) {
            stopped += 1;
            if code == 0 {
                succeeded += 1;
            }
        } else if last_exit(status).is_some() {
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    if terminal {
        // Every container was stopped: success only if each one exited 0.
        let all_succeeded = spec.containers.iter().all(|c| {
            statuses
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| exited_with(s).or_else(|| last_exit(s)))
                == Some(0)
        });
        return if all_succeeded {
            PHASE_SUCCEEDED
        } else {
            PHASE_FAILED
        };
    }
    if waiting > 0 {
        return PHASE_PENDING;
    }
    if running > 0 && unknown == 0 {
        return PHASE_RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        return match policy {
            "Always" => PHASE_RUNNING,
            _ if stopped == succeeded => PHASE_SUCCEEDED,
            "Never" => PHASE_FAILED,
            // OnFailure: the failed ones will be restarted.
            _ => PHASE_RUNNING,
        };
    }
    PHASE_PENDING
}

/// `[a b]`, as Go prints a string slice.
fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

fn condition(kind: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        reason: reason.map(str::to_string),
        message,
        ..Default::default()
    }
}

/// The agent-owned conditions, without transition times (see [`with_transition_times`]).
pub fn conditions(
    pod: &Pod,
    sandbox_ready: bool,
    phase: &str,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
) -> Vec<PodCondition> {
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    let completed = phase == PHASE_SUCCEEDED;

    let mut incomplete = Vec::new();
    for container in spec.init_containers.as_deref().unwrap_or_default() {
        let status = init_statuses.iter().find(|s| s.name == container.name);
        let done = match status {
            None => false,
            Some(s) if is_sidecar(container) => s.started.unwrap_or(false),
            Some(s) => exited_with(s) == Some(0),
        };
        if !done {
            incomplete.push(container.name.clone());
        }
    }
    let initialized = if completed && incomplete.is_empty() {
        condition(INITIALIZED, true, Some("PodCompleted"), None)
    } else if incomplete.is_empty() {
        condition(INITIALIZED, true, None, None)
    } else {
        condition(
            INITIALIZED,
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                go_list(&incomplete)
            )),
        )
    };

    let mut unready = Vec::new();
    for container in spec.init_containers.as_deref().unwrap_or_default() {
        if is_sidecar(container) {
            let ready = init_statuses
                .iter()
                .find(|s| s.name == container.name)
                .is_some_and(|s| s.ready);
            if !ready {
                unready.push(container.name.clone());
            }
        }
    }
    for container in &spec.containers {
        let ready = statuses
            .iter()
            .find(|s| s.name == container.name)
            .is_some_and(|s| s.ready);
        if !ready {
            unready.push(container.name.clone());
        }
    }
    let containers_ready = if completed {
        condition(CONTAINERS_READY, false, Some("PodCompleted"), None)
    } else if unready.is_empty() {
        condition(CONTAINERS_READY, true, None, None)
    } else {
        condition(
            CONTAINERS_READY,
            false,
            Some("ContainersNotReady"),
            Some(format!(
                "containers with unready status: {}",
                go_list(&unready)
            )),
        )
    };

    let mut ready = containers_ready.clone();
    ready.type_ = READY.to_string();
    if ready.status == "True" {
        let existing = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(Vec::as_slice)
            .unwrap_or_default();
        for gate in spec.readiness_gates.as_deref().unwrap_or_default() {
            let gate_true = existing
                .iter()
                .any(|c| c.type_ == gate.condition_type && c.status == "True");
            if !gate_true {
                ready = condition(
                    READY,
                    false,
                    Some("ReadinessGatesNotReady"),
                    Some(format!(
                        "corresponding condition of pod readiness gate \"{}\" does not exist.",
                        gate.condition_type
                    )),
                );
                break;
            }
        }
    }

    let scheduled = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == SCHEDULED))
        .cloned()
        .unwrap_or_else(|| condition(SCHEDULED, true, None, None));

    vec![
        condition(READY_TO_START, sandbox_ready, None, None),
        initialized,
        ready,
        containers_ready,
        scheduled,
    ]
}

/// Give each condition the transition time of the same condition in `previous` if its status
/// did not change, `now` otherwise; then append the conditions of `previous` that the agent
/// does not own (DisruptionTarget, readiness gates).
pub fn with_transition_times(
    mut conditions: Vec<PodCondition>,
    previous: Option<&PodStatus>,
    now: Time,
) -> Vec<PodCondition> {
    let previous = previous
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    for c in &mut conditions {
        let before = previous.iter().find(|p| p.type_ == c.type_);
        c.last_transition_time = match before {
            Some(p) if p.status == c.status && p.last_transition_time.is_some() => {
                p.last_transition_time.clone()
            }
            _ if c.last_transition_time.is_some() => c.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
    }
    let owned = [
        READY_TO_START,
        INITIALIZED,
        READY,
        CONTAINERS_READY,
        SCHEDULED,
    ];
    for p in previous {
        if !owned.contains(&p.type_.as_str()) {
            conditions.push(p.clone());
        }
    }
    conditions
}

/// The QoS class from CPU and memory requests and limits (used when the API server did not
/// set one): `Guaranteed` if every container limits both and requests equal limits,
/// `BestEffort` if none asks for anything, `Burstable` otherwise.
pub fn qos_class(spec: &PodSpec) -> &'static str {
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    let mut any = false;
    let mut guaranteed = true;
    for c in all {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = requests.get(name);
            let limit = limits.get(name);
            any |= request.is_some() || limit.is_some();
            match (request, limit) {
                (_, None) => guaranteed = false,
                (Some(r), Some(l)) if r != l => guaranteed = false,
                _ => {}
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    };

    fn spec(policy: &str, init: &[&str], containers: &[&str]) -> PodSpec {
        let c = |n: &&str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        PodSpec {
            restart_policy: Some(policy.to_string()),
            init_containers: (!init.is_empty()).then(|| init.iter().map(c).collect()),
            containers: containers.iter().map(c).collect(),
            ..Default::default()
        }
    }

    fn running(name: &str, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            ready,
            started: Some(true),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn waiting(name: &str, reason: &str, last_exit: Option<i32>) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            last_state: last_exit.map(|code| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phases_follow_the_kubelet() {
        let s = spec("Always", &[], &["a", "b"]);
        let creating = [waiting("a", "ContainerCreating", None), running("b", true)];
        assert_eq!(phase(&s, &[], &creating, false), PHASE_PENDING);
        assert_eq!(
            phase(&s, &[], &[running("a", true), running("b", false)], false),
            PHASE_RUNNING
        );
        // Crash-looping under Always is still Running.
        let looping = [
            waiting("a", "CrashLoopBackOff", Some(1)),
            running("b", true),
        ];
        assert_eq!(phase(&s, &[], &looping, false), PHASE_RUNNING);
        assert_eq!(
            phase(&s, &[], &[exited("a", 0), exited("b", 1)], false),
            PHASE_RUNNING
        );
        // Deleted: terminal by exit codes.
        assert_eq!(
            phase(&s, &[], &[exited("a", 0), exited("b", 0)], true),
            PHASE_SUCCEEDED
        );
        assert_eq!(
            phase(&s, &[], &[exited("a", 0), exited("b", 137)], true),
            PHASE_FAILED
        );

        let never = spec("Never", &[], &["a", "b"]);
        assert_eq!(
            phase(&never, &[], &[exited("a", 0), exited("b", 0)], false),
            PHASE_SUCCEEDED
        );
        assert_eq!(
            phase(&never, &[], &[exited("a", 0), exited("b", 2)], false),
            PHASE_FAILED
        );
        let on_failure = spec("OnFailure", &[], &["a"]);
        assert_eq!(
            phase(&on_failure, &[], &[exited("a", 2)], false),
            PHASE_RUNNING
        );
        assert_eq!(
            phase(&on_failure, &[], &[exited("a", 0)], false),
            PHASE_SUCCEEDED
        );
    }

    #[test]
    fn init_containers_hold_the_pod_pending_or_fail_it() {
        let s = spec("Always", &["i1", "i2"], &["a"]);
        let pending = [waiting("a", "PodInitializing", None)];
        assert_eq!(
            phase(
                &s,
                &[exited("i1", 0), running("i2", false)],
                &pending,
                false
            ),
            PHASE_PENDING
        );
        assert_eq!(
            phase(&s, &[exited("i1", 1)], &pending, false),
            PHASE_PENDING
        );
        let never = spec("Never", &["i1"], &["a"]);
        assert_eq!(
            phase(&never, &[exited("i1", 1)], &pending, false),
            PHASE_FAILED
        );
    }

    #[test]
    fn conditions_carry_kubelet_reasons() {
        let pod = Pod {
            spec: Some(spec("Always", &["init"], &["a", "b"])),
            ..Default::default()
        };
        let cs = conditions(
            &pod,
            true,
            PHASE_PENDING,
            &[running("init", false)],
            &[
                waiting("a", "PodInitializing", None),
                waiting("b", "PodInitializing", None),
            ],
        );
        let by_type = |t: &str| cs.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(
            cs.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [
                READY_TO_START,
                INITIALIZED,
                READY,
                CONTAINERS_READY,
                SCHEDULED
            ]
        );
        assert_eq!(by_type(READY_TO_START).status, "True");
        assert_eq!(
            by_type(INITIALIZED).message.as_deref(),
            Some("containers with incomplete status: [init]")
        );
        assert_eq!(by_type(READY).reason.as_deref(), Some("ContainersNotReady"));
        assert_eq!(
            by_type(CONTAINERS_READY).message.as_deref(),
            Some("containers with unready status: [a b]")
        );
        assert_eq!(by_type(SCHEDULED).status, "True");

        let cs = conditions(
            &pod,
            true,
            PHASE_RUNNING,
            &[exited("init", 0)],
            &[running("a", true), running("b", true)],
        );
        assert!(cs.iter().all(|c| c.status == "True"), "{cs:?}");
    }

    #[test]
    fn transition_times_survive_unchanged_statuses() {
        let t0 = Time(jiff::Timestamp::from_second(1_700_000_000).unwrap());
        let t1 = Time(jiff::Timestamp::from_second(1_700_000_100).unwrap());
        let pod = Pod {
            spec: Some(spec("Always", &[], &["a"])),
            ..Default::default()
        };
        let first = with_transition_times(
            conditions(&pod, true, PHASE_PENDING, &[], &[waiting("a", "x", None)]),
            None,
            t0.clone(),
        );
        let previous = PodStatus {
            conditions: Some(first),
            ..Default::default()
        };
        let second = with_transition_times(
            conditions(&pod, true, PHASE_RUNNING, &[], &[running("a", true)]),
            Some(&previous),
            t1.clone(),
        );
        let time_of = |t: &str| {
            second
                .iter()
                .find(|c| c.type_ == t)
                .unwrap()
                .last_transition_time
                .clone()
        };
        assert_eq!(time_of(READY_TO_START), Some(t0));
        assert_eq!(time_of(READY), Some(t1));
    }

    #[test]
    fn qos_classes_from_requests_and_limits() {
        use k8s_openapi::api::core::v1::ResourceRequirements;
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let with = |requests: &[(&str, &str)], limits: &[(&str, &str)]| {
            let map = |kv: &[(&str, &str)]| {
                (!kv.is_empty()).then(|| {
                    kv.iter()
                        .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                        .collect()
                })
            };
            PodSpec {
                containers: vec![Container {
                    name: "a".into(),
                    resources: Some(ResourceRequirements {
                        requests: map(requests),
                        limits: map(limits),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }
        };
        assert_eq!(qos_class(&with(&[], &[])), "BestEffort");
        assert_eq!(qos_class(&with(&[("cpu", "1")], &[])), "Burstable");
        assert_eq!(
            qos_class(&with(&[], &[("cpu", "1"), ("memory", "1Gi")])),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(
                &[("cpu", "500m")],
                &[("cpu", "1"), ("memory", "1Gi")]
            )),
            "Burstable"
        );
    }
}
