//! Ingestion benchmark: throughput (events/s) and per-batch latency (p50/p99) on the
//! embedded store and, when `HEALTH_TEST_DYNAMODB_ENDPOINT` names a DynamoDB-compatible
//! server, on it; plus the DynamoDB request units an ingested event costs, computed from
//! item sizes with DynamoDB's billing rules (moto's own figures are not DynamoDB's).
//!
//! Run: `./scripts/bench` (release build, starts moto). Prints Markdown for
//! docs/benchmarks.md.

// A benchmark stops at its first error, and `expect` says what it was doing; the workspace
// denies `expect_used` for the code it measures.
#![allow(clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;
use shared::domain::events::{parse_batch, Event};
use shared::store::dynamodb::item_size;
use shared::store::{Backend, End, ItemKey, Range, Store, StoreError, StoredItem, Write};

mod bomb;
mod broadcast;
mod collector;
mod contention;
mod cost;
mod events;
mod export;
mod notify;
mod otlp;
mod soak;
mod stack;

/// Counts the request units a backend's calls would cost on DynamoDB, in tenths.
#[derive(Debug)]
struct Metered {
    inner: Arc<dyn Backend>,
    read_tenths: AtomicU64,
    write_tenths: AtomicU64,
    requests: AtomicU64,
}

fn units(size: usize, unit: usize) -> u64 {
    u64::try_from(size.div_ceil(unit).max(1)).unwrap_or(u64::MAX)
}

impl Metered {
    fn new(inner: Arc<dyn Backend>) -> Self {
        Self {
            inner,
            read_tenths: AtomicU64::new(0),
            write_tenths: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        self.read_tenths.store(0, Ordering::Relaxed);
        self.write_tenths.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
    }

    /// A read by key: 1 RU per 4 KB per item, at least 1 even for a missing item, in
    /// tenths (10 strongly consistent, 5 eventually).
    fn count_get(&self, items: &[Option<StoredItem>], tenths: u64) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let ru: u64 = items
            .iter()
            .map(|i| {
                i.as_ref()
                    .map_or(Ok(1), |i| item_size(i).map(|s| units(s, 4096)))
            })
            .sum::<Result<u64, _>>()?;
        self.read_tenths.fetch_add(ru * tenths, Ordering::Relaxed);
        Ok(())
    }

    fn count_query(&self, items: &[StoredItem]) -> Result<(), StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let size: usize = items.iter().map(item_size).sum::<Result<usize, _>>()?;
        self.read_tenths
            .fetch_add(units(size, 4096) * 10, Ordering::Relaxed);
        Ok(())
    }
}

#[async_trait]
impl Backend for Metered {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        let out = self.inner.get(keys).await?;
        self.count_get(&out, 10)?;
        Ok(out)
    }
    async fn get_eventual(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        let out = self.inner.get_eventual(keys).await?;
        self.count_get(&out, 5)?;
        Ok(out)
    }
    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        let out = self.inner.query(pk, from, to).await?;
        self.count_query(&out)?;
        Ok(out)
    }
    async fn query_end(&self, range: &Range, end: End) -> Result<Vec<StoredItem>, StoreError> {
        // Only the items read: the whole range is not billed.
        let out = self.inner.query_end(range, end).await?;
        self.count_query(&out)?;
        Ok(out)
    }
    async fn query_eventual(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let out = self.inner.query_eventual(pk, from, to).await?;
        // Eventually consistent: half the units of a strongly consistent Query.
        let size: usize = out.iter().map(item_size).sum::<Result<usize, _>>()?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.read_tenths
            .fetch_add(units(size, 4096) * 5, Ordering::Relaxed);
        Ok(out)
    }
    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        // The inner backend's own batching (concurrent queries on DynamoDB), metered as
        // one query request per range.
        let out = self.inner.query_many(ranges).await?;
        for items in &out {
            self.count_query(items)?;
        }
        Ok(out)
    }
    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        let out = self.inner.list_index(index_pk).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        // A keys-only index Query, eventually consistent: 0.5 RU per 4 KB returned. Each
        // entry holds the table key and the index key (about twice the table key's bytes).
        let bytes: usize = out.iter().map(|k| 2 * (k.pk.len() + k.sk.len()) + 16).sum();
        self.read_tenths
            .fetch_add(units(bytes, 4096) * 5, Ordering::Relaxed);
        Ok(out)
    }
    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        // One item: a plain PutItem, 1 WU per KB. More: a transaction, 2 WU per KB per item.
        let factor = if writes.len() == 1 { 10 } else { 20 };
        let wu: u64 = writes
            .iter()
            .map(|w| item_size(&w.item).map(|s| units(s, 1024)))
            .sum::<Result<u64, _>>()?;
        let result = self.inner.write(writes).await;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.write_tenths.fetch_add(wu * factor, Ordering::Relaxed);
        result
    }
    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError> {
        // A DeleteItem of a small item: 1 WU.
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.write_tenths.fetch_add(10, Ordering::Relaxed);
        self.inner.delete(key).await
    }
    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }
}

