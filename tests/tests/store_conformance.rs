//! One conformance suite, run against the embedded backend and against DynamoDB (on the
//! DynamoDB-compatible server the test command starts). Each test is a function over a
//! `Store`; the macro at the bottom instantiates it for both backends.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use e2e_tests::embedded_store;
use serde_json::json;
use shared::domain::events::{parse_batch, Event};
use shared::domain::health::{AgentHealth, AgentStatus, IntegrationHealth, Trend};
use shared::domain::records::ConnectionState;
use shared::store::agents::AgentUpdate;
use shared::store::ingest::IngestOutcome;
use shared::store::integrations::IntegrationUpdate;
use shared::store::layout::{self, Entity};
use shared::store::{Record, Store};
use shared::time::{format_rfc3339, DAY_MS, MINUTE_MS};

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn batch(now: i64, events: serde_json::Value) -> Vec<Event> {
    let body = json!({ "events": events }).to_string();
    parse_batch(body.as_bytes(), now).unwrap_or_else(|e| panic!("invalid test batch: {e:?}"))
}

fn at(ms: i64) -> String {
    format_rfc3339(ms)
}

async fn ingest(store: &Store, tenant: &str, events: &[Event], now: i64) -> IngestOutcome {
    store
        .ingest(tenant, events, now)
        .await
        .unwrap_or_else(|e| panic!("ingesting a batch into tenant {tenant}: {e}"))
}

/// Agent `id`'s health; panics if it is not stored.
async fn agent(store: &Store, tenant: &str, id: &str, now: i64) -> AgentHealth {
    store
        .agent_health(tenant, id, now)
        .await
        .expect("reading an agent's health")
        .unwrap_or_else(|| panic!("agent {id} missing"))
}

/// Integration `id`'s health (5 s latency threshold); panics if it is not stored.
async fn integration(store: &Store, tenant: &str, id: &str, now: i64) -> IntegrationHealth {
    store
        .integration_health(tenant, id, now, 5000.0)
        .await
        .expect("reading an integration's health")
        .unwrap_or_else(|| panic!("integration {id} missing"))
}

async fn completed_and_failed_give_the_contract_numbers(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([
            {"event_id": "s1", "type": "execution.started", "agent_id": "a1", "execution_id": "x1", "operation": "Processing leads", "agent_name": "Sales Assistant", "timestamp": at(now - 10 * MINUTE_MS)},
            {"event_id": "f1", "type": "execution.finished", "agent_id": "a1", "execution_id": "x1", "outcome": "completed", "timestamp": at(now - 9 * MINUTE_MS)},
            {"event_id": "s2", "type": "execution.started", "agent_id": "a1", "execution_id": "x2", "operation": "Emailing", "timestamp": at(now - 5 * MINUTE_MS)},
            {"event_id": "f2", "type": "execution.finished", "agent_id": "a1", "execution_id": "x2", "outcome": "failed", "duration_ms": 60000, "confidence": 0.4, "timestamp": at(now - 4 * MINUTE_MS)},
        ]),
    );
    let outcome = ingest(&store, "t1", &events, now).await;
    assert_eq!((outcome.accepted, outcome.duplicates), (4, 0));
    let h = agent(&store, "t1", "a1", now).await;
    assert_eq!(h.agent_name, "Sales Assistant");
    assert_eq!(h.operations_completed, 1);
    assert_eq!(h.metrics.recent_executions, 2);
    assert_eq!(h.metrics.error_rate, 0.5);
    assert_eq!(h.success_rate, 0.5);
    assert_eq!(h.metrics.avg_execution_time, Some(60000.0));
    assert_eq!(h.status, AgentStatus::Error);
    assert_eq!(h.confidence_score, 0.4);
    assert_eq!(h.last_active, Some(at(now - 4 * MINUTE_MS)));
}

async fn three_completed_and_one_failed_give_075_and_025(store: Store) {
    let now = now();
    let mut events = Vec::new();
    for (i, outcome) in ["completed", "completed", "completed", "failed"]
        .iter()
        .enumerate()
    {
        events.push(json!({"event_id": format!("s{i}"), "type": "execution.started", "agent_id": "a", "execution_id": format!("x{i}"), "operation": "op", "timestamp": at(now - 30 * MINUTE_MS)}));
        events.push(json!({"event_id": format!("f{i}"), "type": "execution.finished", "agent_id": "a", "execution_id": format!("x{i}"), "outcome": outcome, "timestamp": at(now - 29 * MINUTE_MS)}));
    }
    ingest(&store, "t", &batch(now, json!(events)), now).await;
    let h = agent(&store, "t", "a", now).await;
    assert_eq!(
        (h.success_rate, h.metrics.error_rate, h.operations_completed),
        (0.75, 0.25, 3)
    );
    assert_eq!(h.metrics.avg_execution_time, Some(60000.0));
}

