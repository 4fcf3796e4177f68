//! Service-account issuer discovery: `/.well-known/openid-configuration` and
//! `/openid/v1/jwks`, so that other parties can verify service-account tokens offline. As in
//! kube-apiserver, both need an authenticated caller (the default
//! `system:service-account-issuer-discovery` binding grants them to authenticated users).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use crate::error::StatusError;
use crate::state::AppState;

/// Where the key set is published, relative to the issuer URL.
pub const JWKS_PATH: &str = "/openid/v1/jwks";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .route(JWKS_PATH, get(jwks))
}

async fn configuration(State(state): State<AppState>) -> Result<Response, StatusError> {
    let tokens = state
        .service_account_tokens
        .ok_or_else(StatusError::path_not_found)?;
    let issuer = tokens.signer().issuer();
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    });
    Ok(respond(&doc, "application/json"))
}

async fn jwks(State(state): State<AppState>) -> Result<Response, StatusError> {
    let tokens = state
        .service_account_tokens
        .ok_or_else(StatusError::path_not_found)?;
    let doc = json!({"keys": [tokens.signer().jwk()]});
    Ok(respond(&doc, "application/jwk-set+json"))
}

fn respond(doc: &serde_json::Value, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, doc.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
