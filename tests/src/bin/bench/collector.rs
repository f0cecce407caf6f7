//! The collector benchmark: one cycle over 10,000 agents, 1,000 integrations (200 probed
//! against a local HTTP server) and 20 hosts, on the embedded store and on the
//! DynamoDB-compatible server, with wall time, CPU time, peak resident memory, and (on
//! DynamoDB) the request units each cycle costs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use e2e_tests::ProbeTarget;
use futures::stream::{self, StreamExt};
use shared::collector::Collector;
use shared::config::Config;
use shared::domain::live::Live;
use shared::domain::records::{
    AgentCounters, AgentRecord, ConnectionState, GaugeReading, HostRecord, IntegrationCounters,
    IntegrationRecord, Probe, SystemRecord,
};
use shared::store::layout::{self, Entity};
use shared::store::{Backend, Condition, ItemKey, Record, Store, StoredItem, Write};
use shared::time::{day_of, minute_of, MINUTE_MS};

use super::Metered;

/// The benchmarks' tenant.
pub(crate) const TENANT: &str = "bench";

/// How big a fleet to seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fleet {
    pub(crate) agents: usize,
    pub(crate) integrations: usize,
    pub(crate) probed: usize,
    pub(crate) hosts: usize,
}

/// The fleet: 10,000 agents, 1,000 integrations of which 200 probed, 20 hosts.
const FULL: Fleet = Fleet {
    agents: 10_000,
    integrations: 1_000,
    probed: 200,
    hosts: 20,
};

/// A tenth of it, for moto: its Query scans the whole table for every request, so a
/// cycle over the full fleet (20,000 queries of a 33,000-item table) would take hours.
const TENTH: Fleet = Fleet {
    agents: 1_000,
    integrations: 100,
    probed: 20,
    hosts: 2,
};

fn item(key: ItemKey, record: Record, index: Option<shared::store::IndexKey>) -> Write {
    Write {
        item: StoredItem {
            key,
            record,
            version: 1,
            expires_at: None,
            index,
        },
        condition: Condition::None,
    }
}

/// The fleet's live items: each agent with counters in a minute and a day (1 % of them
/// failing), each integration likewise (the first ones probed), hosts (one in ten hot) and
/// a queue gauge.
pub(crate) fn fleet(size: Fleet, t0: i64, probe_url: &str) -> Vec<Write> {
    let minute = minute_of(t0) - 5;
    let day = day_of(t0);
    let mut out = Vec::with_capacity(size.agents * 3 + size.integrations * 3 + size.hosts + 1);
    for a in 0..size.agents {
        let id = format!("agent-{a:05}");
        let mut record = AgentRecord::new(&id, t0 - 86_400_000);
        record.agent_name = format!("Agent {a}");
        record.last_active = Some(t0 - 10_000);
        record.confidence = Some(0.8);
        let failing = a % 100 == 0;
        let counters = AgentCounters {
            started: 10,
            completed: if failing { 2 } else { 9 },
            failed: if failing { 8 } else { 1 },
            timed: 10,
            duration_sum_ms: 12_000.0,
        };
        let mut live = Live::new(record);
        live.window.minutes = vec![(minute, counters.clone())];
        live.window.days = vec![(day, counters)];
        out.push(item(
            layout::live(TENANT, Entity::Agent, &id),
            Record::Agent(live),
            None,
        ));
    }
    for i in 0..size.integrations {
        let id = format!("integration-{i:04}");
        let mut record = IntegrationRecord::new(&id, t0 - 86_400_000);
        record.state = ConnectionState::Active;
        record.last_used = Some(t0 - 20_000);
        record.up_since = Some(t0 - 86_400_000);
        if i < size.probed {
            record.probe = Some(Probe {
                url: probe_url.to_owned(),
                timeout_ms: 2_000,
                expected_status: 200,
            });
        }
        let counters = IntegrationCounters {
            calls: 20,
            failures: 0,
            latency_sum_ms: 2_400.0,
        };
        let mut live = Live::new(record);
        live.window.minutes = vec![(minute, counters.clone())];
        live.window.days = vec![(day, counters)];
        out.push(item(
            layout::live(TENANT, Entity::Integration, &id),
            Record::Integration(live),
            None,
        ));
    }
    for h in 0..size.hosts {
        let id = format!("host-{h:02}");
        let record = HostRecord {
            host_id: id.clone(),
            cpu_usage: if h % 10 == 0 { 85.0 } else { 45.0 },
            memory_usage: 60.0,
            disk_usage: Some(40.0),
            load_average: Some([0.5, 0.4, 0.3]),
            uptime_seconds: Some(86_400),
            last_seen: t0 - 5_000,
        };
        out.push(item(
            layout::live(TENANT, Entity::Host, &id),
            Record::Host(Live::new(record)),
            None,
        ));
    }
    out.push(item(
        layout::system(TENANT),
        Record::System(SystemRecord {
            queue_depth: Some(GaugeReading {
                value: 12,
                at: t0 - 5_000,
            }),
            ..SystemRecord::default()
        }),
        None,
    ));
    out
}

