//! The connection to the runtime's own streaming server (containerd's, at the URL CRI
//! `Exec`/`Attach`/`PortForward` returned): an HTTP/1.1 `POST` with `Upgrade: SPDY/3.1`.
//! Anything but `101 Switching Protocols` is returned as the runtime's answer and the
//! connection is dropped, never reused.

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;

/// The header kubectl and the kubelet negotiate sub-protocols with.
pub const STREAM_PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// How much of a refusal's body is kept.
const MAX_REFUSAL_BODY: usize = 64 << 10;

/// Why the upgrade did not happen.
#[derive(Debug)]
pub enum UpstreamError {
    /// The runtime answered, but not with 101.
    Refused {
        status: StatusCode,
        content_type: Option<String>,
        body: Bytes,
    },
    /// No answer (bad URL, connection failed, broken response).
    Failed(String),
}

/// An upgraded connection to the runtime and the protocol it chose.
pub struct Upstream {
    pub protocol: Option<String>,
    pub io: TokioIo<Upgraded>,
}

/// Upgrade to SPDY/3.1 at `url` offering `protocols` (in order of preference).
pub async fn connect(url: &str, protocols: &[String]) -> Result<Upstream, UpstreamError> {
    let failed =
        |what: &str, e: &dyn std::fmt::Display| UpstreamError::Failed(format!("{what}: {e}"));
    let uri: http::Uri = url
        .parse()
        .map_err(|e| failed("bad runtime stream url", &e))?;
    if uri.scheme_str() != Some("http") {
        return Err(UpstreamError::Failed(format!(
            "unsupported runtime stream url {url:?}"
        )));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| UpstreamError::Failed(format!("runtime stream url {url:?} has no host")))?
        .clone();
    let port = authority.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| failed("cannot connect to the runtime's stream server", &e))?;
    let _ = tcp.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| failed("runtime stream handshake", &e))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let mut request = Request::post(path)
        .header(header::HOST, authority.as_str())
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "SPDY/3.1");
    for protocol in protocols {
        request = request.header(STREAM_PROTOCOL_HEADER, protocol);
    }
    let request = request
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed("runtime stream request", &e))?;
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| failed("runtime stream request", &e))?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), MAX_REFUSAL_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // Dropping the sender closes the connection: nothing else may ride on it.
        drop(sender);
        return Err(UpstreamError::Refused {
            status,
            content_type,
            body,
        });
    }
    let protocol = response
        .headers()
        .get(STREAM_PROTOCOL_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let upgraded = hyper::upgrade::on(&mut response)
        .await
        .map_err(|e| failed("runtime stream upgrade", &e))?;
    Ok(Upstream {
        protocol,
        io: TokioIo::new(upgraded),
    })
}
