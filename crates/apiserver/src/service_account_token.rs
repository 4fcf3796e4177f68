//! Service-account tokens: the JWTs the `serviceaccounts/token` subresource issues (a
//! `TokenRequest`) and that authenticate as `system:serviceaccount:NS:NAME`.
//!
//! [`TokenSigner`] holds the cluster's signing key, an ECDSA P-256 key kept in
//! `DATA_DIR/tls/service-account.key` (PKCS#8 PEM, mode 0600, created on first start and
//! reused afterwards, so tokens survive restarts). Tokens are compact JWS with `alg` ES256 and
//! a `kid` derived from the public key as kube-apiserver derives it (SHA-256 of the PKIX public
//! key, base64url), signed and checked with `ring`; the JWT plumbing is small enough to write
//! here rather than pull in a JOSE crate.
//!
//! [`ServiceAccountTokens`] adds what needs the store: issuing a token for an object that must
//! exist, and authenticating one whose service account (and bound object) must still exist
//! with the same UID — deleting the service account or the pod revokes its tokens, as
//! kube-apiserver's `--service-account-lookup` does.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use navarch_api::{meta, Registry, ResourceDef};
use navarch_store::Store;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::authn::AuthenticatedUser;
use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// The issuer (`iss`) of every token, and the audience a token must name to authenticate
/// against this server (kube-apiserver's default `--service-account-issuer` in most setups).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The signing key's file in the TLS directory.
pub const KEY_FILE: &str = "service-account.key";
/// The group of every service account, and the prefix of the per-namespace group.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The user-name prefix of a service account (`system:serviceaccount:NS:NAME`).
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default leeway, which
/// kube-apiserver uses).
const LEEWAY_SECONDS: i64 = 60;
/// The DER prefix of a P-256 SubjectPublicKeyInfo; the 65-byte uncompressed point follows.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The claims of a service-account token, named as kube-apiserver names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub jti: String,
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The private `kubernetes.io` claim: whom the token is for and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct KubernetesClaims {
    pub namespace: String,
    pub serviceaccount: ObjectRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectRef {
    pub name: String,
    pub uid: String,
}

/// `aud` may be one string or an array (RFC 7519 §4.1.3).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(s) => vec![s],
        Aud::Many(v) => v,
    })
}

/// Why a token was not accepted. Not an error of the server: the request is simply
/// unauthenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a compact JWS, or its parts are not what a service-account token holds.
    Malformed,
    /// Not signed by this cluster's key.
    BadSignature,
    /// Issued by someone else.
    WrongIssuer,
    /// The audiences do not include this server.
    WrongAudience,
    Expired,
    NotYetValid,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    kid: String,
}

/// The signing key and issuer of service-account tokens.
pub struct TokenSigner {
    key: EcdsaKeyPair,
    key_id: String,
    issuer: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("issuer", &self.issuer)
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// A signer with a fresh random key (tests; servers use [`TokenSigner::load_or_generate`]).
    pub fn generate(issuer: impl Into<String>) -> Result<Self> {
        Self::from_pkcs8(&generate_pkcs8()?, issuer)
    }

