//! The collector inside the local stack, over HTTP only, as an operator sees it: a failing
//! agent raises an alert within a cycle (1 s here), it can be acknowledged, and it resolves
//! when the agent recovers.

use std::time::{Duration, Instant};

use e2e_tests::RequestExt as _;
use reqwest::StatusCode;
use serde_json::{json, Value};
use shared::config::Config;

struct Api {
    client: reqwest::Client,
    url: String,
    key: String,
}

impl Api {
    async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let res = req.bearer_auth(&self.key).answer().await;
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn report(&self, events: Value) {
        let (status, body) = self
            .send(
                self.client
                    .post(format!("{}/api/health/events", self.url))
                    .json(&json!({ "events": events })),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }

    async fn alerts(&self) -> Vec<Value> {
        let (status, body) = self
            .send(self.client.get(format!("{}/api/health/alerts", self.url)))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array().cloned().unwrap_or_default()
    }

    /// Polls the active alerts until `pick` finds one (or, with `absent`, until it finds
    /// none), for at most 20 s: a few cycles of 1 s.
    async fn wait_for(
        &self,
        what: &str,
        absent: bool,
        pick: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = self.alerts().await.into_iter().find(|a| pick(a));
            if found.is_some() != absent {
                return found;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Api {
    fn of(app: &local_stack::Running) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: app.url(),
            key: app.api_key.clone(),
        }
    }
}

fn runs(tag: &str, n: usize, outcome: &str) -> Value {
    let mut out = Vec::new();
    for i in 0..n {
        let x = format!("{tag}-{i}");
        out.push(json!({"event_id": format!("{x}-s"), "type": "execution.started", "agent_id": "sales-bot", "agent_name": "Sales Bot", "execution_id": x, "operation": "Qualifying leads"}));
        out.push(json!({"event_id": format!("{x}-f"), "type": "execution.finished", "agent_id": "sales-bot", "execution_id": x, "outcome": outcome}));
    }
    json!(out)
}

fn is_error_rate(a: &Value) -> bool {
    a["source_id"] == "sales-bot"
        && a["message"]
            .as_str()
            .is_some_and(|m| m.contains("high error rate"))
}

#[tokio::test]
async fn a_failing_agent_raises_an_alert_that_is_acknowledged_and_resolves_on_recovery() {
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        ..Config::default()
    })
    .await;
    let api = Api::of(&app);

    api.report(runs("bad", 2, "failed")).await;
    let alert = api
        .wait_for("the error-rate alert", false, is_error_rate)
        .await
        .unwrap_or_else(|| panic!("the error-rate alert was not raised"));
    assert_eq!(alert["severity"], "warning");
    assert_eq!(alert["source_type"], "agent");
    assert_eq!(
        alert["message"],
        "Agent Sales Bot has high error rate: 100.0%"
    );
    assert_eq!(alert["action_required"], true);
    assert_eq!(alert["acknowledged"], false);
    let id = alert["alert_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no alert_id"))
        .to_owned();

    let (status, acked) = api
        .send(
            api.client
                .post(format!("{}/api/health/alerts/{id}/acknowledge", api.url))
                .json(&json!({"notes": "restarting the bot"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    // Still acknowledged after further cycles.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let listed = api
        .alerts()
        .await
        .into_iter()
        .find(|a| a["alert_id"] == id.as_str())
        .unwrap_or_else(|| panic!("alert gone before recovery"));
    assert_eq!(listed["acknowledged"], true);
    assert_eq!(listed["notes"], "restarting the bot");
    assert_eq!(listed["acknowledged_by"], "local-stack");

    // 2 failed of 20: 10 %, below the 0.5 threshold and its clear level.
    api.report(runs("good", 18, "completed")).await;
    api.wait_for("the alert to resolve", true, |a| {
        a["alert_id"] == id.as_str()
    })
    .await;
    assert!(api.alerts().await.iter().all(|a| !is_error_rate(a)));
    app.stop().await.expect("stopping the local stack");
}

#[tokio::test]
async fn with_polling_disabled_only_events_raise_alerts() {
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        polling_enabled: false,
        ..Config::default()
    })
    .await;
    let api = Api::of(&app);
    // Failures decide their alert as they arrive...
    api.report(runs("bad", 2, "failed")).await;
    api.wait_for("the error-rate alert", false, is_error_rate)
        .await;
    // ...but silence is time's to decide, and no cycle runs: more than five intervals
    // later the agent is silent and still no alert says so.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let alerts = api.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(is_error_rate(&alerts[0]));
    app.stop().await.expect("stopping the local stack");
}
