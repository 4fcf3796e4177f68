//! Starting the API server: certificates, listener, routes, readiness, kubeconfig — in that
//! order, so that the kubeconfig appears only when the server can answer it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use navarch_store::Store;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::node_token::JoinToken;
use crate::pki::{serving_names, Pki};
use crate::resources::{ResourceApi, ResourceConfig};
use crate::routes::router_with;
use crate::service_account_token::{self, ServiceAccountTokens, TokenSigner};
use crate::state::AppState;
use crate::{kubeconfig, serve};

/// The node join token's file under the data directory.
pub const NODE_TOKEN_FILE: &str = "node-token";

/// Where and how the API server listens.
#[derive(Debug, Clone)]
pub struct Config {
    /// Holds `tls/` and `kubeconfig.yaml`.
    pub data_dir: PathBuf,
    pub bind_address: IpAddr,
    /// 0 picks a free port (tests).
    pub secure_port: u16,
    /// Services' ClusterIPs come from here; its first address is the `kubernetes` service.
    pub service_cidr: ipnet::IpNet,
}

/// A running API server. Cancel the shutdown token given to [`ApiServer::start`] to stop it,
/// then await [`ApiServer::stopped`].
#[derive(Debug)]
pub struct ApiServer {
    state: AppState,
    router: axum::Router,
    pki: Arc<Pki>,
    local_addr: SocketAddr,
    kubeconfig_path: PathBuf,
    join_token: Arc<JoinToken>,
    serving: JoinHandle<()>,
}

impl ApiServer {
    /// Check the store, load or create the certificates and the node join token, listen, and
    /// write `DATA_DIR/kubeconfig.yaml`. Returns once the server is ready.
    pub async fn start(
        config: Config,
        store: Arc<dyn Store>,
        shutdown: CancellationToken,
    ) -> Result<ApiServer> {
        store.current_revision().await?;
        // Listen before touching the certificates, so that a busy port fails before anything
        // is written or logged.
        let addr = SocketAddr::new(config.bind_address, config.secure_port);
        let listener = serve::bind(addr).await?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;

        let tls_dir = config.data_dir.join("tls");
        let names = serving_names(config.bind_address, &config.service_cidr);
        let pki = tokio::task::spawn_blocking(move || Pki::load_or_generate(&tls_dir, &names))
            .await
            .map_err(|e| Error::InvalidPki(format!("certificate task failed: {e}")))??;
        let pki = Arc::new(pki);
        let tls = serve::tls_config(&pki)?;

        let service_cidr = match config.service_cidr {
            ipnet::IpNet::V4(net) => net,
            ipnet::IpNet::V6(_) => {
                return Err(Error::InvalidPki(
                    "only IPv4 service ranges are supported".into(),
                ))
            }
        };
        let registry = navarch_api::Registry::builtin();
        let key_path = config
            .data_dir
            .join("tls")
            .join(service_account_token::KEY_FILE);
        let signer =
            TokenSigner::load_or_generate(&key_path, service_account_token::DEFAULT_ISSUER)?;
        let service_account_tokens =
            Arc::new(ServiceAccountTokens::new(signer, &registry).ok_or_else(|| {
                Error::InvalidPki("the registry lacks the kinds service-account tokens need".into())
            })?);
        let resources = ResourceApi::start(
            store.clone(),
            registry,
            ResourceConfig {
                service_cidr,
                service_account_tokens: Some(service_account_tokens.clone()),
                node_client: Some(crate::proxy::NodeClient::new(&pki)?),
                ..ResourceConfig::default()
            },
            shutdown.clone(),
        )
        .await?;
        resources
            .bootstrap(advertise_address(config.bind_address), local_addr.port())
            .await
            .map_err(|e| Error::Bootstrap(e.message().to_string()))?;
        let join_token = Arc::new(JoinToken::load_or_generate(
            &config.data_dir.join(NODE_TOKEN_FILE),
        )?);
        let state = AppState::new(store, shutdown.clone())
            .with_join_token(join_token.clone())
            .with_service_account_tokens(service_account_tokens);
        // The socket is listening, so connections queue from now on; the accept loop marks
        // the server as serving before it takes the first one.
        let router = router_with(state.clone(), resources.routes());
        let serving = tokio::spawn(serve::serve(
            listener,
            tls,
            router.clone(),
            state.readiness.clone(),
            shutdown,
        ));

        let kubeconfig_path = config.data_dir.join("kubeconfig.yaml");
        let contents = kubeconfig::render(
            &kubeconfig::local_server_url(config.bind_address, local_addr.port()),
            pki.ca_pem(),
            pki.admin(),
        );
        kubeconfig::write(&kubeconfig_path, &contents)?;

        Ok(ApiServer {
            state,
            router,
            pki,
            local_addr,
            kubeconfig_path,
            join_token,
            serving,
        })
    }

    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The admin kubeconfig written at startup.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig_path
    }

    /// The cluster's certificates (the CA for agents and service-account tokens).
    pub fn pki(&self) -> &Arc<Pki> {
        &self.pki
    }

    /// The node join token (`DATA_DIR/node-token`).
    pub fn join_token(&self) -> &Arc<JoinToken> {
        &self.join_token
    }

    /// The complete router, for in-process callers (controllers, the scheduler and the agent
    /// of the all-in-one binary call the API through it as a tower `Service`, without a
    /// socket). Such callers insert their [`crate::AuthenticatedUser`] into each request.
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// The state shared by the handlers.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Wait until the server has stopped accepting and drained its connections (after the
    /// shutdown token was cancelled).
    pub async fn stopped(self) {
        if let Err(e) = self.serving.await {
            tracing::error!(error = %e, "serve loop panicked");
        }
    }
}

/// The address the `kubernetes` Service's endpoints advertise: the bind address when it is
/// specific, else the address of the default route, else loopback.
fn advertise_address(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    crate::pki::default_route_address().unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
}
