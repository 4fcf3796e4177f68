//! Store benchmark: the SQLite and etcd backends side by side on the same disk.
//!
//! Run with `cargo bench -p navarch-store --bench store` (or `make bench`). For each backend it
//! measures durable create throughput with 1 and with 100 concurrent writers, the time of one
//! full range over 10,000 keys, and watch delivery latency (from the start of the write call to
//! the event reaching a watcher). It prints a table and writes the figures as JSON to
//! `target/bench-results/store.json`. A benchmark, not a test: nothing here asserts on speed.
//!
//! SQLite lives in a temporary directory and etcd (a fresh single-member server started by
//! [`EtcdServer`]) keeps its data in another one, both under the system temporary directory, so
//! both pay for fsync on the same device. Set `NAVARCH_BENCH_QUICK=1` for a short smoke run.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use navarch_store::etcd::EtcdStore;
use navarch_store::sqlite::SqliteStore;
use navarch_store::testing::EtcdServer;
use navarch_store::{RangeOptions, Store};
use serde_json::json;

/// Size of every value written: a small Kubernetes object in JSON.
const VALUE_BYTES: usize = 1024;
const RANGE_KEYS: usize = 10_000;
/// Writers used to load the range data set.
const LOAD_WRITERS: usize = 100;

/// How long and how much each measurement runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    write_duration: Duration,
    range_repetitions: usize,
    watch_writes: usize,
    watch_max_duration: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        if std::env::var_os("NAVARCH_BENCH_QUICK").is_some() {
            Plan {
                write_duration: Duration::from_millis(500),
                range_repetitions: 2,
                watch_writes: 200,
                watch_max_duration: Duration::from_secs(2),
            }
        } else {
            Plan {
                write_duration: Duration::from_secs(3),
                range_repetitions: 7,
                watch_writes: 2_000,
                watch_max_duration: Duration::from_secs(10),
            }
        }
    }
}

/// The figures for one backend.
#[derive(Debug, Default)]
struct Figures {
    writes_per_sec_1: f64,
    writes_per_sec_100: f64,
    range_10k_ms_p50: f64,
    range_10k_ms_min: f64,
    range_10k_ms_max: f64,
    watch_events: usize,
    watch_ms_p50: f64,
    watch_ms_p99: f64,
    watch_ms_max: f64,
    create_ms_p50: f64,
    create_ms_p99: f64,
}

