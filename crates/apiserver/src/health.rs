//! `/livez`, `/healthz` and `/readyz`, in kube-apiserver's format.
//!
//! Each endpoint runs a list of named checks and answers `ok` (200, text/plain) when all pass.
//! `?verbose` lists every check (`[+]store ok`); a failure always lists them with the reason
//! and answers 500. `/readyz/<check>` runs one check. Readiness needs the store to answer,
//! the listener to be serving and no shutdown in progress; liveness only needs the process to
//! answer, so a slow store never gets the server restarted.

use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::StatusError;
use crate::state::AppState;

/// How long the store may take to answer a health probe.
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The process answers HTTP.
    Ping,
    /// The store answers a read.
    Store,
    /// The listener accepts connections.
    Serving,
    /// No shutdown is in progress.
    Shutdown,
}

const LIVEZ: &[Check] = &[Check::Ping];
const HEALTHZ: &[Check] = &[Check::Ping, Check::Store];
const READYZ: &[Check] = &[Check::Ping, Check::Store, Check::Serving, Check::Shutdown];

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::Ping => "ping",
            Check::Store => "store",
            Check::Serving => "serving",
            Check::Shutdown => "shutdown",
        }
    }

    async fn run(self, state: &AppState) -> Result<(), String> {
        match self {
            Check::Ping => Ok(()),
            Check::Store => {
                match tokio::time::timeout(STORE_CHECK_TIMEOUT, state.store.current_revision())
                    .await
                {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err(format!(
                        "store did not answer within {}s",
                        STORE_CHECK_TIMEOUT.as_secs()
                    )),
                }
            }
            Check::Serving => {
                if state.readiness.is_serving() {
                    Ok(())
                } else {
                    Err("the listener is not serving yet".to_string())
                }
            }
            Check::Shutdown => {
                if state.shutdown.is_cancelled() {
                    Err("the server is shutting down".to_string())
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// The health routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/livez", get(livez))
        .route("/livez/{check}", get(livez_one))
        .route("/healthz", get(healthz))
        .route("/healthz/{check}", get(healthz_one))
        .route("/readyz", get(readyz))
        .route("/readyz/{check}", get(readyz_one))
}

async fn livez(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    report("livez", LIVEZ, &state, query.as_deref()).await
}

async fn healthz(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    report("healthz", HEALTHZ, &state, query.as_deref()).await
}

async fn readyz(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    report("readyz", READYZ, &state, query.as_deref()).await
}

async fn livez_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    report_one(LIVEZ, &state, &name).await
}

async fn healthz_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    report_one(HEALTHZ, &state, &name).await
}

async fn readyz_one(State(state): State<AppState>, Path(name): Path<String>) -> Response {
    report_one(READYZ, &state, &name).await
}

fn is_verbose(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair.split('=').next() == Some("verbose"))
    })
}

async fn report(
    endpoint: &str,
    checks: &[Check],
    state: &AppState,
    query: Option<&str>,
) -> Response {
    let mut lines = String::new();
    let mut failed = false;
    for check in checks {
        match check.run(state).await {
            Ok(()) => lines.push_str(&format!("[+]{} ok\n", check.name())),
            Err(why) => {
                failed = true;
                lines.push_str(&format!("[-]{} failed: {why}\n", check.name()));
            }
        }
    }
    if failed {
        lines.push_str(&format!("{endpoint} check failed\n"));
        text(StatusCode::INTERNAL_SERVER_ERROR, lines)
    } else if is_verbose(query) {
        lines.push_str(&format!("{endpoint} check passed\n"));
        text(StatusCode::OK, lines)
    } else {
        text(StatusCode::OK, "ok".to_string())
    }
}

async fn report_one(checks: &[Check], state: &AppState, name: &str) -> Response {
    let Some(check) = checks.iter().find(|c| c.name() == name) else {
        return StatusError::path_not_found().into_response();
    };
    match check.run(state).await {
        Ok(()) => text(StatusCode::OK, "ok".to_string()),
        Err(why) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {why}\n"),
        ),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::AuthenticatedUser;
    use crate::testing::{body_text, get, request, state_with, FakeStore};
    use http::Method;

    #[tokio::test]
    async fn readyz_fails_until_serving() {
        let state = state_with(FakeStore::healthy());
        let (code, body) = body_text(get(&state, "/readyz").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("[-]serving failed"), "{body}");
        assert!(body.ends_with("readyz check failed\n"), "{body}");

        state.readiness.set_serving(true);
        let (code, body) = body_text(get(&state, "/readyz").await).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn readyz_fails_when_the_store_does_not_answer() {
        let state = state_with(FakeStore::broken());
        state.readiness.set_serving(true);
        let (code, body) = body_text(get(&state, "/readyz").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("[-]store failed: store unavailable"),
            "{body}"
        );
        let (code, _) = body_text(get(&state, "/livez").await).await;
        assert_eq!(
            code,
            StatusCode::OK,
            "liveness does not depend on the store"
        );
    }

    #[tokio::test]
    async fn readyz_fails_during_shutdown() {
        let state = state_with(FakeStore::healthy());
        state.readiness.set_serving(true);
        state.shutdown.cancel();
        let (code, body) = body_text(get(&state, "/readyz").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("[-]shutdown failed"), "{body}");
    }

    #[tokio::test]
    async fn verbose_lists_every_check() {
        let state = state_with(FakeStore::healthy());
        state.readiness.set_serving(true);
        let (code, body) = body_text(get(&state, "/readyz?verbose").await).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(
            body,
            "[+]ping ok\n[+]store ok\n[+]serving ok\n[+]shutdown ok\nreadyz check passed\n"
        );
    }

    #[tokio::test]
    async fn single_checks_have_their_own_paths() {
        let state = state_with(FakeStore::broken());
        let admin = || {
            Some(AuthenticatedUser::new(
                "admin",
                ["system:masters".to_string()],
            ))
        };
        let one = |path: &'static str| request(&state, Method::GET, path, admin());
        let (code, body) = body_text(one("/healthz/ping").await).await;
        assert_eq!((code, body.as_str()), (StatusCode::OK, "ok"));
        let (code, body) = body_text(one("/healthz/store").await).await;
        assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.starts_with("internal server error: store unavailable"),
            "{body}"
        );
        let (code, _) = body_text(one("/readyz/nonsense").await).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = body_text(get(&state, "/readyz/store").await).await;
        assert_eq!(
            code,
            StatusCode::UNAUTHORIZED,
            "single checks are not public"
        );
    }
}
