//! The demo fleet behind `cargo run -- --demo`: eight agents, eight integrations and two
//! hosts reporting every [`TICK_MS`], with incidents on a six-minute loop that raise and
//! resolve alerts (a host's CPU, the queue, an integration failing, an agent unsure of
//! itself). Pure: the events of a tick depend only on the tick, the run and the time.

use serde_json::{json, Value};

use shared::time::{format_rfc3339, Millis};

/// Time between two batches of demo events.
pub const TICK_MS: Millis = 5_000;
/// Ticks in one loop of incidents (six minutes).
pub const LOOP_TICKS: u64 = 72;

/// `(id, name, operation, ticks between runs)`.
pub const AGENTS: [(&str, &str, &str, u64); 8] = [
    (
        "sales-assistant",
        "Sales Assistant",
        "Qualifying inbound leads",
        2,
    ),
    (
        "support-triage",
        "Support Triage",
        "Routing support tickets",
        1,
    ),
    (
        "invoice-processor",
        "Invoice Processor",
        "Matching invoices to orders",
        3,
    ),
    (
        "lead-enricher",
        "Lead Enricher",
        "Enriching leads from the CRM",
        2,
    ),
    (
        "meeting-scheduler",
        "Meeting Scheduler",
        "Scheduling customer calls",
        4,
    ),
    ("churn-watcher", "Churn Watcher", "Scoring churn risk", 6),
    (
        "content-writer",
        "Content Writer",
        "Drafting follow-up emails",
        3,
    ),
    ("crm-sync", "CRM Data Sync", "Syncing contacts", 2),
];

/// The agent that is paused for the whole demo.
pub const PAUSED_AGENT: &str = "churn-watcher";

/// `(id, name, typical latency ms)`.
pub const INTEGRATIONS: [(&str, &str, f64); 8] = [
    ("slack", "Slack", 120.0),
    ("gmail", "Gmail", 240.0),
    ("hubspot", "HubSpot", 380.0),
    ("salesforce", "Salesforce", 450.0),
    ("stripe", "Stripe", 210.0),
    ("zendesk", "Zendesk", 300.0),
    ("notion", "Notion", 260.0),
    ("google-calendar", "Google Calendar", 180.0),
];

/// The incidents, as tick ranges within the loop.
const HOT_HOST: std::ops::RangeInclusive<u64> = 6..=24;
const QUEUE_BACKLOG: std::ops::RangeInclusive<u64> = 18..=40;
const STRIPE_DOWN: std::ops::RangeInclusive<u64> = 36..=46;
const UNSURE_AGENT: std::ops::RangeInclusive<u64> = 50..=62;

