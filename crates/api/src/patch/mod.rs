//! The three patch formats of `PATCH` requests, as pure functions from (object, patch) to the
//! patched object: JSON patch (RFC 6902, [`apply_json_patch`]), JSON merge patch (RFC 7386,
//! [`apply_merge_patch`]), both thin wrappers over the `json-patch` crate, and Kubernetes'
//! strategic merge patch ([`apply_strategic`], written here because no crate implements it).
//!
//! The caller parses the body, finds the kind's schema (an
//! [`OpenApi`](crate::openapi::OpenApi)'s [`SchemaIndex`](crate::openapi::SchemaIndex)), and
//! afterwards normalises, defaults and validates the result like any update; a
//! [`PatchError`] maps to the HTTP status of [`PatchError::status_code`].

mod strategic;

use serde_json::Value;

pub use strategic::apply_strategic;

/// kube-apiserver's limit on the operations of one JSON patch.
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The body is not a JSON patch (not a list of operations, unknown `op`, bad pointer).
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// More than [`MAX_JSON_PATCH_OPERATIONS`] operations.
    #[error("the allowed maximum operations in a JSON patch is {max}, but found {found}")]
    TooManyOperations { max: usize, found: usize },
    /// A JSON patch operation failed against the object (missing path, failed `test`).
    #[error("the JSON patch could not be applied: {0}")]
    JsonPatchFailed(String),
    /// A merge or strategic merge patch that is not a JSON object.
    #[error("{0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A malformed strategic-merge-patch directive (`$patch`, `$retainKeys`,
    /// `$setElementOrder/…`, `$deleteFromPrimitiveList/…`).
    #[error("invalid strategic merge patch: {0}")]
    BadDirective(String),
    /// A strategic merge patch whose lists cannot be merged with the object's (an item without
    /// its merge key, a list of lists, items of different types).
    #[error("strategic merge patch cannot be applied: {0}")]
    Unmergeable(String),
}

impl PatchError {
    /// The HTTP status kube-apiserver answers with: 400 for a malformed patch, 413 for too many
    /// operations, 422 for a well-formed patch that does not apply to the object.
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::InvalidJsonPatch(_)
            | PatchError::NotAnObject(_)
            | PatchError::BadDirective(_) => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::JsonPatchFailed(_) | PatchError::Unmergeable(_) => 422,
        }
    }
}

/// Applies a JSON patch (RFC 6902: add, remove, replace, move, copy, test). The operations are
/// counted before they are parsed, so an oversized patch is refused cheaply.
pub fn apply_json_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::InvalidJsonPatch("a JSON patch is a list of operations".into())
    })?;
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(PatchError::TooManyOperations {
            max: MAX_JSON_PATCH_OPERATIONS,
            found: ops.len(),
        });
    }
    let parsed: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::InvalidJsonPatch(e.to_string()))?;
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &parsed).map_err(|e| PatchError::JsonPatchFailed(e.to_string()))?;
    Ok(doc)
}

/// Applies a JSON merge patch (RFC 7386): objects merge recursively, `null` removes a key, any
/// other value (lists included) replaces. Kubernetes only accepts an object as the patch.
pub fn apply_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    if !patch.is_object() {
        return Err(PatchError::NotAnObject("a merge patch"));
    }
    let mut doc = original.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn json_patch_replaces_and_tests() {
        let obj =
            json!({"metadata": {"name": "web", "resourceVersion": "5"}, "spec": {"replicas": 1}});
        let patch = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
            {"op": "add", "path": "/metadata/labels", "value": {"app": "web"}},
        ]);
        let out = apply_json_patch(&obj, &patch).unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn failed_json_patch_test_is_unprocessable_and_leaves_the_object() {
        let obj = json!({"spec": {"replicas": 1}});
        let patch = json!([{"op": "test", "path": "/spec/replicas", "value": 2}]);
        let err = apply_json_patch(&obj, &patch).unwrap_err();
        assert_eq!(err.status_code(), 422);
        let missing = json!([{"op": "remove", "path": "/spec/nope"}]);
        assert_eq!(
            apply_json_patch(&obj, &missing).unwrap_err().status_code(),
            422
        );
    }

    #[test]
    fn malformed_json_patch_is_a_bad_request() {
        let obj = json!({});
        for patch in [
            json!({"op": "add"}),
            json!([{"op": "frobnicate", "path": "/a"}]),
            json!([{"op": "add", "value": 1}]),
        ] {
            let err = apply_json_patch(&obj, &patch).unwrap_err();
            assert_eq!(err.status_code(), 400, "{patch}");
        }
    }

    #[test]
    fn json_patch_over_ten_thousand_operations_is_too_large() {
        let op = json!({"op": "add", "path": "/a", "value": 1});
        let patch = Value::Array(vec![op.clone(); MAX_JSON_PATCH_OPERATIONS + 1]);
        let err = apply_json_patch(&json!({}), &patch).unwrap_err();
        assert_eq!(
            err,
            PatchError::TooManyOperations {
                max: MAX_JSON_PATCH_OPERATIONS,
                found: MAX_JSON_PATCH_OPERATIONS + 1
            }
        );
        assert_eq!(err.status_code(), 413);
        let at_limit = Value::Array(vec![op; MAX_JSON_PATCH_OPERATIONS]);
        assert!(apply_json_patch(&json!({}), &at_limit).is_ok());
    }

    #[test]
    fn merge_patch_sets_and_removes_labels() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "a"}}});
        let out = apply_merge_patch(
            &obj,
            &json!({"metadata": {"labels": {"tier": null, "env": "prod"}}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"app": "web", "env": "prod"}}})
        );
        assert_eq!(
            apply_merge_patch(&obj, &json!([1]))
                .unwrap_err()
                .status_code(),
            400
        );
    }

    /// JSON documents without nulls (a merge patch cannot set a null).
    fn document() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-d]{1,2}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        prop::collection::btree_map("[a-d]{1,2}", document(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    proptest! {
        #[test]
        fn merge_patch_from_a_diff_turns_one_object_into_the_other(a in object(), b in object()) {
            // A merge patch that nulls what `b` lacks and sets what differs.
            fn merge_diff(a: &Value, b: &Value) -> Value {
                match (a, b) {
                    (Value::Object(a), Value::Object(b)) => {
                        let mut p = serde_json::Map::new();
                        for k in a.keys().filter(|k| !b.contains_key(*k)) {
                            p.insert(k.clone(), Value::Null);
                        }
                        for (k, bv) in b {
                            match a.get(k) {
                                Some(av) if av == bv => {}
                                Some(av @ Value::Object(_)) if bv.is_object() => {
                                    p.insert(k.clone(), merge_diff(av, bv));
                                }
                                _ => {
                                    p.insert(k.clone(), bv.clone());
                                }
                            }
                        }
                        Value::Object(p)
                    }
                    _ => b.clone(),
                }
            }
            let patch = merge_diff(&a, &b);
            prop_assert_eq!(apply_merge_patch(&a, &patch).unwrap(), b.clone());
            // And json-patch's own diff, applied as a JSON patch, agrees.
            let ops = serde_json::to_value(json_patch::diff(&a, &b)).unwrap();
            prop_assert_eq!(apply_json_patch(&a, &ops).unwrap(), b);
        }

        #[test]
        fn empty_merge_patch_is_identity(a in object()) {
            prop_assert_eq!(apply_merge_patch(&a, &json!({})).unwrap(), a);
        }
    }
}
