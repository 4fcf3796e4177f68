//! API benchmark: the whole API server over HTTPS, as clients see it.
//!
//! Run with `make bench-api` (or `cargo bench -p navarch-benches --bench api`). It starts the
//! API server in this process on a loopback port with TLS and a SQLite store in a temporary
//! directory, and drives it with kube-rs clients configured from the admin kubeconfig, so every
//! request pays for TLS, HTTP, authentication, decoding, admission, the store and encoding:
//!
//! - create / get / list latency (p50, p99) and throughput with 1, 10 and 100 concurrent
//!   clients, each client its own connection;
//! - a list of 10,000 pods from the watch cache, with `resourceVersion=0` (any) and without
//!   (consistent: the cache first catches up with the store's revision), and the same list in
//!   pages of 500 (served from the store at the first page's revision);
//! - watch fan-out: 100 watchers on one namespace, the time from the start of a write to the
//!   first and to the last watcher receiving its event.
//!
//! It prints a table and writes the figures as JSON to `target/bench-results/api.json`. A
//! benchmark, not a test: nothing here asserts on speed. The clients run in the server's
//! process and share its two cores, as a controller in the all-in-one binary would. Set
//! `NAVARCH_BENCH_QUICK=1` for a short smoke run.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, ObjectMeta, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, ResourceExt};
use navarch_apiserver::{ApiServer, Config};
use navarch_store::sqlite::SqliteStore;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const LEVELS: [usize; 3] = [1, 10, 100];
/// ConfigMaps in the namespace that `get` and `list` read.
const READ_SET: usize = 100;
const LIST_PODS: usize = 10_000;
const WATCHERS: usize = 100;

/// How much each measurement runs.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Requests per verb and concurrency level (split over the clients).
    requests: usize,
    /// Fewer for lists, which return `READ_SET` objects each.
    list_requests: usize,
    pods: usize,
    pod_list_repetitions: usize,
    watch_writes: usize,
}

impl Plan {
    fn from_env() -> Plan {
        if std::env::var_os("NAVARCH_BENCH_QUICK").is_some() {
            Plan {
                requests: 100,
                list_requests: 100,
                pods: 1_000,
                pod_list_repetitions: 3,
                watch_writes: 10,
            }
        } else {
            Plan {
                requests: 1_000,
                list_requests: 400,
                pods: LIST_PODS,
                pod_list_repetitions: 10,
                watch_writes: 100,
            }
        }
    }
}

/// Latency samples of one measurement.
struct Sample {
    latencies_ms: Vec<f64>,
    wall: Duration,
}

impl Sample {
    fn new(mut latencies_ms: Vec<f64>, wall: Duration) -> Sample {
        latencies_ms.sort_by(f64::total_cmp);
        Sample { latencies_ms, wall }
    }

    fn p(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    fn per_second(&self) -> f64 {
        self.latencies_ms.len() as f64 / self.wall.as_secs_f64()
    }

    fn to_json(&self) -> Value {
        json!({
            "requests": self.latencies_ms.len(),
            "p50_ms": round(self.p(0.50)),
            "p99_ms": round(self.p(0.99)),
            "max_ms": round(self.latencies_ms.last().copied().unwrap_or(0.0)),
            "per_second": round(self.per_second()),
        })
    }
}

struct Bench {
    config: kube::Config,
    client: Client,
    server: ApiServer,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> Result<Bench> {
        let dir = tempfile::tempdir()?;
        let store = SqliteStore::open(dir.path().join("state.db")).await?;
        let shutdown = CancellationToken::new();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            bind_address: "127.0.0.1".parse()?,
            secure_port: 0,
            service_cidr: "10.43.0.0/16".parse()?,
        };
        let server = ApiServer::start(config, Arc::new(store), shutdown.clone()).await?;
        let kubeconfig = Kubeconfig::read_from(server.kubeconfig_path())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        let client = Client::try_from(config.clone())?;
        Ok(Bench {
            config,
            client,
            server,
            shutdown,
            _dir: dir,
        })
    }

    /// `n` clients with a connection each, already connected.
    async fn clients(&self, n: usize) -> Result<Vec<Client>> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            let client = Client::try_from(self.config.clone())?;
            client.apiserver_version().await?;
            clients.push(client);
        }
        Ok(clients)
    }

    async fn namespace(&self, name: &str) -> Result<()> {
        let ns = Namespace {
            metadata: meta(name),
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await?;
        Ok(())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.server.stopped().await;
    }
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..Default::default()
    }
}

