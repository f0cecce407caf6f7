//! Soak: the local stack binary (its own process, so its resident memory is its own) under
//! steady ingest for a long run, with readers and dashboards, printing its resident memory
//! minute by minute. The goal: memory flat after warm-up (every minute of the last third
//! within 10 % of the minute a third of the way in; for 30 minutes, minutes 20 to 30
//! against minute 10) and under 100 MiB, at 1,500 events/s or more.
//!
//! Workload: 4 writers send 50-event batches paced to `SOAK_RATE` events/s in all (default
//! 1,600) over 2,000 agents (executions started and finished), 200 integrations (calls), 5
//! hosts (samples) and the queue gauge; 2 readers each read one list (agents,
//! integrations, alerts, system in turn) every half second; 3 dashboards hold a WebSocket
//! and read every update; the collector cycles every second. Run: `./scripts/bench soak
//! [minutes]` (default 30).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

const WRITERS: u64 = 4;
const READERS: usize = 2;
const DASHBOARDS: usize = 3;
const BATCH: u64 = 50;
const AGENTS: u64 = 2_000;
const INTEGRATIONS: u64 = 200;
const HOSTS: u64 = 5;
/// Events/s the goal asks for.
const GOAL_RATE: f64 = 1_500.0;
/// Resident memory the goal allows, MiB.
const GOAL_RSS_MIB: f64 = 100.0;

/// Counters the workload's tasks share.
#[derive(Default)]
struct Counts {
    accepted: AtomicU64,
    refused: AtomicU64,
    reads: AtomicU64,
    read_errors: AtomicU64,
    updates: AtomicU64,
    update_bytes: AtomicU64,
    reconnects: AtomicU64,
}

/// Batch `b` of writer `w`: executions started and finished (10 of each), integration
/// calls (25), a host sample and a gauge (5 more events, alternating).
fn batch(w: u64, b: u64) -> Value {
    let seq = b * WRITERS + w;
    let mut events = Vec::with_capacity(BATCH as usize);
    for k in 0..BATCH {
        let n = seq * BATCH + k;
        let id = format!("w{w}-b{b}-{k}");
        // Each group of ten events starts and finishes two executions of one agent.
        let group = k / 10;
        let agent = format!("agent-{:04}", (seq * (BATCH / 10) + group) % AGENTS);
        let e = match k % 10 {
            0 | 1 => {
                json!({"event_id": id, "type": "execution.started", "agent_id": agent,
                       "execution_id": format!("w{w}-b{b}-x{group}-{}", k % 10), "operation": "Processing leads"})
            }
            2 | 3 => {
                json!({"event_id": id, "type": "execution.finished", "agent_id": agent,
                       "execution_id": format!("w{w}-b{b}-x{group}-{}", k % 10 - 2),
                       "outcome": if n % 23 == 0 { "failed" } else { "completed" },
                       "duration_ms": 800 + n % 900, "confidence": 0.85,
                       "input_tokens": 1200, "output_tokens": 300})
            }
            4..=8 => {
                json!({"event_id": id, "type": "integration.call",
                       "integration_id": format!("integration-{:03}", n % INTEGRATIONS),
                       "latency_ms": 60 + n % 400, "ok": n % 31 != 0})
            }
            _ if n % 20 < 10 => {
                json!({"event_id": id, "type": "host.sample", "host_id": format!("host-{}", n % HOSTS),
                       "cpu_usage": (30 + n % 40) as f64, "memory_usage": 55.0, "disk_usage": 40.0})
            }
            _ => json!({"event_id": id, "type": "gauge", "name": "queue_depth", "value": n % 40}),
        };
        events.push(e);
    }
    json!({ "events": events })
}

async fn writer(
    w: u64,
    client: reqwest::Client,
    url: String,
    key: String,
    rate: f64,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    // Each writer sends its share of the rate; a late batch is sent at once, not made up
    // for in a burst.
    let every = Duration::from_secs_f64(BATCH as f64 * WRITERS as f64 / rate);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut b = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let status = client
            .post(format!("{url}/api/health/events"))
            .bearer_auth(&key)
            .json(&batch(w, b))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        if status == 202 {
            counts.accepted.fetch_add(BATCH, Ordering::Relaxed);
        } else {
            counts.refused.fetch_add(1, Ordering::Relaxed);
        }
        b += 1;
    }
}

