//! The pod worker against the simulated runtime, in paused time.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus as ApiStatus, Pod, PodStatus};
use serde_json::{json, Value};

use super::*;
use crate::runtime::simulated::{SimulatedConfig, SimulatedRuntime};

fn context(startup_ms: u64, backoff: BackoffConfig) -> (WorkerContext, SimulatedRuntime) {
    let clock = Clock::new();
    let runtime = SimulatedRuntime::new(
        SimulatedConfig {
            sandbox_startup: Duration::from_millis(startup_ms),
            pod_cidr: "10.42.3.0/24".parse().unwrap(),
        },
        clock,
    );
    let ctx = WorkerContext {
        runtime: Arc::new(runtime.clone()),
        clock,
        backoff,
        host_ip: "172.30.0.9".parse().unwrap(),
        node: NodeResources::new("4", "8Gi"),
        config: None,
        files: None,
        dns: None,
    };
    (ctx, runtime)
}

fn pod(annotations: Value, spec: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "ns", "uid": "u-1", "annotations": annotations},
        "spec": spec,
    }))
    .unwrap()
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "busybox"})
}

fn status_of<'a>(status: &'a PodStatus, name: &str) -> &'a ApiStatus {
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .unwrap()
}

fn waiting_reason(c: &ApiStatus) -> Option<&str> {
    c.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
}

fn condition<'a>(status: &'a PodStatus, kind: &str) -> &'a str {
    &status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .unwrap()
        .status
}

async fn sync(worker: &mut PodWorker) -> (PodStatus, SyncOutcome) {
    let outcome = worker.sync().await;
    (outcome.status.clone().unwrap(), outcome)
}

#[tokio::test(start_paused = true)]
async fn a_pod_becomes_running_and_ready_with_an_address() {
    let (ctx, _) = context(200, BackoffConfig::default());
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({}),
            json!({"containers": [container("a"), container("b")]}),
        ),
    );
    let started = Instant::now();
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(200),
        "sandbox startup"
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.42.3.2"));
    assert_eq!(status.host_ip.as_deref(), Some("172.30.0.9"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    assert!(status.start_time.is_some());
    for kind in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
        "PodScheduled",
    ] {
        assert_eq!(condition(&status, kind), "True", "{kind}");
    }
    let a = status_of(&status, "a");
    assert!(a.ready && a.started == Some(true) && a.restart_count == 0);
    assert_eq!(a.image, "docker.io/library/busybox:latest");
    assert!(a.image_id.starts_with("docker.io/library/busybox@sha256:"));
    assert!(a
        .container_id
        .as_deref()
        .unwrap()
        .starts_with("simulated://"));
    assert_eq!(outcome.wake_at, None);
    assert!(!outcome.delete_from_api);
    // Nothing changes: the same status again, so the caller writes nothing.
    let (again, _) = sync(&mut worker).await;
    assert_eq!(again, status);
}

