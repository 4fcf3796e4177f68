//! Authentication: who sent a request.
//!
//! The TLS layer verifies client certificates against the cluster CA (presenting one is
//! optional) and inserts the certificate's identity into each request as an
//! [`AuthenticatedUser`] extension: the common name is the user, the organizations are its
//! groups, as in Kubernetes. [`require_authentication`] then rejects anonymous requests with
//! 401, except for the public health and version endpoints that kube-apiserver also serves to
//! anonymous users. In-process callers (controllers calling the router as a tower service)
//! insert the extension themselves.
//!
//! Requests without a certificate identity may carry `Authorization: Bearer TOKEN`: a node
//! token derived from the join token ([`crate::node_token`]) or a service-account JWT
//! ([`crate::service_account_token`], checked against the store). As in Kubernetes, a bearer token that is not recognised fails the
//! request with 401 even on public paths: presenting bad credentials is not anonymity.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;

use crate::error::StatusError;
use crate::state::AppState;

/// Every authenticated user is in this group, as in Kubernetes.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// Paths anonymous users may read (kube-apiserver's `system:public-info-viewer`).
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// The user a request was authenticated as. Handlers read it with
/// `axum::Extension<AuthenticatedUser>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser {
    pub name: String,
    pub groups: Vec<String>,
}

impl AuthenticatedUser {
    /// A user with the given groups plus `system:authenticated`.
    pub fn new(name: impl Into<String>, groups: impl IntoIterator<Item = String>) -> Self {
        let mut groups: Vec<String> = groups.into_iter().collect();
        if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
        AuthenticatedUser {
            name: name.into(),
            groups,
        }
    }

    /// The identity in a client certificate that rustls already verified against the cluster
    /// CA: CN is the user name, O values are the groups. `None` if the certificate has no CN.
    pub fn from_client_certificate(cert: &CertificateDer<'_>) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
        let subject = cert.subject();
        let name = subject
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())?
            .to_string();
        let groups = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_string)
            .collect::<Vec<_>>();
        Some(Self::new(name, groups))
    }

    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// Middleware: authenticate bearer tokens, then pass authenticated and public requests and
/// answer the rest with 401.
pub async fn require_authentication(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if request.extensions().get::<AuthenticatedUser>().is_none() {
        match bearer_token(&request) {
            Some(token) => {
                let mut user = state
                    .join_token
                    .as_ref()
                    .and_then(|join| join.authenticate(token));
                if let (None, Some(tokens)) = (&user, &state.service_account_tokens) {
                    user = tokens.authenticate(state.store.as_ref(), token).await;
                }
                match user {
                    Some(user) => {
                        request.extensions_mut().insert(user);
                    }
                    None => return StatusError::unauthorized().into_response(),
                }
            }
            None if request.headers().contains_key(http::header::AUTHORIZATION) => {
                // Basic auth and other schemes are not supported: bad credentials, not none.
                return StatusError::unauthorized().into_response();
            }
            None => {}
        }
    }
    let public = PUBLIC_PATHS.contains(&request.uri().path());
    if public || request.extensions().get::<AuthenticatedUser>().is_some() {
        next.run(request).await
    } else {
        StatusError::unauthorized().into_response()
    }
}

/// The token of an `Authorization: Bearer TOKEN` header (scheme case-insensitive).
fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_certificate_identity_is_cn_and_organizations() {
        let dir = tempfile::tempdir().unwrap();
        let pki = crate::pki::Pki::load_or_generate(dir.path(), &["localhost".into()]).unwrap();
        let issued = pki
            .issue_client_cert("system:node:n1", &["system:nodes"])
            .unwrap();
        let (_, der) = x509_parser::pem::parse_x509_pem(issued.cert_pem.as_bytes()).unwrap();
        let user = AuthenticatedUser::from_client_certificate(&CertificateDer::from(der.contents))
            .unwrap();
        assert_eq!(user.name, "system:node:n1");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
        assert!(user.in_group("system:nodes"));
    }

    async fn get_with_authorization(
        state: &AppState,
        path: &str,
        authorization: &str,
    ) -> (http::StatusCode, String) {
        use tower::ServiceExt;
        let request = http::Request::get(path)
            .header(http::header::AUTHORIZATION, authorization)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = crate::routes::router(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        crate::testing::body_text(response).await
    }

    fn state_with_join_token() -> (AppState, std::sync::Arc<crate::node_token::JoinToken>) {
        let join = std::sync::Arc::new(crate::node_token::JoinToken::new(
            "0123456789abcdef0123456789abcdef",
        ));
        let state = crate::testing::state_with(crate::testing::FakeStore::healthy())
            .with_join_token(join.clone());
        (state, join)
    }

    #[tokio::test]
    async fn a_node_bearer_token_authenticates_the_request() {
        let (state, join) = state_with_join_token();
        let token = join.node_token("n1");
        // A path that does not exist answers 404 only to an authenticated caller.
        let (code, _) = get_with_authorization(&state, "/nope", &format!("Bearer {token}")).await;
        assert_eq!(code, http::StatusCode::NOT_FOUND);
        let (code, _) = get_with_authorization(&state, "/nope", &format!("bearer {token}")).await;
        assert_eq!(code, http::StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn bad_credentials_get_401_even_on_public_paths() {
        let (state, join) = state_with_join_token();
        for authorization in [
            "Bearer n1.00".to_string(),
            format!("Bearer {}", join.node_token("n1").replace("n1.", "n2.")),
            "Basic dXNlcjpwYXNz".to_string(),
            "Bearer ".to_string(),
        ] {
            let (code, body) = get_with_authorization(&state, "/version", &authorization).await;
            assert_eq!(
                code,
                http::StatusCode::UNAUTHORIZED,
                "{authorization}: {body}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_join_token_no_bearer_token_is_accepted() {
        let state = crate::testing::state_with(crate::testing::FakeStore::healthy());
        let join = crate::node_token::JoinToken::new("0123456789abcdef0123456789abcdef");
        let authorization = format!("Bearer {}", join.node_token("n1"));
        let (code, _) = get_with_authorization(&state, "/nope", &authorization).await;
        assert_eq!(code, http::StatusCode::UNAUTHORIZED);
    }
}