async fn a_batch_sent_twice_is_counted_once(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([
            {"event_id": "b1", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "op"},
            {"event_id": "b2", "type": "integration.call", "integration_id": "slack", "latency_ms": 120, "ok": true},
            {"event_id": "b3", "type": "host.sample", "host_id": "h1", "cpu_usage": 40, "memory_usage": 50},
            {"event_id": "b4", "type": "gauge", "name": "queue_depth", "value": 7},
        ]),
    );
    let first = ingest(&store, "t", &events, now).await;
    let second = ingest(&store, "t", &events, now).await;
    assert_eq!((first.accepted, first.duplicates), (4, 0));
    assert_eq!((second.accepted, second.duplicates), (0, 4));
    let h = agent(&store, "t", "a", now).await;
    assert_eq!(h.metrics.recent_executions, 1);
    let i = integration(&store, "t", "slack", now).await;
    assert_eq!((i.latency_ms, i.error_rate), (120.0, 0.0));
    let host = store
        .backend()
        .get(&[layout::live("t", Entity::Host, "h1")])
        .await
        .expect("reading host h1's live item");
    assert!(
        matches!(&host[0], Some(item) if matches!(&item.record, Record::Host(h) if h.window.minutes.iter().map(|(_, c)| c.samples).sum::<u64>() == 1))
    );
}

async fn a_duplicate_inside_one_batch_counts_once(store: Store) {
    let now = now();
    let e = json!({"event_id": "same", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "op"});
    let outcome = ingest(&store, "t", &batch(now, json!([e.clone(), e])), now).await;
    assert_eq!((outcome.accepted, outcome.duplicates), (1, 1));
}

async fn concurrent_retries_of_one_batch_count_once(store: Store) {
    let now = now();
    let events: Vec<_> = (0..20)
        .map(|i| json!({"event_id": format!("c{i}"), "type": "execution.started", "agent_id": "busy", "execution_id": format!("x{i}"), "operation": "op"}))
        .collect();
    let events = batch(now, json!(events));
    let (a, b) = tokio::join!(
        store.ingest("t", &events, now),
        store.ingest("t", &events, now)
    );
    let (a, b) = (
        a.expect("the first of two concurrent ingests"),
        b.expect("the second of two concurrent ingests"),
    );
    assert_eq!(a.accepted + b.accepted, 20);
    assert_eq!(a.duplicates + b.duplicates, 20);
    let h = agent(&store, "t", "busy", now).await;
    assert_eq!(h.metrics.recent_executions, 20);
}

async fn concurrent_writers_to_one_agent_lose_nothing(store: Store) {
    let now = now();
    let batches: Vec<Vec<Event>> = (0..4)
        .map(|w| {
            let events: Vec<_> = (0..10)
                .map(|i| json!({"event_id": format!("w{w}-{i}"), "type": "execution.finished", "agent_id": "shared", "execution_id": format!("x{w}-{i}"), "outcome": "completed", "duration_ms": 100}))
                .collect();
            batch(now, json!(events))
        })
        .collect();
    let results = futures_join(&store, &batches, now).await;
    assert_eq!(results, 40);
    let h = agent(&store, "t", "shared", now).await;
    assert_eq!(
        (h.metrics.recent_executions, h.operations_completed),
        (40, 40)
    );
}

async fn futures_join(store: &Store, batches: &[Vec<Event>], now: i64) -> usize {
    let mut handles = Vec::new();
    for b in batches {
        let (store, b) = (store.clone(), b.clone());
        handles.push(tokio::spawn(
            async move { store.ingest("t", &b, now).await },
        ));
    }
    let mut accepted = 0;
    for h in handles {
        accepted += h
            .await
            .expect("an ingesting task panicked")
            .expect("a writer's batch was refused")
            .accepted;
    }
    accepted
}

async fn a_finish_before_its_start_counts_the_execution_once(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([
            {"event_id": "f", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "completed", "duration_ms": 2000, "timestamp": at(now - MINUTE_MS)},
            {"event_id": "s", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "late start", "timestamp": at(now - MINUTE_MS - 2000)},
            {"event_id": "f-again", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "failed"},
        ]),
    );
    ingest(&store, "t", &events, now).await;
    let h = agent(&store, "t", "a", now).await;
    assert_eq!(
        (
            h.metrics.recent_executions,
            h.operations_completed,
            h.metrics.error_rate
        ),
        (1, 1, 0.0)
    );
    assert_eq!(h.status, AgentStatus::Idle);
    assert_eq!(h.current_operation, None);
}

