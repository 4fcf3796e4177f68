//! Content negotiation: decoding request bodies (JSON, YAML, protobuf) within the size and
//! nesting limits, and encoding responses as JSON, YAML or server-side Tables.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Value};

use navarch_api::ResourceDef;

use crate::StatusError;

/// Request bodies above this size are rejected with 413 (kube-apiserver's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The media types the server reads and writes.
pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
pub const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";

/// How a response should be rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Json,
    Yaml,
    /// `as=Table` (meta.k8s.io v1 or v1beta1).
    Table {
        v1beta1: bool,
    },
    /// `as=PartialObjectMetadata[List]`.
    Metadata,
}

/// What the client asked for in `Accept`.
pub fn negotiate(headers: &HeaderMap) -> Result<Output, StatusError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(Output::Json);
    }
    let mut fallback: Option<Output> = None;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = None;
        let mut g = None;
        let mut v = None;
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = Some(val.trim().to_string()),
                    "g" => g = Some(val.trim().to_string()),
                    "v" => v = Some(val.trim().to_string()),
                    _ => {}
                }
            }
        }
        let json_like = media == JSON || media == "*/*" || media == "application/*";
        match as_.as_deref() {
            Some("Table") if json_like && g.as_deref() == Some("meta.k8s.io") => {
                match v.as_deref() {
                    Some("v1") => return Ok(Output::Table { v1beta1: false }),
                    Some("v1beta1") => return Ok(Output::Table { v1beta1: true }),
                    _ => {}
                }
            }
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList")
                if json_like && g.as_deref() == Some("meta.k8s.io") =>
            {
                return Ok(Output::Metadata);
            }
            Some(_) => {}
            None => {
                if json_like {
                    fallback.get_or_insert(Output::Json);
                } else if media == YAML {
                    fallback.get_or_insert(Output::Yaml);
                }
            }
        }
    }
    fallback.ok_or_else(|| StatusError::not_acceptable(&[JSON, YAML]))
}

/// The media type of a request body (parameters stripped); empty means JSON.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Read a request body up to the limit.
pub async fn read_body(body: Body) -> Result<bytes::Bytes, StatusError> {
    match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => Ok(b),
        Err(e) => {
            // axum reports the limit through a length-limit error in the source chain.
            let text = format!("{e:?}");
            if text.contains("LengthLimit") || text.contains("length limit") {
                Err(StatusError::request_entity_too_large(MAX_BODY))
            } else {
                Err(StatusError::bad_request(format!(
                    "reading request body: {e}"
                )))
            }
        }
    }
}

/// Parse JSON, mapping syntax errors (including excessive nesting) to 400.
pub fn parse_json(body: &[u8]) -> Result<Value, StatusError> {
    serde_json::from_slice(body).map_err(|e| {
        StatusError::bad_request(format!(
            "the request body could not be decoded as JSON: {e}"
        ))
    })
}

/// Parse YAML (one document) into JSON, within the YAML parser's alias and depth budget.
pub fn parse_yaml(body: &[u8]) -> Result<Value, StatusError> {
    // Far tighter alias expansion than the parser's default: a Kubernetes object never needs
    // thousands of replayed events, and a billion-laughs document then fails at once.
    let mut options = serde_saphyr::Options::default();
    options.alias_limits.max_total_replayed_events = 10_000;
    options.alias_limits.max_alias_expansions_per_anchor = 1_000;
    let value: Value = serde_saphyr::from_slice_with_options(body, options).map_err(|e| {
        let msg = e.to_string();
        let detail = if msg.contains("budget") || msg.contains("alias") || msg.contains("replay") {
            "the document expands too many aliases".to_string()
        } else {
            msg.lines().next().unwrap_or("").to_string()
        };
        StatusError::bad_request(format!(
            "the request body could not be decoded as YAML: {detail}"
        ))
    })?;
    // Nesting is bounded by serde_json's own limit when the value is serialised later; check
    // it here so that a deep YAML document fails as a 400 and not further down.
    if depth(&value) > 100 {
        return Err(StatusError::bad_request(
            "the request body is nested too deeply",
        ));
    }
    Ok(value)
}

