//! Errors of the API server, in two kinds.
//!
//! - [`Error`]: the server itself could not start or keep serving (certificates, the listener,
//!   the data directory). The binary reports these and exits.
//! - [`StatusError`]: one request failed. It renders as a Kubernetes `Status` object with the
//!   HTTP code, `reason` and `details` kubectl and client-go expect (`Error from server
//!   (NotFound): pods "x" not found`). This is the one place where failures become responses;
//!   it does not log (the request span does).
//!
//! Constructors mirror `k8s.io/apimachinery/pkg/api/errors` so messages read like
//! kube-apiserver's. Resource-scoped ones take the group and the plural resource name
//! (`""`/`"pods"`, `"apps"`/`"deployments"`), which is what the real server puts in
//! `details.group` and `details.kind`.

use std::fmt;
use std::path::PathBuf;

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// Why the server could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file under the data directory failed.
    #[error("{what} {}: {source}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A certificate or key could not be generated or parsed.
    #[error("certificate {what}: {source}")]
    Certificate {
        what: &'static str,
        source: rcgen::Error,
    },
    /// A stored certificate or key is unusable (e.g. a CA key without its certificate).
    #[error("{0}")]
    InvalidPki(String),
    /// The TLS configuration was rejected by rustls.
    #[error("tls configuration: {0}")]
    Tls(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The objects every cluster has could not be created.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// The store did not answer while the server was starting.
    #[error("store is not usable: {0}")]
    Store(#[from] navarch_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failed request, answered with a Kubernetes `Status` body.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    /// Boxed so that `Result<T, StatusError>` stays small.
    details: Option<Box<StatusDetails>>,
}

/// One reason an object is invalid (a `StatusCause` of a 422 response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCause {
    /// The field path, e.g. `spec.containers[0].image`.
    pub field: String,
    /// The cause type, e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueNotSupported`.
    pub reason: String,
    /// The human-readable message, e.g. `Required value`.
    pub message: String,
}

impl FieldCause {
    pub fn new(
        field: impl Into<String>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        FieldCause {
            field: field.into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// `field: message`, as the aggregate 422 message lists it.
    fn summary(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// `pods` or `deployments.apps`: how Kubernetes names a resource in messages.
fn qualified(group: &str, name: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

fn resource_details(group: &str, resource: &str, name: &str) -> StatusDetails {
    StatusDetails {
        group: non_empty(group),
        kind: non_empty(resource),
        name: non_empty(name),
        ..StatusDetails::default()
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

impl StatusError {
    /// A status with an explicit code, reason and message and no details.
    pub fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        StatusError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// Attach `details` (group, kind, name, causes, retryAfterSeconds).
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(Box::new(details));
        self
    }

    /// 400 BadRequest: the request itself is malformed (bad query parameter, undecodable body).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 401 Unauthorized: no valid credentials were presented.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden on a resource: `pods "x" is forbidden: <why>` (or without a name for
    /// collection requests).
    pub fn forbidden(group: &str, resource: &str, name: &str, why: impl fmt::Display) -> Self {
        let target = qualified(group, resource);
        let message = if name.is_empty() {
            format!("{target} is forbidden: {why}")
        } else {
            format!("{target} {name:?} is forbidden: {why}")
        };
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
            .with_details(resource_details(group, resource, name))
    }

    /// 403 Forbidden on a non-resource path such as `/metrics`.
    pub fn forbidden_path(user: &str, verb: &str, path: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!("forbidden: User {user:?} cannot {verb} path {path:?}"),
        )
        .with_details(StatusDetails::default())
    }

    /// 404 NotFound for a named object: `pods "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {name:?} not found", qualified(group, resource)),
        )
        .with_details(resource_details(group, resource, name))
    }

    /// 404 NotFound for a path the server does not serve at all.
    pub fn path_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    /// 405 MethodNotAllowed: `<verb> is not supported on resources of kind "pods"`.
    pub fn method_not_supported(group: &str, resource: &str, verb: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "{verb} is not supported on resources of kind {:?}",
                qualified(group, resource)
            ),
        )
        .with_details(resource_details(group, resource, ""))
    }

    /// 405 MethodNotAllowed for a path that exists but not with this HTTP method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(StatusDetails::default())
    }

