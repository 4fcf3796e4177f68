//! `/openapi/v2` and `/openapi/v3[/<group-version>]`, generated from the registry by
//! `navarch_api::openapi`. Generation runs in the background at startup so that it does not
//! delay readiness; the first OpenAPI request waits for it.

use std::sync::Arc;

use axum::extract::{Path, RawQuery};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use navarch_api::openapi::{accepts_protobuf_v2, OpenApi, PROTOBUF_V2_CONTENT_TYPE};

use super::ResourceApi;
use crate::state::AppState;
use crate::StatusError;

fn bytes_response(body: Arc<Vec<u8>>, immutable: bool) -> Response {
    let mut r = (StatusCode::OK, body.as_ref().clone()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let cache = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    r
}

impl ResourceApi {
    /// The OpenAPI documents, generated on first use (started in the background at startup).
    pub async fn openapi(&self) -> Result<Arc<OpenApi>, StatusError> {
        let registry = self.registry.clone();
        self.openapi
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || Arc::new(OpenApi::new(&registry)))
                    .await
                    .map_err(|e| StatusError::internal(format!("openapi generation failed: {e}")))
            })
            .await
            .cloned()
    }

    /// The OpenAPI routes.
    pub fn openapi_routes(self: &Arc<Self>) -> Router<AppState> {
        Router::new()
            .route("/openapi/v2", get(v2))
            .route("/openapi/v3", get(v3_root))
            .route("/openapi/v3/{*path}", get(v3_group_version))
            .layer(Extension(self.clone()))
    }
}

/// JSON, or gnostic protobuf for clients that ask for it (kubectl always does, and 1.27
/// cannot read anything else for `explain` and the validation of `apply`/`create -f`).
async fn v2(
    Extension(api): Extension<Arc<ResourceApi>>,
    headers: HeaderMap,
) -> Result<Response, StatusError> {
    let doc = api.openapi().await?;
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accepts_protobuf_v2(accept) {
        return Ok(bytes_response(doc.v2(), false));
    }
    let mut r = bytes_response(doc.v2_protobuf(), false);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(PROTOBUF_V2_CONTENT_TYPE),
    );
    Ok(r)
}

async fn v3_root(Extension(api): Extension<Arc<ResourceApi>>) -> Result<Response, StatusError> {
    Ok(bytes_response(api.openapi().await?.v3_root_bytes(), false))
}

async fn v3_group_version(
    Extension(api): Extension<Arc<ResourceApi>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, StatusError> {
    let doc = api.openapi().await?;
    let (bytes, hash) = doc
        .v3_group_version(path.trim_matches('/'))
        .ok_or_else(StatusError::path_not_found)?;
    let asked = query
        .as_deref()
        .map(|q| super::request::Query::parse(Some(q)))
        .and_then(|q| q.get("hash").map(str::to_string));
    Ok(bytes_response(
        bytes,
        asked.as_deref() == Some(hash.as_str()),
    ))
}
