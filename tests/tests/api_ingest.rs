//! Ingestion and registration through real HTTP against the local stack: the contract's
//! answers, auth, and every kind of bad input (which must store nothing).

use e2e_tests::{ago, spawn_app, Api, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Posts `body` as it is (no Content-Type) to the ingestion endpoint; the answer must be
/// JSON.
async fn post_events(api: &Api, body: impl Into<reqwest::Body>) -> (StatusCode, Value) {
    api.request(Method::POST, "/api/health/events")
        .body(body)
        .json_with_status()
        .await
}

async fn api() -> (Api, local_stack::Running, tempfile::TempDir) {
    let (running, dir) = spawn_app().await;
    (Api::of(&running), running, dir)
}

fn error_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {body}"))
        .to_owned()
}

#[tokio::test]
async fn the_readme_example_produces_the_contract_numbers() {
    let (api, _running, _dir) = api().await;
    let body = json!({"events": [
        {"event_id": "e1", "type": "execution.started", "agent_id": "agent_123", "execution_id": "x1", "operation": "Processing leads", "agent_name": "Sales Assistant", "timestamp": ago(600)},
        {"event_id": "e2", "type": "execution.finished", "agent_id": "agent_123", "execution_id": "x1", "outcome": "completed", "timestamp": ago(540)},
        {"event_id": "e3", "type": "execution.started", "agent_id": "agent_123", "execution_id": "x2", "operation": "Emailing", "timestamp": ago(300)},
        {"event_id": "e4", "type": "execution.finished", "agent_id": "agent_123", "execution_id": "x2", "outcome": "failed", "duration_ms": 60000, "timestamp": ago(240)},
    ]});
    // Executions count on the day they started. When midnight UTC fell between the two
    // starts (10 and 5 minutes ago), the first (completed) and the second (failed) make two
    // daily points, 1.0 then 0.0: a declining trend. Otherwise one point: stable.
    let now = chrono::Utc::now().timestamp_millis();
    let day = |ms: i64| ms.div_euclid(shared::time::DAY_MS);
    let trend = if day(now - 600_000) == day(now - 300_000) {
        "stable"
    } else {
        "declining"
    };
    let (status, answer) = post_events(&api, body.to_string()).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 4, "duplicates": 0})
        )
    );
    let (status, answer) = post_events(&api, body.to_string()).await;
    assert_eq!(
        (status, answer),
        (
            StatusCode::ACCEPTED,
            json!({"accepted": 0, "duplicates": 4})
        )
    );
    let (status, mut health) = api.get("/api/health/agent/agent_123").await;
    assert_eq!(status, StatusCode::OK);
    assert!(health["last_active"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    health["last_active"] = Value::Null;
    // Both executions took 60 s: every percentile is 60 s, within the histogram's 2 %.
    for p in ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"] {
        let v = health[p].as_f64().unwrap_or(f64::NAN);
        assert!((v - 60_000.0).abs() <= 1_200.0, "{p} = {v}");
        health[p] = Value::Null;
    }
    assert_eq!(
        health,
        json!({
            "agent_id": "agent_123", "agent_name": "Sales Assistant", "status": "error",
            "current_operation": null, "operations_completed": 1, "success_rate": 0.5,
            "confidence_score": 0.5, "last_active": null, "health_trend": trend,
            "metrics": {"avg_execution_time": 60000.0, "error_rate": 0.5, "recent_executions": 2, "input_tokens": 0, "output_tokens": 0},
            "latency_p50_ms": null, "latency_p95_ms": null, "latency_p99_ms": null
        })
    );
}

