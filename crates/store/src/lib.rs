//! The key-value store under the API server, in etcd's data model so that etcd is a drop-in
//! backend.
//!
//! Start at [`Store`]: a flat key space (`/registry/<group>/<resource>/<namespace>/<name>`),
//! opaque byte values, and one global revision that every write increments. Each key carries
//! `create_revision`, `mod_revision` and `version`. Writes are guarded by compare-and-swap on
//! `mod_revision`; reads can be served at an older revision until it is compacted; a watch
//! delivers every change after a revision, exactly once and in revision order, with the previous
//! value. The Kubernetes `resourceVersion` is this revision.
//!
//! Backends: [`sqlite::SqliteStore`] (the default, embedded, group-committed and durable before
//! acknowledging) and [`etcd::EtcdStore`] (a real etcd cluster). Both pass one conformance suite
//! (`tests/conformance.rs`).

mod error;
pub mod etcd;
pub mod sqlite;
#[cfg(feature = "test-util")]
pub mod testing;

use std::pin::Pin;

use futures::Stream;

pub use error::{Error, Result};

/// One key at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Vec<u8>,
    /// Revision of the write that created this incarnation of the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of writes since creation (1 after create).
    pub version: i64,
}

/// Options for [`Store::range`].
#[derive(Debug, Clone, Default)]
pub struct RangeOptions {
    /// Return only keys strictly greater than this one (the continue point of a previous page).
    pub start_after: Option<String>,
    /// At most this many keys (0 = no limit).
    pub limit: usize,
    /// Read at this revision instead of the current one.
    pub revision: Option<i64>,
}

/// One page of a [`Store::range`].
#[derive(Debug, Clone)]
pub struct RangeResult {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// More keys follow the last one returned.
    pub more: bool,
    /// The revision the page was read at (pass it back with the next page for a consistent list).
    pub revision: i64,
}

/// What a watch event did to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// Created or updated (`prev_kv` tells which).
    Put,
    Delete,
}

/// One change delivered by [`Store::watch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the new value; for a delete, the key with its last value and
    /// `mod_revision` set to the revision of the delete.
    pub kv: KeyValue,
    /// The value before this change (`None` for a create).
    pub prev_kv: Option<KeyValue>,
}

impl Event {
    /// The revision at which this change happened.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }
}

/// A stream of watch events. It yields `Err(Compacted)` once and ends if it fell so far behind
/// that the history it needs is gone, and `Err(Unavailable)` if the backend failed.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<Event>> + Send>>;

/// The storage contract the API server needs (etcd's `client/v3/kubernetes` interface plus
/// create, watch and compaction).
#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// The key at the current revision, or at `revision` if given. Returns the revision read
    /// at alongside the value.
    async fn get(&self, key: &str, revision: Option<i64>) -> Result<(i64, Option<KeyValue>)>;

    /// Keys beginning with `prefix`, in ascending order, one page at a time.
    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult>;

    /// Number of keys beginning with `prefix` at the current revision.
    async fn count(&self, prefix: &str) -> Result<i64>;

    /// Create `key`; fails with `AlreadyExists` if present. Returns the new key.
    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue>;

    /// Replace `key` if its `mod_revision` equals `expected_mod_revision`: `NotFound` if absent,
    /// `Conflict` if it changed. Returns the new key.
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue>;

    /// Delete `key`, guarded on `mod_revision` if `expected_mod_revision` is given. Returns the
    /// deleted key's last value and the revision of the delete.
    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)>;

    /// Every change to keys beginning with `prefix` at revisions strictly greater than
    /// `after_revision`, in revision order, each exactly once. `Compacted` if that history is
    /// gone, `FutureRevision` if `after_revision` is beyond the current revision.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// Discard history at or below `revision` (the value current at `revision` stays readable).
    async fn compact(&self, revision: i64) -> Result<()>;

    /// The revision of the last committed write.
    async fn current_revision(&self) -> Result<i64>;

    /// The oldest revision still readable (0 if nothing was ever compacted).
    async fn compacted_revision(&self) -> Result<i64>;
}

/// The smallest key greater than every key that starts with `prefix` (etcd's range end), or
/// `None` if no such key exists (prefix of all 0xff).
pub fn prefix_end(prefix: &str) -> Option<Vec<u8>> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
