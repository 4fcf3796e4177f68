//! Objects between the wire and the store: reading the current object, encoding for storage
//! (without `resourceVersion`, which is the store revision), server-set metadata (uid,
//! creation time, generation, managedFields), and the helpers the write paths share.

use navarch_api::{meta, ResourceDef};
use navarch_store::KeyValue;
use serde_json::{json, Map, Value};

use super::cache::decode_stored;
use super::request::{FieldValidation, Target};
use super::ResourceApi;
use crate::StatusError;

/// Kinds whose `metadata.generation` tracks spec changes (those with a controller that reports
/// `status.observedGeneration`).
pub fn tracks_generation(def: &ResourceDef) -> bool {
    def.ops.has_status()
        && !matches!(
            def.kind.as_str(),
            "Pod"
                | "Node"
                | "Namespace"
                | "PersistentVolume"
                | "PersistentVolumeClaim"
                | "Service"
                | "ResourceQuota"
        )
}

/// The value stored for an object of `def`: its JSON without `resourceVersion`, in the shape
/// of the resource it is stored as.
pub fn encode_for_store(def: &ResourceDef, obj: &Value) -> Vec<u8> {
    let mut copy = def.to_storage(obj.clone());
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&copy).unwrap_or_default()
}

/// Set the object's resourceVersion.
pub fn set_rv(obj: &mut Value, rev: i64) {
    meta::set(obj, "resourceVersion", Value::String(rev.to_string()));
}

/// Random lowercase suffix used by `generateName` (the alphabet upstream uses, no vowels).
pub fn random_suffix(n: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The parts of an object that are not metadata or status: a change bumps `generation`.
pub fn spec_part(obj: &Value) -> Value {
    let mut m = obj.as_object().cloned().unwrap_or_default();
    for k in ["metadata", "status", "kind", "apiVersion"] {
        m.remove(k);
    }
    Value::Object(m)
}

/// The managedFields entry for one write: the manager, the operation and the fields it set
/// (every field of the object except status for the main resource, as `FieldsV1`).
pub fn managed_entry(
    manager: &str,
    operation: &str,
    api_version: &str,
    obj: &Value,
    subresource: Option<&str>,
) -> Value {
    let mut fields = Map::new();
    if let Some(o) = obj.as_object() {
        for (k, v) in o {
            let keep = match subresource {
                Some("status") => k == "status",
                _ => k != "status" && k != "kind" && k != "apiVersion",
            };
            if keep {
                if k == "metadata" {
                    let mut mm = Map::new();
                    if let Some(meta) = v.as_object() {
                        for (mk, mv) in meta {
                            if matches!(
                                mk.as_str(),
                                "labels" | "annotations" | "finalizers" | "ownerReferences"
                            ) {
                                mm.insert(format!("f:{mk}"), fields_v1(mv));
                            }
                        }
                    }
                    if !mm.is_empty() {
                        fields.insert("f:metadata".into(), Value::Object(mm));
                    }
                } else {
                    fields.insert(format!("f:{k}"), fields_v1(v));
                }
            }
        }
    }
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": meta::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": Value::Object(fields),
    });
    if let Some(s) = subresource {
        entry["subresource"] = Value::String(s.to_string());
    }
    entry
}

fn fields_v1(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(format!("f:{k}"), fields_v1(v));
            }
            Value::Object(out)
        }
        _ => json!({}),
    }
}

/// Record a write in `metadata.managedFields`, replacing the manager's previous entry for the
/// same operation and subresource.
pub fn record_manager(
    obj: &mut Value,
    manager: &str,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) {
    let entry = managed_entry(manager, operation, api_version, obj, subresource);
    let mut list: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    list.retain(|e| {
        !(e["manager"] == manager
            && e["operation"] == operation
            && e["subresource"].as_str() == subresource)
    });
    list.push(entry);
    meta::set(obj, "managedFields", Value::Array(list));
}

impl ResourceApi {
    /// The storage key of a target's object.
    pub fn key_of(&self, t: &Target, name: &str) -> String {
        t.def.key(t.namespace.as_deref(), name)
    }

    /// Read the current object from the store (a consistent read), as the target serves it.
    pub async fn current(&self, t: &Target, name: &str) -> Result<(Value, KeyValue), StatusError> {
        let key = self.key_of(t, name);
        let (_, kv) = self.store.get(&key, None).await?;
        let kv = kv.ok_or_else(|| StatusError::not_found(&t.def.gv.group, &t.def.plural, name))?;
        let obj = decode_stored(&kv).ok_or_else(|| {
            StatusError::internal(format!("stored object {key} is not valid JSON"))
        })?;
        Ok((t.def.to_served(obj), kv))
    }

    /// Normalise an incoming object for a kind: check apiVersion/kind, decode through the
    /// typed form, and report unknown fields per `fieldValidation`. Returns the object and
    /// any warnings.
    pub fn normalize_input(
        &self,
        def: &ResourceDef,
        mut raw: Value,
        fv: FieldValidation,
    ) -> Result<(Value, Vec<String>), StatusError> {
        if !raw.is_object() {
            return Err(StatusError::bad_request(format!(
                "the object provided is unrecognized (must be of type {})",
                def.kind
            )));
        }
        let api_version = def.gv.api_version();
        match raw.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                raw["apiVersion"] = Value::String(api_version.clone());
            }
            Some(v) if v == api_version => {}
            Some(v) => {
                return Err(StatusError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({api_version})"
                )))
            }
        }
        match raw.get("kind").and_then(Value::as_str) {
            None | Some("") => raw["kind"] = Value::String(def.kind.clone()),
            Some(k) if k == def.kind => {}
            Some(k) => {
                return Err(StatusError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    def.kind
                )))
            }
        }
        let normalized = def
            .ops
            .normalize(raw.clone())
            .map_err(StatusError::bad_request)?;
        let unknown = if fv == FieldValidation::Ignore {
            Vec::new()
        } else {
            super::codec::unknown_fields(&raw, &normalized)
        };
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            let msgs: Vec<String> = unknown
                .iter()
                .map(|f| format!("unknown field \"{f}\""))
                .collect();
            if fv == FieldValidation::Strict {
                return Err(StatusError::bad_request(format!(
                    "strict decoding error: {}",
                    msgs.join(", ")
                )));
            }
            warnings = msgs;
        }
        let mut normalized = normalized;
        drop_empty_meta_maps(&mut normalized);
        Ok((normalized, warnings))
    }
}

/// `labels` and `annotations` are `omitempty` maps upstream: once the last key is removed
/// (`kubectl label x k-`, a merge patch with `null`) they disappear instead of staying `{}`.
fn drop_empty_meta_maps(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in ["labels", "annotations"] {
            if meta
                .get(field)
                .and_then(Value::as_object)
                .is_some_and(|m| m.is_empty())
            {
                meta.remove(field);
            }
        }
    }
}

/// Add `Warning` headers (RFC 7234 style, code 299) to a response.
pub fn add_warnings(resp: &mut axum::response::Response, warnings: &[String]) {
    for w in warnings {
        let text = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(http::header::WARNING, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn emptied_label_and_annotation_maps_are_dropped() {
        let mut obj = json!({"metadata": {"name": "a", "labels": {}, "annotations": {}},
                             "data": {}});
        super::drop_empty_meta_maps(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "a"}, "data": {}}));

        let mut obj = json!({"metadata": {"labels": {"k": "v"}}});
        super::drop_empty_meta_maps(&mut obj);
        assert_eq!(obj, json!({"metadata": {"labels": {"k": "v"}}}));
    }
}