async fn a_running_execution_shows_as_the_current_operation(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([
            {"event_id": "s", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "Processing leads"},
        ]),
    );
    ingest(&store, "t", &events, now).await;
    let h = agent(&store, "t", "a", now).await;
    assert_eq!(
        (h.status, h.current_operation.as_deref()),
        (AgentStatus::Active, Some("Processing leads"))
    );
    assert_eq!(
        (h.metrics.recent_executions, h.metrics.avg_execution_time),
        (1, None)
    );
}

async fn daily_history_drives_the_trend(store: Store) {
    let now = now();
    let mut events = Vec::new();
    // Six days ago: 3 of 10 completed; today: 9 of 10.
    for (day_offset, completed) in [(6, 3), (0, 9)] {
        for i in 0..10 {
            let outcome = if i < completed { "completed" } else { "failed" };
            events.push(json!({"event_id": format!("d{day_offset}-{i}"), "type": "execution.finished", "agent_id": "a", "execution_id": format!("d{day_offset}-{i}"), "outcome": outcome, "duration_ms": 10, "timestamp": at(now - day_offset * DAY_MS)}));
        }
    }
    ingest(&store, "t", &batch(now, json!(events)), now).await;
    let h = agent(&store, "t", "a", now).await;
    assert_eq!(h.health_trend, Trend::Improving);
    assert_eq!(h.metrics.recent_executions, 10);
}

async fn put_agent_creates_updates_and_lists_agents_in_id_order(store: Store) {
    let now = now();
    let update = AgentUpdate {
        agent_name: Some("Sales Assistant".into()),
        paused: Some(true),
        confidence_score: Some(0.85),
    };
    let h = store
        .put_agent("t", "zeta", &update, now)
        .await
        .expect("putting agent zeta");
    assert_eq!(
        (h.agent_name.as_str(), h.status, h.confidence_score),
        ("Sales Assistant", AgentStatus::Paused, 0.85)
    );
    let h = store
        .put_agent(
            "t",
            "zeta",
            &AgentUpdate {
                paused: Some(false),
                ..AgentUpdate::default()
            },
            now,
        )
        .await
        .expect("unpausing agent zeta");
    assert_eq!(
        (h.agent_name.as_str(), h.status, h.confidence_score),
        ("Sales Assistant", AgentStatus::Idle, 0.85)
    );
    store
        .put_agent("t", "alpha", &AgentUpdate::default(), now)
        .await
        .expect("putting agent alpha");
    let events = batch(
        now,
        json!([{"event_id": "m", "type": "execution.started", "agent_id": "mid", "execution_id": "x", "operation": "op"}]),
    );
    ingest(&store, "t", &events, now).await;
    let ids: Vec<String> = store
        .list_agent_health("t", now)
        .await
        .expect("listing the agents")
        .into_iter()
        .map(|h| h.agent_id)
        .collect();
    assert_eq!(ids, ["alpha", "mid", "zeta"]);
}

async fn tenants_never_see_each_other(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([{"event_id": "e", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "op"}]),
    );
    ingest(&store, "acme", &events, now).await;
    // Same event id in another tenant is a different event.
    let other = ingest(&store, "globex", &events, now).await;
    assert_eq!(other.accepted, 1);
    store
        .put_agent("acme", "only-acme", &AgentUpdate::default(), now)
        .await
        .expect("putting agent only-acme");
    assert!(store
        .agent_health("globex", "only-acme", now)
        .await
        .expect("reading agent only-acme as tenant globex")
        .is_none());
    assert_eq!(
        store
            .list_agent_health("globex", now)
            .await
            .expect("listing globex's agents")
            .len(),
        1
    );
    assert_eq!(
        store
            .list_agent_health("acme", now)
            .await
            .expect("listing acme's agents")
            .len(),
        2
    );
}

