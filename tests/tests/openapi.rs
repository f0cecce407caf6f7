//! The OpenAPI document stays true: every route of the router is documented and every
//! documented route exists, and each documented success and error response schema matches
//! what the handlers answer (validated as JSON Schema 2020-12, which OpenAPI 3.1 uses).

use std::sync::Arc;

use e2e_tests::{seed, spawn_api, Backend, RequestExt as _};
use reqwest::Method;
use serde_json::{json, Value};
use shared::api::{Endpoint, OPENAPI_JSON};
use shared::domain::alerts::AlertRecord;
use shared::time::ManualClock;

fn doc() -> Value {
    serde_json::from_str(OPENAPI_JSON)
        .unwrap_or_else(|e| panic!("docs/openapi.json is not JSON: {e}"))
}

/// Validates `value` against a schema of the document given by its JSON pointer.
fn validate(doc: &Value, pointer: &str, value: &Value, what: &str) {
    // The schema is checked as part of the whole document, so its `$ref`s resolve.
    let schema = doc
        .pointer(pointer)
        .cloned()
        .unwrap_or_else(|| panic!("{what}: no schema at {pointer}"));
    let mut root = doc.clone();
    root["allOf"] = json!([schema]);
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(&root)
        .unwrap_or_else(|e| panic!("{what}: bad schema at {pointer}: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: response does not match {pointer}: {errors:?}\n{value}"
    );
}

fn pointer_escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let doc = doc();
    let paths = doc["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("docs/openapi.json has no paths"));
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .into_iter()
                .flatten()
                .map(move |(m, _)| (m.to_uppercase(), p.clone()))
        })
        .collect();
    let mut served: Vec<(String, String)> = Endpoint::ALL
        .iter()
        .map(|e| (e.route().0.to_owned(), e.route().1.to_owned()))
        .collect();
    documented.sort();
    served.sort();
    assert_eq!(documented, served);
    for (method, path) in &served {
        let concrete = path.replace("{type}", "agent").replace(['{', '}'], "");
        let route = shared::api::route(&method.parse().unwrap_or(Method::GET), &concrete);
        assert!(
            route.is_ok(),
            "{method} {path} is documented but the router answers {route:?}"
        );
    }
}

