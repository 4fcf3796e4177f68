//! The watch cache (kube-apiserver's cacher): every object of every kind in memory, fed by ONE
//! store watch over `/registry/`, so lists and watches are served without touching the store.
//!
//! One dispatcher task applies store events in revision order to the per-kind caches and then
//! publishes its progress (`revision()`): every event at or below it has been applied
//! everywhere. A consistent read waits until that progress reaches the store's current
//! revision, which works even when the newest writes touched other kinds.
//!
//! The cache is keyed by storage prefix and holds objects in their stored shape: a resource
//! that serves another's storage (`events.k8s.io/v1` Events over `core/v1` ones) shares that
//! resource's cache, and handlers convert with [`navarch_api::ResourceDef::view`] on the way
//! out.
//!
//! Each kind keeps a bounded history of recent events for watchers that start at an older
//! resourceVersion; older starts fall back to a direct store watch (which answers 410 once the
//! revision is compacted).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use navarch_api::{Registry, ResourceDef};
use navarch_store::{EventKind, KeyValue, RangeOptions, Store};
use serde_json::Value;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// How many events each kind keeps for watchers that start in the past.
const HISTORY: usize = 4096;
/// Capacity of each kind's live event channel; a watcher that lags further is closed and
/// resumes from its last resourceVersion.
const CHANNEL: usize = 8192;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "ADDED",
            Change::Modified => "MODIFIED",
            Change::Deleted => "DELETED",
        }
    }
}

/// One change of one object, with the object as JSON (resourceVersion set).
#[derive(Debug, Clone)]
pub struct CacheEvent {
    pub change: Change,
    pub key: String,
    pub revision: i64,
    pub object: Arc<Value>,
    /// The object before the change (for selector transitions).
    pub prev: Option<Arc<Value>>,
    /// `object` serialized as JSON, shared by every watcher that sends it unchanged.
    pub json: std::sync::OnceLock<bytes::Bytes>,
}

/// Turn a stored value into an object in its stored shape: parse it and set
/// `metadata.resourceVersion` (convert with `ResourceDef::to_served` to serve it).
pub fn decode_stored(kv: &KeyValue) -> Option<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).ok()?;
    navarch_api::meta::set(
        &mut obj,
        "resourceVersion",
        Value::String(kv.mod_revision.to_string()),
    );
    Some(obj)
}

struct KindState {
    items: BTreeMap<String, Arc<Value>>,
    /// Revision of the last event applied to this kind.
    revision: i64,
    history: VecDeque<Arc<CacheEvent>>,
    /// Every event of this kind after this revision is in `history`.
    history_start: i64,
}

/// The cache of one kind.
pub struct KindCache {
    state: RwLock<KindState>,
    tx: broadcast::Sender<Arc<CacheEvent>>,
}

/// A consistent view of one kind at one revision.
pub struct Snapshot {
    pub revision: i64,
    pub items: Vec<(String, Arc<Value>)>,
}

/// A live subscription started at a revision: replayed history, then the channel.
pub struct Subscription {
    pub revision: i64,
    /// Current objects when requested (for synthetic ADDED events), at `revision`.
    pub initial: Vec<(String, Arc<Value>)>,
    /// Events after the start revision already in history.
    pub backlog: Vec<Arc<CacheEvent>>,
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
}

impl KindCache {
    fn new() -> Self {
        KindCache {
            state: RwLock::new(KindState {
                items: BTreeMap::new(),
                revision: 0,
                history: VecDeque::new(),
                history_start: 0,
            }),
            tx: broadcast::channel(CHANNEL).0,
        }
    }

    /// Every object whose key starts with `prefix`, at one revision.
    pub fn snapshot(&self, prefix: &str, progress: i64) -> Snapshot {
        let st = self.state.read().expect("cache lock");
        let items = st
            .items
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Snapshot {
            revision: st.revision.max(progress),
            items,
        }
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.state
            .read()
            .expect("cache lock")
            .items
            .get(key)
            .cloned()
    }

