//! The cluster's certificates: a CA, the API server's serving certificate and the admin's
//! client certificate, kept in `DATA_DIR/tls/`.
//!
//! [`Pki::load_or_generate`] creates them on first start and reuses them afterwards: the CA
//! is never replaced once it exists (every kubeconfig and agent trusts it), while the leaf
//! certificates are re-issued by that CA when they are missing, close to expiry, signed by a
//! different CA, or — for the serving certificate — lack a name the server must answer to
//! (the hostname or advertise address changed). Keys are ECDSA P-256 and stored mode 0600.
//!
//! Files: `ca.crt`, `ca.key`, `apiserver.crt`, `apiserver.key`, `admin.crt`, `admin.key`.

use std::collections::BTreeSet;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::{Error, Result};
use crate::fsutil::{ensure_private_dir, write_atomic};

/// How long the CA is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long a leaf certificate is valid.
const LEAF_VALIDITY: Duration = Duration::days(365);
/// Leaf certificates with less than this left are re-issued at startup.
const RENEW_BEFORE: Duration = Duration::days(90);
/// Backdating tolerates clocks that are slightly behind ours.
const BACKDATE: Duration = Duration::hours(1);

/// The common name of the admin client certificate.
pub const ADMIN_USER: &str = "admin";
/// The group that bypasses authorization, as in Kubernetes.
pub const MASTERS_GROUP: &str = "system:masters";

/// A PEM certificate and its PEM private key.
#[derive(Clone)]
pub struct CertAndKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The cluster CA and the certificates it issued to the API server and the admin.
pub struct Pki {
    ca_cert_pem: String,
    ca_key: KeyPair,
    serving: CertAndKey,
    admin: CertAndKey,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .finish_non_exhaustive()
    }
}

/// Paths of the files under the TLS directory.
struct Files {
    ca_cert: PathBuf,
    ca_key: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    admin_cert: PathBuf,
    admin_key: PathBuf,
}

impl Files {
    fn new(dir: &Path) -> Files {
        Files {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
        }
    }
}

impl Pki {
    /// Load the certificates under `dir`, creating or re-issuing what is missing or stale.
    /// `serving_names` are the DNS names and IP addresses the serving certificate must cover
    /// (see [`serving_names`]).
    pub fn load_or_generate(dir: &Path, serving_names: &[String]) -> Result<Pki> {
        ensure_private_dir(dir, 0o700).map_err(|source| Error::File {
            what: "cannot create tls directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let files = Files::new(dir);
        let now = OffsetDateTime::now_utc();

        let (ca_cert_pem, ca_key) = match read_pair(&files.ca_cert, &files.ca_key)? {
            Some((cert, key)) => {
                let ca_key = KeyPair::from_pem(&key).map_err(|source| Error::Certificate {
                    what: "ca.key is unreadable",
                    source,
                })?;
                (cert, ca_key)
            }
            None => {
                let (cert, key) = generate_ca(now)?;
                write_key_and_cert(&files.ca_cert, &files.ca_key, &cert, &key.serialize_pem())?;
                tracing::info!(path = %files.ca_cert.display(), "generated cluster CA");
                (cert, key)
            }
        };
        let ca_der = pem_to_der(&ca_cert_pem, &files.ca_cert)?;
        let ca = parse_cert(&ca_der, &files.ca_cert)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key).map_err(|source| {
            Error::Certificate {
                what: "ca.crt is not a usable CA",
                source,
            }
        })?;

        let wanted: BTreeSet<String> = serving_names.iter().cloned().collect();
        let serving = reuse_or_issue(
            &files.serving_cert,
            &files.serving_key,
            &ca,
            |leaf| wanted.is_subset(&names_of(leaf)),
            || issue_serving(&issuer, serving_names, now),
        )?;
        let admin = reuse_or_issue(
            &files.admin_cert,
            &files.admin_key,
            &ca,
            |_| true,
            || issue_client(&issuer, ADMIN_USER, &[MASTERS_GROUP], now),
        )?;

        Ok(Pki {
            ca_cert_pem,
            ca_key,
            serving,
            admin,
        })
    }

    /// The cluster CA certificate (PEM): what clients trust and what client certificates are
    /// verified against.
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The API server's serving certificate and key.
    pub fn serving(&self) -> &CertAndKey {
        &self.serving
    }

    /// The admin client certificate (CN `admin`, O `system:masters`) and key.
    pub fn admin(&self) -> &CertAndKey {
        &self.admin
    }

    /// Issue a new client certificate signed by the cluster CA (for agents and components;
    /// nothing is written to disk). `organizations` become the user's groups.
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<CertAndKey> {
        let issuer =
            Issuer::from_ca_cert_pem(&self.ca_cert_pem, &self.ca_key).map_err(|source| {
                Error::Certificate {
                    what: "ca.crt is not a usable CA",
                    source,
                }
            })?;
        issue_client(
            &issuer,
            common_name,
            organizations,
            OffsetDateTime::now_utc(),
        )
    }
}

/// The names the serving certificate covers: loopback, the hostname, the bind address if it
/// is specific (else the address of the default route, which remote agents will use), the
/// in-cluster `kubernetes` service names and the service's ClusterIP (the first address of
/// the service CIDR).
pub fn serving_names(bind: IpAddr, service_cidr: &ipnet::IpNet) -> Vec<String> {
    let mut names: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
    ];
    if let Some(host) = hostname() {
        names.push(host);
    }
    if !bind.is_unspecified() {
        names.push(bind.to_string());
    } else if let Some(ip) = default_route_address() {
        names.push(ip.to_string());
    }
    if let Some(ip) = first_host(service_cidr) {
        names.push(ip.to_string());
    }
    let mut seen = BTreeSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// The first usable address of a CIDR (10.43.0.1 for 10.43.0.0/16).
pub fn first_host(cidr: &ipnet::IpNet) -> Option<IpAddr> {
    cidr.hosts().next()
}

/// The machine's hostname, if it is a valid DNS name.
fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    valid.then_some(name)
}

