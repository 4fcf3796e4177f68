//! The single writer: a dedicated thread that owns the write connection.
//!
//! It takes requests from a bounded queue, drains whatever else is queued (up to [`MAX_BATCH`])
//! and applies the batch in one transaction: group commit, one fsync for many writes. Each write
//! is checked on its own against the state left by the writes before it in the batch; a write
//! that fails its check (`AlreadyExists`, `NotFound`, `Conflict`) writes nothing and does not
//! disturb the others. Every successful write gets the next revision. Only after `COMMIT`
//! returns are the batch's watch events published and the requests answered.
//!
//! Compaction also runs here: a compact request records the new compacted revision at once (so
//! readers stop asking for what is about to go) and then garbage-collects history in small
//! transactions between write batches, so that a large compaction never stalls writes.
//!
//! If a commit fails the writer stops accepting writes (every later request gets `Unavailable`
//! and watchers are disconnected): after a failed fsync SQLite cannot say what reached the disk,
//! and reopening the store is the only way back to a state known to match the file.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use super::schema::{self, Meta};
use super::Heads;
use crate::{Error, Event, EventKind, KeyValue, Result};

/// The most requests applied in one transaction.
pub(super) const MAX_BATCH: usize = 256;
/// Revisions garbage-collected per compaction transaction.
const GC_CHUNK: i64 = 4096;

/// The events of one committed transaction, in revision order, with consecutive revisions.
pub(super) type Batch = Arc<[Event]>;