    /// Subscribe to changes after `from` (or, with `from = None`, after the current state,
    /// returning the current objects under `prefix` as `initial`). `None` if `from` is older
    /// than the history this cache keeps.
    pub fn subscribe(
        &self,
        prefix: &str,
        from: Option<i64>,
        progress: i64,
    ) -> Option<Subscription> {
        let st = self.state.read().expect("cache lock");
        let live = self.tx.subscribe();
        let current = st.revision.max(progress);
        match from {
            None => Some(Subscription {
                revision: current,
                initial: st
                    .items
                    .range(prefix.to_string()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                backlog: Vec::new(),
                live,
            }),
            Some(rv) if rv >= st.history_start => Some(Subscription {
                revision: rv,
                initial: Vec::new(),
                backlog: st
                    .history
                    .iter()
                    .filter(|e| e.revision > rv)
                    .cloned()
                    .collect(),
                live,
            }),
            Some(_) => None,
        }
    }

    fn apply(&self, ev: Arc<CacheEvent>) {
        let mut st = self.state.write().expect("cache lock");
        match ev.change {
            Change::Deleted => {
                st.items.remove(&ev.key);
            }
            _ => {
                st.items.insert(ev.key.clone(), ev.object.clone());
            }
        }
        st.revision = ev.revision;
        st.history.push_back(ev.clone());
        if st.history.len() > HISTORY {
            if let Some(old) = st.history.pop_front() {
                st.history_start = old.revision;
            }
        }
        // Sent under the lock so that subscribers never see an event twice or miss one.
        let _ = self.tx.send(ev);
    }

    fn reset(&self, items: BTreeMap<String, Arc<Value>>, revision: i64) {
        let mut st = self.state.write().expect("cache lock");
        st.items = items;
        st.revision = revision;
        st.history.clear();
        st.history_start = revision;
    }
}

/// The caches of all kinds and the dispatcher's progress.
pub struct WatchCache {
    kinds: RwLock<HashMap<String, Arc<KindCache>>>,
    progress: AtomicI64,
    progress_tx: watch::Sender<i64>,
    store: Arc<dyn Store>,
    /// Incremented on every full relist; watchers compare it to stop after a reset.
    generation: AtomicI64,
}

/// The `/registry/<group>/<plural>/` prefix a key belongs to.
fn kind_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("/registry/")?;
    let mut idx = 0;
    let mut slashes = 0;
    for (i, c) in rest.char_indices() {
        if c == '/' {
            slashes += 1;
            if slashes == 2 {
                idx = i;
                break;
            }
        }
    }
    if slashes < 2 {
        return None;
    }
    Some(&key[.."/registry/".len() + idx + 1])
}

impl WatchCache {
    /// Load everything under `/registry/` and start the dispatcher; returns once the initial
    /// state is loaded.
    pub async fn start(
        store: Arc<dyn Store>,
        registry: &Registry,
        shutdown: CancellationToken,
    ) -> navarch_store::Result<Arc<Self>> {
        let cache = Arc::new(WatchCache {
            kinds: RwLock::new(HashMap::new()),
            progress: AtomicI64::new(0),
            progress_tx: watch::channel(0).0,
            store,
            generation: AtomicI64::new(0),
        });
        for def in registry.all() {
            cache.ensure_kind(def);
        }
        let rev = cache.relist().await?;
        let this = cache.clone();
        tokio::spawn(async move { this.run(rev, shutdown).await });
        Ok(cache)
    }

    /// The cache of a kind, created empty if new (kinds added at run time start empty and
    /// fill from events; call before objects of the kind can exist).
    pub fn ensure_kind(&self, def: &ResourceDef) -> Arc<KindCache> {
        let prefix = def.key_prefix();
        if let Some(k) = self.kinds.read().expect("lock").get(&prefix) {
            return k.clone();
        }
        self.kinds
            .write()
            .expect("lock")
            .entry(prefix)
            .or_insert_with(|| Arc::new(KindCache::new()))
            .clone()
    }

    pub fn kind(&self, def: &ResourceDef) -> Arc<KindCache> {
        self.ensure_kind(def)
    }

    /// Every store event at or below this revision has been applied to every kind.
    pub fn revision(&self) -> i64 {
        self.progress.load(Ordering::Acquire)
    }

