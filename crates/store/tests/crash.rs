//! Durability under `kill -9`: every write the SQLite store acknowledged is there after a crash,
//! and the revision never goes backwards.
//!
//! The parent test re-runs this test binary as a child process (the ignored test
//! `crash_child_writes_until_killed`, selected by its exact name, told its data directory by an
//! environment variable). The child writes as fast as it can from several concurrent tasks and
//! prints one `ACK <revision> <key> <value>` line per acknowledged write. The parent kills it with
//! SIGKILL at a random moment, reopens the store and checks the acknowledged writes, then writes
//! once more to check that revisions keep increasing. Every round reuses the same database, so
//! recovery from a crash is itself crashed into and recovered from.
//!
//! `kill -9` tests the process's side of durability (nothing acknowledged is still only in the
//! process's memory); it cannot test what the disk does on power loss.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use navarch_store::sqlite::{SqliteOptions, SqliteStore};
use navarch_store::{KeyValue, RangeOptions, Store};
use rand::Rng;

const CHILD_DIR: &str = "NAVARCH_CRASH_TEST_DIR";
const CHILD_ROUND: &str = "NAVARCH_CRASH_TEST_ROUND";
const CHILD_TEST: &str = "crash_child_writes_until_killed";
const ROUNDS: usize = 20;
const WRITERS: usize = 8;
/// The child stops by itself after this long, should the parent be gone.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

fn options() -> SqliteOptions {
    SqliteOptions {
        // Compaction is not under test here; keep it out of the way.
        compaction_interval: Duration::ZERO,
        ..Default::default()
    }
}

fn db_path(dir: &Path) -> PathBuf {
    dir.join("state.db")
}

/// One acknowledged write, as the child reported it.
#[derive(Debug, Clone)]
struct Ack {
    revision: i64,
    key: String,
    value: String,
}

fn parse_ack(line: &str) -> Option<Ack> {
    // Only whole lines count: the kill may cut the last one short.
    let line = line.strip_suffix('\n')?;
    let mut fields = line.strip_prefix("ACK ")?.split(' ');
    let ack = Ack {
        revision: fields.next()?.parse().ok()?,
        key: fields.next()?.to_owned(),
        value: fields.next()?.to_owned(),
    };
    fields.next().is_none().then_some(ack)
}