/// The source address the kernel would use for the default route. Connecting a UDP socket
/// sends nothing; it only picks a route.
pub(crate) fn default_route_address() -> Option<IpAddr> {
    let socket = UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

fn generate_ca(now: OffsetDateTime) -> Result<(String, KeyPair)> {
    let key = new_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("navarch-ca@{}", now.unix_timestamp()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_VALIDITY;
    let cert = params
        .self_signed(&key)
        .map_err(|source| Error::Certificate {
            what: "cannot generate the CA",
            source,
        })?;
    Ok((cert.pem(), key))
}

fn issue_serving(
    issuer: &Issuer<'_, &KeyPair>,
    names: &[String],
    now: OffsetDateTime,
) -> Result<CertAndKey> {
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(|source| Error::Certificate {
            what: "invalid serving certificate name",
            source,
        })?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    sign_leaf(issuer, params, now, "cannot issue the serving certificate")
}

fn issue_client(
    issuer: &Issuer<'_, &KeyPair>,
    common_name: &str,
    organizations: &[&str],
    now: OffsetDateTime,
) -> Result<CertAndKey> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for org in organizations {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *org);
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign_leaf(issuer, params, now, "cannot issue a client certificate")
}

fn sign_leaf(
    issuer: &Issuer<'_, &KeyPair>,
    mut params: CertificateParams,
    now: OffsetDateTime,
    what: &'static str,
) -> Result<CertAndKey> {
    let key = new_key()?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + LEAF_VALIDITY;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| Error::Certificate { what, source })?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn new_key() -> Result<KeyPair> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| Error::Certificate {
        what: "cannot generate a key",
        source,
    })
}

/// Reuse the stored leaf at `cert_path` if it parses, was signed by `ca`, is not about to
/// expire and passes `fits`; otherwise issue a new one and store it.
fn reuse_or_issue(
    cert_path: &Path,
    key_path: &Path,
    ca: &X509Certificate<'_>,
    fits: impl Fn(&X509Certificate<'_>) -> bool,
    issue: impl FnOnce() -> Result<CertAndKey>,
) -> Result<CertAndKey> {
    if let Some((cert_pem, key_pem)) = read_pair(cert_path, key_path)? {
        let usable = pem_to_der(&cert_pem, cert_path)
            .and_then(|der| {
                let leaf = parse_cert(&der, cert_path)?;
                let signed_by_ca = leaf.verify_signature(Some(ca.public_key())).is_ok();
                let fresh = leaf
                    .validity()
                    .time_to_expiration()
                    .is_some_and(|left| left > RENEW_BEFORE);
                Ok(signed_by_ca && fresh && fits(&leaf))
            })
            .unwrap_or(false)
            && KeyPair::from_pem(&key_pem).is_ok();
        if usable {
            return Ok(CertAndKey { cert_pem, key_pem });
        }
    }
    let issued = issue()?;
    write_key_and_cert(cert_path, key_path, &issued.cert_pem, &issued.key_pem)?;
    tracing::info!(path = %cert_path.display(), "issued certificate");
    Ok(issued)
}

/// Every DNS name and IP address in a certificate's subjectAltName.
fn names_of(cert: &X509Certificate<'_>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => {
                    names.insert(dns.to_string());
                }
                GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    names
}

