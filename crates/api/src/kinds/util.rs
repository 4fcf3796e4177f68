//! Small helpers the kind modules share: reading and defaulting fields of objects held as JSON,
//! the cell formats kube-apiserver's printers use (label maps, label selectors, container
//! lists), and rendering values the way Go's `%#v` shows them in validation messages.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::selector::{LabelReq, LabelSelector};
use crate::validation::{self, FieldError};

/// `v[key]` as a mutable object, created (or replaced, if it is not an object) when needed.
pub fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Value {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let map = v.as_object_mut().expect("object");
    let child = map
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !child.is_object() {
        *child = Value::Object(Map::new());
    }
    child
}

/// Set `v[key] = value` unless the field is present. Does nothing if `v` is not an object.
pub fn default(v: &mut Value, key: &str, value: Value) {
    if let Some(map) = v.as_object_mut() {
        let slot = map.entry(key.to_string()).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// Like [`default`], but a present empty string also counts as unset (Go's `== ""`).
pub fn default_str(v: &mut Value, key: &str, value: &str) {
    if v.get(key).and_then(Value::as_str).unwrap_or("").is_empty() {
        if let Some(map) = v.as_object_mut() {
            map.insert(key.to_string(), json!(value));
        }
    }
}

/// Apply `f` to each element of the array `v[key]`, if there is one.
pub fn each_mut(v: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(items) = v.get_mut(key).and_then(Value::as_array_mut) {
        for item in items {
            f(item);
        }
    }
}

/// Apply `f` to `v[key]` if it is present and an object.
pub fn with_mut(v: &mut Value, key: &str, f: impl FnOnce(&mut Value)) {
    if let Some(child) = v.get_mut(key).filter(|c| c.is_object()) {
        f(child);
    }
}

/// The string at `v[key]`, or `""`.
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `v[key]`, or 0.
pub fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// The boolean at `v[key]`, or false.
pub fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// The array at `v[key]`, or an empty slice.
pub fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The string map at `v[key]` (labels, selectors), empty if absent.
pub fn string_map(v: &Value, key: &str) -> BTreeMap<String, String> {
    v.get(key)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Number of entries in the object or array at `v[key]`.
pub fn len(v: &Value, key: &str) -> usize {
    match v.get(key) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, or `<none>`.
pub fn format_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<none>".into();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The string form of a `LabelSelector` object (`metav1.LabelSelectorAsSelector(...).String()`):
/// requirements sorted by key, `""` for an absent or empty selector, `None` if it is invalid.
pub fn selector_string(sel: Option<&Value>) -> Option<String> {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return Some(String::new());
    };
    let mut parts: Vec<(String, String)> = Vec::new();
    for (k, v) in string_map(sel, "matchLabels") {
        parts.push((k.clone(), format!("{k}={v}")));
    }
    for e in arr(sel, "matchExpressions") {
        let key = s(e, "key").to_string();
        let mut values: Vec<String> = arr(e, "values")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        values.sort();
        let text = match s(e, "operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return None,
        };
        parts.push((key, text));
    }
    parts.sort_by(|a, b| a.0.cmp(&b.0));
    Some(
        parts
            .into_iter()
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// `metav1.FormatLabelSelector`: like [`selector_string`] but `<none>` when empty and
/// `<error>` when invalid.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        None => "<error>".into(),
        Some(s) if s.is_empty() => "<none>".into(),
        Some(s) => s,
    }
}

/// Convert a `LabelSelector` object into a matcher. An absent selector matches nothing, an
/// empty one everything (as `LabelSelectorAsSelector`). `None` if an operator is unknown.
pub fn label_selector(sel: Option<&Value>) -> Option<Option<LabelSelector>> {
    let Some(sel) = sel.filter(|s| s.is_object()) else {
        return Some(None);
    };
    let mut reqs = Vec::new();
    for (k, v) in string_map(sel, "matchLabels") {
        reqs.push(LabelReq::Eq(k, v));
    }
    for e in arr(sel, "matchExpressions") {
        let key = s(e, "key").to_string();
        let values: Vec<String> = arr(e, "values")
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        reqs.push(match s(e, "operator") {
            "In" => LabelReq::In(key, values),
            "NotIn" => LabelReq::NotIn(key, values),
            "Exists" => LabelReq::Exists(key),
            "DoesNotExist" => LabelReq::NotExists(key),
            _ => return None,
        });
    }
    Some(Some(LabelSelector(reqs)))
}

/// Container names and images joined with commas (the printers' `layoutContainerCells`).
pub fn container_cells(pod_spec: &Value) -> (String, String) {
    let containers = arr(pod_spec, "containers");
    let names: Vec<&str> = containers.iter().map(|c| s(c, "name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, "image")).collect();
    (names.join(","), images.join(","))
}

/// A timestamp field as a human age relative to `now` (`<unknown>` if absent or unparsable).
pub fn since(ts: Option<&Value>, now: jiff::Timestamp) -> String {
    match parse_time(ts) {
        Some(t) => crate::table::human_duration(now.as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

/// Parse an RFC 3339 timestamp field.
pub fn parse_time(ts: Option<&Value>) -> Option<jiff::Timestamp> {
    ts.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
}

/// Go's `%#v` of a `map[string]string` (keys sorted, as Go prints maps).
pub fn go_string_map(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        None => "map[string]string(nil)".into(),
        Some(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or("")))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
    }
}

/// Go's `%#v` of a `[]string`.
fn go_string_slice(v: Option<&Value>) -> String {
    match v.and_then(Value::as_array) {
        None => "[]string(nil)".into(),
        Some(a) => {
            let inner: Vec<String> = a
                .iter()
                .map(|s| format!("{:?}", s.as_str().unwrap_or("")))
                .collect();
            format!("[]string{{{}}}", inner.join(", "))
        }
    }
}

/// Go's `%#v` of a `metav1.LabelSelector`, as kube-apiserver shows it in "field is immutable".
pub fn go_label_selector(sel: &Value) -> String {
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
        Some(a) => {
            let inner: Vec<String> = a
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{}}}",
                        s(e, "key"),
                        s(e, "operator"),
                        go_string_slice(e.get("values"))
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", inner.join(", "))
        }
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{}}}",
        go_string_map(sel.get("matchLabels")),
        exprs
    )
}

/// An `Invalid value` error whose value is shown pre-rendered (maps, structs).
pub fn invalid_raw(field: &str, shown: &str, detail: &str) -> FieldError {
    FieldError {
        reason: validation::Reason::FieldValueInvalid,
        field: field.to_string(),
        message: format!("{field}: Invalid value: {shown}: {detail}"),
    }
}

/// `field: Invalid value: N: must be greater than or equal to 0` when `v[key] < 0`.
pub fn non_negative(v: &Value, key: &str, path: &str, errs: &mut Vec<FieldError>) {
    if let Some(n) = v.get(key).and_then(Value::as_i64) {
        if n < 0 {
            errs.push(FieldError::invalid(
                format!("{path}.{key}"),
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// Validate a label map (keys qualified names, values label values) at `path`.
pub fn validate_labels(labels: Option<&Value>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(m) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        if !validation::is_qualified_name(k) {
            errs.push(FieldError::invalid(
                path,
                &json!(k),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
        if !v.as_str().map(validation::is_label_value).unwrap_or(false) {
            errs.push(FieldError::invalid(
                path,
                v,
                "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
    }
}

/// Validate a `LabelSelector` object at `path`: operators, values, keys and match labels.
pub fn validate_label_selector(sel: &Value, path: &str, errs: &mut Vec<FieldError>) {
    for (i, e) in arr(sel, "matchExpressions").iter().enumerate() {
        let ep = format!("{path}.matchExpressions[{i}]");
        let has_values = !arr(e, "values").is_empty();
        match s(e, "operator") {
            "In" | "NotIn" => {
                if !has_values {
                    errs.push(FieldError::required(
                        format!("{ep}.values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if has_values {
                    errs.push(FieldError::forbidden(
                        format!("{ep}.values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            other => errs.push(FieldError::invalid(
                format!("{ep}.operator"),
                &json!(other),
                "not a valid selector operator",
            )),
        }
        let key = s(e, "key");
        if !validation::is_qualified_name(key) {
            errs.push(FieldError::invalid(
                format!("{ep}.key"),
                &json!(key),
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            ));
        }
    }
    validate_labels(sel.get("matchLabels"), &format!("{path}.matchLabels"), errs);
}

/// A Kubernetes resource quantity (`100m`, `1Gi`, `2e3`) as a float, for comparisons.
pub fn parse_quantity(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let base: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        e if e.starts_with(['e', 'E']) => 10f64.powi(e[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    Some(base * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_print_sorted_like_the_label_package() {
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "x"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                 {"key": "canary", "operator": "DoesNotExist"}],
        });
        assert_eq!(
            format_label_selector(Some(&sel)),
            "app=x,!canary,env in (dev,prod),tier=web"
        );
        assert_eq!(format_label_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_label_selector(None), "<none>");
        assert_eq!(
            format_label_selector(Some(
                &json!({"matchExpressions": [{"key": "a", "operator": "Nope"}]})
            )),
            "<error>"
        );
    }

    #[test]
    fn go_rendering_of_selectors_and_maps() {
        let sel = json!({"matchLabels": {"app": "web"}});
        assert_eq!(
            go_label_selector(&sel),
            "v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"web\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}"
        );
        assert_eq!(go_string_map(None), "map[string]string(nil)");
    }

    #[test]
    fn quantities_compare_across_suffixes() {
        assert_eq!(parse_quantity("1"), parse_quantity("1000m"));
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("2e3"), Some(2000.0));
        assert_eq!(parse_quantity("1Gx"), None);
    }

    #[test]
    fn defaults_fill_only_missing_fields() {
        let mut v = json!({"a": 1, "b": ""});
        default(&mut v, "a", json!(2));
        default(&mut v, "c", json!(3));
        default_str(&mut v, "b", "x");
        assert_eq!(v, json!({"a": 1, "b": "x", "c": 3}));
    }
}
