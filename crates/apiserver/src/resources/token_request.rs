//! `POST .../serviceaccounts/NAME/token`: a `TokenRequest` (authentication.k8s.io/v1) in, the
//! same request with `status.token` and `status.expirationTimestamp` out (201), as
//! kube-apiserver's TokenREST answers it.
//!
//! Order of checks, as upstream: the body's name and namespace must match the URL's (422), the
//! service account must exist (404), `spec.expirationSeconds` must be at least ten minutes and
//! at most 2^32 seconds (422), and a `spec.boundObjectRef` must name an existing Pod, Secret or
//! Node (400 for other kinds, 404 if missing, 409 if its UID differs). A token bound to a pod
//! also names the pod's node, as kube-apiserver does since 1.30.

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;
use navarch_api::meta;
use serde_json::{json, Value};

use super::codec::{content_type, decode_object, json_response, read_body};
use super::request::Target;
use super::{Ctx, ResourceApi};
use crate::service_account_token::{self as sat, Claims, KubernetesClaims, ObjectRef};
use crate::{FieldCause, StatusError};

const GROUP: &str = "authentication.k8s.io";
const KIND: &str = "TokenRequest";
const API_VERSION: &str = "authentication.k8s.io/v1";
/// `spec.expirationSeconds` when the request leaves it out (the API's default).
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a token may be asked for (upstream's `MinTokenAgeSec`).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (upstream's `MaxTokenAgeSec`).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

impl ResourceApi {
    pub(crate) async fn token_request(
        &self,
        t: &Target,
        ctx: &Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let tokens = self.config.service_account_tokens.clone().ok_or_else(|| {
            StatusError::service_unavailable("service-account token signing is not configured")
        })?;
        let name = t.name.clone().unwrap_or_default();
        let namespace = t.namespace.clone().unwrap_or_default();
        let bytes = read_body(body).await?;
        let req = if bytes.is_empty() {
            json!({})
        } else {
            decode_object(&content_type(&ctx.headers), &bytes)?
        };
        check_type(&req)?;

        let invalid = |field: &str, value: &str, why: &str| {
            StatusError::invalid(
                GROUP,
                KIND,
                &name,
                vec![FieldCause::new(
                    field,
                    "FieldValueInvalid",
                    format!("Invalid value: {value:?}: {why}"),
                )],
            )
        };
        if let Some(n) = req["metadata"]["name"].as_str().filter(|n| !n.is_empty()) {
            if n != name {
                return Err(invalid(
                    "metadata.name",
                    n,
                    "must match the service account name if specified",
                ));
            }
        }
        if let Some(ns) = req["metadata"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            if ns != namespace {
                return Err(invalid(
                    "metadata.namespace",
                    ns,
                    "must match the service account namespace if specified",
                ));
            }
        }

        let (sa, _) = self.current(t, &name).await?;
        let spec = &req["spec"];
        let mut audiences: Vec<String> = spec["audiences"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        if audiences.is_empty() {
            audiences.push(tokens.signer().issuer().to_string());
        }
        let expiration = match &spec["expirationSeconds"] {
            Value::Null => DEFAULT_EXPIRATION_SECONDS,
            v => v.as_i64().ok_or_else(|| {
                StatusError::bad_request("spec.expirationSeconds must be an integer")
            })?,
        };
        validate_expiration(expiration)?;

        let mut claims_k8s = KubernetesClaims {
            namespace: namespace.clone(),
            serviceaccount: object_ref(&sa),
            ..KubernetesClaims::default()
        };
        let bound = &spec["boundObjectRef"];
        if bound.is_object() {
            self.bind(&tokens, &namespace, &name, bound, &mut claims_k8s)
                .await?;
        }

        let now = sat::now();
        let exp = now + expiration;
        let claims = Claims {
            iss: tokens.signer().issuer().to_string(),
            sub: format!("{}{namespace}:{name}", sat::USER_PREFIX),
            aud: audiences.clone(),
            exp,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().to_string(),
            kubernetes: claims_k8s,
        };
        let token = tokens
            .signer()
            .sign(&claims)
            .map_err(|_| StatusError::internal("cannot sign the service-account token"))?;

        let mut spec_out = json!({"audiences": audiences, "expirationSeconds": expiration});
        if bound.is_object() {
            spec_out["boundObjectRef"] = bound.clone();
        }
        let response = json!({
            "kind": KIND,
            "apiVersion": API_VERSION,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "creationTimestamp": timestamp(now),
            },
            "spec": spec_out,
            "status": {"token": token, "expirationTimestamp": timestamp(exp)},
        });
        Ok(json_response(StatusCode::CREATED, &response))
    }

