//! `pods/log`, `pods/exec`, `pods/attach` and `pods/portforward`: authorized here, then
//! proxied to the streaming server of the agent running the pod (the kubelet port in the
//! Node's `status.daemonEndpoints`, at its `InternalIP`).
//!
//! The API server calls agents over HTTPS with its own client certificate
//! ([`KUBELET_CLIENT_USER`], signed by the cluster CA), which is how agents know the caller
//! is the API server. Agents' serving certificates are self-signed and not verified (what
//! kube-apiserver does without `--kubelet-certificate-authority`).
//!
//! Upgrades (exec, attach, port-forward) are forwarded as they come — WebSocket or SPDY — on
//! a connection of their own: when the agent answers `101`, both upgraded connections are
//! spliced; any other answer is returned to the client, the agent connection is dropped, and
//! the client's connection is closed after it (`Connection: close`), so no further request
//! can ride on a connection whose upgrade failed (the CVE-2018-1002105 class).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::error::StatusError;
use crate::pki::Pki;
use crate::resources::request::Target;
use crate::resources::ResourceApi;
use crate::AuthenticatedUser;

/// The common name of the API server's client certificate for agents (kubeadm's name).
pub const KUBELET_CLIENT_USER: &str = "kube-apiserver-kubelet-client";
/// How long connecting to an agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of an agent's refusal is passed on.
const MAX_REFUSAL_BODY: usize = 64 << 10;
/// Headers of an upgrade request that the agent needs.
const UPGRADE_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];
/// Headers of the agent's `101` that the client needs.
const SWITCH_HEADERS: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// The API server's client for agents' streaming servers.
#[derive(Clone)]
pub struct NodeClient {
    tls: TlsConnector,
}

impl std::fmt::Debug for NodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClient").finish_non_exhaustive()
    }
}

/// Accepts any serving certificate (agents' are self-signed) but still checks the handshake
/// signatures with the crypto provider.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl NodeClient {
    /// A client presenting a fresh [`KUBELET_CLIENT_USER`] certificate from `pki`.
    pub fn new(pki: &Pki) -> crate::Result<NodeClient> {
        let identity = pki.issue_client_cert(KUBELET_CLIENT_USER, &[crate::pki::MASTERS_GROUP])?;
        let tls_err = |e: &dyn std::fmt::Display| crate::Error::Tls(e.to_string());
        let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_err(&e))?;
        let key =
            PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| tls_err(&e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| tls_err(&e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider)))
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls_err(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(NodeClient {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Send `request` to the agent at `addr` on a new connection. Upgrades are returned with
    /// the connection still owned by the response (see [`hyper::upgrade::on`]).
    async fn send(
        &self,
        addr: SocketAddr,
        request: Request<Empty<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, StatusError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            StatusError::service_unavailable(format!("cannot reach the node at {addr}: {e}"))
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| unavailable(&"connection timed out"))?
            .map_err(|e| unavailable(&e))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| unavailable(&e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| unavailable(&e))?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        sender
            .send_request(request)
            .await
            .map_err(|e| unavailable(&e))
    }
}

/// Who may use a streaming subresource. There is no RBAC yet: every authenticated user may,
/// except nodes, which the node authorizer never lets into other pods' processes or logs.
pub fn authorize(
    user: Option<&AuthenticatedUser>,
    verb: &str,
    subresource: &str,
    namespace: &str,
    name: &str,
) -> Result<(), StatusError> {
    let Some(user) = user else {
        return Err(StatusError::unauthorized());
    };
    if user.in_group("system:nodes") {
        return Err(StatusError::forbidden(
            "",
            &format!("pods/{subresource}"),
            name,
            format!(
                "User {:?} cannot {verb} resource \"pods/{subresource}\" in API group \"\" in the namespace {namespace:?}",
                user.name
            ),
        ));
    }
    Ok(())
}

/// The container a request names, or the pod's only one; errors as kube-apiserver words them.
pub fn container_name(pod: &Value, requested: Option<&str>) -> Result<String, StatusError> {
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let names = |field: &str| -> Vec<String> {
        pod["spec"][field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect()
    };
    let containers = names("containers");
    let all: Vec<String> = containers
        .iter()
        .cloned()
        .chain(names("initContainers"))
        .chain(names("ephemeralContainers"))
        .collect();
    match requested.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(StatusError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if containers.len() == 1 => Ok(containers[0].clone()),
        None => Err(StatusError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The agent's address from its Node: the first `InternalIP` and the kubelet port.
pub fn node_address(node: &Value) -> Result<SocketAddr, StatusError> {
    let name = node["metadata"]["name"].as_str().unwrap_or("");
    let ip: IpAddr = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["type"] == "InternalIP")
        .find_map(|a| a["address"].as_str()?.parse().ok())
        .ok_or_else(|| {
            StatusError::service_unavailable(format!("node {name:?} has no InternalIP address"))
        })?;
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| (1..=65535).contains(p))
        .ok_or_else(|| {
            StatusError::service_unavailable(format!("node {name:?} has no kubelet port"))
        })?;
    Ok(SocketAddr::new(ip, port as u16))
}

/// A pod streaming request, resolved: where to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The agent path and query.
    pub path: String,
}

/// Check the request against the pod and build the agent path. `query` is the request's
/// query string.
pub fn resolve(
    subresource: &str,
    pod: &Value,
    query: Option<&str>,
) -> Result<(Resolved, String), StatusError> {
    let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("");
    let name = pod["metadata"]["name"].as_str().unwrap_or("");
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let node = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            StatusError::bad_request(format!("pod {name} does not have a host assigned"))
        })?
        .to_string();
    let phase = pod["status"]["phase"].as_str().unwrap_or("");
    let requested = pairs
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.as_str());
    let path = match subresource {
        "log" => {
            check_log_options(&pairs, name)?;
            let container = container_name(pod, requested)?;
            let previous = pairs
                .iter()
                .any(|(k, v)| k == "previous" && (v == "true" || v == "1"));
            if !previous {
                if let Some(reason) = waiting_reason(pod, &container) {
                    return Err(StatusError::bad_request(format!(
                        "container {container:?} in pod {name:?} is waiting to start: {reason}"
                    )));
                }
            }
            format!("/containerLogs/{namespace}/{name}/{uid}/{container}")
        }
        "exec" | "attach" => {
            if phase == "Succeeded" || phase == "Failed" {
                return Err(StatusError::bad_request(format!(
                    "cannot {subresource} into a container in a completed pod; current phase is {phase}"
                )));
            }
            let container = container_name(pod, requested)?;
            format!("/{subresource}/{namespace}/{name}/{uid}/{container}")
        }
        "portforward" => {
            if phase == "Succeeded" || phase == "Failed" {
                return Err(StatusError::bad_request(format!(
                    "cannot port-forward to a completed pod; current phase is {phase}"
                )));
            }
            format!("/portForward/{namespace}/{name}/{uid}")
        }
        other => {
            return Err(StatusError::bad_request(format!(
                "unknown subresource {other}"
            )))
        }
    };
    let path = match query.filter(|q| !q.is_empty()) {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    Ok((Resolved { path }, node))
}

