//! Runtime proof: the Lambda binaries, run by cargo-lambda's runtime emulator (`cargo lambda
//! watch`) and backed by the DynamoDB-compatible server, answer real HTTP requests with the
//! contract's documents. Needs `cargo lambda` on PATH (the test command installs it).

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e_tests::{seed, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::domain::alerts::{AlertRecord, Severity};
use shared::store::Store;
use shared::time::format_rfc3339;

/// Kills the emulator and the functions it started (one process group) when dropped.
struct Emulator(Child);

impl Drop for Emulator {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

/// The one Lambda binary every function deploys.
const BINARY: &str = "health-lambda";

/// Starts `cargo lambda watch` serving the Lambda binary as `function` (`HEALTH_FUNCTION`,
/// as the template sets it). It runs from the binary's own directory: at the workspace
/// root, `cargo run --bin <binary>` only sees the default member (the local stack).
fn start_emulator(function: &str, table: &str, port: u16, env: &[(&str, &str)]) -> Emulator {
    let endpoint = e2e_tests::dynamodb_endpoint();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(format!(
        "{}/../functions/{BINARY}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .args([
        "lambda",
        "watch",
        "--ignore-changes",
        "-A",
        "127.0.0.1",
        "-P",
        &port.to_string(),
    ])
    .args(["--env-var", &format!("HEALTH_FUNCTION={function}")])
    .args(["--env-var", &format!("HEALTH_TABLE={table}")])
    .args([
        "--env-var",
        &format!("AWS_ENDPOINT_URL_DYNAMODB={endpoint}"),
    ])
    .args(["--env-var", "AWS_REGION=us-east-1"])
    .args(["--env-var", "AWS_ACCESS_KEY_ID=local"])
    .args(["--env-var", "AWS_SECRET_ACCESS_KEY=local"])
    .args(["--env-var", "RUST_LOG=warn"])
    .args(
        env.iter()
            .flat_map(|(k, v)| ["--env-var".to_owned(), format!("{k}={v}")]),
    )
    .stdin(Stdio::null())
    .process_group(0);
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!("cannot run `cargo lambda watch` (is cargo-lambda installed?): {e}")
    });
    let emulator = Emulator(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "cargo lambda watch did not listen on {port} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    emulator
}

async fn fixture(store: &Store, now: i64) {
    let at = |secs: i64| format_rfc3339(now - secs * 1000);
    let events = json!([
        {"event_id": "1", "type": "execution.started", "agent_id": "a1", "agent_name": "Sales Assistant", "execution_id": "x1", "operation": "Processing leads", "timestamp": at(600)},
        {"event_id": "2", "type": "execution.finished", "agent_id": "a1", "execution_id": "x1", "outcome": "completed", "timestamp": at(540)},
        {"event_id": "3", "type": "execution.finished", "agent_id": "a1", "execution_id": "x2", "outcome": "failed", "duration_ms": 60000, "timestamp": at(240)},
        {"event_id": "4", "type": "host.sample", "host_id": "h1", "cpu_usage": 91.5, "memory_usage": 40.0, "timestamp": at(20)},
        {"event_id": "5", "type": "gauge", "name": "queue_depth", "value": 4, "timestamp": at(20)},
    ]);
    seed::ingest(store, "acme", events, now).await;
    let alert = AlertRecord {
        message: "High CPU usage: 91.5%".into(),
        condition: "cpu".into(),
        ..seed::alert("alert_cpu_h1", now - 10_000)
    };
    seed::save_alert(store, "acme", &alert).await;
}

/// A store on a new table of the test server, and the table's name.
async fn dynamo() -> (Store, String) {
    let backend = e2e_tests::dynamo_backend().await;
    let table = backend.table().to_owned();
    (Store::new(std::sync::Arc::new(backend)), table)
}

#[tokio::test]
async fn lambda_binaries_answer_through_the_runtime_emulator() {
    let (store, table) = dynamo().await;
    let key = e2e_tests::new_key(&store, "acme", &["read"], "oncall").await;

    let functions = [
        "get-agent-health",
        "get-system-metrics",
        "get-active-alerts",
        "acknowledge-alert",
        "export",
        "ingest-traces",
        "get-metrics",
        "ingest-direct",
    ];
    let ports: Vec<u16> = functions.iter().map(|_| free_port()).collect();
    let _emulators: Vec<Emulator> = functions
        .iter()
        .zip(&ports)
        .map(|(f, p)| start_emulator(f, &table, *p, &[]))
        .collect();
    let port_of = |function: &str| {
        functions
            .iter()
            .position(|f| *f == function)
            .map(|i| ports[i])
            .unwrap_or_default()
    };
    // The first request to a function builds it; allow for that.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("building the HTTP client");
    let call = |function: &str, method: reqwest::Method, path: &str, key: &str| {
        client
            .request(
                method,
                format!(
                    "http://127.0.0.1:{}/lambda-url/{BINARY}{path}",
                    port_of(function)
                ),
            )
            .bearer_auth(key.to_owned())
    };
    let json_of = |res: reqwest::Response| async move {
        let status = res.status();
        (status, res.json::<Value>().await.unwrap_or_default())
    };
    let get = |function: &str, path: &str, key: &str| {
        let request = call(function, Method::GET, path, key);
        async move { json_of(request.answer().await).await }
    };
    // Build and start every function first (minutes on a busy machine), then seed, so the
    // data is as fresh as the assertions expect (a host sample counts for 2 minutes).
    for function in functions {
        // Read to the end: a client that hangs up mid-answer breaks a streaming function's
        // response, and the emulator does not restart a function whose runtime exited.
        call(function, Method::GET, "/api/health/system", "ahm_warm_up")
            .answer()
            .await
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
    }
    let now = chrono::Utc::now().timestamp_millis();
    fixture(&store, now).await;

    assert_eq!(
        get("get-agent-health", "/api/health/agent/a1", &key).await,
        (
            StatusCode::OK,
            json!({
                "agent_id": "a1", "agent_name": "Sales Assistant", "status": "error", "current_operation": null,
                "operations_completed": 1, "success_rate": 0.5, "confidence_score": 0.5,
                "last_active": format_rfc3339(now - 240_000), "health_trend": "stable",
                "metrics": {"avg_execution_time": 60000.0, "error_rate": 0.5, "recent_executions": 2, "input_tokens": 0, "output_tokens": 0},
                "latency_p50_ms": shared::domain::latency::estimate(60_000.0),
                "latency_p95_ms": shared::domain::latency::estimate(60_000.0),
                "latency_p99_ms": shared::domain::latency::estimate(60_000.0)
            })
        )
    );
    assert_eq!(
        get("get-agent-health", "/api/health/agent/a1", "ahm_wrong")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    assert_eq!(
        get("get-system-metrics", "/api/health/system", &key).await,
        (
            StatusCode::OK,
            json!({
                "cpu_usage": 91.5, "memory_usage": 40.0, "active_operations": 0, "queue_depth": 4,
                "total_agents": 1, "active_agents": 0, "total_integrations": 0, "healthy_integrations": 0,
                "alerts": {"critical": 1, "warning": 0, "info": 0},
                "hosts": [{"host_id": "h1", "cpu_usage": 91.5, "memory_usage": 40.0, "last_seen": format_rfc3339(now - 20_000)}]
            })
        )
    );

    let alert = json!({
        "alert_id": "alert_cpu_h1", "severity": "critical", "message": "High CPU usage: 91.5%",
        "source_type": "system", "source_id": "h1", "timestamp": format_rfc3339(now - 10_000),
        "action_required": true, "acknowledged": false, "acknowledged_by": null, "acknowledged_at": null, "notes": null,
        "silenced": false
    });
    assert_eq!(
        get(
            "get-active-alerts",
            "/api/health/alerts?severity=critical",
            &key
        )
        .await,
        (StatusCode::OK, json!([alert.clone()]))
    );

    let res = call(
        "acknowledge-alert",
        Method::POST,
        "/api/health/alerts/alert_cpu_h1/acknowledge",
        &key,
    )
    .json(&json!({"notes": "scaling up"}))
    .answer()
    .await;
    let (status, mut acked) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{acked}");
    let at = acked["acknowledged_at"].take();
    let at = at
        .as_str()
        .and_then(shared::time::parse_rfc3339)
        .unwrap_or_else(|| panic!("no acknowledged_at"));
    assert!((at - chrono::Utc::now().timestamp_millis()).abs() < 120_000);
    let mut expected = alert;
    expected["acknowledged"] = json!(true);
    expected["acknowledged_by"] = json!("oncall");
    expected["acknowledged_at"] = Value::Null;
    expected["notes"] = json!("scaling up");
    assert_eq!(acked, expected);

    // The export streams (as its function URL does in AWS), checking the key itself.
    let export = |query: &str| {
        call(
            "export",
            Method::GET,
            &format!("/api/health/export?{query}"),
            &key,
        )
        .answer()
    };
    let res = export("kind=executions&format=csv").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        res.text().await.unwrap_or_default(),
        format!(
            "timestamp,agent_id,execution_id,operation,outcome,duration_ms,error\n{},a1,x2,,failed,60000,\n",
            format_rfc3339(now - 240_000)
        )
    );
    assert_eq!(
        get("export", "/api/health/export?kind=alerts", "ahm_wrong")
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // A client that hangs up before the end (here, after the headers): the function goes
    // on serving the next request.
    for _ in 0..3 {
        let hung_up = export("kind=history&format=ndjson").await;
        drop(hung_up);
    }
    let res = export("kind=alerts&format=csv").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res
        .text()
        .await
        .unwrap_or_default()
        .contains("alert_cpu_h1"));

    // OTLP in protobuf, through API Gateway's binary (base64) body and back: the answer is
    // a protobuf ExportTraceServiceResponse counting the span left out.
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    };
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message as _;
    let ingest_key = e2e_tests::new_key(&store, "acme", &["ingest"], "agents").await;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_owned())),
        }),
        ..KeyValue::default()
    };
    let ns = |ms: i64| u64::try_from(ms).unwrap_or(0) * 1_000_000;
    let span = |id: u8, attributes: Vec<KeyValue>| Span {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        name: "span".into(),
        start_time_unix_nano: ns(now - 3_000),
        end_time_unix_nano: ns(now - 1_000),
        attributes,
        ..Span::default()
    };
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(
                        1,
                        vec![
                            kv("gen_ai.operation.name", "chat"),
                            kv("gen_ai.provider.name", "openai"),
                        ],
                    ),
                    span(2, vec![kv("http.request.method", "GET")]),
                ],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    };
    // The OTLP function, and the same export through the ingest function's own URL, which
    // checks the key itself.
    for function in ["ingest-traces", "ingest-direct"] {
        let res = call(function, Method::POST, "/v1/traces", &ingest_key)
            .header("content-type", "application/x-protobuf")
            .body(request.encode_to_vec())
            .answer()
            .await;
        assert_eq!(res.status(), StatusCode::OK, "{function}");
        let answer = ExportTraceServiceResponse::decode(res.bytes().await.unwrap_or_default())
            .unwrap_or_else(|e| panic!("{function}'s OTLP answer is not protobuf: {e}"));
        assert_eq!(
            answer.partial_success.map(|p| p.rejected_spans),
            Some(1),
            "{function}"
        );
    }
    let events = json!({"events": [{"event_id": "direct-1", "type": "execution.started",
        "agent_id": "direct-agent", "execution_id": "dx1", "operation": "Sync"}]});
    let res = call(
        "ingest-direct",
        Method::POST,
        "/api/health/events",
        &ingest_key,
    )
    .json(&events)
    .answer()
    .await;
    let (status, body) = json_of(res).await;
    assert!(
        status.is_success(),
        "events through the ingest URL: {status} {body}"
    );
    let agent = store
        .agent_health(
            "acme",
            "direct-agent",
            chrono::Utc::now().timestamp_millis(),
        )
        .await
        .expect("reading the agent the ingest URL created");
    assert!(
        agent.is_some_and(|a| a.current_operation.as_deref() == Some("Sync")),
        "the event sent through the ingest URL was not stored"
    );
    // A read key may not ingest there, and the URL serves nothing but ingestion.
    let res = call("ingest-direct", Method::POST, "/api/health/events", &key)
        .json(&events)
        .answer()
        .await;
    assert_eq!(json_of(res).await.0, StatusCode::FORBIDDEN);
    let (status, body) = get("ingest-direct", "/api/health/system", &ingest_key).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let res = call("get-metrics", Method::GET, "/metrics", &key)
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap_or_default();
    assert!(
        text.contains("agenthealth_integration_calls_total{integration_id=\"openai\",integration_name=\"openai\"} 1\n"),
        "{text}"
    );

    // A function serves only its own route.
    assert_eq!(
        get("get-active-alerts", "/api/health/agent/a1", &key)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// The collector binary, invoked through the emulator with a real EventBridge scheduled
/// event, runs its cycles for the configured window and raises the alert the data calls
/// for.
#[tokio::test]
async fn the_collector_binary_runs_cycles_on_a_scheduled_event() {
    let (store, table) = dynamo().await;
    let now = chrono::Utc::now().timestamp_millis();
    e2e_tests::new_key(&store, "acme", &["read"], "oncall").await;
    let port = free_port();
    let _emulator = start_emulator(
        "collector",
        &table,
        port,
        &[
            ("HEALTH_POLLING_INTERVAL", "1"),
            ("COLLECTOR_INVOCATION_SECONDS", "3"),
        ],
    );
    // What EventBridge sends for a `rate(1 minute)` schedule.
    let event = json!({
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format_rfc3339(now),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/health-collector"],
        "detail": {}
    });
    // The first invocation builds the function (minutes on a cold machine) and finds no
    // data; the host sample goes in once it is running, so it is fresh for the second.
    invoke(port, "collector", &event).await;
    let now = chrono::Utc::now().timestamp_millis();
    let sample = json!([
        {"event_id": "h", "type": "host.sample", "host_id": "h1", "cpu_usage": 91.5, "memory_usage": 40.0},
    ]);
    seed::ingest(&store, "acme", sample, now).await;

    let summary = invoke(port, "collector", &event).await;
    // Three seconds at one cycle a second: three or four cycle starts, one tenant each.
    let cycles = summary["cycles"].as_u64().unwrap_or_default();
    assert!((3..=4).contains(&cycles), "{summary}");
    // A cycle whose slot the first invocation already ran is skipped, not run twice.
    let evaluated = summary["tenants_evaluated"].as_u64().unwrap_or_default();
    let skipped = summary["tenants_skipped"].as_u64().unwrap_or_default();
    assert_eq!(evaluated + skipped, cycles, "{summary}");
    assert!(evaluated >= 2 && skipped <= 1, "{summary}");
    assert_eq!(summary["raised"], json!(1), "{summary}");
    assert_eq!(summary["tenants_failed"], json!(0), "{summary}");

    let alerts = store
        .active_alerts("acme")
        .await
        .expect("reading acme's active alerts");
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (
            alerts[0].severity,
            alerts[0].message.as_str(),
            alerts[0].source_id.as_str()
        ),
        (Severity::Critical, "High CPU usage: 91.5%", "h1")
    );
}

