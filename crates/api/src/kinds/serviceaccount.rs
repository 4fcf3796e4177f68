//! ServiceAccounts: `kubectl get serviceaccounts` shows the number of referenced secrets.

use k8s_openapi::api::core::v1 as core;
use serde_json::{json, Value};

use super::util;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `core/v1` ServiceAccount.
pub struct ServiceAccountOps;

impl KindOps for ServiceAccountOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<core::ServiceAccount>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        validation::validate_object_meta(obj, true, false)
    }

    fn table_columns(&self) -> Vec<Column> {
        vec![
            Column::name(),
            Column::new(
                "Secrets",
                "string",
                "",
                0,
                "Number of secrets the account references.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        vec![
            json!(crate::meta::name(obj)),
            json!(util::len(obj, "secrets")),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_secrets() {
        let sa = json!({"metadata": {"name": "default", "namespace": "default"}});
        assert_eq!(
            ServiceAccountOps.table_row(&sa, jiff::Timestamp::now())[1],
            json!(0)
        );
        assert!(ServiceAccountOps.validate(&sa, None).is_empty());
    }
}
