//! The collector on both stores, with time driven explicitly: every cycle runs at a `now`
//! the test chooses, nothing sleeps real seconds (probes hit a real local HTTP server).

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use e2e_tests::ProbeTarget;
use serde_json::json;
use shared::collector::rules::condition;
use shared::collector::{Collector, CycleReport};
use shared::config::Config;
use shared::domain::alerts::{AlertRecord, Severity, SourceType};
use shared::domain::records::{ConnectionState, Probe};
use shared::domain::round::round4;
use shared::store::alerts::Acknowledgement;
use shared::store::integrations::IntegrationUpdate;
use shared::store::{Backend, ItemKey, Range, Store, StoreError, StoredItem, Write as StoreWrite};
use shared::time::{format_rfc3339, Millis, MINUTE_MS};
use shared::AppState;

const TENANT: &str = "acme";
const INTERVAL: Millis = 30_000;

fn start_time() -> Millis {
    // A slot boundary a little in the past, so events "now" are accepted.
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(INTERVAL) - 10 * INTERVAL
}

fn collector(store: &Store, config: Config) -> Collector {
    let state = AppState::new(store.clone(), config);
    Collector::new(&state).expect("building the collector")
}

fn config() -> Config {
    Config {
        probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
        ..Config::default()
    }
}

/// Lists the test tenant and returns a collector over `store`.
async fn tenant_collector(store: &Store, now: Millis) -> Collector {
    store
        .register_tenant(TENANT, now)
        .await
        .expect("registering the tenant");
    collector(store, config())
}

async fn ingest(store: &Store, now: Millis, events: serde_json::Value) {
    e2e_tests::seed::ingest(store, TENANT, events, now).await;
}

/// Runs a cycle and counts the alerts it raised, updated or resolved (one write each).
async fn alert_writes(c: &Collector, now: Millis) -> usize {
    let t = cycle(c, now).await.tenants.remove(0);
    t.raised + t.updated + t.resolved
}

async fn cycle(c: &Collector, now: Millis) -> CycleReport {
    e2e_tests::cycle(c, now).await
}

async fn active(store: &Store) -> Vec<AlertRecord> {
    store
        .active_alerts(TENANT)
        .await
        .expect("reading the active alerts")
}

async fn all_alerts(store: &Store) -> Vec<AlertRecord> {
    store
        .all_alerts(TENANT)
        .await
        .expect("reading all alerts")
        .into_iter()
        .map(|(a, _)| a)
        .collect()
}

fn find<'a>(alerts: &'a [AlertRecord], source_id: &str, cond: &str) -> Option<&'a AlertRecord> {
    alerts
        .iter()
        .find(|a| a.source_id == source_id && a.condition == cond)
}

/// Registers integration `id` with a probe of `url`.
async fn register_probed(store: &Store, id: &str, url: String, now: Millis) {
    let update = IntegrationUpdate {
        integration_name: Some("Billing API".into()),
        probe: Some(Probe {
            url,
            timeout_ms: 2000,
            expected_status: 200,
        }),
    };
    store
        .put_integration(TENANT, id, &update, now, 5000.0)
        .await
        .unwrap_or_else(|e| panic!("putting integration {id} with a probe: {e}"));
}

fn at(ms: Millis) -> String {
    format_rfc3339(ms)
}

fn host(event_id: &str, host_id: &str, cpu: f64, memory: f64, ts: Millis) -> serde_json::Value {
    json!({"event_id": event_id, "type": "host.sample", "host_id": host_id, "cpu_usage": cpu, "memory_usage": memory, "timestamp": at(ts)})
}

fn call(event_id: &str, id: &str, latency: f64, ok: bool, ts: Millis) -> serde_json::Value {
    json!({"event_id": event_id, "type": "integration.call", "integration_id": id, "latency_ms": latency, "ok": ok, "timestamp": at(ts)})
}

/// `n` executions of `agent` with `outcome`, each started and finished around `ts`.
fn runs(agent: &str, tag: &str, n: usize, outcome: &str, ts: Millis) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for i in 0..n {
        let x = format!("{tag}-{i}");
        out.push(json!({"event_id": format!("{x}-s"), "type": "execution.started", "agent_id": agent, "agent_name": "Sales Bot", "execution_id": x, "operation": "Qualifying leads", "timestamp": at(ts - 1000)}));
        out.push(json!({"event_id": format!("{x}-f"), "type": "execution.finished", "agent_id": agent, "execution_id": x, "outcome": outcome, "confidence": if outcome == "failed" { 0.2 } else { 0.9 }, "timestamp": at(ts)}));
    }
    out
}

