//! The Swagger 2.0 document in protobuf (gnostic's `openapi.v2.Document`), the only form in
//! which kubectl asks for `/openapi/v2`. kubectl 1.27 and 1.28 need it for `explain` (later
//! versions read the v3 documents); older clients also take patch metadata from it.
//!
//! Only what our documents contain is encoded: the document's `swagger`, `info`, `paths` and
//! `definitions`; operations with their parameters and responses; schemas with their
//! references, types, properties, items, `allOf`, `additionalProperties`, descriptions and
//! vendor extensions. Vendor extension values travel as YAML text, and JSON is YAML.

use serde_json::{Map, Value};

/// The `Content-Type` of the protobuf document. Clients ask for it with an `@` before `v1.0`
/// (see [`accepts_protobuf_v2`]), but Go's media type parser rejects an `@` in a response's
/// `Content-Type`, so the answer spells it with a dot as kube-apiserver does.
pub const PROTOBUF_V2_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// Whether an `Accept` header asks for the protobuf form of `/openapi/v2` (kubectl sends
/// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`).
pub fn accepts_protobuf_v2(accept: &str) -> bool {
    accept.split(',').any(|t| {
        let t = t.split(';').next().unwrap_or("").trim();
        t.eq_ignore_ascii_case("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
            || t.eq_ignore_ascii_case(PROTOBUF_V2_CONTENT_TYPE)
    })
}

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn strings(&mut self, field: u32, v: Option<&Value>) {
        for s in v.and_then(Value::as_array).into_iter().flatten() {
            if let Some(s) = s.as_str() {
                self.bytes(field, s.as_bytes());
            }
        }
    }
}

fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

fn bool_of(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

/// `Any { yaml }`: a value as YAML text (JSON is valid YAML).
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &serde_json::to_string(v).expect("values serialise"));
    m
}

/// `NamedAny` entries for the `x-` keys of `o`.
fn vendor_extensions(m: &mut Msg, field: u32, o: &Map<String, Value>) {
    for (k, v) in o.iter().filter(|(k, _)| k.starts_with("x-")) {
        let mut named = Msg::default();
        named.string(1, k);
        named.message(2, any(v));
        m.message(field, named);
    }
}

fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else { return m };
    m.string(1, str_of(o, "$ref"));
    m.string(2, str_of(o, "format"));
    m.string(3, str_of(o, "title"));
    m.string(4, str_of(o, "description"));
    if let Some(d) = o.get("default") {
        m.message(5, any(d));
    }
    let num = |k: &str| o.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let int = |k: &str| o.get(k).and_then(Value::as_i64).unwrap_or(0);
    m.double(6, num("multipleOf"));
    m.double(7, num("maximum"));
    m.boolean(8, bool_of(o, "exclusiveMaximum"));
    m.double(9, num("minimum"));
    m.boolean(10, bool_of(o, "exclusiveMinimum"));
    m.int64(11, int("maxLength"));
    m.int64(12, int("minLength"));
    m.string(13, str_of(o, "pattern"));
    m.int64(14, int("maxItems"));
    m.int64(15, int("minItems"));
    m.boolean(16, bool_of(o, "uniqueItems"));
    m.int64(17, int("maxProperties"));
    m.int64(18, int("minProperties"));
    m.strings(19, o.get("required"));
    for e in o
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(e));
    }
    match o.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Msg::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(ap @ Value::Object(_)) => {
            let mut item = Msg::default();
            item.message(1, schema(ap));
            m.message(21, item);
        }
        _ => {}
    }
    match o.get("type") {
        Some(Value::String(t)) => {
            let mut ty = Msg::default();
            ty.string(1, t);
            m.message(22, ty);
        }
        Some(t @ Value::Array(_)) => {
            let mut ty = Msg::default();
            ty.strings(1, Some(t));
            m.message(22, ty);
        }
        _ => {}
    }
    match o.get("items") {
        Some(i @ Value::Object(_)) => {
            let mut items = Msg::default();
            items.message(1, schema(i));
            m.message(23, items);
        }
        Some(Value::Array(a)) => {
            let mut items = Msg::default();
            a.iter().for_each(|i| items.message(1, schema(i)));
            m.message(23, items);
        }
        _ => {}
    }
    for s in o
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(s));
    }
    if let Some(props) = o.get("properties").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (k, v) in props {
            p.message(1, named_schema(k, v));
        }
        m.message(25, p);
    }
    m.boolean(27, bool_of(o, "readOnly"));
    if let Some(e) = o.get("example") {
        m.message(30, any(e));
    }
    vendor_extensions(&mut m, 31, o);
    m
}

fn named_schema(name: &str, v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(1, name);
    m.message(2, schema(v));
    m
}

/// `ParametersItem { parameter: Parameter { body | non_body } }`.
fn parameter(p: &Map<String, Value>) -> Msg {
    let mut param = Msg::default();
    let location = str_of(p, "in");
    if location == "body" {
        let mut body = Msg::default();
        body.string(1, str_of(p, "description"));
        body.string(2, str_of(p, "name"));
        body.string(3, location);
        body.boolean(4, bool_of(p, "required"));
        if let Some(s) = p.get("schema") {
            body.message(5, schema(s));
        }
        vendor_extensions(&mut body, 6, p);
        param.message(1, body);
    } else {
        // Query and path sub-schemas share their first fields; they differ in where `type`
        // and `uniqueItems` sit (the query one has `allowEmptyValue` in between).
        let (variant, type_field, unique_field, ext_field) = match location {
            "path" => (4, 5, 19, 22),
            "header" => (1, 5, 19, 22),
            _ => (3, 6, 20, 23),
        };
        let mut sub = Msg::default();
        sub.boolean(1, bool_of(p, "required"));
        sub.string(2, location);
        sub.string(3, str_of(p, "description"));
        sub.string(4, str_of(p, "name"));
        sub.string(type_field, str_of(p, "type"));
        sub.boolean(unique_field, bool_of(p, "uniqueItems"));
        vendor_extensions(&mut sub, ext_field, p);
        let mut non_body = Msg::default();
        non_body.message(variant, sub);
        param.message(2, non_body);
    }
    let mut item = Msg::default();
    item.message(1, param);
    item
}