/// `waiting.reason` of a container that has not started yet (no running or terminated
/// state, now or before).
fn waiting_reason(pod: &Value, container: &str) -> Option<String> {
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|f| pod["status"][f].as_array().cloned().unwrap_or_default());
    for status in statuses {
        if status["name"] != container {
            continue;
        }
        let waiting = status["state"]["waiting"].as_object()?;
        if status["lastState"]["terminated"].is_object() {
            return None;
        }
        return Some(
            waiting
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("ContainerCreating")
                .to_string(),
        );
    }
    None
}

/// `PodLogOptions` validation: 400 for what does not parse, 422 for what is out of range.
fn check_log_options(pairs: &[(String, String)], name: &str) -> Result<(), StatusError> {
    let mut causes = Vec::new();
    let mut since = 0;
    for (key, value) in pairs {
        let min = match key.as_str() {
            "tailLines" => 0,
            "limitBytes" | "sinceSeconds" => 1,
            "sinceTime" => {
                if value.parse::<jiff::Timestamp>().is_err() {
                    return Err(StatusError::bad_request(format!(
                        "parsing time {value:?}: not an RFC 3339 time"
                    )));
                }
                since += 1;
                continue;
            }
            _ => continue,
        };
        if key == "sinceSeconds" {
            since += 1;
        }
        let n: i64 = value.parse().map_err(|_| {
            StatusError::bad_request(format!(
                "strconv.ParseInt: parsing {value:?}: invalid syntax for {key}"
            ))
        })?;
        if n < min {
            let rule = if min == 0 {
                "must be greater than or equal to 0"
            } else {
                "must be greater than 0"
            };
            causes.push(crate::FieldCause::new(
                key,
                "FieldValueInvalid",
                format!("Invalid value: {n}: {rule}"),
            ));
        }
    }
    if since > 1 {
        causes.push(crate::FieldCause::new(
            "",
            "FieldValueForbidden",
            "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ));
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(StatusError::invalid("", "PodLogOptions", name, causes))
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("upgrade"))
}

/// Proxy the request to the agent at `addr` and answer the client.
pub async fn forward(
    client: &NodeClient,
    addr: SocketAddr,
    resolved: &Resolved,
    mut parts: Parts,
) -> Result<Response, StatusError> {
    let upgrade = is_upgrade(&parts.headers);
    let mut request = Request::builder()
        .method(if upgrade {
            parts.method.clone()
        } else {
            Method::GET
        })
        .uri(resolved.path.as_str())
        .header(header::HOST, addr.to_string());
    if upgrade {
        for name in UPGRADE_HEADERS {
            for value in parts.headers.get_all(*name) {
                request = request.header(*name, value);
            }
        }
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(StatusError::internal)?;
    let mut response = client.send(addr, request).await?;
    let status = response.status();
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            // HTTP/2 or an in-process call: nothing to upgrade. The agent connection goes.
            return Err(StatusError::bad_request(
                "this connection cannot be upgraded (exec, attach and port-forward need HTTP/1.1)",
            ));
        };
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        for name in SWITCH_HEADERS {
            for value in response.headers().get_all(*name) {
                answer.headers_mut().append(*name, value.clone());
            }
        }
        tokio::spawn(async move {
            let Ok(agent) = hyper::upgrade::on(&mut response).await else {
                return;
            };
            let Ok(user) = client_upgrade.await else {
                return;
            };
            let _ =
                tokio::io::copy_bidirectional(&mut TokioIo::new(user), &mut TokioIo::new(agent))
                    .await;
        });
        return Ok(answer);
    }
    if upgrade {
        // Refused: pass the answer on and close both connections.
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let body = Limited::new(response.into_body(), MAX_REFUSAL_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut answer = Response::new(Body::from(body));
        *answer.status_mut() = if status == StatusCode::SWITCHING_PROTOCOLS {
            StatusCode::BAD_GATEWAY
        } else {
            status
        };
        if let Some(ct) = content_type {
            answer.headers_mut().insert(header::CONTENT_TYPE, ct);
        }
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(answer);
    }
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let mut answer = Response::new(Body::new(response.into_body()));
    *answer.status_mut() = status;
    if let Some(ct) = content_type {
        answer.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    Ok(answer)
}

/// The streaming subresources of pods.
const STREAMING: &[&str] = &["log", "exec", "attach", "portforward"];

/// Whether the request is for one of the pod subresources proxied here.
pub fn is_pod_stream(t: &Target) -> bool {
    t.def.gv.group.is_empty()
        && t.def.plural == "pods"
        && t.name.is_some()
        && t.subresource
            .as_deref()
            .is_some_and(|s| STREAMING.contains(&s))
}

/// Serve `pods/{log,exec,attach,portforward}`: method, authorization, the pod and its node,
/// then [`forward`].
pub async fn pod_stream(
    api: &ResourceApi,
    t: Target,
    parts: Parts,
) -> Result<Response, StatusError> {
    let sub = t.subresource.clone().unwrap_or_default();
    let name = t.name.clone().unwrap_or_default();
    let namespace = t.namespace.clone().unwrap_or_default();
    let allowed = match sub.as_str() {
        "log" => parts.method == Method::GET,
        _ => parts.method == Method::GET || parts.method == Method::POST,
    };
    if !allowed {
        return Err(StatusError::method_not_supported(
            "",
            &format!("pods/{sub}"),
            parts.method.as_str(),
        ));
    }
    let verb = if sub == "log" { "get" } else { "create" };
    authorize(
        parts.extensions.get::<AuthenticatedUser>(),
        verb,
        &sub,
        &namespace,
        &name,
    )?;
    let mut main = t.clone();
    main.subresource = None;
    let (pod, _) = api.current(&main, &name).await?;
    let (resolved, node) = resolve(&sub, &pod, parts.uri.query())?;
    let client = api.config.node_client.as_ref().ok_or_else(|| {
        StatusError::service_unavailable("this server has no client for nodes' streaming servers")
    })?;
    let nodes = api
        .registry
        .get("", "v1", "nodes")
        .ok_or_else(|| StatusError::internal("the registry has no nodes"))?;
    let node_target = Target {
        def: nodes,
        namespace: None,
        name: Some(node.clone()),
        subresource: None,
        legacy_watch: false,
    };
    let (node_obj, _) = api.current(&node_target, &node).await?;
    let addr = node_address(&node_obj)?;
    forward(client, addr, &resolved, parts).await
}

#[cfg(test)]
mod tests;
