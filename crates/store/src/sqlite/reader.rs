//! Reads: a small pool of read-only connections, and the queries behind get, range, count and
//! watch replay.
//!
//! Every read runs in one deferred transaction whose first statement reads `meta`; WAL mode gives
//! that transaction a snapshot, so the counters and the rows it reads agree with each other even
//! while the writer commits. Reads at the head use `current`; reads at an older revision use
//! `log` (the newest row per key at or below the revision).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, Transaction};
use tokio::sync::Semaphore;

use super::schema::{self, Meta};
use crate::{prefix_end, Error, Event, EventKind, KeyValue, RangeOptions, RangeResult, Result};

/// Reads running at once (each on a blocking thread with a connection of its own); further
/// reads wait their turn without holding a thread.
const MAX_READERS: usize = 8;

/// The pool of read-only connections, opened on demand.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl Readers {
    pub(super) fn new(path: PathBuf) -> Self {
        Readers {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    /// Runs `read` in a read transaction on a blocking thread.
    pub(super) async fn run<T, F>(self: &Arc<Self>, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| Error::Unavailable("sqlite reader pool closed".into()))?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let out = pool.run_blocking(read);
            drop(permit);
            out
        })
        .await
        .map_err(|e| Error::Unavailable(format!("sqlite read task failed: {e}")))?
    }

    fn run_blocking<T>(&self, read: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = match self.take() {
            Some(conn) => conn,
            None => schema::open_reader(&self.path).map_err(unavailable)?,
        };
        let out = match conn.transaction() {
            Ok(tx) => {
                let out = read(&tx);
                tx.finish().map_err(unavailable).and(out)
            }
            Err(e) => Err(unavailable(e)),
        };
        // A connection that failed at the SQLite level is dropped rather than reused.
        if !matches!(out, Err(Error::Unavailable(_))) {
            self.give_back(conn);
        }
        out
    }

    fn take(&self) -> Option<Connection> {
        self.idle.lock().ok()?.pop()
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_READERS {
                idle.push(conn);
            }
        }
    }
}

pub(super) fn unavailable(e: rusqlite::Error) -> Error {
    Error::Unavailable(format!("sqlite: {e}"))
}

/// The revision to read at: the head for `None` (or a non-positive revision, as etcd does), else
/// `requested` if it is still readable.
fn resolve(meta: &Meta, requested: Option<i64>) -> Result<i64> {
    match requested {
        None => Ok(meta.revision),
        Some(r) if r <= 0 => Ok(meta.revision),
        Some(r) if r > meta.revision => Err(Error::FutureRevision {
            requested: r,
            current: meta.revision,
        }),
        Some(r) if r < meta.compacted => Err(Error::Compacted {
            requested: r,
            compacted: meta.compacted,
        }),
        Some(r) => Ok(r),
    }
}

fn key_from(bytes: Vec<u8>) -> rusqlite::Result<String> {
    String::from_utf8(bytes).map_err(|e| e.utf8_error().into())
}

/// Maps `key, value, create_revision, mod_revision, version` starting at column `at`.
fn kv_from(row: &Row<'_>, at: usize) -> rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: key_from(row.get(at)?)?,
        value: row.get(at + 1)?,
        create_revision: row.get(at + 2)?,
        mod_revision: row.get(at + 3)?,
        version: row.get(at + 4)?,
    })
}

pub(super) fn get(
    tx: &Transaction<'_>,
    key: &str,
    revision: Option<i64>,
) -> Result<(i64, Option<KeyValue>)> {
    let meta = schema::read_meta(tx).map_err(unavailable)?;
    let at = resolve(&meta, revision)?;
    let kv = if at == meta.revision {
        tx.prepare_cached(
            "SELECT key, value, create_revision, mod_revision, version
             FROM current WHERE key = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([key.as_bytes()], |row| kv_from(row, 0))
                .optional()
        })
    } else {
        tx.prepare_cached(
            "SELECT key, value, create_revision, revision, version, deleted
             FROM log WHERE key = ?1 AND revision <= ?2
             ORDER BY revision DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params![key.as_bytes(), at], |row| {
                let deleted: bool = row.get(5)?;
                (!deleted).then(|| kv_from(row, 0)).transpose()
            })
            .optional()
            .map(Option::flatten)
        })
    }
    .map_err(unavailable)?;
    Ok((at, kv))
}

