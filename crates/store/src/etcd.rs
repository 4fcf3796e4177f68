//! The etcd backend: [`EtcdStore`] maps the [`Store`] contract onto a real etcd cluster with
//! `etcd-client`.
//!
//! Every write is one etcd transaction whose guard is a compare on `create_revision` /
//! `mod_revision` and whose failure branch reads the key back, so a failed guard tells
//! `NotFound` from `Conflict` without a second round trip. Reads are linearizable (etcd's
//! default). Watches are native etcd watches with `prev_kv`.
//!
//! # The compacted revision
//!
//! etcd does not report its compacted revision directly. The store keeps the highest one it has
//! seen in an atomic: from its own [`Store::compact`] calls, from the background compactor, and
//! from watch responses that carry `compact_revision`. Because another client may have compacted
//! too, [`Store::compacted_revision`] (and [`Store::watch`], which depends on it) verifies the
//! tracked value with one read at that revision: etcd serves a read at revision `r` exactly when
//! `r >=` its compacted revision, so if the read succeeds the tracked value is exact, and if it
//! fails a binary search over `(tracked, current]` finds the true value in `O(log n)` reads.
//!
//! Both backends refuse a watch whose `after` is below the compacted revision, that is one whose
//! first event, `after + 1`, would be at or below it. etcd itself would still serve a watch
//! starting exactly at its compacted revision, so this check is ours and made before the etcd
//! watch is created. As in etcd, compacting at or below the compacted revision fails with
//! `Compacted`.
//!
//! # Background compaction
//!
//! Like kube-apiserver's compactor, [`EtcdStore::connect_with`] starts a task that samples the
//! current revision every [`EtcdOptions::compaction_interval`] and compacts to the newest sample
//! at least [`EtcdOptions::retention`] old. Several API servers sharing one etcd may each run
//! one; a compaction another one already made is refused by etcd and ignored. The task stops
//! when the store is dropped.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType,
    GetOptions, KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
    WatchOptions,
};
use futures::StreamExt;
use tokio::time::Instant;

use crate::{
    prefix_end, Error, Event, EventKind, KeyValue, RangeOptions, RangeResult, Result, Store,
    WatchStream,
};

/// A key no caller uses, read with `count_only` when only a response header is wanted.
const PROBE_KEY: &[u8] = b"\0navarch-probe";

/// The largest response accepted from etcd. tonic's 4 MiB default would fail an unpaginated list
/// of a few thousand objects; etcd itself sends responses of any size.
const MAX_RESPONSE_BYTES: usize = 1 << 30;

/// Tuning for [`EtcdStore::connect_with`].
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// How often the background compactor samples the revision and compacts. Zero disables
    /// background compaction.
    pub compaction_interval: Duration,
    /// How much history the background compactor keeps: it compacts to the revision that was
    /// current this long ago.
    pub retention: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            compaction_interval: Duration::from_secs(60),
            retention: Duration::from_secs(5 * 60),
        }
    }
}

