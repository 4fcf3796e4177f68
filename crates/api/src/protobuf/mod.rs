//! Kubernetes protobuf request bodies to JSON, with no I/O. Start at [`decode_unknown`].
//!
//! kubectl ≥ 1.32 and client-go components send built-in kinds as
//! `application/vnd.kubernetes.protobuf`: the magic `k8s\0`, then a `runtime.Unknown`
//! {1 TypeMeta {1 apiVersion, 2 kind}, 2 raw object, 3 contentEncoding, 4 contentType}. The
//! object is transcoded to the JSON the API uses, driven by a generated table of every message
//! the served groups reach (`schema.rs`, made by `tools/protogen/protogen.py` from the k8s-pb and
//! k8s-openapi crates and the Go API types; regenerate it as that script's docstring says).
//!
//! The JSON is the one the Go API server would produce after decoding the same bytes into its
//! Go structs, which differs from plain protobuf presence in one way that matters: Go writes
//! every non-pointer scalar even when it is zero, so a kubectl body carries `namespace: ""`,
//! `restartPolicy: ""`, `hostPort: 0`, `paused: false` and so on. Where the Go field is a
//! non-pointer with `omitempty` such zeros are dropped (Go would not show them, and defaulting
//! treats them as unset); where it is a pointer (`replicas: 0`, `gracePeriodSeconds: 0`,
//! `automountServiceAccountToken: false`) or has no `omitempty`, they are kept. Zero
//! `IntOrString` values of non-pointer fields (`targetPort`) are dropped for the same reason.
//!
//! The special messages become what their Go types marshal to: `Time` an RFC 3339 string in
//! whole seconds (absent when empty), `MicroTime` with microseconds, `Duration` a Go duration
//! string, `IntOrString` a number or string, `Quantity` its string, `RawExtension` and
//! `FieldsV1` the embedded JSON (or, for a `RawExtension` holding `k8s\0…`, the decoded
//! object), maps JSON objects, `[]byte` base64. Unknown fields are skipped. Malformed input is
//! a [`ProtoError`], never a panic; lengths are checked against the remaining input before use.

mod decode;
#[rustfmt::skip]
mod schema;
mod special;
mod table;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

/// The prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Larger bodies are refused before decoding (the API server's own request limit is lower).
pub const MAX_BODY_LEN: usize = 8 << 20;

/// Messages (and embedded objects) nested deeper than this are refused.
pub const MAX_DEPTH: usize = 100;

/// Why a protobuf body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("body does not start with the kubernetes protobuf prefix")]
    MissingMagic,
    #[error("body of {len} bytes is larger than the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("protobuf data is truncated")]
    Truncated,
    #[error("protobuf varint overflows 64 bits")]
    VarintOverflow,
    #[error("invalid protobuf field key {0}")]
    InvalidKey(u64),
    #[error("field {field} of {message} has wire type {wire_type}, which does not fit its type")]
    WireType {
        message: &'static str,
        field: u32,
        wire_type: u8,
    },
    #[error("protobuf messages are nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("object has no apiVersion or kind in its protobuf envelope")]
    MissingTypeMeta,
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\"")]
    UnknownKind { api_version: String, kind: String },
    #[error("{message} holds invalid JSON: {reason}")]
    InvalidJson {
        message: &'static str,
        reason: String,
    },
    #[error("IntOrString has the impossible type {0}")]
    InvalidIntOrString(i64),
    #[error("time of {seconds} seconds since the epoch is outside years 0 to 9999")]
    TimeOutOfRange { seconds: i64 },
    #[error("field {field} of {message} is not a finite number")]
    NonFiniteNumber { message: &'static str, field: u32 },
}

/// Decodes a protobuf request body (`k8s\0` + `runtime.Unknown`) into its apiVersion, kind and
/// the object's JSON (which includes `apiVersion` and `kind`).
///
/// Every built-in kind of the served groups is known, plus the subresource and option kinds
/// kubectl sends (`Scale`, `Eviction`, `Binding`, `TokenRequest`, `SelfSubjectAccessReview`,
/// `DeleteOptions` under any group version). The envelope's `contentEncoding` and
/// `contentType` are ignored, as the Go API server ignores them. The JSON still wants the
/// kind's normalisation, defaulting and validation, exactly like a JSON body.
pub fn decode_unknown(body: &[u8]) -> Result<(String, String, Value), ProtoError> {
    if body.len() > MAX_BODY_LEN {
        return Err(ProtoError::TooLarge {
            len: body.len(),
            limit: MAX_BODY_LEN,
        });
    }
    decode::unknown(body, 0)
}
