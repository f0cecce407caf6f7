//! Live updates end to end: real WebSocket clients (tokio-tungstenite) on the local stack's
//! gateway, the collector's cycles, the broadcaster's real SDK client posting through the
//! gateway's `@connections` Management API.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use e2e_tests::ws;
use futures::StreamExt;
use serde_json::{json, Value};
use shared::config::Config;
use shared::ws::broadcaster::Broadcaster;
use tokio_tungstenite::tungstenite::Message;

const UPDATE_WAIT: Duration = Duration::from_secs(15);

/// The local stack with the collector on a one-second cycle.
async fn live_app() -> (local_stack::Running, tempfile::TempDir) {
    e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        ..Config::default()
    })
    .await
}

async fn ingest(app: &local_stack::Running, key: &str, events: Value) {
    e2e_tests::ingest_events(app, key, events).await;
}

async fn get(app: &local_stack::Running, key: &str, path: &str) -> Value {
    e2e_tests::get_json(app, key, path).await
}

async fn connections(app: &local_stack::Running, tenant: &str) -> BTreeSet<String> {
    app.state
        .store
        .connections(tenant)
        .await
        .unwrap_or_else(|e| panic!("reading {tenant}'s stored connections: {e}"))
        .into_iter()
        .collect()
}

async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    e2e_tests::eventually(what, Duration::from_secs(10), check).await;
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|x| x[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// What the same fields read through the REST API say; the update must agree.
fn agent_view(agent: &Value) -> Value {
    json!([
        agent["agent_id"],
        agent["agent_name"],
        agent["status"],
        agent["current_operation"]
    ])
}

#[tokio::test]
async fn a_dashboard_receives_health_updates_that_match_the_api() {
    let (app, _dir) = live_app().await;
    let key = app.api_key.clone();
    ingest(
        &app,
        &key,
        json!([
            {"event_id": "1", "type": "execution.started", "agent_id": "sales", "agent_name": "Sales Assistant", "execution_id": "x1", "operation": "Processing leads"},
            {"event_id": "2", "type": "integration.call", "integration_id": "slack", "integration_name": "Slack", "ok": true, "latency_ms": 120},
            {"event_id": "3", "type": "host.sample", "host_id": "h1", "cpu_usage": 93.0, "memory_usage": 40.0},
        ]),
    )
    .await;
    let mut socket = ws::connect(&ws::url(app.addr, &key)).await;
    // The first cycle after connecting raises the CPU alert; wait for an update that has it.
    let mut data = Value::Null;
    let deadline = Instant::now() + UPDATE_WAIT;
    while data["alerts"].as_array().is_none_or(Vec::is_empty) {
        assert!(
            Instant::now() < deadline,
            "no update with the alert: {data}"
        );
        data = ws::next_update(&mut socket, UPDATE_WAIT).await.0;
    }
    assert!(
        data["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{data}"
    );

    let agents = get(&app, &key, "/api/health/agents").await;
    let views = |list: &Value| -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .map(agent_view)
            .collect()
    };
    assert_eq!(views(&data["agents"]), views(&agents));
    assert_eq!(data["agents"][0]["agent_name"], "Sales Assistant");

    let integrations = get(&app, &key, "/api/health/integrations").await;
    assert_eq!(ids(&data["integrations"], "integration_id"), vec!["slack"]);
    assert_eq!(data["integrations"][0]["status"], integrations[0]["status"]);
    assert_eq!(
        data["integrations"][0]["latency_ms"],
        integrations[0]["latency_ms"]
    );

    let alerts = get(&app, &key, "/api/health/alerts").await;
    assert_eq!(data["alerts"], alerts, "alerts differ");
    assert_eq!(data["alerts"][0]["message"], "High CPU usage: 93%");

    let system = get(&app, &key, "/api/health/system").await;
    for field in [
        "total_agents",
        "active_agents",
        "total_integrations",
        "alerts",
        "cpu_usage",
    ] {
        assert_eq!(data["system"][field], system[field], "system.{field}");
    }
    assert_eq!(ids(&data["system"]["hosts"], "host_id"), vec!["h1"]);

    // Updates keep coming, one per cycle.
    let (next, _) = ws::next_update(&mut socket, UPDATE_WAIT).await;
    assert!(
        next["timestamp"].as_str() > data["timestamp"].as_str(),
        "{next}"
    );
}

#[tokio::test]
async fn a_bad_key_is_refused_before_anything_is_stored() {
    let (app, _dir) = live_app().await;
    let (status, body) = ws::refusal(&ws::url(app.addr, "ahm_not_a_key")).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["error"]["message"], "the API key is not valid",
        "{body}"
    );
    let (status, body) = ws::refusal(&format!("ws://{}/ws", app.addr)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("?token="),
        "{body}"
    );
    let ingest_only = e2e_tests::new_key(&app.state.store, "local", &["ingest"], "agent").await;
    let (status, body) = ws::refusal(&ws::url(app.addr, &ingest_only)).await;
    assert_eq!(status, 403, "{body}");
    assert!(connections(&app, "local").await.is_empty());
    assert!(app.gateway.is_empty());

    // A plain HTTP request to the socket's URL is told what the URL is for.
    let res = reqwest::get(format!("{}/ws?token={}", app.url(), app.api_key))
        .await
        .expect("sending a plain HTTP request to /ws");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "websocket_required", "{body}");
}

