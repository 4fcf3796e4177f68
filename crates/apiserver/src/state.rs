//! What every handler shares: the store, the readiness signals and the shutdown token.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use navarch_store::Store;

use crate::node_token::JoinToken;
use crate::service_account_token::ServiceAccountTokens;
use tokio_util::sync::CancellationToken;

/// Shared state of the API server, cheap to clone (everything is behind an `Arc`). Handlers
/// take it with `axum::extract::State<AppState>`; add fields here as the server grows.
#[derive(Clone)]
pub struct AppState {
    /// The key-value store holding every object.
    pub store: Arc<dyn Store>,
    /// Whether the server accepts connections; `/readyz` reports it.
    pub readiness: Arc<Readiness>,
    /// Cancelled when the server shuts down. Long-running handlers (watches, log follows)
    /// end their streams when it fires so that connections can drain.
    pub shutdown: CancellationToken,
    /// The node join token; bearer tokens derived from it authenticate nodes. `None` accepts
    /// no bearer tokens.
    pub join_token: Option<Arc<JoinToken>>,
    /// Service-account tokens (see [`crate::service_account_token`]); `None` accepts none.
    pub service_account_tokens: Option<Arc<ServiceAccountTokens>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, shutdown: CancellationToken) -> Self {
        AppState {
            store,
            readiness: Arc::new(Readiness::default()),
            shutdown,
            join_token: None,
            service_account_tokens: None,
        }
    }

    /// Accept bearer tokens derived from `join_token` (see [`crate::node_token`]).
    pub fn with_join_token(mut self, join_token: Arc<JoinToken>) -> Self {
        self.join_token = Some(join_token);
        self
    }

    /// Accept service-account tokens signed by `tokens`.
    pub fn with_service_account_tokens(mut self, tokens: Arc<ServiceAccountTokens>) -> Self {
        self.service_account_tokens = Some(tokens);
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("readiness", &self.readiness)
            .field("shutting_down", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Readiness signals set by the serving loop.
#[derive(Debug, Default)]
pub struct Readiness {
    serving: AtomicBool,
}

impl Readiness {
    /// Record that the listener is accepting connections (or has stopped).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::Release);
    }

    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }
}
