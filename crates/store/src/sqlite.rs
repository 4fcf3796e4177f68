//! The embedded SQLite backend: one database file, durable before it acknowledges, with watch
//! events pushed in-process the moment a transaction commits.
//!
//! Start at [`SqliteStore::open`]. The pieces, one per submodule:
//!
//! - `schema`: pragmas, tables and the `meta` counters;
//! - `writer`: the single writer thread that group-commits requests and compacts history;
//! - `reader`: a small pool of read-only connections and the read queries;
//! - `watch`: the watch stream (replay from the log, then live events);
//! - `compactor`: the background task that compacts history older than the retention.
//!
//! # Schema
//!
//! ```text
//! log(revision INTEGER PRIMARY KEY, key BLOB, value BLOB, create_revision, version,
//!     deleted, prev_revision)            -- one row per write; index (key, revision)
//! current(key BLOB PRIMARY KEY, value, create_revision, mod_revision, version) WITHOUT ROWID
//! meta(name TEXT PRIMARY KEY, value INTEGER) WITHOUT ROWID
//!     -- revision: the last committed revision (never derived from the log, so compaction
//!     --           cannot make it go backwards)
//!     -- compacted: reads and watches below this revision fail with `Compacted`
//!     -- compact_progress: history up to here has been garbage-collected
//! ```
//!
//! `log` serves reads at old revisions and watch replay; `current` serves reads at the head.
//! Compaction deletes log rows; SQLite reuses the freed pages for later writes, so under steady
//! churn the file stops growing (it does not shrink: there is no `VACUUM`).
//! A delete writes a tombstone row (`deleted = 1`) whose `prev_revision` points at the key's last
//! value, so a replayed delete carries that value. Keys are stored as blobs so that SQLite
//! compares them bytewise, which is etcd's order.
//!
//! # Durability
//!
//! The file is in WAL mode with `synchronous=FULL`: a commit returns only after the WAL has been
//! fsynced, and a write is acknowledged (and its watch event published) only after its commit
//! returns. A write therefore survives `kill -9` of the process and, as far as the disk honours
//! fsync, power loss. The revision lives in `meta` and is updated in the same transaction as the
//! rows it numbers, so after a crash the revision is exactly that of the last committed write.
//!
//! # Concurrency
//!
//! All writes go through one thread that drains its queue into one transaction (group commit: one
//! fsync for up to 256 requests), checks every request on its own (one request's
//! `Conflict` does not fail the others) and gives each successful write its own revision. Reads run
//! on `spawn_blocking` against read-only connections; WAL gives each read transaction a snapshot
//! and never blocks the writer. Compaction runs on the writer thread too, in small transactions
//! interleaved with write batches.

mod compactor;
mod reader;
mod schema;
mod watch;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{Error, Event, KeyValue, RangeOptions, RangeResult, Result, Store, WatchStream};
use reader::Readers;
use writer::{Op, Request, Writer};

/// How many requests may wait for the writer before callers are made to wait.
const REQUEST_QUEUE: usize = 4096;
/// How many committed batches the watch fan-out buffers; a watcher further behind re-reads the
/// missed events from the log, so this bounds memory more than it limits anything.
const EVENT_BUFFER: usize = 256;

/// Tuning for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How often the background task looks for history to compact (zero disables it).
    pub compaction_interval: Duration,
    /// How long history stays readable: the task compacts to the newest revision that is at least
    /// this old.
    pub retention: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            compaction_interval: Duration::from_secs(60),
            retention: Duration::from_secs(5 * 60),
        }
    }
}

/// A [`Store`] in one SQLite file. Cheap to clone; the writer thread and the background
/// compaction stop when the last clone is dropped.
///
/// Open a file once per process and share clones: watchers only hear of writes made through
/// the handle they watch. (A second handle on the same file would still number its writes
/// correctly, since each write transaction reads the revision from the file, but neither
/// handle's watchers would see the other's writes.)
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    requests: mpsc::Sender<Request>,
    heads: Arc<Heads>,
    readers: Arc<Readers>,
    /// Dropped with the store, which tells the background compaction to stop.
    stop: tokio::sync::watch::Sender<()>,
}