/// A deterministic pseudo-random number in `0..1` for `(tick, salt)` (splitmix64), so
/// the demo varies without a random generator and its tests are exact.
fn noise(tick: u64, salt: u64) -> f64 {
    let mut z = tick
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

use shared::domain::round::round1;

/// The events of tick `tick` (counted from the start of the run) at `now`, as the JSON
/// objects of an ingestion batch. `run` makes event ids unique across runs.
pub fn tick_events(run: &str, tick: u64, now: Millis) -> Vec<Value> {
    let phase = tick % LOOP_TICKS;
    let mut events = agent_events(run, tick, phase);
    events.extend(integration_calls(tick, phase));
    events.extend(host_samples(tick, phase));
    events.push(queue_gauge(tick, phase));
    let at = format_rfc3339(now);
    for (i, event) in events.iter_mut().enumerate() {
        event["event_id"] = json!(format!("demo-{run}-{tick}-{i}"));
        event["timestamp"] = json!(at);
    }
    events
}

/// The agents' runs starting and finishing at this tick.
fn agent_events(run: &str, tick: u64, phase: u64) -> Vec<Value> {
    let mut events = Vec::new();
    for (n, (id, name, operation, every)) in AGENTS.iter().enumerate() {
        if *id == PAUSED_AGENT {
            continue;
        }
        // A run starts every `every` ticks and finishes at the next tick.
        if tick % every == 0 {
            events.push(
                json!({"type": "execution.started", "agent_id": id, "agent_name": name,
                        "execution_id": format!("{run}-{tick}"), "operation": operation}),
            );
        }
        if tick > 0 && (tick - 1) % every == 0 {
            events.push(finished_event(
                run, tick, phase, n as u64, id, operation, *every,
            ));
        }
    }
    events
}

/// The end of the run agent `id` (the `salt`th) started at the tick before.
fn finished_event(
    run: &str,
    tick: u64,
    phase: u64,
    salt: u64,
    id: &str,
    operation: &str,
    every: u64,
) -> Value {
    // Each agent fails one run every four loops (24 minutes), late in a loop so
    // it has runs to its name: its status shows `error` until the next run, and
    // it stays under the alert rules (error rate, 3 failures an hour).
    let started = tick - 1;
    let window = 30 + 2 * salt;
    let failed = (started / LOOP_TICKS) % 4 == salt % 4
        && (window..window + every).contains(&(started % LOOP_TICKS));
    let mut finished = json!({"type": "execution.finished", "agent_id": id,
        "execution_id": format!("{run}-{}", tick - 1),
        "outcome": if failed { "failed" } else { "completed" },
        "duration_ms": (2_000.0 + 3_000.0 * noise(tick, salt + 100)).round()});
    if failed {
        // What a drill-down's recent failures show.
        finished["error"] = json!(format!(
            "{operation} failed: upstream answered 503 Service Unavailable\n  at step {} of 4",
            1 + salt % 4
        ));
    }
    if id == "lead-enricher" {
        let confidence = if UNSURE_AGENT.contains(&phase) {
            0.22
        } else {
            0.84
        };
        finished["confidence"] = json!(confidence);
    }
    finished
}

/// One call to each integration.
fn integration_calls(tick: u64, phase: u64) -> Vec<Value> {
    let mut events = Vec::new();
    for (n, (id, name, latency)) in INTEGRATIONS.iter().enumerate() {
        let salt = 1_000 + n as u64;
        let down = *id == "stripe" && STRIPE_DOWN.contains(&phase);
        let ok = !down && noise(tick, salt) > 0.01;
        let latency = if down {
            10_000.0
        } else {
            latency * (0.7 + 0.6 * noise(tick, salt + 1))
        };
        let mut call = json!({"type": "integration.call", "integration_id": id,
            "integration_name": name, "ok": ok, "latency_ms": latency.round()});
        if !ok {
            call["error"] = json!(if down {
                "timed out after 10 s"
            } else {
                "502 Bad Gateway"
            });
        }
        events.push(call);
    }
    events
}

/// A sample of each host.
fn host_samples(tick: u64, phase: u64) -> Vec<Value> {
    let mut events = Vec::new();
    for (n, host) in ["worker-1", "worker-2"].iter().enumerate() {
        let salt = 2_000 + n as u64;
        let hot = *host == "worker-2" && HOT_HOST.contains(&phase);
        let cpu = if hot {
            92.0 + 4.0 * noise(tick, salt)
        } else {
            28.0 + 30.0 * noise(tick, salt)
        };
        let memory = 55.0 + 12.0 * noise(tick, salt + 1);
        events.push(
            json!({"type": "host.sample", "host_id": host, "cpu_usage": round1(cpu),
                    "memory_usage": round1(memory)}),
        );
    }
    events
}

fn queue_gauge(tick: u64, phase: u64) -> Value {
    let queue: u64 = if QUEUE_BACKLOG.contains(&phase) {
        160
    } else {
        8 + (20.0 * noise(tick, 3_000)) as u64
    };
    json!({"type": "gauge", "name": "queue_depth", "value": queue})
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::domain::events::parse_batch;

    const NOW: Millis = 1_790_000_000_000;

    #[test]
    fn every_tick_of_a_loop_is_a_valid_batch_with_unique_ids() {
        let mut ids = std::collections::HashSet::new();
        for tick in 0..LOOP_TICKS * 2 {
            let events = tick_events("r1", tick, NOW + tick as i64 * TICK_MS);
            let body = json!({ "events": events }).to_string();
            let parsed = parse_batch(body.as_bytes(), NOW + tick as i64 * TICK_MS)
                .unwrap_or_else(|e| panic!("tick {tick}: {e:?}"));
            assert_eq!(parsed.len(), events.len());
            for e in &events {
                assert!(ids.insert(e["event_id"].as_str().unwrap_or_default().to_owned()));
            }
        }
    }

    #[test]
    fn incidents_start_and_end_within_the_loop() {
        let cpu = |tick: u64| {
            tick_events("r", tick, NOW)
                .into_iter()
                .find(|e| e["host_id"] == "worker-2")
                .and_then(|e| e["cpu_usage"].as_f64())
                .unwrap_or_default()
        };
        assert!(cpu(5) < 75.0 && cpu(10) > 90.0 && cpu(30) < 75.0);
        let stripe_ok = |tick: u64| {
            tick_events("r", tick, NOW)
                .into_iter()
                .find(|e| e["integration_id"] == "stripe")
                .map(|e| e["ok"] == json!(true))
        };
        assert_eq!(stripe_ok(40), Some(false));
        assert!((47..LOOP_TICKS).any(|t| stripe_ok(t) == Some(true)));
        // The loop repeats.
        assert_eq!(cpu(10 + LOOP_TICKS) > 90.0, cpu(10) > 90.0);
    }
}
