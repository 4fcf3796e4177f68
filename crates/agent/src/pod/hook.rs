//! Lifecycle hooks (`postStart`, `preStop`), run as the kubelet runs them: `exec` in the
//! container through the runtime, `httpGet` by the agent against the pod's address (unless
//! the hook names a host), `sleep` by waiting. The worker decides when: `postStart` right
//! after the container started (a failure kills the container), `preStop` before a container
//! is stopped, within its grace period ([`super::worker`]).

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod, Probe};

use super::probe;
use crate::runtime::Runtime;

/// `Pod "name_namespace(uid)"` as the kubelet names pods in messages.
pub fn pod_name(pod: &Pod) -> String {
    let meta = &pod.metadata;
    format!(
        "{}_{}({})",
        meta.name.as_deref().unwrap_or_default(),
        meta.namespace.as_deref().unwrap_or_default(),
        meta.uid.as_deref().unwrap_or_default()
    )
}

/// Run `handler` for `container` (running as `container_id`) and wait for it, at most
/// `timeout`. The error is the message the kubelet reports.
pub async fn run(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    handler: &LifecycleHandler,
    pod_ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), String> {
    let outcome = tokio::time::timeout(
        timeout,
        attempt(
            runtime,
            pod,
            container,
            container_id,
            handler,
            pod_ip,
            timeout,
        ),
    )
    .await;
    match outcome {
        Ok(result) => result,
        Err(_) => Err(format!(
            "lifecycle hook for Container {:?} in Pod {:?} did not finish within {}s",
            container.name,
            pod_name(pod),
            timeout.as_secs()
        )),
    }
}

async fn attempt(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    handler: &LifecycleHandler,
    pod_ip: Option<IpAddr>,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(exec) = &handler.exec {
        let command = exec.command.clone().unwrap_or_default();
        let failed = |error: String, output: &[u8]| {
            format!(
                "Exec lifecycle hook ({command:?}) for Container {:?} in Pod {:?} failed - error: {error}, message: {:?}",
                container.name,
                pod_name(pod),
                String::from_utf8_lossy(output)
            )
        };
        return match runtime.exec_sync(container_id, &command, timeout).await {
            Ok(result) if result.exit_code == 0 => Ok(()),
            Ok(result) => {
                let mut output = result.stdout;
                output.extend_from_slice(&result.stderr);
                Err(failed(
                    format!("command exited with {}", result.exit_code),
                    &output,
                ))
            }
            Err(e) => Err(failed(e.to_string(), b"")),
        };
    }
    if let Some(http) = &handler.http_get {
        let path = http.path.clone().unwrap_or_default();
        let failed = |error: &str| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {:?} in Pod {:?} failed - error: {error}",
                container.name,
                pod_name(pod)
            )
        };
        let as_probe = Probe {
            http_get: Some(http.clone()),
            ..Default::default()
        };
        let ports = container.ports.as_deref().unwrap_or_default();
        return match probe::check(&as_probe, pod_ip, ports) {
            Some(Ok(check)) if probe::run(&check, timeout).await => Ok(()),
            Some(Ok(_)) => Err(failed("no successful response")),
            Some(Err(e)) => Err(failed(&e)),
            None => Ok(()),
        };
    }
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
        return Ok(());
    }
    if handler.tcp_socket.is_some() {
        // Deprecated and never supported by the kubelet: it fails at run time.
        return Err(format!(
            "TCPSocket lifecycle hook for Container {:?} in Pod {:?} is not supported",
            container.name,
            pod_name(pod)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::clock::Clock;
    use crate::runtime::simulated::{SimulatedConfig, SimulatedRuntime};
    use crate::runtime::{ContainerConfig, PodSandboxConfig};

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }))
        .unwrap()
    }

    fn handler(value: serde_json::Value) -> LifecycleHandler {
        serde_json::from_value(value).unwrap()
    }

    #[tokio::test]
    async fn http_hooks_get_their_path_and_fail_when_nothing_answers() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let runtime = SimulatedRuntime::new(
            SimulatedConfig {
                sandbox_startup: Duration::ZERO,
                pod_cidr: "10.42.0.0/24".parse().unwrap(),
            },
            Clock::new(),
        );
        let pod = pod();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let hook = handler(json!({"httpGet": {"path": "/bye", "port": port}}));
        let local = Some("127.0.0.1".parse().unwrap());
        let timeout = Duration::from_secs(5);
        run(&runtime, &pod, container, "c1", &hook, local, timeout)
            .await
            .unwrap();
        let request = server.await.unwrap();
        assert!(request.starts_with("GET /bye HTTP/1."), "{request}");
        let error = run(&runtime, &pod, container, "c1", &hook, local, timeout)
            .await
            .unwrap_err();
        assert!(
            error.starts_with(
                "HTTP lifecycle hook (/bye) for Container \"c\" in Pod \"p_ns(u-1)\" failed"
            ),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn exec_hooks_report_the_exit_code_and_sleep_hooks_wait() {
        let runtime = Arc::new(SimulatedRuntime::new(
            SimulatedConfig {
                sandbox_startup: Duration::ZERO,
                pod_cidr: "10.42.0.0/24".parse().unwrap(),
            },
            Clock::new(),
        ));
        let sandbox = PodSandboxConfig {
            name: "p".into(),
            namespace: "ns".into(),
            uid: "u-1".into(),
            annotations: [("navarch.io/sim-probe-fail".to_string(), "bad".to_string())].into(),
            ..Default::default()
        };
        let sandbox_id = runtime.run_pod_sandbox(&sandbox).await.unwrap();
        let mut ids = Vec::new();
        for name in ["good", "bad"] {
            let config = ContainerConfig {
                name: name.into(),
                image: "busybox".into(),
                ..Default::default()
            };
            let id = runtime
                .create_container(&sandbox_id, &config, &sandbox)
                .await
                .unwrap();
            runtime.start_container(&id).await.unwrap();
            ids.push(id);
        }
        let pod = pod();
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let hook = handler(json!({"exec": {"command": ["touch", "/x"]}}));
        let timeout = Duration::from_secs(5);
        run(&*runtime, &pod, container, &ids[0], &hook, None, timeout)
            .await
            .unwrap();
        let error = run(&*runtime, &pod, container, &ids[1], &hook, None, timeout)
            .await
            .unwrap_err();
        assert!(
            error.starts_with("Exec lifecycle hook ([\"touch\", \"/x\"]) for Container \"c\" in Pod \"p_ns(u-1)\" failed - error: command exited with 1"),
            "{error}"
        );

        let started = tokio::time::Instant::now();
        let sleep = handler(json!({"sleep": {"seconds": 3}}));
        run(&*runtime, &pod, container, &ids[0], &sleep, None, timeout)
            .await
            .unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        let long = handler(json!({"sleep": {"seconds": 60}}));
        let error = run(&*runtime, &pod, container, &ids[0], &long, None, timeout)
            .await
            .unwrap_err();
        assert!(error.contains("did not finish within 5s"), "{error}");
    }
}