    /// 406 NotAcceptable: none of the `Accept` media types can be produced.
    pub fn not_acceptable(supported: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "NotAcceptable",
            format!(
                "only the following media types are accepted: {}",
                supported.join(", ")
            ),
        )
    }

    /// 409 AlreadyExists: `pods "x" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{} {name:?} already exists", qualified(group, resource)),
        )
        .with_details(resource_details(group, resource, name))
    }

    /// 409 Conflict: `Operation cannot be fulfilled on pods "x": <why>`.
    pub fn conflict(group: &str, resource: &str, name: &str, why: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {name:?}: {why}",
                qualified(group, resource)
            ),
        )
        .with_details(resource_details(group, resource, name))
    }

    /// The `why` of a 409 for a stale `resourceVersion`, worded as kube-apiserver words it.
    pub const STALE_OBJECT: &'static str =
        "the object has been modified; please apply your changes to the latest version and try again";

    /// 410 Expired: the requested resourceVersion is too old (compacted). Informers relist.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 410 Gone: the resource is gone for good.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Gone", message)
    }

    /// 413 RequestEntityTooLarge.
    pub fn request_entity_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit_bytes}"),
        )
    }

    /// 415 UnsupportedMediaType: the body's `Content-Type` cannot be decoded.
    pub fn unsupported_media_type(content_type: &str, supported: &[&str]) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type:?}) - accepted media types include: {}",
                supported.join(", ")
            ),
        )
    }

    /// 422 Invalid with one cause per failed field. `kind` is the object's kind (`Pod`),
    /// qualified with its group in the message (`Deployment.apps "x" is invalid: …`).
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldCause>) -> Self {
        let summary = match causes.as_slice() {
            [] => String::new(),
            [one] => format!(": {}", one.summary()),
            many => format!(
                ": [{}]",
                many.iter()
                    .map(FieldCause::summary)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let message = format!("{} {name:?} is invalid{summary}", qualified(group, kind));
        let details = StatusDetails {
            group: non_empty(group),
            kind: non_empty(kind),
            name: non_empty(name),
            causes: (!causes.is_empty()).then(|| {
                causes
                    .into_iter()
                    .map(|c| StatusCause {
                        field: Some(c.field),
                        reason: Some(c.reason),
                        message: Some(c.message),
                    })
                    .collect()
            }),
            ..StatusDetails::default()
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message).with_details(details)
    }

    /// 500 InternalError: `Internal error occurred: <why>`.
    pub fn internal(why: impl fmt::Display) -> Self {
        let why = why.to_string();
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("Internal error occurred: {why}"),
        )
        .with_details(StatusDetails {
            causes: Some(vec![StatusCause {
                message: Some(why),
                ..StatusCause::default()
            }]),
            ..StatusDetails::default()
        })
    }

    /// 503 ServiceUnavailable: the store cannot serve requests right now.
    pub fn service_unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// 504 Timeout: `Timeout: <why>`; clients retry after `retry_after_seconds`.
    pub fn timeout(why: impl fmt::Display, retry_after_seconds: i32) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "Timeout",
            format!("Timeout: {why}"),
        )
        .with_details(StatusDetails {
            retry_after_seconds: Some(retry_after_seconds),
            ..StatusDetails::default()
        })
    }

    pub fn code(&self) -> StatusCode {
        self.code
    }

    /// The machine-readable reason (`NotFound`, `Conflict`, …).
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn details(&self) -> Option<&StatusDetails> {
        self.details.as_deref()
    }

    /// The `Status` object this error is answered with (also what a watch `ERROR` event
    /// carries).
    pub fn to_status(&self) -> Status {
        Status {
            code: Some(i32::from(self.code.as_u16())),
            details: self.details.as_deref().cloned(),
            message: Some(self.message.clone()),
            reason: Some(self.reason.to_string()),
            status: Some("Failure".to_string()),
            ..Status::default()
        }
    }
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StatusError {}

