//! Helpers for this crate's unit tests: a store fake and one-shot requests to the router.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use navarch_store::{Error, KeyValue, RangeOptions, RangeResult, Result, Store, WatchStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::authn::AuthenticatedUser;
use crate::routes::router;
use crate::state::AppState;

/// A store that only answers `current_revision` (or fails everything when broken).
pub struct FakeStore {
    healthy: bool,
}

impl FakeStore {
    pub fn healthy() -> Self {
        FakeStore { healthy: true }
    }

    pub fn broken() -> Self {
        FakeStore { healthy: false }
    }

    fn unsupported<T>() -> Result<T> {
        Err(Error::Unavailable("not supported by the fake".into()))
    }
}

#[async_trait::async_trait]
impl Store for FakeStore {
    async fn get(&self, _: &str, _: Option<i64>) -> Result<(i64, Option<KeyValue>)> {
        Self::unsupported()
    }
    async fn range(&self, _: &str, _: RangeOptions) -> Result<RangeResult> {
        Self::unsupported()
    }
    async fn count(&self, _: &str) -> Result<i64> {
        Self::unsupported()
    }
    async fn create(&self, _: &str, _: Vec<u8>) -> Result<KeyValue> {
        Self::unsupported()
    }
    async fn update(&self, _: &str, _: Vec<u8>, _: i64) -> Result<KeyValue> {
        Self::unsupported()
    }
    async fn delete(&self, _: &str, _: Option<i64>) -> Result<(KeyValue, i64)> {
        Self::unsupported()
    }
    async fn watch(&self, _: &str, _: i64) -> Result<WatchStream> {
        Self::unsupported()
    }
    async fn compact(&self, _: i64) -> Result<()> {
        Self::unsupported()
    }
    async fn current_revision(&self) -> Result<i64> {
        if self.healthy {
            Ok(1)
        } else {
            Err(Error::Unavailable("closed".into()))
        }
    }
    async fn compacted_revision(&self) -> Result<i64> {
        Self::unsupported()
    }
}

pub fn state_with(store: FakeStore) -> AppState {
    AppState::new(Arc::new(store), CancellationToken::new())
}

/// Send one request through the full router, as `user` if given.
pub async fn request(
    state: &AppState,
    method: Method,
    uri: &str,
    user: Option<AuthenticatedUser>,
) -> Response {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    if let Some(user) = user {
        request.extensions_mut().insert(user);
    }
    router(state.clone()).oneshot(request).await.unwrap()
}

/// An anonymous GET.
pub async fn get(state: &AppState, uri: &str) -> Response {
    request(state, Method::GET, uri, None).await
}

pub async fn body_text(response: Response) -> (StatusCode, String) {
    let code = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8(bytes.to_vec()).unwrap())
}
