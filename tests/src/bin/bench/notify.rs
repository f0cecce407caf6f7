//! Notification benchmarks: the time from the collector cycle that raises an alert to a
//! webhook receiver getting it (the local stack on the real clock, 1 s cycles), and 1,000
//! alerts firing at once on one tenant (messages sent, time to deliver them all).

use std::time::Instant;

use serde_json::json;
use shared::config::Config;
use shared::domain::alerts::{AlertRecord, Severity};
use shared::domain::notify::{ChannelRecord, Destination, Matcher, RuleRecord};
use shared::notify::Notifier;
use shared::store::Store;
use shared::time::{Clock, SystemClock};
use shared::AppState;

use crate::percentile;

fn channel_and_rule(url: &str) -> (ChannelRecord, RuleRecord) {
    (
        ChannelRecord {
            channel_id: "hook".into(),
            name: "hook".into(),
            enabled: true,
            destination: Destination::Webhook {
                url: url.to_owned(),
                secret: "s".into(),
            },
            created_at: 0,
            updated_at: 0,
        },
        RuleRecord {
            rule_id: "all".into(),
            channels: vec!["hook".into()],
            matcher: Matcher::default(),
            group_wait_s: 0,
            group_interval_s: 0,
            repeat_interval_s: 3600,
            send_resolved: false,
            weekly_report: false,
            updated_at: 0,
        },
    )
}

pub(crate) async fn configure(store: &Store, tenant: &str, url: &str) {
    let (channel, rule) = channel_and_rule(url);
    store
        .put_channel(tenant, "hook", |_| channel.clone())
        .await
        .expect("putting the webhook channel");
    store
        .put_rule(tenant, &rule)
        .await
        .expect("putting the rule");
}

/// Raise to receipt on the local stack: each round a new host goes over the CPU threshold;
/// the latency is the webhook's arrival minus the alert's `raised_at` (the cycle's time).
async fn raise_to_webhook(rounds: usize) {
    let sink = e2e_tests::Sink::start().await;
    let url = sink.url("/hook");
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
        ..Config::default()
    })
    .await;
    configure(&app.state.store, "local", &url).await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        let host = format!("bench-host-{round:03}");
        e2e_tests::ingest_events(
            &app,
            &app.api_key,
            json!([{"event_id": format!("n{round}"), "type": "host.sample", "host_id": host,
                    "cpu_usage": 97.0, "memory_usage": 10.0}]),
        )
        .await;
        let deadline = Instant::now() + std::time::Duration::from_secs(20);
        let arrived = loop {
            let hit = sink
                .received()
                .iter()
                .find(|r| {
                    r.body["alerts"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["source_id"] == host.as_str()))
                })
                .map(|r| r.at);
            if let Some(at) = hit {
                break at;
            }
            assert!(Instant::now() < deadline, "no webhook for {host}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        };
        let raised = app
            .state
            .store
            .active_alerts("local")
            .await
            .expect("reading the active alerts")
            .into_iter()
            .find(|a| a.source_id == host)
            .map(|a| a.raised_at)
            .unwrap_or(arrived);
        #[allow(clippy::cast_precision_loss)]
        samples.push((arrived - raised) as f64);
    }
    samples.sort_by(f64::total_cmp);
    println!("\n| path | rounds | raise → webhook p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| local stack, collector every 1 s, group_wait_s 0 | {rounds} | {:.0} | {:.0} | {:.0} |",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or(0.0)
    );
    let _ = app.stop().await;
}

/// 1,000 alerts firing at once on one tenant: one notifier pass decides and delivers.
async fn thousand_at_once(label: &str, store: Store) {
    let sink = e2e_tests::Sink::start().await;
    let url = sink.url("/hook");
    let state = AppState::new(
        store,
        Config {
            probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
            public_url: Some("https://health.example.com".into()),
            ..Config::default()
        },
    );
    e2e_tests::new_key(&state.store, "bench", &["admin"], "ops").await;
    configure(&state.store, "bench", &url).await;
    let now = SystemClock.now_ms();
    for i in 0..1000 {
        let alert = AlertRecord {
            severity: if i % 10 == 0 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            message: format!("High CPU usage: {}%", 85 + i % 15),
            source_id: format!("host-{i:04}"),
            ..e2e_tests::seed::alert(&format!("alert_cpu_host-{i:04}_1"), now)
        };
        e2e_tests::seed::save_alert(&state.store, "bench", &alert).await;
    }
    let notifier = Notifier::new(&state).expect("building the notifier");
    let started = Instant::now();
    let report = notifier
        .pass_tenant("bench", now)
        .await
        .expect("the notifier pass");
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let received = sink.received();
    let alerts: usize = received
        .iter()
        .map(|r| r.body["alerts"].as_array().map_or(0, Vec::len))
        .sum();
    let largest = received
        .iter()
        .map(|r| r.body.to_string().len())
        .max()
        .unwrap_or(0);
    println!(
        "| {label} | 1000 | {} | {} | {alerts} | {largest} | {elapsed:.0} |",
        report.decided,
        received.len()
    );
}

/// Prints the notification figures.
pub async fn notify_benchmarks() {
    raise_to_webhook(30).await;
    println!("\n| store | alerts firing | messages decided | webhooks received | alerts in them | largest body bytes | decide + deliver all ms |");
    println!("|---|---|---|---|---|---|---|");
    let (store, _dir) = e2e_tests::embedded_store();
    thousand_at_once("embedded (redb)", store).await;
    if std::env::var(e2e_tests::DYNAMODB_ENDPOINT_VAR).is_ok() {
        thousand_at_once("DynamoDB API (moto)", e2e_tests::dynamo_store().await).await;
    }
}