#[tokio::test(start_paused = true)]
async fn init_containers_run_one_after_another() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let annotations = json!({
        "navarch.io/sim-exit.i1": "0 after 1s",
        "navarch.io/sim-exit.i2": "0 after 1s",
    });
    let spec = json!({"initContainers": [container("i1"), container("i2")], "containers": [container("app")]});
    let mut worker = PodWorker::new(ctx, pod(annotations, spec));

    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status_of(&status, "i1")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
    assert_eq!(
        waiting_reason(status_of(&status, "i2")),
        Some("PodInitializing")
    );
    assert_eq!(
        waiting_reason(status_of(&status, "app")),
        Some("PodInitializing")
    );
    assert_eq!(condition(&status, "Initialized"), "False");
    assert_eq!(
        outcome.wake_at, None,
        "the runtime's exit event wakes the worker"
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = sync(&mut worker).await;
    let i1 = status_of(&status, "i1")
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((i1.exit_code, i1.reason.as_deref()), (0, Some("Completed")));
    assert!(status_of(&status, "i2")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
    assert_eq!(
        waiting_reason(status_of(&status, "app")),
        Some("PodInitializing")
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(condition(&status, "Initialized"), "True");
    assert!(status_of(&status, "app").ready);
}

#[tokio::test(start_paused = true)]
async fn crash_loops_back_off_doubling_to_the_maximum() {
    let backoff = BackoffConfig {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(40),
    };
    let (ctx, _) = context(0, backoff);
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({"navarch.io/sim-exit": "1 after 1s"}),
            json!({"containers": [container("app")]}),
        ),
    );
    sync(&mut worker).await;
    // Crash 1 restarts at once; later crashes wait 10, 20, 40, 40 s.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status_of(&status, "app").restart_count, 1);
    assert!(status_of(&status, "app")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
    let last = status_of(&status, "app")
        .last_state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));

    let mut waits = Vec::new();
    for restarts in 2..=5 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let crashed = Instant::now();
        let (status, outcome) = sync(&mut worker).await;
        let app = status_of(&status, "app");
        assert_eq!(waiting_reason(app), Some("CrashLoopBackOff"));
        assert_eq!(app.restart_count, restarts - 1);
        assert_eq!(status.phase.as_deref(), Some("Running"));
        assert_eq!(condition(&status, "Ready"), "False");
        let wake = outcome.wake_at.unwrap();
        waits.push((wake - crashed).as_secs());
        let message = app
            .state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .message
            .clone()
            .unwrap();
        assert!(
            message.starts_with(&format!(
                "back-off {}s restarting failed container=app pod=p_ns(u-1)",
                (wake - crashed).as_secs()
            )),
            "{message}"
        );
        // Early syncs change nothing; at the wake time it restarts.
        tokio::time::sleep_until(wake - Duration::from_millis(500)).await;
        let (early, _) = sync(&mut worker).await;
        assert_eq!(status_of(&early, "app").restart_count, restarts - 1);
        tokio::time::sleep_until(wake).await;
        let (status, _) = sync(&mut worker).await;
        assert_eq!(status_of(&status, "app").restart_count, restarts);
        assert!(status_of(&status, "app")
            .state
            .as_ref()
            .unwrap()
            .running
            .is_some());
    }
    assert_eq!(waits, [10, 20, 40, 40]);
}

#[tokio::test(start_paused = true)]
async fn a_container_that_ran_long_enough_restarts_at_once() {
    let backoff = BackoffConfig {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(40),
    };
    let (ctx, _) = context(0, backoff);
    // Runs 81 s (> 2 × max) each time: the back-off resets, no CrashLoopBackOff.
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({"navarch.io/sim-exit": "1 after 81s"}),
            json!({"containers": [container("app")]}),
        ),
    );
    sync(&mut worker).await;
    for restarts in 1..=3 {
        tokio::time::sleep(Duration::from_secs(81)).await;
        let (status, _) = sync(&mut worker).await;
        let app = status_of(&status, "app");
        assert_eq!(app.restart_count, restarts);
        assert!(app.state.as_ref().unwrap().running.is_some(), "{app:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn restart_policies_decide_the_final_phase() {
    let cases = [
        ("Never", "1", "Failed", 0),
        ("Never", "0", "Succeeded", 0),
        ("OnFailure", "0", "Succeeded", 0),
    ];
    for (policy, code, phase, restarts) in cases {
        let (ctx, runtime) = context(0, BackoffConfig::default());
        let mut worker = PodWorker::new(
            ctx,
            pod(
                json!({"navarch.io/sim-exit": format!("{code} after 1s")}),
                json!({"restartPolicy": policy, "containers": [container("app")]}),
            ),
        );
        sync(&mut worker).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, outcome) = sync(&mut worker).await;
        assert_eq!(status.phase.as_deref(), Some(phase), "{policy} exit {code}");
        assert_eq!(status_of(&status, "app").restart_count, restarts);
        assert_eq!(outcome.wake_at, None);
        assert_eq!(condition(&status, "PodReadyToStartContainers"), "False");
        // The sandbox is down, the pod keeps its address in the status.
        assert_eq!(status.pod_ip.as_deref(), Some("10.42.3.2"));
        let sandboxes = runtime.list_pod_sandboxes().await.unwrap();
        assert_eq!(sandboxes[0].ip, None);
    }
    // OnFailure restarts failures.
    let (ctx, _) = context(0, BackoffConfig::default());
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({"navarch.io/sim-exit": "3 after 1s"}),
            json!({"restartPolicy": "OnFailure", "containers": [container("app")]}),
        ),
    );
    sync(&mut worker).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status_of(&status, "app").restart_count, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failed_init_container_under_never_fails_the_pod() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({"navarch.io/sim-exit.init": "2"}),
            json!({"restartPolicy": "Never", "initContainers": [container("init")], "containers": [container("app")]}),
        ),
    );
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    assert_eq!(
        waiting_reason(status_of(&status, "app")),
        Some("PodInitializing")
    );
}

