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
    AgentRecord, ConnectionState, GaugeReading, HostRecord, IntegrationRecord, Probe, SystemRecord,
};
use shared::store::layout::{self, Entity};
use shared::store::{Backend, Condition, ItemKey, Record, Store, StoredItem, Write};
use shared::time::{day_of, MINUTE_MS};

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

/// An unconditional write of `record` at `key`, as seeding needs.
pub(super) fn item(key: ItemKey, record: Record, index: Option<shared::store::IndexKey>) -> Write {
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

/// A spread of values around `mid` (from 0.5× to 2.5×), deterministic in `k`, so counters
/// and latencies look like a real hour's, not like one repeated value.
fn spread(mid: f64, k: usize) -> f64 {
    let u = ((k as u64).wrapping_mul(2_654_435_761) % 1_000) as f64 / 1_000.0;
    mid * (0.5 + 2.0 * u * u)
}

/// Gives a live item the state an hour of the reference workload leaves: `per_hour` events
/// spread over the last hour (each with its event mark, as ingestion files it), the days
/// before at the same rate, and the marks of earlier hours moved out, as the first event of
/// an hour moves them. Executions file their own finish marks and no event marks.
fn steady<R, C: shared::domain::live::Counters>(
    live: &mut Live<R, C>,
    t0: i64,
    per_hour: usize,
    key: Option<&str>,
    mut event: impl FnMut(&mut Live<R, C>, usize, i64),
) {
    use shared::domain::live::{hour_of, mark, KEPT_DAYS};
    let step = shared::time::HOUR_MS / per_hour as i64;
    for k in 0..per_hour {
        let ts = t0 - shared::time::HOUR_MS + k as i64 * step;
        event(live, k, ts);
        if let Some(key) = key {
            live.seen.insert(hour_of(ts), mark(&format!("{key}-{k}")));
        }
    }
    // Earlier days: a whole day at the same rate, scaled from the hour just made.
    let hour = live
        .window
        .minutes
        .iter()
        .fold(C::default(), |mut t, (_, c)| {
            t.merge(c);
            t
        });
    let mut whole_day = C::default();
    for _ in 0..24 {
        whole_day.merge(&hour);
    }
    for d in 1..KEPT_DAYS {
        let day = day_of(t0) - d;
        if let Err(i) = live.window.days.binary_search_by_key(&day, |(x, _)| *x) {
            live.window.days.insert(i, (day, whole_day.clone()));
        }
    }
    live.seen.take_spill(t0);
    // Earlier hours' latencies moved out at the first event of their next hour.
    live.window.hours_through = Some(hour_of(t0) - 1);
}

/// The fleet's live items, as an hour of the reference workload leaves them: each agent
/// with 12 executions an hour (1 % of them failing), each integration called once a minute
/// (the first ones also probed every 30 s), hosts sampling every 30 s (one in ten hot),
/// and a queue gauge.
pub(crate) fn fleet(size: Fleet, t0: i64, probe_url: &str) -> Vec<Write> {
    use shared::domain::events::Outcome;
    use shared::domain::live::FinishKnown;
    let mut out = Vec::with_capacity(size.agents * 3 + size.integrations * 3 + size.hosts + 1);
    for a in 0..size.agents {
        let id = format!("agent-{a:05}");
        let mut record = AgentRecord::new(&id, t0 - 86_400_000);
        record.agent_name = format!("Agent {a}");
        record.confidence = Some(0.8);
        let failing = a % 100 == 0;
        let mut live = Live::new(record);
        steady(&mut live, t0, 24, None, |live, k, ts| {
            let x = format!("x{}", k / 2);
            if k % 2 == 0 {
                live.started(&x, "Processing leads", None, ts, t0, FinishKnown::No);
            } else {
                let outcome = if failing && k % 3 != 0 {
                    Outcome::Failed
                } else {
                    Outcome::Completed
                };
                let d = spread(1_200.0, a + k);
                live.finished(&x, outcome, Some(d), None, None, ts, t0, FinishKnown::No);
            }
        });
        live.record.last_active = Some(t0 - 10_000);
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
        record.up_since = Some(t0 - 86_400_000);
        let probed = i < size.probed;
        if probed {
            record.probe = Some(Probe {
                url: probe_url.to_owned(),
                timeout_ms: 2_000,
                expected_status: 200,
            });
        }
        let mut live = Live::new(record);
        steady(&mut live, t0, 60, Some(&id), |live, k, ts| {
            live.call(true, spread(120.0, i + k), None, ts, t0);
        });
        // Half an hour in, as an item keeping at most 16 marks leaves it: the hour's first
        // 17 marks moved to their bucket at the 18th call, and the 12 calls since kept theirs.
        let this_hour = shared::domain::live::hour_of(t0);
        if let Some((_, marks)) = live.seen.hours.iter_mut().find(|(h, _)| *h == this_hour) {
            let kept = marks.split_off(marks.len().saturating_sub(12));
            *marks = kept;
            live.seen.spilled_through = Some(this_hour);
        }
        if probed {
            for k in 0..120 {
                let at = t0 - shared::time::HOUR_MS + k * 30_000;
                live.probe(true, spread(40.0, i + k as usize), at, t0);
            }
        }
        live.record.last_used = Some(t0 - 20_000);
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
            reporting_since: None,
        };
        let mut live = Live::new(record.clone());
        steady(&mut live, t0, 120, Some(&id), |live, k, ts| {
            let sample = HostRecord {
                cpu_usage: spread(record.cpu_usage / 1.5, h + k).min(100.0),
                memory_usage: spread(40.0, h + k).min(100.0),
                last_seen: ts,
                reporting_since: None,
                ..record.clone()
            };
            live.sample(sample, t0);
        });
        live.record = record;
        out.push(item(
            layout::live(TENANT, Entity::Host, &id),
            Record::Host(live),
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
        .expect("registering the tenant");
    eprintln!("{name}: seeded in {:.1} s", started.elapsed().as_secs_f64());
    let config = Config {
        probe_allowed_addresses: vec![target.addr.ip().into()],
        ..Config::default()
    };
    let state = shared::AppState::new(store, config);
    let collector = Collector::new(&state).expect("building the collector");
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
            .unwrap_or_else(|e| panic!("running a collector cycle at {at}: {e}"));
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
/// A backend on a fresh embedded database; keep the directory as long as the backend.
pub(crate) fn embedded_backend() -> (Arc<dyn Backend>, tempfile::TempDir) {
    let dir = e2e_tests::temp_dir();
    let backend = shared::store::embedded::EmbeddedBackend::open(&dir.path().join("bench.redb"))
        .expect("opening the embedded store");
    (Arc::new(backend), dir)
}

/// Prints the collector figures: the full fleet on the embedded store (timed, then metered
/// for DynamoDB's request units, which depend only on the calls and item sizes), and a
/// tenth of it on moto.
pub async fn collector_benchmarks() {
    println!("| store | agents / integrations | cycle | wall ms | CPU ms | peak RSS MB | requests | RCU | WCU | probes | alert writes |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let (backend, _dir) = embedded_backend();
    cycles("embedded (redb)", FULL, backend, None).await;
    let (backend, _dir) = embedded_backend();
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
