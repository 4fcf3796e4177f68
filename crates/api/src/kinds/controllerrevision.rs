//! ControllerRevisions: immutable snapshots of a workload's template, listed with the
//! controller that owns them.

use k8s_openapi::api::apps::v1 as apps;
use serde_json::{json, Value};

use super::util;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `apps/v1` ControllerRevision.
pub struct ControllerRevisionOps;

impl KindOps for ControllerRevisionOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<apps::ControllerRevision>(obj)
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        if let Some(n) = obj
            .get("revision")
            .and_then(Value::as_i64)
            .filter(|n| *n < 0)
        {
            errs.push(FieldError::invalid(
                "revision",
                &json!(n),
                "must be greater than or equal to 0",
            ));
        }
        if let Some(old) = old {
            if obj.get("data") != old.get("data") {
                errs.push(util::invalid_raw(
                    "data",
                    "runtime.RawExtension{...}",
                    "field is immutable",
                ));
            }
        }
        errs
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Controller",
                "string",
                "",
                0,
                "The controller that owns the revision.",
            ),
            Column::new("Revision", "string", "", 0, "The revision number."),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(controller_of(obj)),
            json!(util::int(obj, "revision")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

/// `kind.group/name` of the controlling owner (`statefulset.apps/web`), or `<none>`.
pub fn controller_of(obj: &Value) -> String {
    let owner = util::arr(&obj["metadata"], "ownerReferences")
        .iter()
        .find(|o| util::flag(o, "controller"));
    let Some(o) = owner else {
        return "<none>".into();
    };
    let group = util::s(o, "apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    let kind = util::s(o, "kind");
    let gk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    if gk.is_empty() {
        util::s(o, "name").to_string()
    } else {
        format!("{}/{}", gk.to_lowercase(), util::s(o, "name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_column_names_the_owner() {
        let cr = json!({"metadata": {"name": "web-5d4f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
            "revision": 2});
        let row = ControllerRevisionOps.table_row(&cr, jiff::Timestamp::now());
        assert_eq!(row[1], json!("statefulset.apps/web"));
        assert_eq!(row[2], json!(2));
        assert_eq!(controller_of(&json!({})), "<none>");
    }
}