#[tokio::test]
async fn put_agent_answers_the_agent_health_object() {
    let (api, _running, _dir) = api().await;
    let (status, health) = api
        .put(
            "/api/health/agents/idle-bot",
            json!({"agent_name": "Idle Bot", "confidence_score": 0.85}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        health,
        json!({
            "agent_id": "idle-bot", "agent_name": "Idle Bot", "status": "idle",
            "current_operation": null, "operations_completed": 0, "success_rate": 0.0,
            "confidence_score": 0.85, "last_active": null, "health_trend": "stable",
            "metrics": {"avg_execution_time": null, "error_rate": 0.0, "recent_executions": 0, "input_tokens": 0, "output_tokens": 0},
            "latency_p50_ms": null, "latency_p95_ms": null, "latency_p99_ms": null
        })
    );
    let (status, health) = api.get("/api/health/agent/idle-bot").await;
    assert_eq!(
        (status, health["confidence_score"].as_f64()),
        (StatusCode::OK, Some(0.85))
    );
}

#[tokio::test]
async fn put_integration_validates_and_registers_a_probe() {
    let (api, _running, _dir) = api().await;
    let (status, body) = api
        .put(
            "/api/health/integrations/slack",
            json!({"integration_name": "Slack", "probe": {"url": "https://1.1.1.1/health"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "integration_id": "slack", "integration_name": "Slack", "status": "healthy",
            "last_used": null, "latency_ms": 0.0, "error_rate": 0.0, "health_trend": "stable",
            "connection_status": "unknown", "state": "initializing", "consecutive_failures": 0,
            "health_checks_performed": 0, "recovery_attempts": 0, "successful_recoveries": 0,
            "uptime_seconds": 0,
            "latency_p50_ms": null, "latency_p95_ms": null, "latency_p99_ms": null
        })
    );
    for (probe, field) in [
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            "probe.url",
        ),
        (json!({"url": "http://127.0.0.1:8080/"}), "probe.url"),
        (json!({"url": "file:///etc/passwd"}), "probe.url"),
        (
            json!({"url": "https://1.1.1.1/", "timeout_ms": 0}),
            "probe.timeout_ms",
        ),
        (
            json!({"url": "https://1.1.1.1/", "expected_status": 999}),
            "probe.expected_status",
        ),
    ] {
        let (status, body) = api
            .put("/api/health/integrations/bad", json!({"probe": probe}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&body).starts_with(field), "{body}");
    }
}

#[tokio::test]
async fn missing_wrong_and_unscoped_keys_are_refused() {
    let (api, running, _dir) = api().await;
    let url = format!("{}/api/health/agent/a", api.base);
    let res = api.client.get(&url).answer().await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = api
        .with_key("ahm_not_a_key")
        .get("/api/health/agent/a")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );

    let read_only =
        api.with_key(&e2e_tests::new_key(&running.state.store, "local", &["read"], "viewer").await);
    let (status, body) = post_events(
        &read_only,
        r#"{"events": [{"event_id": "x", "type": "gauge", "name": "queue_depth", "value": 1}]}"#,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error_message(&body), "this API key lacks the ingest scope");
    let (status, _) = read_only.get("/api/health/agent/a").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a read key reads; the agent does not exist"
    );
}