#[tokio::test]
async fn a_tenant_never_receives_another_tenants_data() {
    let (app, _dir) = live_app().await;
    let beta = e2e_tests::tenant_key(&app, "beta", "ops").await;
    let started = |agent: &str| json!([{"event_id": agent, "type": "execution.started", "agent_id": agent, "execution_id": "x", "operation": "Working"}]);
    ingest(&app, &app.api_key, started("local-bot")).await;
    ingest(&app, &beta, started("beta-bot")).await;
    let mut local = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let mut other = ws::connect(&ws::url(app.addr, &beta)).await;
    for _ in 0..3 {
        let (a, _) = ws::next_update(&mut local, UPDATE_WAIT).await;
        let (b, _) = ws::next_update(&mut other, UPDATE_WAIT).await;
        assert_eq!(ids(&a["agents"], "agent_id"), vec!["local-bot"], "{a}");
        assert_eq!(ids(&b["agents"], "agent_id"), vec!["beta-bot"], "{b}");
        assert_eq!(a["system"]["total_agents"], 1);
        assert_eq!(b["system"]["total_agents"], 1);
    }
}

#[tokio::test]
async fn closed_clients_are_forgotten_and_vanished_ones_removed_after_the_next_broadcast() {
    let (app, _dir) = live_app().await;
    // A client that closes properly is forgotten at once ($disconnect).
    let mut leaving = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    eventually("the connection is stored", async || {
        connections(&app, "local").await.len() == 1
    })
    .await;
    leaving
        .close(None)
        .await
        .expect("closing the leaving client");
    eventually("the closed connection is forgotten", async || {
        connections(&app, "local").await.is_empty()
    })
    .await;

    // One whose $disconnect never arrived: stored, but the gateway no longer has it.
    let ghost = "Gh0stConnection=";
    app.state
        .store
        .add_connection("local", ghost, "ops", 0)
        .await
        .expect("storing the ghost connection");
    let mut staying = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    assert_eq!(connections(&app, "local").await.len(), 2);
    ws::next_update(&mut staying, UPDATE_WAIT).await;
    eventually(
        "the broadcast's 410 removes the vanished connection",
        async || !connections(&app, "local").await.contains(ghost),
    )
    .await;
    assert_eq!(connections(&app, "local").await.len(), 1);
    // The live one still receives updates.
    ws::next_update(&mut staying, UPDATE_WAIT).await;
}

/// A client that closes cleanly gets the server's close frame back (a clean close, not the
/// abnormal 1006 of a dropped TCP connection).
#[tokio::test]
async fn a_clean_close_is_answered_with_a_close_frame() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    socket
        .close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
            reason: "bye".into(),
        }))
        .await
        .expect("sending a close frame");
    let frame = ws::close_frame(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(u16::from(frame.code), 1000, "{frame:?}");
}

