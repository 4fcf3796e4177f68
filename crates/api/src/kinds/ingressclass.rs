//! IngressClasses: a domain-prefixed, immutable controller name; the `kubectl get
//! ingressclasses` columns.

use k8s_openapi::api::networking::v1 as networking;
use serde_json::{json, Value};

use super::util::s;
use crate::registry::KindOps;
use crate::table::Column;
use crate::validation::{self, FieldError};

/// Behaviour of `networking.k8s.io/v1` IngressClass.
pub struct IngressClassOps;

impl KindOps for IngressClassOps {
    fn normalize(&self, obj: Value) -> Result<Value, String> {
        super::roundtrip::<networking::IngressClass>(obj)
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = validation::validate_object_meta(obj, false, false);
        let controller = s(&obj["spec"], "controller");
        let domain_prefixed = controller
            .split_once('/')
            .is_some_and(|(d, p)| validation::is_dns1123_subdomain(d) && !p.is_empty());
        if controller.is_empty() {
            errs.push(FieldError::required("spec.controller", ""));
        } else if controller.len() > 250 {
            errs.push(FieldError::too_long("spec.controller", 250));
        } else if !domain_prefixed {
            errs.push(FieldError::invalid(
                "spec.controller",
                &json!(controller),
                "must be a domain-prefixed path (such as \"acme.io/foo\")",
            ));
        }
        if let Some(old) = old {
            if s(&old["spec"], "controller") != controller {
                errs.push(FieldError::invalid(
                    "spec.controller",
                    &json!(controller),
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
                "The controller that implements the class.",
            ),
            Column::new(
                "Parameters",
                "string",
                "",
                0,
                "The resource holding the class's parameters.",
            ),
            Column::age(),
        ]
    }

    fn table_row(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        let spec = &obj["spec"];
        let params = match spec.get("parameters").filter(|p| p.is_object()) {
            None => "<none>".to_string(),
            Some(p) => {
                let mut out = s(p, "kind").to_string();
                if let Some(g) = p.get("apiGroup").and_then(Value::as_str) {
                    out = format!("{out}.{g}");
                }
                format!("{out}/{}", s(p, "name"))
            }
        };
        vec![
            json!(crate::meta::name(obj)),
            json!(s(spec, "controller")),
            json!(params),
            json!(crate::table::age(obj, now)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_rules_and_row() {
        let ic = json!({"metadata": {"name": "traefik"}, "spec": {"controller": "traefik.io/ingress-controller",
            "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external"}}});
        assert!(IngressClassOps.validate(&ic, None).is_empty());
        assert_eq!(
            IngressClassOps.table_row(&ic, jiff::Timestamp::now())[2],
            json!("IngressParameters.k8s.example.com/external")
        );
        let bad = json!({"metadata": {"name": "x"}, "spec": {"controller": "nginx"}});
        assert_eq!(
            IngressClassOps.validate(&bad, None)[0].field,
            "spec.controller"
        );
    }
}
