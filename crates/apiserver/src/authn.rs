//! Authentication: who sent a request.
//!
//! The TLS layer verifies client certificates against the cluster CA (presenting one is
//! optional) and inserts the certificate's identity into each request as an
//! [`AuthenticatedUser`] extension: the common name is the user, the organizations are its
//! groups, as in Kubernetes. [`require_authentication`] then rejects anonymous requests with
//! 401, except for the public health and version endpoints that kube-apiserver also serves to
//! anonymous users. In-process callers (controllers calling the router as a tower service)
//! insert the extension themselves. Bearer tokens will plug in here.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rustls::pki_types::CertificateDer;

use crate::error::StatusError;

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

/// Middleware: pass authenticated and public requests, answer the rest with 401.
pub async fn require_authentication(request: Request, next: Next) -> Response {
    let public = PUBLIC_PATHS.contains(&request.uri().path());
    if public || request.extensions().get::<AuthenticatedUser>().is_some() {
        next.run(request).await
    } else {
        StatusError::unauthorized().into_response()
    }
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
}
