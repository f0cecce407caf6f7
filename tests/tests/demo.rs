//! The demo scenario (`cargo run -- --demo`) does what it promises: fed through the real
//! ingestion and collector at the demo's 10 s cycle for twelve six-minute loops (past the
//! one-hour windows of the agent rules), each incident raises its alert every loop, nothing
//! else ever alerts, and every alert resolves.

use std::collections::BTreeMap;

use local_stack::scenario::{tick_events, LOOP_TICKS, TICK_MS};
use serde_json::json;
use shared::collector::Collector;
use shared::config::Config;
use shared::AppState;

const TENANT: &str = "local";

#[tokio::test]
async fn each_incident_raises_its_alert_and_every_alert_resolves_within_the_loop() {
    let (store, _dir) = e2e_tests::embedded_store();
    let interval_ms = 10_000;
    let now = chrono::Utc::now().timestamp_millis();
    let t0 = now - now.rem_euclid(interval_ms);
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("registering the tenant");
    let state = AppState::new(
        store.clone(),
        Config {
            polling_interval_secs: 10,
            ..Config::default()
        },
    );
    let collector = Collector::new(&state).expect("building the collector");
    // Alert message by id, and whether it is still active, over the whole loop.
    let mut seen: BTreeMap<String, (String, String, bool)> = BTreeMap::new();
    for tick in 0..LOOP_TICKS * 12 + 6 {
        let at = t0 + i64::try_from(tick).unwrap_or_default() * TICK_MS;
        e2e_tests::seed::ingest(&store, TENANT, json!(tick_events("test", tick, at)), at).await;
        if at % interval_ms == 0 {
            collector
                .run_cycle(at)
                .await
                .unwrap_or_else(|e| panic!("running the cycle at {at}: {e}"));
            let active = store.active_alerts(TENANT).await.unwrap_or_default();
            for entry in seen.values_mut() {
                entry.2 = false;
            }
            for a in active {
                let entry = seen.entry(a.alert_id.clone()).or_insert((
                    a.message.clone(),
                    format!("{:?}", a.severity),
                    true,
                ));
                entry.2 = true;
                if format!("{:?}", a.severity) == "Critical" {
                    entry.1 = "Critical".into();
                }
            }
        }
    }
    let messages: Vec<String> = seen
        .values()
        .map(|(m, s, active)| format!("{s}: {m}{}", if *active { " (still active)" } else { "" }))
        .collect();
    let has = |part: &str, severity: &str| {
        seen.values()
            .any(|(m, s, _)| m.contains(part) && s == severity)
    };
    assert!(has("High CPU usage", "Critical"), "{messages:#?}");
    assert!(
        has("queue", "Warning") || has("Queue", "Warning"),
        "{messages:#?}"
    );
    assert!(has("Stripe", "Critical"), "{messages:#?}");
    assert!(has("Lead Enricher", "Warning"), "{messages:#?}");
    // Ids are `alert_<source and condition>_<occurrence>`: four conditions, twelve times.
    let conditions: std::collections::BTreeSet<&str> = seen
        .keys()
        .filter_map(|id| id.rsplit_once('_').map(|(c, _)| c))
        .collect();
    assert_eq!(
        conditions.len(),
        4,
        "only the scripted incidents alert: {messages:#?}"
    );
    assert_eq!(
        seen.len(),
        4 * 12,
        "each incident once per loop: {messages:#?}"
    );
    assert!(
        seen.values().all(|(_, _, active)| !active),
        "every alert resolves: {messages:#?}"
    );
}