#[tokio::test]
async fn documented_response_shapes_match_the_handlers() {
    let doc = doc();
    let now = chrono::Utc::now().timestamp_millis();
    let (running, _dir) = spawn_api(Backend::Embedded, Arc::new(ManualClock::new(now))).await;
    let client = reqwest::Client::new();
    let base = running.url();

    let served: Value = client
        .get(format!("{base}/api/openapi.json"))
        .answer_json()
        .await;
    assert_eq!(served, doc, "the local stack serves docs/openapi.json");

    let store = &running.state.store;
    let alert = AlertRecord {
        condition: "cpu".into(),
        ..seed::alert("alert_1", now)
    };
    seed::save_alert(store, "local", &alert).await;
    let batch = json!({"events": seed::one_event_of_each_kind()});
    let to_revoke = store
        .new_api_key("local", &["read".to_owned()], "to revoke", now)
        .await
        .expect("creating the key to revoke");
    let revoke_url = format!("/api/health/keys/{}", to_revoke.key_id);
    seed::put_silence(store, "local", &seed::silence("s_fixed", now, 60)).await;
    let secret = seed::ack_secret(store).await;
    let claim = shared::notify::token::AckClaim {
        sent_for: Some(shared::notify::token::SentFor {
            severity: shared::domain::alerts::Severity::Critical,
            raised_at: now,
        }),
        ..seed::ack_claim("local", "alert_1", "ops", now)
    };
    let token = shared::notify::token::sign(&secret, &claim);
    let ack_url = format!("/api/health/ack/{token}");
    let ends_at = shared::time::format_rfc3339(now + 600_000);
    let badge = store
        .create_badge("local", "agent", "a1", now)
        .await
        .expect("creating a badge");
    let badge_url = format!("/api/health/badge/{}?show=uptime_24h", badge.token);
    let badge_revoke = format!("/api/health/badges/{}", badge.info.badge_id);
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    let attr = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let traces = json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", "svc")]},
        "scopeSpans": [{"spans": [
            {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331", "name": "invoke_agent a1", "kind": 1,
             "startTimeUnixNano": ns(now - 2_000), "endTimeUnixNano": ns(now - 1_000),
             "attributes": [attr("gen_ai.operation.name", "invoke_agent"), attr("gen_ai.agent.id", "a1")]},
            {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "00f067aa0ba902b7", "parentSpanId": "b7ad6b7169203331", "name": "GET", "kind": 3,
             "startTimeUnixNano": ns(now - 1_900), "endTimeUnixNano": ns(now - 1_800), "attributes": []}
        ]}]
    }]});
    // Requests in an order that leaves data for the reads.
    let cases: Vec<(Method, &str, &str, Option<Value>)> = vec![
        (
            Method::POST,
            "/api/health/events",
            "/api/health/events",
            Some(batch),
        ),
        (
            Method::PUT,
            "/api/health/agents/{agent_id}",
            "/api/health/agents/a1",
            Some(json!({"agent_name": "A one"})),
        ),
        (
            Method::PUT,
            "/api/health/integrations/{integration_id}",
            "/api/health/integrations/slack",
            Some(json!({"integration_name": "Slack"})),
        ),
        (
            Method::GET,
            "/api/health/agent/{agent_id}",
            "/api/health/agent/a1",
            None,
        ),
        (
            Method::GET,
            "/api/health/agents",
            "/api/health/agents",
            None,
        ),
        (
            Method::GET,
            "/api/health/integrations",
            "/api/health/integrations",
            None,
        ),
        (
            Method::GET,
            "/api/health/system",
            "/api/health/system",
            None,
        ),
        (
            Method::GET,
            "/api/health/summary",
            "/api/health/summary",
            None,
        ),
        (
            Method::GET,
            "/api/health/alerts",
            "/api/health/alerts?severity=critical",
            None,
        ),
        (
            Method::POST,
            "/api/health/alerts/{alert_id}/acknowledge",
            "/api/health/alerts/alert_1/acknowledge",
            Some(json!({"notes": "on it"})),
        ),
        (
            Method::GET,
            "/api/health/history/{type}",
            "/api/health/history/agent?entity_id=a1&days=7",
            None,
        ),
        (Method::GET, "/healthz", "/healthz", None),
        (
            Method::POST,
            "/api/health/keys",
            "/api/health/keys",
            Some(json!({"name": "ops laptop", "scopes": ["read"]})),
        ),
        (Method::GET, "/api/health/keys", "/api/health/keys", None),
        (
            Method::DELETE,
            "/api/health/keys/{key_id}",
            &revoke_url,
            None,
        ),
        (
            Method::PUT,
            "/api/health/channels/{channel_id}",
            "/api/health/channels/ops",
            Some(json!({"type": "email", "to": ["ops@example.com"], "name": "Ops mail"})),
        ),
        (
            Method::GET,
            "/api/health/channels",
            "/api/health/channels",
            None,
        ),
        (
            Method::POST,
            "/api/health/channels/{channel_id}/test",
            "/api/health/channels/ops/test",
            None,
        ),
        (
            Method::PUT,
            "/api/health/notification-rules/{rule_id}",
            "/api/health/notification-rules/all",
            Some(
                json!({"channels": ["ops"], "match": {"severity": ["critical"], "source_id": "h*"}}),
            ),
        ),
        (
            Method::GET,
            "/api/health/notification-rules",
            "/api/health/notification-rules",
            None,
        ),
        (
            Method::POST,
            "/api/health/silences",
            "/api/health/silences",
            Some(
                json!({"match": {"source_type": ["agent"]}, "ends_at": ends_at, "comment": "deploy"}),
            ),
        ),
        (
            Method::GET,
            "/api/health/silences",
            "/api/health/silences",
            None,
        ),
        (
            Method::DELETE,
            "/api/health/silences/{silence_id}",
            "/api/health/silences/s_fixed",
            None,
        ),
        (
            Method::GET,
            "/api/health/alerts/{alert_id}/notifications",
            "/api/health/alerts/alert_1/notifications",
            None,
        ),
        (Method::GET, "/api/health/ack/{token}", &ack_url, None),
        (Method::POST, "/api/health/ack/{token}", &ack_url, None),
        (
            Method::DELETE,
            "/api/health/notification-rules/{rule_id}",
            "/api/health/notification-rules/all",
            None,
        ),
        (
            Method::DELETE,
            "/api/health/channels/{channel_id}",
            "/api/health/channels/ops",
            None,
        ),
        (
            Method::PUT,
            "/api/health/slos/{slo_id}",
            "/api/health/slos/slack-p99",
            Some(
                json!({"source_type": "integration", "source_id": "slack", "objective": "latency", "threshold_ms": 200, "percentile": 99}),
            ),
        ),
        (Method::GET, "/api/health/slos", "/api/health/slos", None),
        (
            Method::GET,
            "/api/health/failures",
            "/api/health/failures?source_type=agent&source_id=a1",
            None,
        ),
        (
            Method::GET,
            "/api/health/reports",
            "/api/health/reports?period=month",
            None,
        ),
        (
            Method::GET,
            "/api/health/export",
            "/api/health/export?kind=history&format=ndjson",
            None,
        ),
        (
            Method::GET,
            "/api/health/hourly",
            "/api/health/hourly?source_type=integration&hours=3",
            None,
        ),
        (
            Method::DELETE,
            "/api/health/slos/{slo_id}",
            "/api/health/slos/slack-p99",
            None,
        ),
        (Method::POST, "/v1/traces", "/v1/traces", Some(traces)),
        (
            Method::POST,
            "/v1/metrics",
            "/v1/metrics",
            Some(json!({"resourceMetrics": [{
                "resource": {"attributes": [attr("host.name", "h2")]},
                "scopeMetrics": [{"metrics": [
                    {"name": "system.cpu.utilization", "gauge": {"dataPoints": [{"timeUnixNano": ns(now - 1_000), "asDouble": 0.5}]}},
                    {"name": "system.memory.utilization", "gauge": {"dataPoints": [{"timeUnixNano": ns(now - 1_000), "asDouble": 0.25}]}},
                    {"name": "system.disk.io", "sum": {"dataPoints": [{"timeUnixNano": ns(now - 1_000), "asInt": "7"}]}}
                ]}]
            }]})),
        ),
        (Method::GET, "/metrics", "/metrics", None),
        (
            Method::POST,
            "/api/health/badges",
            "/api/health/badges",
            Some(json!({"source_type": "agent", "source_id": "a1"})),
        ),
        (
            Method::GET,
            "/api/health/badges",
            "/api/health/badges",
            None,
        ),
        (Method::GET, "/api/health/badge/{token}", &badge_url, None),
        (
            Method::DELETE,
            "/api/health/badges/{badge_id}",
            &badge_revoke,
            None,
        ),
    ];
    assert_eq!(
        cases.len(),
        Endpoint::ALL.len(),
        "every endpoint is exercised"
    );
    for (method, template, url, body) in cases {
        let op = format!(
            "/paths/{}/{}",
            pointer_escape(template),
            method.as_str().to_lowercase()
        );
        let mut req = client
            .request(method.clone(), format!("{base}{url}"))
            .header("accept", "application/json")
            .bearer_auth(&running.api_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.answer().await;
        let status = res.status().as_u16().to_string();
        let media = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        if !media.is_empty() && media != "application/json" {
            // A page, a CSV or NDJSON stream: its media type must be documented.
            assert!(
                doc.pointer(&format!(
                    "{op}/responses/{status}/content/{}",
                    pointer_escape(&media)
                ))
                .is_some(),
                "{method} {url} answered {status} as {media}, which is not documented"
            );
            continue;
        }
        let value: Value = res.json().await.unwrap_or_default();
        assert!(
            doc.pointer(&format!("{op}/responses/{status}")).is_some(),
            "{method} {url} answered {status}, which is not documented: {value}"
        );
        if status == "204" {
            continue;
        }
        validate(
            &doc,
            &format!("{op}/responses/{status}/content/application~1json/schema"),
            &value,
            url,
        );
    }
    // Errors have the documented error shape.
    for (url, status) in [
        ("/api/health/agent/ghost", 404),
        ("/api/health/history/agent", 400),
    ] {
        let res = client
            .get(format!("{base}{url}"))
            .bearer_auth(&running.api_key)
            .answer()
            .await;
        assert_eq!(res.status().as_u16(), status);
        validate(
            &doc,
            "/components/schemas/Error",
            &res.json().await.unwrap_or_default(),
            url,
        );
    }
}

