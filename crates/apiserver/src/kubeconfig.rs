//! The admin kubeconfig: one cluster, one user with an embedded client certificate, one
//! current context — everything `kubectl --kubeconfig FILE` needs, in one file.

use std::net::IpAddr;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;
use crate::pki::CertAndKey;

/// The cluster and context name in generated kubeconfigs.
pub const CLUSTER_NAME: &str = "navarch";
/// The user name in the admin kubeconfig.
const ADMIN_USER_ENTRY: &str = "navarch-admin";

/// The URL a local client reaches the server at: loopback when the server listens on every
/// address, the bind address itself otherwise.
pub fn local_server_url(bind: IpAddr, port: u16) -> String {
    if bind.is_unspecified() {
        format!("https://127.0.0.1:{port}")
    } else {
        match bind {
            IpAddr::V4(ip) => format!("https://{ip}:{port}"),
            IpAddr::V6(ip) => format!("https://[{ip}]:{port}"),
        }
    }
}

/// A kubeconfig for `server` trusting `ca_pem` and authenticating with `client`.
pub fn render(server: &str, ca_pem: &str, client: &CertAndKey) -> String {
    // Only URLs and base64 are interpolated, neither of which needs YAML quoting.
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {CLUSTER_NAME}
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {ADMIN_USER_ENTRY}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: {CLUSTER_NAME}
  context:
    cluster: {CLUSTER_NAME}
    user: {ADMIN_USER_ENTRY}
current-context: {CLUSTER_NAME}
preferences: {{}}
",
        ca = STANDARD.encode(ca_pem),
        cert = STANDARD.encode(&client.cert_pem),
        key = STANDARD.encode(&client.key_pem),
    )
}

/// Write a kubeconfig atomically with mode 0600 (it holds a private key).
pub fn write(path: &Path, contents: &str) -> Result<()> {
    write_atomic(path, contents.as_bytes(), 0o600).map_err(|source| Error::File {
        what: "cannot write kubeconfig",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn server_url_uses_loopback_for_wildcard_binds() {
        assert_eq!(
            local_server_url("0.0.0.0".parse().unwrap(), 6443),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            local_server_url("::".parse().unwrap(), 6443),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            local_server_url("10.0.0.5".parse().unwrap(), 1),
            "https://10.0.0.5:1"
        );
        assert_eq!(
            local_server_url("::1".parse().unwrap(), 2),
            "https://[::1]:2"
        );
    }

    #[test]
    fn kubeconfig_embeds_credentials_and_is_private() {
        let client = CertAndKey {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render("https://127.0.0.1:6443", "CA", &client);
        assert!(text.contains("server: https://127.0.0.1:6443\n"));
        assert!(text.contains(&format!(
            "certificate-authority-data: {}\n",
            STANDARD.encode("CA")
        )));
        assert!(text.contains(&format!("client-key-data: {}\n", STANDARD.encode("KEY"))));
        assert!(text.contains("current-context: navarch\n"));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig.yaml");
        write(&path, &text).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