/// Every condition of the alert table raises exactly one alert with the contract's
/// severity, message and source; the next cycle raises nothing more; recovery resolves
/// each, and the hour-window condition resolves when its failures leave the window.
async fn each_condition_raises_one_alert_and_resolves_when_cleared(store: Store) {
    let t0 = start_time();
    let c = tenant_collector(&store, t0).await;
    let mut events = vec![
        host("h1", "web-1", 85.0, 40.0, t0),
        host("h2", "web-2", 30.0, 95.0, t0),
        host("h3", "web-3", 30.0, 30.0, t0 - 3 * MINUTE_MS),
        json!({"event_id": "g1", "type": "gauge", "name": "queue_depth", "value": 250, "timestamp": at(t0)}),
        call("c1", "slack", 6000.0, true, t0),
        call("c2", "crm", 100.0, false, t0 - 2000),
        call("c3", "crm", 100.0, false, t0 - 1000),
        call("c4", "erp", 100.0, false, t0 - 3000),
        call("c5", "erp", 100.0, false, t0 - 2000),
        call("c6", "erp", 100.0, false, t0 - 1000),
        json!({"event_id": "o1", "type": "execution.started", "agent_id": "old", "execution_id": "o", "operation": "x", "timestamp": at(t0 - 4 * MINUTE_MS)}),
        json!({"event_id": "o2", "type": "execution.finished", "agent_id": "old", "execution_id": "o", "outcome": "completed", "timestamp": at(t0 - 4 * MINUTE_MS)}),
    ];
    events.extend(runs("bot", "bad", 4, "failed", t0 - MINUTE_MS));
    ingest(&store, t0, json!(events)).await;

    let report = cycle(&c, t0).await;
    assert_eq!(report.tenants.len(), 1);
    let alerts = active(&store).await;
    let table = [
        (
            SourceType::System,
            "web-1",
            condition::CPU_HIGH,
            Severity::Warning,
            "High CPU usage: 85%".to_owned(),
        ),
        (
            SourceType::System,
            "web-2",
            condition::MEMORY_HIGH,
            Severity::Critical,
            "High memory usage: 95%".to_owned(),
        ),
        (
            SourceType::System,
            "web-3",
            condition::SILENT,
            Severity::Warning,
            format!(
                "Host web-3 went silent after {}: no report for over 150 s",
                at(t0 - 3 * MINUTE_MS)
            ),
        ),
        (
            SourceType::System,
            "system",
            condition::QUEUE_DEPTH_HIGH,
            Severity::Critical,
            "High queue depth: 250".to_owned(),
        ),
        (
            SourceType::Agent,
            "bot",
            condition::ERROR_RATE_HIGH,
            Severity::Warning,
            "Agent Sales Bot has high error rate: 100.0%".to_owned(),
        ),
        (
            SourceType::Agent,
            "bot",
            condition::LOW_CONFIDENCE,
            Severity::Warning,
            "Agent Sales Bot has low confidence: 0.20".to_owned(),
        ),
        (
            SourceType::Agent,
            "bot",
            condition::REPEATED_FAILURES,
            Severity::Warning,
            "Agent Sales Bot failed 4 times in the last hour".to_owned(),
        ),
        (
            SourceType::Agent,
            "old",
            condition::SILENT,
            Severity::Warning,
            format!(
                "Agent old went silent after {}: no report for over 150 s",
                at(t0 - 4 * MINUTE_MS)
            ),
        ),
        (
            SourceType::Integration,
            "slack",
            condition::LATENCY_HIGH,
            Severity::Warning,
            "Integration slack is slow: 6000 ms mean latency".to_owned(),
        ),
        (
            SourceType::Integration,
            "crm",
            condition::CONSECUTIVE_FAILURES,
            Severity::Warning,
            "Integration crm failed 2 times in a row".to_owned(),
        ),
        (
            SourceType::Integration,
            "erp",
            condition::CONSECUTIVE_FAILURES,
            Severity::Critical,
            "Integration erp failed 3 times in a row".to_owned(),
        ),
    ];
    let expected: BTreeSet<(SourceType, &str, &str, Severity, &str)> = table
        .iter()
        .map(|(t, s, c, sev, m)| (*t, *s, *c, *sev, m.as_str()))
        .collect();
    let got: BTreeSet<(SourceType, &str, &str, Severity, &str)> = alerts
        .iter()
        .map(|a| {
            (
                a.source_type,
                a.source_id.as_str(),
                a.condition.as_str(),
                a.severity,
                a.message.as_str(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        alerts.len(),
        expected.len(),
        "one alert per condition and source"
    );
    let t = &report.tenants[0];
    assert_eq!((t.raised, t.alerts.len()), (expected.len(), expected.len()));
    assert_eq!(t.system.alerts.critical, 3);

    // The next cycle, nothing changed: same alerts, same ids, nothing written.
    let ids: BTreeSet<String> = alerts.iter().map(|a| a.alert_id.clone()).collect();
    let report = cycle(&c, t0 + INTERVAL).await;
    let t = &report.tenants[0];
    assert_eq!((t.raised, t.updated, t.resolved), (0, 0, 0));
    let again: BTreeSet<String> = active(&store)
        .await
        .into_iter()
        .map(|a| a.alert_id)
        .collect();
    assert_eq!(again, ids);

    // Recovery of everything.
    let t1 = t0 + 2 * INTERVAL;
    let mut events = vec![
        host("h1b", "web-1", 40.0, 40.0, t1),
        host("h2b", "web-2", 30.0, 50.0, t1),
        // As for the agent "old" below: samples for longer than the silence threshold.
        host("h3b", "web-3", 30.0, 30.0, t1 - 155_000),
        host("h3c", "web-3", 30.0, 30.0, t1 - 80_000),
        host("h3d", "web-3", 30.0, 30.0, t1),
        json!({"event_id": "g2", "type": "gauge", "name": "queue_depth", "value": 10, "timestamp": at(t1)}),
        call("c7", "slack", 100.0, true, t1 - 3000),
        call("c8", "slack", 100.0, true, t1 - 2000),
        call("c9", "slack", 100.0, true, t1 - 1000),
        call("c10", "crm", 100.0, true, t1),
        call("c11", "erp", 100.0, true, t1),
        // Reports no further apart than the silence threshold, for longer than it, end a
        // silence (the first came 145 s after the last seen, which the cycle at t0 did
        // not know of yet).
        json!({"event_id": "o3", "type": "execution.started", "agent_id": "old", "execution_id": "o2", "operation": "x", "timestamp": at(t1 - 155_000)}),
        json!({"event_id": "o4", "type": "execution.started", "agent_id": "old", "execution_id": "o3", "operation": "x", "timestamp": at(t1 - 80_000)}),
        json!({"event_id": "o5", "type": "execution.started", "agent_id": "old", "execution_id": "o4", "operation": "x", "timestamp": at(t1)}),
    ];
    events.extend(runs("bot", "good", 6, "completed", t1));
    ingest(&store, t1, json!(events)).await;
    let report = cycle(&c, t1).await;
    let left: Vec<(String, String)> = active(&store)
        .await
        .into_iter()
        .map(|a| (a.source_id, a.condition))
        .collect();
    // Four failures stay in the hour window: only that condition still holds.
    assert_eq!(
        left,
        [("bot".to_owned(), condition::REPEATED_FAILURES.to_owned())]
    );
    assert_eq!(report.tenants[0].resolved, expected.len() - 1);
    let all = all_alerts(&store).await;
    assert_eq!(
        all.len(),
        expected.len(),
        "resolved alerts are kept for history"
    );
    assert!(all
        .iter()
        .filter(|a| a.condition != condition::REPEATED_FAILURES)
        .all(|a| a.resolved_at == Some(t1)));

    // An hour later the failures have left the window.
    let later = t0 + 62 * MINUTE_MS;
    cycle(&c, later).await;
    let all = all_alerts(&store).await;
    let failures = find(&all, "bot", condition::REPEATED_FAILURES)
        .unwrap_or_else(|| panic!("repeated-failures alert missing"));
    assert_eq!(failures.resolved_at, Some(later));
}

/// An acknowledged alert stays acknowledged through cycles; a rise in severity updates the
/// same alert and clears the acknowledgement.
async fn acknowledgement_survives_cycles_and_is_cleared_on_escalation(store: Store) {
    let t0 = start_time();
    let c = tenant_collector(&store, t0).await;
    ingest(&store, t0, json!([host("a", "web-1", 85.0, 10.0, t0)])).await;
    cycle(&c, t0).await;
    let alert = active(&store).await.remove(0);
    store
        .acknowledge_alert(
            TENANT,
            &alert.alert_id,
            Acknowledgement {
                by: "ops",
                notes: Some("looking"),
                at: t0 + 1000,
            },
        )
        .await
        .expect("acknowledging the alert");
    for i in 1..=3 {
        let now = t0 + i * INTERVAL;
        ingest(
            &store,
            now,
            json!([host(&format!("a{i}"), "web-1", 86.0, 10.0, now)]),
        )
        .await;
        cycle(&c, now).await;
    }
    let kept = active(&store).await.remove(0);
    assert_eq!(kept.alert_id, alert.alert_id);
    assert_eq!(kept.acknowledged_by.as_deref(), Some("ops"));
    assert_eq!(kept.notes.as_deref(), Some("looking"));

    let now = t0 + 4 * INTERVAL;
    ingest(&store, now, json!([host("b", "web-1", 95.0, 10.0, now)])).await;
    let report = cycle(&c, now).await;
    assert_eq!(report.tenants[0].updated, 1);
    let escalated = active(&store).await;
    assert_eq!(escalated.len(), 1);
    let e = &escalated[0];
    assert_eq!(
        (e.alert_id.as_str(), e.severity),
        (alert.alert_id.as_str(), Severity::Critical)
    );
    assert_eq!(e.message, "High CPU usage: 95%");
    assert_eq!(
        (e.acknowledged_at, e.acknowledged_by.as_deref()),
        (None, None)
    );
    assert_eq!(e.raised_at, now);
}

/// CPU hovering at 80 % (79 / 81 every cycle for ten minutes) makes one alert, written
/// once.
async fn a_flapping_value_makes_one_alert(store: Store) {
    let t0 = start_time() - 20 * INTERVAL;
    let c = tenant_collector(&store, t0).await;
    let mut writes = 0;
    for i in 0..20 {
        let now = t0 + i * INTERVAL;
        let cpu = if i % 2 == 0 { 81.0 } else { 79.0 };
        ingest(
            &store,
            now,
            json!([host(&format!("s{i}"), "web-1", cpu, 10.0, now)]),
        )
        .await;
        writes += alert_writes(&c, now).await;
    }
    let all = all_alerts(&store).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(writes, 1);
    assert!(all[0].resolved_at.is_none());
}

/// An agent that runs an execution every 5 minutes is silent (past 5 intervals of 30 s)
/// between them: over an hour it has one silent alert, raised once and held, rather than
/// one raised, resolved and stored per execution.
async fn an_agent_reporting_every_five_minutes_has_one_silent_alert(store: Store) {
    let t0 = start_time() - 130 * INTERVAL;
    let c = tenant_collector(&store, t0).await;
    let mut writes = 0;
    for i in 0..120 {
        let now = t0 + i * INTERVAL;
        if i % 10 == 0 {
            ingest(
                &store,
                now,
                json!(runs("bot", &format!("r{i}"), 1, "completed", now)),
            )
            .await;
        }
        writes += alert_writes(&c, now).await;
    }
    let silent: Vec<_> = all_alerts(&store)
        .await
        .into_iter()
        .filter(|a| a.condition == condition::SILENT)
        .collect();
    assert_eq!(
        silent.len(),
        1,
        "silent alerts stored over the hour: {silent:?}"
    );
    assert!(silent[0].resolved_at.is_none(), "{silent:?}");
    assert_eq!(writes, 1, "alert writes over the hour");
}

/// An unpaused agent (and a host) silent for more than 5 polling intervals after reporting
/// raises a warning; reporting again resolves it.
async fn a_silent_agent_raises_its_alert_after_five_intervals(store: Store) {
    let t0 = start_time() - 10 * INTERVAL;
    let c = tenant_collector(&store, t0).await;
    let mut events = runs("bot", "r", 1, "completed", t0);
    events.push(host("h", "web-1", 10.0, 10.0, t0));
    ingest(&store, t0, json!(events)).await;
    for i in 1..=5 {
        cycle(&c, t0 + i * INTERVAL).await;
        assert!(
            active(&store).await.is_empty(),
            "silent too early, after {i} intervals"
        );
    }
    cycle(&c, t0 + 6 * INTERVAL).await;
    let alerts = active(&store).await;
    let sources: BTreeSet<(SourceType, String, String)> = alerts
        .iter()
        .map(|a| (a.source_type, a.source_id.clone(), a.condition.clone()))
        .collect();
    assert_eq!(
        sources,
        [
            (
                SourceType::Agent,
                "bot".to_owned(),
                condition::SILENT.to_owned()
            ),
            (
                SourceType::System,
                "web-1".to_owned(),
                condition::SILENT.to_owned()
            ),
        ]
        .into_iter()
        .collect()
    );
    assert!(alerts.iter().all(|a| a.severity == Severity::Warning));

    // Reporting again resolves it once the agent has reported for longer than the
    // threshold without such a gap (one report is what an agent reporting every few
    // minutes does: that holds the alert rather than raising one per report).
    let active_sources = || async {
        active(&store)
            .await
            .into_iter()
            .map(|a| a.source_id)
            .collect::<Vec<String>>()
    };
    for i in 7..12 {
        let now = t0 + i * INTERVAL;
        ingest(
            &store,
            now,
            json!(runs("bot", &format!("r{i}"), 1, "completed", now)),
        )
        .await;
        cycle(&c, now).await;
        assert_eq!(
            active_sources().await,
            ["bot", "web-1"],
            "the agent's silence cleared after {} s of reports",
            (i - 7) * INTERVAL / 1000
        );
    }
    let now = t0 + 12 * INTERVAL;
    ingest(&store, now, json!(runs("bot", "r12", 1, "completed", now))).await;
    cycle(&c, now).await;
    assert_eq!(
        active_sources().await,
        ["web-1"],
        "the agent's silence held after 151 s of reports every 30 s"
    );
}

/// A steady integration's successful probe waits for the next one (two probes a write),
/// a failure is written at once, and what is held is written by `flush_probes`.
async fn a_steady_integrations_probes_are_written_two_at_a_time(store: Store) {
    let t0 = start_time();
    let target = ProbeTarget::start().await;
    let c = tenant_collector(&store, t0).await;
    register_probed(&store, "billing", target.url(), t0).await;
    let stored = |store: Store| async move {
        let r = store
            .integration_record(TENANT, "billing")
            .await
            .expect("reading integration billing's record")
            .unwrap_or_else(|| panic!("integration missing"));
        (r.health_checks_performed, r.state)
    };
    let mut seen = Vec::new();
    for i in 0..4 {
        let report = cycle(&c, t0 + i * INTERVAL).await;
        assert_eq!(report.tenants[0].probes, 1, "probes counted in cycle {i}");
        seen.push(stored(store.clone()).await.0);
    }
    // The first probe is written; the second waits; the third writes both; the fourth waits.
    assert_eq!(seen, [1, 1, 3, 3], "checks stored after each cycle");
    assert_eq!(
        c.flush_probes().await,
        1,
        "held probes written by the flush"
    );
    assert_eq!(stored(store.clone()).await.0, 4);
    // A failure (of a steady integration) is written in its own cycle.
    target.answer(503);
    cycle(&c, t0 + 4 * INTERVAL).await;
    assert_eq!(
        stored(store.clone()).await,
        (5, ConnectionState::Degraded),
        "after a failed probe"
    );
    assert_eq!(target.hits(), 5);
}

/// A held success never undoes what came after it: written with a failed probe it counts,
/// then the failure counts (one failure in a row); but with failed calls reported in
/// between, it only counts as a check, and the calls' failures stand (three in a row:
/// `failed`, with the critical alert).
async fn a_held_probe_success_does_not_undo_later_failures(store: Store) {
    let t0 = start_time();
    let (quiet, busy) = (ProbeTarget::start().await, ProbeTarget::start().await);
    let c = tenant_collector(&store, t0).await;
    register_probed(&store, "quiet", quiet.url(), t0).await;
    register_probed(&store, "busy", busy.url(), t0).await;
    let stored = |id: &'static str| {
        let store = store.clone();
        async move {
            let r = store
                .integration_record(TENANT, id)
                .await
                .unwrap_or_else(|e| panic!("reading integration {id}'s record: {e}"))
                .unwrap_or_else(|| panic!("integration {id} missing"));
            (r.health_checks_performed, r.consecutive_failures, r.state)
        }
    };
    cycle(&c, t0).await;
    // Both successes of this cycle are held.
    cycle(&c, t0 + INTERVAL).await;
    assert_eq!(stored("quiet").await, (1, 0, ConnectionState::Active));
    // Two failed calls of "busy" after its held success.
    let calls = json!([
        call("b1", "busy", 100.0, false, t0 + INTERVAL + 5_000),
        call("b2", "busy", 100.0, false, t0 + INTERVAL + 10_000),
    ]);
    ingest(&store, t0 + INTERVAL + 10_000, calls).await;
    assert_eq!(stored("busy").await, (1, 2, ConnectionState::Degraded));
    quiet.answer(503);
    busy.answer(503);
    let report = cycle(&c, t0 + 2 * INTERVAL).await;
    assert_eq!(
        stored("quiet").await,
        (3, 1, ConnectionState::Degraded),
        "quiet: the held success, then the failure"
    );
    assert_eq!(
        stored("busy").await,
        (3, 3, ConnectionState::Failed),
        "busy: the held success counted, the calls' failures kept"
    );
    let alert = find(
        &report.tenants[0].alerts,
        "busy",
        condition::CONSECUTIVE_FAILURES,
    )
    .map(|a| a.severity);
    assert_eq!(alert, Some(Severity::Critical));
}

/// A probe target that fails 3 times goes `failed` (warning at 2, critical at 3), is retried
/// on the 1 s, 2 s, 4 s backoff between cycles, and returns to `active` when it answers,
/// with the counters right; its alert then resolves.
async fn a_failing_probe_target_backs_off_and_recovers(store: Store) {
    let t0 = start_time();
    let target = ProbeTarget::start().await;
    target.answer(503);
    let c = tenant_collector(&store, t0).await;
    register_probed(&store, "billing", target.url(), t0).await;
    let record = |store: Store| async move {
        store
            .integration_record(TENANT, "billing")
            .await
            .expect("reading integration billing's record")
            .unwrap_or_else(|| panic!("integration missing"))
    };

    for (i, state) in [
        ConnectionState::Degraded,
        ConnectionState::Degraded,
        ConnectionState::Failed,
    ]
    .into_iter()
    .enumerate()
    {
        let report = cycle(&c, t0 + i as i64 * INTERVAL).await;
        assert_eq!(report.tenants[0].probes, 1);
        assert_eq!(
            record(store.clone()).await.state,
            state,
            "after failure {}",
            i + 1
        );
        let alert = find(
            &report.tenants[0].alerts,
            "billing",
            condition::CONSECUTIVE_FAILURES,
        )
        .map(|a| a.severity);
        let expected = match i {
            0 => None,
            1 => Some(Severity::Warning),
            _ => Some(Severity::Critical),
        };
        assert_eq!(alert, expected, "alert after failure {}", i + 1);
    }
    assert_eq!(target.hits(), 3);
    let failed_at = t0 + 2 * INTERVAL;
    assert_eq!(c.next_recovery_at(), Some(failed_at + 1000));

    // Recovery attempts: due at +1 s, then +2 s after that, then +4 s.
    let attempt = |now: Millis| {
        let c = &c;
        async move {
            c.run_recoveries(now)
                .await
                .unwrap_or_else(|e| panic!("running the probe recoveries at {now}: {e}"))
        }
    };
    assert_eq!(attempt(failed_at + 999).await, 0);
    assert_eq!(attempt(failed_at + 1000).await, 1);
    assert_eq!(c.next_recovery_at(), Some(failed_at + 3000));
    assert_eq!(attempt(failed_at + 2999).await, 0);
    assert_eq!(attempt(failed_at + 3000).await, 1);
    assert_eq!(c.next_recovery_at(), Some(failed_at + 7000));
    assert_eq!(target.hits(), 5, "no request before an attempt is due");
    target.answer(200);
    assert_eq!(attempt(failed_at + 7000).await, 1);
    assert_eq!(c.next_recovery_at(), None);

    let r = record(store.clone()).await;
    assert_eq!(r.state, ConnectionState::Active);
    assert_eq!(
        (
            r.consecutive_failures,
            r.health_checks_performed,
            r.recovery_attempts,
            r.successful_recoveries
        ),
        (0, 6, 3, 1)
    );
    // Active again and steady: the next success waits for the one after it.
    let billing = |report: &shared::collector::CycleReport| {
        report.tenants[0]
            .integrations
            .iter()
            .find(|i| i.integration_id == "billing")
            .cloned()
            .unwrap_or_else(|| panic!("billing missing"))
    };
    let report = cycle(&c, t0 + 3 * INTERVAL).await;
    assert_eq!(billing(&report).health_checks_performed, 6);
    let report = cycle(&c, t0 + 4 * INTERVAL).await;
    let h = billing(&report);
    assert_eq!((h.health_checks_performed, h.uptime_seconds), (8, 53));
    assert!(find(
        &report.tenants[0].alerts,
        "billing",
        condition::CONSECUTIVE_FAILURES
    )
    .is_none());
    // 8 probes, 5 failed, all counted in the hour's error rate.
    assert_eq!(h.error_rate, round4(5.0 / 8.0));
    assert_eq!(target.hits(), 8);
}

/// A failing agent (error rate and failure count) and a host over 90 % on CPU and memory:
/// five alerts.
async fn seed_five_conditions(store: &Store, t0: Millis) {
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("registering the tenant");
    let mut events = runs("bot", "bad", 4, "failed", t0 - MINUTE_MS);
    events.push(host("h", "web-1", 95.0, 95.0, t0));
    ingest(store, t0, json!(events)).await;
}

/// Two collector runs at once (same cycle, or overlapping cycles) raise each alert once.
async fn overlapping_collector_runs_raise_each_alert_once(store: Store) {
    let t0 = start_time();
    seed_five_conditions(&store, t0).await;
    let (a, b) = (collector(&store, config()), collector(&store, config()));

    // The same cycle: one run claims it, the other skips.
    let (ra, rb) = tokio::join!(a.run_cycle(t0), b.run_cycle(t0));
    let (ra, rb) = (
        ra.expect("the first collector's cycle"),
        rb.expect("the second collector's cycle"),
    );
    assert_eq!(ra.tenants.len() + rb.tenants.len(), 1);
    assert_eq!(ra.skipped + rb.skipped, 1);
    assert_eq!(all_alerts(&store).await.len(), 5);

    // A new condition, evaluated by two runs of consecutive cycles that overlap (a slow
    // cycle and the next one, which the claim does not separate): both read the alerts
    // before either writes, so both try to raise it; the conditional write lets one win.
    ingest(&store, t0 + 1000, json!([{"event_id": "g", "type": "gauge", "name": "queue_depth", "value": 500, "timestamp": at(t0 + 1000)}])).await;
    let gate = Arc::new(AlertsGate {
        inner: Arc::clone(store.backend()),
        first_arrived: tokio::sync::Notify::new(),
        barrier: tokio::sync::Barrier::new(2),
        passed: AtomicUsize::new(0),
    });
    let gated = Store::new(gate.clone());
    let (a, b) = (collector(&gated, config()), collector(&gated, config()));
    let slow = tokio::spawn(async move { a.run_cycle(t0 + INTERVAL).await });
    gate.first_arrived.notified().await;
    let rb = b.run_cycle(t0 + 2 * INTERVAL).await;
    let ra = slow.await.expect("the slow cycle's task panicked");
    let mut raised = 0;
    for r in [ra, rb] {
        let r = r.expect("a cycle of a gated collector");
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.tenants.len(), 1, "both runs evaluate their own cycle");
        raised += r.tenants[0].raised;
    }
    // Both saw no alert and tried to raise it; the write that must not exist let one win.
    assert_eq!(raised, 1, "the alert was raised by both runs");
    let all = all_alerts(&store).await;
    assert_eq!(all.len(), 6, "{all:#?}");
    assert_eq!(
        all.iter()
            .filter(|a| a.condition == condition::QUEUE_DEPTH_HIGH)
            .count(),
        1
    );
}

/// A backend over a real one that holds the first reader of the alerts until a second
/// reader arrives, so two collector runs read the same alerts before either writes.
#[derive(Debug)]
struct AlertsGate {
    inner: Arc<dyn Backend>,
    first_arrived: tokio::sync::Notify,
    barrier: tokio::sync::Barrier,
    passed: AtomicUsize,
}

#[async_trait]
impl Backend for AlertsGate {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        self.inner.get(keys).await
    }
    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        if pk.ends_with("#ALERTS") && self.passed.fetch_add(1, Ordering::SeqCst) < 2 {
            self.first_arrived.notify_one();
            self.barrier.wait().await;
        }
        self.inner.query(pk, from, to).await
    }
    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        self.inner.query_many(ranges).await
    }
    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        self.inner.list_index(index_pk).await
    }
    async fn write(&self, writes: Vec<StoreWrite>) -> Result<(), StoreError> {
        self.inner.write(writes).await
    }
    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }
}