fn deleting(mut pod: Pod, grace: i64) -> Pod {
    pod.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
    pod.metadata.deletion_grace_period_seconds = Some(grace);
    pod
}

#[tokio::test(start_paused = true)]
async fn deletion_stops_containers_within_the_grace_period() {
    let (ctx, runtime) = context(0, BackoffConfig::default());
    let spec = json!({"containers": [container("app")]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec.clone()));
    sync(&mut worker).await;

    worker.update(deleting(pod(json!({}), spec), 30));
    let t = Instant::now();
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(t.elapsed(), Duration::ZERO, "exits promptly on TERM");
    assert!(outcome.delete_from_api);
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    let app = status_of(&status, "app")
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(app.exit_code, 0);
    assert_eq!(condition(&status, "Ready"), "False");

    // Echoes of the deletion (our status write, the API's delete) find nothing to stop:
    // the sandbox's network is torn down once.
    worker.update(deleting(
        pod(json!({}), json!({"containers": [container("app")]})),
        0,
    ));
    let (_, again) = sync(&mut worker).await;
    assert!(again.delete_from_api);
    assert_eq!(runtime.sandbox_stops(), 1);

    // Gone from the API: everything is removed from the runtime.
    worker.kill().await;
    assert_eq!(runtime.sandbox_stops(), 1);
    assert!(runtime.list_pod_sandboxes().await.unwrap().is_empty());
    assert!(runtime.list_containers(None).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_slow_container_is_killed_at_the_end_of_the_grace_period() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let annotations = json!({"navarch.io/sim-stop-after": "1m"});
    let spec = json!({"containers": [container("app"), container("b")]});
    let mut worker = PodWorker::new(ctx, pod(annotations.clone(), spec.clone()));
    sync(&mut worker).await;
    worker.update(deleting(pod(annotations, spec), 5));
    let t = Instant::now();
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(
        t.elapsed(),
        Duration::from_secs(5),
        "both stopped concurrently"
    );
    assert!(outcome.delete_from_api);
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let app = status_of(&status, "app")
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!((app.exit_code, app.reason.as_deref()), (137, Some("Error")));
}

#[tokio::test(start_paused = true)]
async fn failed_pulls_back_off() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let mut worker = PodWorker::new(
        ctx,
        pod(
            json!({"navarch.io/sim-pull-fail": "busybox"}),
            json!({"containers": [container("app")]}),
        ),
    );
    let started = Instant::now();
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(
        waiting_reason(status_of(&status, "app")),
        Some("ErrImagePull")
    );
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    // The worker looks again a second later to show the back-off…
    assert_eq!(outcome.wake_at, Some(started + Duration::from_secs(1)));
    tokio::time::sleep_until(outcome.wake_at.unwrap()).await;
    let (status, outcome) = sync(&mut worker).await;
    // …and then at its end (10 s after the failure).
    let wake = outcome.wake_at.unwrap();
    assert_eq!(wake, started + Duration::from_secs(10));
    let app = status_of(&status, "app");
    assert_eq!(waiting_reason(app), Some("ImagePullBackOff"));
    assert_eq!(
        app.state
            .as_ref()
            .unwrap()
            .waiting
            .as_ref()
            .unwrap()
            .message
            .as_deref(),
        Some("Back-off pulling image \"busybox\"")
    );
    tokio::time::sleep_until(wake).await;
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(
        waiting_reason(status_of(&status, "app")),
        Some("ErrImagePull")
    );
    assert_eq!(outcome.wake_at.unwrap() - wake, Duration::from_secs(1));
    tokio::time::sleep_until(outcome.wake_at.unwrap()).await;
    let (_, outcome) = sync(&mut worker).await;
    assert_eq!(outcome.wake_at.unwrap() - wake, Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn failing_readiness_probes_keep_the_pod_unready() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let probe = json!({"exec": {"command": ["true"]}, "periodSeconds": 5});
    let spec = json!({"containers": [
        {"name": "bad", "image": "busybox", "readinessProbe": probe},
        {"name": "good", "image": "busybox", "readinessProbe": probe},
    ]});
    let mut worker = PodWorker::new(ctx, pod(json!({"navarch.io/sim-probe-fail": "bad"}), spec));
    let (status, outcome) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert!(!status_of(&status, "bad").ready);
    assert!(status_of(&status, "good").ready);
    assert_eq!(condition(&status, "Ready"), "False");
    assert_eq!(
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "ContainersReady")
            .unwrap()
            .message
            .as_deref(),
        Some("containers with unready status: [bad]")
    );
    assert_eq!(
        outcome.wake_at,
        Some(Instant::now() + Duration::from_secs(5))
    );
}

