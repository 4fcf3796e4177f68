//! The node join token and the bearer tokens node agents derive from it.
//!
//! The server keeps one random secret, the *join token*, in `DATA_DIR/node-token` (mode 0600,
//! created on first start and reused afterwards). Whoever holds it may run nodes:
//!
//! * `navarch agent --token JOIN --node-name NAME` sends `Authorization: Bearer NAME.MAC`
//!   where `MAC` is the lowercase hex HMAC-SHA256 of `NAME` keyed with the join token
//!   ([`JoinToken::node_token`]). The server recomputes the MAC, so one join token yields a
//!   distinct credential per node without the server storing anything per node. The request
//!   is authenticated as `system:node:NAME` in group `system:nodes`, the identity Kubernetes
//!   gives kubelets (and the one a node authorizer scopes to that node's objects).
//! * The join token itself as a bearer token authenticates as [`FLEET_USER`] in group
//!   `system:nodes`: a caller acting for many nodes at once (`navarch simulate`). It grants
//!   nothing a holder could not already get, since the holder can derive every node's token.
//!
//! Anything else in `Authorization: Bearer` is rejected with 401 (see [`crate::authn`]); a
//! request without credentials stays anonymous.

use std::path::Path;

use rand::RngCore;
use ring::hmac;

use crate::authn::AuthenticatedUser;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The group of every node identity, as in Kubernetes.
pub const NODES_GROUP: &str = "system:nodes";
/// The user-name prefix of a node identity, as in Kubernetes.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The identity of a bearer of the join token itself.
pub const FLEET_USER: &str = "navarch:node-fleet";
/// What the join token is compared through (see [`JoinToken::authenticate`]).
const FLEET_LABEL: &[u8] = b"navarch join token";
/// Random bytes in a generated join token (hex-encoded in the file).
const SECRET_BYTES: usize = 32;
/// A join token shorter than this is refused, so that a truncated file is not trusted.
const MIN_SECRET_LEN: usize = 16;

/// The cluster's node join token.
pub struct JoinToken {
    secret: String,
    key: hmac::Key,
    /// HMAC of [`FLEET_LABEL`] keyed with the secret.
    fleet_tag: hmac::Tag,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JoinToken(…)")
    }
}

impl JoinToken {
    /// A join token with the given secret (what `--token` carries).
    pub fn new(secret: impl Into<String>) -> Self {
        let secret = secret.into();
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let fleet_tag = hmac::sign(&key, FLEET_LABEL);
        JoinToken {
            secret,
            key,
            fleet_tag,
        }
    }

    /// Read the token at `path`, or create it with a fresh random secret (mode 0600).
    pub fn load_or_generate(path: &Path) -> Result<Self> {
        let file_error = |what, source| Error::File {
            what,
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let secret = text.trim();
                if secret.len() < MIN_SECRET_LEN || secret.chars().any(char::is_whitespace) {
                    return Err(file_error(
                        "node token is malformed (delete it to generate a new one)",
                        std::io::Error::other(format!(
                            "expected one word of at least {MIN_SECRET_LEN} characters"
                        )),
                    ));
                }
                Ok(Self::new(secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; SECRET_BYTES];
                rand::rng().fill_bytes(&mut bytes);
                let secret = hex(&bytes);
                write_atomic(path, format!("{secret}\n").as_bytes(), 0o600)
                    .map_err(|e| file_error("cannot write node token", e))?;
                Ok(Self::new(secret))
            }
            Err(e) => Err(file_error("cannot read node token", e)),
        }
    }

    /// The secret, as written in the token file.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// The bearer token of node `node_name`: `NAME.MAC`.
    pub fn node_token(&self, node_name: &str) -> String {
        let mac = hmac::sign(&self.key, node_name.as_bytes());
        format!("{node_name}.{}", hex(mac.as_ref()))
    }

    /// The user a bearer token stands for, or `None` if it is not one of ours.
    pub fn authenticate(&self, bearer: &str) -> Option<AuthenticatedUser> {
        // HMAC(bearer, label) equals HMAC(secret, label) only if bearer is the secret;
        // `verify` compares in constant time.
        let bearer_key = hmac::Key::new(hmac::HMAC_SHA256, bearer.as_bytes());
        if hmac::verify(&bearer_key, FLEET_LABEL, self.fleet_tag.as_ref()).is_ok() {
            return Some(AuthenticatedUser::new(
                FLEET_USER,
                [NODES_GROUP.to_string()],
            ));
        }
        let (name, mac_hex) = bearer.rsplit_once('.')?;
        if name.is_empty() {
            return None;
        }
        let mac = unhex(mac_hex)?;
        hmac::verify(&self.key, name.as_bytes(), &mac).ok()?;
        Some(AuthenticatedUser::new(
            format!("{NODE_USER_PREFIX}{name}"),
            [NODES_GROUP.to_string()],
        ))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn node_tokens_authenticate_as_their_node() {
        let join = JoinToken::new("0123456789abcdef0123456789abcdef");
        let token = join.node_token("worker-1.example");
        assert!(token.starts_with("worker-1.example."));
        let user = join.authenticate(&token).unwrap();
        assert_eq!(user.name, "system:node:worker-1.example");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);
    }

    #[test]
    fn the_join_token_itself_is_the_fleet_identity() {
        let join = JoinToken::new("0123456789abcdef0123456789abcdef");
        let user = join.authenticate(join.secret()).unwrap();
        assert_eq!(user.name, FLEET_USER);
        assert!(user.in_group(NODES_GROUP));
    }

    #[test]
    fn forged_and_foreign_tokens_are_rejected() {
        let join = JoinToken::new("0123456789abcdef0123456789abcdef");
        let other = JoinToken::new("fedcba9876543210fedcba9876543210");
        let token = join.node_token("n1");
        // Another cluster's token, a MAC moved to another name, a truncated MAC, garbage.
        assert!(join.authenticate(&other.node_token("n1")).is_none());
        let mac = token.rsplit_once('.').unwrap().1;
        assert!(join.authenticate(&format!("n2.{mac}")).is_none());
        assert!(join.authenticate(&token[..token.len() - 2]).is_none());
        assert!(join.authenticate(&format!(".{mac}")).is_none());
        assert!(join.authenticate("n1.zz").is_none());
        assert!(join.authenticate("").is_none());
        assert!(join.authenticate(other.secret()).is_none());
        assert!(join.authenticate(&join.secret()[1..]).is_none());
    }

    #[test]
    fn the_token_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        let first = JoinToken::load_or_generate(&path).unwrap();
        assert_eq!(first.secret().len(), 2 * SECRET_BYTES);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = JoinToken::load_or_generate(&path).unwrap();
        assert_eq!(first.secret(), again.secret());
        assert_eq!(first.node_token("n"), again.node_token("n"));
    }

    #[test]
    fn a_malformed_token_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node-token");
        std::fs::write(&path, "short\n").unwrap();
        let err = JoinToken::load_or_generate(&path).unwrap_err();
        assert!(err.to_string().contains("node token is malformed"), "{err}");
    }
}
