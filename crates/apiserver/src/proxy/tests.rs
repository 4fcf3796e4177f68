use std::sync::Arc;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn pod() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u1"},
        "spec": {
            "nodeName": "n1",
            "containers": [{"name": "app"}, {"name": "sidecar"}],
            "initContainers": [{"name": "init"}],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "state": {"running": {}}},
                {"name": "sidecar", "state": {"waiting": {"reason": "ImagePullBackOff"}}},
            ],
        },
    })
}

#[test]
fn containers_are_named_or_the_only_one() {
    let mut single = pod();
    single["spec"]["containers"] = json!([{"name": "app"}]);
    assert_eq!(container_name(&single, None).unwrap(), "app");
    assert_eq!(container_name(&pod(), Some("init")).unwrap(), "init");
    let e = container_name(&pod(), None).unwrap_err();
    assert_eq!(e.code(), StatusCode::BAD_REQUEST);
    assert!(
        e.message().contains("choose one of: [app sidecar]"),
        "{}",
        e.message()
    );
    let e = container_name(&pod(), Some("nope")).unwrap_err();
    assert_eq!(e.message(), "container nope is not valid for pod web");
}

#[test]
fn requests_resolve_to_agent_paths() {
    let (r, node) = resolve("log", &pod(), Some("container=app&follow=true")).unwrap();
    assert_eq!(node, "n1");
    assert_eq!(
        r.path,
        "/containerLogs/default/web/u1/app?container=app&follow=true"
    );
    let (r, _) = resolve("exec", &pod(), Some("container=app&command=ls")).unwrap();
    assert_eq!(r.path, "/exec/default/web/u1/app?container=app&command=ls");
    let (r, _) = resolve("portforward", &pod(), None).unwrap();
    assert_eq!(r.path, "/portForward/default/web/u1");
}

#[test]
fn bad_requests_get_statuses() {
    // A waiting container has no log yet.
    let e = resolve("log", &pod(), Some("container=sidecar")).unwrap_err();
    assert_eq!(e.code(), StatusCode::BAD_REQUEST);
    assert!(
        e.message().contains("waiting to start: ImagePullBackOff"),
        "{}",
        e.message()
    );
    // Unparsable and out-of-range options.
    let e = resolve("log", &pod(), Some("container=app&tailLines=x")).unwrap_err();
    assert_eq!(e.code(), StatusCode::BAD_REQUEST);
    let e = resolve("log", &pod(), Some("container=app&tailLines=-1")).unwrap_err();
    assert_eq!(e.code(), StatusCode::UNPROCESSABLE_ENTITY);
    let e = resolve(
        "log",
        &pod(),
        Some("container=app&sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z"),
    )
    .unwrap_err();
    assert_eq!(e.code(), StatusCode::UNPROCESSABLE_ENTITY);
    // Unscheduled and finished pods.
    let mut unscheduled = pod();
    unscheduled["spec"]["nodeName"] = json!("");
    let e = resolve("exec", &unscheduled, None).unwrap_err();
    assert_eq!(e.message(), "pod web does not have a host assigned");
    let mut done = pod();
    done["status"]["phase"] = json!("Succeeded");
    assert!(resolve("exec", &done, Some("container=app")).is_err());
}

#[test]
fn nodes_may_not_exec_and_anonymous_users_may_not_either() {
    let node = AuthenticatedUser::new("system:node:n1", ["system:nodes".to_string()]);
    let e = authorize(Some(&node), "create", "exec", "default", "web").unwrap_err();
    assert_eq!(e.code(), StatusCode::FORBIDDEN);
    assert!(
        e.message().contains("cannot create resource \"pods/exec\""),
        "{}",
        e.message()
    );
    assert_eq!(
        authorize(None, "get", "log", "default", "web")
            .unwrap_err()
            .code(),
        StatusCode::UNAUTHORIZED
    );
    let admin = AuthenticatedUser::new("admin", ["system:masters".to_string()]);
    assert!(authorize(Some(&admin), "create", "exec", "default", "web").is_ok());
}

#[test]
fn node_addresses_come_from_internal_ip_and_the_kubelet_port() {
    let node = json!({
        "metadata": {"name": "n1"},
        "status": {
            "addresses": [{"type": "Hostname", "address": "n1"}, {"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
        },
    });
    assert_eq!(
        node_address(&node).unwrap(),
        "127.0.0.1:10250".parse().unwrap()
    );
    let e = node_address(&json!({"metadata": {"name": "n1"}})).unwrap_err();
    assert_eq!(e.code(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A fake agent that refuses every upgrade with 400 and reports whether the proxy then
/// closed the connection (it never closes it itself).
async fn refusing_agent() -> (SocketAddr, tokio::sync::oneshot::Receiver<bool>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let key =
        PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"no upgrade for you","reason":"BadRequest","code":400}"#;
        let answer = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        tls.write_all(answer.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        // Anything but EOF (or a reset) here means the connection stayed open.
        let mut rest = [0u8; 64];
        let closed = matches!(
            tokio::time::timeout(Duration::from_secs(10), tls.read(&mut rest)).await,
            Ok(Ok(0)) | Ok(Err(_))
        );
        let _ = tx.send(closed);
    });
    (addr, rx)
}

#[tokio::test]
async fn a_refused_upgrade_returns_the_error_and_closes_the_agent_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::load_or_generate(dir.path(), &["127.0.0.1".to_string()]).unwrap();
    let client = NodeClient::new(&pki).unwrap();
    let (addr, closed) = refusing_agent().await;
    let (parts, _) = Request::post("/api/v1/namespaces/default/pods/web/exec?command=ls")
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", "v4.channel.k8s.io")
        .body(())
        .unwrap()
        .into_parts();
    let resolved = Resolved {
        path: "/exec/default/web/u1/app?command=ls".into(),
    };
    let response = forward(&client, addr, &resolved, parts).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()[header::CONNECTION], "close");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("no upgrade for you"));
    assert!(
        tokio::time::timeout(Duration::from_secs(15), closed)
            .await
            .unwrap()
            .unwrap(),
        "the agent connection stayed open after a refused upgrade"
    );
}