/// A backend over a real one whose writes start failing after a budget, like a storage
/// outage half-way through a cycle.
#[derive(Debug)]
struct Outage {
    inner: Arc<dyn Backend>,
    writes_left: AtomicUsize,
}

#[async_trait]
impl Backend for Outage {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        self.inner.get(keys).await
    }
    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        self.inner.query(pk, from, to).await
    }
    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        self.inner.query_many(ranges).await
    }
    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        self.inner.list_index(index_pk).await
    }
    async fn write(&self, writes: Vec<StoreWrite>) -> Result<(), StoreError> {
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(StoreError::Backend("injected outage".into()));
        }
        self.writes_left.store(left - 1, Ordering::SeqCst);
        self.inner.write(writes).await
    }
    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    fn max_writes(&self) -> usize {
        self.inner.max_writes()
    }
}

/// A cycle whose storage fails half-way reports the failure, leaves what it wrote intact,
/// and the next cycle completes the work without duplicates.
async fn a_cycle_failing_half_way_is_completed_by_the_next(store: Store) {
    let t0 = start_time();
    seed_five_conditions(&store, t0).await;
    // The claim and two alerts get through, then storage fails.
    let outage = Store::new(Arc::new(Outage {
        inner: Arc::clone(store.backend()),
        writes_left: AtomicUsize::new(3),
    }));
    let report = collector(&outage, config())
        .run_cycle(t0)
        .await
        .expect("running a cycle during the outage");
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.to_string().contains("injected outage"));
    assert_eq!(all_alerts(&store).await.len(), 2);

    let report = cycle(&collector(&store, config()), t0 + INTERVAL).await;
    assert_eq!(report.tenants[0].raised, 3);
    let all = all_alerts(&store).await;
    let keys: BTreeSet<(String, String)> = all
        .iter()
        .map(|a| (a.source_id.clone(), a.condition.clone()))
        .collect();
    assert_eq!((all.len(), keys.len()), (5, 5));
}