fn depth(v: &Value) -> usize {
    // Iterative, so that the check itself cannot overflow the stack.
    let mut max = 0;
    let mut stack = vec![(v, 1usize)];
    while let Some((v, d)) = stack.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => stack.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(m) => stack.extend(m.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Decode an object body by its content type.
pub fn decode_object(ctype: &str, body: &[u8]) -> Result<Value, StatusError> {
    match ctype {
        "" | JSON => parse_json(body),
        YAML | "application/x-yaml" | "text/yaml" => parse_yaml(body),
        PROTOBUF => crate::resources::protobuf::decode(body),
        other => Err(StatusError::unsupported_media_type(
            other,
            &[JSON, YAML, PROTOBUF],
        )),
    }
}

/// Field paths present in `input` but dropped by normalisation: the unknown fields.
pub fn unknown_fields(input: &Value, normalized: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk_unknown(input, normalized, String::new(), &mut out);
    out
}

fn walk_unknown(input: &Value, norm: &Value, path: String, out: &mut Vec<String>) {
    match (input, norm) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(nv) => walk_unknown(v, nv, p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b.iter()).enumerate() {
                walk_unknown(x, y, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// A JSON response with a status code.
pub fn json_response<T: serde::Serialize + ?Sized>(code: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = (code, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    r
}

/// Render an object or list in the negotiated form.
pub fn respond(code: StatusCode, output: Output, def: &ResourceDef, value: &Value) -> Response {
    match output {
        Output::Json => json_response(code, value),
        Output::Yaml => match serde_saphyr::to_string(value) {
            Ok(text) => {
                let mut r = (code, text).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(YAML));
                r
            }
            Err(e) => StatusError::internal(e).into_response(),
        },
        Output::Table { v1beta1 } => {
            json_response(code, &to_table(def, value, v1beta1, true, None))
        }
        Output::Metadata => json_response(code, &to_metadata(value)),
    }
}

fn is_list(value: &Value) -> bool {
    value["kind"].as_str().is_some_and(|k| k.ends_with("List")) && value.get("items").is_some()
}

/// Convert an object or a list to a `meta.k8s.io` Table.
pub fn to_table(
    def: &ResourceDef,
    value: &Value,
    v1beta1: bool,
    with_columns: bool,
    include_object: Option<&str>,
) -> Value {
    let now = jiff::Timestamp::now();
    let objects: Vec<&Value> = if is_list(value) {
        value["items"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    } else {
        vec![value]
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let cells = def.ops.table_row(obj, now);
            let object = match include_object {
                Some("None") => Value::Null,
                Some("Object") => (*obj).clone(),
                _ => partial_metadata(obj, v1beta1),
            };
            let mut row = json!({"cells": cells});
            if !object.is_null() {
                row["object"] = object;
            }
            row
        })
        .collect();
    let mut table = json!({
        "kind": "Table",
        "apiVersion": if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
        "metadata": {},
        "rows": rows,
    });
    if with_columns {
        table["columnDefinitions"] =
            serde_json::to_value(def.ops.table_columns()).unwrap_or_default();
    } else {
        table["columnDefinitions"] = json!([]);
    }
    if is_list(value) {
        for k in ["resourceVersion", "continue", "remainingItemCount"] {
            if let Some(v) = value["metadata"].get(k) {
                table["metadata"][k] = v.clone();
            }
        }
    } else if let Some(rv) = value["metadata"].get("resourceVersion") {
        table["metadata"]["resourceVersion"] = rv.clone();
    }
    table
}

fn partial_metadata(obj: &Value, v1beta1: bool) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": if v1beta1 { "meta.k8s.io/v1beta1" } else { "meta.k8s.io/v1" },
        "metadata": obj["metadata"].clone(),
    })
}

/// Convert an object or list to `PartialObjectMetadata[List]`.
pub fn to_metadata(value: &Value) -> Value {
    if is_list(value) {
        let items: Vec<Value> = value["items"]
            .as_array()
            .map(|a| a.iter().map(|o| partial_metadata(o, false)).collect())
            .unwrap_or_default();
        json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value["metadata"].clone(),
            "items": items,
        })
    } else {
        partial_metadata(value, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Result<Output, StatusError> {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        negotiate(&h)
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").unwrap(),
            Output::Table { v1beta1: false }
        );
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf,application/json").unwrap(),
            Output::Json
        );
        assert_eq!(accept("application/yaml").unwrap(), Output::Yaml);
        assert!(accept("application/vnd.kubernetes.protobuf").is_err());
    }

    #[test]
    fn unknown_fields_are_found_by_path() {
        let input =
            json!({"spec": {"replicas": 1, "bogus": 2, "template": {"x": null}}, "extra": true});
        let norm = json!({"spec": {"replicas": 1, "template": {}}});
        let mut u = unknown_fields(&input, &norm);
        u.sort();
        assert_eq!(u, vec!["extra", "spec.bogus"]);
    }

    #[test]
    fn deep_yaml_is_rejected_not_crashing() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse_yaml(deep.as_bytes()).is_err());
        assert!(parse_json(deep.as_bytes()).is_err());
    }

    #[test]
    fn yaml_alias_bomb_is_rejected() {
        let mut doc = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            doc.push_str(&format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 9].join(",")));
        }
        assert!(parse_yaml(doc.as_bytes()).is_err());
    }
}
