//! The table-driven walk: one message's bytes into a JSON object, field by field.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::table::{self, Field, Kind, Message, Special, INLINE, OMIT_ZERO, REPEATED};
use super::wire::{Reader, FIXED64, LEN, VARINT};
use super::{special, ProtoError, MAGIC, MAX_DEPTH};

/// `k8s\0` + `runtime.Unknown`, at `depth` levels of embedding.
pub(super) fn unknown(body: &[u8], depth: usize) -> Result<(String, String, Value), ProtoError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::MissingMagic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    let mut r = Reader::new(envelope);
    while !r.is_empty() {
        match r.key()? {
            (1, LEN) => {
                let mut tm = Reader::new(r.bytes()?);
                while !tm.is_empty() {
                    match tm.key()? {
                        (1, LEN) => api_version = lossy(tm.bytes()?),
                        (2, LEN) => kind = lossy(tm.bytes()?),
                        (f, wt) => tm.skip(f, wt, MAX_DEPTH)?,
                    }
                }
            }
            (2, LEN) => raw = r.bytes()?,
            (f, wt) => r.skip(f, wt, MAX_DEPTH)?,
        }
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta);
    }
    let msg =
        table::message_for_kind(&api_version, &kind).ok_or_else(|| ProtoError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let mut object = Map::new();
    merge(raw, msg, &mut object, depth + 1)?;
    object.insert("apiVersion".into(), Value::String(api_version.clone()));
    object.insert("kind".into(), Value::String(kind.clone()));
    Ok((api_version, kind, Value::Object(object)))
}

/// The JSON of one whole message; `None` where Go renders it as null (an empty `Time`, a
/// `RawExtension` without bytes).
pub(super) fn message_value(
    buf: &[u8],
    msg: &'static Message,
    depth: usize,
) -> Result<Option<Value>, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    match msg.special {
        Special::None => {
            let mut object = Map::new();
            merge(buf, msg, &mut object, depth)?;
            Ok(Some(Value::Object(object)))
        }
        Special::Items => {
            let mut object = Map::new();
            merge(buf, msg, &mut object, depth)?;
            Ok(Some(
                object
                    .remove("items")
                    .unwrap_or_else(|| Value::Array(Vec::new())),
            ))
        }
        _ => special::decode(buf, msg, depth),
    }
}

/// Decodes `buf` as `msg` into `out`. A message field seen twice merges, as protobuf says.
fn merge(
    buf: &[u8],
    msg: &'static Message,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire_type) = r.key()?;
        match msg.field(tag) {
            Some(field) => read_field(&mut r, msg, field, wire_type, out, depth)?,
            None => r.skip(tag, wire_type, MAX_DEPTH - depth)?,
        }
    }
    Ok(())
}

fn read_field(
    r: &mut Reader<'_>,
    msg: &'static Message,
    field: &'static Field,
    wire_type: u8,
    out: &mut Map<String, Value>,
    depth: usize,
) -> Result<(), ProtoError> {
    let wrong = || ProtoError::WireType {
        message: msg.name,
        field: field.tag,
        wire_type,
    };
    match field.kind {
        Kind::Str | Kind::Bytes => {
            if wire_type != LEN {
                return Err(wrong());
            }
            let b = r.bytes()?;
            let value = if field.kind == Kind::Str {
                lossy(b)
            } else {
                BASE64.encode(b)
            };
            place(out, field, Value::String(value), b.is_empty());
        }
        Kind::Bool | Kind::I32 | Kind::I64 | Kind::F64 => {
            if field.has(REPEATED) && wire_type == LEN {
                let mut packed = Reader::new(r.bytes()?);
                while !packed.is_empty() {
                    let (value, _) = scalar(&mut packed, msg, field)?;
                    push(out, field.json, value);
                }
            } else {
                let expected = if field.kind == Kind::F64 {
                    FIXED64
                } else {
                    VARINT
                };
                if wire_type != expected {
                    return Err(wrong());
                }
                let (value, zero) = scalar(r, msg, field)?;
                place(out, field, value, zero);
            }
        }
        Kind::Msg(index) => {
            if wire_type != LEN {
                return Err(wrong());
            }
            let b = r.bytes()?;
            let sub = table::message(index);
            if field.has(INLINE) {
                merge(b, sub, out, depth + 1)?;
            } else if field.has(REPEATED) {
                let value = message_value(b, sub, depth + 1)?.unwrap_or(Value::Null);
                push(out, field.json, value);
            } else if sub.special == Special::None {
                let slot = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(object) = slot {
                    merge(b, sub, object, depth + 1)?;
                }
            } else {
                match message_value(b, sub, depth + 1)? {
                    Some(value) => {
                        let zero = matches!(&value, Value::String(s) if s.is_empty())
                            || value.as_i64() == Some(0);
                        place(
                            out,
                            field,
                            value,
                            zero && sub.special == Special::IntOrString,
                        );
                    }
                    None => {
                        out.remove(field.json);
                    }
                }
            }
        }
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            if wire_type != LEN {
                return Err(wrong());
            }
            let (key, value) = map_entry(r.bytes()?, msg, field, depth + 1)?;
            let slot = out
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(object) = slot {
                object.insert(key, value);
            }
        }
    }
    Ok(())
}