    /// Check `spec.boundObjectRef` and record the bound object (and a pod's node) in the claims.
    async fn bind(
        &self,
        tokens: &crate::ServiceAccountTokens,
        namespace: &str,
        sa_name: &str,
        bound: &Value,
        claims: &mut KubernetesClaims,
    ) -> Result<(), StatusError> {
        let kind = bound["kind"].as_str().unwrap_or("");
        let api_version = bound["apiVersion"].as_str().unwrap_or("");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let def = tokens
            .bindable(kind)
            .filter(|_| group.is_empty())
            .ok_or_else(|| {
                StatusError::bad_request(format!(
                    "cannot bind token to object of type {group}/{version}, Kind={kind}"
                ))
            })?;
        let ref_name = bound["name"].as_str().unwrap_or("");
        let ns = def.namespaced().then_some(namespace);
        let obj = self.read_object(def, ns, ref_name).await?;
        let uid = meta::uid(&obj).unwrap_or("");
        let want_uid = bound["uid"].as_str().unwrap_or("");
        if kind == "Pod" {
            let pod_sa = obj["spec"]["serviceAccountName"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default");
            if pod_sa != sa_name {
                return Err(StatusError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa_name:?} to pod running with different serviceaccount name."
                )));
            }
        }
        if !want_uid.is_empty() && want_uid != uid {
            return Err(StatusError::conflict(
                group,
                kind,
                ref_name,
                format!(
                    "the UID in the bound object reference ({want_uid}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        let r = object_ref(&obj);
        match kind {
            "Pod" => {
                // The node the pod runs on, when it is scheduled and the node exists.
                if let Some(node) = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    let nodes = tokens.bindable("Node").cloned();
                    if let Some(nodes) = nodes {
                        if let Ok(node) = self.read_object(&nodes, None, node).await {
                            claims.node = Some(object_ref(&node));
                        }
                    }
                }
                claims.pod = Some(r);
            }
            "Secret" => claims.secret = Some(r),
            _ => claims.node = Some(r),
        }
        Ok(())
    }

    async fn read_object(
        &self,
        def: &std::sync::Arc<navarch_api::ResourceDef>,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StatusError> {
        let target = Target {
            def: def.clone(),
            namespace: namespace.map(String::from),
            name: Some(name.to_string()),
            subresource: None,
            legacy_watch: false,
        };
        Ok(self.current(&target, name).await?.0)
    }
}

/// A body of another type is a bad request, as the decoder upstream reports it.
fn check_type(req: &Value) -> Result<(), StatusError> {
    if !req.is_object() {
        return Err(StatusError::bad_request(
            "the object provided is unrecognized (must be of type TokenRequest)",
        ));
    }
    match req["apiVersion"].as_str() {
        None | Some("") | Some(API_VERSION) => {}
        Some(v) => {
            return Err(StatusError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({API_VERSION})"
            )))
        }
    }
    match req["kind"].as_str() {
        None | Some("") | Some(KIND) => Ok(()),
        Some(k) => Err(StatusError::bad_request(format!(
            "the kind in the data ({k}) does not match the expected kind ({KIND})"
        ))),
    }
}

/// Upstream's static validation of `spec.expirationSeconds`.
pub fn validate_expiration(seconds: i64) -> Result<(), StatusError> {
    let cause = if seconds < MIN_EXPIRATION_SECONDS {
        FieldCause::new(
            "spec.expirationSeconds",
            "FieldValueInvalid",
            format!("Invalid value: {seconds}: may not specify a duration less than 10 minutes"),
        )
    } else if seconds > MAX_EXPIRATION_SECONDS {
        FieldCause::new(
            "spec.expirationSeconds",
            "FieldValueTooLong",
            format!("Too long: may not be more than {MAX_EXPIRATION_SECONDS} bytes"),
        )
    } else {
        return Ok(());
    };
    Err(StatusError::invalid(GROUP, KIND, "", vec![cause]))
}

fn object_ref(obj: &Value) -> ObjectRef {
    ObjectRef {
        name: meta::name(obj).to_string(),
        uid: meta::uid(obj).unwrap_or("").to_string(),
    }
}

fn timestamp(unix_seconds: i64) -> String {
    jiff::Timestamp::from_second(unix_seconds)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiration_must_be_between_ten_minutes_and_two_to_the_thirty_two_seconds() {
        for ok in [MIN_EXPIRATION_SECONDS, DEFAULT_EXPIRATION_SECONDS, 1 << 32] {
            assert!(validate_expiration(ok).is_ok(), "{ok}");
        }
        for bad in [i64::MIN, -1, 0, MIN_EXPIRATION_SECONDS - 1, (1 << 32) + 1] {
            let err = validate_expiration(bad).unwrap_err();
            assert_eq!(err.code(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
            assert_eq!(err.reason(), "Invalid");
        }
        let err = validate_expiration(599).unwrap_err();
        assert_eq!(
            err.message(),
            "TokenRequest.authentication.k8s.io \"\" is invalid: spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
    }

    #[test]
    fn a_body_of_another_kind_is_a_bad_request() {
        assert!(check_type(&json!({})).is_ok());
        assert!(check_type(&json!({"apiVersion": API_VERSION, "kind": KIND})).is_ok());
        for bad in [
            json!([]),
            json!({"kind": "Pod"}),
            json!({"apiVersion": "v1", "kind": KIND}),
        ] {
            assert_eq!(
                check_type(&bad).unwrap_err().code(),
                StatusCode::BAD_REQUEST,
                "{bad}"
            );
        }
    }
}