impl Figures {
    fn to_json(&self) -> serde_json::Value {
        json!({
            "writes_per_sec_1_writer": round(self.writes_per_sec_1),
            "writes_per_sec_100_writers": round(self.writes_per_sec_100),
            "range_10k_ms": {
                "p50": round(self.range_10k_ms_p50),
                "min": round(self.range_10k_ms_min),
                "max": round(self.range_10k_ms_max),
            },
            "watch_latency_ms": {
                "events": self.watch_events,
                "p50": round(self.watch_ms_p50),
                "p99": round(self.watch_ms_p99),
                "max": round(self.watch_ms_max),
            },
            "sequential_create_latency_ms": {
                "p50": round(self.create_ms_p50),
                "p99": round(self.create_ms_p99),
            },
        })
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no arguments of its own.
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let started = Instant::now();
    let mut results: BTreeMap<&str, Result<Figures, String>> = BTreeMap::new();
    results.insert("sqlite", runtime.block_on(bench_sqlite(plan)));
    results.insert("etcd", runtime.block_on(bench_etcd(plan)));
    let elapsed = started.elapsed();

    print_table(&results, plan, elapsed);
    match write_json(&results, plan) {
        Ok(path) => println!("\nresults written to {}", path.display()),
        Err(e) => eprintln!("\ncould not write the JSON results: {e}"),
    }
}

async fn bench_sqlite(plan: Plan) -> Result<Figures, String> {
    let dir = tempfile::Builder::new()
        .prefix("navarch-bench-sqlite-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let store = SqliteStore::open(dir.path().join("state.db"))
        .await
        .map_err(|e| e.to_string())?;
    run_all(Arc::new(store), plan).await
}

async fn bench_etcd(plan: Plan) -> Result<Figures, String> {
    let server = EtcdServer::start().map_err(|e| format!("starting etcd: {e}"))?;
    let store = EtcdStore::connect(&[server.endpoint()])
        .await
        .map_err(|e| e.to_string())?;
    let figures = run_all(Arc::new(store), plan).await;
    drop(server);
    figures
}

async fn run_all(store: Arc<dyn Store>, plan: Plan) -> Result<Figures, String> {
    let mut figures = Figures {
        writes_per_sec_1: write_throughput(&store, "/bench/w1/", 1, plan.write_duration).await?,
        writes_per_sec_100: write_throughput(&store, "/bench/w100/", 100, plan.write_duration)
            .await?,
        ..Figures::default()
    };

    load(&store, "/bench/range/", RANGE_KEYS).await?;
    let mut times = Vec::with_capacity(plan.range_repetitions);
    for _ in 0..plan.range_repetitions {
        let start = Instant::now();
        let page = store
            .range("/bench/range/", RangeOptions::default())
            .await
            .map_err(|e| format!("range: {e}"))?;
        times.push(ms(start.elapsed()));
        if page.kvs.len() != RANGE_KEYS {
            return Err(format!("range returned {} keys", page.kvs.len()));
        }
    }
    times.sort_by(f64::total_cmp);
    figures.range_10k_ms_p50 = percentile(&times, 0.50);
    figures.range_10k_ms_min = times[0];
    figures.range_10k_ms_max = times[times.len() - 1];

    let (mut latencies, mut creates) = watch_latency(&store, plan).await?;
    creates.sort_by(f64::total_cmp);
    figures.create_ms_p50 = percentile(&creates, 0.50);
    figures.create_ms_p99 = percentile(&creates, 0.99);
    latencies.sort_by(f64::total_cmp);
    figures.watch_events = latencies.len();
    figures.watch_ms_p50 = percentile(&latencies, 0.50);
    figures.watch_ms_p99 = percentile(&latencies, 0.99);
    figures.watch_ms_max = latencies.last().copied().unwrap_or(0.0);
    Ok(figures)
}

fn value(seed: usize) -> Vec<u8> {
    let mut v = format!("{{\"kind\":\"Pod\",\"seed\":{seed},\"data\":\"").into_bytes();
    v.resize(VALUE_BYTES - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

/// Creates of distinct keys by `writers` concurrent tasks for `duration`; returns writes/s.
async fn write_throughput(
    store: &Arc<dyn Store>,
    prefix: &str,
    writers: usize,
    duration: Duration,
) -> Result<f64, String> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(writers);
    for w in 0..writers {
        let store = Arc::clone(store);
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let key = format!("{prefix}{w:03}/{n:08}");
                store
                    .create(&key, value(n))
                    .await
                    .map_err(|e| format!("create {key}: {e}"))?;
                n += 1;
            }
            Ok::<usize, String>(n)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// Create `count` keys under `prefix` with [`LOAD_WRITERS`] concurrent writers.
async fn load(store: &Arc<dyn Store>, prefix: &str, count: usize) -> Result<(), String> {
    let mut tasks = Vec::with_capacity(LOAD_WRITERS);
    for w in 0..LOAD_WRITERS {
        let store = Arc::clone(store);
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..count).step_by(LOAD_WRITERS) {
                let key = format!("{prefix}{i:08}");
                store
                    .create(&key, value(i))
                    .await
                    .map_err(|e| format!("create {key}: {e}"))?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// One writer creates keys one after another while a watcher on their prefix timestamps each
/// event; the latency is from the start of the create call to the event's arrival. Also returns
/// how long each create call took, for comparison.
async fn watch_latency(store: &Arc<dyn Store>, plan: Plan) -> Result<(Vec<f64>, Vec<f64>), String> {
    const PREFIX: &str = "/bench/watch/";
    let from = store.current_revision().await.map_err(|e| e.to_string())?;
    let mut watch = store
        .watch(PREFIX, from)
        .await
        .map_err(|e| format!("watch: {e}"))?;
    let starts: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; plan.watch_writes]));

    let writer = {
        let store = Arc::clone(store);
        let starts = Arc::clone(&starts);
        tokio::spawn(async move {
            let deadline = Instant::now() + plan.watch_max_duration;
            let mut took = Vec::with_capacity(plan.watch_writes);
            for i in 0..plan.watch_writes {
                if Instant::now() >= deadline {
                    break;
                }
                let start = Instant::now();
                starts.lock().unwrap()[i] = Some(start);
                store
                    .create(&format!("{PREFIX}{i:08}"), value(i))
                    .await
                    .map_err(|e| format!("create: {e}"))?;
                took.push(ms(start.elapsed()));
            }
            Ok::<Vec<f64>, String>(took)
        })
    };

    let mut latencies = Vec::with_capacity(plan.watch_writes);
    let mut writer = Some(writer);
    let mut creates: Option<Vec<f64>> = None;
    loop {
        if let Some(creates) = &creates {
            if creates.len() == latencies.len() {
                break;
            }
        }
        let event = tokio::select! {
            written = async { writer.as_mut().unwrap().await }, if writer.is_some() => {
                writer = None;
                creates = Some(written.map_err(|e| e.to_string())??);
                continue;
            }
            event = tokio::time::timeout(Duration::from_secs(30), watch.next()) => event,
        };
        let arrived = Instant::now();
        let event = match event {
            Ok(Some(Ok(event))) => event,
            Ok(Some(Err(e))) => return Err(format!("watch: {e}")),
            Ok(None) => return Err("watch ended".into()),
            Err(_) => return Err("no watch event for 30 s".into()),
        };
        let index: usize = event.kv.key[PREFIX.len()..]
            .parse()
            .map_err(|_| format!("unexpected key {}", event.kv.key))?;
        let started = starts.lock().unwrap()[index].ok_or("event before its write started")?;
        latencies.push(ms(arrived - started));
    }
    Ok((latencies, creates.unwrap_or_default()))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn print_table(results: &BTreeMap<&str, Result<Figures, String>>, plan: Plan, elapsed: Duration) {
    let backends = ["sqlite", "etcd"];
    println!(
        "\nstore benchmark: {VALUE_BYTES}-byte values, data under {} ({:.0} s)\n",
        std::env::temp_dir().display(),
        elapsed.as_secs_f64()
    );
    print!("{:<36}", "");
    for b in backends {
        print!("{b:>12}");
    }
    println!();
    type Row = (&'static str, fn(&Figures) -> String);
    let rows: [Row; 10] = [
        ("durable creates/s, 1 writer", |f| {
            format!("{:.0}", f.writes_per_sec_1)
        }),
        ("durable creates/s, 100 writers", |f| {
            format!("{:.0}", f.writes_per_sec_100)
        }),
        ("range 10,000 keys, p50 (ms)", |f| {
            format!("{:.1}", f.range_10k_ms_p50)
        }),
        ("range 10,000 keys, min (ms)", |f| {
            format!("{:.1}", f.range_10k_ms_min)
        }),
        ("range 10,000 keys, max (ms)", |f| {
            format!("{:.1}", f.range_10k_ms_max)
        }),
        ("watch latency p50 (ms)", |f| {
            format!("{:.2}", f.watch_ms_p50)
        }),
        ("watch latency p99 (ms)", |f| {
            format!("{:.2}", f.watch_ms_p99)
        }),
        ("watch events measured", |f| f.watch_events.to_string()),
        ("sequential create latency p50 (ms)", |f| {
            format!("{:.2}", f.create_ms_p50)
        }),
        ("sequential create latency p99 (ms)", |f| {
            format!("{:.2}", f.create_ms_p99)
        }),
    ];
    for (label, cell) in rows {
        print!("{label:<36}");
        for b in backends {
            let text = match results.get(b) {
                Some(Ok(f)) => cell(f),
                _ => "-".to_string(),
            };
            print!("{text:>12}");
        }
        println!();
    }
    println!(
        "\n(writes: {:?} per writer count; range: {} repetitions; watch: up to {} sequential creates)",
        plan.write_duration, plan.range_repetitions, plan.watch_writes
    );
    for (b, r) in results {
        if let Err(e) = r {
            println!("{b}: failed: {e}");
        }
    }
}

fn results_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("bench-results"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-results"),
    }
}

fn write_json(
    results: &BTreeMap<&str, Result<Figures, String>>,
    plan: Plan,
) -> std::io::Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("store.json");
    let backends: serde_json::Map<String, serde_json::Value> = results
        .iter()
        .map(|(b, r)| {
            let v = match r {
                Ok(f) => f.to_json(),
                Err(e) => json!({ "error": e }),
            };
            (b.to_string(), v)
        })
        .collect();
    let doc = json!({
        "benchmark": "store",
        "value_bytes": VALUE_BYTES,
        "range_keys": RANGE_KEYS,
        "write_seconds": plan.write_duration.as_secs_f64(),
        "range_repetitions": plan.range_repetitions,
        "watch_writes": plan.watch_writes,
        "backends": backends,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(path.canonicalize().unwrap_or(path))
}