/// A probe whose write is cut off by an outage is neither lost half-way nor counted twice:
/// the check, the state machine and the counters live in one item written at once, so the
/// interrupted result is dropped whole and the next cycle's probe counts.
async fn an_interrupted_probe_write_counts_once(store: Store) {
    let t0 = start_time() - start_time().rem_euclid(MINUTE_MS);
    let target = ProbeTarget::start().await;
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("registering the tenant");
    register_probed(&store, "api", target.url(), t0).await;
    let c = collector(&store, config());
    cycle(&c, t0).await;
    // A steady integration's success is held for the next probe's write.
    cycle(&c, t0 + INTERVAL).await;
    // The claim gets through, the (failed, so written at once) probe's write fails.
    target.answer(503);
    let outage = Store::new(Arc::new(Outage {
        inner: Arc::clone(store.backend()),
        writes_left: AtomicUsize::new(1),
    }));
    let report = collector(&outage, config())
        .run_cycle(t0 + 2 * INTERVAL)
        .await
        .expect("running a cycle during the outage");
    assert_eq!(report.failed.len(), 1);
    target.answer(200);
    // Writes the held success with this one.
    cycle(&c, t0 + 3 * INTERVAL).await;

    let items = store
        .backend()
        .get(&[shared::store::layout::live(
            TENANT,
            shared::store::layout::Entity::Integration,
            "api",
        )])
        .await
        .expect("reading integration api's live item");
    let Some(Some(shared::store::StoredItem {
        record: shared::store::Record::Integration(live),
        ..
    })) = items.into_iter().next()
    else {
        panic!("integration missing")
    };
    let calls: u64 = live.window.minutes.iter().map(|(_, c)| c.calls).sum();
    let day_calls: u64 = live.window.days.iter().map(|(_, c)| c.calls).sum();
    assert_eq!((calls, day_calls), (3, 3));
    assert_eq!(live.record.health_checks_performed, 3);
    assert_eq!(
        target.hits(),
        4,
        "the interrupted cycle probed too; its result was dropped"
    );
}