/// Sync at every wake-up until `until` holds of the status, or `limit` of paused time passed.
async fn sync_until(
    worker: &mut PodWorker,
    limit: Duration,
    until: impl Fn(&PodStatus) -> bool,
) -> PodStatus {
    let deadline = Instant::now() + limit;
    loop {
        let (status, outcome) = sync(worker).await;
        if until(&status) {
            return status;
        }
        let wake = outcome.wake_at.expect("a wake-up while waiting");
        assert!(wake <= deadline, "condition not reached within {limit:?}");
        tokio::time::sleep_until(wake).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_liveness_probe_restarts_the_container() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let spec = json!({"restartPolicy": "OnFailure", "containers": [
        {"name": "app", "image": "busybox", "livenessProbe": {
            "exec": {"command": ["false"]}, "periodSeconds": 2, "failureThreshold": 3,
            "initialDelaySeconds": 1}},
        {"name": "ok", "image": "busybox", "livenessProbe": {
            "exec": {"command": ["true"]}, "periodSeconds": 2}},
    ]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec));
    let started = Instant::now();
    let (status, _) = sync(&mut worker).await;
    assert!(status_of(&status, "app").ready);
    // Failures at 1, 3 and 5 s: killed at the third, restarted although it exited 0.
    let status = sync_until(&mut worker, Duration::from_secs(60), |s| {
        status_of(s, "app").restart_count == 1
    })
    .await;
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let app = status_of(&status, "app");
    assert!(app.state.as_ref().unwrap().running.is_some());
    assert!(app.last_state.as_ref().unwrap().terminated.is_some());
    assert_eq!(status_of(&status, "ok").restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn the_startup_probe_holds_back_liveness_and_readiness() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let spec = json!({"containers": [{"name": "app", "image": "busybox",
        "startupProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 4,
            "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 10,
            "failureThreshold": 1},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 10}}]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec));
    let (status, outcome) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!((app.started, app.ready), (Some(false), false));
    assert_eq!(
        outcome.wake_at,
        Some(Instant::now() + Duration::from_secs(4))
    );
    // At 4 s the startup probe passes; the liveness probe (failing at once) then kills it.
    let status = sync_until(&mut worker, Duration::from_secs(30), |s| {
        status_of(s, "app").restart_count == 1
    })
    .await;
    assert_eq!(status_of(&status, "app").started, Some(false));
}

