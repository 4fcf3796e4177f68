//! The on-disk layout: connection pragmas, the tables, and the `meta` counters.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use super::reader::unavailable;
use crate::{Error, Result};

/// Bumped when the layout changes incompatibly; a newer file is refused rather than misread.
const SCHEMA_VERSION: i64 = 1;

/// How long a connection waits for a lock held by another connection (only checkpoints and
/// another process could hold one; this process has a single writer).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (name, value)
    VALUES ('revision', 0), ('compacted', 0), ('compact_progress', 0);

CREATE TABLE IF NOT EXISTS log (
    revision        INTEGER PRIMARY KEY,
    key             BLOB NOT NULL,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    deleted         INTEGER NOT NULL,
    prev_revision   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS log_by_key ON log (key, revision);

CREATE TABLE IF NOT EXISTS current (
    key             BLOB PRIMARY KEY,
    value           BLOB NOT NULL,
    create_revision INTEGER NOT NULL,
    mod_revision    INTEGER NOT NULL,
    version         INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The counters in `meta`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Meta {
    /// The last committed revision.
    pub revision: i64,
    /// Reads and watches below this revision fail with `Compacted`.
    pub compacted: i64,
    /// History at or below this revision has been garbage-collected.
    pub compact_progress: i64,
}

/// Opens the write connection, creating the file and tables if needed, and reads the counters.
pub(super) fn open_writer(path: &Path) -> Result<(Connection, Meta)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(unavailable)?;
    prepare_writer(&mut conn)?;
    sync_parent_dir(path);
    let meta = read_meta(&conn).map_err(unavailable)?;
    Ok((conn, meta))
}

fn prepare_writer(conn: &mut Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(unavailable)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(unavailable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Unavailable(format!(
            "sqlite: cannot switch to WAL mode (journal mode is {mode})"
        )));
    }
    configure_writer(conn).map_err(unavailable)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(unavailable)?;
    if version > SCHEMA_VERSION {
        return Err(Error::Unavailable(format!(
            "sqlite: database schema version {version} is newer than this program's ({SCHEMA_VERSION})"
        )));
    }
    create_schema(conn).map_err(unavailable)
}

fn configure_writer(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: every commit fsyncs the WAL, so an acknowledged write survives a crash.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The WAL is reused after each checkpoint; this truncates it if a burst made it large.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.pragma_update(None, "cache_size", -16 * 1024)
}

fn create_schema(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(SCHEMA)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// Opens a read-only connection for the reader pool.
pub(super) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -8 * 1024)?;
    Ok(conn)
}

/// Reads the counters (inside the caller's transaction, if any: the first read fixes a reader's
/// snapshot).
pub(super) fn read_meta(conn: &Connection) -> rusqlite::Result<Meta> {
    let mut stmt = conn.prepare_cached("SELECT name, value FROM meta")?;
    let mut meta = Meta {
        revision: 0,
        compacted: 0,
        compact_progress: 0,
    };
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let value: i64 = row.get(1)?;
        match name.as_str() {
            "revision" => meta.revision = value,
            "compacted" => meta.compacted = value,
            "compact_progress" => meta.compact_progress = value,
            _ => {}
        }
    }
    Ok(meta)
}

/// Sets one counter.
pub(super) fn write_meta(conn: &Connection, name: &str, value: i64) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?
        .execute(rusqlite::params![name, value])?;
    Ok(())
}

/// Reads one counter.
pub(super) fn read_counter(conn: &Connection, name: &str) -> rusqlite::Result<i64> {
    conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()
        .map(|value| value.unwrap_or(0))
}

/// Makes the directory entries of a freshly created database and WAL durable (a new file is only
/// reachable after a crash once its directory has been synced). Best effort: some file systems
/// refuse to fsync a directory, and SQLite syncs what it needs for commits itself.
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync the store's directory");
    }
}
