//! The streaming server lets only the API server in: a client certificate signed by the
//! cluster CA with an allowed common name. Another name signed by the same CA gets 403;
//! no certificate, or one from another CA, does not get past TLS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use navarch_agent::streaming::backend::SimulatedBackend;
use navarch_agent::streaming::{self, StreamingConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_util::sync::CancellationToken;

const ALLOWED: &str = "kube-apiserver-kubelet-client";

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Result<Ca> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    let pem = cert.pem();
    Ok(Ca {
        pem,
        issuer: Issuer::new(params, key),
    })
}

fn client_cert(
    ca: &Ca,
    cn: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &ca.issuer)?;
    Ok((
        vec![cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    ))
}

#[derive(Debug)]
struct AnyServer(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// GET `path` with `identity`; the status and body, or the error that stopped it.
async fn get(
    addr: std::net::SocketAddr,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    path: &str,
) -> Result<(u16, String)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)));
    let config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn only_the_api_servers_certificate_gets_in() -> Result<()> {
    let cluster = ca("cluster-ca")?;
    let other = ca("other-ca")?;
    let listener = streaming::bind("127.0.0.1".parse()?).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let config = StreamingConfig {
        client_ca_pem: cluster.pem.clone(),
        allowed_users: vec![ALLOWED.to_string()],
        serving_names: vec!["127.0.0.1".to_string()],
    };
    let server = tokio::spawn(streaming::serve(
        listener,
        config,
        Arc::new(SimulatedBackend),
        shutdown.clone(),
    ));
    let path = "/containerLogs/default/web/uid-1/app";

    let (status, body) = get(addr, Some(client_cert(&cluster, ALLOWED)?), path).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("simulated node"), "{body}");

    let (status, body) = get(addr, Some(client_cert(&cluster, "admin")?), path).await?;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"reason\":\"Forbidden\""), "{body}");

    assert!(
        get(addr, None, path).await.is_err(),
        "no certificate got in"
    );
    assert!(
        get(addr, Some(client_cert(&other, ALLOWED)?), path)
            .await
            .is_err(),
        "another CA's certificate got in"
    );

    // Sessions on a simulated node are refused with a status that says why.
    let (status, body) = get(
        addr,
        Some(client_cert(&cluster, ALLOWED)?),
        "/exec/default/web/uid-1/app?command=ls&stdout=true",
    )
    .await?;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not available on a simulated node"), "{body}");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await??
        .map_err(anyhow::Error::msg)?;
    Ok(())
}