/// What the writer publishes after each commit.
struct Heads {
    revision: AtomicI64,
    compacted: AtomicI64,
    /// Number of write transactions committed (lets tests see group commit at work).
    commits: AtomicU64,
    /// The watch fan-out. The only sender: the writer takes it away if it fails, and it goes
    /// when the writer thread ends, so every watcher then sees the channel close.
    events: Mutex<Option<broadcast::Sender<writer::Batch>>>,
}

impl Heads {
    fn events(&self) -> std::sync::MutexGuard<'_, Option<broadcast::Sender<writer::Batch>>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn revision(&self) -> i64 {
        self.revision.load(Ordering::SeqCst)
    }

    fn compacted(&self) -> i64 {
        self.compacted.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("revision", &self.inner.heads.revision())
            .field("compacted", &self.inner.heads.compacted())
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default()).await
    }

    /// Opens (creating if needed) the database at `path`. Must be called within a tokio runtime.
    pub async fn open_with(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let open_path = path.clone();
        let (conn, meta) = tokio::task::spawn_blocking(move || schema::open_writer(&open_path))
            .await
            .unwrap_or_else(|e| Err(Error::Unavailable(e.to_string())))
            .map_err(|e| {
                Error::Unavailable(format!("opening sqlite store {}: {e}", path.display()))
            })?;

        let heads = Arc::new(Heads {
            revision: AtomicI64::new(meta.revision),
            compacted: AtomicI64::new(meta.compacted),
            commits: AtomicU64::new(0),
            events: Mutex::new(Some(broadcast::channel(EVENT_BUFFER).0)),
        });
        let (requests, queue) = mpsc::channel(REQUEST_QUEUE);
        let writer = Writer::new(conn, meta, heads.clone());
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| Error::Unavailable(format!("starting sqlite writer: {e}")))?;

        let inner = Arc::new(Inner {
            readers: Arc::new(Readers::new(path.clone())),
            path,
            requests,
            heads,
            stop: tokio::sync::watch::channel(()).0,
        });
        if !opts.compaction_interval.is_zero() {
            tokio::spawn(compactor::run(
                Arc::downgrade(&inner),
                inner.stop.subscribe(),
                opts,
            ));
        }
        Ok(SqliteStore { inner })
    }
}

impl Inner {
    async fn write(&self, op: Op) -> Result<Event> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Write { op, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Compact { revision, reply })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

fn closed() -> Error {
    Error::Unavailable("sqlite writer has stopped".into())
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str, revision: Option<i64>) -> Result<(i64, Option<KeyValue>)> {
        let key = key.to_owned();
        self.inner
            .readers
            .run(move |tx| reader::get(tx, &key, revision))
            .await
    }

    async fn range(&self, prefix: &str, opts: RangeOptions) -> Result<RangeResult> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .run(move |tx| reader::range(tx, &prefix, &opts))
            .await
    }

    async fn count(&self, prefix: &str) -> Result<i64> {
        let prefix = prefix.to_owned();
        self.inner
            .readers
            .run(move |tx| reader::count(tx, &prefix))
            .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<KeyValue> {
        let op = Op::Create {
            key: key.to_owned(),
            value,
        };
        Ok(self.inner.write(op).await?.kv)
    }

    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        let op = Op::Update {
            key: key.to_owned(),
            value,
            expected: expected_mod_revision,
        };
        Ok(self.inner.write(op).await?.kv)
    }

    async fn delete(
        &self,
        key: &str,
        expected_mod_revision: Option<i64>,
    ) -> Result<(KeyValue, i64)> {
        let op = Op::Delete {
            key: key.to_owned(),
            expected: expected_mod_revision,
        };
        let event = self.inner.write(op).await?;
        let revision = event.revision();
        let last = event
            .prev_kv
            .ok_or_else(|| Error::Unavailable("delete without a previous value".into()))?;
        Ok((last, revision))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        // Subscribe before reading the log, so that nothing committed in between is missed.
        let live = self
            .inner
            .heads
            .events()
            .as_ref()
            .map(|events| events.subscribe());
        let live = live.ok_or_else(closed)?;
        watch::open(
            self.inner.readers.clone(),
            live,
            prefix.to_owned(),
            after_revision,
        )
        .await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.inner.heads.revision())
    }

    async fn compacted_revision(&self) -> Result<i64> {
        Ok(self.inner.heads.compacted())
    }
}
