//! The agent's streaming server (the kubelet's port): container logs, exec, attach and
//! port-forward for the API server, which proxies `pods/log`, `pods/exec`, `pods/attach` and
//! `pods/portforward` here.
//!
//! HTTPS with a self-signed serving certificate; only the API server may call it: clients must
//! present a certificate signed by the cluster CA whose common name is one of
//! [`StreamingConfig::allowed_users`]. Start at [`serve`]. Paths:
//!
//! - `GET /containerLogs/NS/POD/UID/CONTAINER?follow=…` — the CRI log file ([`logs`]);
//! - `/exec/NS/POD/UID/CONTAINER?command=…&stdin=…`, `/attach/NS/POD/UID/CONTAINER?…` and
//!   `/portForward/NS/POD/UID`, upgraded to one of kubectl's three transports:
//!   raw SPDY/3.1 (passed through to the runtime's own streaming server byte for byte),
//!   WebSocket `v5`/`v4.channel.k8s.io` for exec and attach (translated to SPDY by
//!   [`remotecommand`]), and WebSocket `SPDY/3.1+portforward.k8s.io` for port-forward (the
//!   SPDY byte stream unwrapped from the WebSocket messages and passed through).
//!
//! The runtime side is a [`backend::Backend`]: CRI for real nodes, a refusal (and a synthetic
//! log line) for simulated ones. Log rotation by size is [`rotate`].

pub mod backend;
pub mod logs;
pub mod remotecommand;
pub mod rotate;
pub mod spdy;
pub mod upstream;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use backend::{Backend, LogSource, PodRef, Session};
use logs::LogOptions;
use upstream::{UpstreamError, STREAM_PROTOCOL_HEADER};

/// The WebSocket sub-protocol of port-forward tunnelled SPDY (kubectl 1.31+).
pub const PORT_FORWARD_WS_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The SPDY sub-protocol of port-forward.
pub const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Who may call the streaming server.
#[derive(Debug, Clone)]
pub struct StreamingConfig {
    /// The cluster CA (PEM): client certificates must be signed by it.
    pub client_ca_pem: String,
    /// Common names accepted (the API server's client certificate).
    pub allowed_users: Vec<String>,
    /// Names and addresses in the self-signed serving certificate.
    pub serving_names: Vec<String>,
}

/// A request the server refuses, answered with a Kubernetes `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: StatusCode,
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            code: StatusCode::BAD_REQUEST,
            reason: "BadRequest",
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Refusal {
        Refusal {
            code: StatusCode::NOT_FOUND,
            reason: "NotFound",
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Refusal {
        Refusal {
            code: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Refusal {
        Refusal {
            code: StatusCode::INTERNAL_SERVER_ERROR,
            reason: "InternalError",
            message: message.into(),
        }
    }

    fn response(&self) -> Response<Body> {
        let status = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        let mut response = Response::new(full(status.to_string()));
        *response.status_mut() = self.code;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into()).boxed_unsync()
}

/// Bind the streaming server's socket: `ip` on a free port.
pub async fn bind(ip: IpAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, 0)).await
}

fn tls_config(config: &StreamingConfig) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(config.client_ca_pem.as_bytes()) {
        roots
            .add(ca.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let certified = rcgen::generate_simple_self_signed(config.serving_names.clone())
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes())
        .map_err(|e| e.to_string())?;
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The common name of a verified client certificate.
fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok())?
        .to_string();
    Some(cn)
}