/// An execution running past max(15 min, 3 × the agent's 7-day p99 duration) raises a
/// warning naming its operation; one within its agent's usual durations does not; the
/// alert resolves when the execution finishes.
async fn a_stuck_execution_raises_a_warning_until_it_finishes(store: Store) {
    let t0 = start_time();
    let c = tenant_collector(&store, t0 - 3 * 3_600_000).await;
    let start = |agent: &str, x: &str, ts: Millis| json!({"event_id": format!("{x}-s"), "type": "execution.started", "agent_id": agent, "agent_name": agent, "execution_id": x, "operation": "Processing leads", "timestamp": at(ts)});
    // "slow" usually takes 12 minutes (two hours ago, so its hour moved to an hour bucket).
    let before = t0 - 2 * 3_600_000;
    let mut history = Vec::new();
    for i in 0..5 {
        history.push(start("slow", &format!("h{i}"), before));
        history.push(json!({"event_id": format!("h{i}-f"), "type": "execution.finished", "agent_id": "slow", "execution_id": format!("h{i}"), "outcome": "completed", "duration_ms": 720_000, "timestamp": at(before + 720_000)}));
    }
    ingest(&store, before + 720_000, json!(history)).await;
    // Both start an execution 20 minutes before t0.
    let begun = t0 - 20 * MINUTE_MS;
    ingest(
        &store,
        begun,
        json!([start("fast", "f1", begun), start("slow", "s1", begun)]),
    )
    .await;

    cycle(&c, t0).await;
    let alerts = active(&store).await;
    let stuck = find(&alerts, "fast", condition::STUCK)
        .unwrap_or_else(|| panic!("no stuck alert: {alerts:?}"));
    assert_eq!(stuck.severity, Severity::Warning);
    assert_eq!(stuck.source_type, SourceType::Agent);
    assert_eq!(
        stuck.message,
        "Agent fast stuck on \"Processing leads\" for 20 min"
    );
    // 20 minutes is within 3 × 12 minutes for "slow".
    assert!(find(&alerts, "slow", condition::STUCK).is_none());
    // At 40 minutes it is past 36.
    cycle(&c, t0 + 20 * MINUTE_MS).await;
    let alerts = active(&store).await;
    assert!(
        find(&alerts, "slow", condition::STUCK).is_some_and(|a| a.message.ends_with("for 40 min"))
    );

    // Finishing the executions resolves both.
    let end = t0 + 21 * MINUTE_MS;
    ingest(
        &store,
        end,
        json!([
            {"event_id": "f1-f", "type": "execution.finished", "agent_id": "fast", "execution_id": "f1", "outcome": "completed", "timestamp": at(end)},
            {"event_id": "s1-f", "type": "execution.finished", "agent_id": "slow", "execution_id": "s1", "outcome": "completed", "timestamp": at(end)},
        ]),
    )
    .await;
    cycle(&c, end + INTERVAL).await;
    let alerts = active(&store).await;
    assert!(
        find(&alerts, "fast", condition::STUCK).is_none()
            && find(&alerts, "slow", condition::STUCK).is_none(),
        "{alerts:?}"
    );
}

