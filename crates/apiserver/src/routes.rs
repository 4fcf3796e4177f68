//! The HTTP routes of the API server, assembled into one `axum::Router`.
//!
//! Each concern contributes a `routes() -> Router<AppState>` (see [`crate::health`],
//! [`crate::version`]); [`router`] merges them and wraps them in the cross-cutting layers:
//! a request span (outermost), then authentication. Add new route groups to [`router`];
//! unknown paths answer a 404 `Status`, known paths with the wrong method a 405 `Status`.

use axum::middleware;
use axum::Router;

use crate::error::StatusError;
use crate::state::AppState;
use crate::{authn, health, oidc, trace, version};

/// Every route of the API server, ready to be served (see [`crate::serve::serve`]) or called
/// in-process as a tower `Service`.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// [`router`] plus more routes (the resource API), under the same layers.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(extra)
        .merge(version::routes())
        .merge(oidc::routes())
        .fallback(|| async { StatusError::path_not_found() })
        .method_not_allowed_fallback(|| async { StatusError::method_not_allowed() })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authn::require_authentication,
        ))
        .layer(middleware::from_fn(trace::trace_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use crate::authn::AuthenticatedUser;
    use crate::testing::{body_text, get, request, state_with, FakeStore};
    use http::{Method, StatusCode};

    #[tokio::test]
    async fn anonymous_requests_to_private_paths_get_401_status() {
        let state = state_with(FakeStore::healthy());
        let (code, body) = body_text(get(&state, "/api").await).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["reason"], "Unauthorized");
        assert_eq!(json["code"], 401);
    }

    #[tokio::test]
    async fn unknown_paths_get_404_status() {
        let state = state_with(FakeStore::healthy());
        let admin = AuthenticatedUser::new("admin", ["system:masters".to_string()]);
        let response = request(&state, Method::GET, "/no/such/thing", Some(admin)).await;
        let (code, body) = body_text(response).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["kind"], "Status");
        assert_eq!(json["reason"], "NotFound");
        assert_eq!(
            json["message"],
            "the server could not find the requested resource"
        );
    }

    #[tokio::test]
    async fn wrong_method_on_a_known_path_gets_405_status() {
        let state = state_with(FakeStore::healthy());
        let response = request(&state, Method::POST, "/version", None).await;
        let (code, body) = body_text(response).await;
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("\"reason\":\"MethodNotAllowed\""), "{body}");
    }
}