#[tokio::test]
async fn another_tenants_agent_answers_like_an_unknown_one() {
    let (api, running, _dir) = api().await;
    api.put("/api/health/agents/secret-agent", json!({})).await;
    let other =
        e2e_tests::new_key(&running.state.store, "other", &["read", "ingest"], "other").await;
    let other = api.with_key(&other);
    let (status, theirs) = other.get("/api/health/agent/secret-agent").await;
    let (_, unknown) = other.get("/api/health/agent/never-existed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(theirs["error"]["code"], unknown["error"]["code"]);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let (api, _running, _dir) = api().await;
    let (status, body) = api.get("/api/health/nothing-here").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let res = api
        .request(Method::DELETE, "/api/health/events")
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        res.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

/// Each bad batch must answer 400 naming the field (and index), and store nothing: the
/// valid first event of every batch must not appear.
#[tokio::test]
async fn bad_batches_answer_400_naming_the_field_and_store_nothing() {
    let (api, _running, _dir) = api().await;
    let valid = json!({"event_id": "valid", "type": "execution.started", "agent_id": "witness", "execution_id": "x", "operation": "op"});
    let long_id = "x".repeat(129);
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"event_id": "1", "type": "integration.call", "integration_id": "s", "latency_ms": -5, "ok": true}),
            "events[1].latency_ms: must be a number from 0 to 3600000",
        ),
        (
            json!({"event_id": "1", "type": "integration.call", "integration_id": "s", "latency_ms": "fast", "ok": true}),
            "events[1].latency_ms: must be a number",
        ),
        (
            json!({"event_id": "1", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "completed", "confidence": 1.2}),
            "events[1].confidence: must be a number from 0 to 1",
        ),
        (
            json!({"event_id": "1", "type": "execution.finished", "agent_id": "a", "execution_id": "x"}),
            "events[1].outcome: is required",
        ),
        (
            json!({"event_id": "1", "type": "execution.started", "execution_id": "x", "operation": "op"}),
            "events[1].agent_id: is required",
        ),
        (
            json!({"event_id": "1", "type": "warp.drive"}),
            "events[1].type: unknown event type \"warp.drive\"",
        ),
        (
            json!({"event_id": long_id, "type": "gauge", "name": "queue_depth", "value": 1}),
            "events[1].event_id: must be 1 to 128 characters",
        ),
        (
            json!({"event_id": "1", "type": "gauge", "name": "queue_depth", "value": 1, "timestamp": "2999-01-01T00:00:00Z"}),
            "events[1].timestamp: is more than 5 minutes in the future",
        ),
        (
            json!({"event_id": "1", "type": "gauge", "name": "queue_depth", "value": -1}),
            "events[1].value: must be an integer from 0 to 1000000000000",
        ),
        (
            json!({"event_id": "1", "type": "host.sample", "host_id": "h", "cpu_usage": 101, "memory_usage": 5}),
            "events[1].cpu_usage: must be a number from 0 to 100",
        ),
        (
            json!({"event_id": "1", "type": "execution.started", "agent_id": "a\u{0001}", "execution_id": "x", "operation": "op"}),
            "events[1].agent_id: must not contain control characters",
        ),
    ];
    for (bad, expected) in cases {
        let (status, body) =
            post_events(&api, json!({"events": [valid.clone(), bad]}).to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], "invalid_events");
        assert!(
            error_message(&body).starts_with(expected),
            "expected {expected:?}, got {body}"
        );
        assert_eq!(body["error"]["details"][0]["index"], 1);
    }
    for (raw, expected) in [
        ("{\"events\": [", "body: is not valid JSON"),
        ("{\"events\": {}}", "events: must be an array"),
        (
            "{\"events\": []}",
            "events: must hold 1 to 1000 events, got 0",
        ),
        ("[]", "events: is required"),
    ] {
        let (status, body) = post_events(&api, raw.to_owned()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{raw}: {body}");
        assert!(error_message(&body).starts_with(expected), "{raw}: {body}");
    }
    let many: Vec<Value> = (0..1001).map(|i| json!({"event_id": format!("m{i}"), "type": "gauge", "name": "queue_depth", "value": 1})).collect();
    let (status, body) = post_events(&api, json!({"events": many}).to_string()).await;
    assert_eq!(
        (status, error_message(&body).as_str()),
        (
            StatusCode::BAD_REQUEST,
            "events: must hold 1 to 1000 events, got 1001"
        )
    );

    let huge = json!({"events": [{"event_id": "big", "type": "execution.started", "agent_id": "witness", "execution_id": "x", "operation": "o".repeat(1_100_000)}]});
    let (status, body) = post_events(&api, huge.to_string()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    let (status, _) = api.get("/api/health/agent/witness").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of a rejected batch may be stored"
    );
}

