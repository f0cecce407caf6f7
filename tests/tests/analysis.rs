//! The analysis side over real HTTP on both stores: a source's recent failures with the
//! error text its events carried, reports of a seeded history in three formats, and
//! exports that round-trip it.

use std::sync::Arc;

use e2e_tests::{spawn_api, Api, Backend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::time::{format_rfc3339, ManualClock, MINUTE_MS};

async fn post_events(api: &Api, events: Value) -> Value {
    let (status, body) = api
        .call(Method::POST, "/api/health/events", Some(json!({ "events": events })))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body
}

async fn failures_keep_the_error_text_newest_first(backend: Backend) {
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::new(now));
    let (running, _dir) = spawn_api(backend, clock.clone()).await;
    let api = Api::of(&running);
    let at = |min: i64| format_rfc3339(now - min * MINUTE_MS);
    let long = "x".repeat(600);
    let events = json!([
        {"event_id": "s1", "type": "execution.started", "agent_id": "sales", "execution_id": "x1", "operation": "Processing leads", "timestamp": at(10)},
        {"event_id": "f1", "type": "execution.finished", "agent_id": "sales", "execution_id": "x1", "outcome": "failed", "error": "CRM timeout\n  at fetch_leads", "timestamp": at(8)},
        {"event_id": "f2", "type": "execution.finished", "agent_id": "sales", "execution_id": "x2", "outcome": "failed", "duration_ms": 50.25, "error": long, "timestamp": at(5)},
        {"event_id": "f3", "type": "execution.finished", "agent_id": "sales", "execution_id": "x3", "outcome": "completed", "duration_ms": 70, "timestamp": at(4)},
        {"event_id": "c1", "type": "integration.call", "integration_id": "hubspot", "latency_ms": 812, "ok": false, "error": "502 Bad Gateway", "timestamp": at(3)},
        {"event_id": "c2", "type": "integration.call", "integration_id": "hubspot", "latency_ms": 80, "ok": true, "timestamp": at(2)}
    ]);
    let first = post_events(&api, events.clone()).await;
    assert_eq!(first["accepted"], 6, "{first}");
    // The client retries the whole batch, and repeats x1's finish under a new event id:
    // every failure is still listed once.
    post_events(&api, events).await;
    post_events(
        &api,
        json!([{"event_id": "f1-again", "type": "execution.finished", "agent_id": "sales", "execution_id": "x1", "outcome": "failed", "error": "CRM timeout", "timestamp": at(8)}]),
    )
    .await;

    let (status, list) = api
        .call(Method::GET, "/api/health/failures?source_type=agent&source_id=sales", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 2, "two failed executions, newest first: {list:?}");
    assert_eq!(list[0]["execution_id"], "x2");
    assert_eq!(list[0]["error"].as_str().map(str::len), Some(500), "cut to 500 characters");
    assert_eq!(list[0]["duration_ms"], 50.3);
    assert_eq!(list[0]["operation"], Value::Null, "x2's start was never seen");
    assert_eq!(list[1]["execution_id"], "x1");
    assert_eq!(list[1]["operation"], "Processing leads");
    assert_eq!(list[1]["error"], "CRM timeout\n  at fetch_leads");
    assert_eq!(list[1]["duration_ms"], 120_000.0, "from the start two minutes earlier");
    assert_eq!(list[1]["timestamp"], at(8));
    assert_eq!(list[1]["source_type"], "agent");
    assert_eq!(list[1]["source_id"], "sales");

    let (_, one) = api
        .call(Method::GET, "/api/health/failures?source_type=agent&source_id=sales&limit=1", None)
        .await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["execution_id"], "x2");

    let (_, calls) = api
        .call(Method::GET, "/api/health/failures?source_type=integration&source_id=hubspot", None)
        .await;
    assert_eq!(
        calls,
        json!([{"timestamp": at(3), "source_type": "integration", "source_id": "hubspot",
            "execution_id": null, "operation": null, "error": "502 Bad Gateway", "duration_ms": 812.0}])
    );

    for (query, says) in [
        ("source_id=sales", "source_type: required"),
        ("source_type=host&source_id=h", "source_type: must be agent or integration"),
        ("source_type=agent", "source_id: required"),
        ("source_type=agent&source_id=sales&limit=0", "limit: must be an integer from 1 to 100"),
        ("source_type=agent&source_id=sales&limit=x", "limit: must be an integer from 1 to 100"),
    ] {
        let (status, body) = api
            .call(Method::GET, &format!("/api/health/failures?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{query}: {message}");
    }
    // An agent never heard of has no failures, not a 404: the page asks before data comes.
    let (status, none) = api
        .call(Method::GET, "/api/health/failures?source_type=agent&source_id=nobody", None)
        .await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
}

mod embedded {
    use super::*;

    #[tokio::test]
    async fn failures_keep_the_error_text_newest_first() {
        super::failures_keep_the_error_text_newest_first(Backend::Embedded).await;
    }
}

mod dynamodb {
    use super::*;

    #[tokio::test]
    async fn failures_keep_the_error_text_newest_first() {
        super::failures_keep_the_error_text_newest_first(Backend::DynamoDb).await;
    }
}