/// Serve `listener` until `shutdown`: TLS with client certificates, then the routes of the
/// module docs against `backend`.
pub async fn serve(
    listener: TcpListener,
    config: StreamingConfig,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> Result<(), String> {
    let acceptor = TlsAcceptor::from(tls_config(&config)?);
    let allowed = Arc::new(config.allowed_users);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "streaming server: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let allowed = allowed.clone();
        let backend = backend.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                _ => {
                    tracing::debug!(client.addr = %peer, "streaming server: tls handshake failed");
                    return;
                }
            };
            let user = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(common_name);
            let permitted = user.as_ref().is_some_and(|u| allowed.contains(u));
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let backend = backend.clone();
                let user = user.clone();
                let shutdown = shutdown.clone();
                async move {
                    if !permitted {
                        return Ok::<_, Infallible>(
                            Refusal::forbidden(format!(
                                "user {:?} may not use the node's streaming server",
                                user.unwrap_or_default()
                            ))
                            .response(),
                        );
                    }
                    Ok(handle(request, backend, shutdown).await)
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                tracing::debug!(client.addr = %peer, error = %e, "streaming connection ended");
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}

/// The query's pairs, decoded.
fn query_pairs(request: &Request<Incoming>) -> Vec<(String, String)> {
    form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn flag(query: &[(String, String)], name: &str) -> bool {
    query
        .iter()
        .any(|(k, v)| k == name && (v == "true" || v == "1" || v.is_empty()))
}

async fn handle(
    request: Request<Incoming>,
    backend: Arc<dyn Backend>,
    shutdown: CancellationToken,
) -> Response<Body> {
    let path: Vec<String> = request
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    let pod = |parts: &[String]| PodRef {
        namespace: parts[0].clone(),
        name: parts[1].clone(),
        uid: parts[2].clone(),
    };
    let result = match (path.first().map(String::as_str), path.len()) {
        (Some("containerLogs"), 5) if request.method() == Method::GET => {
            container_logs(&request, backend, pod(&path[1..]), &path[4], shutdown).await
        }
        (Some(kind @ ("exec" | "attach")), 5) => {
            remote_command(request, backend, pod(&path[1..]), &path[4], kind == "exec").await
        }
        (Some("portForward"), 4) => port_forward(request, backend, pod(&path[1..])).await,
        _ => Err(Refusal::not_found(format!(
            "no such streaming path {:?}",
            request.uri().path()
        ))),
    };
    result.unwrap_or_else(|refusal| refusal.response())
}

struct BackendLiveness {
    backend: Arc<dyn Backend>,
    container_id: Option<String>,
}

impl logs::Liveness for BackendLiveness {
    fn running(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(async move {
            match &self.container_id {
                Some(id) => self.backend.running(id).await,
                None => false,
            }
        })
    }
}

async fn container_logs(
    request: &Request<Incoming>,
    backend: Arc<dyn Backend>,
    pod: PodRef,
    container: &str,
    shutdown: CancellationToken,
) -> Result<Response<Body>, Refusal> {
    let query = query_pairs(request);
    let options =
        LogOptions::from_query(&query, jiff::Timestamp::now()).map_err(Refusal::bad_request)?;
    let source = backend
        .log_source(&pod, container, options.previous)
        .await?;
    let body = match source {
        LogSource::Synthetic(text) => {
            let stamp = format!("{} ", jiff::Timestamp::now());
            let line = if options.timestamps {
                format!("{stamp}{text}")
            } else {
                text
            };
            let mut line = line.into_bytes();
            if let Some(limit) = options.limit_bytes {
                line.truncate(limit as usize);
            }
            if options.tail_lines == Some(0) {
                line.clear();
            }
            full(line)
        }
        LogSource::File { path, container_id } => {
            // Fail now, with a status, if the file cannot be read.
            if let Err(e) = tokio::fs::metadata(&path).await {
                return Err(Refusal::internal(format!(
                    "cannot read the log of container {container:?}: {e}"
                )));
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            let liveness = BackendLiveness {
                backend,
                container_id,
            };
            tokio::spawn(async move {
                tokio::select! {
                    result = logs::stream_file(&path, &options, &liveness, tx) => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, path = %path.display(), "log stream ended");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
            });
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
            });
            StreamBody::new(stream).boxed_unsync()
        }
    };
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn upgrade_kind(headers: &HeaderMap) -> Option<String> {
    let connection = header_values(headers, "connection");
    if !connection.iter().any(|v| v.eq_ignore_ascii_case("upgrade")) {
        return None;
    }
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.to_ascii_lowercase())
}

/// The 101 answer to a WebSocket handshake choosing `protocol`.
fn websocket_accept(headers: &HeaderMap, protocol: &str) -> Result<Response<Body>, Refusal> {
    let key = headers
        .get("sec-websocket-key")
        .ok_or_else(|| Refusal::bad_request("missing Sec-WebSocket-Key"))?;
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&derive_accept_key(key.as_bytes()))
            .map_err(|e| Refusal::internal(e.to_string()))?,
    );
    h.insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocol).map_err(|e| Refusal::internal(e.to_string()))?,
    );
    Ok(response)
}

fn switching_spdy(protocol: Option<&str>) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        h.insert(STREAM_PROTOCOL_HEADER, value);
    }
    response
}

/// The runtime's refusal, passed on; the connection to the runtime is already closed.
fn upstream_refusal(error: UpstreamError) -> Response<Body> {
    match error {
        UpstreamError::Refused {
            status,
            content_type,
            body,
        } => {
            let mut response = Response::new(full(body));
            *response.status_mut() = status;
            if let Some(value) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        UpstreamError::Failed(message) => Refusal::internal(message).response(),
    }
}

/// Pass the upgraded client connection and the runtime's through to each other.
fn splice(mut request: Request<Incoming>, upstream: upstream::Upstream) {
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(client) = on_upgrade.await else { return };
        let mut client = TokioIo::new(client);
        let mut upstream = upstream.io;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    });
}

