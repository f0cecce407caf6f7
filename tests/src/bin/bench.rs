//! Ingestion benchmark: throughput (events/s) and per-batch latency (p50/p99) on the
//! embedded store and, when `HEALTH_TEST_DYNAMODB_ENDPOINT` names a DynamoDB-compatible
//! server, on it; plus the DynamoDB request units an ingested event costs, computed from
//! item sizes with DynamoDB's billing rules (moto's own figures are not DynamoDB's).
//!
//! Run: `./scripts/bench` (release build, starts moto). Prints Markdown for
//! docs/benchmarks.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::json;
use shared::domain::events::{parse_batch, Event};
use shared::store::dynamodb::item_size;
use shared::store::{Backend, ItemKey, Store, StoreError, StoredItem, Write};

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

#[async_trait]
impl Backend for Metered {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        let out = self.inner.get(keys).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        // Strongly consistent: 1 RU per 4 KB per item, at least 1 even for a missing item.
        let ru: u64 = out
            .iter()
            .map(|i| {
                i.as_ref()
                    .map_or(Ok(1), |i| item_size(i).map(|s| units(s, 4096)))
            })
            .sum::<Result<u64, _>>()?;
        self.read_tenths.fetch_add(ru * 10, Ordering::Relaxed);
        Ok(out)
    }
    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        let out = self.inner.query(pk, from, to).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let size: usize = out.iter().map(item_size).sum::<Result<usize, _>>()?;
        self.read_tenths
            .fetch_add(units(size, 4096) * 10, Ordering::Relaxed);
        Ok(out)
    }
    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.inner.list_index(index_pk).await
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
        .unwrap_or_else(|e| panic!("{e}"));
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
            .unwrap_or_else(|e| panic!("{e}"));
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

#[tokio::main]
async fn main() {
    println!("| store | events/batch | events/s | p50 batch ms | p99 batch ms | requests/event | RCU/event | WCU/event |");
    println!("|---|---|---|---|---|---|---|---|");
    for (batches, size) in [(200, 100), (20, 1000)] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let backend =
            shared::store::embedded::EmbeddedBackend::open(&dir.path().join("bench.redb"))
                .unwrap_or_else(|e| panic!("{e}"));
        row(
            "embedded (redb)",
            size,
            &run(Arc::new(backend), batches, size).await,
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
