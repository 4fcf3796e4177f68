//! Network probes, which the kubelet runs itself rather than through the runtime: `httpGet`
//! (a GET whose status is 200–399 passes) and `tcpSocket` (a connection passes), against the
//! pod's address unless the probe names a host, and `grpc` (the gRPC health check answers
//! `SERVING`, [`super::grpc_health`]). HTTPS probes are checked by connecting only: the agent
//! has no TLS client for them yet.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerPort, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a network probe checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Http {
        addr: SocketAddr,
        host: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    Connect(SocketAddr),
    Grpc {
        addr: SocketAddr,
        service: String,
    },
}

/// The port a probe names: a number, or the name of one of the container's ports.
fn port(port: &IntOrString, ports: &[ContainerPort]) -> Result<u16, String> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(name) => match name.parse::<i32>() {
            Ok(n) => n,
            Err(_) => ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| format!("no container port named {name:?}"))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {number}"))
}

fn address(host: Option<&str>, pod_ip: Option<IpAddr>, port: u16) -> Result<SocketAddr, String> {
    let ip = match host.filter(|h| !h.is_empty()) {
        Some(host) => host
            .parse::<IpAddr>()
            .map_err(|_| format!("probe host {host:?} is not an IP address"))?,
        None => pod_ip.ok_or("the pod has no address yet")?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// What `probe` checks, or `None` for an exec probe (or none at all).
pub fn check(
    probe: &Probe,
    pod_ip: Option<IpAddr>,
    ports: &[ContainerPort],
) -> Option<Result<Check, String>> {
    if let Some(http) = &probe.http_get {
        return Some((|| {
            let addr = address(http.host.as_deref(), pod_ip, port(&http.port, ports)?)?;
            if http.scheme.as_deref() == Some("HTTPS") {
                return Ok(Check::Connect(addr));
            }
            let headers: Vec<(String, String)> = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            let host = headers
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case("host"))
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| addr.to_string());
            let path = http.path.clone().unwrap_or_default();
            let path = if path.starts_with('/') {
                path
            } else {
                format!("/{path}")
            };
            Ok(Check::Http {
                addr,
                host,
                path,
                headers,
            })
        })());
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Some(
            port(&tcp.port, ports)
                .and_then(|p| address(tcp.host.as_deref(), pod_ip, p))
                .map(Check::Connect),
        );
    }
    if let Some(grpc) = &probe.grpc {
        let port = u16::try_from(grpc.port).map_err(|_| format!("invalid port {}", grpc.port));
        let service = grpc.service.clone().unwrap_or_default();
        return Some(
            port.and_then(|p| address(None, pod_ip, p))
                .map(|addr| Check::Grpc { addr, service }),
        );
    }
    None
}

/// Run a check within `timeout`; true when it passes.
pub async fn run(check: &Check, timeout: Duration) -> bool {
    tokio::time::timeout(timeout, attempt(check))
        .await
        .unwrap_or(false)
}

async fn attempt(check: &Check) -> bool {
    match check {
        Check::Connect(addr) => TcpStream::connect(addr).await.is_ok(),
        Check::Grpc { addr, service } => super::grpc_health::serving(*addr, service).await,
        Check::Http {
            addr,
            host,
            path,
            headers,
        } => {
            let Ok(mut stream) = TcpStream::connect(addr).await else {
                return false;
            };
            let mut request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
            );
            for (name, value) in headers {
                if !name.eq_ignore_ascii_case("host") {
                    request.push_str(&format!("{name}: {value}\r\n"));
                }
            }
            request.push_str("\r\n");
            if stream.write_all(request.as_bytes()).await.is_err() {
                return false;
            }
            // The status line is all that matters: `HTTP/1.1 200 OK`.
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.contains(&b'\n') && head.len() < 1024 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            status_passes(&head)
        }
    }
}

/// Whether an HTTP response's status line has a 2xx or 3xx code.
fn status_passes(head: &[u8]) -> bool {
    let line = String::from_utf8_lossy(head);
    let mut parts = line.split_whitespace();
    let version_ok = parts.next().is_some_and(|v| v.starts_with("HTTP/"));
    let code = parts.next().and_then(|c| c.parse::<u16>().ok());
    version_ok && code.is_some_and(|c| (200..400).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    fn probe(value: serde_json::Value) -> Probe {
        serde_json::from_value(value).unwrap()
    }

    fn ports() -> Vec<ContainerPort> {
        serde_json::from_value(json!([{"name": "http", "containerPort": 8080}])).unwrap()
    }

    #[test]
    fn probes_resolve_named_ports_and_the_pod_address() {
        let ip: IpAddr = "10.42.0.5".parse().unwrap();
        let http = probe(json!({"httpGet": {"port": "http", "path": "healthz"}}));
        assert_eq!(
            check(&http, Some(ip), &ports()).unwrap().unwrap(),
            Check::Http {
                addr: "10.42.0.5:8080".parse().unwrap(),
                host: "10.42.0.5:8080".into(),
                path: "/healthz".into(),
                headers: vec![],
            }
        );
        let tcp = probe(json!({"tcpSocket": {"port": 9000, "host": "127.0.0.1"}}));
        assert_eq!(
            check(&tcp, Some(ip), &ports()).unwrap().unwrap(),
            Check::Connect("127.0.0.1:9000".parse().unwrap())
        );
        let unknown = probe(json!({"tcpSocket": {"port": "metrics"}}));
        assert!(check(&unknown, Some(ip), &ports()).unwrap().is_err());
        let no_ip = probe(json!({"tcpSocket": {"port": 80}}));
        assert!(check(&no_ip, None, &ports()).unwrap().is_err());
        let grpc = probe(json!({"grpc": {"port": 9090, "service": "db"}}));
        assert_eq!(
            check(&grpc, Some(ip), &ports()).unwrap().unwrap(),
            Check::Grpc {
                addr: "10.42.0.5:9090".parse().unwrap(),
                service: "db".into()
            }
        );
        let exec = probe(json!({"exec": {"command": ["true"]}}));
        assert!(check(&exec, Some(ip), &ports()).is_none());
    }

    #[test]
    fn only_2xx_and_3xx_statuses_pass() {
        assert!(status_passes(b"HTTP/1.1 200 OK\r\n"));
        assert!(status_passes(b"HTTP/1.0 302 Found\r\n"));
        assert!(!status_passes(b"HTTP/1.1 404 Not Found\r\n"));
        assert!(!status_passes(b"HTTP/1.1 500 Oops\r\n"));
        assert!(!status_passes(b"garbage"));
        assert!(!status_passes(b""));
    }

    async fn serve_once(status: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = stream.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /ready HTTP/1.1\r\n"));
            let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
            stream.write_all(response.as_bytes()).await.unwrap();
        });
        addr
    }

    fn http(addr: SocketAddr) -> Check {
        Check::Http {
            addr,
            host: addr.to_string(),
            path: "/ready".into(),
            headers: vec![("X-Probe".into(), "1".into())],
        }
    }

    #[tokio::test]
    async fn http_probes_pass_on_success_and_fail_on_errors() {
        let ok = serve_once("200 OK").await;
        assert!(run(&http(ok), Duration::from_secs(2)).await);
        let broken = serve_once("503 Service Unavailable").await;
        assert!(!run(&http(broken), Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn tcp_probes_need_a_listener() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        assert!(run(&Check::Connect(open), Duration::from_secs(2)).await);
        drop(listener);
        assert!(!run(&Check::Connect(open), Duration::from_secs(2)).await);
    }
}