/// A [`Store`] on an etcd cluster.
pub struct EtcdStore {
    /// Owns the connection (its endpoint-update channel) that `kv` and `watch` share.
    _client: Client,
    kv: KvClient,
    watch: WatchClient,
    /// The highest compacted revision seen; never above etcd's actual one.
    compacted: Arc<AtomicI64>,
    _compactor: Option<AbortOnDrop>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("compacted", &self.compacted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connect with [`EtcdOptions::default`]. Fails with `Unavailable` if etcd does not answer.
    pub async fn connect(endpoints: &[String]) -> Result<EtcdStore> {
        Self::connect_with(endpoints, EtcdOptions::default()).await
    }

    /// Connect to `endpoints` (`http://host:port`), check that etcd answers, learn its
    /// compacted revision, and start the background compactor (must be called inside a Tokio
    /// runtime).
    pub async fn connect_with(endpoints: &[String], options: EtcdOptions) -> Result<EtcdStore> {
        let connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            // Pings only while streams are open (etcd refuses idle pings by default); a dead
            // peer then breaks watch streams instead of leaving them silent forever.
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
            .with_require_leader(true);
        let client = Client::connect(endpoints, Some(connect))
            .await
            .map_err(|e| Error::Unavailable(format!("connecting to etcd: {e}")))?;
        let mut store = EtcdStore {
            kv: client
                .kv_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            watch: client
                .watch_client()
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            _client: client,
            compacted: Arc::new(AtomicI64::new(0)),
            _compactor: None,
        };
        store.compacted_revision().await?;
        if !options.compaction_interval.is_zero() {
            let task = tokio::spawn(run_compactor(
                store.kv(),
                Arc::clone(&store.compacted),
                options,
            ));
            store._compactor = Some(AbortOnDrop(task.abort_handle()));
        }
        Ok(store)
    }

    fn kv(&self) -> KvClient {
        self.kv.clone()
    }

    /// Map an etcd error for a request at `requested`, filling in the revisions the error
    /// message does not carry.
    async fn read_error(&self, err: etcd_client::Error, requested: i64) -> Error {
        match classify(err) {
            Failure::Compacted => Error::Compacted {
                requested,
                compacted: self
                    .compacted_revision()
                    .await
                    .unwrap_or_else(|_| self.compacted.load(Ordering::Acquire).max(requested + 1)),
            },
            Failure::Future => Error::FutureRevision {
                requested,
                current: self.current_revision().await.unwrap_or(0),
            },
            Failure::Other(e) => e,
        }
    }
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str, revision: Option<i64>) -> Result<(i64, Option<KeyValue>)> {
        let mut opts = GetOptions::new();
        if let Some(rev) = revision.filter(|&r| r > 0) {
            opts = opts.with_revision(rev);
        }
        let resp = match self.kv().get(key, Some(opts)).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.read_error(e, revision.unwrap_or(0)).await),
        };
        let read_at = match revision {
            Some(rev) if rev > 0 => rev,
            _ => header_revision(resp.header())?,
        };
        Ok((read_at, resp.kvs().first().map(convert_kv)))
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult> {
        let (start, end) = range_bounds(prefix, opts.start_after.as_deref());
        let mut get = GetOptions::new().with_range(end);
        if opts.limit > 0 {
            get = get.with_limit(i64::try_from(opts.limit).unwrap_or(i64::MAX));
        }
        if let Some(rev) = opts.revision.filter(|&r| r > 0) {
            get = get.with_revision(rev);
        }
        let resp = match self.kv().get(start, Some(get)).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.read_error(e, opts.revision.unwrap_or(0)).await),
        };
        let revision = match opts.revision {
            Some(rev) if rev > 0 => rev,
            _ => header_revision(resp.header())?,
        };
        Ok(RangeResult {
            kvs: resp.kvs().iter().map(convert_kv).collect(),
            more: resp.more(),
            revision,
        })
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let (start, end) = range_bounds(prefix, None);
        let opts = GetOptions::new().with_range(end).with_count_only();
        let resp = self
            .kv()
            .get(start, Some(opts))
            .await
            .map_err(unavailable)?;
        Ok(resp.count())
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, value.clone(), None)]);
        let resp = self.kv().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            return Err(Error::AlreadyExists {
                key: key.to_string(),
            });
        }
        let rev = header_revision(resp.header())?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: rev,
            mod_revision: rev,
            version: 1,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        // An absent key compares with mod_revision 0, so the create_revision guard keeps an
        // update with expected 0 from creating the key.
        let txn = Txn::new()
            .when([
                Compare::create_revision(key, CompareOp::Greater, 0),
                Compare::mod_revision(key, CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(
                key,
                value.clone(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            return Err(guard_failure(key, expected_mod_revision, &resp));
        }
        let rev = header_revision(resp.header())?;
        let prev = match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Put(put)) => put.prev_key().map(convert_kv),
            _ => None,
        };
        let prev = prev.ok_or_else(|| {
            Error::Unavailable(format!("etcd returned no previous value updating {key}"))
        })?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: prev.create_revision,
            mod_revision: rev,
            version: prev.version + 1,
        })
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)> {
        let mut guard = vec![Compare::create_revision(key, CompareOp::Greater, 0)];
        if let Some(expected) = expected_mod_revision {
            guard.push(Compare::mod_revision(key, CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(guard)
            .and_then([TxnOp::delete(
                key,
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(key, None)]);
        let resp = self.kv().txn(txn).await.map_err(unavailable)?;
        if !resp.succeeded() {
            let expected = expected_mod_revision.unwrap_or(0);
            return Err(guard_failure(key, expected, &resp));
        }
        let rev = header_revision(resp.header())?;
        let prev = match resp.op_responses().into_iter().next() {
            Some(TxnOpResponse::Delete(del)) => del.prev_kvs().first().map(convert_kv),
            _ => None,
        };
        let prev = prev.ok_or_else(|| {
            Error::Unavailable(format!("etcd returned no previous value deleting {key}"))
        })?;
        Ok((prev, rev))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let (compacted, current) = self.probe_compacted().await?;
        if after_revision > current {
            return Err(Error::FutureRevision {
                requested: after_revision,
                current,
            });
        }
        if after_revision < compacted {
            return Err(Error::Compacted {
                requested: after_revision,
                compacted,
            });
        }
        let (start, end) = range_bounds(prefix, None);
        let opts = WatchOptions::new()
            .with_range(end)
            // Start revision 0 would mean "now" to etcd.
            .with_start_revision(after_revision.max(0) + 1)
            .with_prev_key();
        let mut stream = self
            .watch
            .clone()
            .watch(start, Some(opts))
            .await
            .map_err(unavailable)?;
        // Wait for the watcher to exist so that a refused watch fails here, not in the stream.
        match stream.message().await {
            Ok(Some(resp)) if resp.created() && !resp.canceled() => {}
            Ok(Some(resp)) if resp.compact_revision() != 0 => {
                self.compacted
                    .fetch_max(resp.compact_revision(), Ordering::AcqRel);
                return Err(Error::Compacted {
                    requested: after_revision,
                    compacted: resp.compact_revision(),
                });
            }
            Ok(Some(resp)) => {
                return Err(Error::Unavailable(format!(
                    "etcd refused the watch: {}",
                    resp.cancel_reason()
                )))
            }
            Ok(None) => return Err(Error::Unavailable("etcd closed the watch".into())),
            Err(e) => return Err(unavailable(e)),
        }
        let state = WatchState {
            stream,
            pending: VecDeque::new(),
            last_revision: after_revision,
            compacted: Arc::clone(&self.compacted),
            done: false,
        };
        Ok(futures::stream::unfold(state, next_event).boxed())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        // As etcd does, compacting at or below the compacted revision is an error.
        let known = self.compacted.load(Ordering::Acquire);
        if revision <= known {
            return Err(Error::Compacted {
                requested: revision,
                compacted: known,
            });
        }
        match self
            .kv()
            .compact(revision, Some(CompactionOptions::new()))
            .await
        {
            Ok(_) => {
                self.compacted.fetch_max(revision, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => Err(self.read_error(e, revision).await),
        }
    }

    async fn current_revision(&self) -> Result<i64> {
        current_revision(&mut self.kv()).await
    }

    async fn compacted_revision(&self) -> Result<i64> {
        Ok(self.probe_compacted().await?.0)
    }
}

impl EtcdStore {
    /// etcd's compacted revision and its current revision (see the module doc). One read when
    /// the tracked value is exact.
    async fn probe_compacted(&self) -> Result<(i64, i64)> {
        let mut kv = self.kv();
        let known = self.compacted.load(Ordering::Acquire);
        // Revision 0 would mean "current" to etcd; revision 1 is the oldest that exists.
        if let Some(current) = readable_at(&mut kv, known.max(1)).await? {
            return Ok((known, current));
        }
        let current = current_revision(&mut kv).await?;
        // Invariant: `lo - 1` is compacted, `hi` is readable (the current revision always is).
        let (mut lo, mut hi) = (known + 1, current);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if readable_at(&mut kv, mid).await?.is_some() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let compacted = self.compacted.fetch_max(hi, Ordering::AcqRel).max(hi);
        Ok((compacted, current))
    }
}

/// Whether a read at `revision` is served: `Some(current revision)`, or `None` if compacted.
async fn readable_at(kv: &mut KvClient, revision: i64) -> Result<Option<i64>> {
    let opts = GetOptions::new().with_revision(revision).with_count_only();
    match kv.get(PROBE_KEY, Some(opts)).await {
        Ok(resp) => Ok(Some(header_revision(resp.header())?)),
        Err(e) => match classify(e) {
            Failure::Compacted => Ok(None),
            Failure::Future => Err(Error::Unavailable(format!(
                "etcd has no revision {revision} though it was seen before; was it reset?"
            ))),
            Failure::Other(e) => Err(e),
        },
    }
}

async fn current_revision(kv: &mut KvClient) -> Result<i64> {
    let opts = GetOptions::new().with_count_only();
    let resp = kv.get(PROBE_KEY, Some(opts)).await.map_err(unavailable)?;
    header_revision(resp.header())
}

/// What a failed etcd request means to the store.
enum Failure {
    Compacted,
    Future,
    Other(Error),
}

fn classify(err: etcd_client::Error) -> Failure {
    if let etcd_client::Error::GRpcStatus(status) = &err {
        let message = status.message();
        if message.contains("required revision has been compacted") {
            return Failure::Compacted;
        }
        if message.contains("required revision is a future revision") {
            return Failure::Future;
        }
    }
    Failure::Other(unavailable(err))
}

/// Every etcd failure that is not a revision error: the backend cannot serve the request.
fn unavailable(err: etcd_client::Error) -> Error {
    Error::Unavailable(format!("etcd: {err}"))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<i64> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::Unavailable("etcd response without a header".into()))
}

/// The failure branch of a guarded write read the key back: absent is `NotFound`, present is a
/// `Conflict` with its actual mod_revision.
fn guard_failure(key: &str, expected: i64, resp: &TxnResponse) -> Error {
    let current = match resp.op_responses().into_iter().next() {
        Some(TxnOpResponse::Get(get)) => get.kvs().first().map(|kv| kv.mod_revision()),
        _ => None,
    };
    match current {
        Some(actual) => Error::Conflict {
            key: key.to_string(),
            expected,
            actual,
        },
        None => Error::NotFound {
            key: key.to_string(),
        },
    }
}

/// etcd's `[key, range_end)` for the keys under `prefix` strictly after `start_after`.
///
/// etcd rejects an empty key, so the empty prefix starts at `"\0"`; a range end of `"\0"` means
/// "to the end of the key space".
fn range_bounds(prefix: &str, start_after: Option<&str>) -> (Vec<u8>, Vec<u8>) {
    let mut start = prefix.as_bytes().to_vec();
    if let Some(after) = start_after {
        let mut next = after.as_bytes().to_vec();
        next.push(0);
        // A continue point before the prefix must not widen the range beyond it.
        if next > start {
            start = next;
        }
    }
    if start.is_empty() {
        start.push(0);
    }
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0]);
    (start, end)
}

fn convert_kv(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
    }
}

fn convert_event(event: &etcd_client::Event) -> Option<Event> {
    let kind = match event.event_type() {
        EventType::Put => EventKind::Put,
        EventType::Delete => EventKind::Delete,
    };
    Some(store_event(
        kind,
        convert_kv(event.kv()?),
        event.prev_kv().map(convert_kv),
    ))
}

/// An etcd watch event in the store's terms. A delete carries the last value with the delete's
/// revision as its `mod_revision` (etcd sends only the key and revision in `kv`).
fn store_event(kind: EventKind, kv: KeyValue, prev_kv: Option<KeyValue>) -> Event {
    let kv = match (kind, &prev_kv) {
        (EventKind::Delete, Some(prev)) => KeyValue {
            mod_revision: kv.mod_revision,
            ..prev.clone()
        },
        _ => kv,
    };
    Event { kind, kv, prev_kv }
}

struct WatchState {
    /// Holds the request half too: dropping it would end the etcd watch stream.
    stream: etcd_client::WatchStream,
    pending: VecDeque<Event>,
    /// The revision of the last event delivered (the resume point).
    last_revision: i64,
    compacted: Arc<AtomicI64>,
    done: bool,
}

async fn next_event(mut state: WatchState) -> Option<(Result<Event>, WatchState)> {
    loop {
        if let Some(event) = state.pending.pop_front() {
            state.last_revision = event.revision();
            return Some((Ok(event), state));
        }
        if state.done {
            return None;
        }
        let failure = match state.stream.message().await {
            Ok(Some(resp)) if resp.compact_revision() != 0 => {
                state
                    .compacted
                    .fetch_max(resp.compact_revision(), Ordering::AcqRel);
                Error::Compacted {
                    requested: state.last_revision,
                    compacted: resp.compact_revision(),
                }
            }
            Ok(Some(resp)) if resp.canceled() => {
                Error::Unavailable(format!("etcd canceled the watch: {}", resp.cancel_reason()))
            }
            Ok(Some(resp)) => {
                state
                    .pending
                    .extend(resp.events().iter().filter_map(convert_event));
                continue;
            }
            Ok(None) => Error::Unavailable("etcd closed the watch".into()),
            Err(e) => unavailable(e),
        };
        state.done = true;
        return Some((Err(failure), state));
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Revisions sampled over time, and the newest one old enough to compact to.
#[derive(Debug, Default)]
struct RetentionWindow {
    samples: VecDeque<(Instant, i64)>,
}

impl RetentionWindow {
    /// Record that `revision` was current at `at`, and return the newest recorded revision that
    /// is at least `retention` old at `at`, if any (each is returned at most once).
    fn record(&mut self, at: Instant, revision: i64, retention: Duration) -> Option<i64> {
        self.samples.push_back((at, revision));
        let mut target = None;
        while let Some(&(sampled, rev)) = self.samples.front() {
            if at.saturating_duration_since(sampled) < retention {
                break;
            }
            target = Some(rev);
            self.samples.pop_front();
        }
        target
    }
}

async fn run_compactor(mut kv: KvClient, compacted: Arc<AtomicI64>, options: EtcdOptions) {
    let mut ticker = tokio::time::interval(options.compaction_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut window = RetentionWindow::default();
    loop {
        // The scheduled tick time, so that sample ages are exact multiples of the interval.
        let at = ticker.tick().await;
        let revision = match current_revision(&mut kv).await {
            Ok(rev) => rev,
            Err(e) => {
                tracing::warn!(error = %e, "etcd compactor: reading the current revision failed");
                continue;
            }
        };
        let Some(target) = window.record(at, revision, options.retention) else {
            continue;
        };
        if target <= compacted.load(Ordering::Acquire) {
            continue;
        }
        match kv.compact(target, Some(CompactionOptions::new())).await {
            Ok(_) => {
                compacted.fetch_max(target, Ordering::AcqRel);
                tracing::debug!(revision = target, "etcd compactor: compacted");
            }
            Err(e) => match classify(e) {
                // Another client compacted further already.
                Failure::Compacted => {}
                Failure::Future => {
                    tracing::warn!(
                        revision = target,
                        "etcd compactor: revision is in the future"
                    )
                }
                Failure::Other(e) => {
                    tracing::warn!(error = %e, revision = target, "etcd compactor: compaction failed")
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bounds_cover_the_prefix() {
        assert_eq!(
            range_bounds("/a/", None),
            (b"/a/".to_vec(), b"/a0".to_vec())
        );
        assert_eq!(range_bounds("", None), (vec![0], vec![0]));
    }

    #[test]
    fn range_bounds_start_strictly_after_the_continue_key() {
        assert_eq!(
            range_bounds("/a/", Some("/a/x")),
            (b"/a/x\0".to_vec(), b"/a0".to_vec())
        );
    }

    #[test]
    fn continue_key_before_the_prefix_does_not_widen_the_range() {
        assert_eq!(
            range_bounds("/b/", Some("/a/z")),
            (b"/b/".to_vec(), b"/b0".to_vec())
        );
    }

    #[test]
    fn retention_window_returns_the_newest_sample_old_enough() {
        let t0 = Instant::now();
        let minute = Duration::from_secs(60);
        let retention = 5 * minute;
        let mut window = RetentionWindow::default();
        for i in 0..5 {
            assert_eq!(
                window.record(t0 + minute * i, 10 + i as i64, retention),
                None
            );
        }
        assert_eq!(window.record(t0 + 5 * minute, 15, retention), Some(10));
        assert_eq!(window.record(t0 + 6 * minute, 16, retention), Some(11));
        // A long pause: every sample that aged past the retention at once, newest wins.
        assert_eq!(window.record(t0 + 20 * minute, 30, retention), Some(16));
        assert_eq!(window.record(t0 + 21 * minute, 31, retention), None);
    }

    #[test]
    fn delete_event_carries_the_last_value_at_the_delete_revision() {
        let prev = KeyValue {
            key: "/k".into(),
            value: b"v2".to_vec(),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
        };
        // What etcd sends as the kv of a delete: the key and the delete's revision.
        let tombstone = KeyValue {
            key: "/k".into(),
            value: Vec::new(),
            create_revision: 0,
            mod_revision: 7,
            version: 0,
        };
        let event = store_event(EventKind::Delete, tombstone, Some(prev.clone()));
        assert_eq!(event.kind, EventKind::Delete);
        assert_eq!(event.revision(), 7);
        assert_eq!(event.kv.value, b"v2");
        assert_eq!(event.kv.create_revision, 3);
        assert_eq!(event.kv.version, 2);
        assert_eq!(event.prev_kv, Some(prev));
    }
}
