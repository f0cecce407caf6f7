//! The read side of the API over real HTTP, on both stores: whole JSON documents compared
//! with the contract's shapes, alert acknowledgement, bad parameters, and tenant isolation
//! through every endpoint. Time is fixed by a manual clock so every figure is exact.

use shared::domain::latency::estimate;
use std::sync::Arc;

use e2e_tests::{seed, spawn_api, Api, Backend, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::domain::alerts::{AlertRecord, Severity, SourceType};
use shared::time::{format_rfc3339, ManualClock, Millis, DAY_MS};

/// Noon UTC today: far from midnight, so every event of a test falls on one day.
fn noon() -> Millis {
    let now = chrono::Utc::now().timestamp_millis();
    now - now.rem_euclid(DAY_MS) + DAY_MS / 2
}

fn alert(
    id: &str,
    severity: Severity,
    source_type: SourceType,
    source_id: &str,
    message: &str,
    raised_at: Millis,
) -> AlertRecord {
    AlertRecord {
        severity,
        message: message.into(),
        source_type,
        source_id: source_id.into(),
        condition: "test".into(),
        ..seed::alert(id, raised_at)
    }
}

/// Ingests the fixture and seeds alerts; returns the API client.
async fn fixture(
    backend: Backend,
    t: Millis,
) -> (Api, local_stack::Running, Option<tempfile::TempDir>) {
    fixture_on(backend, Arc::new(ManualClock::new(t))).await
}

/// [`fixture`] on a clock the test moves.
async fn fixture_on(
    backend: Backend,
    clock: Arc<ManualClock>,
) -> (Api, local_stack::Running, Option<tempfile::TempDir>) {
    use shared::time::Clock as _;
    let t = clock.now_ms();
    let (running, dir) = spawn_api(backend, clock).await;
    let api = Api::of(&running);
    let at = |secs: i64| format_rfc3339(t - secs * 1000);
    let events = json!({"events": [
        {"event_id": "1", "type": "execution.started", "agent_id": "a1", "agent_name": "Sales Assistant", "execution_id": "x1", "operation": "Processing leads", "timestamp": at(600)},
        {"event_id": "2", "type": "execution.finished", "agent_id": "a1", "execution_id": "x1", "outcome": "completed", "timestamp": at(540)},
        {"event_id": "3", "type": "execution.started", "agent_id": "a1", "execution_id": "x2", "operation": "Emailing", "timestamp": at(300)},
        {"event_id": "4", "type": "execution.finished", "agent_id": "a1", "execution_id": "x2", "outcome": "failed", "duration_ms": 60000, "confidence": 0.88, "timestamp": at(240)},
        {"event_id": "5", "type": "execution.started", "agent_id": "a2", "execution_id": "x3", "operation": "Processing leads", "timestamp": at(60)},
        {"event_id": "6", "type": "integration.call", "integration_id": "slack", "integration_name": "Slack", "latency_ms": 100, "ok": true, "timestamp": at(120)},
        {"event_id": "7", "type": "integration.call", "integration_id": "slack", "latency_ms": 200, "ok": true, "timestamp": at(90)},
        {"event_id": "8", "type": "integration.call", "integration_id": "slack", "latency_ms": 300, "ok": false, "error": "timeout", "timestamp": at(60)},
        {"event_id": "9", "type": "host.sample", "host_id": "h1", "cpu_usage": 45.2, "memory_usage": 62.8, "timestamp": at(30)},
        {"event_id": "10", "type": "gauge", "name": "queue_depth", "value": 12, "timestamp": at(30)},
    ]});
    let (status, body) = api.post("/api/health/events", events).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let store = &running.state.store;
    let mut resolved = alert(
        "alert_resolved",
        Severity::Warning,
        SourceType::System,
        "h1",
        "High CPU usage: 85%",
        t - 900_000,
    );
    resolved.resolved_at = Some(t - 800_000);
    for a in [
        alert(
            "alert_int",
            Severity::Critical,
            SourceType::Integration,
            "slack",
            "Integration Slack failed 3 times in a row",
            t - 100_000,
        ),
        alert(
            "alert_agent",
            Severity::Warning,
            SourceType::Agent,
            "a1",
            "Agent Sales Assistant has high error rate: 50.0%",
            t - 50_000,
        ),
        alert(
            "alert_info",
            Severity::Info,
            SourceType::System,
            "system",
            "Queue depth rising: 12",
            t - 10_000,
        ),
        resolved,
    ] {
        seed::save_alert(store, "local", &a).await;
    }
    (api, running, dir)
}

fn agent_a1(t: Millis) -> Value {
    json!({
        "agent_id": "a1", "agent_name": "Sales Assistant", "status": "error", "current_operation": null,
        "operations_completed": 1, "success_rate": 0.5, "confidence_score": 0.88,
        "last_active": format_rfc3339(t - 240_000), "health_trend": "stable",
        "metrics": {"avg_execution_time": 60000.0, "error_rate": 0.5, "recent_executions": 2, "input_tokens": 0, "output_tokens": 0},
        // Both executions took 60 s.
        "latency_p50_ms": estimate(60_000.0), "latency_p95_ms": estimate(60_000.0),
        "latency_p99_ms": estimate(60_000.0)
    })
}

fn agent_a2(t: Millis) -> Value {
    json!({
        "agent_id": "a2", "agent_name": "a2", "status": "active", "current_operation": "Processing leads",
        "operations_completed": 0, "success_rate": 0.0, "confidence_score": 0.5,
        "last_active": format_rfc3339(t - 60_000), "health_trend": "stable",
        "metrics": {"avg_execution_time": null, "error_rate": 0.0, "recent_executions": 1, "input_tokens": 0, "output_tokens": 0},
        "latency_p50_ms": null, "latency_p95_ms": null, "latency_p99_ms": null
    })
}

fn alert_json(
    id: &str,
    severity: &str,
    source_type: &str,
    source_id: &str,
    message: &str,
    at: Millis,
    action: bool,
) -> Value {
    json!({
        "alert_id": id, "severity": severity, "message": message, "source_type": source_type,
        "source_id": source_id, "timestamp": format_rfc3339(at), "action_required": action,
        "acknowledged": false, "acknowledged_by": null, "acknowledged_at": null, "notes": null,
        "silenced": false
    })
}

/// The fixture's alert on agent a1 as the API answers it, unacknowledged.
fn agent_alert_json(t: Millis) -> Value {
    alert_json(
        "alert_agent",
        "warning",
        "agent",
        "a1",
        "Agent Sales Assistant has high error rate: 50.0%",
        t - 50_000,
        true,
    )
}

async fn every_read_endpoint_answers_the_contract_shapes(backend: Backend) {
    let t = noon();
    let (api, running, _dir) = fixture(backend, t).await;
    let day = format_rfc3339(t - DAY_MS / 2);

    assert_eq!(
        api.get("/api/health/agent/a1").await,
        (StatusCode::OK, agent_a1(t))
    );
    assert_eq!(
        api.get("/api/health/agents").await,
        (StatusCode::OK, json!([agent_a1(t), agent_a2(t)]))
    );
    assert_eq!(
        api.get("/api/health/integrations").await,
        (
            StatusCode::OK,
            json!([{
                "integration_id": "slack", "integration_name": "Slack", "status": "degraded",
                "last_used": format_rfc3339(t - 60_000), "latency_ms": 200.0, "error_rate": 0.3333,
                "health_trend": "stable", "connection_status": "connected", "state": "degraded",
                "consecutive_failures": 1, "health_checks_performed": 0, "recovery_attempts": 0,
                "successful_recoveries": 0, "uptime_seconds": 120,
                // Calls of 100, 200 and 300 ms, by nearest rank.
                "latency_p50_ms": estimate(200.0), "latency_p95_ms": estimate(300.0),
                "latency_p99_ms": estimate(300.0)
            }])
        )
    );
    assert_eq!(
        api.get("/api/health/system").await,
        (
            StatusCode::OK,
            json!({
                "cpu_usage": 45.2, "memory_usage": 62.8, "active_operations": 1, "queue_depth": 12,
                "total_agents": 2, "active_agents": 1, "total_integrations": 1, "healthy_integrations": 0,
                "alerts": {"critical": 1, "warning": 1, "info": 1},
                "hosts": [{"host_id": "h1", "cpu_usage": 45.2, "memory_usage": 62.8, "last_seen": format_rfc3339(t - 30_000)}]
            })
        )
    );
    let int = alert_json(
        "alert_int",
        "critical",
        "integration",
        "slack",
        "Integration Slack failed 3 times in a row",
        t - 100_000,
        true,
    );
    let agent = agent_alert_json(t);
    let info = alert_json(
        "alert_info",
        "info",
        "system",
        "system",
        "Queue depth rising: 12",
        t - 10_000,
        false,
    );
    assert_eq!(
        api.get("/api/health/alerts").await,
        (StatusCode::OK, json!([int, agent, info]))
    );
    assert_eq!(
        api.get("/api/health/alerts?severity=warning").await,
        (StatusCode::OK, json!([agent]))
    );

    assert_eq!(
        api.get("/api/health/history/agent?entity_id=a1&days=7")
            .await,
        (
            StatusCode::OK,
            json!({"health_type": "agent", "entity_id": "a1", "days": 7, "data_points": 1, "history": [
                {"timestamp": day, "health_score": 0.5, "status": "degraded", "metrics": {"total_executions": 2, "completed": 1, "failed": 1, "input_tokens": 0, "output_tokens": 0,
                    "latency_p50_ms": estimate(60_000.0), "latency_p95_ms": estimate(60_000.0), "latency_p99_ms": estimate(60_000.0)}}
            ]})
        )
    );
    assert_eq!(
        api.get("/api/health/history/integration?entity_id=slack")
            .await,
        (
            StatusCode::OK,
            json!({"health_type": "integration", "entity_id": "slack", "days": 30, "data_points": 1, "history": [
                {"timestamp": day, "health_score": 0.667, "status": "degraded", "metrics": {"calls": 3, "failures": 1, "avg_latency_ms": 200.0,
                    "latency_p50_ms": estimate(200.0), "latency_p95_ms": estimate(300.0), "latency_p99_ms": estimate(300.0)}}
            ]})
        )
    );
    let system_point = json!({"timestamp": day, "health_score": 0.372, "status": "error",
        "metrics": {"samples": 1, "cpu_avg": 45.2, "cpu_max": 45.2, "memory_avg": 62.8, "memory_max": 62.8}});
    assert_eq!(
        api.get("/api/health/history/system").await,
        (
            StatusCode::OK,
            json!({"health_type": "system", "entity_id": "system", "days": 30, "data_points": 1, "history": [system_point.clone()]})
        )
    );
    assert_eq!(
        api.get("/api/health/history/system?entity_id=h1&days=1")
            .await,
        (
            StatusCode::OK,
            json!({"health_type": "system", "entity_id": "h1", "days": 1, "data_points": 1, "history": [system_point]})
        )
    );
    // A source's history: its resolved alerts too, newest first, with `resolved_at`.
    let prefix = shared::domain::alerts::source_prefix(SourceType::System, "h1");
    let mut old_cpu = alert(
        &format!("{prefix}0badcafe_1"),
        Severity::Critical,
        SourceType::System,
        "h1",
        "High CPU usage: 95%",
        t - 7_200_000,
    );
    old_cpu.acknowledged_at = Some(t - 7_000_000);
    old_cpu.acknowledged_by = Some("ops".into());
    old_cpu.resolved_at = Some(t - 6_000_000);
    let mut memory = alert(
        &format!("{prefix}0badbeef_1"),
        Severity::Warning,
        SourceType::System,
        "h1",
        "High memory usage: 85%",
        t - 60_000,
    );
    memory.resolved_at = None;
    for a in [&old_cpu, &memory] {
        seed::save_alert(&running.state.store, "local", a).await;
    }
    let memory_json = alert_json(
        &memory.alert_id,
        "warning",
        "system",
        "h1",
        "High memory usage: 85%",
        t - 60_000,
        false,
    );
    let mut cpu_json = alert_json(
        &old_cpu.alert_id,
        "critical",
        "system",
        "h1",
        "High CPU usage: 95%",
        t - 7_200_000,
        true,
    );
    cpu_json["acknowledged"] = json!(true);
    cpu_json["acknowledged_by"] = json!("ops");
    cpu_json["acknowledged_at"] = json!(format_rfc3339(t - 7_000_000));
    cpu_json["resolved_at"] = json!(format_rfc3339(t - 6_000_000));
    assert_eq!(
        api.get("/api/health/alerts?source_type=system&source_id=h1")
            .await,
        (StatusCode::OK, json!([memory_json.clone()]))
    );
    assert_eq!(
        api.get("/api/health/alerts?source_type=system&source_id=h1&include_resolved=true")
            .await,
        (StatusCode::OK, json!([memory_json, cpu_json]))
    );
}

async fn acknowledging_marks_the_alert_once_and_refuses_resolved_or_unknown_ones(backend: Backend) {
    let t = noon();
    let (api, _running, _dir) = fixture(backend, t).await;
    let acknowledge = |id: &str, body: Value| {
        let (api, path) = (&api, format!("/api/health/alerts/{id}/acknowledge"));
        async move { api.post(&path, body).await }
    };
    let (status, body) = acknowledge("alert_agent", json!({"notes": "looking into it"})).await;
    let mut expected = agent_alert_json(t);
    expected["acknowledged"] = json!(true);
    expected["acknowledged_by"] = json!("ops");
    expected["acknowledged_at"] = json!(format_rfc3339(t));
    expected["notes"] = json!("looking into it");
    assert_eq!((status, &body), (StatusCode::OK, &expected));
    let (status, again) = acknowledge("alert_agent", json!({})).await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, expected.clone()),
        "acknowledging twice is not an error"
    );
    let (_, list) = api.get("/api/health/alerts?severity=warning").await;
    assert_eq!(list, json!([expected]));
    let (_, system) = api.get("/api/health/system").await;
    assert_eq!(
        system["alerts"],
        json!({"critical": 1, "warning": 1, "info": 1}),
        "acknowledged alerts still count"
    );

    for (id, refused, code) in [
        ("alert_resolved", StatusCode::CONFLICT, "alert_resolved"),
        ("nope", StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (status, body) = acknowledge(id, json!({})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (refused, Some(code))
        );
    }
    let (status, body) = acknowledge("alert_int", json!({"notes": 5})).await;
    assert_eq!(
        (status, body["error"]["message"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            Some("notes: must be a string of at most 1024 characters")
        )
    );
}

async fn bad_parameters_answer_400_naming_the_parameter(backend: Backend) {
    let t = noon();
    let (api, _running, _dir) = fixture(backend, t).await;
    for (path, message) in [
        (
            "/api/health/history/planet?entity_id=a1",
            "type: must be agent, integration or system",
        ),
        (
            "/api/health/history/agent?entity_id=a1&days=0",
            "days: must be a whole number from 1 to 90",
        ),
        (
            "/api/health/history/agent?entity_id=a1&days=91",
            "days: must be a whole number from 1 to 90",
        ),
        (
            "/api/health/history/agent?entity_id=a1&days=week",
            "days: must be a whole number from 1 to 90",
        ),
        (
            "/api/health/history/agent",
            "entity_id: is required for agent history",
        ),
        (
            "/api/health/history/integration?days=3",
            "entity_id: is required for integration history",
        ),
        (
            "/api/health/alerts?source_type=host&source_id=h1",
            "source_type: must be agent, integration or system",
        ),
        (
            "/api/health/alerts?source_id=h1",
            "source_type and source_id: give both or neither",
        ),
        (
            "/api/health/alerts?include_resolved=true",
            "include_resolved: needs source_type and source_id (one source's history)",
        ),
        (
            "/api/health/alerts?source_type=system&source_id=h1&include_resolved=yes",
            "include_resolved: must be true or false",
        ),
        (
            "/api/health/alerts?severity=urgent",
            "severity: must be critical, warning or info",
        ),
        (
            "/api/health/agents?limit=0",
            "limit: must be a whole number from 1 to 1000",
        ),
        (
            "/api/health/integrations?limit=1001",
            "limit: must be a whole number from 1 to 1000",
        ),
        ("/api/health/agents?cursor=YTE", "cursor: needs limit"),
        (
            "/api/health/agents?limit=5&cursor=!!!",
            "cursor: not a cursor this API gave",
        ),
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["message"].as_str(), Some(message), "{path}");
    }
    for path in [
        "/api/health/agent/ghost",
        "/api/health/history/agent?entity_id=ghost",
        "/api/health/history/integration?entity_id=ghost",
        "/api/health/history/system?entity_id=ghost",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (status, _) = api.delete("/api/health/alerts").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = api.get("/api/health/alerts/alert_int/acknowledge").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

/// With `limit`, the lists come in pages: the body stays the array, the next page is in the
/// `Link` header, and the last page has none.
/// The next page's path in a `Link` header of the documented form.
fn next_page(link: &str) -> String {
    link.strip_prefix('<')
        .and_then(|l| l.split_once(">; rel=\"next\""))
        .map(|(url, _)| url.to_owned())
        .unwrap_or_else(|| panic!("a Link header of the documented form: {link}"))
}

async fn lists_come_in_pages_linked_by_the_link_header(backend: Backend) {
    let t = noon();
    let (api, _running, _dir) = fixture(backend, t).await;
    let mut path = "/api/health/agents?limit=1".to_owned();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let res = api.request(Method::GET, &path).answer().await;
        assert_eq!(res.status(), StatusCode::OK);
        let link = res
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let page: Vec<Value> = res.json().await.unwrap_or_default();
        assert_eq!(page.len(), 1);
        ids.push(page[0]["agent_id"].as_str().unwrap_or("").to_owned());
        match link {
            Some(l) => {
                let next = next_page(&l);
                assert!(
                    next.starts_with("/api/health/agents?limit=1&cursor="),
                    "{next}"
                );
                path = next;
            }
            None => break,
        }
    }
    assert_eq!(ids, ["a1", "a2"]);
    // Without limit: the whole list and no Link header.
    let res = api
        .request(Method::GET, "/api/health/integrations")
        .answer()
        .await;
    assert!(res.headers().get("link").is_none());
}

/// Search, status filter and sort done by the server: what matches, in order, by page with
/// the request's parameters kept on the `Link`, and how many match in `X-Total-Count`.
async fn lists_are_searched_filtered_and_sorted_by_the_server(backend: Backend) {
    let t = noon();
    let (api, _running, _dir) = fixture(backend, t).await;
    let get = |path: &'static str| {
        let api = &api;
        async move {
            let res = api.request(Method::GET, path).answer().await;
            let status = res.status();
            let header = |name: &str| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let (total, link) = (header("x-total-count"), header("link"));
            let body: Value = res.json().await.unwrap_or_default();
            (status, body, total, link)
        }
    };
    let ids = |body: &Value| -> Vec<String> {
        body.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x["agent_id"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let (status, body, total, _) = get("/api/health/agents?q=SALES").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!([agent_a1(t)]), "searching by name, any case");
    assert_eq!(total.as_deref(), Some("1"));
    let (_, body, _, _) = get("/api/health/agents?status=active").await;
    assert_eq!(ids(&body), ["a2"], "filtered by status");
    let (_, body, total, _) = get("/api/health/integrations?q=sla&status=healthy").await;
    assert_eq!(
        (body, total.as_deref()),
        (json!([]), Some("0")),
        "slack is degraded"
    );
    let (_, body, _, _) = get("/api/health/integrations?q=sla&status=degraded").await;
    assert_eq!(body[0]["integration_id"], json!("slack"), "{body}");

    // By the worst success rate: a2 has finished nothing of what it started (0.0), a1 half.
    let (_, first, total, link) = get("/api/health/agents?sort=rate&limit=1").await;
    assert_eq!(
        (ids(&first), total.as_deref()),
        (vec!["a2".to_owned()], Some("2"))
    );
    let next = next_page(
        &link.unwrap_or_else(|| panic!("no Link to the second page of agents sorted by rate")),
    );
    assert!(
        next.ends_with("&sort=rate"),
        "the order is kept on the link: {next}"
    );
    let res = api.request(Method::GET, &next).answer().await;
    assert!(
        res.headers().get("link").is_none(),
        "the second page is the last"
    );
    let second: Value = res.json().await.unwrap_or_default();
    assert_eq!(ids(&second), ["a1"]);

    for (path, says) in [
        (
            "/api/health/agents?status=down",
            "status: must be one of error, paused, idle, active",
        ),
        (
            "/api/health/integrations?status=idle",
            "status: must be one of error, degraded, healthy",
        ),
        (
            "/api/health/agents?sort=size",
            "sort: must be one of id, name, status, rate, recent",
        ),
        ("/api/health/agents?q=", "q: must be 1 to 128 characters"),
        (
            "/api/health/agents?sort=name&limit=1&cursor=%%%",
            "cursor: not a cursor this API gave",
        ),
    ] {
        let (status, body, _, _) = get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["message"], json!(says), "{path}");
    }
}