async fn integration_calls_drive_the_connection_state_machine(store: Store) {
    let now = now();
    let calls: Vec<_> = [true, false, false, false]
        .iter()
        .enumerate()
        .map(|(i, ok)| json!({"event_id": format!("c{i}"), "type": "integration.call", "integration_id": "hubspot", "integration_name": "HubSpot", "latency_ms": 100 * (i + 1), "ok": ok, "timestamp": at(now - 1000 * (10 - i as i64))}))
        .collect();
    ingest(&store, "t", &batch(now, json!(calls)), now).await;
    let i = integration(&store, "t", "hubspot", now).await;
    assert_eq!(
        (i.state, i.consecutive_failures),
        (ConnectionState::Failed, 3)
    );
    assert_eq!(
        (i.error_rate, i.latency_ms, i.integration_name.as_str()),
        (0.75, 250.0, "HubSpot")
    );
    let ok = batch(
        now,
        json!([{"event_id": "c9", "type": "integration.call", "integration_id": "hubspot", "latency_ms": 50, "ok": true}]),
    );
    ingest(&store, "t", &ok, now).await;
    let i = integration(&store, "t", "hubspot", now).await;
    assert_eq!(
        (i.state, i.consecutive_failures, i.successful_recoveries),
        (ConnectionState::Active, 0, 1)
    );
}

async fn put_integration_registers_a_probe(store: Store) {
    let now = now();
    let update = IntegrationUpdate {
        integration_name: Some("Slack".into()),
        probe: Some(shared::domain::records::Probe {
            url: "https://slack.com/api/api.test".into(),
            timeout_ms: 5000,
            expected_status: 200,
        }),
    };
    let i = store
        .put_integration("t", "slack", &update, now, 5000.0)
        .await
        .expect("putting integration slack with a probe");
    assert_eq!(
        (i.integration_name.as_str(), i.state),
        ("Slack", ConnectionState::Initializing)
    );
    let item = store
        .backend()
        .get(&[layout::live("t", Entity::Integration, "slack")])
        .await
        .expect("reading integration slack's live item");
    assert!(
        matches!(&item[0], Some(it) if matches!(&it.record, Record::Integration(r) if r.record.probe.as_ref().map(|p| p.timeout_ms) == Some(5000)))
    );
}

async fn host_samples_and_gauges_keep_the_newest_reading(store: Store) {
    let now = now();
    let events = batch(
        now,
        json!([
            {"event_id": "h2", "type": "host.sample", "host_id": "web-1", "cpu_usage": 80.5, "memory_usage": 70, "disk_usage": 30, "load_average": [1.0, 0.5, 0.25], "uptime_seconds": 3600, "timestamp": at(now - 1000)},
            {"event_id": "h1", "type": "host.sample", "host_id": "web-1", "cpu_usage": 10, "memory_usage": 20, "timestamp": at(now - 5000)},
            {"event_id": "g2", "type": "gauge", "name": "queue_depth", "value": 12, "timestamp": at(now - 1000)},
            {"event_id": "g1", "type": "gauge", "name": "queue_depth", "value": 99, "timestamp": at(now - 5000)},
        ]),
    );
    ingest(&store, "t", &events, now).await;
    let items = store
        .backend()
        .get(&[
            layout::live("t", Entity::Host, "web-1"),
            layout::system("t"),
        ])
        .await
        .expect("reading host web-1's and the system's items");
    match items.as_slice() {
        [Some(host), Some(system)] => {
            assert!(
                matches!(&host.record, Record::Host(h) if h.record.cpu_usage == 80.5 && h.record.uptime_seconds == Some(3600))
            );
            assert!(
                matches!(&system.record, Record::System(s) if s.queue_depth.map(|g| g.value) == Some(12))
            );
        }
        other => panic!("expected host and system records, got {other:?}"),
    }
}

async fn api_keys_are_stored_hashed_with_tenant_and_scopes(store: Store) {
    let now = now();
    let key = store
        .create_api_key("acme", &["read".to_owned()], "ops", now)
        .await
        .expect("creating a key");
    assert!(key.starts_with("ahm_") && key.len() == 52);
    let record = store
        .find_api_key(&key)
        .await
        .expect("looking the new key up")
        .unwrap_or_else(|| panic!("the new key is not found"))
        .record;
    assert_eq!(
        (record.tenant.as_str(), record.scopes.as_slice()),
        ("acme", ["read".to_owned()].as_slice())
    );
    assert!(store
        .find_api_key("ahm_wrong")
        .await
        .expect("looking up an unknown key")
        .is_none());
    let stored = store
        .backend()
        .get(&[layout::api_key(&shared::store::keys::hash_key(&key))])
        .await
        .expect("reading the stored key's item");
    let text = format!("{:?}", stored);
    assert!(!text.contains(&key), "the key itself must not be stored");
}

