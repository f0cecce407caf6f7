//! Contention: sixteen clients ingest for 30 s against the local stack binary (release
//! build, its own process, so its peak RSS is its own), each batch touching the client's
//! own agents plus one shared integration and the tenant's `queue_depth` gauge; two readers
//! poll the agents list and the system object meanwhile. Prints status counts (the goal
//! is no 5xx), throughput, ingest and read p50/p99, and the stack's peak RSS.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

const CLIENTS: usize = 16;
const READERS: usize = 2;
const RUN: Duration = Duration::from_secs(30);
const AGENTS_PER_CLIENT: usize = 25;

/// Runs the workload and prints one Markdown table.
pub async fn contention_benchmark() {
    let stack = super::stack::LocalStack::start(&[]);
    let (url, key) = (stack.url.clone(), stack.key.clone());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("building the HTTP client");
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut writers = Vec::new();
    for c in 0..CLIENTS {
        let (client, url, key, stop) = (client.clone(), url.clone(), key.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut statuses = std::collections::BTreeMap::<u16, u64>::new();
            let mut events = 0u64;
            let mut b = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut batch = Vec::new();
                for a in 0..AGENTS_PER_CLIENT {
                    let id = format!("c{c}-b{b}-a{a}");
                    batch.push(json!({"event_id": format!("{id}-s"), "type": "execution.started", "agent_id": format!("agent-{c}-{a}"), "execution_id": id, "operation": "work"}));
                    batch.push(json!({"event_id": format!("{id}-f"), "type": "execution.finished", "agent_id": format!("agent-{c}-{a}"), "execution_id": id, "outcome": "completed", "duration_ms": 120}));
                    batch.push(json!({"event_id": format!("{id}-c"), "type": "integration.call", "integration_id": "shared-slack", "latency_ms": 80, "ok": true}));
                }
                batch.push(json!({"event_id": format!("c{c}-b{b}-g"), "type": "gauge", "name": "queue_depth", "value": b % 50}));
                let n = batch.len() as u64;
                let t = Instant::now();
                let status = client
                    .post(format!("{url}/api/health/events"))
                    .bearer_auth(&key)
                    .json(&json!({ "events": batch }))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                *statuses.entry(status).or_default() += 1;
                if status == 202 {
                    events += n;
                }
                b += 1;
            }
            (latencies, statuses, events)
        }));
    }
    let mut readers = Vec::new();
    for r in 0..READERS {
        let (client, url, key, stop) = (client.clone(), url.clone(), key.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let path = if r % 2 == 0 { "agents" } else { "system" };
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = client
                    .get(format!("{url}/api/health/{path}"))
                    .bearer_auth(&key)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                errors += u64::from(!ok);
            }
            (latencies, errors)
        }));
    }
    tokio::time::sleep(RUN).await;
    stop.store(true, Ordering::Relaxed);
    let (mut ingest, mut statuses, mut events) = (Vec::new(), std::collections::BTreeMap::new(), 0);
    for w in writers {
        let (l, s, e) = w.await.expect("a writer task panicked");
        ingest.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_insert(0u64) += v;
        }
        events += e;
    }
    let (mut reads, mut read_errors) = (Vec::new(), 0);
    for r in readers {
        let (l, e) = r.await.expect("a reader task panicked");
        reads.extend(l);
        read_errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss = super::stack::memory_mib(stack.pid(), "VmHWM");
    drop(stack);
    ingest.sort_by(f64::total_cmp);
    reads.sort_by(f64::total_cmp);
    let p = super::percentile;
    let five_xx: u64 = statuses
        .iter()
        .filter(|(s, _)| **s >= 500 || **s == 0)
        .map(|(_, n)| *n)
        .sum();
    println!("\n| clients | batches | statuses | 5xx | events/s | ingest p50 / p99 ms | reads | read p50 / p99 ms | read errors | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {CLIENTS} + {READERS} readers, {} s | {} | {statuses:?} | {five_xx} | {:.0} | {:.1} / {:.1} | {} | {:.1} / {:.1} | {read_errors} | {rss:.1} |",
        RUN.as_secs(),
        ingest.len(),
        events as f64 / elapsed,
        p(&ingest, 0.5),
        p(&ingest, 0.99),
        reads.len(),
        p(&reads, 0.5),
        p(&reads, 0.99),
    );
}
