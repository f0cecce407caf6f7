//! SLOs over real HTTP on both stores: defined with `PUT`, listed with their budget and
//! burn figures computed from history ingested through the API (the expected figures are
//! worked out by hand below), refused field by field when wrong, deleted; and the
//! collector's burn-rate alert through the normal alert lifecycle.

use std::sync::Arc;

use e2e_tests::{spawn_api, Api, Backend};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::time::{format_rfc3339, ManualClock, Millis, HOUR_MS, MINUTE_MS};

/// `n` calls of `stripe` at `at`, the first `failed` of them failed.
fn calls(tag: &str, n: usize, failed: usize, at: Millis) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"event_id": format!("{tag}{i}"), "type": "integration.call", "integration_id": "stripe", "integration_name": "Stripe", "latency_ms": 100 + i, "ok": i >= failed, "timestamp": format_rfc3339(at)}))
        .collect();
    json!({ "events": events })
}

async fn slos_report_hand_computed_budgets_and_burn_rates(backend: Backend) {
    // Half past an hour, two hours ago.
    let now = chrono::Utc::now().timestamp_millis();
    let t = now - now.rem_euclid(HOUR_MS) - 2 * HOUR_MS + 30 * MINUTE_MS;
    let clock = Arc::new(ManualClock::new(t - 2 * HOUR_MS + 5 * MINUTE_MS));
    let (running, _dir) = spawn_api(backend, clock.clone()).await;
    let api = Api::of(&running);
    // Two hours back: 100 calls, 2 failed. Ten minutes back: 50 calls, 5 failed (this
    // batch's arrival moves the earlier hour to its hour bucket).
    let (status, _) = api
        .call(
            Method::POST,
            "/api/health/events",
            Some(calls("a", 100, 2, t - 2 * HOUR_MS)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    clock.set(t - 10 * MINUTE_MS + 1_000);
    let (status, _) = api
        .call(
            Method::POST,
            "/api/health/events",
            Some(calls("b", 50, 5, t - 10 * MINUTE_MS)),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    clock.set(t);

    let (status, slo) = api
        .put(
            "/api/health/slos/stripe-availability",
            json!({"source_type": "integration", "source_id": "stripe",
                "objective": "availability", "target": 0.99, "window_days": 30}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{slo}");
    // 150 calls, 7 failed: availability 1 − 7/150 = 0.953 (3 decimals, as rates are); a 1 % budget spent
    // 7/150 / 0.01 = 4.67 times: 1 − 4.6667 = −3.6667 left. Last hour: 5 of 50 failed,
    // 0.1 / 0.01 = 10×. 6 hours and 3 days: all 150, 4.67×.
    assert_eq!(
        slo,
        json!({
            "slo_id": "stripe-availability", "source_type": "integration", "source_id": "stripe",
            "objective": "availability", "target": 0.99, "window_days": 30,
            "threshold_ms": null, "percentile": null,
            "current": 0.953, "current_latency_ms": null, "events": 150,
            "error_budget_remaining": -3.6667,
            "burn_rate_1h": 10.0, "burn_rate_6h": 4.67, "burn_rate_3d": 4.67,
            "status": "breached"
        })
    );
    // A latency SLO: 99 % under 150 ms. The first batch's calls took 100..199 ms, the
    // second's 100..149 ms: 101 of 150 at or under 150 ms, give or take the calls whose
    // 2 % bucket straddles the bound.
    let (status, latency) = api
        .put(
            "/api/health/slos/stripe-p99",
            json!({"source_type": "integration", "source_id": "stripe",
                "objective": "latency", "threshold_ms": 150, "percentile": 99}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{latency}");
    assert_eq!(latency["target"], json!(0.99));
    assert_eq!(latency["events"], json!(150));
    let good = latency["current"].as_f64().unwrap_or(f64::NAN);
    assert!(
        (0.65..=0.68).contains(&good),
        "about 101 of 150 under 150 ms: {good}"
    );
    assert_eq!(latency["status"], json!("breached"));

    let (status, list) = api.call(Method::GET, "/api/health/slos", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<_> = list
        .as_array()
        .map(|l| l.iter().map(|s| s["slo_id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [json!("stripe-availability"), json!("stripe-p99")]);
    assert_eq!(list[0], slo);

    let (status, _) = api
        .call(Method::DELETE, "/api/health/slos/stripe-p99", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api
        .call(Method::DELETE, "/api/health/slos/stripe-p99", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = api.call(Method::GET, "/api/health/slos", None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

async fn bad_slos_are_refused_field_by_field(backend: Backend) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp_millis()));
    let (running, _dir) = spawn_api(backend, clock).await;
    let api = Api::of(&running);
    for (body, code, message) in [
        (
            json!({"source_type": "host", "source_id": "h", "objective": "availability", "target": 0.99}),
            "invalid_slo",
            "source_type: must be \"agent\" or \"integration\"",
        ),
        (
            json!({"source_type": "agent", "source_id": "a", "objective": "availability", "target": 1}),
            "invalid_slo",
            "target: must be above 0 and below 1",
        ),
        (
            json!({"source_type": "agent", "source_id": "a", "objective": "latency", "percentile": 99}),
            "invalid_slo",
            "threshold_ms: a latency SLO needs threshold_ms, from above 0 to 3600000",
        ),
        (
            json!({"source_type": "agent", "source_id": "a", "objective": "availability", "target": 0.9, "window_days": 31}),
            "invalid_slo",
            "window_days: must be a whole number from 1 to 30",
        ),
    ] {
        let (status, answer) = api
            .call(Method::PUT, "/api/health/slos/s", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["code"], json!(code), "{answer}");
        assert_eq!(answer["error"]["message"], json!(message), "{answer}");
    }
    let (status, answer) = api
        .put("/api/health/slos/s", json!({"source_type": "agent", "source_id": "a", "objective": "availability", "target": 0.9, "colour": "red"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown field `colour`")),
        "{answer}"
    );
    // Nothing was stored by the refused bodies.
    let (_, list) = api.call(Method::GET, "/api/health/slos", None).await;
    assert_eq!(list, json!([]));
}

e2e_tests::on_both_backends!(
    slos_report_hand_computed_budgets_and_burn_rates,
    bad_slos_are_refused_field_by_field,
);
