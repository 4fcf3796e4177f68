//! `/version`: which Kubernetes version this server implements.
//!
//! Clients decide behaviour from it: kubectl warns about version skew, and the gcloud
//! `kubectl` dispatcher runs `kubectl.1.<minor>`. The shape is kube-apiserver 1.33's
//! (`version.Info`, including the emulation and compatibility fields). `gitVersion` is
//! semver with build metadata naming Navarch, as k3s does (`v1.33.1+k3s1`).

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::state::AppState;

/// The Kubernetes API version Navarch implements.
pub const KUBERNETES_MAJOR: &str = "1";
pub const KUBERNETES_MINOR: &str = "33";
/// The Kubernetes release whose API Navarch follows, as a semver.
const KUBERNETES_PATCH_VERSION: &str = "1.33.1";

/// The `/version` document (`k8s.io/apimachinery/pkg/version.Info`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    pub major: String,
    pub minor: String,
    pub emulation_major: String,
    pub emulation_minor: String,
    pub min_compatibility_major: String,
    pub min_compatibility_minor: String,
    pub git_version: String,
    pub git_commit: String,
    pub git_tree_state: String,
    pub build_date: String,
    pub go_version: String,
    pub compiler: String,
    pub platform: String,
}

impl VersionInfo {
    /// This build's version. `NAVARCH_GIT_COMMIT` and `NAVARCH_BUILD_DATE`, if set at compile
    /// time, fill in the commit and build date.
    pub fn current() -> Self {
        let minor: u32 = KUBERNETES_MINOR.parse().unwrap_or(0);
        VersionInfo {
            major: KUBERNETES_MAJOR.to_string(),
            minor: KUBERNETES_MINOR.to_string(),
            emulation_major: KUBERNETES_MAJOR.to_string(),
            emulation_minor: KUBERNETES_MINOR.to_string(),
            min_compatibility_major: KUBERNETES_MAJOR.to_string(),
            min_compatibility_minor: minor.saturating_sub(1).to_string(),
            git_version: format!(
                "v{KUBERNETES_PATCH_VERSION}+navarch-{}",
                env!("CARGO_PKG_VERSION")
            ),
            git_commit: option_env!("NAVARCH_GIT_COMMIT").unwrap_or("").to_string(),
            git_tree_state: if option_env!("NAVARCH_GIT_COMMIT").is_some() {
                "clean".to_string()
            } else {
                String::new()
            },
            build_date: option_env!("NAVARCH_BUILD_DATE")
                .unwrap_or("1970-01-01T00:00:00Z")
                .to_string(),
            go_version: String::new(),
            compiler: "rustc".to_string(),
            platform: format!("{}/{}", std::env::consts::OS, go_arch()),
        }
    }
}

/// Go's names for the architectures, which clients expect in `platform`.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/version", get(|| async { Json(VersionInfo::current()) }))
        .route("/version/", get(|| async { Json(VersionInfo::current()) }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body_text, get, state_with, FakeStore};
    use http::StatusCode;

    #[test]
    fn git_version_is_a_semver_of_the_implemented_release() {
        let v = VersionInfo::current();
        assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "33"));
        assert!(
            v.git_version.starts_with("v1.33.1+navarch-"),
            "{}",
            v.git_version
        );
        assert!(v
            .git_version
            .trim_start_matches('v')
            .split('+')
            .next()
            .unwrap()
            .split('.')
            .all(|n| n.parse::<u32>().is_ok()));
        assert_eq!(v.platform, format!("linux/{}", go_arch()));
    }

    #[tokio::test]
    async fn version_is_public_json() {
        let state = state_with(FakeStore::healthy());
        let response = get(&state, "/version").await;
        assert_eq!(
            response.headers().get(http::header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let (code, body) = body_text(response).await;
        assert_eq!(code, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["minor"], "33");
        assert_eq!(json["emulationMinor"], "33");
        assert_eq!(json["minCompatibilityMinor"], "32");
    }
}
