//! The Kubernetes API server of Navarch: HTTPS, authentication, health and version endpoints,
//! and (as the project grows) discovery and the resource API over [`navarch_store::Store`].
//!
//! Start at [`ApiServer::start`], which loads or creates the cluster's certificates
//! ([`pki`]), listens with TLS ([`serve`]), serves [`router`] and writes the admin
//! kubeconfig ([`kubeconfig`]). To add endpoints, give your module a
//! `routes() -> Router<AppState>` and merge it in [`routes::router`]; handlers take
//! [`AppState`] as state, read the caller from the [`AuthenticatedUser`] extension, and
//! return [`StatusError`] for every failure so that clients get a Kubernetes `Status`.

pub mod authn;
pub mod error;
mod fsutil;
pub mod health;
pub mod kubeconfig;
pub mod node_token;
pub mod oidc;
pub mod pki;
pub mod proxy;
pub mod resources;
pub mod routes;
pub mod serve;
mod server;
pub mod service_account_token;
mod state;
mod trace;
pub mod version;

#[cfg(test)]
mod testing;

pub use authn::AuthenticatedUser;
pub use error::{Error, FieldCause, Result, StatusError};
pub use node_token::JoinToken;
pub use pki::Pki;
pub use routes::router;
pub use server::{ApiServer, Config, NODE_TOKEN_FILE};
pub use service_account_token::{ServiceAccountTokens, TokenSigner};
pub use state::{AppState, Readiness};
