//! SPDY/3.1 framing, the transport of the kubelet streaming protocols (remotecommand and
//! port-forward) when kubectl or the runtime's streaming server speaks it.
//!
//! No maintained Rust crate implements SPDY, so this is a small one of our own: the frames the
//! Kubernetes peers exchange (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
//! HEADERS, WINDOW_UPDATE and DATA) and the header blocks, which are zlib-compressed with one
//! context per direction per connection and the SPDY/3 preset dictionary ([`dictionary`]).
//! [`Encoder`] and [`Decoder`] are `tokio_util` codecs, one per direction; they do no I/O of
//! their own. Flow control is not enforced (neither does the Go implementation the kubelet
//! and containerd use); WINDOW_UPDATE frames are decoded and may be ignored.

use std::sync::OnceLock;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The SPDY version these frames carry.
const VERSION: u16 = 3;
/// Control frames have the high bit of the first word set.
const CONTROL_BIT: u8 = 0x80;
/// The largest frame accepted or sent (the length field would allow 16 MiB; peers send
/// frames of tens of KiB).
pub const MAX_FRAME: usize = 8 << 20;
/// The largest decompressed header block accepted.
const MAX_HEADER_BLOCK: usize = 1 << 20;

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream is no longer needed.
pub const RST_CANCEL: u32 = 5;

/// Header names and values, in order. Names are lowercase on the wire.
pub type Headers = Vec<(String, String)>;

/// One SPDY/3.1 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// The settings' raw entries (nothing here acts on them).
    Settings {
        flags: u8,
        entries: Bytes,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type this implementation does not know; skipped.
    Unknown {
        kind: u16,
    },
}

impl Frame {
    /// Whether the frame ends its sender's half of the stream.
    pub fn is_fin(&self) -> bool {
        match self {
            Frame::SynStream { flags, .. }
            | Frame::SynReply { flags, .. }
            | Frame::Headers { flags, .. }
            | Frame::Data { flags, .. } => flags & FLAG_FIN != 0,
            _ => false,
        }
    }
}

/// The value of header `name` (names compare case-insensitively).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A framing or compression failure; the connection cannot continue after one.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("unsupported spdy version {0}")]
    Version(u16),
    #[error("spdy frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("malformed spdy {0} frame")]
    Malformed(&'static str),
    #[error("spdy header compression: {0}")]
    Compression(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The SPDY/3 header compression dictionary (draft-mbelshe-httpbis-spdy-00, 2.6.10.1): a list
/// of length-prefixed common header names and values, then a run of common value text. Both
/// peers must use exactly these 1423 bytes.
pub fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &[&str] = &[
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information",
            "204 No Content",
            "301 Moved Permanently",
            "400 Bad Request",
            "401 Unauthorized",
            "403 Forbidden",
            "404 Not Found",
            "500 Internal Server Error",
            "501 Not Implemented",
            "503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,",
            "application/xhtml+xml,text/plain,text/javascript,public",
            "privatemax-age=gzip,deflate,sdch",
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        ];
        let mut dict = Vec::with_capacity(1423);
        for word in WORDS {
            dict.extend_from_slice(&(word.len() as u32).to_be_bytes());
            dict.extend_from_slice(word.as_bytes());
        }
        for text in TAIL {
            dict.extend_from_slice(text.as_bytes());
        }
        dict
    })
}

