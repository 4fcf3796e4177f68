//! A `kube::Client` that calls the API server in-process: the server's router used as a tower
//! `Service`, with the caller's identity attached to every request. Controllers, the scheduler
//! and the agent of the all-in-one binary use the same public API as remote clients, without
//! a socket or TLS in between.

use navarch_apiserver::AuthenticatedUser;
use tower::ServiceBuilder;

/// A client that acts as `user` (with `groups`) against `router`.
pub fn client(router: axum::Router, user: &str, groups: &[&str]) -> kube::Client {
    let identity = AuthenticatedUser::new(user, groups.iter().map(|g| g.to_string()));
    let service = ServiceBuilder::new()
        .map_request(move |mut req: http::Request<kube::client::Body>| {
            req.extensions_mut().insert(identity.clone());
            req
        })
        .service(router);
    kube::Client::new(service, "default")
}

/// An API server on a temporary SQLite store, for in-process tests. Keep the directory alive
/// for as long as the server runs; cancel the token to stop it.
#[cfg(test)]
pub(crate) async fn test_server() -> (
    tempfile::TempDir,
    tokio_util::sync::CancellationToken,
    navarch_apiserver::ApiServer,
) {
    use navarch_apiserver::{ApiServer, Config};
    use navarch_store::sqlite::SqliteStore;
    use std::sync::Arc;
    use tokio_util::sync::CancellationToken;

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
    (dir, shutdown, server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use kube::api::{Api, ListParams, PostParams};
    use kube::runtime::watcher;

    #[tokio::test]
    async fn in_process_client_lists_creates_and_watches() {
        let (_dir, shutdown, server) = test_server().await;
        let client = client(server.router(), "system:kube-controller-manager", &[]);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|n| n.metadata.name)
            .collect();
        assert!(names.contains(&"kube-system".to_string()), "{names:?}");

        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some("in-process".into());
        cms.create(&PostParams::default(), &cm).await.unwrap();

        // A watcher through the same in-process path sees the object.
        use futures::StreamExt;
        let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
        let seen = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Some(ev) = events.next().await {
                if let Ok(watcher::Event::InitApply(cm)) | Ok(watcher::Event::Apply(cm)) = ev {
                    if cm.metadata.name.as_deref() == Some("in-process") {
                        return true;
                    }
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        assert!(seen);
        shutdown.cancel();
        server.stopped().await;
    }
}