async fn reader(
    r: usize,
    client: reqwest::Client,
    url: String,
    key: String,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
) {
    let paths = ["agents", "integrations", "alerts", "system"];
    let mut i = r;
    while !stop.load(Ordering::Relaxed) {
        let ok = client
            .get(format!("{url}/api/health/{}", paths[i % paths.len()]))
            .bearer_auth(&key)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        counts.reads.fetch_add(1, Ordering::Relaxed);
        counts
            .read_errors
            .fetch_add(u64::from(!ok), Ordering::Relaxed);
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A dashboard: reads every message; reconnects (and counts it) if the stack closes it.
async fn dashboard(ws_url: String, stop: Arc<AtomicBool>, counts: Arc<Counts>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut socket, _)) = tokio_tungstenite::connect_async(&ws_url).await else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        };
        while let Some(Ok(message)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = message {
                counts.updates.fetch_add(1, Ordering::Relaxed);
                counts
                    .update_bytes
                    .fetch_add(t.len() as u64, Ordering::Relaxed);
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
        }
        counts.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs the soak for `minutes` and prints the curve and the verdict.
pub async fn soak_benchmark(minutes: u64) {
    let rate: f64 = std::env::var("SOAK_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r: &f64| *r > 0.0)
        .unwrap_or(1_600.0);
    // Knobs for finding what grows (the goal is judged on the defaults).
    let knob =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    let polling = knob("SOAK_POLLING_INTERVAL", "1");
    let dashboards: usize = knob("SOAK_DASHBOARDS", "3").parse().unwrap_or(DASHBOARDS);
    let binary =
        std::env::var("SOAK_STACK").unwrap_or_else(|_| "target/release/local-stack".to_owned());
    let binary = binary.as_str();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    // SOAK_DATA_DIR keeps the database for a look afterwards; SOAK_STDERR keeps what the
    // stack writes there (e.g. malloc_stats() called from a debugger).
    let data_dir = std::env::var_os("SOAK_DATA_DIR")
        .map_or_else(|| dir.path().to_owned(), std::path::PathBuf::from);
    let stderr = match std::env::var_os("SOAK_STDERR").map(std::path::PathBuf::from) {
        Some(path) => Stdio::from(
            std::fs::File::create(&path)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display())),
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(binary)
        .env("PORT", "0")
        .env("HEALTH_DATA_DIR", &data_dir)
        .env("HEALTH_SIDECAR_INTERVAL", "0")
        .env("HEALTH_POLLING_INTERVAL", &polling)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {binary} (scripts/bench builds it): {e}"));
    let pid = child.id();
    let mut lines = BufReader::new(
        child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("the stack has no stdout")),
    )
    .lines()
    .map_while(Result::ok);
    // Log lines (JSON on stdout when it is not a terminal) may come before the banner.
    let mut banner = |prefix: &str| {
        lines
            .by_ref()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("the stack printed no {prefix:?} line"))
    };
    let url = banner("Listening on ");
    let key = banner("API key: ");
    // The rest of its output (log lines) is read, or the stack would block once the pipe
    // filled; warnings and errors are counted and the first few kept for the report.
    let logs = std::thread::spawn(move || {
        let (mut count, mut first) = (0u64, Vec::new());
        for line in lines {
            if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                count += 1;
                if first.len() < 5 {
                    first.push(line);
                }
            }
        }
        (count, first)
    });
    let ws_url = format!("{}/ws?token={key}", url.replacen("http://", "ws://", 1));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(16)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the HTTP client: {e}"));
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Counts::default());
    println!(
        "soak: {minutes} min, {WRITERS} writers at {rate:.0} events/s in all ({BATCH}-event batches over {AGENTS} agents, {INTEGRATIONS} integrations, {HOSTS} hosts), {READERS} readers, {dashboards} dashboards, collector every {polling} s; stack pid {pid}"
    );
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        tasks.push(tokio::spawn(writer(
            w,
            client.clone(),
            url.clone(),
            key.clone(),
            rate,
            Arc::clone(&stop),
            Arc::clone(&counts),
        )));
    }
    for r in 0..READERS {
        tasks.push(tokio::spawn(reader(
            r,
            client.clone(),
            url.clone(),
            key.clone(),
            Arc::clone(&stop),
            Arc::clone(&counts),
        )));
    }
    for _ in 0..dashboards {
        tasks.push(tokio::spawn(dashboard(
            ws_url.clone(),
            Arc::clone(&stop),
            Arc::clone(&counts),
        )));
    }
    println!("\n| minute | RSS MiB | events/s | refused batches | reads | read errors | update messages | update MB | reconnects |");
    println!("|---|---|---|---|---|---|---|---|---|");
    println!(
        "| 0 | {:.1} | | | | | | | |",
        super::stack::memory_mib(pid, "VmRSS")
    );
    let started = Instant::now();
    let mut curve = vec![super::stack::memory_mib(pid, "VmRSS")];
    let mut rates = Vec::new();
    let mut last = (0, 0, 0, 0, 0, 0, 0);
    for minute in 1..=minutes {
        let at = started + Duration::from_secs(60 * minute);
        tokio::time::sleep_until(at.into()).await;
        let now = (
            counts.accepted.load(Ordering::Relaxed),
            counts.refused.load(Ordering::Relaxed),
            counts.reads.load(Ordering::Relaxed),
            counts.read_errors.load(Ordering::Relaxed),
            counts.updates.load(Ordering::Relaxed),
            counts.update_bytes.load(Ordering::Relaxed),
            counts.reconnects.load(Ordering::Relaxed),
        );
        let rss = super::stack::memory_mib(pid, "VmRSS");
        let rate = (now.0 - last.0) as f64 / 60.0;
        println!(
            "| {minute} | {rss:.1} | {rate:.0} | {} | {} | {} | {} | {:.1} | {} |",
            now.1 - last.1,
            now.2 - last.2,
            now.3 - last.3,
            now.4 - last.4,
            (now.5 - last.5) as f64 / 1e6,
            now.6 - last.6,
        );
        curve.push(rss);
        rates.push(rate);
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    // The writers and readers finish their request in flight; the dashboards are dropped.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for t in &tasks {
        t.abort();
    }
    // Idle: what the stack gives back once the load stops.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let idle = super::stack::memory_mib(pid, "VmRSS");
    let db_mib = std::fs::metadata(data_dir.join("health.redb"))
        .map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64);
    let _ = child.kill();
    let _ = child.wait();
    let (warnings, first) = logs.join().unwrap_or_default();
    if warnings > 0 {
        println!("\nthe stack logged {warnings} warnings or errors; the first:");
        for line in first {
            println!("    {line}");
        }
    }
    let total = last.0;
    println!(
        "\nidle 30 s after the load stopped: RSS {idle:.1} MiB; database file {db_mib:.0} MiB; {total} events accepted"
    );
    verdict(&curve, &rates);
}