/// The Management API answers the real SDK client with and without a stage prefix, like
/// API Gateway's.
#[tokio::test]
async fn the_management_api_posts_describes_and_deletes_connections() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let id = connections(&app, "local")
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no connection stored"));
    let plain = Broadcaster::client_for_endpoint(&app.url());
    let staged = Broadcaster::client_for_endpoint(&format!("{}/prod", app.url()));

    for (name, client) in [("no stage", &plain), ("stage prod", &staged)] {
        let described = client
            .get_connection()
            .connection_id(&id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("describing the connection: {}", aws_sdk_error(&e)));
        assert!(described.connected_at().is_some());
        assert_eq!(
            described.identity().and_then(|i| i.source_ip()),
            Some("127.0.0.1")
        );
        let text = format!("hello with {name}");
        client
            .post_to_connection()
            .connection_id(&id)
            .data(text.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("posting to the connection: {}", aws_sdk_error(&e)));
        let received = tokio::time::timeout(UPDATE_WAIT, socket.next()).await;
        match received {
            Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), text),
            other => panic!("expected the posted text, got {other:?}"),
        }
    }
    let unknown = refused_post(&staged, "NoSuchConnection=", b"x".to_vec()).await;
    assert!(unknown.is_gone_exception(), "{}", aws_sdk_error(&unknown));
    let too_large = refused_post(&plain, &id, vec![b'x'; 200 * 1024]).await;
    assert!(
        too_large.is_payload_too_large_exception(),
        "{}",
        aws_sdk_error(&too_large)
    );

    staged
        .delete_connection()
        .connection_id(&id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("deleting the connection: {}", aws_sdk_error(&e)));
    match tokio::time::timeout(UPDATE_WAIT, socket.next()).await {
        Ok(Some(Ok(Message::Close(_))) | None) => {}
        other => panic!("expected the socket to close, got {other:?}"),
    }
    eventually("the deleted connection is forgotten", async || {
        connections(&app, "local").await.is_empty()
    })
    .await;
    let gone = plain.get_connection().connection_id(&id).send().await.err();
    assert!(
        gone.as_ref()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_gone_exception()),
        "{gone:?}"
    );
}

fn aws_sdk_error(e: &impl std::error::Error) -> String {
    aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string()
}

/// Posts `data` to connection `id` through the Management API, where it must be refused:
/// answers the service's error; panics if the post was accepted or failed otherwise.
async fn refused_post(
    client: &aws_sdk_apigatewaymanagement::Client,
    id: &str,
    data: Vec<u8>,
) -> PostToConnectionError {
    let len = data.len();
    let error = client
        .post_to_connection()
        .connection_id(id)
        .data(data.into())
        .send()
        .await
        .err()
        .unwrap_or_else(|| panic!("a post of {len} bytes to {id} was accepted"));
    assert!(
        error.as_service_error().is_some(),
        "{}",
        aws_sdk_error(&error)
    );
    error.into_service_error()
}

#[tokio::test]
async fn a_large_update_arrives_in_parts_that_reassemble_to_the_api_data() {
    let (app, _dir) = live_app().await;
    let events: Vec<Value> = (0..600)
        .map(|i| {
            json!({"event_id": format!("e{i}"), "type": "execution.started",
                   "agent_id": format!("agent-{i:04}"),
                   "agent_name": format!("Lead qualification agent number {i}"),
                   "execution_id": "x", "operation": "Qualifying inbound leads"})
        })
        .collect();
    ingest(&app, &app.api_key, Value::Array(events)).await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    let (data, messages) = ws::next_update(&mut socket, UPDATE_WAIT).await;
    assert!(messages >= 2, "600 agents came in {messages} message(s)");
    let agents = get(&app, &app.api_key, "/api/health/agents").await;
    assert_eq!(ids(&data["agents"], "agent_id"), ids(&agents, "agent_id"));
    assert_eq!(data["system"]["total_agents"], 600);
}

#[tokio::test]
async fn a_thousand_connections_all_receive_the_update() {
    let mut config = Config {
        polling_interval_secs: 1,
        ..Config::default()
    };
    config.quotas.websockets_per_key = 1000;
    config.quotas.websockets_per_tenant = 1000;
    let (app, _dir) = e2e_tests::spawn_app_with(config).await;
    let url = ws::url(app.addr, &app.api_key);
    let mut sockets: Vec<ws::Socket> = futures::stream::iter(0..1000)
        .map(|_| ws::connect(&url))
        .buffer_unordered(50)
        .collect()
        .await;
    let all_connected = shared::time::format_rfc3339(chrono::Utc::now().timestamp_millis());
    assert_eq!(connections(&app, "local").await.len(), 1000);
    // Each socket reads until it has an update from a cycle after the last one connected,
    // for at most a minute in all.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let received = futures::future::join_all(sockets.iter_mut().map(|socket| {
        let after = all_connected.clone();
        async move {
            let fresh = async {
                loop {
                    let (data, _) = ws::next_update(socket, Duration::from_secs(60)).await;
                    if data["timestamp"]
                        .as_str()
                        .is_some_and(|t| t > after.as_str())
                    {
                        return;
                    }
                }
            };
            tokio::time::timeout_at(deadline, fresh).await.is_ok()
        }
    }))
    .await;
    let missed = received.iter().filter(|r| !**r).count();
    assert_eq!(missed, 0, "{missed} of 1000 connections got no update");
}