    /// A signer over a PKCS#8 P-256 private key.
    pub fn from_pkcs8(pkcs8: &[u8], issuer: impl Into<String>) -> Result<Self> {
        let rng = SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
                .map_err(|e| {
                    Error::InvalidPki(format!(
                        "the service-account key is not a P-256 PKCS#8 key: {e}"
                    ))
                })?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key.public_key().as_ref());
        let key_id = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, &spki));
        Ok(TokenSigner {
            key,
            key_id,
            issuer: issuer.into(),
            rng,
        })
    }

    /// Read the key at `path`, or create it (mode 0600) on first start.
    pub fn load_or_generate(path: &Path, issuer: impl Into<String>) -> Result<Self> {
        let file_error = |what, source| Error::File {
            what,
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read(path) {
            Ok(pem) => {
                let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).map_err(|e| {
                    file_error(
                        "service-account key is not a PKCS#8 PEM key",
                        std::io::Error::other(e.to_string()),
                    )
                })?;
                Self::from_pkcs8(der.secret_pkcs8_der(), issuer)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let der = generate_pkcs8()?;
                write_atomic(path, pkcs8_pem(&der).as_bytes(), 0o600)
                    .map_err(|e| file_error("cannot write service-account key", e))?;
                tracing::info!(path = %path.display(), "generated service-account signing key");
                Self::from_pkcs8(&der, issuer)
            }
            Err(e) => Err(file_error("cannot read service-account key", e)),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` in every token's header.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The compact JWS of `claims`. Fails only if the system's random generator does.
    pub fn sign(&self, claims: &Claims) -> Result<String, ring::error::Unspecified> {
        let header = Header {
            alg: "ES256".into(),
            kid: self.key_id.clone(),
        };
        let encode = |v: &[u8]| URL_SAFE_NO_PAD.encode(v);
        let mut token = format!(
            "{}.{}",
            encode(&serde_json::to_vec(&header).unwrap_or_default()),
            encode(&serde_json::to_vec(claims).unwrap_or_default())
        );
        let sig = self.key.sign(&self.rng, token.as_bytes())?;
        token.push('.');
        token.push_str(&encode(sig.as_ref()));
        Ok(token)
    }

    /// The claims of `token` if this signer signed it, it names this issuer and this server
    /// among its audiences, and it is valid at `now` (Unix seconds). Whether its service
    /// account still exists is [`ServiceAccountTokens::authenticate`]'s business.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, Rejection> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejection::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| Rejection::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(header)?).map_err(|_| Rejection::Malformed)?;
        if header.alg != "ES256" {
            return Err(Rejection::BadSignature);
        }
        let signed = &token[..token.len() - sig.len() - 1];
        signature::UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            self.key.public_key().as_ref(),
        )
        .verify(signed.as_bytes(), &decode(sig)?)
        .map_err(|_| Rejection::BadSignature)?;
        let claims: Claims =
            serde_json::from_slice(&decode(payload)?).map_err(|_| Rejection::Malformed)?;
        if claims.iss != self.issuer {
            return Err(Rejection::WrongIssuer);
        }
        if !claims.aud.contains(&self.issuer) {
            return Err(Rejection::WrongAudience);
        }
        if now > claims.exp + LEEWAY_SECONDS {
            return Err(Rejection::Expired);
        }
        if now + LEEWAY_SECONDS < claims.nbf || now + LEEWAY_SECONDS < claims.iat {
            return Err(Rejection::NotYetValid);
        }
        let k = &claims.kubernetes;
        let expected_sub = format!("{USER_PREFIX}{}:{}", k.namespace, k.serviceaccount.name);
        if k.namespace.is_empty() || k.serviceaccount.name.is_empty() || claims.sub != expected_sub
        {
            return Err(Rejection::Malformed);
        }
        Ok(claims)
    }

    /// The public key as a JSON Web Key (for `/openid/v1/jwks`).
    pub fn jwk(&self) -> Value {
        let point = self.key.public_key().as_ref();
        // An uncompressed point: 0x04, X (32 bytes), Y (32 bytes).
        json!({
            "use": "sig",
            "kty": "EC",
            "kid": self.key_id,
            "crv": "P-256",
            "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }
}

fn generate_pkcs8() -> Result<Vec<u8>> {
    let rng = SystemRandom::new();
    EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map(|doc| doc.as_ref().to_vec())
        .map_err(|e| Error::InvalidPki(format!("cannot generate a service-account key: {e}")))
}

fn pkcs8_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// The user a service account authenticates as.
pub fn user_of(namespace: &str, name: &str) -> AuthenticatedUser {
    AuthenticatedUser::new(
        format!("{USER_PREFIX}{namespace}:{name}"),
        [
            SERVICE_ACCOUNTS_GROUP.to_string(),
            format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"),
        ],
    )
}

/// The current time in Unix seconds.
pub fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Service-account tokens against the store: the signer plus where service accounts and the
/// objects tokens bind to are stored.
#[derive(Debug)]
pub struct ServiceAccountTokens {
    signer: TokenSigner,
    service_accounts: Arc<ResourceDef>,
    pods: Arc<ResourceDef>,
    secrets: Arc<ResourceDef>,
    nodes: Arc<ResourceDef>,
}

impl ServiceAccountTokens {
    /// `None` if the registry lacks a core kind tokens need.
    pub fn new(signer: TokenSigner, registry: &Registry) -> Option<Self> {
        Some(ServiceAccountTokens {
            signer,
            service_accounts: registry.get("", "v1", "serviceaccounts")?,
            pods: registry.get("", "v1", "pods")?,
            secrets: registry.get("", "v1", "secrets")?,
            nodes: registry.get("", "v1", "nodes")?,
        })
    }

    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// Where a token can be bound: the kind's definition, if it is one of Pod, Secret, Node.
    pub fn bindable(&self, kind: &str) -> Option<&Arc<ResourceDef>> {
        match kind {
            "Pod" => Some(&self.pods),
            "Secret" => Some(&self.secrets),
            "Node" => Some(&self.nodes),
            _ => None,
        }
    }

    /// The service account's user if `token` is one of ours, valid now, and the service
    /// account and any object it is bound to still exist with the UIDs in the token (and are
    /// not being deleted). `None` otherwise, including when the store cannot answer.
    pub async fn authenticate(&self, store: &dyn Store, token: &str) -> Option<AuthenticatedUser> {
        let claims = match self.signer.verify(token, now()) {
            Ok(claims) => claims,
            Err(rejection) => {
                tracing::debug!(?rejection, "service-account token rejected");
                return None;
            }
        };
        let k = &claims.kubernetes;
        let ns = Some(k.namespace.as_str());
        let live = |obj: Option<Value>, want: &ObjectRef| {
            obj.filter(|o| {
                meta::uid(o) == Some(want.uid.as_str()) && meta::deletion_timestamp(o).is_none()
            })
            .is_some()
        };
        let sa = read(
            store,
            &self.service_accounts.key(ns, &k.serviceaccount.name),
        )
        .await;
        if !live(sa, &k.serviceaccount) {
            tracing::debug!("service-account token for a deleted or replaced service account");
            return None;
        }
        for (def, bound) in [
            (&self.pods, &k.pod),
            (&self.secrets, &k.secret),
            (&self.nodes, &k.node),
        ] {
            let Some(bound) = bound else { continue };
            let obj = read(store, &def.key(ns, &bound.name)).await;
            if !live(obj, bound) {
                tracing::debug!(kind = %def.kind, "service-account token for a deleted bound object");
                return None;
            }
        }
        Some(user_of(&k.namespace, &k.serviceaccount.name))
    }
}

/// The stored object at `key`, if any (store failures count as absence: the caller then
/// refuses the token).
async fn read(store: &dyn Store, key: &str) -> Option<Value> {
    match store.get(key, None).await {
        Ok((_, kv)) => kv.and_then(|kv| crate::resources::cache::decode_stored(&kv)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot look up a service-account token's objects");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: i64, ttl: i64) -> Claims {
        Claims {
            iss: DEFAULT_ISSUER.into(),
            sub: "system:serviceaccount:ns1:robot".into(),
            aud: vec![DEFAULT_ISSUER.into()],
            exp: now + ttl,
            iat: now,
            nbf: now,
            jti: "id-1".into(),
            kubernetes: KubernetesClaims {
                namespace: "ns1".into(),
                serviceaccount: ObjectRef {
                    name: "robot".into(),
                    uid: "uid-1".into(),
                },
                ..KubernetesClaims::default()
            },
        }
    }

    fn payload(token: &str) -> Value {
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_to_its_claims() {
        let signer = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let now = 1_700_000_000;
        let token = signer.sign(&claims(now, 3600)).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(signer.verify(&token, now + 10), Ok(claims(now, 3600)));
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": signer.key_id()}));
        let body = payload(&token);
        assert_eq!(body["kubernetes.io"]["serviceaccount"]["name"], "robot");
        assert!(body["kubernetes.io"].get("pod").is_none());
    }

    #[test]
    fn expired_and_future_tokens_are_rejected() {
        let signer = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let now = 1_700_000_000;
        let token = signer.sign(&claims(now, 600)).unwrap();
        assert!(signer.verify(&token, now + 600).is_ok());
        assert_eq!(
            signer.verify(&token, now + 600 + LEEWAY_SECONDS + 1),
            Err(Rejection::Expired)
        );
        assert_eq!(
            signer.verify(&token, now - LEEWAY_SECONDS - 1),
            Err(Rejection::NotYetValid)
        );
    }

    #[test]
    fn another_key_or_a_tampered_token_does_not_verify() {
        let signer = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let other = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let now = 1_700_000_000;
        let token = other.sign(&claims(now, 3600)).unwrap();
        assert_eq!(signer.verify(&token, now), Err(Rejection::BadSignature));

        // The same signature over claims for another service account.
        let token = signer.sign(&claims(now, 3600)).unwrap();
        let mut forged = claims(now, 3600);
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        forged.kubernetes.namespace = "kube-system".into();
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap()),
            parts[2]
        );
        assert_eq!(signer.verify(&forged, now), Err(Rejection::BadSignature));
        // An unsigned token ("alg": "none") is not accepted either.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            parts[1]
        );
        assert_eq!(signer.verify(&unsigned, now), Err(Rejection::BadSignature));
        for garbage in ["", "a.b", "a.b.c", "a.b.c.d", &token[..token.len() - 4]] {
            assert!(signer.verify(garbage, now).is_err(), "{garbage}");
        }
    }

    #[test]
    fn issuer_and_audience_must_name_this_server() {
        let signer = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let now = 1_700_000_000;
        let mut c = claims(now, 3600);
        c.aud = vec!["vault".into()];
        assert_eq!(
            signer.verify(&signer.sign(&c).unwrap(), now),
            Err(Rejection::WrongAudience)
        );
        let mut c = claims(now, 3600);
        c.aud = vec!["vault".into(), DEFAULT_ISSUER.into()];
        assert!(signer.verify(&signer.sign(&c).unwrap(), now).is_ok());
        let mut c = claims(now, 3600);
        c.iss = "https://elsewhere".into();
        assert_eq!(
            signer.verify(&signer.sign(&c).unwrap(), now),
            Err(Rejection::WrongIssuer)
        );
    }

    #[test]
    fn the_key_file_is_private_and_survives_a_restart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let first = TokenSigner::load_or_generate(&path, DEFAULT_ISSUER).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let now = 1_700_000_000;
        let token = first.sign(&claims(now, 3600)).unwrap();
        let again = TokenSigner::load_or_generate(&path, DEFAULT_ISSUER).unwrap();
        assert_eq!(first.key_id(), again.key_id());
        assert!(again.verify(&token, now).is_ok());
    }

    #[test]
    fn the_jwk_carries_the_public_point() {
        let signer = TokenSigner::generate(DEFAULT_ISSUER).unwrap();
        let jwk = signer.jwk();
        assert_eq!(jwk["kid"], signer.key_id());
        for c in ["x", "y"] {
            let bytes = URL_SAFE_NO_PAD.decode(jwk[c].as_str().unwrap()).unwrap();
            assert_eq!(bytes.len(), 32);
        }
    }
}