#[tokio::test(start_paused = true)]
async fn a_failing_startup_probe_restarts_the_container() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let spec = json!({"containers": [{"name": "app", "image": "busybox",
        "startupProbe": {"exec": {"command": ["/bin/false"]}, "periodSeconds": 1,
            "failureThreshold": 5},
        "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec));
    let started = Instant::now();
    let status = sync_until(&mut worker, Duration::from_secs(30), |s| {
        status_of(s, "app").restart_count == 1
    })
    .await;
    // Failures at 0..=4 s: restarted after the fifth, never ready meanwhile.
    assert_eq!(started.elapsed(), Duration::from_secs(4));
    assert!(!status_of(&status, "app").ready);
    assert_eq!(condition(&status, "Ready"), "False");
}

#[tokio::test(start_paused = true)]
async fn a_new_worker_adopts_what_the_runtime_already_runs() {
    let (ctx, runtime) = context(0, BackoffConfig::default());
    let annotations = json!({"navarch.io/sim-exit.app": "1 after 1s"});
    let spec = json!({"containers": [container("app"), container("web")]});
    let mut first = PodWorker::new(ctx.clone(), pod(annotations.clone(), spec.clone()));
    sync(&mut first).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (before, _) = sync(&mut first).await;
    assert_eq!(status_of(&before, "app").restart_count, 1);
    let sandboxes = runtime.list_pod_sandboxes().await.unwrap();
    let containers = runtime.list_containers(None).await.unwrap();

    // The agent restarts: a new worker for the same pod finds the sandbox and containers.
    let mut second = PodWorker::new(ctx, pod(annotations, spec));
    let (after, _) = sync(&mut second).await;
    assert_eq!(runtime.list_pod_sandboxes().await.unwrap(), sandboxes);
    assert_eq!(
        runtime.list_containers(None).await.unwrap().len(),
        containers.len()
    );
    assert_eq!(after.pod_ip, before.pod_ip);
    for name in ["app", "web"] {
        let (old, new) = (status_of(&before, name), status_of(&after, name));
        assert_eq!(new.container_id, old.container_id, "{name}");
        assert_eq!(new.restart_count, old.restart_count, "{name}");
    }
    assert!(status_of(&after, "web").ready);
}

/// ConfigMaps that can appear while a test runs.
#[derive(Default)]
struct LateConfigMaps {
    present: std::sync::Mutex<bool>,
}

#[async_trait::async_trait]
impl ConfigSource for LateConfigMaps {
    async fn config_map(
        &self,
        _: &str,
        name: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, String> {
        let present = *self.present.lock().unwrap();
        Ok(present.then(|| [(format!("{name}-key"), "v".to_string())].into()))
    }

    async fn secret(
        &self,
        _: &str,
        _: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, Vec<u8>>>, String> {
        Err("secrets are forbidden here".to_string())
    }
}

#[tokio::test(start_paused = true)]
async fn a_missing_config_map_holds_the_container_in_create_container_config_error_until_it_appears(
) {
    let (mut ctx, _) = context(0, BackoffConfig::default());
    let source = Arc::new(LateConfigMaps::default());
    ctx.config = Some(source.clone());
    let app = json!({"name": "app", "image": "busybox",
        "envFrom": [{"configMapRef": {"name": "settings"}}]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), json!({"containers": [app]})));

    let (status, outcome) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!(waiting_reason(app), Some("CreateContainerConfigError"));
    let message = app
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap()
        .message
        .as_deref();
    assert_eq!(message, Some("configmap \"settings\" not found"));
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(outcome.wake_at, Some(Instant::now() + CONFIG_RETRY));

    *source.present.lock().unwrap() = true;
    tokio::time::sleep(CONFIG_RETRY).await;
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status_of(&status, "app").restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn a_secret_that_cannot_be_read_is_reported_with_the_api_error() {
    let (mut ctx, _) = context(0, BackoffConfig::default());
    ctx.config = Some(Arc::new(LateConfigMaps::default()));
    let app = json!({"name": "app", "image": "busybox",
        "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), json!({"containers": [app]})));
    let (status, _) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!(waiting_reason(app), Some("CreateContainerConfigError"));
    let message = app
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap()
        .message
        .as_deref();
    assert_eq!(message, Some("secrets are forbidden here"));
}

#[tokio::test(start_paused = true)]
async fn run_as_non_root_with_an_image_that_runs_as_root_is_a_config_error() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let spec = json!({
        "securityContext": {"runAsNonRoot": true},
        "containers": [
            container("root"),
            {"name": "user", "image": "busybox", "securityContext": {"runAsUser": 1000}},
        ],
    });
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec));
    let (status, outcome) = sync(&mut worker).await;
    let root = status_of(&status, "root");
    assert_eq!(waiting_reason(root), Some("CreateContainerConfigError"));
    let message = root.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(
        message.message.as_deref(),
        Some("container has runAsNonRoot and image will run as root (pod: \"p_ns(u-1)\", container: root)")
    );
    assert!(status_of(&status, "user")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
    assert!(outcome.wake_at.is_some(), "the check is retried");
}

#[tokio::test(start_paused = true)]
async fn a_failing_post_start_hook_kills_the_container_which_restarts() {
    let (ctx, _) = context(0, BackoffConfig::default());
    // Exec in `app` fails in the simulated runtime.
    let annotations = json!({"navarch.io/sim-probe-fail": "app"});
    let spec = json!({"terminationGracePeriodSeconds": 5, "containers": [
        {"name": "app", "image": "busybox", "lifecycle": {
            "postStart": {"exec": {"command": ["setup"]}}}},
        {"name": "ok", "image": "busybox", "lifecycle": {
            "postStart": {"exec": {"command": ["setup"]}}}},
    ]});
    let mut worker = PodWorker::new(ctx, pod(annotations, spec));
    let (status, outcome) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!(waiting_reason(app), Some("PostStartHookError"));
    let message = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert!(
        message.message.as_deref().unwrap().starts_with(
            "Exec lifecycle hook ([\"setup\"]) for Container \"app\" in Pod \"p_ns(u-1)\" failed"
        ),
        "{message:?}"
    );
    assert!(status_of(&status, "ok")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
    assert_eq!(outcome.wake_at, None);
    // The killed container restarts at once (first restart), and fails again.
    let (status, _) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!(app.restart_count, 1);
    assert!(app.last_state.as_ref().unwrap().terminated.is_some());
}

#[tokio::test(start_paused = true)]
async fn pre_stop_hooks_run_before_the_stop_within_the_grace_period() {
    let (ctx, _) = context(0, BackoffConfig::default());
    let annotations = json!({"navarch.io/sim-stop-after": "1m"});
    let spec = json!({"containers": [
        {"name": "app", "image": "busybox", "lifecycle": {"preStop": {"sleep": {"seconds": 3}}}},
    ]});
    let mut worker = PodWorker::new(ctx, pod(annotations.clone(), spec.clone()));
    sync(&mut worker).await;
    worker.update(deleting(pod(annotations.clone(), spec.clone()), 10));
    let t = Instant::now();
    let (status, outcome) = sync(&mut worker).await;
    // 3 s of hook, then the 7 s left of the grace period before the kill.
    assert_eq!(t.elapsed(), Duration::from_secs(10));
    assert!(outcome.delete_from_api);
    let app = status_of(&status, "app");
    let terminated = app.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(terminated.exit_code, 137);

    // A hook that outlasts the grace period still leaves the container 2 s after TERM.
    let (ctx, _) = context(0, BackoffConfig::default());
    let spec = json!({"containers": [
        {"name": "app", "image": "busybox", "lifecycle": {"preStop": {"sleep": {"seconds": 60}}}},
    ]});
    let mut worker = PodWorker::new(ctx, pod(annotations.clone(), spec.clone()));
    sync(&mut worker).await;
    worker.update(deleting(pod(annotations, spec), 5));
    let t = Instant::now();
    sync(&mut worker).await;
    assert_eq!(t.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn pods_get_a_hosts_file_termination_messages_and_host_network_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, _) = context(0, BackoffConfig::default());
    ctx.files = Some(PodFiles::new(dir.path()));
    let annotations = json!({"navarch.io/sim-exit.app": "3 after 1s"});
    let spec = json!({
        "restartPolicy": "Never",
        "hostname": "web-0",
        "subdomain": "web",
        "hostAliases": [{"ip": "10.1.1.1", "hostnames": ["db"]}],
        "containers": [container("app"), container("other")],
    });
    let mut worker = PodWorker::new(ctx.clone(), pod(annotations, spec));
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.pod_ip.as_deref(), Some("10.42.3.2"));
    let files = PodFiles::new(dir.path());
    let hosts = std::fs::read_to_string(files.hosts_path("u-1")).unwrap();
    assert!(
        hosts.contains("\n10.42.3.2\tweb-0.web.ns.svc.cluster.local\tweb-0\n"),
        "{hosts}"
    );
    assert!(hosts.ends_with("10.1.1.1\tdb\n"), "{hosts}");
    // What the container writes to /dev/termination-log is its message when it exits.
    let message_file = files.termination_path("u-1", "app", 0);
    std::fs::write(&message_file, "bye").unwrap();
    // The exit comes as a runtime event; the test syncs after it instead.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    let terminated = app.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(terminated.exit_code, 3);
    assert_eq!(terminated.message.as_deref(), Some("bye"));
    // Removing the pod removes its files.
    worker.kill().await;
    assert!(!files.pod_dir("u-1").exists());

    let spec = json!({"hostNetwork": true, "containers": [container("app")]});
    let mut host = pod(json!({}), spec);
    host.metadata.uid = Some("u-2".into());
    let mut worker = PodWorker::new(ctx, host);
    let (status, _) = sync(&mut worker).await;
    assert_eq!(status.pod_ip.as_deref(), Some("172.30.0.9"));
    let hosts = std::fs::read_to_string(files.hosts_path("u-2")).unwrap();
    assert!(hosts.starts_with("# Kubernetes-managed hosts file (host network).\n"));
}

#[tokio::test(start_paused = true)]
async fn pull_policy_never_waits_for_the_image_to_be_imported() {
    let (ctx, runtime) = context(0, BackoffConfig::default());
    let spec = json!({"containers": [
        {"name": "app", "image": "busybox", "imagePullPolicy": "Never"},
    ]});
    let mut worker = PodWorker::new(ctx, pod(json!({}), spec));
    let (status, outcome) = sync(&mut worker).await;
    let app = status_of(&status, "app");
    assert_eq!(waiting_reason(app), Some("ErrImageNeverPull"));
    let waiting = app.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(
        waiting.message.as_deref(),
        Some("Container image \"busybox\" is not present with pull policy of Never")
    );
    // Nothing was pulled.
    assert_eq!(runtime.image_status("busybox").await.unwrap(), None);
    // Once the image is there (imported), the container starts.
    let sandbox = PodSandboxConfig::default();
    runtime.pull_image("busybox", &sandbox).await.unwrap();
    tokio::time::sleep_until(outcome.wake_at.unwrap()).await;
    let (status, _) = sync(&mut worker).await;
    assert!(status_of(&status, "app")
        .state
        .as_ref()
        .unwrap()
        .running
        .is_some());
}