async fn a_large_batch_is_written_in_chunks_and_counted_exactly(store: Store) {
    let now = now();
    let events: Vec<_> = (0..250)
        .map(|i| json!({"event_id": format!("big{i}"), "type": "integration.call", "integration_id": format!("i{}", i % 7), "latency_ms": 10, "ok": i % 5 != 0}))
        .collect();
    let events = batch(now, json!(events));
    let first = ingest(&store, "t", &events, now).await;
    assert_eq!(first.accepted, 250);
    let again = ingest(&store, "t", &events, now).await;
    assert_eq!(again.duplicates, 250);
    let i0 = integration(&store, "t", "i0", now).await;
    // i0 gets events 0, 7, 14, ..., 245: 36 calls, of which those divisible by 5 failed (0, 35, ..., 245: 8).
    assert_eq!(
        i0.error_rate,
        (8.0_f64 / 36.0 * 10_000.0).round() / 10_000.0
    );
}

async fn a_write_whose_condition_fails_changes_nothing(store: Store) {
    use shared::store::{Condition, StoredItem, Write};
    let item = |sk: &str, version: u64| StoredItem {
        key: shared::store::ItemKey {
            pk: "T#t#SYSTEM".into(),
            sk: sk.into(),
        },
        record: Record::System(shared::domain::records::SystemRecord::default()),
        version,
        expires_at: None,
        index: None,
    };
    let backend = store.backend();
    backend
        .write(vec![Write {
            item: item("A", 1),
            condition: Condition::NotExists,
        }])
        .await
        .expect("writing item A");
    // Second write of the pair has a stale version: neither may be applied.
    let result = backend
        .write(vec![
            Write {
                item: item("B", 1),
                condition: Condition::NotExists,
            },
            Write {
                item: item("A", 3),
                condition: Condition::Version(2),
            },
        ])
        .await;
    assert!(
        matches!(result, Err(shared::store::StoreError::Conflict)),
        "{result:?}"
    );
    let again = backend
        .write(vec![Write {
            item: item("A", 2),
            condition: Condition::NotExists,
        }])
        .await;
    assert!(
        matches!(again, Err(shared::store::StoreError::Conflict)),
        "{again:?}"
    );
    let keys = [item("A", 0).key, item("B", 0).key];
    let read = backend.get(&keys).await.expect("reading items A and B");
    assert_eq!(read[0].as_ref().map(|i| i.version), Some(1));
    assert!(read[1].is_none(), "a cancelled transaction must not write");
    backend
        .write(vec![Write {
            item: item("A", 2),
            condition: Condition::Version(1),
        }])
        .await
        .expect("writing item A at version 2");
}

/// Races of concurrent writers run on the embedded store only. moto is not a faithful
/// referee of them: its TransactWriteItems deep-copies the table before applying and
/// restores that copy when a condition fails, so a transaction that fails while another
/// commits erases the other's writes (seen as an event counted twice). DynamoDB serializes
/// transactions; the same conditional writes are exercised sequentially on moto above.
mod embedded_concurrency {
    #[tokio::test]
    async fn concurrent_batches_on_one_hot_item_all_land_and_count_once() {
        let (store, _dir) = super::embedded_store();
        super::concurrent_batches_on_one_hot_item_all_land_and_count_once(store).await;
    }

    #[tokio::test]
    async fn concurrent_retries_of_one_batch_count_once() {
        let (store, _dir) = super::embedded_store();
        super::concurrent_retries_of_one_batch_count_once(store).await;
    }

    #[tokio::test]
    async fn concurrent_writers_to_one_agent_lose_nothing() {
        let (store, _dir) = super::embedded_store();
        super::concurrent_writers_to_one_agent_lose_nothing(store).await;
    }
}

/// Eight writers at once on one hot integration and the tenant's gauge: every batch is
/// stored (the embedded store runs ingestion chunks one at a time, so they never conflict)
/// and every call counts once.
async fn concurrent_batches_on_one_hot_item_all_land_and_count_once(store: Store) {
    let now = now();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let events = batch(
            now,
            json!([
                {"event_id": format!("w{w}c1"), "type": "integration.call", "integration_id": "hot", "latency_ms": 5, "ok": true},
                {"event_id": format!("w{w}c2"), "type": "integration.call", "integration_id": "hot", "latency_ms": 5, "ok": false},
                {"event_id": format!("w{w}g"), "type": "gauge", "name": "queue_depth", "value": w},
            ]),
        );
        tasks.push(tokio::spawn(async move {
            store.ingest("t", &events, now).await
        }));
    }
    for task in tasks {
        let outcome = task
            .await
            .expect("an ingesting task panicked")
            .unwrap_or_else(|e| panic!("a batch was refused: {e}"));
        assert_eq!(outcome.accepted, 3);
    }
    let i = integration(&store, "t", "hot", now).await;
    assert_eq!(i.error_rate, 0.5);
    let history = store
        .history(
            "t",
            shared::store::system::HistoryOf::Integration("hot"),
            1,
            now,
        )
        .await
        .expect("reading integration hot's history")
        .unwrap_or_else(|| panic!("integration hot has no history"));
    assert_eq!(history[0].metrics["calls"], json!(16));
}