/// Encodes frames, compressing header blocks with this direction's zlib context.
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .expect("a fresh zlib stream accepts a dictionary");
        Encoder { deflate }
    }

    fn header_block(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (name, value) in headers {
            raw.put_u32(name.len() as u32);
            raw.extend_from_slice(name.to_ascii_lowercase().as_bytes());
            raw.put_u32(value.len() as u32);
            raw.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&raw[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            consumed += (self.deflate.total_in() - before) as usize;
            // Done once all input is in and the flush left room to spare.
            if consumed == raw.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    /// Append `frame` to `dst`.
    pub fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        match frame {
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                if data.len() >= MAX_FRAME {
                    return Err(SpdyError::TooLarge(data.len()));
                }
                dst.reserve(8 + data.len());
                dst.put_u32(stream_id & 0x7fff_ffff);
                dst.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                dst.extend_from_slice(data);
                Ok(())
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                let mut body = Vec::with_capacity(10 + block.len());
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(associated_to & 0x7fff_ffff);
                body.put_u8((priority & 0x7) << 5);
                body.put_u8(0);
                body.extend_from_slice(&block);
                control(dst, TYPE_SYN_STREAM, *flags, &body)
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                let mut body = Vec::with_capacity(4 + block.len());
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend_from_slice(&block);
                control(dst, TYPE_SYN_REPLY, *flags, &body)
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let block = self.header_block(headers)?;
                let mut body = Vec::with_capacity(4 + block.len());
                body.put_u32(stream_id & 0x7fff_ffff);
                body.extend_from_slice(&block);
                control(dst, TYPE_HEADERS, *flags, &body)
            }
            Frame::RstStream { stream_id, status } => {
                let mut body = Vec::with_capacity(8);
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(dst, TYPE_RST_STREAM, 0, &body)
            }
            Frame::Settings { flags, entries } => {
                let mut body = Vec::with_capacity(4 + entries.len());
                body.put_u32((entries.len() / 8) as u32);
                body.extend_from_slice(entries);
                control(dst, TYPE_SETTINGS, *flags, &body)
            }
            Frame::Ping { id } => control(dst, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut body = Vec::with_capacity(8);
                body.put_u32(last_good_stream_id & 0x7fff_ffff);
                body.put_u32(*status);
                control(dst, TYPE_GOAWAY, 0, &body)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut body = Vec::with_capacity(8);
                body.put_u32(stream_id & 0x7fff_ffff);
                body.put_u32(delta & 0x7fff_ffff);
                control(dst, TYPE_WINDOW_UPDATE, 0, &body)
            }
            Frame::Unknown { .. } => Ok(()),
        }
    }
}

fn control(dst: &mut BytesMut, kind: u16, flags: u8, body: &[u8]) -> Result<(), SpdyError> {
    if body.len() >= MAX_FRAME {
        return Err(SpdyError::TooLarge(body.len()));
    }
    dst.reserve(8 + body.len());
    dst.put_u16(0x8000 | VERSION);
    dst.put_u16(kind);
    dst.put_u32((u32::from(flags) << 24) | body.len() as u32);
    dst.extend_from_slice(body);
    Ok(())
}

impl tokio_util::codec::Encoder<Frame> for Encoder {
    type Error = SpdyError;
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), SpdyError> {
        Encoder::encode(self, &frame, dst)
    }
}