/// The next close frame on `socket` (messages before it are skipped); panics after `wait`.
async fn close_frame<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
    wait: Duration,
) -> tokio_tungstenite::tungstenite::protocol::CloseFrame
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Close(None))) => panic!("closed without a code"),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("the socket failed instead of closing: {e}"),
                None => panic!("the socket ended without a close frame"),
            }
        }
    };
    tokio::time::timeout(wait, read)
        .await
        .unwrap_or_else(|_| panic!("no close frame within {wait:?}"))
}

#[tokio::test]
async fn a_client_message_over_the_limit_closes_the_socket_with_1009() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let mut socket = ws::connect(&ws::url(app.addr, &app.api_key)).await;
    futures::SinkExt::send(&mut socket, Message::text("x".repeat(48 * 1024)))
        .await
        .unwrap_or_else(|e| panic!("sending a 48 KiB message: {e}"));
    let frame = close_frame(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(u16::from(frame.code), 1009, "{frame:?}");
    assert!(frame.reason.contains("32768 bytes"), "{frame:?}");
    eventually("the closed connection is forgotten", async || {
        connections(&app, "local").await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1013() {
    let (app, _dir) = e2e_tests::spawn_app_limited(
        Config {
            polling_enabled: false,
            ..Config::default()
        },
        local_stack::Limits {
            ws_send_queue_bytes: 512 * 1024,
            ..local_stack::Limits::default()
        },
    )
    .await;
    // A small receive window, so the kernel holds little for the client that never reads.
    let tcp = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("a socket: {e}"));
    tcp.set_recv_buffer_size(4096)
        .unwrap_or_else(|e| panic!("setting the receive buffer: {e}"));
    let stream = tcp
        .connect(app.addr)
        .await
        .unwrap_or_else(|e| panic!("connecting: {e}"));
    let (mut socket, _) = tokio_tungstenite::client_async(ws::url(app.addr, &app.api_key), stream)
        .await
        .unwrap_or_else(|e| panic!("the WebSocket handshake: {e}"));
    let id = connections(&app, "local")
        .await
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no connection stored"));
    // Post 100 KB messages, as the broadcaster does, until the gateway gives up on the
    // client (410) rather than keep queueing for it.
    let client = reqwest::Client::new();
    let message = "u".repeat(100_000);
    let mut gone_after = None;
    for n in 1..=1000 {
        let status = client
            .post(format!(
                "{}/@connections/{}",
                app.url(),
                id.replace('=', "%3D")
            ))
            .body(message.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("posting message {n}: {e}"))
            .status();
        if status == 410 {
            gone_after = Some(n);
            break;
        }
        assert_eq!(status, 200, "posting message {n}");
    }
    let gone_after = gone_after.unwrap_or_else(|| {
        panic!("1000 messages (100 MB) were queued for a client that reads none")
    });
    assert!(gone_after > 5, "closed after only {gone_after} messages");
    // Reading now, the client gets what was already on its way, then the close frame.
    let frame = close_frame(&mut socket, Duration::from_secs(30)).await;
    assert_eq!(u16::from(frame.code), 1013, "{frame:?}");
    assert_eq!(
        frame.reason.as_str(),
        local_stack::gateway::SLOW_CONSUMER_REASON
    );
    eventually("the slow client is forgotten", async || {
        connections(&app, "local").await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn connections_past_the_key_or_tenant_quota_are_refused_naming_the_quota() {
    let mut config = Config {
        polling_enabled: false,
        ..Config::default()
    };
    config.quotas.websockets_per_key = 2;
    config.quotas.websockets_per_tenant = 3;
    let (app, _dir) = e2e_tests::spawn_app_with(config).await;
    let other_key = e2e_tests::new_key(&app.state.store, "local", &["read"], "wall screen").await;
    let url = ws::url(app.addr, &app.api_key);
    let mut first = ws::connect(&url).await;
    let _second = ws::connect(&url).await;
    let (status, body) = ws::refusal(&url).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    assert_eq!(body["error"]["quota"], "websockets_per_key", "{body}");
    assert_eq!(body["error"]["limit"], 2, "{body}");
    // Another key of the tenant has room until the tenant's quota.
    let other = ws::url(app.addr, &other_key);
    let _third = ws::connect(&other).await;
    let (status, body) = ws::refusal(&other).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["quota"], "websockets_per_tenant", "{body}");
    assert_eq!(body["error"]["limit"], 3, "{body}");
    // Closing one frees its place.
    first
        .close(None)
        .await
        .unwrap_or_else(|e| panic!("closing the first socket: {e}"));
    eventually("the closed connection is forgotten", async || {
        connections(&app, "local").await.len() == 2
    })
    .await;
    let _again = ws::connect(&url).await;
}

/// The ids of a delta's `data.<list>`.
fn delta_ids(message: &Value, list: &str, field: &str) -> Vec<String> {
    ids(&message["data"][list], field)
}

#[tokio::test]
async fn delta_clients_receive_only_what_changed_numbered_and_full_clients_the_whole_update() {
    let (app, _dir) = live_app().await;
    let key = app.api_key.clone();
    ingest(
        &app,
        &key,
        json!([
            {"event_id": "1", "type": "execution.started", "agent_id": "a1", "execution_id": "x1", "operation": "Sync"},
            {"event_id": "2", "type": "execution.started", "agent_id": "a2", "execution_id": "x2", "operation": "Sync"},
            {"event_id": "3", "type": "host.sample", "host_id": "h1", "cpu_usage": 20.0, "memory_usage": 40.0},
        ]),
    )
    .await;
    let url = ws::url(app.addr, &key);
    let mut delta = ws::connect(&format!("{url}&mode=delta")).await;
    let mut overview = ws::connect(&format!("{url}&mode=delta&scope=overview")).await;
    let mut full = ws::connect(&url).await;

    // The first delta this client gets may be the tenant's first (everything) or a later
    // one; from then on the numbers follow each other within one epoch, and a cycle in
    // which nothing changed is a heartbeat with no entities.
    let first = ws::next_of(&mut delta, "health:delta", UPDATE_WAIT).await;
    let epoch = first["epoch"].as_str().unwrap_or_default().to_owned();
    let mut seq = first["seq"].as_u64().expect("a delta has a seq");
    let mut quiet = false;
    for _ in 0..5 {
        let next = ws::next_of(&mut delta, "health:delta", UPDATE_WAIT).await;
        assert_eq!(next["epoch"], epoch.as_str(), "{next}");
        assert_eq!(next["seq"].as_u64(), Some(seq + 1), "{next}");
        seq += 1;
        assert!(next["data"]["timestamp"].is_string() && next["data"]["system"].is_object());
        if delta_ids(&next, "agents", "agent_id").is_empty() {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "no heartbeat in five cycles with nothing ingested");

    // One agent changes: the next deltas carry it, whole, and not the other.
    ingest(
        &app,
        &key,
        json!([{"event_id": "4", "type": "execution.finished", "agent_id": "a2", "execution_id": "x2", "outcome": "completed", "duration_ms": 900}]),
    )
    .await;
    let changed = loop {
        let next = ws::next_of(&mut delta, "health:delta", UPDATE_WAIT).await;
        assert_eq!(next["seq"].as_u64(), Some(seq + 1), "{next}");
        seq += 1;
        let agents = delta_ids(&next, "agents", "agent_id");
        if !agents.is_empty() {
            assert_eq!(agents, ["a2"], "{next}");
            break next;
        }
    };
    let rest = get(&app, &key, "/api/health/agent/a2").await;
    assert_eq!(
        changed["data"]["agents"][0]["operations_completed"],
        rest["operations_completed"]
    );
    assert_eq!(changed["data"]["agents"][0]["status"], rest["status"]);

    // The overview scope carries no entities; a full client still gets whole updates.
    let m = ws::next_of(&mut overview, "health:delta", UPDATE_WAIT).await;
    assert!(
        m["data"]["agents"] == json!([]) && m["data"]["alerts"].is_object(),
        "{m}"
    );
    let (whole, _) = ws::next_update(&mut full, UPDATE_WAIT).await;
    assert_eq!(ids(&whole["agents"], "agent_id"), ["a1", "a2"]);

    // A feed that does not exist is refused, saying what is wrong.
    let (status, body) = ws::refusal(&format!("{url}&mode=deltas")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_feed")),
        "{body}"
    );
}

/// The agents each of the tenant's connections watches, as stored.
async fn watches(app: &local_stack::Running) -> Vec<Option<Vec<String>>> {
    app.state
        .store
        .connection_feeds("local")
        .await
        .unwrap_or_else(|e| panic!("reading the stored connections: {e}"))
        .into_iter()
        .map(|(_, l)| l.watch.map(|w| w.agents))
        .collect()
}

/// Sends a client message.
async fn say<S>(socket: &mut S, text: String)
where
    S: futures::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    futures::SinkExt::send(socket, Message::text(text))
        .await
        .unwrap_or_else(|e| panic!("sending a client message: {e}"));
}

/// A dashboard that says what it shows (`{"action": "watch", ...}`) receives the changes of
/// those entities only, and of the others again once it watches everything; a bad watch
/// changes nothing.
#[tokio::test]
async fn a_watching_client_receives_only_the_entities_it_shows() {
    let (app, _dir) = live_app().await;
    let key = app.api_key.clone();
    let started = |n: &str, agent: &str| json!({"event_id": n, "type": "execution.started", "agent_id": agent, "execution_id": format!("x{n}"), "operation": "Sync"});
    ingest(&app, &key, json!([started("1", "a1"), started("2", "a2")])).await;
    let mut socket = ws::connect(&format!("{}&mode=delta", ws::url(app.addr, &key))).await;
    say(
        &mut socket,
        json!({"action": "watch", "agents": ["a2"], "integrations": []}).to_string(),
    )
    .await;
    // Stored once the gateway ran the route's code.
    eventually("the watch is stored", async || {
        watches(&app).await == [Some(vec!["a2".to_owned()])]
    })
    .await;
    // Refused watches leave it as it is.
    for bad in [
        json!({"action": "watch", "agents": "a1"}).to_string(),
        json!({"action": "watch", "pages": []}).to_string(),
        json!({"action": "subscribe"}).to_string(),
        "not json".to_owned(),
    ] {
        say(&mut socket, bad).await;
    }

    // Both agents change; only a2 reaches this client, in a numbered delta as before.
    ingest(&app, &key, json!([started("3", "a1"), started("4", "a2")])).await;
    let carried = loop {
        let next = ws::next_of(&mut socket, "health:delta", UPDATE_WAIT).await;
        let agents = delta_ids(&next, "agents", "agent_id");
        if !agents.is_empty() {
            break agents;
        }
    };
    assert_eq!(carried, ["a2"], "a1 changed too, but is not watched");
    assert_eq!(
        watches(&app).await,
        [Some(vec!["a2".to_owned()])],
        "the refused messages changed nothing"
    );

    // Watching everything again: a1's next change arrives.
    say(
        &mut socket,
        json!({"action": "watch", "all": true}).to_string(),
    )
    .await;
    eventually("the watch is lifted", async || {
        watches(&app).await == [None]
    })
    .await;
    ingest(&app, &key, json!([started("5", "a1")])).await;
    loop {
        let next = ws::next_of(&mut socket, "health:delta", UPDATE_WAIT).await;
        if delta_ids(&next, "agents", "agent_id").contains(&"a1".to_owned()) {
            break;
        }
    }
}

/// Between cycles (here there are none), an event that raises an alert reaches delta
/// clients at once as `health:alerts`, the active alerts whole and without a number.
#[tokio::test]
async fn an_alert_an_event_raises_reaches_delta_clients_at_once() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let key = app.api_key.clone();
    let url = ws::url(app.addr, &key);
    let mut delta = ws::connect(&format!("{url}&mode=delta")).await;
    ingest(
        &app,
        &key,
        json!([{"event_id": "5", "type": "host.sample", "host_id": "h1", "cpu_usage": 97.0, "memory_usage": 40.0}]),
    )
    .await;
    let alerts = ws::next_of(&mut delta, "health:alerts", Duration::from_secs(2)).await;
    assert_eq!(
        alerts["data"]["alerts"][0]["message"], "High CPU usage: 97%",
        "{alerts}"
    );
    assert!(alerts.get("seq").is_none(), "{alerts}");
    assert_eq!(
        alerts["data"]["system"]["alerts"]["critical"], 1,
        "{alerts}"
    );
}