async fn remote_command(
    mut request: Request<Incoming>,
    backend: Arc<dyn Backend>,
    pod: PodRef,
    container: &str,
    exec: bool,
) -> Result<Response<Body>, Refusal> {
    let query = query_pairs(&request);
    let tty = flag(&query, "tty");
    let streams = remotecommand::Streams {
        stdin: flag(&query, "stdin"),
        stdout: flag(&query, "stdout"),
        stderr: flag(&query, "stderr") && !tty,
        tty,
    };
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return Err(Refusal::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let session = if exec {
        let command: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err(Refusal::bad_request("you must specify a command"));
        }
        Session::Exec {
            command,
            tty,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        }
    } else {
        Session::Attach {
            tty,
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
        }
    };
    // Refusals from the runtime (no such container, a simulated node) come first.
    let url = backend.session_url(&pod, Some(container), &session).await?;
    let upgrade = upgrade_kind(request.headers());
    match upgrade.as_deref() {
        Some("websocket") => {
            let offered = header_values(request.headers(), "sec-websocket-protocol");
            let Some(protocol) = remotecommand::WS_PROTOCOLS
                .iter()
                .find(|p| offered.iter().any(|o| o == *p))
            else {
                return Err(Refusal::bad_request(format!(
                    "no supported websocket protocol among {offered:?}; supported: {:?}",
                    remotecommand::WS_PROTOCOLS
                )));
            };
            let response = websocket_accept(request.headers(), protocol)?;
            let upstream =
                match upstream::connect(&url, &[remotecommand::SPDY_PROTOCOL.to_string()]).await {
                    Ok(upstream) => upstream,
                    Err(e) => return Ok(upstream_refusal(e)),
                };
            let on_upgrade = hyper::upgrade::on(&mut request);
            let v5 = *protocol == "v5.channel.k8s.io";
            tokio::spawn(async move {
                let Ok(client) = on_upgrade.await else { return };
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None)
                    .await;
                if let Err(e) = remotecommand::bridge(ws, upstream.io, streams, v5).await {
                    tracing::debug!(error = %e, "exec session ended");
                }
            });
            Ok(response)
        }
        Some("spdy/3.1") => {
            let protocols = header_values(request.headers(), STREAM_PROTOCOL_HEADER);
            match upstream::connect(&url, &protocols).await {
                Ok(upstream) => {
                    let response = switching_spdy(upstream.protocol.as_deref());
                    splice(request, upstream);
                    Ok(response)
                }
                Err(e) => Ok(upstream_refusal(e)),
            }
        }
        _ => Err(Refusal::bad_request(
            "exec and attach need an upgrade to SPDY/3.1 or a WebSocket",
        )),
    }
}

async fn port_forward(
    mut request: Request<Incoming>,
    backend: Arc<dyn Backend>,
    pod: PodRef,
) -> Result<Response<Body>, Refusal> {
    let url = backend
        .session_url(&pod, None, &Session::PortForward)
        .await?;
    let upgrade = upgrade_kind(request.headers());
    match upgrade.as_deref() {
        Some("websocket") => {
            let offered = header_values(request.headers(), "sec-websocket-protocol");
            if !offered.iter().any(|o| o == PORT_FORWARD_WS_PROTOCOL) {
                return Err(Refusal::bad_request(format!(
                    "port-forward over a websocket needs protocol {PORT_FORWARD_WS_PROTOCOL}; offered {offered:?}"
                )));
            }
            let response = websocket_accept(request.headers(), PORT_FORWARD_WS_PROTOCOL)?;
            let upstream = match upstream::connect(&url, &[PORT_FORWARD_PROTOCOL.to_string()]).await
            {
                Ok(upstream) => upstream,
                Err(e) => return Ok(upstream_refusal(e)),
            };
            let on_upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let Ok(client) = on_upgrade.await else { return };
                let ws = WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, None)
                    .await;
                tunnel(ws, upstream.io).await;
            });
            Ok(response)
        }
        Some("spdy/3.1") => {
            match upstream::connect(&url, &[PORT_FORWARD_PROTOCOL.to_string()]).await {
                Ok(upstream) => {
                    let response = switching_spdy(Some(PORT_FORWARD_PROTOCOL));
                    splice(request, upstream);
                    Ok(response)
                }
                Err(e) => Ok(upstream_refusal(e)),
            }
        }
        _ => Err(Refusal::bad_request(
            "port-forward needs an upgrade to SPDY/3.1 or a WebSocket",
        )),
    }
}

/// Carry a byte stream inside WebSocket binary messages (message boundaries mean nothing).
pub async fn tunnel<W, U>(ws: WebSocketStream<W>, upstream: U)
where
    W: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    U: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let (mut sink, mut stream) = ws.split();
    let (mut read, mut write) = tokio::io::split(upstream);
    let inbound = async {
        while let Some(Ok(message)) = stream.next().await {
            match message {
                Message::Binary(data) if write.write_all(&data).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = write.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = sink.close().await;
    };
    // Either side ending ends the tunnel.
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}