fn operation(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.strings(1, o.get("tags"));
    m.string(2, str_of(o, "summary"));
    m.string(3, str_of(o, "description"));
    m.string(5, str_of(o, "operationId"));
    m.strings(6, o.get("produces"));
    m.strings(7, o.get("consumes"));
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object() {
            m.message(8, parameter(p));
        }
    }
    if let Some(responses) = o.get("responses").and_then(Value::as_object) {
        let mut r = Msg::default();
        for (code, resp) in responses {
            let Some(resp) = resp.as_object() else {
                continue;
            };
            let mut response = Msg::default();
            response.string(1, str_of(resp, "description"));
            if let Some(s) = resp.get("schema") {
                let mut item = Msg::default();
                item.message(1, schema(s));
                response.message(2, item);
            }
            vendor_extensions(&mut response, 5, resp);
            let mut value = Msg::default();
            value.message(1, response);
            let mut named = Msg::default();
            named.string(1, code);
            named.message(2, value);
            r.message(1, named);
        }
        m.message(9, r);
    }
    m.strings(10, o.get("schemes"));
    m.boolean(11, bool_of(o, "deprecated"));
    vendor_extensions(&mut m, 13, o);
    m
}

fn path_item(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (method, field) in [
        ("get", 2),
        ("put", 3),
        ("post", 4),
        ("delete", 5),
        ("options", 6),
        ("head", 7),
        ("patch", 8),
    ] {
        if let Some(op) = o.get(method).and_then(Value::as_object) {
            m.message(field, operation(op));
        }
    }
    for p in o
        .get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(p) = p.as_object() {
            m.message(9, parameter(p));
        }
    }
    vendor_extensions(&mut m, 10, o);
    m
}

/// Encodes a Swagger 2.0 document (JSON) as `openapi.v2.Document`.
pub(crate) fn encode(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    let Some(o) = doc.as_object() else { return m.0 };
    m.string(1, str_of(o, "swagger"));
    if let Some(info) = o.get("info").and_then(Value::as_object) {
        let mut i = Msg::default();
        i.string(1, str_of(info, "title"));
        i.string(2, str_of(info, "version"));
        i.string(3, str_of(info, "description"));
        m.message(2, i);
    }
    if let Some(paths) = o.get("paths").and_then(Value::as_object) {
        let mut p = Msg::default();
        for (path, item) in paths {
            let Some(item) = item.as_object() else {
                continue;
            };
            let mut named = Msg::default();
            named.string(1, path);
            named.message(2, path_item(item));
            p.message(2, named);
        }
        m.message(8, p);
    }
    if let Some(defs) = o.get("definitions").and_then(Value::as_object) {
        let mut d = Msg::default();
        for (name, s) in defs {
            d.message(1, named_schema(name, s));
        }
        m.message(9, d);
    }
    vendor_extensions(&mut m, 16, o);
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_nested_messages_use_length_prefixes() {
        let bytes = encode(&json!({"swagger": "2.0", "info": {"title": "K", "version": "v"}}));
        assert_eq!(
            bytes,
            [
                0x0a, 3, b'2', b'.', b'0', // swagger = 1
                0x12, 6, 0x0a, 1, b'K', 0x12, 1, b'v', // info = 2 { title, version }
            ]
        );
    }

    #[test]
    fn kubectl_accept_header_selects_protobuf() {
        assert!(accepts_protobuf_v2(
            "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
        ));
        assert!(accepts_protobuf_v2(
            "application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        ));
        assert!(!accepts_protobuf_v2("application/json, */*"));
    }

    #[test]
    fn long_lengths_are_varints() {
        let mut m = Msg::default();
        m.string(4, &"x".repeat(300));
        assert_eq!(&m.0[..3], &[0x22, 0xac, 0x02]);
        assert_eq!(m.0.len(), 303);
    }

    #[test]
    fn schema_encodes_ref_type_and_extensions() {
        let s = schema(&json!({
            "$ref": "#/definitions/a.B",
            "type": "object",
            "x-kubernetes-patch-strategy": "merge",
        }));
        let ext = b"x-kubernetes-patch-strategy";
        let yaml = b"\"merge\"";
        let mut want = vec![0x0a, 17];
        want.extend_from_slice(b"#/definitions/a.B");
        want.extend_from_slice(&[0xb2, 0x01, 8, 0x0a, 6]); // type = 22 { value = 1 }
        want.extend_from_slice(b"object");
        // vendor_extension = 31 { name = 1, value = 2 { yaml = 2 } }
        let named_len = 2 + ext.len() + 2 + 2 + yaml.len();
        want.extend_from_slice(&[0xfa, 0x01, named_len as u8, 0x0a, ext.len() as u8]);
        want.extend_from_slice(ext);
        want.extend_from_slice(&[0x12, (2 + yaml.len()) as u8, 0x12, yaml.len() as u8]);
        want.extend_from_slice(yaml);
        assert_eq!(s.0, want);
    }
}