/// Every live message a dashboard receives, whole or in parts, matches the documented
/// `HealthUpdate` schema.
#[tokio::test]
async fn live_messages_match_the_documented_schema() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let doc = doc();
    assert_eq!(
        doc["x-websocket"]["messages"]["health:update"]["$ref"],
        "#/components/schemas/HealthUpdate"
    );
    let (app, _dir) = e2e_tests::spawn_app_with(shared::config::Config {
        polling_interval_secs: 1,
        ..shared::config::Config::default()
    })
    .await;
    let mut events: Vec<Value> = (0..500)
        .map(|i| {
            json!({"event_id": format!("e{i}"), "type": "execution.started",
                   "agent_id": format!("agent-{i:04}"), "execution_id": "x",
                   "operation": "Qualifying inbound leads for the sales team"})
        })
        .collect();
    events.push(json!({"event_id": "h", "type": "host.sample", "host_id": "h1", "cpu_usage": 95.0, "memory_usage": 20.0}));
    events.push(json!({"event_id": "c", "type": "integration.call", "integration_id": "slack", "ok": false, "latency_ms": 40}));
    e2e_tests::ingest_events(&app, &app.api_key, Value::Array(events)).await;
    let mut socket = e2e_tests::ws::connect(&e2e_tests::ws::url(app.addr, &app.api_key)).await;
    let mut seen_parts = 0;
    let mut seen_alert = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen_parts < 2 || !seen_alert {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let message = match tokio::time::timeout(left, socket.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => panic!("after 20 s: {seen_parts} parts, alert seen: {seen_alert}"),
        };
        let value: Value = serde_json::from_str(&message).expect("parsing a live message as JSON");
        validate(
            &doc,
            "/components/schemas/HealthUpdate",
            &value,
            "health:update",
        );
        if value.get("part").is_some() {
            seen_parts += 1;
        }
        seen_alert |= value["data"]["alerts"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
    }
}