/// Keys are listed per tenant without secrets, revoked ones stay listed, the last active
/// admin key cannot be revoked, and use is noted at most every 10 minutes.
async fn keys_are_listed_revoked_and_the_last_admin_kept(store: Store) {
    use shared::store::keys::Revocation;
    let now = now();
    let admin = store
        .new_api_key("acme", &["admin".to_owned()], "first admin", now)
        .await
        .expect("creating acme's admin key");
    let reader = store
        .new_api_key("acme", &["read".to_owned()], "dashboard", now + 1)
        .await
        .expect("creating acme's read key");
    store
        .new_api_key("other", &["admin".to_owned()], "elsewhere", now)
        .await
        .expect("creating another tenant's key");
    let listed = store
        .list_api_keys("acme")
        .await
        .expect("listing acme's keys");
    let ids: Vec<_> = listed.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(ids, [admin.key_id.as_str(), reader.key_id.as_str()]);
    assert!(listed
        .iter()
        .all(|k| k.revoked_at.is_none() && k.last_used_at.is_none()));

    // Another tenant's key answers as an unknown one.
    let theirs = store.revoke_api_key("other", &reader.key_id, now).await;
    assert!(matches!(theirs, Ok(Revocation::NotFound)), "{theirs:?}");
    let last = store.revoke_api_key("acme", &admin.key_id, now).await;
    assert!(matches!(last, Ok(Revocation::LastAdmin)), "{last:?}");
    let revoked = store.revoke_api_key("acme", &reader.key_id, now + 5).await;
    assert!(matches!(revoked, Ok(Revocation::Revoked(_))), "{revoked:?}");
    let again = store.revoke_api_key("acme", &reader.key_id, now + 9).await;
    assert!(
        matches!(&again, Ok(Revocation::Revoked(k)) if k.revoked_at == Some(format_rfc3339(now + 5))),
        "{again:?}"
    );
    let found = store
        .find_api_key(&reader.key)
        .await
        .expect("looking up the revoked key")
        .unwrap_or_else(|| panic!("a revoked key is kept"));
    assert_eq!(found.record.revoked_at, Some(now + 5));

    // Use is noted once per 10 minutes.
    let found = store
        .find_api_key(&admin.key)
        .await
        .expect("looking up the admin key")
        .unwrap_or_else(|| panic!("the admin key is not found"));
    store
        .touch_api_key(&admin.key, &found, now + 1000)
        .await
        .expect("noting the admin key's first use");
    let found = store
        .find_api_key(&admin.key)
        .await
        .expect("looking up the admin key after its use")
        .unwrap_or_else(|| panic!("the admin key is not found after its use"));
    assert_eq!(found.record.last_used_at, Some(now + 1000));
    store
        .touch_api_key(&admin.key, &found, now + 2000)
        .await
        .expect("noting the admin key's use again");
    let listed = store
        .list_api_keys("acme")
        .await
        .expect("listing acme's keys after their use");
    assert_eq!(listed[0].last_used_at, Some(format_rfc3339(now + 1000)));
}

/// Pages of a list read in turn give the whole list once, in order, whatever the page size;
/// ids that extend another id (`a`, `a-1`) and ids after the last page are not skipped.
async fn pages_of_a_list_give_the_whole_list_once(store: Store) {
    let now = now();
    let mut ids: Vec<String> = (0..23).map(|i| format!("agent-{i:02}")).collect();
    ids.extend(["a".to_owned(), "a-1".to_owned(), "a#b".to_owned()]);
    for id in &ids {
        store
            .put_agent("t", id, &AgentUpdate::default(), now)
            .await
            .unwrap_or_else(|e| panic!("putting agent {id}: {e}"));
    }
    ids.sort();
    for limit in [1, 7, 26, 1000] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = store
                .agent_health_page("t", now, after.as_deref(), limit)
                .await
                .unwrap_or_else(|e| {
                    panic!("reading a page of {limit} agents after {after:?}: {e}")
                });
            assert!(page.len() <= limit);
            seen.extend(page.into_iter().map(|a| a.agent_id));
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ids, "limit {limit}");
    }
}

