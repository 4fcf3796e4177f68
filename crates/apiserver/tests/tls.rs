//! The TLS listener against a real in-process server: ALPN, client-certificate
//! authentication, anonymous access and graceful shutdown.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use navarch_apiserver::{ApiServer, Config, Pki};
use navarch_store::sqlite::SqliteStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

const TIMEOUT: Duration = Duration::from_secs(10);

struct Running {
    server: ApiServer,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db"))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        bind_address: "127.0.0.1".parse().unwrap(),
        secure_port: 0,
        service_cidr: "10.43.0.0/16".parse().unwrap(),
    };
    let server = ApiServer::start(config, Arc::new(store), shutdown.clone())
        .await
        .unwrap();
    Running {
        server,
        shutdown,
        _dir: dir,
    }
}

/// A client trusting `pki`'s CA, presenting `identity` if given, offering `alpn`.
fn client(pki: &Pki, identity: Option<(&str, &str)>, alpn: &[&[u8]]) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// GET `path` over a fresh connection; returns the negotiated ALPN protocol, status and body.
async fn get(
    addr: SocketAddr,
    connector: &TlsConnector,
    path: &str,
) -> std::io::Result<(Vec<u8>, StatusCode, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let alpn = tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec();
    let io = TokioIo::new(tls);
    let request = Request::get(path)
        .header(http::header::HOST, "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = if alpn == b"h2" {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        sender
            .send_request(request)
            .await
            .map_err(std::io::Error::other)?
    };
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes();
    Ok((alpn, status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http11() {
    let running = start().await;
    let pki = running.server.pki();
    let addr = running.server.local_addr();

    let both = client(pki, None, &[b"h2", b"http/1.1"]);
    let (alpn, status, body) = get(addr, &both, "/readyz").await.unwrap();
    assert_eq!(
        (alpn.as_slice(), status, body.as_str()),
        (&b"h2"[..], StatusCode::OK, "ok")
    );

    let http11 = client(pki, None, &[b"http/1.1"]);
    let (alpn, status, body) = get(addr, &http11, "/readyz").await.unwrap();
    assert_eq!(
        (alpn.as_slice(), status, body.as_str()),
        (&b"http/1.1"[..], StatusCode::OK, "ok")
    );
}

#[tokio::test]
async fn anonymous_clients_reach_health_and_version_only() {
    let running = start().await;
    let anonymous = client(running.server.pki(), None, &[b"h2"]);
    let addr = running.server.local_addr();
    for public in ["/healthz", "/livez", "/readyz", "/version"] {
        let (_, status, _) = get(addr, &anonymous, public).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{public}");
    }
    let (_, status, body) = get(addr, &anonymous, "/api").await.unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let status_body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status_body["reason"], "Unauthorized");
}

#[tokio::test]
async fn the_admin_certificate_authenticates() {
    let running = start().await;
    let pki = running.server.pki();
    let admin = pki.admin();
    let connector = client(pki, Some((&admin.cert_pem, &admin.key_pem)), &[b"h2"]);
    let (_, status, body) = get(running.server.local_addr(), &connector, "/no/such/path")
        .await
        .unwrap();
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "authenticated, then routed: {body}"
    );
}

#[tokio::test]
async fn certificates_from_another_ca_are_refused() {
    let running = start().await;
    let other_dir = tempfile::tempdir().unwrap();
    let other = Pki::load_or_generate(other_dir.path(), &["localhost".into()]).unwrap();
    let stranger = other.admin();
    let connector = client(
        running.server.pki(),
        Some((&stranger.cert_pem, &stranger.key_pem)),
        &[b"h2"],
    );
    let result = get(running.server.local_addr(), &connector, "/readyz").await;
    assert!(
        result.is_err(),
        "a foreign client certificate was accepted: {result:?}"
    );
}

#[tokio::test]
async fn shutdown_stops_serving_and_drains() {
    let running = start().await;
    let addr = running.server.local_addr();
    let connector = client(running.server.pki(), None, &[b"h2"]);
    get(addr, &connector, "/readyz").await.unwrap();

    running.shutdown.cancel();
    tokio::time::timeout(TIMEOUT, running.server.stopped())
        .await
        .expect("the server stopped within the timeout");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn kubeconfig_points_at_the_listener() {
    let running = start().await;
    let text = std::fs::read_to_string(running.server.kubeconfig_path()).unwrap();
    let port = running.server.local_addr().port();
    assert!(
        text.contains(&format!("server: https://127.0.0.1:{port}\n")),
        "{text}"
    );
    assert_eq!(
        running.server.kubeconfig_path(),
        Path::new(running._dir.path()).join("kubeconfig.yaml")
    );
}
