//! Secrets: type Opaque by default, `stringData` merged into `data` (as kube-apiserver's
//! conversion does), valid keys, the per-type required keys, 1 MiB of data, an immutable type
//! and the `immutable` flag; `kubectl get secrets` and the `type` field selector.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::ByteString;
use serde_json::{json, Value};

use super::configmap::{validate_immutable, validate_keys, MAX_SIZE};
use super::util::{self, default_str, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` Secret.
pub struct SecretOps;

/// Length in bytes of a base64 value as stored in `data`.
pub fn decoded_len(v: &Value) -> usize {
    serde_json::from_value::<ByteString>(v.clone())
        .map(|b| b.0.len())
        .unwrap_or_else(|_| v.as_str().map(str::len).unwrap_or(0))
}

impl KindOps for SecretOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::Secret>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        default_str(obj, "type", "Opaque");
        let string_data = obj.as_object_mut().and_then(|m| m.remove("stringData"));
        if let Some(Value::Object(sd)) = string_data {
            let data = util::obj(obj, "data");
            for (k, v) in sd {
                let bytes = v.as_str().unwrap_or("").as_bytes().to_vec();
                data[k.as_str()] = serde_json::to_value(ByteString(bytes)).unwrap_or(Value::Null);
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        validate_keys(obj, "data", &mut errs);
        let data = obj.get("data").and_then(Value::as_object);
        let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
        let size: usize = data
            .map(|d| d.iter().map(|(k, v)| k.len() + decoded_len(v)).sum())
            .unwrap_or(0);
        if size > MAX_SIZE {
            errs.push(FieldError::too_long("data", MAX_SIZE));
        }
        let ty = s(obj, "type");
        let require = |key: &str, errs: &mut Vec<FieldError>| {
            if !has(key) {
                errs.push(FieldError::required(format!("data[{key}]"), ""));
            }
        };
        match ty {
            "kubernetes.io/service-account-token" => {
                let ann = crate::meta::annotations(obj);
                if ann
                    .get("kubernetes.io/service-account.name")
                    .is_none_or(|n| n.is_empty())
                {
                    errs.push(FieldError::required(
                        "metadata.annotations[kubernetes.io/service-account.name]",
                        "",
                    ));
                }
            }
            "kubernetes.io/dockercfg" => require(".dockercfg", &mut errs),
            "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson", &mut errs),
            "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
                errs.push(FieldError::required(
                    "data[username]",
                    "either username or password is required",
                ));
            }
            "kubernetes.io/ssh-auth" => require("ssh-privatekey", &mut errs),
            "kubernetes.io/tls" => {
                require("tls.crt", &mut errs);
                require("tls.key", &mut errs);
            }
            "" => errs.push(FieldError::required("type", "")),
            _ => {}
        }
        if let Some(old) = old {
            if s(old, "type") != ty {
                errs.push(FieldError::invalid(
                    "type",
                    &json!(ty),
                    "field is immutable",
                ));
            }
        }
        validate_immutable(obj, old, &["data"], &mut errs);
        errs
    }

    fn field(&self, obj: &Value, path: &str) -> Option<String> {
        match path {
            "type" => Some(s(obj, "type").to_string()),
            _ => None,
        }
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new("Type", "string", "", 0, "The secret's type."),
            Column::new("Data", "string", "", 0, "Number of keys in data."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(s(obj, "type")),
            json!(util::len(obj, "data")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(extra: Value) -> Value {
        let mut obj = json!({"apiVersion": "v1", "kind": "Secret",
                             "metadata": {"name": "s", "namespace": "default"}});
        for (k, v) in extra.as_object().unwrap() {
            obj[k] = v.clone();
        }
        let mut obj = SecretOps.normalize(obj).unwrap();
        SecretOps.apply_defaults(&mut obj);
        obj
    }

    #[test]
    fn type_defaults_and_string_data_is_merged() {
        let s = secret(json!({"data": {"a": "MQ=="}, "stringData": {"b": "two", "a": "one"}}));
        assert_eq!(s["type"], "Opaque");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["data"], json!({"a": "b25l", "b": "dHdv"}));
        assert!(SecretOps.validate(&s, None).is_empty());
        assert_eq!(SecretOps.field(&s, "type").as_deref(), Some("Opaque"));
        assert_eq!(
            SecretOps.table_row(&s, jiff::Timestamp::now())[1..3],
            [json!("Opaque"), json!(2)]
        );
    }

    #[test]
    fn typed_secrets_need_their_keys() {
        let s = secret(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}));
        let errs = SecretOps.validate(&s, None);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].message, "data[tls.key]: Required value");
        let s = secret(json!({"type": "kubernetes.io/service-account-token"}));
        assert_eq!(
            SecretOps.validate(&s, None)[0].field,
            "metadata.annotations[kubernetes.io/service-account.name]"
        );
    }

    #[test]
    fn size_type_and_immutability() {
        let big = serde_json::to_value(ByteString(vec![0u8; MAX_SIZE + 1])).unwrap();
        let s = secret(json!({"data": {"big": big}}));
        assert_eq!(SecretOps.validate(&s, None)[0].field, "data");

        let mut old = secret(json!({"data": {"a": "MQ=="}, "immutable": true}));
        let mut new = old.clone();
        new["type"] = json!("custom/x");
        new["data"]["a"] = json!("Mg==");
        let fields: Vec<String> = SecretOps
            .validate(&new, Some(&old))
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["type", "data"]);
        old["immutable"] = json!(false);
        new["type"] = json!("Opaque");
        assert!(SecretOps.validate(&new, Some(&old)).is_empty());
    }
}
