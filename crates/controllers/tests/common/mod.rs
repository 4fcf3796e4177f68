//! An API server in-process with the controllers running against it, for the integration
//! tests.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use navarch_apiserver::{ApiServer, AuthenticatedUser, Config};
use navarch_store::sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

pub struct Cluster {
    pub client: kube::Client,
    pub shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Cluster {
    start_with(navarch_controllers::Config::default()).await
}

/// Like [`start`], with the controllers' settings (e.g. short node grace periods).
pub async fn start_with(config: navarch_controllers::Config) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("state.db"))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let server = ApiServer::start(
        Config {
            data_dir: dir.path().to_path_buf(),
            bind_address: "127.0.0.1".parse().unwrap(),
            secure_port: 0,
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        },
        Arc::new(store),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let identity = AuthenticatedUser::new(
        "system:kube-controller-manager",
        ["system:masters".to_string()],
    );
    let service = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<kube::client::Body>| {
            req.extensions_mut().insert(identity.clone());
            req
        })
        .service(server.router());
    let client = kube::Client::new(service, "default");
    tokio::spawn(navarch_controllers::run_with(
        client.clone(),
        config,
        shutdown.clone(),
    ));
    Cluster {
        client,
        shutdown,
        _dir: dir,
    }
}

/// Poll `check` until it returns `Some`, or fail after 20 s.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