/// Prints whether the run met the goal: the rate, memory under the bound, and flat after
/// warm-up (the last third of the minutes within 10 % of the minute a third of the way in).
fn verdict(curve: &[f64], rates: &[f64]) {
    let minutes = curve.len() - 1;
    if minutes < 3 {
        println!("verdict: too short to judge (run at least 3 minutes)");
        return;
    }
    let reference_minute = minutes.div_ceil(3);
    let reference = curve[reference_minute];
    let checked = &curve[minutes - minutes / 3..];
    let worst = checked
        .iter()
        .map(|r| (r - reference).abs() / reference)
        .fold(0.0, f64::max);
    let peak = curve.iter().copied().fold(0.0, f64::max);
    let mean_rate = rates.iter().sum::<f64>() / rates.len() as f64;
    let slowest = rates.iter().copied().fold(f64::INFINITY, f64::min);
    let flat = worst <= 0.10;
    let bounded = peak < GOAL_RSS_MIB;
    let fast = slowest >= GOAL_RATE;
    println!(
        "verdict: rate {} (mean {mean_rate:.0}, slowest minute {slowest:.0} events/s; goal >= {GOAL_RATE:.0}); \
         flat {} (minutes {}..{} within {:.1} % of minute {reference_minute}'s {reference:.1} MiB; goal <= 10 %); \
         bounded {} (peak {peak:.1} MiB; goal < {GOAL_RSS_MIB:.0})",
        if fast { "MET" } else { "MISSED" },
        if flat { "MET" } else { "MISSED" },
        minutes - minutes / 3,
        minutes,
        worst * 100.0,
        if bounded { "MET" } else { "MISSED" },
    );
}