pub(super) fn range(
    tx: &Transaction<'_>,
    prefix: &str,
    opts: &RangeOptions,
) -> Result<RangeResult> {
    let meta = schema::read_meta(tx).map_err(unavailable)?;
    let at = resolve(&meta, opts.revision)?;

    // Keys >= lower (the prefix, or just past the continue point) and < upper.
    let mut lower = prefix.as_bytes().to_vec();
    if let Some(after) = &opts.start_after {
        let mut next = after.as_bytes().to_vec();
        next.push(0);
        lower = lower.max(next);
    }
    let upper = prefix_end(prefix);
    // One extra row tells whether more follow; SQLite reads a negative limit as "no limit".
    let fetch = match opts.limit {
        0 => -1,
        n => i64::try_from(n).map_or(i64::MAX, |n| n.saturating_add(1)),
    };

    let sql = match (at == meta.revision, upper.is_some()) {
        (true, true) => {
            "SELECT key, value, create_revision, mod_revision, version FROM current
             WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT ?4"
        }
        (true, false) => {
            "SELECT key, value, create_revision, mod_revision, version FROM current
             WHERE key >= ?1 ORDER BY key LIMIT ?4"
        }
        (false, true) => {
            "SELECT l.key, l.value, l.create_revision, l.revision, l.version FROM log AS l
             WHERE l.key >= ?1 AND l.key < ?2 AND l.revision <= ?3 AND l.deleted = 0
               AND NOT EXISTS (SELECT 1 FROM log AS n
                               WHERE n.key = l.key AND n.revision > l.revision
                                 AND n.revision <= ?3)
             ORDER BY l.key LIMIT ?4"
        }
        (false, false) => {
            "SELECT l.key, l.value, l.create_revision, l.revision, l.version FROM log AS l
             WHERE l.key >= ?1 AND l.revision <= ?3 AND l.deleted = 0
               AND NOT EXISTS (SELECT 1 FROM log AS n
                               WHERE n.key = l.key AND n.revision > l.revision
                                 AND n.revision <= ?3)
             ORDER BY l.key LIMIT ?4"
        }
    };
    let mut kvs = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(rusqlite::params![lower, upper, at, fetch], |row| {
                kv_from(row, 0)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(unavailable)?;
    let more = opts.limit > 0 && kvs.len() > opts.limit;
    kvs.truncate(if more { opts.limit } else { kvs.len() });
    Ok(RangeResult {
        kvs,
        more,
        revision: at,
    })
}

pub(super) fn count(tx: &Transaction<'_>, prefix: &str) -> Result<i64> {
    let upper = prefix_end(prefix);
    let sql = if upper.is_some() {
        "SELECT COUNT(*) FROM current WHERE key >= ?1 AND key < ?2"
    } else {
        "SELECT COUNT(*) FROM current WHERE key >= ?1 AND ?2 IS NULL"
    };
    tx.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_row(rusqlite::params![prefix.as_bytes(), upper], |row| {
                row.get(0)
            })
        })
        .map_err(unavailable)
}

/// One page of watch replay.
pub(super) struct Replay {
    /// Events under the prefix, in revision order.
    pub events: Vec<Event>,
    /// Every event at or below this revision has been read (or filtered out).
    pub covered: i64,
    /// The page was full: more events may follow `covered`.
    pub full: bool,
}

/// Reads up to `limit` events under `prefix` with revisions greater than `after`.
pub(super) fn replay(
    tx: &Transaction<'_>,
    prefix: &str,
    after: i64,
    limit: usize,
) -> Result<Replay> {
    let meta = schema::read_meta(tx).map_err(unavailable)?;
    if after > meta.revision {
        return Err(Error::FutureRevision {
            requested: after,
            current: meta.revision,
        });
    }
    if after < meta.compacted {
        return Err(Error::Compacted {
            requested: after,
            compacted: meta.compacted,
        });
    }
    let upper = prefix_end(prefix);
    let sql = if upper.is_some() {
        "SELECT l.revision, l.key, l.value, l.create_revision, l.version, l.deleted,
                p.value, p.revision
         FROM log AS l LEFT JOIN log AS p ON p.revision = l.prev_revision
         WHERE l.revision > ?1 AND l.key >= ?2 AND l.key < ?3
         ORDER BY l.revision LIMIT ?4"
    } else {
        "SELECT l.revision, l.key, l.value, l.create_revision, l.version, l.deleted,
                p.value, p.revision
         FROM log AS l LEFT JOIN log AS p ON p.revision = l.prev_revision
         WHERE l.revision > ?1 AND l.key >= ?2
         ORDER BY l.revision LIMIT ?4"
    };
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX);
    let events = tx
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(
                rusqlite::params![after, prefix.as_bytes(), upper, fetch],
                event_from,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(unavailable)?;
    let full = events.len() >= limit;
    let covered = match events.last() {
        Some(last) if full => last.revision(),
        _ => meta.revision,
    };
    Ok(Replay {
        events,
        covered,
        full,
    })
}

/// Builds an event from a log row joined with the row it replaced.
fn event_from(row: &Row<'_>) -> rusqlite::Result<Event> {
    let revision: i64 = row.get(0)?;
    let key = key_from(row.get(1)?)?;
    let create_revision: i64 = row.get(3)?;
    let version: i64 = row.get(4)?;
    let deleted: bool = row.get(5)?;
    // The previous value; a tombstone and the row it replaced share create_revision and version,
    // an update's predecessor has the version before it.
    let prev_value: Option<Vec<u8>> = row.get(6)?;
    let prev_revision: Option<i64> = row.get(7)?;
    let prev_kv = match (prev_value, prev_revision) {
        (Some(value), Some(mod_revision)) => Some(KeyValue {
            key: key.clone(),
            value,
            create_revision,
            mod_revision,
            version: if deleted { version } else { version - 1 },
        }),
        _ => None,
    };
    if deleted {
        let last = prev_kv.clone().unwrap_or(KeyValue {
            key: key.clone(),
            value: Vec::new(),
            create_revision,
            mod_revision: revision,
            version,
        });
        Ok(Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                mod_revision: revision,
                ..last
            },
            prev_kv,
        })
    } else {
        Ok(Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key,
                value: row.get(2)?,
                create_revision,
                mod_revision: revision,
                version,
            },
            prev_kv,
        })
    }
}
