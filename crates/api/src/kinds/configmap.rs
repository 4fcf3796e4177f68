//! ConfigMaps: valid keys (shared with Secrets), at most 1 MiB of data, and the `immutable`
//! flag that freezes data once set; `kubectl get configmaps` shows the number of keys.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` ConfigMap.
pub struct ConfigMapOps;

/// The most data a ConfigMap or Secret may hold.
pub const MAX_SIZE: usize = 1024 * 1024;

/// Why a ConfigMap/Secret key is invalid (`IsConfigMapKey`), if it is.
pub fn key_errors(key: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if key.len() > 253 {
        errs.push("must be no more than 253 characters");
    }
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        errs.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')");
    }
    if key == "." {
        errs.push("must not be '.'");
    } else if key == ".." {
        errs.push("must not be '..'");
    } else if key.starts_with("..") {
        errs.push("must not start with '..'");
    }
    errs
}

/// Validate the keys of the map at `obj[field]` (`data[key]` paths).
pub fn validate_keys(obj: &Value, field: &str, errs: &mut Vec<FieldError>) {
    if let Some(m) = obj.get(field).and_then(Value::as_object) {
        for k in m.keys() {
            for msg in key_errors(k) {
                errs.push(FieldError::invalid(format!("{field}[{k}]"), &json!(k), msg));
            }
        }
    }
}

/// With `immutable: true` on the old object, `fields` and the flag itself may not change.
pub fn validate_immutable(
    new: &Value,
    old: Option<&Value>,
    fields: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let Some(old) = old else {
        return;
    };
    if !util::flag(old, "immutable") {
        return;
    }
    const MSG: &str = "field is immutable when `immutable` is set";
    if !util::flag(new, "immutable") {
        errs.push(FieldError::forbidden("immutable", MSG));
    }
    for f in fields {
        if new.get(*f) != old.get(*f) {
            errs.push(FieldError::forbidden(*f, MSG));
        }
    }
}

impl KindOps for ConfigMapOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::ConfigMap>(obj)
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        validate_keys(obj, "data", &mut errs);
        validate_keys(obj, "binaryData", &mut errs);
        let data = util::string_map(obj, "data");
        let mut size = 0usize;
        for (k, v) in &data {
            size += k.len() + v.len();
        }
        if let Some(bin) = obj.get("binaryData").and_then(Value::as_object) {
            for (k, v) in bin {
                if data.contains_key(k) {
                    errs.push(FieldError::invalid(
                        format!("data[{k}]"),
                        &json!(k),
                        "duplicate of key present in binaryData",
                    ));
                }
                size += k.len() + super::secret::decoded_len(v);
            }
        }
        if size > MAX_SIZE {
            errs.push(FieldError::too_long("data", MAX_SIZE));
        }
        validate_immutable(obj, old, &["data", "binaryData"], &mut errs);
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Data",
                "string",
                "",
                0,
                "Number of keys in data and binaryData.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(util::len(obj, "data") + util::len(obj, "binaryData")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    fn cm(data: Value) -> Value {
        json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": data})
    }

    #[test]
    fn keys_must_be_valid() {
        let errs = ConfigMapOps.validate(
            &cm(json!({"ok.key": "1", "bad key": "2", "..x": "3"})),
            None,
        );
        let got: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(got, vec!["data[..x]", "data[bad key]"]);
        assert_eq!(
            errs[1].message,
            "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
        );
    }

    #[test]
    fn data_is_limited_to_one_mebibyte() {
        let errs = ConfigMapOps.validate(&cm(json!({"big": "x".repeat(MAX_SIZE)})), None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].reason, Reason::FieldValueTooLong);
    }

    #[test]
    fn immutable_configmaps_cannot_change() {
        let mut old = cm(json!({"a": "1"}));
        old["immutable"] = json!(true);
        let mut new = old.clone();
        new["data"]["a"] = json!("2");
        let errs = ConfigMapOps.validate(&new, Some(&old));
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].message,
            "data: Forbidden: field is immutable when `immutable` is set"
        );
        let mut new = old.clone();
        new["immutable"] = json!(false);
        assert_eq!(
            ConfigMapOps.validate(&new, Some(&old))[0].field,
            "immutable"
        );
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        assert!(ConfigMapOps.validate(&relabelled, Some(&old)).is_empty());
    }

    #[test]
    fn data_column_counts_both_maps() {
        let mut c = cm(json!({"a": "1", "b": "2"}));
        c["binaryData"] = json!({"c": "AAE="});
        assert_eq!(
            ConfigMapOps.table_row(&c, jiff::Timestamp::now())[1],
            json!(3)
        );
    }
}