/// Both files, or neither. One without the other is a damaged directory that must not be
/// silently replaced (for the CA that would orphan every issued credential).
fn read_pair(cert_path: &Path, key_path: &Path) -> Result<Option<(String, String)>> {
    let cert = read_optional(cert_path)?;
    let key = read_optional(key_path)?;
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::InvalidPki(format!(
            "{} exists but {} is missing",
            cert_path.display(),
            key_path.display()
        ))),
        (None, Some(_)) => Err(Error::InvalidPki(format!(
            "{} exists but {} is missing",
            key_path.display(),
            cert_path.display()
        ))),
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::File {
            what: "cannot read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Write the key first so that a crash never leaves a certificate without its key.
fn write_key_and_cert(cert_path: &Path, key_path: &Path, cert: &str, key: &str) -> Result<()> {
    write_atomic(key_path, key.as_bytes(), 0o600).map_err(|source| Error::File {
        what: "cannot write",
        path: key_path.to_path_buf(),
        source,
    })?;
    write_atomic(cert_path, cert.as_bytes(), 0o644).map_err(|source| Error::File {
        what: "cannot write",
        path: cert_path.to_path_buf(),
        source,
    })
}

fn pem_to_der(pem: &str, path: &Path) -> Result<Vec<u8>> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| {
        Error::InvalidPki(format!("{} is not a PEM certificate: {e}", path.display()))
    })?;
    Ok(parsed.contents)
}

fn parse_cert<'a>(der: &'a [u8], path: &Path) -> Result<X509Certificate<'a>> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| Error::InvalidPki(format!("{} is not a certificate: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names() -> Vec<String> {
        serving_names("0.0.0.0".parse().unwrap(), &"10.43.0.0/16".parse().unwrap())
    }

    fn leaf_names(pem: &str) -> BTreeSet<String> {
        let der = pem_to_der(pem, Path::new("x")).unwrap();
        names_of(&parse_cert(&der, Path::new("x")).unwrap())
    }

    #[test]
    fn first_start_generates_everything_with_private_keys() {
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let pki = Pki::load_or_generate(&tls, &names()).unwrap();
        assert!(pki.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        for key in ["ca.key", "apiserver.key", "admin.key"] {
            let mode = std::fs::metadata(tls.join(key))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{key}");
        }
        let dir_mode = std::fs::metadata(&tls).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn restart_reuses_ca_and_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_generate(dir.path(), &names()).unwrap();
        let second = Pki::load_or_generate(dir.path(), &names()).unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.serving().cert_pem, second.serving().cert_pem);
        assert_eq!(first.admin().cert_pem, second.admin().cert_pem);
        assert_eq!(first.admin().key_pem, second.admin().key_pem);
    }

    #[test]
    fn serving_certificate_covers_cluster_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_generate(dir.path(), &names()).unwrap();
        let got = leaf_names(&pki.serving().cert_pem);
        for want in [
            "localhost",
            "127.0.0.1",
            "::1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.43.0.1",
        ] {
            assert!(got.contains(want), "missing {want} in {got:?}");
        }
    }

    #[test]
    fn a_new_name_reissues_serving_cert_but_keeps_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = Pki::load_or_generate(dir.path(), &names()).unwrap();
        let mut more = names();
        more.push("192.0.2.7".to_string());
        let second = Pki::load_or_generate(dir.path(), &more).unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_ne!(first.serving().cert_pem, second.serving().cert_pem);
        assert!(leaf_names(&second.serving().cert_pem).contains("192.0.2.7"));
        assert_eq!(first.admin().cert_pem, second.admin().cert_pem);
    }

    #[test]
    fn leaves_signed_by_another_ca_are_reissued() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let ours = Pki::load_or_generate(dir.path(), &names()).unwrap();
        let theirs = Pki::load_or_generate(other.path(), &names()).unwrap();
        std::fs::copy(other.path().join("admin.crt"), dir.path().join("admin.crt")).unwrap();
        std::fs::copy(other.path().join("admin.key"), dir.path().join("admin.key")).unwrap();
        let again = Pki::load_or_generate(dir.path(), &names()).unwrap();
        assert_eq!(again.ca_pem(), ours.ca_pem());
        assert_ne!(again.admin().cert_pem, theirs.admin().cert_pem);
    }

    #[test]
    fn a_ca_certificate_without_its_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        Pki::load_or_generate(dir.path(), &names()).unwrap();
        std::fs::remove_file(dir.path().join("ca.key")).unwrap();
        let err = Pki::load_or_generate(dir.path(), &names()).unwrap_err();
        assert!(err.to_string().contains("ca.key is missing"), "{err}");
    }

    #[test]
    fn admin_certificate_names_the_admin_in_system_masters() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::load_or_generate(dir.path(), &names()).unwrap();
        let der = pem_to_der(&pki.admin().cert_pem, Path::new("x")).unwrap();
        let cert = parse_cert(&der, Path::new("x")).unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|a| a.as_str().unwrap())
            .collect();
        let orgs: Vec<_> = cert
            .subject()
            .iter_organization()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["admin"]);
        assert_eq!(orgs, ["system:masters"]);
    }

    #[test]
    fn first_host_of_service_cidr() {
        let cidr: ipnet::IpNet = "10.43.0.0/16".parse().unwrap();
        assert_eq!(first_host(&cidr), Some("10.43.0.1".parse().unwrap()));
    }
}
