//! Blast radius of an item that cannot be read (damaged, or written by a newer version): it
//! degrades only its own entity. Each test writes such items straight into the store (redb
//! file or DynamoDB table, bypassing the product's code) and checks that the reads of the
//! rest of the tenant and the collector's cycle carry on.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;
use shared::collector::Collector;
use shared::config::Config;
use shared::store::dynamodb::DynamoBackend;
use shared::store::embedded::EmbeddedBackend;
use shared::store::layout::{self, Entity};
use shared::store::{ItemKey, Store};
use shared::time::MINUTE_MS;
use shared::AppState;

const TENANT: &str = "acme";

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Two agents, two integrations and two hosts, each with data in the current minute.
async fn seed(store: &Store, now: i64) {
    let mut events = Vec::new();
    for n in 1..=2 {
        events.push(json!({"event_id": format!("s{n}"), "type": "execution.started", "agent_id": format!("a{n}"), "execution_id": "x", "operation": "op"}));
        events.push(json!({"event_id": format!("f{n}"), "type": "execution.finished", "agent_id": format!("a{n}"), "execution_id": "x", "outcome": "failed", "duration_ms": 10}));
        events.push(json!({"event_id": format!("c{n}"), "type": "integration.call", "integration_id": format!("i{n}"), "latency_ms": 10, "ok": true}));
        events.push(json!({"event_id": format!("h{n}"), "type": "host.sample", "host_id": format!("h{n}"), "cpu_usage": 95, "memory_usage": 10}));
    }
    e2e_tests::seed::ingest(store, TENANT, json!(events), now).await;
    store
        .register_tenant(TENANT, now)
        .await
        .expect("registering the tenant");
}

/// What gets damaged: a1's live item (counters that do not parse), i1's (content of an
/// unknown kind) and h1's (a field of the wrong type).
fn damaged() -> [ItemKey; 3] {
    [
        layout::live(TENANT, Entity::Agent, "a1"),
        layout::live(TENANT, Entity::Integration, "i1"),
        layout::live(TENANT, Entity::Host, "h1"),
    ]
}

/// Checks that everything but a1, i1 and h1 still reads, and that a collector cycle
/// evaluates the tenant (h2's CPU raises its alert).
async fn rest_of_tenant_still_reads(store: Store, now: i64) {
    let agents = store
        .list_agent_health(TENANT, now)
        .await
        .unwrap_or_else(|e| panic!("agents list failed: {e}"));
    let ids: Vec<_> = agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["a2"]);
    let integrations = store
        .list_integration_health(TENANT, now, 5000.0)
        .await
        .unwrap_or_else(|e| panic!("integrations list failed: {e}"));
    let ids: Vec<_> = integrations
        .iter()
        .map(|i| i.integration_id.as_str())
        .collect();
    assert_eq!(ids, ["i2"]);
    let system = store
        .system_health(TENANT, now, 5000.0)
        .await
        .unwrap_or_else(|e| panic!("system failed: {e}"));
    assert_eq!(system.total_agents, 1, "a1 is skipped, a2 counted");
    let hosts: Vec<_> = system.hosts.iter().map(|h| h.host_id.as_str()).collect();
    assert_eq!(hosts, ["h2"]);
    // The export leaves the damaged entities out and carries on with the rest.
    let state = AppState::new(store.clone(), Config::default());
    let export =
        shared::api::export::respond(&state, TENANT.to_owned(), Some("kind=history&format=csv"))
            .await
            .unwrap_or_else(|e| panic!("export refused: {e:?}"));
    let csv = shared::api::export::collect(export)
        .await
        .unwrap_or_else(|e| panic!("export failed: {e:?}"))
        .into_body();
    let entities: Vec<&str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1))
        .collect();
    assert_eq!(entities, ["a2", "i2", "h2"], "{csv}");
    // The damaged entity's own read reports it (a 500 for that agent only).
    assert!(store.agent_health(TENANT, "a1", now).await.is_err());
    assert!(store.agent_health(TENANT, "a2", now).await.is_ok());

    let collector = Collector::new(&AppState::new(store.clone(), Config::default()))
        .expect("building the collector");
    let report = collector
        .run_cycle(now + MINUTE_MS)
        .await
        .expect("running a collector cycle");
    assert!(
        report.failed.is_empty(),
        "cycle failed: {:?}",
        report.failed
    );
    let alerts = store
        .active_alerts(TENANT)
        .await
        .expect("reading the active alerts");
    assert!(
        alerts.iter().any(|a| a.source_id == "h2"),
        "h2's CPU alert was not raised: {alerts:?}"
    );
    // Ingestion for the healthy entities goes on.
    let later = json!([{"event_id": "later", "type": "execution.finished", "agent_id": "a2", "execution_id": "y", "outcome": "completed", "duration_ms": 5}]);
    e2e_tests::seed::ingest(&store, TENANT, later, now).await;
}

#[tokio::test]
async fn embedded_an_unreadable_item_degrades_only_its_entity() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let path = dir.path().join("health.redb");
    let now = now();
    {
        let backend = EmbeddedBackend::open(&path).expect("opening the embedded store");
        seed(&Store::new(Arc::new(backend)), now).await;
    }
    {
        // The store's own encoding: key `PK \x1f SK`, value the JSON body.
        let table: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("items");
        let db = redb::Database::open(&path).expect("opening the redb file");
        let txn = db.begin_write().expect("beginning a write transaction");
        {
            let mut items = txn.open_table(table).expect("opening the items table");
            let [agent, integration, host] = damaged();
            let bodies = [
                (
                    agent,
                    json!({"version": 3, "record": {"kind": "agent", "record": {"agent_id": "a1"}, "window": {"m": "1,2,x"}}}),
                ),
                (
                    integration,
                    json!({"version": 2, "record": {"kind": "integration_v9", "x": 1}}),
                ),
                (host, json!("not an item")),
            ];
            for (key, body) in bodies {
                let joined = format!("{}\u{1f}{}", key.pk, key.sk);
                items
                    .insert(joined.as_str(), body.to_string().as_bytes())
                    .expect("writing a damaged item");
            }
        }
        txn.commit().expect("committing the damaged items");
    }
    let backend = EmbeddedBackend::open(&path).expect("reopening the embedded store");
    rest_of_tenant_still_reads(Store::new(Arc::new(backend)), now).await;
}

#[tokio::test]
async fn dynamodb_an_unreadable_item_degrades_only_its_entity() {
    let backend = e2e_tests::dynamo_backend().await;
    let table = backend.table().to_owned();
    let store = Store::new(Arc::new(backend));
    let now = now();
    seed(&store, now).await;
    let client = DynamoBackend::client_for_endpoint(&e2e_tests::dynamodb_endpoint(), "us-east-1");
    let [agent, integration, host] = damaged();
    let s = |v: &str| AttributeValue::S(v.to_owned());
    let n = |v: i64| AttributeValue::N(v.to_string());
    let items = [
        (
            agent,
            vec![
                ("kind", s("agent")),
                ("ver", n(3)),
                ("record", s("not a record")),
            ],
        ),
        (
            integration,
            vec![("kind", s("integration_v9")), ("ver", n(2))],
        ),
        (
            host,
            vec![("kind", s("host")), ("ver", n(2)), ("record", n(1))],
        ),
    ];
    for (key, attributes) in items {
        let mut put = client
            .put_item()
            .table_name(&table)
            .item("PK", s(&key.pk))
            .item("SK", s(&key.sk));
        for (name, value) in attributes {
            put = put.item(name, value);
        }
        put.send().await.expect("putting a damaged item");
    }
    rest_of_tenant_still_reads(store, now).await;
}