async fn latencies_give_percentiles_and_hours_move_out_with_their_counts(store: Store) {
    use shared::domain::latency::estimate;
    use shared::time::HOUR_MS;
    // Ten minutes into an hour of three hours ago: 100 calls of 1 to 100 ms at minute 5.
    let hour = (now() - 3 * HOUR_MS).div_euclid(HOUR_MS);
    let t = hour * HOUR_MS + 10 * MINUTE_MS;
    let calls: Vec<_> = (1..=100)
        .map(|ms| json!({"event_id": format!("c{ms}"), "type": "integration.call", "integration_id": "stripe", "latency_ms": ms, "ok": true, "timestamp": at(t - 5 * MINUTE_MS)}))
        .collect();
    ingest(&store, "t", &batch(t, json!(calls)), t).await;
    let h = integration(&store, "t", "stripe", t).await;
    // Nearest rank of 1..=100 ms: the 50th, 95th and 99th value.
    assert_eq!(
        h.latency.values(),
        [
            Some(estimate(50.0)),
            Some(estimate(95.0)),
            Some(estimate(99.0))
        ]
    );
    // The first call of the next hour moves the hour's latencies to its hour bucket.
    let next = (hour + 1) * HOUR_MS + 2 * MINUTE_MS;
    ingest(&store, "t", &batch(next, json!([{"event_id": "late", "type": "integration.call", "integration_id": "stripe", "latency_ms": 900, "ok": true, "timestamp": at(next)}])), next,).await;
    let key = layout::hour("t", Entity::Integration, "stripe", hour);
    let moved = store
        .backend()
        .get(std::slice::from_ref(&key))
        .await
        .expect("reading the hour bucket");
    let Some(Some(item)) = moved.into_iter().next() else {
        panic!("no hour bucket");
    };
    let Record::Hour(summary) = item.record else {
        panic!("not an hour bucket: {:?}", item.record);
    };
    assert_eq!((summary.total, summary.failed), (100, 0));
    assert_eq!(summary.latency.count(), 100);
    assert_eq!(
        summary
            .latency
            .quantile(0.99)
            .map(|v| (v * 10.0).round() / 10.0),
        Some(estimate(99.0))
    );
    // The hour window still holds them, with the new call.
    let h = integration(&store, "t", "stripe", next).await;
    assert_eq!(h.latency.p99, Some(estimate(100.0)));
    assert_eq!(h.latency.p50, Some(estimate(51.0)));
}