/// One varint or fixed64 value of a scalar field, and whether it is the zero value.
fn scalar(
    r: &mut Reader<'_>,
    msg: &'static Message,
    field: &'static Field,
) -> Result<(Value, bool), ProtoError> {
    Ok(match field.kind {
        Kind::Bool => {
            let b = r.varint()? != 0;
            (Value::Bool(b), !b)
        }
        // Go accumulates an int32 in 32 bits: the low half of a sign-extended varint.
        Kind::I32 => {
            let v = r.varint()? as i32;
            (Value::from(v), v == 0)
        }
        Kind::I64 => {
            let v = r.varint()? as i64;
            (Value::from(v), v == 0)
        }
        Kind::F64 => {
            let v = f64::from_bits(r.fixed64()?);
            let n = Number::from_f64(v).ok_or(ProtoError::NonFiniteNumber {
                message: msg.name,
                field: field.tag,
            })?;
            (Value::Number(n), v == 0.0)
        }
        _ => unreachable!("scalar() is called for scalar kinds only"),
    })
}

/// A map entry {1 key, 2 value}; a missing key or value is the zero value.
fn map_entry(
    buf: &[u8],
    msg: &'static Message,
    field: &'static Field,
    depth: usize,
) -> Result<(String, Value), ProtoError> {
    let mut key = String::new();
    let mut value: Option<Value> = None;
    let mut r = Reader::new(buf);
    while !r.is_empty() {
        let (tag, wire_type) = r.key()?;
        match (tag, wire_type) {
            (1, LEN) => key = lossy(r.bytes()?),
            (2, LEN) => {
                let b = r.bytes()?;
                value = Some(match field.kind {
                    Kind::MapStr => Value::String(lossy(b)),
                    Kind::MapBytes => Value::String(BASE64.encode(b)),
                    Kind::MapMsg(index) => {
                        message_value(b, table::message(index), depth + 1)?.unwrap_or(Value::Null)
                    }
                    _ => unreachable!("map_entry() is called for map kinds only"),
                });
            }
            (1 | 2, _) => {
                return Err(ProtoError::WireType {
                    message: msg.name,
                    field: field.tag,
                    wire_type,
                })
            }
            (tag, wire_type) => r.skip(tag, wire_type, MAX_DEPTH.saturating_sub(depth))?,
        }
    }
    let value = match (value, field.kind) {
        (Some(v), _) => v,
        (None, Kind::MapMsg(index)) => {
            message_value(&[], table::message(index), depth + 1)?.unwrap_or(Value::Null)
        }
        (None, _) => Value::String(String::new()),
    };
    Ok((key, value))
}

/// Sets a singular field (dropping a zero the Go server would omit) or appends a repeated one.
fn place(out: &mut Map<String, Value>, field: &Field, value: Value, zero: bool) {
    if field.has(REPEATED) {
        push(out, field.json, value);
    } else if zero && field.has(OMIT_ZERO) {
        out.remove(field.json);
    } else {
        out.insert(field.json.into(), value);
    }
}

fn push(out: &mut Map<String, Value>, json: &str, value: Value) {
    let slot = out.entry(json).or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    if let Value::Array(items) = slot {
        items.push(value);
    }
}

/// Go strings may hold any bytes; its JSON encoder replaces invalid UTF-8 the same way.
pub(super) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
