//! RoleBindings and ClusterRoleBindings: the RBAC API group by default on the role reference
//! and user/group subjects, subject and reference validation, an immutable role reference, and
//! the `kubectl get rolebindings` columns (ROLE, with users, groups and service accounts wide).

use k8s_openapi::api::rbac::v1 as rbac;
use serde_json::{json, Value};

use super::util::{self, arr, default_str, each_mut, s};
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `rbac.authorization.k8s.io/v1` RoleBinding.
pub struct RoleBindingOps;

/// Behaviour of `rbac.authorization.k8s.io/v1` ClusterRoleBinding.
pub struct ClusterRoleBindingOps;

const GROUP: &str = "rbac.authorization.k8s.io";

fn defaults(obj: &mut Value) {
    default_str(util::obj(obj, "roleRef"), "apiGroup", GROUP);
    each_mut(obj, "subjects", |sub| {
        if s(sub, "apiGroup").is_empty() {
            match s(sub, "kind") {
                "ServiceAccount" => sub["apiGroup"] = json!(""),
                "User" | "Group" => sub["apiGroup"] = json!(GROUP),
                _ => {}
            }
        }
    });
}

fn validate(obj: &Value, old: Option<&Value>, cluster: bool) -> Vec<FieldError> {
    let mut errs = validation::validate_object_meta(obj, !cluster, false);
    let rr = &obj["roleRef"];
    let group = s(rr, "apiGroup");
    if group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &json!(group),
            &[GROUP],
        ));
    }
    let kind = s(rr, "kind");
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &json!(kind),
            kinds,
        ));
    }
    let name = s(rr, "name");
    if name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else if name.contains('/') || name.contains('%') || name == "." || name == ".." {
        errs.push(FieldError::invalid(
            "roleRef.name",
            &json!(name),
            "may not contain '/' or '%'",
        ));
    }
    for (i, sub) in arr(obj, "subjects").iter().enumerate() {
        let sp = format!("subjects[{i}]");
        let name = s(sub, "name");
        if name.is_empty() {
            errs.push(FieldError::required(format!("{sp}.name"), ""));
        }
        match s(sub, "kind") {
            "ServiceAccount" => {
                if !s(sub, "apiGroup").is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{sp}.apiGroup"),
                        &sub["apiGroup"],
                        &[""],
                    ));
                }
                if !name.is_empty() && !validation::is_dns1123_subdomain(name) {
                    errs.push(FieldError::invalid(
                        format!("{sp}.name"),
                        &json!(name),
                        validation::DNS1123_SUBDOMAIN_MSG,
                    ));
                }
                if cluster && s(sub, "namespace").is_empty() {
                    errs.push(FieldError::required(format!("{sp}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if s(sub, "apiGroup") != GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{sp}.apiGroup"),
                        &sub["apiGroup"],
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{sp}.kind"),
                &json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    if let Some(old) = old {
        if old.get("roleRef") != obj.get("roleRef") {
            errs.push(util::invalid_raw(
                "roleRef",
                &format!(
                    "rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}",
                    group, kind, name
                ),
                "cannot change roleRef",
            ));
        }
    }
    errs
}

fn columns(what: &str) -> Vec<Column> {
    vec![
        Column::name(),
        Column::new("Role", "string", "", 0, "The role granted."),
        Column::age(),
        Column::new("Users", "string", "", 1, &format!("Users in the {what}.")),
        Column::new("Groups", "string", "", 1, &format!("Groups in the {what}.")),
        Column::new(
            "ServiceAccounts",
            "string",
            "",
            1,
            &format!("Service accounts in the {what}."),
        ),
    ]
}

fn row(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let rr = &obj["roleRef"];
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for sub in arr(obj, "subjects") {
        match s(sub, "kind") {
            "User" => users.push(s(sub, "name").to_string()),
            "Group" => groups.push(s(sub, "name").to_string()),
            "ServiceAccount" => sas.push(format!("{}:{}", s(sub, "namespace"), s(sub, "name"))),
            _ => {}
        }
    }
    vec![
        json!(crate::meta::name(obj)),
        json!(format!("{}/{}", s(rr, "kind"), s(rr, "name"))),
        json!(crate::table::age(obj, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

impl KindOps for RoleBindingOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<rbac::RoleBinding>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        defaults(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        validate(obj, old, false)
    }

    fn table_columns(&self) -> Vec<Column> {
        columns("roleBinding")
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        row(obj, now)
    }
}

impl KindOps for ClusterRoleBindingOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<rbac::ClusterRoleBinding>(obj)
    }

    fn apply_defaults(&self, obj: &mut Value) {
        defaults(obj);
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        validate(obj, old, true)
    }

    fn table_columns(&self) -> Vec<Column> {
        columns("clusterRoleBinding")
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        row(obj, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Value {
        let mut rb = json!({"metadata": {"name": "view", "namespace": "default"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                         {"kind": "ServiceAccount", "name": "ci", "namespace": "default"}]});
        RoleBindingOps.apply_defaults(&mut rb);
        rb
    }

    #[test]
    fn defaults_row_and_immutable_role_ref() {
        let rb = binding();
        assert_eq!(rb["roleRef"]["apiGroup"], GROUP);
        assert_eq!(rb["subjects"][0]["apiGroup"], GROUP);
        assert_eq!(rb["subjects"][2]["apiGroup"], "");
        assert!(RoleBindingOps.validate(&rb, None).is_empty());
        let row = RoleBindingOps.table_row(&rb, jiff::Timestamp::now());
        assert_eq!(row[1], json!("ClusterRole/view"));
        assert_eq!(
            &row[3..],
            &[json!("alice"), json!("devs"), json!("default:ci")]
        );
        let mut changed = rb.clone();
        changed["roleRef"]["name"] = json!("edit");
        let errs = RoleBindingOps.validate(&changed, Some(&rb));
        assert_eq!(errs[0].message, "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"ClusterRole\", Name:\"edit\"}: cannot change roleRef");
    }

    #[test]
    fn cluster_bindings_need_cluster_roles_and_namespaced_service_accounts() {
        let mut crb = json!({"metadata": {"name": "x"}, "roleRef": {"kind": "Role", "name": "r"},
                             "subjects": [{"kind": "ServiceAccount", "name": "ci"}]});
        ClusterRoleBindingOps.apply_defaults(&mut crb);
        let fields: Vec<String> = ClusterRoleBindingOps
            .validate(&crb, None)
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, vec!["roleRef.kind", "subjects[0].namespace"]);
    }
}