/// A finish without `duration_ms` in the hour after its start, retried after the agent's
/// marks moved out of its item, is still recognised: the retry cannot tell the start's
/// hour, so the finish is remembered under its own hour too.
async fn a_retried_finish_after_the_hour_turned_counts_once(store: Store) {
    use shared::time::HOUR_MS;
    let hour = (now() - 3 * HOUR_MS).div_euclid(HOUR_MS);
    let start = hour * HOUR_MS + 50 * MINUTE_MS;
    let end = start + 20 * MINUTE_MS;
    let finish = json!([{"event_id": "f1", "type": "execution.finished", "agent_id": "a", "execution_id": "x1", "outcome": "completed", "timestamp": at(end)}]);
    for (n, events) in [
        (
            start,
            json!([{"event_id": "s1", "type": "execution.started", "agent_id": "a", "execution_id": "x1", "operation": "op", "timestamp": at(start)}]),
        ),
        (end, finish.clone()),
        // Another execution next hour: the item's earlier marks move to mark buckets.
        (
            end + HOUR_MS,
            json!([{"event_id": "s2", "type": "execution.started", "agent_id": "a", "execution_id": "x2", "operation": "op", "timestamp": at(end + HOUR_MS)}]),
        ),
    ] {
        ingest(&store, "t", &batch(n, events), n).await;
    }
    let later = end + HOUR_MS + MINUTE_MS;
    let retry = ingest(&store, "t", &batch(later, finish), later).await;
    assert_eq!((retry.accepted, retry.duplicates), (0, 1));
    let history = store
        .history("t", shared::store::system::HistoryOf::Agent("a"), 2, later)
        .await
        .expect("reading agent a's history")
        .unwrap_or_default();
    let completed: u64 = history
        .iter()
        .map(|p| p.metrics["completed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(completed, 1, "{history:?}");
}

/// A retried batch that only holds duplicates, arriving after the hour of its events is
/// over, moves that hour to its bucket: the item must record it, or the hour would count
/// twice (bucket and item) in hourly figures and SLOs.
async fn duplicates_after_the_hour_turned_leave_the_hour_counted_once(store: Store) {
    use shared::time::HOUR_MS;
    let hour = now().div_euclid(HOUR_MS) - 1;
    let at_ms = hour * HOUR_MS + 59 * MINUTE_MS;
    let later = (hour + 1) * HOUR_MS + 10_000;
    let events = json!([
        {"event_id": "s", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "o", "timestamp": at(at_ms)},
        {"event_id": "f", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "completed", "duration_ms": 5, "timestamp": at(at_ms + 1_000)}
    ]);
    for expected in [(2, 0), (0, 2), (0, 2)] {
        let o = ingest(&store, "t", &batch(later, events.clone()), later).await;
        assert_eq!((o.accepted, o.duplicates), expected);
        let hours = store
            .hourly("t", Entity::Agent, Some("a"), hour * HOUR_MS, later)
            .await
            .expect("reading agent a's hourly slots");
        let total: u64 = hours
            .iter()
            .flat_map(|(_, h)| h)
            .map(|(_, s)| s.total)
            .sum();
        assert_eq!(total, 1, "{hours:?}");
    }
}

/// Badge tokens: found by the token, listed by id without it, gone once revoked; totals
/// and tokens kept on the record survive the store's encoding.
async fn badges_are_found_by_token_listed_and_revoked(store: Store) {
    let now = now();
    let created = store
        .create_badge("t1", "agent", "a1", now)
        .await
        .expect("creating a badge");
    let found = store
        .find_badge(&created.token)
        .await
        .expect("looking the badge up by its token");
    assert_eq!(
        found.map(|b| (b.tenant, b.source_id)),
        Some(("t1".into(), "a1".into()))
    );
    assert_eq!(store.find_badge("ahb_nope").await.ok(), Some(None));
    let listed = store.list_badges("t1").await.expect("listing t1's badges");
    assert_eq!(listed, vec![created.info.clone()]);
    assert!(store.list_badges("t2").await.is_ok_and(|l| l.is_empty()));
    assert_eq!(
        store.revoke_badge("t2", &created.info.badge_id).await.ok(),
        Some(false)
    );
    assert_eq!(
        store.revoke_badge("t1", &created.info.badge_id).await.ok(),
        Some(true)
    );
    assert_eq!(store.find_badge(&created.token).await.ok(), Some(None));
    assert!(store.list_badges("t1").await.is_ok_and(|l| l.is_empty()));

    let events = batch(
        now,
        json!([
            {"event_id": "f1", "type": "execution.finished", "agent_id": "a1", "execution_id": "x1", "outcome": "completed", "duration_ms": 5, "input_tokens": 700, "output_tokens": 70},
            {"event_id": "f2", "type": "execution.finished", "agent_id": "a1", "execution_id": "x2", "outcome": "failed", "duration_ms": 5.5}
        ]),
    );
    ingest(&store, "t1", &events, now).await;
    let agents = store
        .load_agents("t1", shared::store::tenant::Consistency::Strong)
        .await
        .expect("loading t1's agents");
    let t = &agents[0].record.totals;
    assert_eq!(
        (t.count, t.failed, t.input_tokens, t.output_tokens),
        (2, 1, 700, 70)
    );
}

e2e_tests::on_both_stores!(
    badges_are_found_by_token_listed_and_revoked,
    duplicates_after_the_hour_turned_leave_the_hour_counted_once,
    a_retried_finish_after_the_hour_turned_counts_once,
    latencies_give_percentiles_and_hours_move_out_with_their_counts,
    pages_of_a_list_give_the_whole_list_once,
    a_write_whose_condition_fails_changes_nothing,
    completed_and_failed_give_the_contract_numbers,
    three_completed_and_one_failed_give_075_and_025,
    a_batch_sent_twice_is_counted_once,
    a_duplicate_inside_one_batch_counts_once,
    a_finish_before_its_start_counts_the_execution_once,
    a_running_execution_shows_as_the_current_operation,
    daily_history_drives_the_trend,
    put_agent_creates_updates_and_lists_agents_in_id_order,
    tenants_never_see_each_other,
    integration_calls_drive_the_connection_state_machine,
    put_integration_registers_a_probe,
    host_samples_and_gauges_keep_the_newest_reading,
    api_keys_are_stored_hashed_with_tenant_and_scopes,
    a_large_batch_is_written_in_chunks_and_counted_exactly,
    keys_are_listed_revoked_and_the_last_admin_kept,
);

#[tokio::test]
async fn embedded_data_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let now = now();
    {
        let store = local_stack::open_store(dir.path()).expect("opening the store");
        let events = batch(
            now,
            json!([{"event_id": "p", "type": "execution.finished", "agent_id": "kept", "execution_id": "x", "outcome": "completed", "duration_ms": 5}]),
        );
        ingest(&store, "t", &events, now).await;
    }
    let store = local_stack::open_store(dir.path()).expect("reopening the store");
    let h = agent(&store, "t", "kept", now).await;
    assert_eq!(h.operations_completed, 1);
}
