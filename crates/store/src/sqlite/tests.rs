//! What only the SQLite backend promises (the shared contract is in `tests/conformance.rs`):
//! persistence across reopen, group commit, history actually deleted by compaction, bounded disk
//! use, watchers that fall behind, and the background compaction task.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::compactor::{self, Samples};
use super::{SqliteOptions, SqliteStore, EVENT_BUFFER};
use crate::{Error, EventKind, RangeOptions, Store};

const TIMEOUT: Duration = Duration::from_secs(30);

fn quiet() -> SqliteOptions {
    SqliteOptions {
        compaction_interval: Duration::ZERO,
        ..Default::default()
    }
}

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open_with(path, quiet()).await.unwrap()
}

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state.db")
}

/// Rows in the history table, read on a connection of its own.
fn log_rows(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT COUNT(*) FROM log", [], |row| row.get(0))
        .unwrap()
}

/// Waits (polling) until `condition` holds.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `n` writes from `n` concurrent tasks (so they group-commit), each updating its own key
/// `/churn/<i % keys>` or creating it.
async fn churn(store: &SqliteStore, keys: usize, rounds: usize, value_len: usize) {
    let tasks: Vec<_> = (0..keys)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move {
                let key = format!("/churn/{k:04}");
                for round in 0..rounds {
                    let value = vec![(round % 251) as u8; value_len];
                    match store.get(&key, None).await.unwrap().1 {
                        Some(kv) => store.update(&key, value, kv.mod_revision).await.unwrap(),
                        None => store.create(&key, value).await.unwrap(),
                    };
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn reopening_keeps_keys_history_and_the_revision() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let a1 = store.create("/a", b"1".to_vec()).await.unwrap();
    let a2 = store
        .update("/a", b"2".to_vec(), a1.mod_revision)
        .await
        .unwrap();
    let (_, deleted_at) = store.delete("/a", None).await.unwrap();
    let b = store.create("/b", b"b".to_vec()).await.unwrap();
    drop(store);

    let store = open(&db(&dir)).await;
    assert_eq!(store.current_revision().await.unwrap(), b.mod_revision);
    assert_eq!(store.get("/b", None).await.unwrap().1, Some(b.clone()));
    assert_eq!(store.get("/a", None).await.unwrap().1, None);
    assert_eq!(
        store.get("/a", Some(a2.mod_revision)).await.unwrap().1,
        Some(a2)
    );
    let mut events = store.watch("/", a1.mod_revision).await.unwrap();
    let revisions: Vec<i64> = (&mut events)
        .take(3)
        .map(|e| e.unwrap().revision())
        .collect()
        .await;
    assert_eq!(revisions, [a1.mod_revision + 1, deleted_at, b.mod_revision]);
    let c = store.create("/c", Vec::new()).await.unwrap();
    assert_eq!(c.mod_revision, b.mod_revision + 1);
}

#[tokio::test]
async fn the_revision_never_goes_back_even_when_compaction_removed_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    for i in 0..10 {
        store
            .create(&format!("/k/{i}"), b"v".to_vec())
            .await
            .unwrap();
    }
    for i in 0..10 {
        store.delete(&format!("/k/{i}"), None).await.unwrap();
    }
    let head = store.current_revision().await.unwrap();
    store.compact(head).await.unwrap();
    assert_eq!(log_rows(&db(&dir)), 0);
    drop(store);

    let store = open(&db(&dir)).await;
    assert_eq!(store.current_revision().await.unwrap(), head);
    assert_eq!(store.compacted_revision().await.unwrap(), head);
    let kv = store.create("/k/0", b"again".to_vec()).await.unwrap();
    assert_eq!(kv.mod_revision, head + 1);
}

#[tokio::test]
async fn compaction_deletes_superseded_history_and_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let mut a = store.create("/a", b"0".to_vec()).await.unwrap();
    for i in 1..100 {
        a = store
            .update("/a", i.to_string().into_bytes(), a.mod_revision)
            .await
            .unwrap();
    }
    for i in 0..20 {
        store
            .create(&format!("/gone/{i}"), b"v".to_vec())
            .await
            .unwrap();
        store.delete(&format!("/gone/{i}"), None).await.unwrap();
    }
    let keep = store.create("/keep", b"k".to_vec()).await.unwrap();
    assert_eq!(log_rows(&db(&dir)), 100 + 40 + 1);

    // Compacting to before the last update of /a keeps two rows of it.
    store.compact(a.mod_revision - 1).await.unwrap();
    assert_eq!(log_rows(&db(&dir)), 2 + 40 + 1);
    store.compact(keep.mod_revision).await.unwrap();
    assert_eq!(log_rows(&db(&dir)), 2);
    assert_eq!(
        store.get("/a", Some(keep.mod_revision)).await.unwrap().1,
        Some(a)
    );
    assert_eq!(store.count("/").await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_larger_than_one_chunk_completes_and_keeps_reads_working() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    churn(&store, 64, 100, 16).await;
    let head = store.current_revision().await.unwrap();
    assert_eq!(head, 6400);
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let page = store
                    .range("/churn/", RangeOptions::default())
                    .await
                    .unwrap();
                assert_eq!(page.kvs.len(), 64);
            }
        })
    };
    store.compact(head).await.unwrap();
    reader.await.unwrap();
    assert_eq!(log_rows(&db(&dir)), 64);
    let listed = store
        .range(
            "/churn/",
            RangeOptions {
                revision: Some(head),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(listed.kvs.iter().all(|kv| kv.version == 100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_compaction_resumes_on_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    churn(&store, 8, 50, 16).await;
    let head = store.current_revision().await.unwrap();
    drop(store);
    // As if the process died right after recording the compaction, before deleting anything.
    let conn = rusqlite::Connection::open(db(&dir)).unwrap();
    conn.execute(
        "UPDATE meta SET value = ?1 WHERE name = 'compacted'",
        [head],
    )
    .unwrap();
    drop(conn);

    let store = open(&db(&dir)).await;
    assert_eq!(store.compacted_revision().await.unwrap(), head);
    let path = db(&dir);
    eventually("the resumed compaction", || log_rows(&path) == 8).await;
    assert_eq!(store.count("/churn/").await.unwrap(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_use_stays_bounded_under_churn_with_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let store = open(&path).await;
    let size = || {
        let file = |suffix: &str| {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
        };
        file("") + file("-wal")
    };
    let mut sizes = Vec::new();
    for _ in 0..8 {
        // 32 keys x 40 updates of 2 KiB: about 2.5 MiB of history per round.
        churn(&store, 32, 40, 2048).await;
        let head = store.current_revision().await.unwrap();
        store.compact(head).await.unwrap();
        assert_eq!(log_rows(&path), 32);
        sizes.push(size());
    }
    // After the first rounds have sized the file (and the WAL), it must stop growing.
    let settled = sizes[2];
    let last = *sizes.last().unwrap();
    assert!(
        last <= settled + settled / 4,
        "file keeps growing under churn: {sizes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_are_group_committed_and_checked_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    store.create("/dup", b"first".to_vec()).await.unwrap();
    let base = store.current_revision().await.unwrap();
    let commits_before = store.inner.heads.commits.load(Ordering::SeqCst);

    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store.create(&format!("/fresh/{i}"), b"v".to_vec()).await
                } else {
                    store.create("/dup", b"lost".to_vec()).await
                }
            })
        })
        .collect();
    let mut revisions = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(kv) => {
                assert_eq!(i % 2, 0);
                revisions.push(kv.mod_revision);
            }
            Err(Error::AlreadyExists { key }) => assert_eq!((i % 2, key.as_str()), (1, "/dup")),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // The failed creates neither failed their neighbours nor used up revisions.
    revisions.sort_unstable();
    assert_eq!(revisions, (base + 1..=base + 200).collect::<Vec<_>>());
    let commits = store.inner.heads.commits.load(Ordering::SeqCst) - commits_before;
    // One write per commit would be 400; group commit typically needs a handful.
    assert!(
        commits < 200,
        "400 concurrent writes took {commits} commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let start = store.current_revision().await.unwrap();
    let mut behind = store.watch("/", start).await.unwrap();
    // More committed batches than the broadcast buffers: one write per batch.
    let writes = EVENT_BUFFER + 100;
    for i in 0..writes {
        store
            .create(&format!("/k/{i:05}"), b"v".to_vec())
            .await
            .unwrap();
    }
    // A watch started now replays everything from the log, in several pages.
    let mut late = store.watch("/", start).await.unwrap();
    for stream in [&mut behind, &mut late] {
        for i in 0..writes {
            let event = tokio::time::timeout(TIMEOUT, stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(event.revision(), start + 1 + i as i64);
            assert_eq!(event.kind, EventKind::Put);
        }
    }
    let marker = store.create("/marker", Vec::new()).await.unwrap();
    for stream in [&mut behind, &mut late] {
        let event = tokio::time::timeout(TIMEOUT, stream.next()).await.unwrap();
        assert_eq!(event.unwrap().unwrap().kv, marker);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_falls_behind_past_compaction_gets_compacted_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let start = store.current_revision().await.unwrap();
    let mut behind = store.watch("/", start).await.unwrap();
    let mut kv = store.create("/k", b"0".to_vec()).await.unwrap();
    for i in 0..EVENT_BUFFER + 10 {
        kv = store
            .update("/k", i.to_string().into_bytes(), kv.mod_revision)
            .await
            .unwrap();
    }
    store.compact(kv.mod_revision).await.unwrap();
    let first = tokio::time::timeout(TIMEOUT, behind.next()).await.unwrap();
    assert!(
        matches!(first, Some(Err(Error::Compacted { .. }))),
        "{first:?}"
    );
    assert!(tokio::time::timeout(TIMEOUT, behind.next())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn watches_end_with_unavailable_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let mut events = store.watch("/", 0).await.unwrap();
    drop(store);
    let end = tokio::time::timeout(TIMEOUT, events.next()).await.unwrap();
    assert!(matches!(end, Some(Err(Error::Unavailable(_)))), "{end:?}");
}

#[tokio::test]
async fn non_positive_revisions_read_at_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let kv = store.create("/a", b"v".to_vec()).await.unwrap();
    for revision in [0, -1, i64::MIN] {
        assert_eq!(
            store.get("/a", Some(revision)).await.unwrap(),
            (kv.mod_revision, Some(kv.clone()))
        );
    }
}

#[tokio::test]
async fn prefixes_at_the_edges_of_the_key_space() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    for key in ["", "a", "\u{10FFFF}", "\u{10FFFF}\u{10FFFF}", "\u{10FFFF}z"] {
        store.create(key, key.as_bytes().to_vec()).await.unwrap();
    }
    let all = store.range("", RangeOptions::default()).await.unwrap();
    assert_eq!(all.kvs.len(), 5);
    assert_eq!(store.count("").await.unwrap(), 5);
    let top = store
        .range("\u{10FFFF}", RangeOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = top.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["\u{10FFFF}", "\u{10FFFF}z", "\u{10FFFF}\u{10FFFF}"]);
    assert_eq!(store.count("\u{10FFFF}").await.unwrap(), 3);
    let huge_limit = store
        .range(
            "",
            RangeOptions {
                limit: usize::MAX,
                start_after: Some(String::new()),
                revision: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(huge_limit.kvs.len(), 0, "only the empty key existed at 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_compaction_compacts_history_older_than_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SqliteOptions {
        compaction_interval: Duration::from_millis(50),
        retention: Duration::from_millis(300),
    };
    let store = SqliteStore::open_with(db(&dir), opts).await.unwrap();
    let mut kv = store.create("/a", b"0".to_vec()).await.unwrap();
    let mut last_write = Instant::now();
    for i in 0..5 {
        last_write = Instant::now();
        kv = store
            .update("/a", i.to_string().into_bytes(), kv.mod_revision)
            .await
            .unwrap();
    }
    let head = kv.mod_revision;
    let path = db(&dir);
    eventually("background compaction", || {
        store.inner.heads.compacted() == head && log_rows(&path) == 1
    })
    .await;
    // It waited for the retention: no sample can show `head` before the write that made it.
    assert!(last_write.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn background_compaction_stops_when_the_store_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&db(&dir)).await;
    let task = tokio::spawn(compactor::run(
        Arc::downgrade(&store.inner),
        store.inner.stop.subscribe(),
        SqliteOptions {
            compaction_interval: Duration::from_secs(3600),
            retention: Duration::from_secs(3600),
        },
    ));
    drop(store);
    tokio::time::timeout(TIMEOUT, task)
        .await
        .expect("compactor still running after the store was dropped")
        .unwrap();
}

#[test]
fn the_compactable_revision_is_the_newest_sample_older_than_the_retention() {
    let t0 = Instant::now();
    let minute = Duration::from_secs(60);
    let retention = 5 * minute;
    let mut samples = Samples::default();
    for (i, revision) in [10, 20, 30, 40, 50, 60, 70].into_iter().enumerate() {
        samples.record(t0 + minute * i as u32, revision);
    }
    assert_eq!(samples.take_compactable(t0 + 4 * minute, retention), None);
    assert_eq!(
        samples.take_compactable(t0 + 5 * minute, retention),
        Some(10)
    );
    // 7.5 minutes in: samples at 0..=2 minutes are old enough; the newest of them wins.
    let now = t0 + 7 * minute + minute / 2;
    assert_eq!(samples.take_compactable(now, retention), Some(30));
    assert_eq!(samples.take_compactable(now, retention), None);
    assert_eq!(
        samples.take_compactable(t0 + 11 * minute, retention),
        Some(70)
    );
}
