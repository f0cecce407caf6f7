//! Tenants that cannot harm each other, tried as a hostile tenant would: a small OTLP
//! request that would decode into millions of objects, creations past every quota, and a
//! tenant whose probes and webhooks go to an address that never answers while another
//! tenant watches its dashboard, raises an alert and waits for its webhook.

use std::time::{Duration, Instant};

use e2e_tests::otlp_bombs::{self, gzip};
use e2e_tests::{spawn_app, spawn_app_with, ws, Api, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::config::{Config, Quotas};

/// Posts an OTLP body with gzip; answers the status, Content-Type and body.
async fn post_otlp(api: &Api, content_type: &str, body: Vec<u8>) -> (StatusCode, String, Vec<u8>) {
    let response = api
        .request(Method::POST, "/v1/traces")
        .header("content-type", content_type)
        .header("content-encoding", "gzip")
        .body(body)
        .answer()
        .await;
    let status = response.status();
    let ct = e2e_tests::content_type(&response);
    let bytes = response
        .bytes()
        .await
        .unwrap_or_else(|e| panic!("reading the OTLP answer: {e}"));
    (status, ct, bytes.to_vec())
}

#[tokio::test]
async fn an_otlp_request_of_millions_of_empty_spans_is_refused_with_413_before_decoding() {
    use prost::Message as _;
    let (app, _dir) = spawn_app().await;
    let api = Api::of(&app);

    // One ResourceSpans, one ScopeSpans, 16 million empty spans: 32 MB decompressed.
    let bomb = otlp_bombs::protobuf(16_000_000);
    assert!(
        bomb.len() < 64 * 1024,
        "the bomb is small: {} bytes",
        bomb.len()
    );
    let (status, content_type, body) = post_otlp(&api, "application/x-protobuf", bomb).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "16 M spans in protobuf"
    );
    assert_eq!(content_type, "application/x-protobuf");
    // google.rpc.Status: code (1) INVALID_ARGUMENT, message (2).
    #[derive(prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let rpc = RpcStatus::decode(&body[..])
        .unwrap_or_else(|e| panic!("the 413's body is not a google.rpc.Status: {e}"));
    assert_eq!(rpc.code, 3);
    assert!(
        rpc.message.contains("more than 10000 spans"),
        "the message names the limit: {}",
        rpc.message
    );

    // Its JSON twin: ten million `{}` spans.
    let (status, content_type, body) =
        post_otlp(&api, "application/json", otlp_bombs::json(10_000_000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "10 M spans in JSON");
    assert_eq!(content_type, "application/json");
    let rpc: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("the 413's body is not JSON: {e}"));
    assert_eq!(rpc["code"], 3);
    assert!(
        rpc["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than 10000 spans")),
        "{rpc}"
    );

    // A request within the limits is still taken.
    let ok = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{}]}]}]}"#;
    let (status, _, _) = post_otlp(&api, "application/json", gzip(ok)).await;
    assert_eq!(status, StatusCode::OK, "a small export after the bombs");
}

/// Expects a 429 naming `quota` with `limit`.
fn assert_quota(what: &str, (status, body): &(StatusCode, Value), quota: &str, limit: u64) {
    assert_eq!(
        *status,
        StatusCode::TOO_MANY_REQUESTS,
        "{what} past the {quota} quota: {body}"
    );
    assert_eq!(body["error"]["code"], "quota_exceeded", "{what}: {body}");
    assert_eq!(body["error"]["quota"], quota, "{what}: {body}");
    assert_eq!(body["error"]["limit"], limit, "{what}: {body}");
}

