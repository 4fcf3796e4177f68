//! Field errors (Kubernetes' `field.Error`) and the generic validators every kind shares: names,
//! labels, annotations.

use serde::Serialize;
use serde_json::Value;

/// Why a field is invalid (`StatusCause.reason` values of kube-apiserver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reason {
    FieldValueRequired,
    FieldValueInvalid,
    FieldValueDuplicate,
    FieldValueNotSupported,
    FieldValueForbidden,
    FieldValueTooLong,
    FieldValueTooMany,
    FieldValueTypeInvalid,
    FieldValueNotFound,
}

/// One invalid field, rendered as a `StatusCause`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub reason: Reason,
    /// JSON path like `metadata.name` or `spec.containers[0].image`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        let field = field.into();
        let message = if detail.is_empty() {
            format!("{field}: Required value")
        } else {
            format!("{field}: Required value: {detail}")
        };
        FieldError {
            reason: Reason::FieldValueRequired,
            field,
            message,
        }
    }

    pub fn invalid(field: impl Into<String>, value: &Value, detail: &str) -> Self {
        let field = field.into();
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        FieldError {
            reason: Reason::FieldValueInvalid,
            message: format!("{field}: Invalid value: {shown}: {detail}"),
            field,
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        let field = field.into();
        FieldError {
            reason: Reason::FieldValueForbidden,
            message: format!("{field}: Forbidden: {detail}"),
            field,
        }
    }

    pub fn not_supported(field: impl Into<String>, value: &Value, allowed: &[&str]) -> Self {
        let field = field.into();
        let quoted: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
        FieldError {
            reason: Reason::FieldValueNotSupported,
            message: format!(
                "{field}: Unsupported value: {value}: supported values: {}",
                quoted.join(", ")
            ),
            field,
        }
    }

    pub fn not_found(field: impl Into<String>, value: &Value) -> Self {
        let field = field.into();
        FieldError {
            reason: Reason::FieldValueNotFound,
            message: format!("{field}: Not found: {value}"),
            field,
        }
    }

    /// A value longer than `max` bytes (`field.TooLong`).
    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let field = field.into();
        FieldError {
            reason: Reason::FieldValueTooLong,
            message: format!("{field}: Too long: may not be more than {max} bytes"),
            field,
        }
    }

    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        let field = field.into();
        FieldError {
            reason: Reason::FieldValueDuplicate,
            message: format!("{field}: Duplicate value: {value}"),
            field,
        }
    }
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// RFC 1123 label: lowercase alphanumerics and '-', starting and ending alphanumeric, ≤ 63.
pub fn is_dns1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_LABEL_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1035 label: like an RFC 1123 label but starting with a letter (Service names).
pub fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

/// The explanation kube-apiserver gives for an invalid RFC 1035 label.
pub const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

/// RFC 1123 subdomain: dot-separated labels, ≤ 253.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= DNS1123_SUBDOMAIN_MAX
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// The explanation kube-apiserver gives for an invalid subdomain name.
pub const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

/// The explanation kube-apiserver gives for an invalid label name.
pub const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_qualified_name_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// A label or annotation key: `[prefix/]name`, prefix a DNS subdomain, name ≤ 63 of
/// `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_qualified_name(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_qualified_name_part(name),
        None => is_qualified_name_part(s),
    }
}

/// A label value: empty, or ≤ 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_qualified_name_part(s)
}

/// Which syntax a kind's object names must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most kinds).
    Subdomain,
    /// RFC 1123 label (namespaces).
    Label,
    /// RFC 1035 label (services).
    Dns1035Label,
}

/// Validate the parts of `metadata` every kind shares: name (a DNS subdomain unless
/// `name_is_label`), labels and annotations (keys, values, 256 KiB total).
pub fn validate_object_meta(obj: &Value, namespaced: bool, name_is_label: bool) -> Vec<FieldError> {
    let rule = if name_is_label {
        NameRule::Label
    } else {
        NameRule::Subdomain
    };
    validate_object_meta_with(obj, namespaced, rule)
}

/// [`validate_object_meta`] with an explicit name rule.
pub fn validate_object_meta_with(obj: &Value, namespaced: bool, rule: NameRule) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = &obj["metadata"];
    match meta["name"].as_str() {
        None | Some("") => errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(name) => {
            let (ok, msg) = match rule {
                NameRule::Label => (is_dns1123_label(name), DNS1123_LABEL_MSG),
                NameRule::Subdomain => (is_dns1123_subdomain(name), DNS1123_SUBDOMAIN_MSG),
                NameRule::Dns1035Label => (is_dns1035_label(name), DNS1035_LABEL_MSG),
            };
            if !ok {
                errs.push(FieldError::invalid("metadata.name", &meta["name"], msg));
            }
        }
    }
    if namespaced {
        match meta["namespace"].as_str() {
            None | Some("") => errs.push(FieldError::required("metadata.namespace", "")),
            Some(ns) if !is_dns1123_label(ns) => errs.push(FieldError::invalid(
                "metadata.namespace",
                &meta["namespace"],
                DNS1123_LABEL_MSG,
            )),
            _ => {}
        }
    }
    if let Some(labels) = meta["labels"].as_object() {
        for (k, v) in labels {
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
            if !v.as_str().map(is_label_value).unwrap_or(false) {
                errs.push(FieldError::invalid(
                    "metadata.labels",
                    v,
                    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
    }
    if let Some(ann) = meta["annotations"].as_object() {
        let mut total = 0usize;
        for (k, v) in ann {
            total += k.len() + v.as_str().map(str::len).unwrap_or(0);
            if !is_qualified_name(k) {
                errs.push(FieldError::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                ));
            }
        }
        if total > 256 * 1024 {
            errs.push(FieldError {
                reason: Reason::FieldValueTooLong,
                field: "metadata.annotations".into(),
                message: "metadata.annotations: Too long: must have at most 262144 bytes".into(),
            });
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_rfc1123() {
        assert!(is_dns1123_subdomain("web-1.example"));
        assert!(!is_dns1123_subdomain("Web"));
        assert!(!is_dns1123_subdomain("-web"));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(is_dns1123_label("kube-system"));
        assert!(!is_dns1123_label("a.b"));
    }

    #[test]
    fn label_keys_and_values() {
        assert!(is_qualified_name("app.kubernetes.io/name"));
        assert!(is_qualified_name("app"));
        assert!(!is_qualified_name("/app"));
        assert!(!is_qualified_name("a/b/c"));
        assert!(is_label_value(""));
        assert!(!is_label_value("-x"));
    }

    #[test]
    fn object_meta_errors_name_the_field() {
        let errs = validate_object_meta(
            &json!({"metadata": {"name": "Bad_Name", "namespace": "default"}}),
            true,
            false,
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "metadata.name");
        assert_eq!(errs[0].reason, Reason::FieldValueInvalid);
    }
}