/// One write.
#[derive(Debug)]
pub(super) enum Op {
    Create {
        key: String,
        value: Vec<u8>,
    },
    Update {
        key: String,
        value: Vec<u8>,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

/// What the writer is asked to do. A write is answered with its event (for a delete, `prev_kv`
/// holds the deleted value).
pub(super) enum Request {
    Write {
        op: Op,
        reply: oneshot::Sender<Result<Event>>,
    },
    Compact {
        revision: i64,
        reply: oneshot::Sender<Result<()>>,
    },
}

/// A compaction whose garbage collection is under way.
struct Gc {
    /// Collect history up to here.
    target: i64,
    /// Compact requests to answer once `progress` reaches their revision.
    waiters: Vec<(i64, oneshot::Sender<Result<()>>)>,
}

pub(super) struct Writer {
    conn: Connection,
    heads: Arc<Heads>,
    /// Why the writer has failed, if it has.
    failed: Option<String>,
    /// History at or below this revision has been garbage-collected.
    progress: i64,
    gc: Option<Gc>,
}

impl Writer {
    pub(super) fn new(conn: Connection, meta: Meta, heads: Arc<Heads>) -> Self {
        // A compaction interrupted by a crash resumes where it stopped.
        let gc = (meta.compact_progress < meta.compacted).then(|| Gc {
            target: meta.compacted,
            waiters: Vec::new(),
        });
        Writer {
            conn,
            heads,
            failed: None,
            progress: meta.compact_progress,
            gc,
        }
    }

    /// Serves requests until every sender is gone.
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Request>) {
        loop {
            let first = if self.gc.is_some() {
                match queue.try_recv() {
                    Ok(request) => request,
                    Err(TryRecvError::Empty) => {
                        self.collect_garbage();
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            } else {
                match queue.blocking_recv() {
                    Some(request) => request,
                    None => break,
                }
            };

            let mut writes = Vec::new();
            let mut compactions = Vec::new();
            let mut next = Some(first);
            while let Some(request) = next.take() {
                match request {
                    Request::Write { op, reply } => writes.push((op, reply)),
                    Request::Compact { revision, reply } => compactions.push((revision, reply)),
                }
                if writes.len() + compactions.len() < MAX_BATCH {
                    next = queue.try_recv().ok();
                }
            }

            if !writes.is_empty() {
                self.commit(writes);
            }
            for (revision, reply) in compactions {
                self.start_compaction(revision, reply);
            }
            // One chunk per batch keeps compaction moving under a constant write load.
            if self.gc.is_some() {
                self.collect_garbage();
            }
        }
    }

    /// Applies `writes` in one transaction and answers them.
    fn commit(&mut self, writes: Vec<(Op, oneshot::Sender<Result<Event>>)>) {
        if let Some(reason) = &self.failed {
            let error = Error::Unavailable(reason.clone());
            for (_, reply) in writes {
                let _ = reply.send(Err(clone_unavailable(&error)));
            }
            return;
        }

        let (ops, replies): (Vec<Op>, Vec<_>) = writes.into_iter().unzip();
        let outcomes = match apply_batch(&mut self.conn, ops) {
            Ok((outcomes, revision)) => {
                self.heads.revision.store(revision, Ordering::SeqCst);
                self.heads.commits.fetch_add(1, Ordering::SeqCst);
                outcomes
            }
            Err(Failure::Rejected(e)) => {
                // The transaction never committed: nothing changed, the next batch may work.
                let error = Error::Unavailable(format!("sqlite: {e}"));
                replies.into_iter().for_each(|reply| {
                    let _ = reply.send(Err(clone_unavailable(&error)));
                });
                return;
            }
            Err(Failure::CommitFailed(e)) => {
                let reason = format!("sqlite commit failed, reopen the store: {e}");
                tracing::error!(error = %e, "sqlite commit failed; refusing further writes");
                self.failed = Some(reason.clone());
                // Watchers see the fan-out close; compactions in progress stop.
                self.heads.events().take();
                if let Some(gc) = self.gc.take() {
                    for (_, reply) in gc.waiters {
                        let _ = reply.send(Err(Error::Unavailable(reason.clone())));
                    }
                }
                replies.into_iter().for_each(|reply| {
                    let _ = reply.send(Err(Error::Unavailable(reason.clone())));
                });
                return;
            }
        };

        let events: Vec<Event> = outcomes
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok().cloned())
            .collect();
        if !events.is_empty() {
            if let Some(sender) = self.heads.events().as_ref() {
                // No receivers is not an error: nobody is watching.
                let _ = sender.send(events.into());
            }
        }
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            let _ = reply.send(outcome);
        }
    }

    fn start_compaction(&mut self, revision: i64, reply: oneshot::Sender<Result<()>>) {
        let compacted = self.heads.compacted();
        let current = self.heads.revision();
        let outcome = if let Some(reason) = &self.failed {
            Err(Error::Unavailable(reason.clone()))
        } else if revision <= compacted {
            Err(Error::Compacted {
                requested: revision,
                compacted,
            })
        } else if revision > current {
            Err(Error::FutureRevision {
                requested: revision,
                current,
            })
        } else {
            // Recorded (durably) before any row goes, so that no reader starting after this can
            // ask for a revision whose rows are being deleted.
            schema::write_meta(&self.conn, "compacted", revision)
                .map_err(|e| Error::Unavailable(format!("sqlite: {e}")))
        };
        match outcome {
            Ok(()) => {
                self.heads.compacted.store(revision, Ordering::SeqCst);
                let gc = self.gc.get_or_insert_with(|| Gc {
                    target: revision,
                    waiters: Vec::new(),
                });
                gc.target = gc.target.max(revision);
                gc.waiters.push((revision, reply));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Garbage-collects one chunk of history, answering the compactions it completes.
    fn collect_garbage(&mut self) {
        let Some(gc) = self.gc.as_mut() else {
            return;
        };
        let from = self.progress;
        let to = gc.target.min(from.saturating_add(GC_CHUNK));
        match collect_chunk(&mut self.conn, from, to) {
            Ok(()) => {
                self.progress = to;
                let done = to >= gc.target;
                let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut gc.waiters)
                    .into_iter()
                    .partition(|(revision, _)| done || *revision <= to);
                for (_, reply) in ready {
                    let _ = reply.send(Ok(()));
                }
                gc.waiters = waiting;
                if done {
                    self.gc = None;
                }
            }
            Err(e) => {
                // Given up for now; the next compaction resumes from the persisted progress.
                let error = Error::Unavailable(format!("sqlite compaction: {e}"));
                if gc.waiters.is_empty() {
                    tracing::warn!(error = %e, "sqlite compaction failed");
                }
                for (_, reply) in gc.waiters.drain(..) {
                    let _ = reply.send(Err(clone_unavailable(&error)));
                }
                self.gc = None;
            }
        }
    }
}

fn clone_unavailable(error: &Error) -> Error {
    Error::Unavailable(match error {
        Error::Unavailable(reason) => reason.clone(),
        other => other.to_string(),
    })
}

enum Failure {
    /// Failed before `COMMIT`: rolled back, nothing changed.
    Rejected(rusqlite::Error),
    /// `COMMIT` itself failed: what reached the disk is unknown.
    CommitFailed(rusqlite::Error),
}

/// Applies `ops` in one transaction: each gets its outcome, the successful ones consecutive
/// revisions. Returns the outcomes and the revision after the batch.
fn apply_batch(
    conn: &mut Connection,
    ops: Vec<Op>,
) -> std::result::Result<(Vec<Result<Event>>, i64), Failure> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(Failure::Rejected)?;
    let base = schema::read_counter(&tx, "revision").map_err(Failure::Rejected)?;
    let mut revision = base;
    let mut outcomes = Vec::with_capacity(ops.len());
    for op in ops {
        // A savepoint per write, so that an SQLite error in one write undoes only that write.
        tx.execute_batch("SAVEPOINT op")
            .map_err(Failure::Rejected)?;
        match apply(&tx, op, revision + 1) {
            Ok(outcome) => {
                if outcome.is_ok() {
                    revision += 1;
                }
                outcomes.push(outcome);
            }
            Err(e) if tx.is_autocommit() => {
                // SQLite rolled back the whole transaction (I/O error, disk full): nothing of
                // this batch will commit.
                return Err(Failure::Rejected(e));
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO op")
                    .map_err(Failure::Rejected)?;
                outcomes.push(Err(Error::Unavailable(format!("sqlite: {e}"))));
            }
        }
        tx.execute_batch("RELEASE op").map_err(Failure::Rejected)?;
    }
    if revision != base {
        schema::write_meta(&tx, "revision", revision).map_err(Failure::Rejected)?;
    }
    tx.commit().map_err(Failure::CommitFailed)?;
    Ok((outcomes, revision))
}

/// Applies one write at `revision`. The outer error is SQLite's, the inner the write's own.
fn apply(conn: &Connection, op: Op, revision: i64) -> rusqlite::Result<Result<Event>> {
    match op {
        Op::Create { key, value } => {
            if current(conn, &key)?.is_some() {
                return Ok(Err(Error::AlreadyExists { key }));
            }
            let kv = KeyValue {
                key,
                value,
                create_revision: revision,
                mod_revision: revision,
                version: 1,
            };
            append_log(conn, &kv, false, 0)?;
            conn.prepare_cached(
                "INSERT INTO current (key, value, create_revision, mod_revision, version)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![kv.key.as_bytes(), kv.value, revision, revision, 1])?;
            Ok(Ok(Event {
                kind: EventKind::Put,
                kv,
                prev_kv: None,
            }))
        }
        Op::Update {
            key,
            value,
            expected,
        } => {
            let prev = match check(conn, key, Some(expected))? {
                Ok(prev) => prev,
                Err(e) => return Ok(Err(e)),
            };
            let kv = KeyValue {
                key: prev.key.clone(),
                value,
                create_revision: prev.create_revision,
                mod_revision: revision,
                version: prev.version + 1,
            };
            append_log(conn, &kv, false, prev.mod_revision)?;
            conn.prepare_cached(
                "UPDATE current SET value = ?2, mod_revision = ?3, version = ?4 WHERE key = ?1",
            )?
            .execute(params![kv.key.as_bytes(), kv.value, revision, kv.version])?;
            Ok(Ok(Event {
                kind: EventKind::Put,
                kv,
                prev_kv: Some(prev),
            }))
        }
        Op::Delete { key, expected } => {
            let prev = match check(conn, key, expected)? {
                Ok(prev) => prev,
                Err(e) => return Ok(Err(e)),
            };
            let tombstone = KeyValue {
                value: Vec::new(),
                mod_revision: revision,
                ..prev.clone()
            };
            append_log(conn, &tombstone, true, prev.mod_revision)?;
            conn.prepare_cached("DELETE FROM current WHERE key = ?1")?
                .execute([prev.key.as_bytes()])?;
            Ok(Ok(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    value: prev.value.clone(),
                    ..tombstone
                },
                prev_kv: Some(prev),
            }))
        }
    }
}

/// The key's current value, if it exists and (when `expected` is given) was last modified at
/// `expected`.
fn check(
    conn: &Connection,
    key: String,
    expected: Option<i64>,
) -> rusqlite::Result<Result<KeyValue>> {
    Ok(match current(conn, &key)? {
        None => Err(Error::NotFound { key }),
        Some(kv) => match expected {
            Some(expected) if expected != kv.mod_revision => Err(Error::Conflict {
                key,
                expected,
                actual: kv.mod_revision,
            }),
            _ => Ok(kv),
        },
    })
}

fn current(conn: &Connection, key: &str) -> rusqlite::Result<Option<KeyValue>> {
    conn.prepare_cached(
        "SELECT value, create_revision, mod_revision, version FROM current WHERE key = ?1",
    )?
    .query_row([key.as_bytes()], |row| {
        Ok(KeyValue {
            key: key.to_owned(),
            value: row.get(0)?,
            create_revision: row.get(1)?,
            mod_revision: row.get(2)?,
            version: row.get(3)?,
        })
    })
    .optional()
}

fn append_log(
    conn: &Connection,
    kv: &KeyValue,
    deleted: bool,
    prev_revision: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO log (revision, key, value, create_revision, version, deleted, prev_revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        kv.mod_revision,
        kv.key.as_bytes(),
        kv.value,
        kv.create_revision,
        kv.version,
        deleted,
        prev_revision
    ])?;
    Ok(())
}

/// Deletes the history that compaction to at least `to` makes unreachable, for the log rows in
/// `(from, to]`: the row each of them replaced (superseded at or below `to`), and the tombstones
/// themselves. Applied to consecutive ranges from revision 0, this removes exactly the rows at or
/// below `to` that have a later row at or below `to`, and every tombstone at or below `to`; what
/// stays is the value of each key as of `to` plus all later history.
fn collect_chunk(conn: &mut Connection, from: i64, to: i64) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "DELETE FROM log WHERE revision IN
            (SELECT prev_revision FROM log
             WHERE revision > ?1 AND revision <= ?2 AND prev_revision > 0)",
    )?
    .execute(params![from, to])?;
    tx.prepare_cached("DELETE FROM log WHERE revision > ?1 AND revision <= ?2 AND deleted = 1")?
        .execute(params![from, to])?;
    schema::write_meta(&tx, "compact_progress", to)?;
    tx.commit()
}
