//! The analysis side over real HTTP on both stores: a source's recent failures with the
//! error text its events carried, reports of a seeded history in three formats, and
//! exports that round-trip it.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use e2e_tests::{spawn_api, Api, Backend, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::time::{format_rfc3339, ManualClock, Millis, DAY_MS, HOUR_MS, MINUTE_MS};

async fn post_events(api: &Api, events: Value) -> Value {
    let (status, body) = api
        .call(
            Method::POST,
            "/api/health/events",
            Some(json!({ "events": events })),
        )
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
        .call(
            Method::GET,
            "/api/health/failures?source_type=agent&source_id=sales",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(
        list.len(),
        2,
        "two failed executions, newest first: {list:?}"
    );
    assert_eq!(list[0]["execution_id"], "x2");
    assert_eq!(
        list[0]["error"].as_str().map(str::len),
        Some(500),
        "cut to 500 characters"
    );
    assert_eq!(list[0]["duration_ms"], 50.3);
    assert_eq!(
        list[0]["operation"],
        Value::Null,
        "x2's start was never seen"
    );
    assert_eq!(list[1]["execution_id"], "x1");
    assert_eq!(list[1]["operation"], "Processing leads");
    assert_eq!(list[1]["error"], "CRM timeout\n  at fetch_leads");
    assert_eq!(
        list[1]["duration_ms"], 120_000.0,
        "from the start two minutes earlier"
    );
    assert_eq!(list[1]["timestamp"], at(8));
    assert_eq!(list[1]["source_type"], "agent");
    assert_eq!(list[1]["source_id"], "sales");

    let (_, one) = api
        .call(
            Method::GET,
            "/api/health/failures?source_type=agent&source_id=sales&limit=1",
            None,
        )
        .await;
    assert_eq!(one.as_array().map(Vec::len), Some(1));
    assert_eq!(one[0]["execution_id"], "x2");

    let (_, calls) = api
        .call(
            Method::GET,
            "/api/health/failures?source_type=integration&source_id=hubspot",
            None,
        )
        .await;
    assert_eq!(
        calls,
        json!([{"timestamp": at(3), "source_type": "integration", "source_id": "hubspot",
            "execution_id": null, "operation": null, "error": "502 Bad Gateway", "duration_ms": 812.0}])
    );

    let long = format!("source_type=agent&source_id={}", "a".repeat(129));
    for (query, says) in [
        (long.as_str(), "source_id: must be 1 to 128 characters"),
        ("source_id=sales", "source_type: required"),
        (
            "source_type=host&source_id=h",
            "source_type: must be agent or integration",
        ),
        ("source_type=agent", "source_id: required"),
        (
            "source_type=agent&source_id=sales&limit=0",
            "limit: must be a whole number from 1 to 100",
        ),
        (
            "source_type=agent&source_id=sales&limit=x",
            "limit: must be a whole number from 1 to 100",
        ),
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
        .call(
            Method::GET,
            "/api/health/failures?source_type=agent&source_id=nobody",
            None,
        )
        .await;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
}

/// `n` executions of `sales` started and finished at `at`, the first `failed` failed.
fn executions(tag: &str, n: usize, failed: usize, at: Millis) -> Vec<Value> {
    let ts = format_rfc3339(at);
    (0..n)
        .flat_map(|i| {
            let id = format!("{tag}{i}");
            let mut finish = json!({"event_id": format!("{id}-f"), "type": "execution.finished", "agent_id": "sales", "execution_id": id, "outcome": "completed", "duration_ms": 1000, "timestamp": ts});
            if i < failed {
                finish["outcome"] = json!("failed");
                finish["error"] = json!("CRM timeout");
            }
            [
                json!({"event_id": format!("{id}-s"), "type": "execution.started", "agent_id": "sales", "agent_name": "Sales <Assistant>", "execution_id": id, "operation": "Processing leads", "timestamp": ts}),
                finish,
            ]
        })
        .collect()
}

/// `n` calls of `integration` at `at` taking `latency_ms`, the first `failed` failed.
fn calls(
    integration: &str,
    name: &str,
    n: usize,
    failed: usize,
    latency_ms: f64,
    at: Millis,
) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"event_id": format!("{integration}-{at}-{i}"), "type": "integration.call", "integration_id": integration, "integration_name": name, "latency_ms": latency_ms, "ok": i >= failed, "timestamp": format_rfc3339(at)}))
        .collect()
}

