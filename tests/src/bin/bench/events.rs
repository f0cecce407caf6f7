//! Alerts decided by the event: on the local stack (real clock, no collector cycles), each
//! round a new host reports 97 % CPU, and the figures are the time from sending the event
//! to the alert being stored, to the dashboard's `health:update` carrying it, and to a
//! webhook channel receiving it. Rounds are 1.2 s apart, so each update is the first of its
//! second (updates for one tenant are coalesced to at most one a second).

use std::time::{Duration, Instant};

use e2e_tests::{ws, RequestExt as _};
use serde_json::json;
use shared::config::Config;

use crate::percentile;

fn row(label: &str, rounds: usize, samples: &mut [f64]) {
    samples.sort_by(f64::total_cmp);
    println!(
        "| {label} | {rounds} | {:.1} | {:.1} | {:.1} |",
        percentile(samples, 0.5),
        percentile(samples, 0.99),
        samples.last().copied().unwrap_or(0.0)
    );
}

/// Prints the event-to-alert table.
pub async fn event_benchmarks() {
    let rounds = 40;
    let sink = e2e_tests::Sink::start().await;
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_enabled: false,
        probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
        ..Config::default()
    })
    .await;
    super::notify::configure(&app.state.store, "local", &sink.url("/hook")).await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let client = reqwest::Client::new();
    let (mut stored, mut updated, mut notified) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let host = format!("event-host-{round:03}");
        let sent = Instant::now();
        let sent_ms = chrono::Utc::now().timestamp_millis();
        let res = client
            .post(format!("{}/api/health/events", app.url()))
            .bearer_auth(&app.api_key)
            .json(
                &json!({"events": [{"event_id": format!("e{round}"), "type": "host.sample",
                "host_id": host, "cpu_usage": 97.0, "memory_usage": 10.0}]}),
            )
            .answer()
            .await;
        assert_eq!(res.status(), 202);
        let store = &app.state.store;
        let alert = async {
            loop {
                let alerts = store
                    .active_alerts("local")
                    .await
                    .expect("reading the active alerts");
                if alerts.iter().any(|a| a.source_id == host) {
                    return sent.elapsed();
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let update = async {
            loop {
                let (data, _) = ws::next_update(&mut socket, Duration::from_secs(10)).await;
                let carries = data["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["source_id"] == host.as_str()));
                if carries {
                    return sent.elapsed();
                }
            }
        };
        let (a, u) = tokio::join!(alert, update);
        let deadline = Instant::now() + Duration::from_secs(10);
        let hook_at = loop {
            let hit = sink.received().iter().find_map(|r| {
                r.body["alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["source_id"] == host.as_str()))
                    .then_some(r.at)
            });
            if let Some(at) = hit {
                break at;
            }
            assert!(Instant::now() < deadline, "no webhook for {host}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        stored.push(a.as_secs_f64() * 1000.0);
        updated.push(u.as_secs_f64() * 1000.0);
        #[allow(clippy::cast_precision_loss)]
        notified.push((hook_at - sent_ms) as f64);
    }
    println!("\n| event → | rounds | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    row("alert stored", rounds, &mut stored);
    row("health:update on the WebSocket", rounds, &mut updated);
    row("webhook received (group_wait_s 0)", rounds, &mut notified);
    let _ = app.stop().await;
}