/// Invokes a function through its emulator with any event and returns the JSON result.
async fn invoke(port: u16, function: &str, event: &Value) -> Value {
    let res = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("building the HTTP client")
        .post(format!(
            "http://127.0.0.1:{port}/2015-03-31/functions/{BINARY}/invocations"
        ))
        .json(event)
        .answer()
        .await;
    let status = res.status();
    let body = res.text().await.unwrap_or_default();
    assert_eq!(status, StatusCode::OK, "{function}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{function}: {e}: {body}"))
}

/// The `$connect`, `watch` and `$disconnect` functions, given API Gateway's WebSocket
/// events, keep the connection table in DynamoDB, refuse a bad key, and store what a
/// delta connection watches.
#[tokio::test]
async fn websocket_connect_and_disconnect_functions_keep_the_connection_table() {
    let (store, table) = dynamo().await;
    let key = e2e_tests::new_key(&store, "acme", &["read"], "oncall").await;
    let (connect_port, disconnect_port, watch_port) = (free_port(), free_port(), free_port());
    let _connect = start_emulator("ws-connect", &table, connect_port, &[]);
    let _disconnect = start_emulator("ws-disconnect", &table, disconnect_port, &[]);
    let _watch = start_emulator("ws-watch", &table, watch_port, &[]);
    let fixture = include_str!("../../shared/tests/fixtures/apigw-websocket-connect.json");
    let event = |key: &str| -> Value {
        serde_json::from_str(&fixture.replace("KEY", key)).expect("parsing the $connect fixture")
    };

    let refused = invoke(connect_port, "ws-connect", &event("ahm_not_a_key")).await;
    assert_eq!(refused["statusCode"], 401, "{refused}");
    let body: Value = serde_json::from_str(refused["body"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("parsing the refusal's body ({e}): {refused}"));
    assert_eq!(body["error"]["message"], "the API key is not valid");
    assert!(store
        .connections("acme")
        .await
        .unwrap_or_default()
        .is_empty());

    let accepted = invoke(connect_port, "ws-connect", &event(&key)).await;
    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    assert_eq!(
        store.connections("acme").await.unwrap_or_default(),
        vec!["AAAA1234=".to_owned()]
    );
    let watch: Value = serde_json::from_str(include_str!(
        "../../shared/tests/fixtures/apigw-websocket-watch.json"
    ))
    .expect("parsing the watch fixture");
    let refused = invoke(watch_port, "ws-watch", &watch).await;
    assert_eq!(
        refused["statusCode"], 409,
        "a connection of whole updates: {refused}"
    );
    // Connected again asking for deltas: the watch is stored.
    let mut delta = event(&key);
    delta["queryStringParameters"]["mode"] = json!("delta");
    delta["multiValueQueryStringParameters"]["mode"] = json!(["delta"]);
    let accepted = invoke(connect_port, "ws-connect", &delta).await;
    assert_eq!(accepted["statusCode"], 200, "{accepted}");
    let watched = invoke(watch_port, "ws-watch", &watch).await;
    assert_eq!(watched["statusCode"], 200, "{watched}");
    let feeds = store.connection_feeds("acme").await.unwrap_or_default();
    assert_eq!(
        feeds[0].1.watch.as_ref().map(|w| w.agents.clone()),
        Some(vec!["a1".to_owned(), "a2".to_owned()]),
        "{feeds:?}"
    );

    let disconnect: Value = serde_json::from_str(include_str!(
        "../../shared/tests/fixtures/apigw-websocket-disconnect.json"
    ))
    .expect("parsing the $disconnect fixture");
    let done = invoke(disconnect_port, "ws-disconnect", &disconnect).await;
    assert_eq!(done["statusCode"], 200, "{done}");
    assert!(store
        .connections("acme")
        .await
        .unwrap_or_default()
        .is_empty());
}

/// The AWS path of a live update with every binary real: the collector function (on a
/// scheduled event) invokes the broadcaster function through the Lambda Invoke API, and
/// the broadcaster posts through the Management API to a dashboard's WebSocket, held by
/// the local gateway over the same DynamoDB table.
#[tokio::test]
async fn the_collector_hands_each_cycle_to_the_broadcaster_which_reaches_the_dashboard() {
    let (store, table) = dynamo().await;
    let now = chrono::Utc::now().timestamp_millis();
    fixture(&store, now).await;
    let key = e2e_tests::new_key(&store, "acme", &["read"], "oncall").await;
    let state = shared::AppState::new(
        store.clone(),
        shared::config::Config {
            polling_enabled: false,
            ..shared::config::Config::default()
        },
    );
    let gateway = local_stack::serve(state, e2e_tests::ANY_PORT, key.clone())
        .await
        .expect("serving the local gateway");

    let broadcaster_port = free_port();
    let management = format!("http://{}/prod", gateway.addr);
    let _broadcaster = start_emulator(
        "broadcaster",
        &table,
        broadcaster_port,
        &[("WEBSOCKET_MANAGEMENT_ENDPOINT", management.as_str())],
    );
    // Built and started before the collector calls it: a tenant without connections.
    let warm = invoke(
        broadcaster_port,
        "broadcaster",
        &json!({"tenant": "nobody", "messages": [{"type": "health:update"}]}),
    )
    .await;
    assert_eq!(warm["connections"], 0, "{warm}");

    let collector_port = free_port();
    let lambda_endpoint = format!("http://127.0.0.1:{broadcaster_port}");
    let _collector = start_emulator(
        "collector",
        &table,
        collector_port,
        &[
            ("HEALTH_POLLING_INTERVAL", "1"),
            ("COLLECTOR_INVOCATION_SECONDS", "2"),
            // The emulator serves the one binary under its own name; in AWS this is the
            // broadcaster function's name.
            ("BROADCASTER_FUNCTION", BINARY),
            ("AWS_ENDPOINT_URL_LAMBDA", lambda_endpoint.as_str()),
        ],
    );
    let mut socket = e2e_tests::ws::connect(&e2e_tests::ws::url(gateway.addr, &key)).await;
    let scheduled = json!({
        "version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": format_rfc3339(now), "region": "us-east-1",
        "resources": [], "detail": {}
    });
    let summary = invoke(collector_port, "collector", &scheduled).await;
    assert!(
        summary["tenants_evaluated"].as_u64() >= Some(1),
        "{summary}"
    );
    let (data, _) = e2e_tests::ws::next_update(&mut socket, Duration::from_secs(30)).await;
    assert_eq!(data["agents"][0]["agent_name"], "Sales Assistant", "{data}");
    assert_eq!(data["system"]["total_agents"], 1, "{data}");
    let messages = e2e_tests::strings(&data["alerts"], "message");
    assert!(messages.contains(&"High CPU usage: 91.5%"), "{data}");
}

/// The notifier binary, invoked through the emulator with a scheduled event, finds the
/// alert stored in DynamoDB and delivers a signed webhook carrying an acknowledge link to
/// the deployment's public address.
#[tokio::test]
async fn the_notifier_binary_delivers_a_stored_alert_on_a_scheduled_event() {
    let (store, table) = dynamo().await;
    let now = chrono::Utc::now().timestamp_millis();
    e2e_tests::new_key(&store, "acme", &["admin"], "ops").await;
    let receiver = e2e_tests::Sink::start().await;
    let destination = shared::domain::notify::Destination::Webhook {
        url: receiver.url("/hook"),
        secret: "s3cret".into(),
    };
    seed::channel(&store, "acme", "ops", "Ops", destination).await;
    let rule = shared::domain::notify::RuleRecord {
        group_interval_s: 60,
        updated_at: now,
        ..seed::rule("all", &["ops"])
    };
    seed::put_rule(&store, "acme", &rule).await;
    let alert = AlertRecord {
        message: "High CPU usage: 97%".into(),
        ..seed::alert("alert_cpu_h1_1", now)
    };
    seed::save_alert(&store, "acme", &alert).await;
    let port = free_port();
    let _emulator = start_emulator(
        "notifier",
        &table,
        port,
        &[
            ("COLLECTOR_INVOCATION_SECONDS", "2"),
            ("PROBE_ALLOWED_ADDRESSES", "127.0.0.1"),
            ("HEALTH_PUBLIC_URL", "https://health.example.com"),
        ],
    );
    let event = json!({
        "version": "0",
        "id": "7bf73129-1428-4cd3-a780-95db273d1602",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": format_rfc3339(now),
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/health-notifier"],
        "detail": {}
    });
    let summary = invoke(port, "notifier", &event).await;
    assert_eq!(summary["decided"], json!(1), "{summary}");
    assert_eq!(summary["delivered"], json!(1), "{summary}");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let (sig, body) = (&received[0].signature, &received[0].body);
    assert!(sig.starts_with("t=") && sig.contains(",v1="), "{sig}");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["alert_id"], "alert_cpu_h1_1");
    assert!(body["alerts"][0]["acknowledge_url"]
        .as_str()
        .is_some_and(|u| u.starts_with("https://health.example.com/api/health/ack/")));
    // A second invocation has nothing new to say.
    let again = invoke(port, "notifier", &event).await;
    assert_eq!(again["decided"], json!(0), "{again}");
    assert_eq!(receiver.received().len(), 1);
}