/// A ConfigMap of about 300 bytes.
fn configmap(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            labels: Some([("app".to_string(), "bench".to_string())].into()),
            ..meta(name)
        },
        data: Some([("payload".to_string(), "x".repeat(128))].into()),
        ..Default::default()
    }
}

/// A pod as a Deployment's ReplicaSet would create it (about 2.5 KB once defaulted).
fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "labels": {"app": "web", "pod-template-hash": "5d4f8c7b9"},
        },
        "spec": {
            "containers": [{
                "name": "web",
                "image": "registry.local/web:1.4.2",
                "ports": [{"containerPort": 8080, "name": "http"}],
                "env": [{"name": "MODE", "value": "production"}],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"memory": "128Mi"}
                },
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}
            }]
        }
    }))?)
}

/// Run `per_client` operations on each client concurrently; returns every latency.
async fn run_clients<F, Fut>(clients: &[Client], total: usize, op: F) -> Result<Sample>
where
    F: Fn(Client, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let per_client = total.div_ceil(clients.len());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (w, client) in clients.iter().enumerate() {
        let (client, op) = (client.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let t = Instant::now();
                op(client.clone(), w * per_client + i).await?;
                latencies.push(ms(t.elapsed()));
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(Sample::new(all, started.elapsed()))
}

/// create, get and list at each concurrency level.
async fn latency(bench: &Bench, plan: Plan) -> Result<Vec<(String, usize, Sample)>> {
    bench.namespace("read").await?;
    let reads: Api<ConfigMap> = Api::namespaced(bench.client.clone(), "read");
    for i in 0..READ_SET {
        reads
            .create(&PostParams::default(), &configmap(&format!("cm-{i:03}")))
            .await?;
    }
    let mut results = Vec::new();
    for level in LEVELS {
        let clients = bench.clients(level).await?;
        let ns = format!("create-{level}");
        bench.namespace(&ns).await?;

        let create = run_clients(&clients, plan.requests, move |client, i| {
            let ns = ns.clone();
            async move {
                Api::<ConfigMap>::namespaced(client, &ns)
                    .create(&PostParams::default(), &configmap(&format!("cm-{i:05}")))
                    .await?;
                Ok(())
            }
        })
        .await?;
        results.push(("create".to_string(), level, create));

        let get = run_clients(&clients, plan.requests, |client, i| async move {
            let name = format!("cm-{:03}", (i * 7) % READ_SET);
            Api::<ConfigMap>::namespaced(client, "read")
                .get(&name)
                .await?;
            Ok(())
        })
        .await?;
        results.push(("get".to_string(), level, get));

        let list = run_clients(&clients, plan.list_requests, |client, _| async move {
            let list = Api::<ConfigMap>::namespaced(client, "read")
                .list(&ListParams::default())
                .await?;
            if list.items.len() != READ_SET {
                bail!(
                    "listed {} ConfigMaps, expected {READ_SET}",
                    list.items.len()
                );
            }
            Ok(())
        })
        .await?;
        results.push((format!("list ({READ_SET} objects)"), level, list));
        println!("  {level} client(s) done");
    }
    Ok(results)
}

/// GET `path` and read the whole body; returns the time and the body size.
async fn timed_get(client: &Client, path: &str) -> Result<(f64, usize, Vec<u8>)> {
    let request = http::Request::get(path)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::empty())?;
    let t = Instant::now();
    let response = client.send(request).await?;
    let status = response.status();
    let body = response.into_body().collect_bytes().await?;
    let took = ms(t.elapsed());
    if !status.is_success() {
        bail!("GET {path}: {status}");
    }
    Ok((took, body.len(), body.to_vec()))
}

struct PodLists {
    pods: usize,
    load_seconds: f64,
    any: Sample,
    consistent: Sample,
    paged: Sample,
    bytes: usize,
}

/// Load `plan.pods` pods, then list them whole (from the cache) and in pages of 500.
async fn pod_lists(bench: &Bench, plan: Plan) -> Result<PodLists> {
    bench.namespace("pods").await?;
    let clients = bench.clients(20).await?;
    let load = run_clients(&clients, plan.pods, |client, i| async move {
        Api::<Pod>::namespaced(client, "pods")
            .create(
                &PostParams::default(),
                &pod(&format!("web-5d4f8c7b9-{i:05}"))?,
            )
            .await?;
        Ok(())
    })
    .await?;
    let path = "/api/v1/namespaces/pods/pods";
    let whole = |query: &'static str| {
        let client = bench.client.clone();
        async move {
            let started = Instant::now();
            let mut latencies = Vec::new();
            let mut size = 0;
            for _ in 0..plan.pod_list_repetitions {
                let (took, len, body) = timed_get(&client, &format!("{path}{query}")).await?;
                let list: Value = serde_json::from_slice(&body)?;
                let n = list["items"].as_array().map_or(0, Vec::len);
                if n != plan.pods {
                    bail!("listed {n} pods, expected {}", plan.pods);
                }
                latencies.push(took);
                size = len;
            }
            Ok::<_, anyhow::Error>((Sample::new(latencies, started.elapsed()), size))
        }
    };
    let (any, bytes) = whole("?resourceVersion=0").await?;
    let (consistent, _) = whole("").await?;

    let started = Instant::now();
    let mut latencies = Vec::new();
    for _ in 0..plan.pod_list_repetitions {
        let t = Instant::now();
        let mut token = String::new();
        let mut seen = 0;
        loop {
            let query = if token.is_empty() {
                "?limit=500".to_string()
            } else {
                format!("?limit=500&continue={token}")
            };
            let (_, _, body) = timed_get(&bench.client, &format!("{path}{query}")).await?;
            let page: Value = serde_json::from_slice(&body)?;
            seen += page["items"].as_array().map_or(0, Vec::len);
            token = page["metadata"]["continue"]
                .as_str()
                .unwrap_or("")
                .to_string();
            if token.is_empty() {
                break;
            }
        }
        if seen != plan.pods {
            bail!("paged through {seen} pods, expected {}", plan.pods);
        }
        latencies.push(ms(t.elapsed()));
    }
    let paged = Sample::new(latencies, started.elapsed());
    Ok(PodLists {
        pods: plan.pods,
        load_seconds: load.wall.as_secs_f64(),
        any,
        consistent,
        paged,
        bytes,
    })
}

