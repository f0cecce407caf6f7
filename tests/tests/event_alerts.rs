//! Alerts decided by the event that changes them: raised, escalated and resolved as the
//! event arrives, without waiting for a collector cycle, with the tenant's dashboards told
//! at once; and never duplicated when the event path and a cycle decide at the same time.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use e2e_tests::ws;
use serde_json::{json, Value};
use shared::collector::alerting::evaluate_touched;
use shared::collector::Collector;
use shared::config::Config;
use shared::store::Store;
use shared::AppState;

const TENANT: &str = "acme";

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Polls the active alerts until `pick` finds one (or none, with `absent`); fails after
/// 2 s, the promise for conditions an event decides. Returns the alert and how long it took.
async fn within_two_seconds(
    app: &local_stack::Running,
    absent: bool,
    pick: impl Fn(&Value) -> bool,
) -> (Option<Value>, Duration) {
    let start = Instant::now();
    loop {
        let alerts = e2e_tests::get_json(app, &app.api_key, "/api/health/alerts").await;
        let found = alerts
            .as_array()
            .and_then(|a| a.iter().find(|a| pick(a)).cloned());
        if found.is_some() != absent {
            return (found, start.elapsed());
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not within 2 s: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn a_sample_over_the_threshold_raises_and_a_normal_one_resolves_without_a_cycle() {
    // No collector: whatever happens, the event path did it.
    let (app, _dir) = e2e_tests::spawn_app().await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let key = app.api_key.clone();
    e2e_tests::ingest_events(
        &app,
        &key,
        json!([{"event_id": "s1", "type": "host.sample", "host_id": "web-1", "cpu_usage": 97, "memory_usage": 40}]),
    )
    .await;
    let (alert, _) = within_two_seconds(&app, false, |a| a["source_id"] == "web-1").await;
    let alert = alert.unwrap_or_default();
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["message"], "High CPU usage: 97%");
    // The dashboard is told within the same 2 s.
    let (update, _) = ws::next_update(&mut socket, Duration::from_secs(2)).await;
    let ids: Vec<&str> = update["alerts"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["alert_id"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        ids.contains(&alert["alert_id"].as_str().unwrap_or("?")),
        "{update}"
    );

    e2e_tests::ingest_events(
        &app,
        &key,
        json!([{"event_id": "s2", "type": "host.sample", "host_id": "web-1", "cpu_usage": 12, "memory_usage": 40}]),
    )
    .await;
    within_two_seconds(&app, true, |a| a["source_id"] == "web-1").await;
    app.stop().await.expect("stopping the local stack");
}

#[tokio::test]
async fn failures_in_a_row_and_an_agents_failures_raise_their_alerts_from_the_events() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let key = app.api_key.clone();
    let calls: Vec<Value> = (0..3)
        .map(|i| json!({"event_id": format!("c{i}"), "type": "integration.call", "integration_id": "crm", "latency_ms": 30, "ok": false}))
        .collect();
    e2e_tests::ingest_events(&app, &key, Value::Array(calls)).await;
    let (alert, _) = within_two_seconds(&app, false, |a| {
        a["source_id"] == "crm" && a["severity"] == "critical"
    })
    .await;
    assert_eq!(
        alert.unwrap_or_default()["message"],
        "Integration crm failed 3 times in a row"
    );
    // One success: the state machine recovers and the alert resolves.
    e2e_tests::ingest_events(
        &app,
        &key,
        json!([{"event_id": "c-ok", "type": "integration.call", "integration_id": "crm", "latency_ms": 30, "ok": true}]),
    )
    .await;
    within_two_seconds(&app, true, |a| a["source_id"] == "crm").await;

    let runs: Vec<Value> = (0..4)
        .flat_map(|i| {
            [
                json!({"event_id": format!("s{i}"), "type": "execution.started", "agent_id": "bot", "execution_id": format!("x{i}"), "operation": "op"}),
                json!({"event_id": format!("f{i}"), "type": "execution.finished", "agent_id": "bot", "execution_id": format!("x{i}"), "outcome": "failed", "duration_ms": 10}),
            ]
        })
        .collect();
    e2e_tests::ingest_events(&app, &key, Value::Array(runs)).await;
    let (found, _) = within_two_seconds(&app, false, |a| {
        a["source_id"] == "bot" && a["message"] == "Agent bot failed 4 times in the last hour"
    })
    .await;
    assert!(found.is_some());
    app.stop().await.expect("stopping the local stack");
}

/// The event path and the cycle evaluate one host at once, twice each: one alert.
async fn the_event_path_and_a_cycle_at_once_make_one_alert(store: Store) {
    let now = now();
    store
        .register_tenant(TENANT, now)
        .await
        .expect("registering the tenant");
    let events = e2e_tests::seed::batch(
        json!([{"event_id": "h1", "type": "host.sample", "host_id": "db-1", "cpu_usage": 93, "memory_usage": 95}]),
        now,
    );
    let (_, touched) = store
        .ingest_touching(TENANT, &events, now)
        .await
        .expect("ingesting the host sample");
    let config = Config::default();
    let state = AppState::new(store.clone(), config.clone());
    let collector = Collector::new(&state).expect("building the collector");
    let (a, b, c) = tokio::join!(
        evaluate_touched(&store, &config, TENANT, &touched, now),
        evaluate_touched(&store, &config, TENANT, &touched, now),
        collector.run_cycle(now),
    );
    let raised = a.expect("the first event-path evaluation").raised
        + b.expect("the second event-path evaluation").raised;
    let cycle = c.expect("the collector cycle");
    let from_cycle: usize = cycle.tenants.iter().map(|t| t.raised).sum();
    let alerts = store
        .active_alerts(TENANT)
        .await
        .expect("reading the active alerts");
    let mut conditions: Vec<&str> = alerts.iter().map(|a| a.message.as_str()).collect();
    conditions.sort_unstable();
    assert_eq!(
        conditions,
        ["High CPU usage: 93%", "High memory usage: 95%"],
        "{alerts:?}"
    );
    assert_eq!(
        raised + from_cycle,
        2,
        "each alert raised by exactly one of them"
    );
}

e2e_tests::on_both_stores!(the_event_path_and_a_cycle_at_once_make_one_alert);