#[test]
#[ignore = "the child half of acknowledged_writes_survive_kill_9, run by it in a child process"]
fn crash_child_writes_until_killed() {
    let dir = PathBuf::from(std::env::var_os(CHILD_DIR).expect("data directory"));
    let round: usize = std::env::var(CHILD_ROUND)
        .expect("round")
        .parse()
        .expect("round number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SqliteStore::open_with(db_path(&dir), options())
            .await
            .expect("open store in child");
        let deadline = Instant::now() + CHILD_LIFETIME;
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let store = store.clone();
                tokio::spawn(async move {
                    write_until(&store, round, writer, deadline).await;
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

/// Creates keys and updates them by compare-and-swap, reporting each acknowledged write.
async fn write_until(store: &SqliteStore, round: usize, writer: usize, deadline: Instant) {
    let mut mine: Vec<KeyValue> = Vec::new();
    let mut n = 0usize;
    while Instant::now() < deadline {
        let value = format!("r{round}-w{writer}-n{n}");
        let kv = if mine.len() < 4 || n % 3 == 0 {
            let key = format!("/crash/r{round}/w{writer}/k{}", mine.len());
            let kv = store.create(&key, value.into_bytes()).await.unwrap();
            mine.push(kv.clone());
            kv
        } else {
            let i = rand::rng().random_range(0..mine.len());
            let kv = store
                .update(&mine[i].key, value.into_bytes(), mine[i].mod_revision)
                .await
                .unwrap();
            mine[i] = kv.clone();
            kv
        };
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ACK {} {} {}",
            kv.mod_revision,
            kv.key,
            String::from_utf8_lossy(&kv.value)
        )
        .unwrap();
        out.flush().unwrap();
        n += 1;
    }
}

/// Kills the child if the parent fails before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs one child until a random moment after its first acknowledged write, kills it with
/// SIGKILL, and returns every write it acknowledged.
fn run_child_and_kill(exe: &Path, dir: &Path, round: usize) -> Vec<Ack> {
    let child = Command::new(exe)
        .args([
            "--exact",
            CHILD_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_ROUND, round.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("child stdout");
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if lines_tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut acks = Vec::new();
    let first_ack_by = Instant::now() + Duration::from_secs(30);
    while acks.is_empty() {
        let left = first_ack_by.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .expect("child acknowledged no write in time");
        acks.extend(parse_ack(&line));
    }
    let delay = rand::rng().random_range(20..=300);
    std::thread::sleep(Duration::from_millis(delay));

    // `Child::kill` sends SIGKILL on Unix: no destructor, flush or exit handler runs.
    child.0.kill().expect("kill child");
    let status = child.0.wait().expect("wait for child");
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "round {round}: the child ended on its own ({status}) instead of being killed"
    );
    // Whatever it printed before dying was acknowledged too.
    reader.join().expect("reader thread");
    acks.extend(lines.try_iter().filter_map(|line| parse_ack(&line)));
    acks
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The newest acknowledged write of every key, over all rounds.
    let mut expected: HashMap<String, Ack> = HashMap::new();
    // Every revision handed out before the current round.
    let mut floor = 0;
    let mut total_acks = 0;
    for round in 0..ROUNDS {
        let acks = run_child_and_kill(&exe, dir.path(), round);
        assert!(!acks.is_empty());
        total_acks += acks.len();

        let mut revisions: Vec<i64> = acks.iter().map(|a| a.revision).collect();
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(
            revisions.len(),
            acks.len(),
            "a revision was acknowledged twice"
        );
        assert!(
            revisions[0] > floor,
            "round {round}: revision {} reused (floor {floor})",
            revisions[0]
        );
        let newest_ack = *revisions.last().unwrap();
        for ack in acks {
            match expected.get(&ack.key) {
                Some(known) if known.revision > ack.revision => {}
                _ => {
                    expected.insert(ack.key.clone(), ack);
                }
            }
        }

        floor = runtime.block_on(async {
            let store = SqliteStore::open_with(db_path(dir.path()), options())
                .await
                .expect("reopen after crash");
            let head = store.current_revision().await.unwrap();
            assert!(
                head >= newest_ack,
                "round {round}: revision {head} is behind acknowledged revision {newest_ack}"
            );
            let stored = store
                .range("/crash/", RangeOptions::default())
                .await
                .unwrap();
            let stored: HashMap<&str, &KeyValue> =
                stored.kvs.iter().map(|kv| (kv.key.as_str(), kv)).collect();
            for (key, ack) in &expected {
                let kv = stored
                    .get(key.as_str())
                    .unwrap_or_else(|| panic!("round {round}: acknowledged {key} is gone"));
                if kv.mod_revision == ack.revision {
                    assert_eq!(kv.value, ack.value.as_bytes(), "round {round}: {key}");
                } else {
                    // A later write whose acknowledgement the kill cut off is fine; an older
                    // value is a lost write.
                    assert!(
                        kv.mod_revision > ack.revision && kv.mod_revision <= head,
                        "round {round}: {key} is at {} but {} was acknowledged",
                        kv.mod_revision,
                        ack.revision
                    );
                }
            }
            drop(store);

            // Once more: the next write gets a fresh revision.
            let store = SqliteStore::open_with(db_path(dir.path()), options())
                .await
                .expect("second reopen");
            assert_eq!(store.current_revision().await.unwrap(), head);
            let marker = store
                .create(&format!("/marker/{round}"), b"m".to_vec())
                .await
                .unwrap();
            assert_eq!(marker.mod_revision, head + 1);
            marker.mod_revision
        });
    }
    eprintln!(
        "{ROUNDS} crash rounds, {total_acks} acknowledged writes checked, {:?}",
        started.elapsed()
    );
}