struct Fanout {
    first: Sample,
    last: Sample,
    writes: Sample,
}

/// `WATCHERS` watchers on one namespace; each write's delivery to the first and last of them.
async fn fanout(bench: &Bench, plan: Plan) -> Result<Fanout> {
    bench.namespace("fanout").await?;
    let api: Api<ConfigMap> = Api::namespaced(bench.client.clone(), "fanout");
    let rv = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("list without resourceVersion")?;
    let clients = bench.clients(WATCHERS).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
    let mut watchers = Vec::new();
    for client in clients {
        let (tx, rv) = (tx.clone(), rv.clone());
        watchers.push(tokio::spawn(async move {
            let api: Api<ConfigMap> = Api::namespaced(client, "fanout");
            let mut stream = api.watch(&WatchParams::default(), &rv).await?.boxed();
            while let Some(event) = stream.next().await {
                if let WatchEvent::Added(cm) = event? {
                    let index = cm.name_any()["tick-".len()..].parse()?;
                    if tx.send((index, Instant::now())).is_err() {
                        break;
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    drop(tx);

    // Tick 0 only proves that every watcher is connected; it is not measured.
    let ticks = plan.watch_writes + 1;
    let mut starts = Vec::with_capacity(ticks);
    let mut write_latencies = Vec::with_capacity(ticks);
    let mut seen: Vec<Vec<Instant>> = vec![Vec::with_capacity(WATCHERS); ticks];
    let deadline = Duration::from_secs(30);
    let started = Instant::now();
    for tick in 0..ticks {
        let t = Instant::now();
        starts.push(t);
        api.create(
            &PostParams::default(),
            &configmap(&format!("tick-{tick:04}")),
        )
        .await?;
        write_latencies.push(ms(t.elapsed()));
        // One write at a time, so that each delivery is measured on an idle server.
        while seen[tick].len() < WATCHERS {
            let (index, at) = tokio::time::timeout(deadline, rx.recv())
                .await
                .map_err(|_| anyhow!("tick {tick}: only {} watchers saw it", seen[tick].len()))?
                .ok_or_else(|| anyhow!("every watcher ended"))?;
            seen[index].push(at);
        }
    }
    let wall = started.elapsed();
    for w in watchers {
        w.abort();
    }
    let mut first = Vec::new();
    let mut last = Vec::new();
    for (tick, at) in seen.iter().enumerate().skip(1) {
        let min = at.iter().min().context("no delivery")?;
        let max = at.iter().max().context("no delivery")?;
        first.push(ms(*min - starts[tick]));
        last.push(ms(*max - starts[tick]));
    }
    Ok(Fanout {
        first: Sample::new(first, wall),
        last: Sample::new(last, wall),
        writes: Sample::new(write_latencies.split_off(1), wall),
    })
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

fn print_table(
    latency: &[(String, usize, Sample)],
    pods: &PodLists,
    fanout: &Fanout,
    elapsed: Duration,
) {
    println!(
        "\nAPI benchmark: in-process server, SQLite store, HTTPS on loopback, kube-rs clients ({:.0} s)\n",
        elapsed.as_secs_f64()
    );
    println!(
        "{:<34} {:>7} {:>8} {:>9} {:>9} {:>9}",
        "request", "clients", "requests", "p50 ms", "p99 ms", "req/s"
    );
    for (verb, level, s) in latency {
        println!(
            "{:<34} {:>7} {:>8} {:>9.2} {:>9.2} {:>9.0}",
            verb,
            level,
            s.latencies_ms.len(),
            s.p(0.5),
            s.p(0.99),
            s.per_second()
        );
    }
    println!(
        "\nlist of {} pods ({:.1} MB of JSON; loaded by 20 clients in {:.1} s)",
        pods.pods,
        pods.bytes as f64 / 1e6,
        pods.load_seconds
    );
    println!("{:<34} {:>8} {:>9} {:>9}", "", "lists", "p50 ms", "p99 ms");
    for (label, s) in [
        ("resourceVersion=0 (cache, any)", &pods.any),
        ("consistent (cache, caught up)", &pods.consistent),
        ("pages of 500, all pages", &pods.paged),
    ] {
        println!(
            "{:<34} {:>8} {:>9.2} {:>9.2}",
            label,
            s.latencies_ms.len(),
            s.p(0.5),
            s.p(0.99)
        );
    }
    println!("\nwatch fan-out to {WATCHERS} watchers (from the start of the write)");
    println!("{:<34} {:>8} {:>9} {:>9}", "", "writes", "p50 ms", "p99 ms");
    for (label, s) in [
        ("write acknowledged", &fanout.writes),
        ("first watcher has the event", &fanout.first),
        ("last watcher has the event", &fanout.last),
    ] {
        println!(
            "{:<34} {:>8} {:>9.2} {:>9.2}",
            label,
            s.latencies_ms.len(),
            s.p(0.5),
            s.p(0.99)
        );
    }
}

fn results_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("bench-results"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-results"),
    }
}

fn write_json(
    latency: &[(String, usize, Sample)],
    pods: &PodLists,
    fanout: &Fanout,
    plan: Plan,
) -> Result<PathBuf> {
    let dir = results_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("api.json");
    let latency: Vec<Value> = latency
        .iter()
        .map(|(verb, level, s)| {
            let mut v = s.to_json();
            v["request"] = json!(verb);
            v["clients"] = json!(level);
            v
        })
        .collect();
    let doc = json!({
        "benchmark": "api",
        "setup": "in-process apiserver, SQLite store, HTTPS on 127.0.0.1, kube-rs clients, one connection each",
        "quick": std::env::var_os("NAVARCH_BENCH_QUICK").is_some(),
        "latency": latency,
        "pod_list": {
            "pods": pods.pods,
            "bytes": pods.bytes,
            "load_seconds": round(pods.load_seconds),
            "resource_version_0": pods.any.to_json(),
            "consistent": pods.consistent.to_json(),
            "paged_500": pods.paged.to_json(),
        },
        "watch_fanout": {
            "watchers": WATCHERS,
            "writes": plan.watch_writes,
            "write_ack": fanout.writes.to_json(),
            "first_watcher": fanout.first.to_json(),
            "last_watcher": fanout.last.to_json(),
        },
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(path.canonicalize().unwrap_or(path))
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing and expects no
    // long run, so only a real benchmark invocation measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("api benchmark: run with `cargo bench -p navarch-benches --bench api`");
        return Ok(());
    }
    let plan = Plan::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let bench = Bench::start().await?;
        println!("create/get/list latency…");
        let latency = latency(&bench, plan).await?;
        println!("loading {} pods…", plan.pods);
        let pods = pod_lists(&bench, plan).await?;
        println!("watch fan-out…");
        let fanout = fanout(&bench, plan).await?;
        bench.stop().await;
        print_table(&latency, &pods, &fanout, started.elapsed());
        let path = write_json(&latency, &pods, &fanout, plan)?;
        println!("\nwrote {}", path.display());
        Ok(())
    })
}
