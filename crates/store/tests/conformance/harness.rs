//! Backends to run the cases against, and helpers the cases share.

use std::any::Any;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use navarch_store::etcd::EtcdStore;
use navarch_store::sqlite::SqliteStore;
use navarch_store::testing::EtcdServer;
use navarch_store::{Event, KeyValue, Store, WatchStream};

/// A whole case, backend start-up included, must finish within this.
const CASE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long to wait for one watch event or one step of progress.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// A store and whatever must outlive it (its directory, its etcd process).
pub struct Backend {
    pub store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

pub async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(dir.path().join("state.db"))
        .await
        .expect("open sqlite store");
    Backend {
        store: Arc::new(store),
        _keep: Box::new(dir),
    }
}

pub async fn etcd() -> Backend {
    let server = tokio::task::spawn_blocking(EtcdServer::start)
        .await
        .expect("etcd start-up task")
        .expect("start etcd");
    let store = EtcdStore::connect(&[server.endpoint()])
        .await
        .expect("connect to etcd");
    Backend {
        store: Arc::new(store),
        _keep: Box::new(server),
    }
}

/// Starts a backend and runs one case against it, under a timeout.
pub async fn run<B, BF, C, CF>(backend: B, case: C)
where
    B: FnOnce() -> BF,
    BF: Future<Output = Backend>,
    C: FnOnce(Arc<dyn Store>) -> CF,
    CF: Future<Output = ()>,
{
    let outcome = tokio::time::timeout(CASE_TIMEOUT, async {
        let backend = backend().await;
        case(backend.store.clone()).await;
        backend
    })
    .await;
    // The store goes before its directory or process.
    match outcome {
        Ok(backend) => drop(backend),
        Err(_) => panic!("case did not finish within {CASE_TIMEOUT:?}"),
    }
}

pub fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

pub async fn create(store: &Arc<dyn Store>, key: &str, value: &str) -> KeyValue {
    store
        .create(key, bytes(value))
        .await
        .unwrap_or_else(|e| panic!("create {key}: {e}"))
}

pub async fn update(store: &Arc<dyn Store>, kv: &KeyValue, value: &str) -> KeyValue {
    store
        .update(&kv.key, bytes(value), kv.mod_revision)
        .await
        .unwrap_or_else(|e| panic!("update {}: {e}", kv.key))
}

pub async fn get(store: &Arc<dyn Store>, key: &str) -> Option<KeyValue> {
    store
        .get(key, None)
        .await
        .unwrap_or_else(|e| panic!("get {key}: {e}"))
        .1
}

pub async fn current(store: &Arc<dyn Store>) -> i64 {
    store.current_revision().await.expect("current revision")
}

pub async fn watch(store: &Arc<dyn Store>, prefix: &str, after: i64) -> WatchStream {
    store
        .watch(prefix, after)
        .await
        .unwrap_or_else(|e| panic!("watch {prefix} after {after}: {e}"))
}

/// The next event, which must arrive within [`STEP_TIMEOUT`].
pub async fn next_event(stream: &mut WatchStream) -> Event {
    match tokio::time::timeout(STEP_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(e))) => panic!("watch failed: {e}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {STEP_TIMEOUT:?}"),
    }
}

/// The next `n` events.
pub async fn next_events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(n);
    for _ in 0..n {
        events.push(next_event(stream).await);
    }
    events
}