/// Delta connections' messages (`health:delta`, whole and in parts, with and without
/// entities, and `health:alerts`) match their documented schemas.
#[tokio::test]
async fn delta_messages_match_the_documented_schemas() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let doc = doc();
    let (app, _dir) = e2e_tests::spawn_app_with(shared::config::Config {
        polling_interval_secs: 1,
        ..shared::config::Config::default()
    })
    .await;
    let events: Vec<Value> = (0..500)
        .map(|i| {
            json!({"event_id": format!("e{i}"), "type": "execution.started",
                   "agent_id": format!("agent-{i:04}"), "execution_id": "x",
                   "operation": "Qualifying inbound leads for the sales team"})
        })
        .collect();
    e2e_tests::ingest_events(&app, &app.api_key, Value::Array(events)).await;
    let url = e2e_tests::ws::url(app.addr, &app.api_key);
    let mut delta = e2e_tests::ws::connect(&format!("{url}&mode=delta")).await;
    let mut overview = e2e_tests::ws::connect(&format!("{url}&mode=delta&scope=overview")).await;
    e2e_tests::ingest_events(
        &app,
        &app.api_key,
        json!([{"event_id": "h", "type": "host.sample", "host_id": "h1", "cpu_usage": 95.0, "memory_usage": 20.0}]),
    )
    .await;
    // The alert comes as health:alerts, or in a delta's `raised` when a cycle saw the
    // sample before the evaluator did.
    let (mut parts, mut alerts, mut heartbeat) = (0, false, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while parts < 2 || !alerts || !heartbeat {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let message = match tokio::time::timeout(left, delta.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => panic!("after 20 s: {parts} parts, alerts: {alerts}, heartbeat: {heartbeat}"),
        };
        let value: Value = serde_json::from_str(&message).expect("parsing a delta as JSON");
        let kind = value["type"].as_str().unwrap_or_default().to_owned();
        let schema = match kind.as_str() {
            "health:delta" => "/components/schemas/HealthDelta",
            "health:alerts" => "/components/schemas/HealthAlerts",
            other => panic!("a delta connection got a {other} message: {value}"),
        };
        validate(&doc, schema, &value, &kind);
        parts += usize::from(value.get("part").is_some());
        alerts |= kind == "health:alerts"
            || value["data"]["alerts"]["raised"]
                .as_array()
                .is_some_and(|r| !r.is_empty() && value.get("part").is_none());
        heartbeat |= value["data"]["agents"]
            .as_array()
            .is_some_and(Vec::is_empty);
    }
    // The overview's deltas, after any health:alerts, have no entity lists.
    loop {
        let text =
            match tokio::time::timeout(std::time::Duration::from_secs(10), overview.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => t,
                other => panic!("no overview message: {other:?}"),
            };
        let value: Value = serde_json::from_str(&text).expect("parsing an overview message");
        if value["type"] == "health:alerts" {
            validate(
                &doc,
                "/components/schemas/HealthAlerts",
                &value,
                "overview alerts",
            );
            continue;
        }
        validate(
            &doc,
            "/components/schemas/HealthDelta",
            &value,
            "overview delta",
        );
        assert_eq!(value["data"]["agents"], serde_json::json!([]), "{value}");
        break;
    }
}

/// `health:alerts`, which an event that raises an alert sends delta connections between
/// cycles (none run here, so the evaluator is what raises it), matches its schema.
#[tokio::test]
async fn the_alerts_message_matches_its_documented_schema() {
    let doc = doc();
    let (app, _dir) = e2e_tests::spawn_app_with(shared::config::Config {
        polling_enabled: false,
        ..shared::config::Config::default()
    })
    .await;
    let url = e2e_tests::ws::url(app.addr, &app.api_key);
    let mut socket = e2e_tests::ws::connect(&format!("{url}&mode=delta")).await;
    e2e_tests::ingest_events(
        &app,
        &app.api_key,
        json!([{"event_id": "h", "type": "host.sample", "host_id": "h1", "cpu_usage": 95.0, "memory_usage": 20.0}]),
    )
    .await;
    let message = e2e_tests::ws::next_of(
        &mut socket,
        "health:alerts",
        std::time::Duration::from_secs(5),
    )
    .await;
    validate(
        &doc,
        "/components/schemas/HealthAlerts",
        &message,
        "health:alerts",
    );
}