/// The evaluator binary, invoked through the emulator with a DynamoDB stream batch as the
/// table's stream delivers it (the new image of a host's live item that ingestion wrote),
/// raises the host's CPU alert without reading the host again, and ignores other items.
#[tokio::test]
async fn the_evaluator_binary_raises_an_alert_from_a_stream_batch() {
    let (store, table) = dynamo().await;
    let now = chrono::Utc::now().timestamp_millis();
    let sample = json!([{"event_id": "s1", "type": "host.sample", "host_id": "db-1",
        "cpu_usage": 96, "memory_usage": 20}]);
    seed::ingest(&store, "acme", sample, now).await;
    // The item as DynamoDB holds it, in the stream's DynamoDB JSON.
    let client = shared::store::dynamodb::DynamoBackend::client_for_endpoint(
        &e2e_tests::dynamodb_endpoint(),
        "us-east-1",
    );
    let key = shared::store::layout::live("acme", shared::store::layout::Entity::Host, "db-1");
    let got = client
        .get_item()
        .table_name(&table)
        .key(
            "PK",
            aws_sdk_dynamodb::types::AttributeValue::S(key.pk.clone()),
        )
        .key(
            "SK",
            aws_sdk_dynamodb::types::AttributeValue::S(key.sk.clone()),
        )
        .send()
        .await
        .expect("reading the host's live item from DynamoDB");
    let item: serde_dynamo::Item = got
        .item
        .unwrap_or_else(|| panic!("the host's live item is missing"))
        .into();
    let image = serde_json::to_value(&item).expect("converting the item to JSON");
    let record = |image: Value, keys: Value| {
        json!({
            "eventID": "1", "eventName": "MODIFY", "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "dynamodb": {"ApproximateCreationDateTime": 1_780_000_000, "Keys": keys,
                "NewImage": image, "SequenceNumber": "111", "SizeBytes": 300,
                "StreamViewType": "NEW_AND_OLD_IMAGES"},
            "eventSourceARN": format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2026-11-30T00:00:00.000")
        })
    };
    let other = json!({"PK": {"S": "KEY#abc"}, "SK": {"S": "KEY"}, "kind": {"S": "api_key"}});
    let event = json!({"Records": [
        record(image.clone(), json!({"PK": image["PK"], "SK": image["SK"]})),
        record(other.clone(), json!({"PK": other["PK"], "SK": other["SK"]})),
    ]});
    let port = free_port();
    let _emulator = start_emulator("evaluator", &table, port, &[]);
    let summary = invoke(port, "evaluator", &event).await;
    assert_eq!(summary["records"], json!(2), "{summary}");
    assert_eq!(summary["skipped"], json!(1), "{summary}");
    assert_eq!(summary["raised"], json!(1), "{summary}");
    let alerts = store
        .active_alerts("acme")
        .await
        .expect("reading acme's active alerts");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].message, "High CPU usage: 96%");
    // The same batch again (the stream retries at least once): nothing new.
    let again = invoke(port, "evaluator", &event).await;
    assert_eq!(again["raised"], json!(0), "{again}");
}