impl IntoResponse for StatusError {
    fn into_response(self) -> Response {
        // Serialising a Status cannot fail: it holds only strings and integers.
        let body = serde_json::to_vec(&self.to_status()).unwrap_or_default();
        let mut response = (self.code, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.details.as_ref().and_then(|d| d.retry_after_seconds) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Store errors without request context (the handler knows the resource and should prefer
/// the resource-scoped constructors). Revisions are the resourceVersions clients sent.
impl From<navarch_store::Error> for StatusError {
    fn from(err: navarch_store::Error) -> Self {
        use navarch_store::Error as E;
        match err {
            E::AlreadyExists { key } => Self::new(
                StatusCode::CONFLICT,
                "AlreadyExists",
                format!("{key:?} already exists"),
            ),
            E::NotFound { key } => Self::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("{key:?} not found"),
            ),
            E::Conflict { key, .. } => Self::new(
                StatusCode::CONFLICT,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {key:?}: {}",
                    Self::STALE_OBJECT
                ),
            ),
            E::Compacted {
                requested,
                compacted,
            } => Self::expired(format!(
                "too old resource version: {requested} ({compacted})"
            )),
            E::FutureRevision { requested, current } => Self::timeout(
                format!("Too large resource version: {requested}, current: {current}"),
                1,
            )
            .with_details(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ResourceVersionTooLarge".to_string()),
                    message: Some(format!(
                        "Too large resource version: {requested}, current: {current}"
                    )),
                    ..StatusCause::default()
                }]),
                retry_after_seconds: Some(1),
                ..StatusDetails::default()
            }),
            E::Unavailable(why) => Self::service_unavailable(format!("storage unavailable: {why}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::{json, Value};

    async fn body_of(err: StatusError) -> (StatusCode, Option<HeaderValue>, Value) {
        let response = err.into_response();
        let code = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (code, content_type, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn not_found_renders_like_kube_apiserver() {
        let (code, content_type, body) = body_of(StatusError::not_found("", "pods", "nope")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert_eq!(content_type.unwrap(), "application/json");
        assert_eq!(
            body,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "pods \"nope\" not found", "reason": "NotFound",
                "details": {"name": "nope", "kind": "pods"}, "code": 404
            })
        );
    }

    #[tokio::test]
    async fn grouped_resources_are_qualified_in_messages() {
        let (code, _, body) =
            body_of(StatusError::already_exists("apps", "deployments", "web")).await;
        assert_eq!(code, StatusCode::CONFLICT);
        assert_eq!(body["reason"], "AlreadyExists");
        assert_eq!(body["message"], "deployments.apps \"web\" already exists");
        assert_eq!(body["details"]["group"], "apps");
    }

    #[tokio::test]
    async fn invalid_lists_every_cause() {
        let err = StatusError::invalid(
            "",
            "Pod",
            "p",
            vec![
                FieldCause::new("spec.containers", "FieldValueRequired", "Required value"),
                FieldCause::new("metadata.name", "FieldValueInvalid", "Invalid value: \"A\""),
            ],
        );
        let (code, _, body) = body_of(err).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            body["message"],
            "Pod \"p\" is invalid: [spec.containers: Required value, metadata.name: Invalid value: \"A\"]"
        );
        assert_eq!(body["details"]["kind"], "Pod");
        assert_eq!(body["details"]["causes"][0]["field"], "spec.containers");
        assert_eq!(body["details"]["causes"][0]["reason"], "FieldValueRequired");
        assert_eq!(body["details"]["causes"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn invalid_with_one_cause_has_no_brackets() {
        let err = StatusError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![FieldCause::new(
                "spec.replicas",
                "FieldValueInvalid",
                "must be >= 0",
            )],
        );
        assert_eq!(
            err.message(),
            "Deployment.apps \"d\" is invalid: spec.replicas: must be >= 0"
        );
    }

    #[tokio::test]
    async fn every_constructor_has_the_documented_code_and_reason() {
        let cases = [
            (StatusError::bad_request("x"), 400, "BadRequest"),
            (StatusError::unauthorized(), 401, "Unauthorized"),
            (
                StatusError::forbidden("", "pods", "", "no"),
                403,
                "Forbidden",
            ),
            (
                StatusError::forbidden_path("bob", "get", "/x"),
                403,
                "Forbidden",
            ),
            (StatusError::path_not_found(), 404, "NotFound"),
            (StatusError::method_not_allowed(), 405, "MethodNotAllowed"),
            (
                StatusError::method_not_supported("", "pods", "deletecollection"),
                405,
                "MethodNotAllowed",
            ),
            (
                StatusError::not_acceptable(&["application/json"]),
                406,
                "NotAcceptable",
            ),
            (
                StatusError::conflict("", "pods", "p", StatusError::STALE_OBJECT),
                409,
                "Conflict",
            ),
            (StatusError::expired("too old"), 410, "Expired"),
            (StatusError::gone("gone"), 410, "Gone"),
            (
                StatusError::request_entity_too_large(3),
                413,
                "RequestEntityTooLarge",
            ),
            (
                StatusError::unsupported_media_type("text/plain", &["application/json"]),
                415,
                "UnsupportedMediaType",
            ),
            (StatusError::internal("boom"), 500, "InternalError"),
            (
                StatusError::service_unavailable("down"),
                503,
                "ServiceUnavailable",
            ),
            (StatusError::timeout("slow", 2), 504, "Timeout"),
        ];
        for (err, code, reason) in cases {
            let (status, _, body) = body_of(err).await;
            assert_eq!(status.as_u16(), code, "{reason}");
            assert_eq!(body["code"], code, "{reason}");
            assert_eq!(body["reason"], reason);
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["status"], "Failure");
        }
    }

    #[tokio::test]
    async fn timeout_sets_retry_after() {
        let response = StatusError::timeout("slow", 2).into_response();
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "2");
    }

    #[test]
    fn store_errors_map_to_their_kinds() {
        use navarch_store::Error as E;
        let compacted: StatusError = E::Compacted {
            requested: 3,
            compacted: 10,
        }
        .into();
        assert_eq!(compacted.code(), StatusCode::GONE);
        assert_eq!(compacted.reason(), "Expired");
        assert_eq!(compacted.message(), "too old resource version: 3 (10)");

        let conflict: StatusError = E::Conflict {
            key: "/registry/pods/default/p".into(),
            expected: 1,
            actual: 2,
        }
        .into();
        assert_eq!(conflict.code(), StatusCode::CONFLICT);
        assert_eq!(conflict.reason(), "Conflict");

        let future: StatusError = E::FutureRevision {
            requested: 100,
            current: 5,
        }
        .into();
        assert_eq!(future.code(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(future.details().unwrap().retry_after_seconds, Some(1));

        let exists: StatusError = E::AlreadyExists { key: "k".into() }.into();
        assert_eq!(exists.reason(), "AlreadyExists");
        let missing: StatusError = E::NotFound { key: "k".into() }.into();
        assert_eq!(missing.code(), StatusCode::NOT_FOUND);
        let down: StatusError = E::Unavailable("closed".into()).into();
        assert_eq!(down.code(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