fn ids(list: &Value, field: &str) -> Vec<String> {
    list.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_quota_refuses_the_next_creation_with_429_naming_it_and_changes_nothing() {
    let limit = 2u64;
    let quotas = Quotas {
        entities: limit,
        probed_integrations: 1,
        channels: limit,
        notification_rules: limit,
        silences: limit,
        slos: limit,
        badges: limit,
        keys: limit,
        concurrent_exports: 1,
        ..Quotas::default()
    };
    let (app, _dir) = spawn_app_with(Config {
        polling_enabled: false,
        probe_allowed_addresses: vec![std::net::IpAddr::from([127, 0, 0, 1]).into()],
        quotas,
        ..Config::default()
    })
    .await;
    let api = Api::of(&app);

    // Entities: two agents by PUT, a third by PUT or by its first event is refused; events
    // of the existing ones still count, and the listing is unchanged.
    for id in ["a1", "a2"] {
        let r = api
            .put(
                &format!("/api/health/agents/{id}"),
                json!({"agent_name": id}),
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "creating agent {id}: {}", r.1);
    }
    let third = api
        .put("/api/health/agents/a3", json!({"agent_name": "a3"}))
        .await;
    assert_quota("a third agent by PUT", &third, "entities", limit);
    let event = |id: &str, agent: &str| json!({"event_id": id, "type": "execution.started", "agent_id": agent, "execution_id": id, "operation": "work"});
    let by_event = api
        .post("/api/health/events", json!({"events": [event("e1", "a3")]}))
        .await;
    assert_quota("a third agent by event", &by_event, "entities", limit);
    let existing = api
        .post("/api/health/events", json!({"events": [event("e2", "a1")]}))
        .await;
    assert_eq!(
        existing.0,
        StatusCode::ACCEPTED,
        "an existing agent's event: {}",
        existing.1
    );
    let (_, agents) = api.get("/api/health/agents").await;
    assert_eq!(
        ids(&agents, "agent_id"),
        ["a1", "a2"],
        "nothing else was stored"
    );
    // Each kind counts on its own: hosts are not agents.
    let host = json!({"events": [{"event_id": "h1", "type": "host.sample", "host_id": "web-1", "cpu_usage": 10, "memory_usage": 10}]});
    let r = api.post("/api/health/events", host).await;
    assert_eq!(r.0, StatusCode::ACCEPTED, "a first host: {}", r.1);

    // Probed integrations: one may be probed; a second probe is refused, a plain
    // integration is not.
    let probe = json!({"integration_name": "p", "probe": {"url": "http://127.0.0.1:9/health"}});
    let r = api.put("/api/health/integrations/i1", probe.clone()).await;
    assert_eq!(r.0, StatusCode::OK, "a first probed integration: {}", r.1);
    let r = api
        .put(
            "/api/health/integrations/i2",
            json!({"integration_name": "plain"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "a plain integration: {}", r.1);
    let r = api.put("/api/health/integrations/i2", probe.clone()).await;
    assert_quota("a second probe", &r, "probed_integrations", 1);
    let r = api.put("/api/health/integrations/i1", probe).await;
    assert_eq!(
        r.0,
        StatusCode::OK,
        "the probed one may change its probe: {}",
        r.1
    );

    // Channels, rules, SLOs: replacing one is fine, a new one past the quota is not.
    let channel =
        json!({"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef"});
    let rule = json!({"channels": ["first"]});
    let slo = json!({"source_type": "agent", "source_id": "a1", "objective": "availability", "target": 0.99, "window_days": 7});
    for (what, kind, quota, body) in [
        ("channel", "channels", "channels", channel),
        ("rule", "notification-rules", "notification_rules", rule),
        ("SLO", "slos", "slos", slo),
    ] {
        let path = |id: &str| format!("/api/health/{kind}/{id}");
        for id in ["first", "second", "first"] {
            let r = api.put(&path(id), body.clone()).await;
            assert_eq!(r.0, StatusCode::OK, "{what} {id}: {}", r.1);
        }
        let r = api.put(&path("third"), body).await;
        assert_quota(&format!("a third {what}"), &r, quota, limit);
    }

    // Silences, badges and keys are created by POST.
    let silence = json!({"match": {"source_id": "a1"}, "starts_at": e2e_tests::ago(0), "ends_at": e2e_tests::ago(-3600)});
    let badge = json!({"source_type": "agent", "source_id": "a1"});
    for (what, body, quota) in [("silence", silence, "silences"), ("badge", badge, "badges")] {
        let path = format!("/api/health/{quota}");
        for n in 0..limit {
            let r = api.post(&path, body.clone()).await;
            assert_eq!(r.0, StatusCode::CREATED, "{what} {n}: {}", r.1);
        }
        let r = api.post(&path, body).await;
        assert_quota(&format!("a third {what}"), &r, quota, limit);
    }
    // The stack's own key is one of two.
    let key = json!({"name": "ci", "scopes": ["read"]});
    let r = api.post("/api/health/keys", key.clone()).await;
    assert_eq!(r.0, StatusCode::CREATED, "a second key: {}", r.1);
    let r = api.post("/api/health/keys", key).await;
    assert_quota("a third key", &r, "keys", limit);
    let (_, keys) = api.get("/api/health/keys").await;
    assert_eq!(
        keys.as_array().map(Vec::len),
        Some(2),
        "no key was added: {keys}"
    );

    // Concurrent exports: with the tenant's one place taken (an export streaming), the
    // next export is refused until it is given back.
    let now = chrono::Utc::now().timestamp_millis();
    let lease = app
        .state
        .store
        .acquire_lease("local", "exports", 1, 60_000, now)
        .await
        .unwrap_or_else(|e| panic!("taking the export place: {e}"))
        .unwrap_or_else(|| panic!("the export place is free at first"));
    let path = "/api/health/export?kind=alerts&format=ndjson";
    let r = api.call(Method::GET, path, None).await;
    assert_quota("a second export at once", &r, "concurrent_exports", 1);
    app.state
        .store
        .release_lease("local", "exports", &lease)
        .await
        .unwrap_or_else(|e| panic!("giving the export place back: {e}"));
    let (status, _) = api.call_text(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "an export once the place is free");
    let (status, _) = api.call_text(Method::GET, path, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a finished export gave its place back"
    );
}

#[tokio::test]
async fn a_probe_url_over_2048_characters_is_refused_and_nothing_is_stored() {
    let (app, _dir) = spawn_app().await;
    let api = Api::of(&app);
    let url = format!("https://api.example.com/{}", "x".repeat(2048));
    let r = api
        .call(
            Method::PUT,
            "/api/health/integrations/long",
            Some(json!({"probe": {"url": url}})),
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    assert!(
        r.1["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("probe.url") && m.contains("2048")),
        "{}",
        r.1
    );
    let (_, list) = api
        .call(Method::GET, "/api/health/integrations", None)
        .await;
    assert_eq!(list, json!([]), "nothing was stored");
}

/// A TCP listener that accepts connections and never answers.
async fn black_hole() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let (listener, addr) = e2e_tests::listener().await;
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

// Several workers, as the local stack's own runtime has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_probing_and_notifying_a_black_hole_does_not_slow_another_tenants_updates_alerts_or_messages(
) {
    let (app, _dir) = spawn_app_with(Config {
        polling_interval_secs: 1,
        probe_allowed_addresses: vec![std::net::IpAddr::from([127, 0, 0, 1]).into()],
        ..Config::default()
    })
    .await;
    let (hole, _task) = black_hole().await;
    let hostile_key = e2e_tests::tenant_key(&app, "hostile", "hostile").await;
    let hostile = Api::of(&app).with_key(&hostile_key);
    for n in 0..100 {
        let r = hostile
            .call(
                Method::PUT,
                &format!("/api/health/integrations/p{n}"),
                Some(
                    json!({"probe": {"url": format!("http://{hole}/p{n}"), "timeout_ms": 25_000}}),
                ),
            )
            .await;
        assert_eq!(
            r.0,
            StatusCode::OK,
            "registering black-hole probe {n}: {}",
            r.1
        );
    }
    // Its notifications go to the black hole too, and it keeps raising alerts, so its
    // notifier passes hang on sends that never finish.
    notify_critical_to(&hostile, &format!("http://{hole}/hook")).await;
    let hot_hosts: Vec<Value> = (0..20)
        .map(|n| json!({"event_id": format!("hot{n}"), "type": "host.sample", "host_id": format!("h{n}"), "cpu_usage": 99, "memory_usage": 40}))
        .collect();
    let r = hostile
        .call(
            Method::POST,
            "/api/health/events",
            Some(json!({ "events": hot_hosts })),
        )
        .await;
    assert_eq!(
        r.0,
        StatusCode::ACCEPTED,
        "raising the hostile tenant's alerts: {}",
        r.1
    );

    // The other tenant watches its dashboard for ten seconds.
    let api = Api::of(&app);
    let receiver = e2e_tests::Sink::start().await;
    notify_critical_to(&api, &receiver.url("/hook")).await;
    let mut socket = ws::connect(&ws::url(app.addr, &api.key)).await;
    let started = Instant::now();
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    while started.elapsed() < Duration::from_secs(10) {
        let _ = ws::next_update(&mut socket, Duration::from_secs(30)).await;
        gaps.push(last.elapsed());
        last = Instant::now();
    }
    let longest = gaps.iter().max().copied().unwrap_or_default();
    assert!(
        gaps.len() >= 4 && longest <= Duration::from_secs(3),
        "with a 1 s interval, updates at most 3 s apart while another tenant's 100 probes hang; got {} updates, gaps {gaps:?}",
        gaps.len()
    );

    // Its alerts still come with their events.
    let sent = Instant::now();
    let r = api
        .call(
            Method::POST,
            "/api/health/events",
            Some(json!({"events": [{"event_id": "hot", "type": "host.sample", "host_id": "web-1", "cpu_usage": 97, "memory_usage": 40}]})),
        )
        .await;
    assert_eq!(r.0, StatusCode::ACCEPTED, "{}", r.1);
    let raised = loop {
        let (update, _) = ws::next_update(&mut socket, Duration::from_secs(10)).await;
        let alerts = update["alerts"].as_array().cloned().unwrap_or_default();
        if alerts.iter().any(|a| a["source_id"] == "web-1") {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "no alert for web-1 in 10 s"
        );
    };
    assert!(
        raised <= Duration::from_secs(2),
        "the CPU alert reached the dashboard {raised:?} after its event"
    );

    // And its webhook hears of it, although the other tenant's sends hang.
    let notified = loop {
        let fired = receiver
            .received()
            .iter()
            .any(|r| r.body["status"] == "firing");
        if fired {
            break sent.elapsed();
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "no webhook for the CPU alert within 10 s while another tenant's sends hang"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The figures docs/benchmarks.md quotes (`--nocapture` shows them).
    println!(
        "fairness: {} updates, gaps {gaps:?}; alert on the dashboard {raised:?} and at the webhook {notified:?} after its event",
        gaps.len()
    );
    assert!(
        notified <= Duration::from_secs(3),
        "the CPU alert's webhook arrived {notified:?} after its event while another tenant's sends hang"
    );
}

/// Gives `api`'s tenant a webhook channel to `url` and a rule sending it critical alerts
/// at once.
async fn notify_critical_to(api: &Api, url: &str) {
    let r = api
        .call(
            Method::PUT,
            "/api/health/channels/hook",
            Some(
                json!({"type": "webhook", "url": url, "secret": "fairness-secret", "name": "Hook"}),
            ),
        )
        .await;
    assert_eq!(
        r.0,
        StatusCode::OK,
        "creating the webhook channel to {url}: {}",
        r.1
    );
    let r = api
        .call(
            Method::PUT,
            "/api/health/notification-rules/critical",
            Some(json!({"channels": ["hook"], "match": {"severity": ["critical"]}, "group_wait_s": 0})),
        )
        .await;
    assert_eq!(
        r.0,
        StatusCode::OK,
        "creating the rule for critical alerts: {}",
        r.1
    );
}