#[tokio::test]
async fn an_invalid_agent_update_changes_nothing() {
    let (api, _running, _dir) = api().await;
    api.put(
        "/api/health/agents/a",
        json!({"agent_name": "Kept", "confidence_score": 0.9}),
    )
    .await;
    let (status, body) = api
        .put(
            "/api/health/agents/a",
            json!({"agent_name": "Lost", "confidence_score": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&body),
        "confidence_score: must be a number from 0 to 1"
    );
    let (_, health) = api.get("/api/health/agent/a").await;
    assert_eq!(
        (
            health["agent_name"].as_str(),
            health["confidence_score"].as_f64()
        ),
        (Some("Kept"), Some(0.9))
    );
    let long = "a".repeat(129);
    let (status, body) = api
        .put(&format!("/api/health/agents/{long}"), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("1 to 128 characters"));
}

#[tokio::test]
async fn a_huge_number_is_refused_and_the_tenant_stays_readable() {
    let (api, _running, _dir) = api().await;
    let finish = |id: &str, exec: &str| {
        json!({"event_id": id, "type": "execution.finished", "agent_id": "a", "execution_id": exec,
               "outcome": "completed", "duration_ms": 1.7e308})
    };
    let call = json!({"event_id": "c", "type": "integration.call", "integration_id": "i",
                      "latency_ms": 1.7e308, "ok": true});
    let (status, body) = post_events(
        &api,
        json!({"events": [finish("f1", "x1"), finish("f2", "x2"), call]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = error_message(&body);
    assert!(message.contains("events[0].duration_ms"), "{message}");
    assert!(message.contains("events[2].latency_ms"), "{message}");
    // The largest accepted values, twice in one minute, still read back as numbers.
    let largest = json!({"events": [
        {"event_id": "g1", "type": "execution.finished", "agent_id": "a", "execution_id": "x1", "outcome": "completed", "duration_ms": 604_800_000},
        {"event_id": "g2", "type": "execution.finished", "agent_id": "a", "execution_id": "x2", "outcome": "completed", "duration_ms": 604_800_000},
        {"event_id": "g3", "type": "integration.call", "integration_id": "i", "latency_ms": 3_600_000, "ok": true},
        {"event_id": "g4", "type": "integration.call", "integration_id": "i", "latency_ms": 3_600_000, "ok": true},
        {"event_id": "g5", "type": "gauge", "name": "queue_depth", "value": 1_000_000_000_000_u64}]});
    let (status, body) = post_events(&api, largest.to_string()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, agents) = api.get("/api/health/agents").await;
    assert_eq!(status, StatusCode::OK, "{agents}");
    assert_eq!(agents[0]["agent_id"], "a");
    // A week-long execution started a week ago: it lands in that day's history point.
    let (status, history) = api
        .get("/api/health/history/agent?entity_id=a&days=30")
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(
        history["history"][0]["metrics"]["completed"], 2,
        "{history}"
    );
    let (status, integrations) = api.get("/api/health/integrations").await;
    assert_eq!(status, StatusCode::OK, "{integrations}");
    assert_eq!(integrations[0]["latency_ms"], json!(3_600_000.0));
    let (status, system) = api.get("/api/health/system").await;
    assert_eq!(status, StatusCode::OK, "{system}");
    assert_eq!(system["queue_depth"], json!(1_000_000_000_000_u64));
}

#[tokio::test]
async fn an_event_name_with_control_characters_is_refused_as_put_refuses_it() {
    let (api, _running, _dir) = api().await;
    let named = json!({"events": [{"event_id": "s", "type": "execution.started", "agent_id": "a",
                                   "execution_id": "x", "operation": "op", "agent_name": "Sales\u{1b}[2J"}]});
    let (status, body) = post_events(&api, named.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).contains("events[0].agent_name"));
    let (status, _) = api
        .put(
            "/api/health/agents/a",
            json!({"agent_name": "Sales\u{1b}[2J"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Sixteen clients at once, each batch touching its own agents plus one shared integration
/// and the tenant's gauge: the embedded store never refuses for contention, and every
/// call counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_on_shared_hot_items_are_all_accepted() {
    let (api, _running, _dir) = api().await;
    let api = std::sync::Arc::new(api);
    let (clients, batches) = (16, 6);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let api = std::sync::Arc::clone(&api);
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for b in 0..batches {
                let mut events = Vec::new();
                for i in 0..20 {
                    let id = format!("c{c}b{b}e{i}");
                    events.push(json!({"event_id": format!("{id}s"), "type": "execution.started", "agent_id": format!("agent-{c}-{i}"), "execution_id": id, "operation": "op"}));
                    events.push(json!({"event_id": format!("{id}c"), "type": "integration.call", "integration_id": "shared", "latency_ms": 10, "ok": true}));
                }
                events.push(json!({"event_id": format!("c{c}b{b}g"), "type": "gauge", "name": "queue_depth", "value": b}));
                let (status, body) = post_events(&api, json!({ "events": events }).to_string()).await;
                statuses.push((status, body));
            }
            statuses
        }));
    }
    for task in tasks {
        for (status, body) in task.await.expect("a client task panicked") {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        }
    }
    let (_, integrations) = api.get("/api/health/integrations").await;
    assert_eq!(integrations[0]["integration_id"], "shared");
    let (_, agents) = api.get("/api/health/agents").await;
    assert_eq!(agents.as_array().map(Vec::len), Some(clients * 20));
    let (_, history) = api
        .get("/api/health/history/integration?entity_id=shared&days=1")
        .await;
    assert_eq!(
        history["history"][0]["metrics"]["calls"],
        json!(clients * batches * 20),
        "{history}"
    );
}