/// A realistic mixed batch: executions starting and finishing across 50 agents, calls to
/// 10 integrations, samples from 5 hosts, and a gauge.
fn mixed_batch(seq: usize, size: usize, now: i64) -> Vec<Event> {
    let mut events = Vec::with_capacity(size);
    for i in 0..size {
        let n = seq * size + i;
        let id = format!("ev-{n}");
        let agent = format!("agent-{:02}", n % 50);
        let e = match i % 20 {
            0..=3 => {
                json!({"event_id": id, "type": "execution.started", "agent_id": agent, "execution_id": format!("x{}", n / 2), "operation": "Processing leads"})
            }
            4..=7 => {
                json!({"event_id": id, "type": "execution.finished", "agent_id": agent, "execution_id": format!("x{}", n / 2), "outcome": if n % 9 == 0 { "failed" } else { "completed" }, "duration_ms": 1200 + n % 700, "confidence": 0.8})
            }
            8..=15 => {
                json!({"event_id": id, "type": "integration.call", "integration_id": format!("integration-{}", n % 10), "latency_ms": 80 + n % 300, "ok": n % 17 != 0})
            }
            16..=18 => {
                json!({"event_id": id, "type": "host.sample", "host_id": format!("host-{}", n % 5), "cpu_usage": (n % 100) as f64, "memory_usage": 55.5, "disk_usage": 40.0, "load_average": [0.5, 0.4, 0.3], "uptime_seconds": 86400})
            }
            _ => json!({"event_id": id, "type": "gauge", "name": "queue_depth", "value": n % 40}),
        };
        events.push(e);
    }
    let body = json!({ "events": events }).to_string();
    parse_batch(body.as_bytes(), now).unwrap_or_else(|e| panic!("bad benchmark batch: {e:?}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied().unwrap_or(0.0)
}

struct Figures {
    events_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    rcu_per_event: f64,
    wcu_per_event: f64,
    requests_per_event: f64,
}

async fn run(backend: Arc<dyn Backend>, batches: usize, batch_size: usize) -> Figures {
    let metered = Arc::new(Metered {
        inner: backend,
        read_tenths: AtomicU64::new(0),
        write_tenths: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let store = Store::new(metered.clone());
    let now = chrono::Utc::now().timestamp_millis();
    let prepared: Vec<Vec<Event>> = (0..batches)
        .map(|s| mixed_batch(s, batch_size, now))
        .collect();
    // Warm-up: one batch registers the entities, so the figures are for steady state.
    let warm = mixed_batch(batches + 1, batch_size, now);
    store
        .ingest("bench", &warm, now)
        .await
        .expect("ingesting the warm-up batch");
    metered.read_tenths.store(0, Ordering::Relaxed);
    metered.write_tenths.store(0, Ordering::Relaxed);
    metered.requests.store(0, Ordering::Relaxed);
    let mut latencies = Vec::with_capacity(batches);
    let start = Instant::now();
    for batch in &prepared {
        let t = Instant::now();
        let outcome = store
            .ingest("bench", batch, now)
            .await
            .expect("ingesting a timed batch");
        assert_eq!(outcome.accepted, batch.len());
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let events = (batches * batch_size) as f64;
    Figures {
        events_per_s: events / elapsed,
        p50_ms: percentile(&latencies, 0.5),
        p99_ms: percentile(&latencies, 0.99),
        rcu_per_event: metered.read_tenths.load(Ordering::Relaxed) as f64 / 10.0 / events,
        wcu_per_event: metered.write_tenths.load(Ordering::Relaxed) as f64 / 10.0 / events,
        requests_per_event: metered.requests.load(Ordering::Relaxed) as f64 / events,
    }
}

fn row(name: &str, batch: usize, f: &Figures, dynamodb: bool) {
    let units = if dynamodb {
        format!(
            "{:.2} | {:.2} | {:.2}",
            f.requests_per_event, f.rcu_per_event, f.wcu_per_event
        )
    } else {
        // The embedded store writes a whole batch in one transaction; DynamoDB figures
        // apply only to DynamoDB's 100-item transactions.
        "n/a | n/a | n/a".to_owned()
    };
    println!(
        "| {name} | {batch} | {:.0} | {:.2} | {:.2} | {units} |",
        f.events_per_s, f.p50_ms, f.p99_ms
    );
}

/// Seeds a tenant with 100 agents, 20 integrations, 5 hosts and 10 alerts.
async fn seed_reads(store: &Store, now: i64) {
    let mut events = Vec::new();
    for a in 0..100 {
        for x in 0..4 {
            let id = format!("{a}-{x}");
            events.push(json!({"event_id": format!("s{id}"), "type": "execution.started", "agent_id": format!("agent-{a:03}"), "execution_id": id, "operation": "Processing leads"}));
            if x < 3 {
                events.push(json!({"event_id": format!("f{id}"), "type": "execution.finished", "agent_id": format!("agent-{a:03}"), "execution_id": id, "outcome": if x == 0 { "failed" } else { "completed" }, "duration_ms": 900}));
            }
        }
    }
    for i in 0..20 {
        for c in 0..10 {
            events.push(json!({"event_id": format!("c{i}-{c}"), "type": "integration.call", "integration_id": format!("integration-{i:02}"), "latency_ms": 100 + c, "ok": c != 0}));
        }
    }
    for h in 0..5 {
        events.push(json!({"event_id": format!("h{h}"), "type": "host.sample", "host_id": format!("host-{h}"), "cpu_usage": 50, "memory_usage": 60}));
    }
    for chunk in events.chunks(1000) {
        e2e_tests::seed::ingest(store, "bench", json!(chunk), now).await;
    }
    for n in 0..10 {
        let alert = shared::domain::alerts::AlertRecord {
            severity: shared::domain::alerts::Severity::Warning,
            message: "High CPU usage: 85%".into(),
            source_id: format!("host-{}", n % 5),
            condition: format!("c{n}"),
            ..e2e_tests::seed::alert(&format!("alert-{n}"), now - n)
        };
        e2e_tests::seed::save_alert(store, "bench", &alert).await;
    }
}

/// p50 and p99 of `iterations` in-process calls of the library handler for `path`.
async fn time_endpoint(
    state: &shared::AppState,
    key: &str,
    method: &str,
    path: &str,
    iterations: usize,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {key}"))
            .body(bytes::Bytes::new())
            .expect("building the request");
        let t = Instant::now();
        let res = shared::api::handle(state, req, None).await;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(res.status().is_success(), "{path}: {}", res.body());
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

const READS: [(&str, &str); 7] = [
    ("GET", "/api/health/agent/agent-042"),
    ("GET", "/api/health/agents"),
    ("GET", "/api/health/integrations"),
    ("GET", "/api/health/system"),
    ("GET", "/api/health/alerts"),
    ("POST", "/api/health/alerts/alert-3/acknowledge"),
    (
        "GET",
        "/api/health/history/agent?entity_id=agent-042&days=30",
    ),
];

/// Each endpoint's p50 and p99 (µs) called in-process, and, with `http`, over HTTP.
async fn reads(
    backend: Arc<dyn Backend>,
    iterations: usize,
    http: bool,
) -> (Vec<(f64, f64)>, Vec<(f64, f64)>) {
    let store = Store::new(backend);
    let now = chrono::Utc::now().timestamp_millis();
    seed_reads(&store, now).await;
    let key = store
        .create_api_key("bench", &["read".to_owned()], "bench", now)
        .await
        .expect("creating the read key");
    let state = shared::AppState::new(store, shared::config::Config::default());
    let mut out = Vec::new();
    for (method, path) in READS {
        out.push(time_endpoint(&state, &key, method, path, iterations).await);
    }
    let mut over_http = Vec::new();
    if http {
        let running = local_stack::serve(state, e2e_tests::ANY_PORT, key.clone())
            .await
            .expect("serving the API over HTTP");
        for (method, path) in READS {
            over_http.push(time_http(&running.url(), &key, method, path, HTTP_CALLS).await);
        }
    }
    (out, over_http)
}

/// Calls per endpoint over HTTP: enough that p99 is not one stray sample.
const HTTP_CALLS: usize = 2_000;

/// p50 and p99 (µs) of `iterations` calls of one endpoint by one client over HTTP/1.1 on
/// loopback, one at a time on a kept-alive connection (as a dashboard or a script calls),
/// after 100 calls that warm the connection and the caches.
async fn time_http(
    base: &str,
    key: &str,
    method: &str,
    path: &str,
    iterations: usize,
) -> (f64, f64) {
    let client = reqwest::Client::new();
    let method: reqwest::Method = method.parse().expect("an HTTP method");
    let url = format!("{base}{path}");
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 100 {
        let t = Instant::now();
        let res = client
            .request(method.clone(), &url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("calling {path} over HTTP: {e}"));
        let status = res.status();
        let body = res
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading {path}'s answer over HTTP: {e}"));
        if i >= 100 {
            samples.push(t.elapsed().as_secs_f64() * 1e6);
        }
        assert!(status.is_success(), "{path} over HTTP: {status} {body:?}");
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

async fn read_benchmarks() {
    println!("\n| endpoint (100 agents, 20 integrations, 5 hosts, 10 alerts) | embedded p50 µs | embedded p99 µs | HTTP, one client, p50 µs | HTTP p99 µs | DynamoDB API (moto) p50 ms | moto p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    let (embedded, _dir) = collector::embedded_backend();
    let (local, http) = reads(embedded, 200, true).await;
    let remote = if std::env::var(e2e_tests::DYNAMODB_ENDPOINT_VAR).is_ok() {
        reads(Arc::new(e2e_tests::dynamo_backend().await), 10, false)
            .await
            .0
    } else {
        vec![(f64::NAN, f64::NAN); READS.len()]
    };
    for ((((method, path), (l50, l99)), (h50, h99)), (r50, r99)) in
        READS.iter().zip(local).zip(http).zip(remote)
    {
        println!(
            "| {method} {path} | {l50:.0} | {l99:.0} | {h50:.0} | {h99:.0} | {:.1} | {:.1} |",
            r50 / 1000.0,
            r99 / 1000.0
        );
    }
    big_lists().await;
}

/// The agents list at 10,000 agents on the embedded store, whole and in pages.
async fn big_lists() {
    let (backend, _dir) = collector::embedded_backend();
    let now = chrono::Utc::now().timestamp_millis();
    let fleet = collector::Fleet {
        agents: 10_000,
        integrations: 0,
        probed: 0,
        hosts: 0,
    };
    collector::seed(
        &backend,
        collector::fleet(fleet, now, "http://127.0.0.1:9/"),
    )
    .await;
    let store = Store::new(backend);
    let key = store
        .create_api_key(collector::TENANT, &["read".to_owned()], "bench", now)
        .await
        .expect("creating the read key");
    let state = shared::AppState::new(store, shared::config::Config::default());
    println!("\n| list at 10,000 agents (embedded, in-process) | p50 ms | p99 ms |");
    println!("|---|---|---|");
    for path in [
        "/api/health/agents",
        "/api/health/agents?limit=1000",
        "/api/health/agents?limit=100",
    ] {
        let (p50, p99) = time_endpoint(&state, &key, "GET", path, 30).await;
        println!("| GET {path} | {:.1} | {:.1} |", p50 / 1000.0, p99 / 1000.0);
    }
}

/// Time from starting a Lambda binary to its first request for work
/// (`GET /2018-06-01/runtime/invocation/next`), i.e. its cold-start initialisation, against
/// a minimal runtime API endpoint speaking the protocol cargo-lambda's emulator serves.
async fn cold_start(binary: &str, function: &str, runs: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (tx, rx) = tokio::sync::oneshot::channel::<Instant>();
        let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
        let app = axum::Router::new().route(
            "/2018-06-01/runtime/invocation/next",
            axum::routing::get(move || {
                let tx = tx.clone();
                async move {
                    if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                        let _ = tx.send(Instant::now());
                    }
                    // Never hand out work: the binary stays parked until killed.
                    std::future::pending::<()>().await;
                }
            }),
        );
        let (listener, addr) = e2e_tests::listener().await;
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let start = Instant::now();
        let mut child = tokio::process::Command::new(binary)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("HEALTH_FUNCTION", function)
            .env("HEALTH_TABLE", "bench")
            // What the template gives the broadcaster and the collector (never called here).
            .env("WEBSOCKET_MANAGEMENT_ENDPOINT", "http://127.0.0.1:9/live")
            .env("BROADCASTER_FUNCTION", "bench-broadcaster")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        let ready = tokio::time::timeout(std::time::Duration::from_secs(10), rx).await;
        let _ = child.kill().await;
        server.abort();
        match ready {
            Ok(Ok(at)) => samples.push(at.duration_since(start).as_secs_f64() * 1000.0),
            _ => panic!("{binary} did not ask for work within 10 s"),
        }
    }
    samples.sort_by(f64::total_cmp);
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

/// Sizes of the one Lambda binary (the deployed arm64 build from `sam build`, and the
/// x86_64 build this machine can run), and the cold start of every function it serves
/// (x86_64: arm64 binaries cannot run here).
async fn function_figures() {
    let size = |path: &str| {
        let bytes = std::fs::metadata(path).map(|m| m.len()).ok()?;
        let zipped = std::process::Command::new("gzip")
            .args(["-9", "-c", path])
            .output()
            .map(|o| o.stdout.len())
            .unwrap_or(0);
        Some((bytes, zipped))
    };
    println!("\n| binary | stripped bytes | compressed (gzip -9) bytes |");
    println!("|---|---|---|");
    let arm64 = [
        ".aws-sam/build/AuthorizerFunction-Shared/bootstrap",
        ".tools/sam-build/AuthorizerFunction-Shared/bootstrap",
    ];
    match arm64.iter().find_map(|p| size(p)) {
        Some((bytes, zipped)) => println!("| arm64 (sam build, deployed) | {bytes} | {zipped} |"),
        None => eprintln!("no arm64 build: run `sam build` (or ./scripts/test) first"),
    }
    let x86 = "target/lambda/health-lambda/bootstrap";
    let Some((bytes, zipped)) = size(x86) else {
        eprintln!("no {x86}: run cargo lambda build --release -p health-lambda first");
        return;
    };
    println!("| x86_64 (cargo lambda build --release) | {bytes} | {zipped} |");
    println!("\n| function (HEALTH_FUNCTION) | cold start p50 ms | p99 ms |");
    println!("|---|---|---|");
    for function in shared::lambda::function_names() {
        let (p50, p99) = cold_start(x86, function, 20).await;
        println!("| {function} | {p50:.1} | {p99:.1} |");
    }
}

/// The benchmarks `all` runs, in its order; each is also a name of its own.
const ALL: [&str; 12] = [
    "otlp-bomb",
    "otlp",
    "export",
    "cost",
    "events",
    "notify",
    "contention",
    "broadcast",
    "functions",
    "reads",
    "collector",
    "ingest",
];

/// Runs the benchmark `name`, one of [`ALL`]; false if there is none of that name.
async fn run_benchmark(name: &str) -> bool {
    match name {
        "otlp-bomb" => bomb::bomb_benchmark().await,
        "otlp" => otlp::otlp_benchmark().await,
        "export" => export::export_benchmark().await,
        "cost" => cost::cost_benchmark().await,
        "events" => events::event_benchmarks().await,
        "notify" => notify::notify_benchmarks().await,
        "contention" => contention::contention_benchmark().await,
        "broadcast" => broadcast::broadcast_benchmarks().await,
        "functions" => function_figures().await,
        "reads" => read_benchmarks().await,
        "collector" => collector::collector_benchmarks().await,
        "ingest" => ingest_benchmarks().await,
        _ => return false,
    }
    true
}

#[tokio::main]
async fn main() {
    let arg = |n: usize| std::env::args().nth(n);
    let what = arg(1).unwrap_or_else(|| "all".to_owned());
    match what.as_str() {
        // The child process of the broadcast benchmark.
        "ws-clients" => {
            let count = arg(3).and_then(|c| c.parse().ok()).unwrap_or(1);
            broadcast::clients(&arg(2).unwrap_or_default(), count).await;
        }
        // Not part of "all": it runs for half an hour unless told otherwise.
        "soak" => soak::soak_benchmark(arg(2).and_then(|m| m.parse().ok()).unwrap_or(30)).await,
        "all" => {
            for name in ALL {
                run_benchmark(name).await;
            }
        }
        name => {
            if !run_benchmark(name).await {
                eprintln!(
                    "unknown benchmark {what:?}: all (the default), {} or soak [minutes]",
                    ALL.join(", ")
                );
                std::process::exit(2);
            }
        }
    }
}

/// Ingestion throughput and latency on each store, and the request units an event costs.
async fn ingest_benchmarks() {
    println!("| store | events/batch | events/s | p50 batch ms | p99 batch ms | requests/event | RCU/event | WCU/event |");
    println!("|---|---|---|---|---|---|---|---|");
    for (batches, size) in [(200, 100), (20, 1000)] {
        let (backend, _dir) = collector::embedded_backend();
        row(
            "embedded (redb)",
            size,
            &run(backend, batches, size).await,
            false,
        );
    }
    if std::env::var(e2e_tests::DYNAMODB_ENDPOINT_VAR).is_ok() {
        // moto deep-copies the whole table for every item of a transaction, so its cost
        // grows with the table: keep its runs small (each on a fresh table).
        for (batches, size) in [(5, 100)] {
            let backend = e2e_tests::dynamo_backend().await;
            row(
                "DynamoDB API (moto)",
                size,
                &run(Arc::new(backend), batches, size).await,
                true,
            );
        }
    } else {
        eprintln!(
            "{} not set: DynamoDB figures skipped",
            e2e_tests::DYNAMODB_ENDPOINT_VAR
        );
    }
}
