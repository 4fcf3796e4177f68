//! The gRPC health check (`grpc.health.v1.Health/Check`) behind `grpc` probes: a probe
//! passes when the server answers `SERVING` for the probe's `service` (empty: the whole
//! server), as the kubelet's gRPC prober decides.
//!
//! The two messages are tiny (a string in, an enum out), so they are encoded here by hand
//! and sent as raw bytes over tonic, instead of generating code for one call.

use std::net::SocketAddr;

use bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Endpoint;
use tonic::Status;

/// `HealthCheckResponse.ServingStatus.SERVING`.
pub const SERVING: u64 = 1;
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// Whether the server at `addr` reports `service` as serving. Connection failures, errors
/// and every other status are failures; the caller bounds the time.
pub async fn serving(addr: SocketAddr, service: &str) -> bool {
    let Ok(endpoint) = Endpoint::from_shared(format!("http://{addr}")) else {
        return false;
    };
    let Ok(channel) = endpoint.connect().await else {
        return false;
    };
    let mut client = tonic::client::Grpc::new(channel);
    if client.ready().await.is_err() {
        return false;
    }
    let path = http::uri::PathAndQuery::from_static(CHECK);
    let request = tonic::Request::new(check_request(service));
    match client.unary(request, path, RawCodec).await {
        Ok(response) => response_status(response.get_ref()) == Some(SERVING),
        Err(_) => false,
    }
}

/// `HealthCheckRequest { service }` in protobuf.
pub fn check_request(service: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !service.is_empty() {
        out.push(0x0a); // field 1, length-delimited
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// The `service` of a `HealthCheckRequest` (for test servers).
pub fn request_service(bytes: &[u8]) -> Option<String> {
    let mut buf = bytes;
    while buf.has_remaining() {
        let key = varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let len = varint(&mut buf)? as usize;
                let text = buf.get(..len)?;
                return String::from_utf8(text.to_vec()).ok();
            }
            (_, wire) => skip(&mut buf, wire)?,
        }
    }
    Some(String::new())
}

/// The `status` of a `HealthCheckResponse` (0, `UNKNOWN`, when absent); `None` if the bytes
/// are not one.
pub fn response_status(bytes: &[u8]) -> Option<u64> {
    let mut buf = bytes;
    let mut status = 0;
    while buf.has_remaining() {
        let key = varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = varint(&mut buf)?,
            (_, wire) => skip(&mut buf, wire)?,
        }
    }
    Some(status)
}

/// `HealthCheckResponse { status }` in protobuf (for test servers).
pub fn check_response(status: u64) -> Vec<u8> {
    let mut out = vec![0x08]; // field 1, varint
    put_varint(&mut out, status);
    out
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn skip(buf: &mut &[u8], wire: u64) -> Option<()> {
    let len = match wire {
        0 => return varint(buf).map(|_| ()),
        1 => 8,
        2 => varint(buf)? as usize,
        5 => 4,
        _ => return None,
    };
    (buf.remaining() >= len).then(|| buf.advance(len))
}

/// Messages as bytes, already encoded.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut out = vec![0; src.remaining()];
        src.copy_to_slice(&mut out);
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio::net::TcpListener;

    use super::*;

    #[test]
    fn messages_round_trip() {
        assert_eq!(check_request(""), Vec::<u8>::new());
        assert_eq!(request_service(&check_request("")), Some(String::new()));
        let long = "s".repeat(200);
        assert_eq!(request_service(&check_request(&long)), Some(long));
        assert_eq!(response_status(&check_response(SERVING)), Some(1));
        assert_eq!(response_status(&check_response(2)), Some(2));
        assert_eq!(response_status(&[]), Some(0));
        assert_eq!(response_status(&[0x08]), None);
    }

    /// A health server that answers SERVING for `healthy` and NOT_SERVING for anything else.
    async fn health_server(healthy: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |request: http::Request<hyper::body::Incoming>| async move {
                            let check = tower::service_fn(
                                move |request: tonic::Request<Vec<u8>>| async move {
                                    let asked = request_service(request.get_ref());
                                    let status = match asked.as_deref() == Some(healthy) {
                                        true => SERVING,
                                        false => 2,
                                    };
                                    Ok::<_, Status>(tonic::Response::new(check_response(status)))
                                },
                            );
                            let mut grpc = tonic::server::Grpc::new(RawCodec);
                            Ok::<_, Infallible>(grpc.unary(check, request).await)
                        },
                    );
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn grpc_probes_pass_only_when_the_service_is_serving() {
        let addr = health_server("").await;
        assert!(serving(addr, "").await);
        assert!(!serving(addr, "other").await);
        let named = health_server("db").await;
        assert!(serving(named, "db").await);
        let nothing = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed = nothing.local_addr().unwrap();
        drop(nothing);
        assert!(!serving(closed, "").await);
    }
}