/// Decodes frames, decompressing header blocks with this direction's zlib context.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            inflate: Decompress::new(true),
        }
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(input.len() * 4 + 64);
        let mut consumed = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(SpdyError::TooLarge(out.len()));
                }
                out.reserve(out.len().max(256));
            }
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result =
                self.inflate
                    .decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync);
            consumed += (self.inflate.total_in() - before_in) as usize;
            match result {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
            let progressed =
                self.inflate.total_in() != before_in || self.inflate.total_out() != before_out;
            if consumed == input.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if !progressed {
                return Err(SpdyError::Compression(
                    "header block does not inflate".into(),
                ));
            }
        }
    }

    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = self.inflate(compressed)?;
        let mut buf = &raw[..];
        let malformed = || SpdyError::Malformed("header block");
        let take_u32 = |buf: &mut &[u8]| -> Result<usize, SpdyError> {
            if buf.len() < 4 {
                return Err(malformed());
            }
            Ok(buf.get_u32() as usize)
        };
        let count = take_u32(&mut buf)?;
        let mut headers = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let mut pair = [String::new(), String::new()];
            for part in &mut pair {
                let len = take_u32(&mut buf)?;
                if buf.len() < len {
                    return Err(malformed());
                }
                *part = String::from_utf8_lossy(&buf[..len]).into_owned();
                buf.advance(len);
            }
            let [name, value] = pair;
            headers.push((name, value));
        }
        Ok(headers)
    }

    /// Take one whole frame off the front of `src`, if it holds one.
    pub fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if src.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, src[5], src[6], src[7]])) as usize;
        if len >= MAX_FRAME {
            return Err(SpdyError::TooLarge(len));
        }
        if src.len() < 8 + len {
            src.reserve(8 + len - src.len());
            return Ok(None);
        }
        let head = src.split_to(8);
        let body = src.split_to(len).freeze();
        let flags = head[4];
        if head[0] & CONTROL_BIT == 0 {
            let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            return Ok(Some(Frame::Data {
                stream_id,
                flags,
                data: body,
            }));
        }
        let version = u16::from_be_bytes([head[0] & 0x7f, head[1]]);
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let mut b = &body[..];
        let need = |b: &[u8], n: usize, what: &'static str| {
            if b.len() < n {
                Err(SpdyError::Malformed(what))
            } else {
                Ok(())
            }
        };
        let frame = match kind {
            TYPE_SYN_STREAM => {
                need(b, 10, "SYN_STREAM")?;
                let stream_id = b.get_u32() & 0x7fff_ffff;
                let associated_to = b.get_u32() & 0x7fff_ffff;
                let priority = b.get_u8() >> 5;
                b.advance(1);
                Frame::SynStream {
                    stream_id,
                    associated_to,
                    priority,
                    flags,
                    headers: self.header_block(b)?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                need(b, 4, "SYN_REPLY")?;
                let stream_id = b.get_u32() & 0x7fff_ffff;
                let headers = self.header_block(b)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                need(b, 8, "RST_STREAM")?;
                Frame::RstStream {
                    stream_id: b.get_u32() & 0x7fff_ffff,
                    status: b.get_u32(),
                }
            }
            TYPE_SETTINGS => {
                need(b, 4, "SETTINGS")?;
                b.advance(4);
                Frame::Settings {
                    flags,
                    entries: Bytes::copy_from_slice(b),
                }
            }
            TYPE_PING => {
                need(b, 4, "PING")?;
                Frame::Ping { id: b.get_u32() }
            }
            TYPE_GOAWAY => {
                need(b, 4, "GOAWAY")?;
                let last_good_stream_id = b.get_u32() & 0x7fff_ffff;
                let status = if b.len() >= 4 { b.get_u32() } else { 0 };
                Frame::GoAway {
                    last_good_stream_id,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                need(b, 8, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream_id: b.get_u32() & 0x7fff_ffff,
                    delta: b.get_u32() & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }
}

impl tokio_util::codec::Decoder for Decoder {
    type Item = Frame;
    type Error = SpdyError;
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        Decoder::decode(self, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut encoder = Encoder::new();
        let mut decoder = Decoder::new();
        let mut wire = BytesMut::new();
        for frame in frames {
            encoder.encode(frame, &mut wire).unwrap();
        }
        let mut out = Vec::new();
        // Byte by byte: frames split anywhere must reassemble.
        let mut src = BytesMut::new();
        for byte in wire {
            src.put_u8(byte);
            while let Some(frame) = decoder.decode(&mut src).unwrap() {
                out.push(frame);
            }
        }
        assert!(src.is_empty());
        out
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_dictionary_is_the_spdy3_one() {
        let dict = dictionary();
        assert_eq!(dict.len(), 1423);
        assert_eq!(&dict[..11], b"\0\0\0\x07options");
        assert!(dict.ends_with(b",enq=0."));
        // The zlib dictionary id peers compare (Adler-32 of the dictionary).
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in dict {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        let mut decoder = Decoder::new();
        let mut encoder = Encoder::new();
        let mut wire = BytesMut::new();
        encoder
            .encode(
                &Frame::SynReply {
                    stream_id: 1,
                    flags: 0,
                    headers: headers(&[("a", "b")]),
                },
                &mut wire,
            )
            .unwrap();
        // zlib header (2 bytes) with FDICT, then the dictionary id.
        let block = &wire[12..];
        assert_eq!(block[1] & 0x20, 0x20);
        assert_eq!(
            u32::from_be_bytes([block[2], block[3], block[4], block[5]]),
            (b << 16) | a
        );
        assert!(decoder.decode(&mut wire).unwrap().is_some());
    }

    #[test]
    fn every_frame_kind_survives_a_roundtrip_split_anywhere() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[("streamtype", "error"), ("port", "8080")]),
            },
            Frame::SynStream {
                stream_id: 3,
                associated_to: 0,
                priority: 2,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "data"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: headers(&[]),
            },
            Frame::Data {
                stream_id: 3,
                flags: 0,
                data: Bytes::from_static(b"hello"),
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::new(),
            },
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: Bytes::from_static(&[0, 0, 0, 7, 0, 1, 0, 0]),
            },
            Frame::Ping { id: 7 },
            Frame::Headers {
                stream_id: 1,
                flags: FLAG_FIN,
                headers: headers(&[("x", "y")]),
            },
            Frame::WindowUpdate {
                stream_id: 3,
                delta: 65536,
            },
            Frame::GoAway {
                last_good_stream_id: 3,
                status: 0,
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn header_blocks_share_one_compression_context_per_direction() {
        // The second block refers back to the first: decoding it alone must fail, decoding
        // both in order must not.
        let mut encoder = Encoder::new();
        let mut wire = BytesMut::new();
        let h = headers(&[("streamtype", "stdout"), ("x-long", &"v".repeat(100))]);
        for id in [1, 3] {
            encoder
                .encode(
                    &Frame::SynStream {
                        stream_id: id,
                        associated_to: 0,
                        priority: 0,
                        flags: 0,
                        headers: h.clone(),
                    },
                    &mut wire,
                )
                .unwrap();
        }
        let mut decoder = Decoder::new();
        let first = decoder.decode(&mut wire).unwrap().unwrap();
        let second = decoder.decode(&mut wire).unwrap().unwrap();
        assert!(matches!(first, Frame::SynStream { stream_id: 1, .. }));
        match second {
            Frame::SynStream { headers, .. } => assert_eq!(headers, h),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn large_header_values_and_data_frames_are_kept_whole() {
        let value = "x".repeat(100_000);
        let frames = vec![
            Frame::SynReply {
                stream_id: 5,
                flags: 0,
                headers: headers(&[("big", &value)]),
            },
            Frame::Data {
                stream_id: 5,
                flags: 0,
                data: Bytes::from(vec![7u8; 300_000]),
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let mut decoder = Decoder::new();
        // Version 2.
        let mut src = BytesMut::from(&[0x80, 2, 0, 1, 0, 0, 0, 0][..]);
        assert!(matches!(
            decoder.decode(&mut src),
            Err(SpdyError::Version(2))
        ));
        // A SYN_STREAM too short for its fields.
        let mut src = BytesMut::from(&[0x80, 3, 0, 1, 0, 0, 0, 2, 0, 0][..]);
        assert!(decoder.decode(&mut src).is_err());
        // A header block that is not zlib.
        let mut src = BytesMut::from(&[0x80, 3, 0, 2, 0, 0, 0, 8, 0, 0, 0, 1, 1, 2, 3, 4][..]);
        assert!(Decoder::new().decode(&mut src).is_err());
        // Too large.
        let mut src = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decoder.decode(&mut src),
            Err(SpdyError::TooLarge(_))
        ));
    }

    #[test]
    fn header_lookup_ignores_case() {
        let h = headers(&[("StreamType", "stdin")]);
        assert_eq!(header(&h, "streamtype"), Some("stdin"));
        assert_eq!(header(&h, "port"), None);
    }
}
