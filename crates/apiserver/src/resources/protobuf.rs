//! Protobuf request bodies, decoded by `navarch_api::protobuf`.

use serde_json::Value;

use crate::StatusError;

/// Decode a `application/vnd.kubernetes.protobuf` request body to the object's JSON.
pub fn decode(body: &[u8]) -> Result<Value, StatusError> {
    let (api_version, kind, mut obj) =
        navarch_api::protobuf::decode_unknown(body).map_err(|e| {
            StatusError::bad_request(format!(
                "the protobuf request body could not be decoded: {e}"
            ))
        })?;
    if let Some(m) = obj.as_object_mut() {
        m.entry("apiVersion").or_insert(Value::String(api_version));
        m.entry("kind").or_insert(Value::String(kind));
    }
    Ok(obj)
}