/// An SLO burning its budget fast raises a critical alert on its source through the normal
/// lifecycle; it resolves when the SLO no longer burns (here: deleted).
async fn a_fast_burning_slo_raises_a_critical_alert(store: Store) {
    use shared::domain::slo::{Objective, SloRecord, SloSource};
    let t0 = start_time();
    let c = tenant_collector(&store, t0).await;
    // 50 calls two minutes ago, half failed: 50 % bad against a 1 % budget, 50× over both
    // the last hour and the last 5 minutes.
    let events: Vec<_> = (0..50)
        .map(|i| {
            call(
                &format!("p{i}"),
                "pay",
                120.0,
                i % 2 == 0,
                t0 - 2 * MINUTE_MS,
            )
        })
        .collect();
    ingest(&store, t0 - 2 * MINUTE_MS, json!(events)).await;
    let slo = SloRecord {
        slo_id: "pay-availability".into(),
        source_type: SloSource::Integration,
        source_id: "pay".into(),
        objective: Objective::Availability,
        target: 0.99,
        window_days: 30,
        threshold_ms: None,
        percentile: None,
    };
    store.put_slo(TENANT, &slo).await.expect("putting the SLO");
    cycle(&c, t0).await;
    let alerts = active(&store).await;
    let burn = find(&alerts, "pay", condition::SLO_BURN)
        .unwrap_or_else(|| panic!("no burn alert: {alerts:?}"));
    assert_eq!(
        (burn.severity, burn.source_type),
        (Severity::Critical, SourceType::Integration)
    );
    assert_eq!(
        burn.message,
        "Integration pay is burning the error budget of SLO pay-availability at 50× the sustainable rate"
    );
    // The next cycle keeps the one alert.
    cycle(&c, t0 + INTERVAL).await;
    let again = active(&store).await;
    assert_eq!(
        again
            .iter()
            .filter(|a| a.condition == condition::SLO_BURN)
            .count(),
        1
    );
    store
        .delete_slo(TENANT, "pay-availability")
        .await
        .expect("deleting the SLO");
    cycle(&c, t0 + 2 * INTERVAL).await;
    assert!(find(&active(&store).await, "pay", condition::SLO_BURN).is_none());
}