async fn alert(
    running: &local_stack::Running,
    id: &str,
    raised: Millis,
    ack_after_s: i64,
    resolve_after_s: i64,
) {
    use shared::domain::alerts::{AlertRecord, SourceType};
    let alert = AlertRecord {
        message: "Integration Stripe failed".into(),
        source_type: SourceType::Integration,
        source_id: "stripe".into(),
        condition: "integration_failed".into(),
        acknowledged_by: Some("ops".into()),
        acknowledged_at: Some(raised + ack_after_s * 1000),
        resolved_at: Some(raised + resolve_after_s * 1000),
        ..e2e_tests::seed::alert(id, raised)
    };
    e2e_tests::seed::save_alert(&running.state.store, "local", &alert).await;
}

/// Two weeks of history: the week before, a good one; this week, the agent fails half
/// its executions and Stripe a tenth of its calls, three times slower. The report's
/// figures below are worked out by hand from these counts.
async fn seed_two_weeks(
    backend: Backend,
) -> (
    local_stack::Running,
    Option<tempfile::TempDir>,
    Millis,
    Arc<ManualClock>,
) {
    let today = chrono::Utc::now().timestamp_millis().div_euclid(DAY_MS);
    let now = today * DAY_MS + 12 * HOUR_MS;
    let before = now - 10 * DAY_MS;
    let this = now - 2 * DAY_MS;
    let clock = Arc::new(ManualClock::new(before));
    let (running, dir) = spawn_api(backend, clock.clone()).await;
    let api = Api::of(&running);
    let mut week_before = executions("p", 20, 1, before);
    week_before.extend(calls("stripe", "Stripe | payments", 100, 1, 100.0, before));
    week_before.extend(calls("slack", "Slack", 50, 0, 40.0, before));
    post_events(&api, json!(week_before)).await;
    clock.set(this);
    let mut this_week = executions("c", 10, 5, this);
    this_week.extend(calls("stripe", "Stripe | payments", 100, 10, 300.0, this));
    this_week.extend(calls("slack", "Slack", 50, 0, 40.0, this));
    post_events(&api, json!(this_week)).await;
    let (status, slo) = api
        .call(
            Method::PUT,
            "/api/health/slos/stripe-availability",
            Some(json!({"source_type": "integration", "source_id": "stripe", "objective": "availability", "target": 0.99, "window_days": 30})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{slo}");
    alert(&running, "alert_before", before + HOUR_MS, 120, 600).await;
    alert(&running, "alert_this", this + HOUR_MS, 600, 1800).await;
    clock.set(now);
    (running, dir, now, clock)
}

async fn a_weekly_report_renders_in_three_formats(backend: Backend) {
    let (running, _dir, now, _clock) = seed_two_weeks(backend).await;
    let api = Api::of(&running);
    let (status, r) = api
        .call(
            Method::GET,
            "/api/health/reports?period=week&format=json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{r}");
    let today = now.div_euclid(DAY_MS);
    assert_eq!(r["period"], "week");
    assert_eq!(r["from"], format_rfc3339((today - 6) * DAY_MS));
    assert_eq!(r["previous_from"], format_rfc3339((today - 13) * DAY_MS));
    assert_eq!(r["to"], format_rfc3339(now));
    let s = &r["summary"];
    assert_eq!(
        (s["executions"].as_u64(), s["failed_executions"].as_u64()),
        (Some(10), Some(5))
    );
    assert_eq!(s["success_rate"], 0.5);
    assert_eq!(
        (s["calls"].as_u64(), s["failed_calls"].as_u64()),
        (Some(150), Some(10))
    );
    assert_eq!(s["availability"], 0.9333, "140 of 150");
    assert_eq!(
        (
            s["alerts"].as_u64(),
            s["mtta_seconds"].as_f64(),
            s["mttr_seconds"].as_f64()
        ),
        (Some(1), Some(600.0), Some(1800.0))
    );
    let p = &r["previous"];
    assert_eq!(
        (p["executions"].as_u64(), p["failed_executions"].as_u64()),
        (Some(20), Some(1))
    );
    assert_eq!(p["success_rate"], 0.95);
    assert_eq!(p["availability"], 0.9933, "149 of 150");
    assert_eq!(p["mtta_seconds"], 120.0);

    let ids: Vec<&str> = r["integrations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["integration_id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, ["slack", "stripe"], "by id");
    let stripe = &r["integrations"][1];
    assert_eq!(stripe["current"]["calls"], 100);
    assert_eq!(stripe["current"]["failures"], 10);
    assert_eq!(stripe["current"]["availability"], 0.9);
    assert_eq!(stripe["previous"]["availability"], 0.99);
    let p95 = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    assert!(
        (p95(&stripe["current"]["latency_p95_ms"]) - 300.0).abs() <= 6.0,
        "{stripe}"
    );
    assert!(
        (p95(&stripe["previous"]["latency_p95_ms"]) - 100.0).abs() <= 2.0,
        "{stripe}"
    );

    assert_eq!(
        r["top_failing_agents"],
        json!([{"agent_id": "sales", "agent_name": "Sales <Assistant>", "executions": 10, "failed": 5, "success_rate": 0.5, "previous_success_rate": 0.95}])
    );
    assert_eq!(
        r["top_failing_integrations"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(r["top_failing_integrations"][0]["integration_id"], "stripe");

    // 11 bad of 200 in the window against a 1 % budget: 5.5 budgets spent; this week
    // 10 of 100 (10×), the week before 1 of 100 (1×).
    let slo = &r["slos"][0];
    assert_eq!(slo["slo_id"], "stripe-availability");
    assert_eq!(slo["current"], 0.945);
    assert_eq!(slo["buffer"], -0.045);
    assert_eq!(slo["error_budget_remaining"], -4.5);
    assert_eq!(slo["status"], "breached");
    assert_eq!(
        (
            slo["burn_rate"].as_f64(),
            slo["previous_burn_rate"].as_f64()
        ),
        (Some(10.0), Some(1.0))
    );

    let incidents = &r["incidents"];
    assert_eq!(incidents["count"], 1);
    assert_eq!(incidents["alerts"][0]["alert_id"], "alert_this");
    assert_eq!(incidents["alerts"][0]["time_to_acknowledge_s"], 600);
    assert_eq!(incidents["alerts"][0]["time_to_resolve_s"], 1800);

    let findings: Vec<String> = serde_json::from_value(r["findings"].clone()).unwrap_or_default();
    for expected in [
        "SLO stripe-availability (integration stripe) is breached: -450.0 % of its error budget left.",
        "integration stripe burned SLO stripe-availability's error budget 10.0× faster than last week (10.00× against 1.00×).",
        "Stripe | payments failed 10.0 % of its calls, 10.0× last week's 1.0 %.",
        "Stripe | payments's p95 latency rose from",
        "Sales <Assistant>'s success rate fell from 95.0 % to 50.0 %.",
        "Alerts took 10 min to acknowledge on average, 2 min last week.",
    ] {
        assert!(findings.iter().any(|f| f.starts_with(expected)), "{expected:?} not in {findings:#?}");
    }

    let (status, md) = api
        .call_text(
            Method::GET,
            "/api/health/reports?period=week&format=markdown",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        md.starts_with("# Health report of local: last week\n"),
        "{md}"
    );
    assert!(md.contains("| Executions | 10 | 20 |"), "{md}");
    assert!(
        md.contains("| Stripe \\| payments | active | 100 | 90.00 % | 99.00 % |"),
        "a pipe in a name stays in its cell: {md}"
    );
    assert!(
        md.contains("- Sales \\<Assistant>'s success rate fell from 95.0 % to 50.0 %."),
        "no HTML tag in the Markdown: {md}"
    );
    assert!(md.contains("| stripe-availability | integration stripe | 99.00 % | 94.50 % | -4.50 points | -450.0 % | breached | 10.00× | 1.00× |"), "{md}");

    let res = api
        .client
        .get(format!("{}/api/health/reports?format=html", api.base))
        .bearer_auth(&api.key)
        .answer()
        .await;
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let html = res.text().await.unwrap_or_default();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(
        html.contains("<h1>Health report of local: last week</h1>"),
        "{html}"
    );
    assert!(
        html.contains(
            "<td>Sales &lt;Assistant&gt;</td><td>10</td><td>5</td><td>50.0 %</td><td>95.0 %</td>"
        ),
        "escaped: {html}"
    );
    assert!(!html.contains("<Assistant>"), "nothing unescaped");

    for (query, says) in [
        ("period=year", "period: must be week or month"),
        ("format=pdf", "format: must be json, markdown or html"),
    ] {
        let (status, body) = api
            .call(Method::GET, &format!("/api/health/reports?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["message"], says);
    }
}

/// The export of `query` as (headers, body).
async fn export(
    api: &Api,
    query: &str,
) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
    let res = api
        .client
        .get(format!("{}/api/health/export?{query}", api.base))
        .bearer_auth(&api.key)
        .answer()
        .await;
    let (status, headers) = (res.status(), res.headers().clone());
    (status, headers, res.text().await.unwrap_or_default())
}

fn csv_rows(text: &str) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().cloned().expect("reading the CSV header");
    reader
        .records()
        .map(|r| {
            let r = r.expect("reading a CSV row");
            header
                .iter()
                .map(str::to_owned)
                .zip(r.iter().map(str::to_owned))
                .collect()
        })
        .collect()
}

async fn exports_round_trip_the_seeded_history(backend: Backend) {
    let (running, _dir, now, _clock) = seed_two_weeks(backend).await;
    let api = Api::of(&running);
    let from = format_rfc3339(now.div_euclid(DAY_MS) * DAY_MS - 13 * DAY_MS);
    let range = format!("from={from}&to={}", format_rfc3339(now));

    let (status, headers, ndjson) =
        export(&api, &format!("kind=history&format=ndjson&{range}")).await;
    assert_eq!(status, StatusCode::OK, "{ndjson}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(
        headers.get("transfer-encoding").map(|v| v.as_bytes()),
        Some(&b"chunked"[..]),
        "streamed, not buffered"
    );
    let rows: Vec<Value> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("parsing an NDJSON line ({e}): {l}"))
        })
        .collect();
    // Every point of every entity's history, and nothing else.
    let mut expected = Vec::new();
    for (kind, id) in [
        ("agent", "sales"),
        ("integration", "slack"),
        ("integration", "stripe"),
    ] {
        let (status, h) = api
            .call(
                Method::GET,
                &format!("/api/health/history/{kind}?entity_id={id}&days=14"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{h}");
        for p in h["history"].as_array().cloned().unwrap_or_default() {
            let mut row = json!({"entity_type": kind, "entity_id": id});
            for (k, v) in p.as_object().cloned().unwrap_or_default() {
                row[k] = v;
            }
            expected.push(row);
        }
    }
    assert_eq!(expected.len(), 6, "two days each: {expected:?}");
    assert_eq!(rows, expected);

    let (status, headers, csv) = export(&api, &format!("kind=history&format=csv&{range}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
    let table = csv_rows(&csv);
    assert_eq!(table.len(), rows.len());
    for (row, json) in table.iter().zip(&rows) {
        assert_eq!(
            row["entity_type"],
            json["entity_type"].as_str().unwrap_or_default()
        );
        assert_eq!(
            row["timestamp"],
            json["timestamp"].as_str().unwrap_or_default()
        );
        assert_eq!(
            row["health_score"].parse::<f64>().ok(),
            json["health_score"].as_f64()
        );
        for (metric, value) in json["metrics"].as_object().cloned().unwrap_or_default() {
            assert_eq!(
                row[&metric].parse::<f64>().ok(),
                value.as_f64(),
                "{metric} of {json}"
            );
        }
    }
    assert_eq!(table[1]["failed"], "5");
    assert_eq!(table[1]["calls"], "", "an agent has no calls");

    // Only the week before: the agent's and integrations' first day.
    let week_before = format!("from={from}&to={}", format_rfc3339(now - 5 * DAY_MS));
    let (_, _, older) = export(&api, &format!("kind=history&format=ndjson&{week_before}")).await;
    assert_eq!(older.lines().count(), 3, "{older}");

    let (_, _, alerts) = export(&api, &format!("kind=alerts&format=csv&{range}")).await;
    let alerts = csv_rows(&alerts);
    assert_eq!(
        alerts
            .iter()
            .map(|a| a["alert_id"].as_str())
            .collect::<Vec<_>>(),
        ["alert_before", "alert_this"],
        "oldest first"
    );
    assert_eq!(alerts[1]["acknowledged_by"], "ops");
    assert_eq!(alerts[1]["message"], "Integration Stripe failed");
    assert_eq!(
        alerts[1]["raised_at"],
        format_rfc3339(now - 2 * DAY_MS + HOUR_MS)
    );
    assert_eq!(
        alerts[1]["resolved_at"],
        format_rfc3339(now - 2 * DAY_MS + HOUR_MS + 1_800_000)
    );

    let (_, _, failed) = export(&api, &format!("kind=executions&format=ndjson&{range}")).await;
    let failed: Vec<Value> = failed
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(failed.len(), 6, "1 the week before, 5 this week");
    assert!(
        failed.iter().all(|f| f["error"] == "CRM timeout"
            && f["operation"] == "Processing leads"
            && f["agent_id"] == "sales"
            && f["outcome"] == "failed"),
        "{failed:?}"
    );
    assert_eq!(failed[0]["execution_id"], "p0");
    assert_eq!(failed[0]["duration_ms"], 1000.0);

    // An empty range is a header alone.
    let (status, _, empty) = export(
        &api,
        "kind=executions&format=csv&from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        empty,
        "timestamp,agent_id,execution_id,operation,outcome,duration_ms,error\n"
    );

    for (query, says) in [
        (
            "format=csv",
            "kind: required (history, alerts or executions)",
        ),
        ("kind=logs", "kind: must be history, alerts or executions"),
        ("kind=alerts&format=xml", "format: must be csv or ndjson"),
        (
            "kind=alerts&from=yesterday",
            "from: must be an RFC 3339 time, e.g. 2026-11-01T00:00:00Z",
        ),
        (
            "kind=alerts&from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
            "from: must not be after to",
        ),
        (
            "kind=alerts&from=2026-01-01T00:00:00Z&to=2026-06-01T00:00:00Z",
            "from, to: at most 90 days apart",
        ),
    ] {
        let (status, body) = api
            .call(Method::GET, &format!("/api/health/export?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["message"], says, "{query}");
    }
    let res = api
        .client
        .get(format!("{}/api/health/export?kind=alerts", api.base))
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "no key, no export");
}

async fn hourly_slots_show_each_hour_of_a_source(backend: Backend) {
    let (running, _dir, now, _clock) = seed_two_weeks(backend).await;
    let api = Api::of(&running);
    let (status, one) = api
        .call(
            Method::GET,
            "/api/health/hourly?source_type=integration&source_id=stripe&hours=72",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let slots = one[0]["slots"].as_array().cloned().unwrap_or_default();
    assert_eq!(slots.len(), 72);
    assert_eq!(
        slots[71]["start"],
        format_rfc3339(now),
        "the current hour last (now is on the hour)"
    );
    let busy: Vec<&Value> = slots
        .iter()
        .filter(|s| s["total"].as_u64() > Some(0))
        .collect();
    assert_eq!(busy.len(), 1, "one hour with calls: {busy:?}");
    assert_eq!(busy[0]["start"], format_rfc3339(now - 2 * DAY_MS));
    assert_eq!(
        (busy[0]["total"].as_u64(), busy[0]["failed"].as_u64()),
        (Some(100), Some(10))
    );
    assert_eq!(busy[0]["availability"], 0.9);
    assert!((busy[0]["latency_p95_ms"].as_f64().unwrap_or(0.0) - 300.0).abs() <= 6.0);
    assert_eq!(
        slots[0]["availability"],
        Value::Null,
        "no calls, no availability"
    );

    let (_, all) = api
        .call(
            Method::GET,
            "/api/health/hourly?source_type=integration",
            None,
        )
        .await;
    let ids: Vec<&str> = all
        .as_array()
        .map(|a| a.iter().filter_map(|h| h["source_id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["slack", "stripe"]);
    assert_eq!(
        all[0]["slots"].as_array().map(Vec::len),
        Some(24),
        "24 hours by default"
    );

    let (status, _) = api
        .call(
            Method::GET,
            "/api/health/hourly?source_type=agent&source_id=ghost",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (query, says) in [
        ("hours=3", "source_type: required (agent or integration)"),
        (
            "source_type=agent&hours=0",
            "hours: must be a whole number from 1 to 168",
        ),
        (
            "source_type=agent&hours=169",
            "hours: must be a whole number from 1 to 168",
        ),
    ] {
        let (status, body) = api
            .call(Method::GET, &format!("/api/health/hourly?{query}"), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["message"], says);
    }
}

async fn host_history_by_hour_comes_from_hour_buckets(backend: Backend) {
    let real = chrono::Utc::now().timestamp_millis();
    let t = real - real.rem_euclid(HOUR_MS) + 30 * MINUTE_MS;
    let clock = Arc::new(ManualClock::new(t - 3 * HOUR_MS));
    let (running, _dir) = spawn_api(backend, clock.clone()).await;
    let api = Api::of(&running);
    let sample = |id: &str, host: &str, cpu: f64, at: Millis| json!({"event_id": id, "type": "host.sample", "host_id": host, "cpu_usage": cpu, "memory_usage": 40.0, "timestamp": format_rfc3339(at)});
    post_events(
        &api,
        json!([
            sample("1", "a", 40.0, t - 3 * HOUR_MS),
            sample("2", "a", 60.0, t - 3 * HOUR_MS + 60_000)
        ]),
    )
    .await;
    clock.set(t - HOUR_MS);
    post_events(
        &api,
        json!([
            sample("3", "a", 80.0, t - HOUR_MS),
            sample("4", "b", 20.0, t - HOUR_MS)
        ]),
    )
    .await;
    clock.set(t);
    post_events(&api, json!([sample("5", "a", 50.0, t)])).await;

    let hour = |at: Millis| format_rfc3339(at - at.rem_euclid(HOUR_MS));
    let (status, all) = api
        .call(Method::GET, "/api/health/history/system?hours=4", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(
        (all["hours"].as_i64(), all["days"].as_i64()),
        (Some(4), Some(1))
    );
    let points = all["history"].as_array().cloned().unwrap_or_default();
    let seen: Vec<(String, f64, f64, u64)> = points
        .iter()
        .map(|p| {
            (
                p["timestamp"].as_str().unwrap_or_default().to_owned(),
                p["metrics"]["cpu_avg"].as_f64().unwrap_or(-1.0),
                p["metrics"]["cpu_max"].as_f64().unwrap_or(-1.0),
                p["metrics"]["samples"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (hour(t - 3 * HOUR_MS), 50.0, 60.0, 2),
            (hour(t - HOUR_MS), 50.0, 80.0, 2),
            (hour(t), 50.0, 50.0, 1),
        ],
        "by hour, both hosts merged, the moved hours from their buckets"
    );
    let (_, a) = api
        .call(
            Method::GET,
            "/api/health/history/system?entity_id=a&hours=2",
            None,
        )
        .await;
    let a: Vec<f64> = a["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metrics"]["cpu_avg"].as_f64())
        .collect();
    assert_eq!(a, [80.0, 50.0], "one host's last two hours");

    let (status, _) = api
        .call(
            Method::GET,
            "/api/health/history/system?entity_id=ghost&hours=2",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (query, says) in [
        ("system?hours=0", "hours: must be a whole number from 1 to 168"),
        ("system?hours=3&days=2", "days, hours: give one of them"),
        ("agent?entity_id=x&hours=3", "hours: only system history is by hour here; agents and integrations have /api/health/hourly"),
    ] {
        let (status, body) = api.call(Method::GET, &format!("/api/health/history/{query}"), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(body["error"]["message"], says);
    }
}

e2e_tests::on_both_backends!(
    failures_keep_the_error_text_newest_first,
    a_weekly_report_renders_in_three_formats,
    exports_round_trip_the_seeded_history,
    hourly_slots_show_each_hour_of_a_source,
    host_history_by_hour_comes_from_hour_buckets,
);
