//! Roles and ClusterRoles: policy rules must name verbs and either resources (with API groups)
//! or, for cluster roles only, non-resource URLs. Tables are the generic Name/Created At, as
//! upstream has no printer for roles.

use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::Value;

use super::util::{self, arr};
use crate::registry::KindOps;
use crate::validation::{self, FieldError};

/// Behaviour of `rbac.authorization.k8s.io/v1` Role.
pub struct RoleOps;

/// Behaviour of `rbac.authorization.k8s.io/v1` ClusterRole.
pub struct ClusterRoleOps;

fn validate_rules(obj: &Value, namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, r) in arr(obj, "rules").iter().enumerate() {
        let rp = format!("rules[{i}]");
        if arr(r, "verbs").is_empty() {
            errs.push(FieldError::required(
                format!("{rp}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(r, "nonResourceURLs");
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{rp}.nonResourceURLs"),
                    &r["nonResourceURLs"],
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(r, "apiGroups").is_empty()
                || !arr(r, "resources").is_empty()
                || !arr(r, "resourceNames").is_empty()
            {
                errs.push(FieldError::invalid(
                    format!("{rp}.nonResourceURLs"),
                    &r["nonResourceURLs"],
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(r, "apiGroups").is_empty() {
            errs.push(FieldError::required(
                format!("{rp}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(r, "resources").is_empty() {
            errs.push(FieldError::required(
                format!("{rp}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

impl KindOps for RoleOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<rbac::Role>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, true, false);
        validate_rules(obj, true, &mut errs);
        errs
    }
}

impl KindOps for ClusterRoleOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<rbac::ClusterRole>(obj)
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        validate_rules(obj, false, &mut errs);
        if let Some(agg) = obj.get("aggregationRule").filter(|a| a.is_object()) {
            let selectors = arr(agg, "clusterRoleSelectors");
            if selectors.is_empty() {
                errs.push(FieldError::required(
                    "aggregationRule.clusterRoleSelectors",
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, sel) in selectors.iter().enumerate() {
                util::validate_label_selector(
                    sel,
                    &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                    &mut errs,
                );
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let role = json!({"metadata": {"name": "r", "namespace": "default"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                      {"resources": ["pods"]},
                      {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        let fields: Vec<String> = RoleOps
            .validate(&role, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            vec![
                "rules[1].verbs",
                "rules[1].apiGroups",
                "rules[2].nonResourceURLs"
            ]
        );
        let cr = json!({"metadata": {"name": "c"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]});
        assert!(ClusterRoleOps.validate(&cr, None).is_empty());
    }
}