/// Writes the fleet: in large batches on the embedded store; one item per request on
/// DynamoDB (a transaction on moto copies the whole table per item), 16 at a time.
pub(crate) async fn seed(backend: &Arc<dyn Backend>, writes: Vec<Write>) {
    if backend.max_writes() >= 10_000 {
        let mut writes = writes;
        while !writes.is_empty() {
            let rest = writes.split_off(writes.len().min(5_000));
            backend
                .write(std::mem::replace(&mut writes, rest))
                .await
                .unwrap_or_else(|e| panic!("seeding failed: {e}"));
        }
        return;
    }
    stream::iter(writes)
        .map(|w| async move {
            backend
                .write(vec![w])
                .await
                .unwrap_or_else(|e| panic!("seeding failed: {e}"));
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// User plus system CPU time of this process, ms.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; USER_HZ 100.
    (ticks(11) + ticks(12)) * 10.0
}

/// Resets the peak resident set size (Linux `clear_refs` 5), so the next reading is the
/// peak of what follows.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident set size since the last reset, MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn cycles(name: &str, size: Fleet, backend: Arc<dyn Backend>, metered: Option<Arc<Metered>>) {
    let target = ProbeTarget::start().await;
    let now = chrono::Utc::now().timestamp_millis();
    // A minute boundary in the past, so the third cycle is the first of a new minute.
    let t0 = now - now.rem_euclid(MINUTE_MS) - 5 * MINUTE_MS;
    let started = Instant::now();
    seed(&backend, fleet(size, t0, &target.url())).await;
    let store = Store::new(backend);
    store
        .register_tenant(TENANT, t0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{name}: seeded in {:.1} s", started.elapsed().as_secs_f64());
    let config = Config {
        probe_allowed_addresses: vec![target.addr.ip()],
        ..Config::default()
    };
    let state = shared::AppState::new(store, config);
    let collector = Collector::new(&state).unwrap_or_else(|e| panic!("{e}"));
    for (label, at) in [
        ("first (raises alerts)", t0),
        ("steady, same minute", t0 + 30_000),
        ("steady, minute rollover (probe flush)", t0 + 60_000),
    ] {
        if let Some(m) = &metered {
            m.reset();
        }
        reset_peak_rss();
        let (cpu0, wall0) = (cpu_ms(), Instant::now());
        let report = collector
            .run_cycle(at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let wall = wall0.elapsed().as_secs_f64() * 1000.0;
        let cpu = cpu_ms() - cpu0;
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let t = report
            .tenants
            .first()
            .unwrap_or_else(|| panic!("the tenant was not evaluated"));
        let units = metered.as_ref().map_or("n/a | n/a | n/a".to_owned(), |m| {
            format!(
                "{} | {:.0} | {:.0}",
                m.requests.load(Ordering::Relaxed),
                m.read_tenths.load(Ordering::Relaxed) as f64 / 10.0,
                m.write_tenths.load(Ordering::Relaxed) as f64 / 10.0
            )
        });
        println!(
            "| {name} | {} / {} ({} probed) | {label} | {wall:.0} | {cpu:.0} | {:.1} | {units} | {} | {} |",
            size.agents,
            size.integrations,
            size.probed,
            peak_rss_mb(),
            t.probes,
            t.raised + t.updated + t.resolved,
        );
    }
}

/// A fresh embedded backend; keep the directory as long as the backend.
pub(crate) fn embedded_backend() -> (Arc<dyn Backend>, tempfile::TempDir) {
    embedded()
}

fn embedded() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let backend = shared::store::embedded::EmbeddedBackend::open(&dir.path().join("bench.redb"))
        .unwrap_or_else(|e| panic!("{e}"));
    (Arc::new(backend), dir)
}

/// Prints the collector figures: the full fleet on the embedded store (timed, then metered
/// for DynamoDB's request units, which depend only on the calls and item sizes), and a
/// tenth of it on moto.
pub async fn collector_benchmarks() {
    println!("| store | agents / integrations | cycle | wall ms | CPU ms | peak RSS MB | requests | RCU | WCU | probes | alert writes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (backend, _dir) = embedded();
    cycles("embedded (redb)", FULL, backend, None).await;
    let (backend, _dir) = embedded();
    let metered = Arc::new(Metered::new(backend));
    cycles(
        "embedded, metered as DynamoDB",
        FULL,
        metered.clone(),
        Some(metered),
    )
    .await;
    if std::env::var(e2e_tests::DYNAMODB_ENDPOINT_VAR).is_ok() {
        let metered = Arc::new(Metered::new(Arc::new(e2e_tests::dynamo_backend().await)));
        cycles("DynamoDB API (moto)", TENTH, metered.clone(), Some(metered)).await;
    }
}
