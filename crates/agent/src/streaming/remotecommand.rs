//! Exec and attach for WebSocket clients: kubectl's `v5.channel.k8s.io` (and `v4`) on one
//! side, the runtime's SPDY/3.1 `v4.channel.k8s.io` on the other.
//!
//! WebSocket messages start with a channel byte: 0 stdin, 1 stdout, 2 stderr, 3 the exit
//! status (a `metav1.Status` in JSON), 4 terminal resizes; v5 adds 255 + channel to close one
//! (`[255, 0]`: stdin reached its end). On the SPDY side each channel is a stream the client
//! opens with a `streamtype` header (`error`, `stdin`, `stdout`, `stderr`, `resize`); the
//! runtime writes the status on `error` and closes its streams. [`bridge`] opens those streams
//! and copies between the two until the runtime has sent the status and all output.

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tokio_util::codec::{FramedRead, FramedWrite};

use super::spdy::{self, Frame};

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` closes one channel.
pub const CLOSE: u8 = 255;

/// The WebSocket sub-protocols served for exec and attach, preferred first.
pub const WS_PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];
/// What the runtime is asked to speak.
pub const SPDY_PROTOCOL: &str = "v4.channel.k8s.io";

/// Which streams the session has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

const SUCCESS: &str = r#"{"metadata":{},"status":"Success"}"#;

/// The status to send on channel 3 for what the runtime wrote on its error stream: v4 writes
/// a `Status` in JSON; anything else (older protocols' plain text) becomes a failure.
pub fn status_message(error_stream: &[u8]) -> Vec<u8> {
    if error_stream.is_empty() {
        return SUCCESS.as_bytes().to_vec();
    }
    if serde_json::from_slice::<serde_json::Value>(error_stream).is_ok_and(|v| v.is_object()) {
        return error_stream.to_vec();
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": String::from_utf8_lossy(error_stream),
        "reason": "InternalError",
        "code": 500,
    })
    .to_string()
    .into_bytes()
}

/// Copy between the client's WebSocket and the runtime's SPDY connection until the session
/// ends (the status is sent and the WebSocket closed) or either side goes away. `v5` allows
/// the client to close stdin.
pub async fn bridge<W, U>(
    mut ws: WebSocketStream<W>,
    upstream: U,
    streams: Streams,
    v5: bool,
) -> Result<(), String>
where
    W: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(upstream);
    let mut frames = FramedRead::new(read, spdy::Decoder::new());
    let mut out = FramedWrite::new(write, spdy::Encoder::new());

    // Stream ids: the client's are odd.
    let mut kinds = vec![("error", ERROR)];
    if streams.stdin {
        kinds.push(("stdin", STDIN));
    }
    if streams.stdout {
        kinds.push(("stdout", STDOUT));
    }
    if streams.stderr && !streams.tty {
        kinds.push(("stderr", STDERR));
    }
    if streams.tty {
        kinds.push(("resize", RESIZE));
    }
    let id_of = |channel: u8| {
        kinds
            .iter()
            .position(|(_, c)| *c == channel)
            .map(|i| 2 * i as u32 + 1)
    };
    let channel_of = |id: u32| -> Option<u8> {
        let index = (id.checked_sub(1)? / 2) as usize;
        (id % 2 == 1).then_some(())?;
        kinds.get(index).map(|(_, c)| *c)
    };
    for (i, (kind, _)) in kinds.iter().enumerate() {
        out.send(Frame::SynStream {
            stream_id: 2 * i as u32 + 1,
            associated_to: 0,
            priority: 0,
            flags: 0,
            headers: vec![("streamtype".to_string(), kind.to_string())],
        })
        .await
        .map_err(|e| format!("runtime stream: {e}"))?;
    }

    let mut status = BytesMut::new();
    let mut error_done = false;
    let mut stdout_done = !streams.stdout;
    let mut stderr_done = !streams.stderr || streams.tty;
    let mut stdin_open = streams.stdin;
    let mut upstream_open = true;
    loop {
        if error_done && stdout_done && stderr_done {
            break;
        }
        if !upstream_open {
            break;
        }
        tokio::select! {
            message = ws.next() => {
                let data = match message {
                    Some(Ok(Message::Binary(data))) => data,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return Ok(()),
                    Some(Ok(_)) => continue,
                };
                let Some((&channel, payload)) = data.split_first() else { continue };
                match channel {
                    STDIN | RESIZE => {
                        if channel == STDIN && !stdin_open {
                            continue;
                        }
                        if let Some(stream_id) = id_of(channel) {
                            let frame = Frame::Data { stream_id, flags: 0, data: data.slice(1..) };
                            if out.send(frame).await.is_err() {
                                upstream_open = false;
                            }
                        }
                    }
                    CLOSE if v5 && payload.first() == Some(&STDIN) && stdin_open => {
                        stdin_open = false;
                        if let Some(stream_id) = id_of(STDIN) {
                            let frame = Frame::Data { stream_id, flags: spdy::FLAG_FIN, data: Bytes::new() };
                            if out.send(frame).await.is_err() {
                                upstream_open = false;
                            }
                        }
                    }
                    _ => {}
                }
            }
            frame = frames.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(_)) | None => {
                        upstream_open = false;
                        continue;
                    }
                };
                match frame {
                    Frame::Data { stream_id, flags, data } => {
                        let fin = flags & spdy::FLAG_FIN != 0;
                        match channel_of(stream_id) {
                            Some(ERROR) => {
                                status.extend_from_slice(&data);
                                error_done |= fin;
                            }
                            Some(channel @ (STDOUT | STDERR)) => {
                                if !data.is_empty() {
                                    let mut message = Vec::with_capacity(1 + data.len());
                                    message.push(channel);
                                    message.extend_from_slice(&data);
                                    if ws.send(Message::Binary(message.into())).await.is_err() {
                                        return Ok(());
                                    }
                                }
                                if fin {
                                    if channel == STDOUT { stdout_done = true } else { stderr_done = true }
                                }
                            }
                            _ => {}
                        }
                    }
                    Frame::SynReply { stream_id, flags, .. } | Frame::Headers { stream_id, flags, .. }
                        if flags & spdy::FLAG_FIN != 0 =>
                    {
                        match channel_of(stream_id) {
                            Some(ERROR) => error_done = true,
                            Some(STDOUT) => stdout_done = true,
                            Some(STDERR) => stderr_done = true,
                            _ => {}
                        }
                    }
                    Frame::RstStream { stream_id, .. } => match channel_of(stream_id) {
                        Some(ERROR) => error_done = true,
                        Some(STDOUT) => stdout_done = true,
                        Some(STDERR) => stderr_done = true,
                        Some(STDIN) => stdin_open = false,
                        _ => {}
                    },
                    Frame::Ping { id } if out.send(Frame::Ping { id }).await.is_err() => {
                        upstream_open = false;
                    }
                    Frame::GoAway { .. } => upstream_open = false,
                    _ => {}
                }
            }
        }
    }
    let mut message = vec![ERROR];
    message.extend_from_slice(&status_message(&status));
    let _ = ws.send(Message::Binary(message.into())).await;
    let _ = ws
        .close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        }))
        .await;
    // Let the close handshake finish (the client answers with its own close frame).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::Role;

    #[test]
    fn statuses_pass_through_or_become_failures() {
        assert_eq!(status_message(b""), SUCCESS.as_bytes());
        let failure = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode"}"#;
        assert_eq!(status_message(failure), failure.to_vec());
        let text: serde_json::Value = serde_json::from_slice(&status_message(b"boom")).unwrap();
        assert_eq!(text["status"], "Failure");
        assert_eq!(text["message"], "boom");
    }

    /// A fake runtime: answers the exec streams, echoes stdin to stdout until stdin closes,
    /// writes "err" on stderr, then exit status 3.
    async fn fake_runtime(io: tokio::io::DuplexStream) {
        let (read, write) = tokio::io::split(io);
        let mut frames = FramedRead::new(read, spdy::Decoder::new());
        let mut out = FramedWrite::new(write, spdy::Encoder::new());
        let mut ids = std::collections::HashMap::new();
        while let Some(Ok(frame)) = frames.next().await {
            match frame {
                Frame::SynStream {
                    stream_id, headers, ..
                } => {
                    let kind = spdy::header(&headers, "streamtype").unwrap().to_string();
                    ids.insert(kind, stream_id);
                    out.send(Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: vec![],
                    })
                    .await
                    .unwrap();
                }
                Frame::Data {
                    stream_id,
                    flags,
                    data,
                } if Some(&stream_id) == ids.get("stdin") => {
                    if !data.is_empty() {
                        out.send(Frame::Data {
                            stream_id: ids["stdout"],
                            flags: 0,
                            data,
                        })
                        .await
                        .unwrap();
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        for (kind, data) in [("stderr", &b"err"[..]), ("stdout", b"")] {
                            out.send(Frame::Data {
                                stream_id: ids[kind],
                                flags: spdy::FLAG_FIN,
                                data: Bytes::copy_from_slice(data),
                            })
                            .await
                            .unwrap();
                        }
                        let status = br#"{"metadata":{},"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
                        out.send(Frame::Data {
                            stream_id: ids["error"],
                            flags: spdy::FLAG_FIN,
                            data: Bytes::from_static(status),
                        })
                        .await
                        .unwrap();
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    #[tokio::test]
    async fn a_v5_session_carries_stdin_to_its_end_output_and_the_exit_status() {
        let (client_io, server_io) = tokio::io::duplex(1 << 16);
        let (runtime_io, agent_io) = tokio::io::duplex(1 << 16);
        tokio::spawn(fake_runtime(runtime_io));
        let server_ws = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let streams = Streams {
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let bridge = tokio::spawn(bridge(server_ws, agent_io, streams, true));
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        client
            .send(Message::Binary(Bytes::from_static(b"\x00hello")))
            .await
            .unwrap();
        client
            .send(Message::Binary(Bytes::from_static(&[CLOSE, STDIN])))
            .await
            .unwrap();
        let mut got = std::collections::BTreeMap::<u8, Vec<u8>>::new();
        let timeout = std::time::Duration::from_secs(10);
        while let Ok(Some(Ok(message))) = tokio::time::timeout(timeout, client.next()).await {
            if let Message::Binary(data) = message {
                got.entry(data[0])
                    .or_default()
                    .extend_from_slice(&data[1..]);
            }
        }
        assert_eq!(got[&STDOUT], b"hello");
        assert_eq!(got[&STDERR], b"err");
        let status: serde_json::Value = serde_json::from_slice(&got[&ERROR]).unwrap();
        assert_eq!(status["details"]["causes"][0]["message"], "3");
        tokio::time::timeout(timeout, bridge)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
