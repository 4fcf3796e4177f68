//! The resource API: every kind of the [`Registry`] served generically under `/api` and
//! `/apis` — discovery, get, list, watch, create, update, patch, delete, deletecollection and
//! the subresources — over the store, with lists and watches served from the [`WatchCache`].
//!
//! Start at [`ResourceApi::routes`]; a request is parsed into a [`request::Target`] and
//! dispatched by verb to `read.rs` (get, list), `watch.rs`, `write.rs` (create, update,
//! patch), `delete.rs` and `subresource.rs` (`token_request.rs` for `serviceaccounts/token`).

pub mod admission;
pub mod bootstrap;
pub mod cache;
pub mod codec;
pub mod delete;
pub mod discovery;
pub mod limits;
pub mod namespace;
pub mod object;
pub mod openapi;
pub mod protobuf;
pub mod read;
pub mod request;
pub mod subresource;
pub mod token_request;
pub mod watch;
pub mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use http::Method;
use navarch_api::Registry;
use navarch_store::Store;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;
use crate::{AuthenticatedUser, StatusError};

pub use cache::WatchCache;
use request::{parse_path, Discovery, Query, Route, Target};

/// Settings of the resource API.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    /// The Service IP range (`--service-cidr`).
    pub service_cidr: ipnet::Ipv4Net,
    /// The NodePort range.
    pub node_ports: std::ops::RangeInclusive<u16>,
    /// Issues `serviceaccounts/token`; without it that subresource answers 503.
    pub service_account_tokens: Option<Arc<crate::ServiceAccountTokens>>,
    /// Calls agents' streaming servers for logs, exec, attach and port-forward; without it
    /// those subresources answer 503.
    pub node_client: Option<crate::proxy::NodeClient>,
}

impl Default for ResourceConfig {
    fn default() -> Self {
        ResourceConfig {
            service_cidr: "10.43.0.0/16".parse().expect("valid cidr"),
            node_ports: 30000..=32767,
            service_account_tokens: None,
            node_client: None,
        }
    }
}

/// Shared state of the resource API.
pub struct ResourceApi {
    pub registry: Arc<Registry>,
    pub store: Arc<dyn Store>,
    pub cache: Arc<WatchCache>,
    pub config: ResourceConfig,
    pub shutdown: CancellationToken,
    pub discovery: discovery::DiscoveryDocs,
    openapi: tokio::sync::OnceCell<Arc<navarch_api::openapi::OpenApi>>,
}

impl ResourceApi {
    /// Load the watch cache and prepare discovery; returns once lists can be served.
    pub async fn start(
        store: Arc<dyn Store>,
        registry: Registry,
        config: ResourceConfig,
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>, navarch_store::Error> {
        let cache = WatchCache::start(store.clone(), &registry, shutdown.clone()).await?;
        let discovery = discovery::DiscoveryDocs::new(&registry);
        let api = Arc::new(ResourceApi {
            registry: Arc::new(registry),
            store,
            cache,
            config,
            shutdown,
            discovery,
            openapi: tokio::sync::OnceCell::new(),
        });
        // Generate the OpenAPI documents now, off the request path.
        let warm = api.clone();
        tokio::spawn(async move {
            let _ = warm.openapi().await;
        });
        Ok(api)
    }

    /// The `/api` and `/apis` routes, to merge into the server's router.
    pub fn routes(self: &Arc<Self>) -> Router<AppState> {
        Router::new()
            .route("/api", any(dispatch))
            .route("/api/{*rest}", any(dispatch))
            .route("/apis", any(dispatch))
            .route("/apis/{*rest}", any(dispatch))
            .layer(Extension(self.clone()))
            .merge(self.openapi_routes())
    }

    async fn handle(self: &Arc<Self>, req: Request) -> Result<Response, StatusError> {
        let (parts, body) = req.into_parts();
        let user = parts.extensions.get::<AuthenticatedUser>().cloned();
        let query = Query::parse(parts.uri.query());
        let path = parts.uri.path().to_string();
        match parse_path(&self.registry, &path)? {
            Route::Discovery(d) => {
                if parts.method != Method::GET {
                    return Err(StatusError::method_not_allowed());
                }
                self.discovery(d, &parts.headers)
            }
            Route::Resource(t) if crate::proxy::is_pod_stream(&t) => {
                crate::proxy::pod_stream(self, t, parts).await
            }
            Route::Resource(t) => {
                let ctx = Ctx {
                    headers: parts.headers,
                    query,
                    user,
                };
                self.resource(parts.method, t, ctx, body).await
            }
        }
    }

    fn discovery(&self, d: Discovery, headers: &http::HeaderMap) -> Result<Response, StatusError> {
        self.discovery.respond(&self.registry, d, headers)
    }

    async fn resource(
        self: &Arc<Self>,
        method: Method,
        t: Target,
        ctx: Ctx,
        body: Body,
    ) -> Result<Response, StatusError> {
        let sub = t.subresource.clone();
        match (method, t.name.is_some(), sub.as_deref()) {
            (Method::GET, false, None) => {
                let opts = request::ListOptions::from_query(&ctx.query)?;
                if opts.watch || t.legacy_watch {
                    self.watch(&t, opts, &ctx).await
                } else {
                    self.list(&t, opts, &ctx).await
                }
            }
            (Method::GET, true, None) if t.legacy_watch => {
                // `/watch/.../NAME`: a watch narrowed to one object.
                let mut opts = request::ListOptions::from_query(&ctx.query)?;
                let name = t.name.clone().unwrap_or_default();
                opts.fields.0.push(navarch_api::selector::FieldReq {
                    field: "metadata.name".into(),
                    value: name,
                    negate: false,
                });
                let mut t = t;
                t.name = None;
                self.watch(&t, opts, &ctx).await
            }
            (Method::GET, true, None) => self.get(&t, &ctx).await,
            (Method::POST, false, None) => self.create(&t, &ctx, body).await,
            (Method::PUT, true, None) => self.update(&t, &ctx, body).await,
            (Method::PATCH, true, None) => self.patch(&t, &ctx, body).await,
            (Method::DELETE, true, None) => self.delete(&t, &ctx, body).await,
            (Method::DELETE, false, None) => self.delete_collection(&t, &ctx, body).await,
            (method, true, Some(_)) => self.subresource(method, &t, &ctx, body).await,
            _ => Err(StatusError::method_not_supported(
                &t.def.gv.group,
                &t.def.plural,
                "this verb",
            )),
        }
    }
}

/// What a handler needs from the request besides the target and body.
pub struct Ctx {
    pub headers: http::HeaderMap,
    pub query: Query,
    pub user: Option<AuthenticatedUser>,
}

impl Ctx {
    /// The user name for managedFields and audit (`kubectl` user agents name the manager).
    pub fn manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        self.headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(|ua| ua.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string()
    }
}

async fn dispatch(Extension(api): Extension<Arc<ResourceApi>>, req: Request) -> Response {
    match api.handle(req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}
