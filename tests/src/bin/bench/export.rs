//! The export's memory: resident memory while `GET /api/health/export?kind=history` streams
//! 90 days of a fleet's history as CSV, for a fleet ten times larger than another. Constant
//! memory means the peak does not grow with the fleet.

use std::time::Instant;

use futures::StreamExt;
use shared::config::Config;
use shared::domain::live::LiveAgent;
use shared::domain::records::{AgentCounters, AgentRecord};
use shared::store::layout::{self, Entity};
use shared::store::{Record, Store, Write};
use shared::time::{day_of, format_rfc3339, DAY_MS};

const TENANT: &str = "bench";
const DAYS: i64 = 90;

fn write(key: shared::store::ItemKey, record: Record) -> Write {
    super::collector::item(key, record, None)
}

/// A field of `/proc/self/status`, in MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Seeds `agents` agents, each with a day bucket for every day of the last 90 the live
/// item no longer keeps, in chunks (so seeding holds little memory itself).
async fn seed(backend: &std::sync::Arc<dyn shared::store::Backend>, agents: usize, now: i64) {
    let today = day_of(now);
    let kept = shared::domain::live::first_kept_day(now);
    for chunk in (0..agents).collect::<Vec<_>>().chunks(200) {
        let mut writes = Vec::new();
        for a in chunk {
            let id = format!("agent-{a:05}");
            let mut record = AgentRecord::new(&id, now - DAYS * DAY_MS);
            record.agent_name = format!("Agent {a}");
            writes.push(write(
                layout::live(TENANT, Entity::Agent, &id),
                Record::Agent(LiveAgent::new(record)),
            ));
            for day in today - DAYS + 1..kept {
                let counters = AgentCounters {
                    started: 288,
                    completed: 280 + (*a as u64 + day as u64) % 8,
                    failed: 8 - (*a as u64 + day as u64) % 8,
                    timed: 288,
                    duration_sum_ms: 288.0 * 1_350.0,
                    ..AgentCounters::default()
                };
                writes.push(write(
                    layout::day(TENANT, Entity::Agent, &id, day),
                    Record::AgentCounters(counters),
                ));
            }
        }
        backend
            .write(writes)
            .await
            .unwrap_or_else(|e| panic!("seeding failed: {e}"));
    }
}

/// Prints the figures: each fleet exported twice, the second time with the store's page
/// cache (32 MiB, bounded) already filled, so its growth is the export's own.
pub async fn export_benchmark() {
    println!("| agents | days | pass | rows | MB streamed | seconds | rows/s | RSS before (MB) | peak RSS during the export (MB) | growth (MB) |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for agents in [1_000, 10_000] {
        let (backend, _dir) = super::collector::embedded_backend();
        let now = chrono::Utc::now().timestamp_millis();
        seed(&backend, agents, now).await;
        let state = shared::AppState::new(Store::new(backend), Config::default());
        for pass in ["first", "second"] {
            export_once(&state, agents, now, pass).await;
        }
    }
}

async fn export_once(state: &shared::AppState, agents: usize, now: i64, pass: &str) {
    {
        // The peak from here on: writing 5 to clear_refs resets VmHWM to the current RSS.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_mb("VmRSS:");
        let from = format_rfc3339(now - (DAYS - 1) * DAY_MS);
        let query = format!("kind=history&format=csv&from={from}");
        let started = Instant::now();
        let response = shared::api::export::respond(state, TENANT.to_owned(), Some(&query))
            .await
            .unwrap_or_else(|e| panic!("export refused: {e:?}"));
        let mut body = response.into_body();
        let (mut bytes, mut rows) = (0usize, 0usize);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.unwrap_or_else(|e| panic!("export failed: {e}"));
            bytes += chunk.len();
            rows += chunk.iter().filter(|b| **b == b'\n').count();
        }
        let secs = started.elapsed().as_secs_f64();
        let peak = status_mb("VmHWM:");
        let rows = rows.saturating_sub(1);
        println!(
            "| {agents} | {DAYS} | {pass} | {rows} | {:.1} | {secs:.1} | {:.0} | {before:.1} | {peak:.1} | {:.1} |",
            bytes as f64 / 1e6,
            rows as f64 / secs,
            peak - before
        );
    }
}