/// A condition that comes and goes raises a new occurrence each time; only the newest
/// `HEALTH_ALERT_HISTORY` of them stay stored, and numbering goes on past the deleted ones.
async fn a_recurring_condition_keeps_only_its_newest_occurrences(store: Store) {
    let t0 = start_time() - 40 * INTERVAL;
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("listing the tenant");
    let c = collector(
        &store,
        Config {
            alert_history: 3,
            ..config()
        },
    );
    for i in 0..16 {
        let now = t0 + i * INTERVAL;
        // Over the CPU bar, then well under it: each pair raises and resolves one occurrence.
        let cpu = if i % 2 == 0 { 95.0 } else { 10.0 };
        ingest(
            &store,
            now,
            json!([host(&format!("s{i}"), "web-1", cpu, 10.0, now)]),
        )
        .await;
        cycle(&c, now).await;
    }
    let mut ids: Vec<String> = all_alerts(&store)
        .await
        .into_iter()
        .filter(|a| a.source_id == "web-1")
        .map(|a| a.alert_id)
        .collect();
    ids.sort_by_key(|id| id.rsplit('_').next().and_then(|n| n.parse::<u32>().ok()));
    let numbers: Vec<&str> = ids.iter().filter_map(|id| id.rsplit('_').next()).collect();
    assert_eq!(
        numbers,
        ["6", "7", "8"],
        "occurrences kept after 8 raises: {ids:?}"
    );
    let now = t0 + 16 * INTERVAL;
    ingest(&store, now, json!([host("s16", "web-1", 95.0, 10.0, now)])).await;
    cycle(&c, now).await;
    let raised = find(&active(&store).await, "web-1", condition::CPU_HIGH)
        .map(|a| a.alert_id.clone())
        .unwrap_or_else(|| panic!("the ninth occurrence was not raised"));
    assert!(
        raised.ends_with("_9"),
        "the next occurrence is numbered on: {raised}"
    );
}

e2e_tests::on_both_stores!(
    a_recurring_condition_keeps_only_its_newest_occurrences,
    a_fast_burning_slo_raises_a_critical_alert,
    a_stuck_execution_raises_a_warning_until_it_finishes,
    each_condition_raises_one_alert_and_resolves_when_cleared,
    acknowledgement_survives_cycles_and_is_cleared_on_escalation,
    a_flapping_value_makes_one_alert,
    a_silent_agent_raises_its_alert_after_five_intervals,
    an_agent_reporting_every_five_minutes_has_one_silent_alert,
    a_failing_probe_target_backs_off_and_recovers,
    a_steady_integrations_probes_are_written_two_at_a_time,
    a_held_probe_success_does_not_undo_later_failures,
    overlapping_collector_runs_raise_each_alert_once,
    a_cycle_failing_half_way_is_completed_by_the_next,
    an_interrupted_probe_write_counts_once,
);