    /// Number of full relists so far.
    pub fn generation(&self) -> i64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Wait until the cache has applied everything up to `rev`; false on timeout.
    pub async fn wait_for(&self, rev: i64, timeout: Duration) -> bool {
        let mut rx = self.progress_tx.subscribe();
        let wait = async {
            loop {
                if *rx.borrow_and_update() >= rev {
                    return;
                }
                if rx.changed().await.is_err() {
                    futures::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Wait until the cache reflects every write acknowledged so far (a consistent read).
    pub async fn sync(&self) -> Result<i64, crate::StatusError> {
        let current = self.store.current_revision().await?;
        if self.wait_for(current, Duration::from_secs(10)).await {
            Ok(current)
        } else {
            Err(crate::StatusError::timeout(
                "the watch cache did not catch up with the store in time",
                1,
            ))
        }
    }

    async fn relist(&self) -> navarch_store::Result<i64> {
        let mut per_kind: HashMap<String, BTreeMap<String, Arc<Value>>> = HashMap::new();
        let mut opts = RangeOptions {
            limit: 5000,
            ..RangeOptions::default()
        };
        let revision = loop {
            let page = self.store.range("/registry/", opts.clone()).await?;
            for kv in &page.kvs {
                if let (Some(prefix), Some(obj)) = (kind_prefix(&kv.key), decode_stored(kv)) {
                    per_kind
                        .entry(prefix.to_string())
                        .or_default()
                        .insert(kv.key.clone(), Arc::new(obj));
                }
            }
            if !page.more {
                break page.revision;
            }
            opts.start_after = page.kvs.last().map(|kv| kv.key.clone());
            opts.revision = Some(page.revision);
        };
        let kinds: Vec<(String, Arc<KindCache>)> = {
            let map = self.kinds.read().expect("lock");
            map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for (prefix, kind) in kinds {
            kind.reset(per_kind.remove(&prefix).unwrap_or_default(), revision);
        }
        for (prefix, items) in per_kind {
            let kind = Arc::new(KindCache::new());
            kind.reset(items, revision);
            self.kinds.write().expect("lock").insert(prefix, kind);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.publish(revision);
        Ok(revision)
    }

    fn publish(&self, rev: i64) {
        self.progress.store(rev, Ordering::Release);
        self.progress_tx.send_replace(rev);
    }

    async fn run(self: Arc<Self>, mut rev: i64, shutdown: CancellationToken) {
        loop {
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                s = self.store.watch("/registry/", rev) => s,
            };
            let mut stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache: store watch failed; relisting");
                    rev = self.relist_retrying(&shutdown).await;
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = stream.next() => n,
                };
                match next {
                    Some(Ok(ev)) => {
                        rev = ev.revision();
                        self.dispatch(ev);
                        self.publish(rev);
                    }
                    Some(Err(navarch_store::Error::Compacted { .. })) => {
                        tracing::warn!("watch cache fell behind compaction; relisting");
                        rev = self.relist_retrying(&shutdown).await;
                        break;
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "watch cache: store watch ended; resuming");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        break;
                    }
                    None => break,
                }
            }
        }
    }

    async fn relist_retrying(&self, shutdown: &CancellationToken) -> i64 {
        loop {
            match self.relist().await {
                Ok(rev) => return rev,
                Err(e) => {
                    tracing::warn!(error = %e, "watch cache relist failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return self.revision(),
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    fn dispatch(&self, ev: navarch_store::Event) {
        let Some(prefix) = kind_prefix(&ev.kv.key) else {
            return;
        };
        let kind = {
            let map = self.kinds.read().expect("lock");
            map.get(prefix).cloned()
        };
        let kind = match kind {
            Some(k) => k,
            None => self
                .kinds
                .write()
                .expect("lock")
                .entry(prefix.to_string())
                .or_insert_with(|| Arc::new(KindCache::new()))
                .clone(),
        };
        let prev = ev.prev_kv.as_ref().and_then(decode_stored).map(Arc::new);
        let (change, object) = match ev.kind {
            EventKind::Put => {
                let Some(obj) = decode_stored(&ev.kv) else {
                    return;
                };
                let change = if ev.prev_kv.is_some() {
                    Change::Modified
                } else {
                    Change::Added
                };
                (change, Arc::new(obj))
            }
            EventKind::Delete => {
                let Some(obj) = decode_stored(&ev.kv) else {
                    return;
                };
                (Change::Deleted, Arc::new(obj))
            }
        };
        kind.apply(Arc::new(CacheEvent {
            change,
            key: ev.kv.key.clone(),
            revision: ev.kv.mod_revision,
            object,
            prev,
            json: Default::default(),
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_prefix_takes_group_and_plural() {
        assert_eq!(
            kind_prefix("/registry/core/pods/default/web"),
            Some("/registry/core/pods/")
        );
        assert_eq!(
            kind_prefix("/registry/core/namespaces/default"),
            Some("/registry/core/namespaces/")
        );
        assert_eq!(kind_prefix("/registry/core"), None);
        assert_eq!(kind_prefix("/other/x/y/z"), None);
    }
}