/// The summary as a user checks it: the same agents, alerts and system figures the lists
/// give, from one read of what the last cycle wrote, and evaluated on the spot when no
/// cycle wrote one lately.
async fn the_summary_agrees_with_the_lists_and_comes_from_the_last_cycle(backend: Backend) {
    let t = noon();
    let clock = Arc::new(ManualClock::new(t));
    let (api, running, _dir) = fixture_on(backend, clock.clone()).await;

    // No cycle yet: evaluated now, from the stored entities.
    let (status, summary) = api.get("/api/health/summary").await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["evaluated_at"], json!(format_rfc3339(t)));
    assert_eq!(
        summary["agents"],
        json!({"total": 2, "by_status": {"active": 1, "error": 1, "idle": 0, "paused": 0},
            "worst": [agent_a1(t)]}),
        "a1's last execution failed: the one agent to look at"
    );
    let integrations = &summary["integrations"];
    assert_eq!(integrations["total"], json!(1));
    assert_eq!(
        integrations["worst"][0]["integration_id"],
        json!("slack"),
        "one of slack's three calls failed"
    );
    let (_, alerts) = api.get("/api/health/alerts").await;
    assert_eq!(
        summary["alerts"],
        json!({"total": 3, "critical": 1, "warning": 1, "info": 1, "acknowledged": 0,
            "silenced": 0, "first": alerts}),
        "the alert counts and the alerts endpoint's first page"
    );
    let (_, system) = api.get("/api/health/system").await;
    assert_eq!(summary["system"], system);
    assert_eq!(summary["hosts_reporting"], json!(1));

    // A cycle writes it; what happens after shows at the next cycle, not at the next read.
    let collector = shared::collector::Collector::new(&running.state)
        .unwrap_or_else(|e| panic!("making a collector: {e}"));
    e2e_tests::cycle(&collector, t).await;
    let (_, after_cycle) = api.get("/api/health/summary").await;
    let (_, alerts) = api.get("/api/health/alerts").await;
    assert_eq!(after_cycle["alerts"]["first"], alerts, "the cycle's alerts");
    clock.advance(10_000);
    let (status, body) = api
        .post(
            "/api/health/events",
            json!({"events": [{"event_id": "later", "type": "execution.started",
                "agent_id": "a3", "execution_id": "x9", "operation": "Late"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (_, stored) = api.get("/api/health/summary").await;
    assert_eq!(
        (
            stored["evaluated_at"].clone(),
            stored["agents"]["total"].clone()
        ),
        (json!(format_rfc3339(t)), json!(2)),
        "the stored summary is the cycle's, read as it was written"
    );
    assert_eq!(stored, after_cycle);

    // Three polling intervals without a cycle: evaluated again, a3 counted.
    clock.advance(3 * 30_000);
    let (_, stale) = api.get("/api/health/summary").await;
    assert_eq!(stale["evaluated_at"], json!(format_rfc3339(t + 100_000)));
    assert_eq!(stale["agents"]["total"], json!(3));
    assert_eq!(stale["agents"]["by_status"]["active"], json!(2));
}

async fn another_tenant_sees_and_changes_nothing_through_any_endpoint(backend: Backend) {
    let t = noon();
    let (api, running, _dir) = fixture(backend, t).await;
    let other = e2e_tests::tenant_key(&running, "other", "intruder").await;
    let intruder = api.with_key(&other);
    let get = |path: &'static str| intruder.get(path);
    assert_eq!(get("/api/health/agent/a1").await.0, StatusCode::NOT_FOUND);
    assert_eq!(get("/api/health/agents").await, (StatusCode::OK, json!([])));
    assert_eq!(
        get("/api/health/integrations").await,
        (StatusCode::OK, json!([]))
    );
    assert_eq!(get("/api/health/alerts").await, (StatusCode::OK, json!([])));
    let (_, system) = get("/api/health/system").await;
    assert_eq!(
        (
            system["total_agents"].as_u64(),
            system["hosts"].clone(),
            system["alerts"].clone()
        ),
        (
            Some(0),
            json!([]),
            json!({"critical": 0, "warning": 0, "info": 0})
        )
    );
    assert_eq!(
        get("/api/health/history/agent?entity_id=a1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/api/health/history/integration?entity_id=slack")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/api/health/history/system?entity_id=h1").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get("/api/health/history/system").await.1["data_points"],
        json!(0)
    );
    let (status, _) = intruder
        .post("/api/health/alerts/alert_agent/acknowledge", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // ... and the owner's alert is still unacknowledged.
    let (_, mine) = api.get("/api/health/alerts?severity=warning").await;
    assert_eq!(mine[0]["acknowledged"], json!(false));
}

e2e_tests::on_both_backends!(
    lists_come_in_pages_linked_by_the_link_header,
    the_summary_agrees_with_the_lists_and_comes_from_the_last_cycle,
    lists_are_searched_filtered_and_sorted_by_the_server,
    every_read_endpoint_answers_the_contract_shapes,
    acknowledging_marks_the_alert_once_and_refuses_resolved_or_unknown_ones,
    bad_parameters_answer_400_naming_the_parameter,
    another_tenant_sees_and_changes_nothing_through_any_endpoint,
);
