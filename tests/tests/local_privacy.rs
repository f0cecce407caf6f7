//! What the local stack lets one tenant see of others, and who on the machine can read its
//! data: `/metrics` shows a tenant its own share of the stack's figures; the data directory
//! and the database (which holds webhook secrets, PagerDuty keys and the acknowledge-link
//! key) are private to the user running it.

use std::time::Duration;

use e2e_tests::{ws, Sink};
use serde_json::json;
use shared::config::Config;

/// The value of an unlabelled sample `name` in exposition `text`; panics if absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

async fn scrape(app: &local_stack::Running, key: &str) -> String {
    e2e_tests::get_ok(app, key, "/metrics")
        .await
        .text()
        .await
        .unwrap_or_else(|e| panic!("reading /metrics: {e}"))
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_stack_figures_on_metrics() {
    let sink = Sink::start().await;
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_enabled: false,
        probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
        ..Config::default()
    })
    .await;
    let beta =
        e2e_tests::new_key(&app.state.store, "beta", &local_stack::all_scopes(), "ops").await;
    // Tenant local: two dashboards, and an alert delivered to its webhook.
    let _one = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let _two = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let api = e2e_tests::Api::of(&app);
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/api/health/channels/hook",
            Some(json!({"type": "webhook", "url": sink.url("/hook"), "secret": "s3cret-s3cret"})),
        )
        .await;
    assert_eq!(status, 200, "creating the channel: {body}");
    let (status, body) = api
        .call(
            reqwest::Method::PUT,
            "/api/health/notification-rules/all",
            Some(json!({"channels": ["hook"], "group_wait_s": 0})),
        )
        .await;
    assert_eq!(status, 200, "creating the rule: {body}");
    e2e_tests::ingest_events(
        &app,
        &app.api_key,
        json!([{"event_id": "hot", "type": "host.sample", "host_id": "web-1",
                "cpu_usage": 97.0, "memory_usage": 40.0}]),
    )
    .await;
    e2e_tests::eventually(
        "the webhook receives the alert",
        Duration::from_secs(20),
        async || !sink.received().is_empty(),
    )
    .await;
    e2e_tests::eventually(
        "local's figures count the delivery and both dashboards",
        Duration::from_secs(10),
        async || {
            let text = scrape(&app, &app.api_key).await;
            sample(&text, "agenthealth_stack_notifications_delivered_total") >= 1.0
                && sample(&text, "agenthealth_stack_websocket_connections") == 2.0
        },
    )
    .await;

    // Tenant beta has one dashboard and no notifications: it sees exactly that.
    let _beta_socket = ws::connect(&ws::url(app.addr, &beta)).await;
    e2e_tests::eventually(
        "beta's dashboard is counted",
        Duration::from_secs(10),
        async || {
            sample(
                &scrape(&app, &beta).await,
                "agenthealth_stack_websocket_connections",
            ) == 1.0
        },
    )
    .await;
    let text = scrape(&app, &beta).await;
    assert_eq!(
        sample(&text, "agenthealth_stack_notifications_delivered_total"),
        0.0,
        "beta sees local's notifications:\n{text}"
    );
    assert_eq!(
        sample(
            &text,
            "agenthealth_stack_notification_attempts_failed_total"
        ),
        0.0
    );
    let text = scrape(&app, &app.api_key).await;
    assert_eq!(
        sample(&text, "agenthealth_stack_websocket_connections"),
        2.0,
        "local sees beta's dashboard:\n{text}"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_and_database_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;
    let parent = tempfile::tempdir().unwrap_or_else(|e| panic!("a temp dir: {e}"));
    let data_dir = parent.path().join("data");
    let running = e2e_tests::start(e2e_tests::stack_options(&data_dir)).await;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("reading the mode of {}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        mode(&data_dir),
        0o700,
        "the data directory's mode is {:o}",
        mode(&data_dir)
    );
    for file in [local_stack::DB_FILE, local_stack::KEY_FILE] {
        let path = data_dir.join(file);
        assert_eq!(mode(&path), 0o600, "{file}'s mode is {:o}", mode(&path));
    }
    running
        .stop()
        .await
        .unwrap_or_else(|e| panic!("stopping the stack: {e}"));

    // A database an older version left readable by everyone is narrowed when opened.
    let old = parent.path().join("old");
    std::fs::create_dir(&old).unwrap_or_else(|e| panic!("creating {}: {e}", old.display()));
    let db = old.join(local_stack::DB_FILE);
    std::fs::write(&db, b"").unwrap_or_else(|e| panic!("creating {}: {e}", db.display()));
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("widening the database's mode: {e}"));
    let store = local_stack::open_store(&old).unwrap_or_else(|e| panic!("opening the store: {e}"));
    drop(store);
    assert_eq!(mode(&db), 0o600, "after opening: {:o}", mode(&db));
}
