//! Speaking the ecosystem's protocols, with the ecosystem's own software on the other end:
//! the real OpenTelemetry Python SDK exporting GenAI spans to `POST /v1/traces` (protobuf
//! with gzip, and JSON; exports retried), read back through the REST API; `/metrics` read by
//! prometheus_client's reference parsers in both exposition formats.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::process::Stdio;
use std::sync::Arc;

use e2e_tests::{eventually, ingest_events, spawn_api, spawn_app, Api, Backend, RequestExt as _};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use shared::time::ManualClock;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

const SUPPORT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/support");

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|e| panic!("cannot read README.md: {e}"))
}

fn guide() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/guide.md"))
        .unwrap_or_else(|e| panic!("cannot read docs/guide.md: {e}"))
}

/// The exporter variables exactly as the README tells users to export them, for `api`
/// (its address instead of the README's, its key for `$KEY`).
fn readme_exporter_env(api: &Api) -> Vec<(String, String)> {
    let vars: Vec<(String, String)> = readme()
        .lines()
        .filter_map(|l| l.strip_prefix("export OTEL_EXPORTER_OTLP_"))
        .filter_map(|l| l.split_once('='))
        .map(|(name, value)| {
            let value = value
                .trim_matches('"')
                .replace("http://127.0.0.1:3000", &api.base)
                .replace("$KEY", &api.key);
            (format!("OTEL_EXPORTER_OTLP_{name}"), value)
        })
        .collect();
    let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"],
        "the README's two exporter variables"
    );
    vars
}

/// What the SDK agent script did.
struct Agent<'a> {
    encoding: &'a str,
    gzip: bool,
    agent_id: &'a str,
    tool: &'a str,
    runs: u32,
    fail_run: i32,
    exports: u32,
}

/// Runs tests/support/otel_agent.py against `api`, configured through the exporter's own
/// environment variables as the README tells users to; returns its JSON summary.
async fn run_agent(api: &Api, a: &Agent<'_>) -> Value {
    let out = Command::new("python3")
        .arg(format!("{SUPPORT}/otel_agent.py"))
        .args(["--encoding", a.encoding, "--agent-id", a.agent_id, "--tool", a.tool])
        .args(["--runs", &a.runs.to_string(), "--fail-run", &a.fail_run.to_string()])
        .args(["--exports", &a.exports.to_string()])
        .envs(readme_exporter_env(api))
        .env(
            "OTEL_EXPORTER_OTLP_COMPRESSION",
            if a.gzip { "gzip" } else { "none" },
        )
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!("cannot run python3 (the test command installs the OpenTelemetry SDK into .tools/venv): {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "otel_agent.py failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("otel_agent.py printed no JSON ({e}): {stderr}"))
}

async fn get(api: &Api, path: &str) -> Value {
    let (status, body) = api.call(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Totals over the hourly slots (a run may straddle an hour).
async fn hours(api: &Api, source_type: &str, id: &str) -> (u64, u64, Vec<f64>, u64, u64) {
    let body = get(
        api,
        &format!("/api/health/hourly?source_type={source_type}&source_id={id}&hours=2"),
    )
    .await;
    let slots = body[0]["slots"].as_array().cloned().unwrap_or_default();
    let sum = |f: &str| slots.iter().filter_map(|s| s[f].as_u64()).sum::<u64>();
    let p50 = slots
        .iter()
        .filter_map(|s| s["latency_p50_ms"].as_f64())
        .collect();
    (
        sum("total"),
        sum("failed"),
        p50,
        sum("input_tokens"),
        sum("output_tokens"),
    )
}

fn near(got: f64, want: f64) -> bool {
    // The latency histogram answers within 2 % of the exact value.
    (got - want).abs() <= want * 0.021
}

fn rejected(partial: &Value) -> u64 {
    // OTLP's JSON allows an int64 as a number or a string.
    partial["rejectedSpans"]
        .as_u64()
        .or_else(|| {
            partial["rejectedSpans"]
                .as_str()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0)
}

/// Three runs of an agent through the SDK's protobuf exporter with gzip, the second run
/// failing; exported twice and posted once more: every figure counts each span once.
async fn protobuf_spans_become_executions_and_calls(backend: Backend) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp_millis()));
    let (running, _dir) = spawn_api(backend, clock).await;
    let api = Api::of(&running);
    let out = run_agent(
        &api,
        &Agent {
            encoding: "protobuf",
            gzip: true,
            agent_id: "researcher",
            tool: "web_search",
            runs: 3,
            fail_run: 1,
            exports: 2,
        },
    )
    .await;
    assert_eq!(out["results"], json!(["SUCCESS", "SUCCESS"]), "{out}");
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["content_type"], "application/x-protobuf");
    assert_eq!(out["spans"], 15);
    // The plain HTTP span of each run has no GenAI attributes.
    assert_eq!(rejected(&out["partial_success"]), 3, "{out}");
    let message = out["partial_success"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("3 spans: no GenAI attributes"),
        "{message}"
    );

    let agent = get(&api, "/api/health/agent/researcher").await;
    assert_eq!(agent["agent_name"], "Researcher", "{agent}");
    assert_eq!(agent["metrics"]["recent_executions"], 3, "{agent}");
    assert_eq!(agent["operations_completed"], 2, "{agent}");
    assert_eq!(agent["metrics"]["error_rate"], 0.333, "{agent}");
    assert_eq!(agent["metrics"]["avg_execution_time"], 2000.0, "{agent}");
    // 100 + 50 input and 20 + 10 output tokens a run, from both models' spans.
    assert_eq!(agent["metrics"]["input_tokens"], 450, "{agent}");
    assert_eq!(agent["metrics"]["output_tokens"], 90, "{agent}");
    assert_eq!(agent["status"], "idle", "the last run completed: {agent}");

    let (total, failed, _, input, output) = hours(&api, "agent", "researcher").await;
    assert_eq!((total, failed, input, output), (3, 1, 450, 90));
    let history = get(
        &api,
        // Two days: the runs may straddle midnight UTC.
        "/api/health/history/agent?entity_id=researcher&days=2",
    )
    .await;
    let days = history["history"].as_array().cloned().unwrap_or_default();
    let tokens: u64 = days
        .iter()
        .filter_map(|d| d["metrics"]["input_tokens"].as_u64())
        .sum();
    assert_eq!(tokens, 450, "{history}");

    // Model spans are calls to their provider; the tool span to the tool.
    for (id, calls, failures, latency) in [
        ("openai", 3, 0, 300.0),
        ("anthropic", 3, 0, 800.0),
        ("web_search", 3, 1, 150.0),
    ] {
        let (total, failed, p50, _, _) = hours(&api, "integration", id).await;
        assert_eq!((total, failed), (calls, failures), "{id}");
        assert!(
            p50.iter().all(|p| near(*p, latency)),
            "{id}: p50 {p50:?}, want {latency}"
        );
    }
    let failures = get(
        &api,
        "/api/health/failures?source_type=agent&source_id=researcher",
    )
    .await;
    assert_eq!(failures.as_array().map(Vec::len), Some(1), "{failures}");
    assert_eq!(
        failures[0]["error"],
        "tool web_search failed: search timed out"
    );
    assert_eq!(failures[0]["duration_ms"], 2000.0, "{failures}");
    let failures = get(
        &api,
        "/api/health/failures?source_type=integration&source_id=web_search",
    )
    .await;
    assert_eq!(failures[0]["error"], "search timed out", "{failures}");
}

/// The SDK's JSON exporter, retried: the same figures from the other encoding.
#[tokio::test]
async fn json_spans_count_once_across_retries() {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now().timestamp_millis()));
    let (running, _dir) = spawn_api(Backend::Embedded, clock).await;
    let api = Api::of(&running);
    let out = run_agent(
        &api,
        &Agent {
            encoding: "json",
            gzip: false,
            agent_id: "writer",
            tool: "send_email",
            runs: 2,
            fail_run: -1,
            exports: 2,
        },
    )
    .await;
    assert_eq!(out["results"], json!(["SUCCESS", "SUCCESS"]), "{out}");
    assert_eq!(out["content_type"], "application/json");
    assert_eq!(rejected(&out["partial_success"]), 2, "{out}");
    let agent = get(&api, "/api/health/agent/writer").await;
    assert_eq!(agent["metrics"]["recent_executions"], 2, "{agent}");
    assert_eq!(agent["operations_completed"], 2, "{agent}");
    assert_eq!(agent["metrics"]["input_tokens"], 300, "{agent}");
    assert_eq!(agent["metrics"]["output_tokens"], 60, "{agent}");
    let (total, failed, _, _, _) = hours(&api, "integration", "send_email").await;
    assert_eq!((total, failed), (2, 0));
    let (total, _, _, _, _) = hours(&api, "integration", "openai").await;
    assert_eq!(total, 2);
}

/// What an exporter is told when its request cannot be taken: a `google.rpc.Status` in the
/// request's encoding, 4xx for what a retry cannot fix.
#[tokio::test]
async fn bad_exports_get_the_otlp_error_answers() {
    let (running, _dir) = spawn_app().await;
    let url = format!("{}/v1/traces", running.url());
    let client = reqwest::Client::new();
    let post = |content_type: &'static str, body: &'static [u8], key: Option<&str>| {
        let mut req = client
            .post(&url)
            .header("content-type", content_type)
            .body(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.answer()
    };
    let key = running.api_key.as_str();
    let res = post("application/json", b"{\"resourceSpans\": 5}", Some(key)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], 3, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not an OTLP ExportTraceServiceRequest in JSON"),
        "{body}"
    );
    let res = post("application/x-protobuf", b"\xff\xff\xff", Some(key)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/x-protobuf"[..])
    );
    let res = post("text/plain", b"x", Some(key)).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let res = post("application/json", b"{}", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Over 4 MiB as sent: 413 with a Status, in the request's encoding.
    let res = client
        .post(&url)
        .header("content-type", "application/json")
        .bearer_auth(key)
        .body(vec![b' '; 4 * 1024 * 1024 + 1])
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["code"], 3, "{body}");
    // An empty request is a success with nothing in it.
    let res = post("application/json", b"{}", Some(key)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap_or_default(), "{}");
}

/// Parses exposition text with prometheus_client's reference parser for `format`.
async fn parse_metrics(format: &str, text: &str) -> Value {
    let mut child = Command::new("python3")
        .arg(format!("{SUPPORT}/parse_metrics.py"))
        .arg(format)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run python3 with prometheus_client: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .await
            .expect("writing /metrics to the parser's stdin");
    }
    let out = child
        .wait_with_output()
        .await
        .expect("waiting for the parser");
    assert!(
        out.status.success(),
        "the {format} parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The value of the sample named `name` whose labels include `labels`.
fn sample(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    families[family]["samples"]
        .as_array()?
        .iter()
        .find(|s| s[0] == name && labels.iter().all(|(k, v)| s[1][*k].as_str() == Some(*v)))
        .and_then(|s| s[2].as_f64())
}

#[tokio::test]
async fn metrics_parse_in_both_formats_with_escaped_labels_and_alerts() {
    let (running, _dir) = spawn_app().await;
    let key = running.api_key.clone();
    let name = "Sales \"Bot\" \\ v2";
    ingest_events(
        &running,
        &key,
        json!([
            {"event_id": "s1", "type": "execution.started", "agent_id": "sales", "execution_id": "x1", "operation": "Leads", "agent_name": name},
            {"event_id": "f1", "type": "execution.finished", "agent_id": "sales", "execution_id": "x1", "outcome": "completed", "duration_ms": 1500, "input_tokens": 1200, "output_tokens": 340},
            {"event_id": "f2", "type": "execution.finished", "agent_id": "sales", "execution_id": "x2", "outcome": "failed", "duration_ms": 500},
            {"event_id": "c1", "type": "integration.call", "integration_id": "hubspot", "latency_ms": 120, "ok": true},
            {"event_id": "c2", "type": "integration.call", "integration_id": "hubspot", "latency_ms": 80, "ok": false},
            {"event_id": "h1", "type": "host.sample", "host_id": "web-1", "cpu_usage": 95.5, "memory_usage": 40}
        ]),
    )
    .await;
    let api = Api::of(&running);
    // The CPU alert is raised from the event within seconds.
    eventually(
        "the CPU alert is active",
        std::time::Duration::from_secs(10),
        async || {
            let (_, alerts) = api.call(Method::GET, "/api/health/alerts", None).await;
            alerts
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["source_id"] == "web-1"))
        },
    )
    .await;

    // A dashboard connected: the stack's own figures count it.
    let _socket = e2e_tests::ws::connect(&e2e_tests::ws::url(running.addr, &key)).await;
    // As the guide's scrape config has Prometheus scrape: its metrics_path, and the key
    // of its credentials_file as a bearer token (the `authorization` default type).
    let guide = guide();
    let config = guide
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap_or_default();
    let setting = |name: &str| {
        config
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .map(|v| v.split('#').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_else(|| panic!("the guide's scrape config has no {name}"))
    };
    let path = setting("metrics_path:");
    assert!(
        config.contains("    authorization:\n      credentials_file: "),
        "{config}"
    );
    assert_eq!(setting("- targets:"), "[\"127.0.0.1:3000\"]");
    let scrape = |accept: Option<&'static str>| {
        let mut req = api
            .client
            .get(format!("{}{path}", api.base))
            .bearer_auth(&api.key);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.answer()
    };
    // Prometheus's own Accept header asks for OpenMetrics first.
    let res = scrape(Some(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    ))
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(e2e_tests::content_type(&res).starts_with("application/openmetrics-text"));
    let text = res.text().await.unwrap_or_default();
    let open = parse_metrics("openmetrics", &text).await;
    // Without Accept, OpenMetrics too (the contract's format); an older scraper asking for
    // the text format 0.0.4 gets that.
    let res = scrape(None).await;
    assert!(res.text().await.unwrap_or_default().ends_with("# EOF\n"));
    let res = scrape(Some("text/plain;version=0.0.4")).await;
    let classic_text = res.text().await.unwrap_or_default();
    let classic = parse_metrics("prometheus", &classic_text).await;

    for families in [&open, &classic] {
        let agent = [("agent_id", "sales"), ("agent_name", name)];
        // The classic parser names a counter family after its samples' `_total`.
        let counter = |base: &str| {
            if families.get(base).is_some() {
                base.to_owned()
            } else {
                format!("{base}_total")
            }
        };
        let executions = counter("agenthealth_agent_executions");
        assert_eq!(
            sample(
                families,
                &executions,
                "agenthealth_agent_executions_total",
                &agent
            ),
            Some(2.0),
            "{families}"
        );
        let tokens = counter("agenthealth_agent_tokens");
        let input: Vec<(&str, &str)> = agent
            .iter()
            .copied()
            .chain([("token_type", "input")])
            .collect();
        assert_eq!(
            sample(families, &tokens, "agenthealth_agent_tokens_total", &input),
            Some(1200.0)
        );
        assert_eq!(
            sample(
                families,
                "agenthealth_agent_status",
                "agenthealth_agent_status",
                &agent
            ),
            Some(3.0),
            "the last execution failed: error"
        );
        assert_eq!(
            sample(
                families,
                "agenthealth_agent_error_ratio",
                "agenthealth_agent_error_ratio",
                &agent
            ),
            Some(0.5)
        );
        let calls = counter("agenthealth_integration_calls");
        assert_eq!(
            sample(
                families,
                &calls,
                "agenthealth_integration_calls_total",
                &[("integration_id", "hubspot")]
            ),
            Some(2.0)
        );
        assert_eq!(
            sample(
                families,
                "agenthealth_host_cpu_utilization_ratio",
                "agenthealth_host_cpu_utilization_ratio",
                &[("host_id", "web-1")]
            ),
            Some(0.955)
        );
        assert_eq!(
            sample(
                families,
                "agenthealth_alerts",
                "agenthealth_alerts",
                &[
                    ("alertname", "cpu_high"),
                    ("alertstate", "firing"),
                    ("severity", "critical"),
                    ("source_id", "web-1")
                ]
            ),
            Some(1.0),
            "{}",
            families["agenthealth_alerts"]
        );
        // The stack's own figures: its collector and evaluator run in this process.
        assert!(families
            .get("agenthealth_stack_websocket_connections")
            .is_some());
    }
    assert!(text.ends_with("# EOF\n"));
    assert!(!classic_text.contains("# EOF"));
    // A read key is needed.
    let res = reqwest::Client::new()
        .get(format!("{}/metrics", api.base))
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

mod embedded {
    #[tokio::test]
    async fn protobuf_spans_become_executions_and_calls() {
        super::protobuf_spans_become_executions_and_calls(e2e_tests::Backend::Embedded).await;
    }
}

mod dynamodb {
    #[tokio::test]
    async fn protobuf_spans_become_executions_and_calls() {
        super::protobuf_spans_become_executions_and_calls(e2e_tests::Backend::DynamoDb).await;
    }
}

/// A badge renders without a key through its token, shows status and uptime, and stops
/// once its token is revoked.
#[tokio::test]
async fn a_badge_renders_by_token_and_stops_when_revoked() {
    let (running, _dir) = spawn_app().await;
    let key = running.api_key.clone();
    ingest_events(
        &running,
        &key,
        json!([
            {"event_id": "c1", "type": "integration.call", "integration_id": "slack", "integration_name": "Slack & Co", "latency_ms": 120, "ok": true},
            {"event_id": "c2", "type": "integration.call", "integration_id": "slack", "latency_ms": 80, "ok": true},
            {"event_id": "c3", "type": "integration.call", "integration_id": "slack", "latency_ms": 80, "ok": true},
            {"event_id": "c4", "type": "integration.call", "integration_id": "slack", "latency_ms": 90, "ok": false}
        ]),
    )
    .await;
    let api = Api::of(&running);
    let badge = |body: Value| api.post("/api/health/badges", body);
    let (status, body) = badge(json!({"source_type": "integration", "source_id": "nope"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = badge(json!({"source_type": "host", "source_id": "slack"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, created) =
        badge(json!({"source_type": "integration", "source_id": "slack"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap_or_default().to_owned();
    assert!(token.len() >= 64, "{created}");
    let url = created["url"].as_str().unwrap_or_default().to_owned();
    assert!(
        url.ends_with(&format!("/api/health/badge/{token}")),
        "{created}"
    );

    // No key: the token is the authority.
    let fetch = |query: &'static str| {
        let url = format!("{url}{query}");
        async move {
            let res = reqwest::Client::new().get(&url).answer().await;
            let status = res.status();
            let ctype = e2e_tests::content_type(&res);
            (status, ctype, res.text().await.unwrap_or_default())
        }
    };
    let (status, ctype, svg) = fetch("").await;
    assert_eq!(status, StatusCode::OK, "{svg}");
    assert!(ctype.starts_with("image/svg+xml"), "{ctype}");
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    // One failure in four calls: an error rate of 0.25 makes the integration degraded
    // or worse; whatever the status, the badge says what the API says.
    let (_, list) = api
        .call(Method::GET, "/api/health/integrations", None)
        .await;
    let now_status = list[0]["status"].as_str().unwrap_or_default().to_owned();
    assert!(
        svg.contains(&format!("<title>Slack &amp; Co: {now_status}</title>")),
        "{svg}"
    );
    let (_, _, uptime) = fetch("?show=uptime_24h").await;
    assert!(
        uptime.contains("<title>Slack &amp; Co uptime 24h: 75%</title>"),
        "{uptime}"
    );
    let (status, _, _) = fetch("?show=forever").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Listed without its token; revoked, it stops.
    let (_, badges) = api.call(Method::GET, "/api/health/badges", None).await;
    assert_eq!(badges[0]["badge_id"], created["badge_id"], "{badges}");
    assert!(badges[0].get("token").is_none(), "{badges}");
    let id = created["badge_id"].as_str().unwrap_or_default();
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/health/badges/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = fetch("").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = api
        .call(Method::DELETE, &format!("/api/health/badges/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Host metrics from the SDK's OTLP metric exporter, shaped as the collector's
/// hostmetrics receiver sends them, become the host's samples.
#[tokio::test]
async fn otlp_host_metrics_become_host_samples() {
    let (running, _dir) = spawn_app().await;
    let api = Api::of(&running);
    let out = Command::new("python3")
        .arg(format!("{SUPPORT}/otel_host.py"))
        .args(["--host", "gpu-node-7", "--exports", "2"])
        .envs(readme_exporter_env(&api))
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run python3 with the OpenTelemetry SDK: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "otel_host.py failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let results = summary["results"].as_array().cloned().unwrap_or_default();
    // Two flushes, and the reader's last export at shutdown.
    assert!(results.len() >= 2, "{summary} {stderr}");
    assert!(results.iter().all(|r| r == "SUCCESS"), "{summary} {stderr}");

    let system = get(&api, "/api/health/system").await;
    let host = system["hosts"]
        .as_array()
        .and_then(|h| h.iter().find(|h| h["host_id"] == "gpu-node-7").cloned())
        .unwrap_or_else(|| panic!("no host gpu-node-7: {system}"));
    // 1 − mean idle (0.2, 0.4) = 70 %; memory `used` 55 %.
    assert_eq!(
        (host["cpu_usage"].as_f64(), host["memory_usage"].as_f64()),
        (Some(70.0), Some(55.0)),
        "{host}"
    );
    let hours = get(
        &api,
        "/api/health/history/system?hours=2&entity_id=gpu-node-7",
    )
    .await;
    let samples: u64 = hours["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|p| p["metrics"]["samples"].as_u64())
                .sum()
        })
        .unwrap_or(0);
    assert_eq!(
        samples,
        results.len() as u64,
        "one sample per export: {hours}"
    );

    // The answer counts the network data points it left out.
    let request = json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "host.name", "value": {"stringValue": "gpu-node-8"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "system.cpu.utilization", "gauge": {"dataPoints": [{"timeUnixNano": (chrono::Utc::now().timestamp_millis() * 1_000_000).to_string(), "asDouble": 0.25}]}},
            {"name": "system.network.io", "sum": {"dataPoints": [{"asInt": "5"}, {"asInt": "6"}]}}
        ]}]
    }]});
    let res = api
        .client
        .post(format!("{}/v1/metrics", api.base))
        .bearer_auth(&api.key)
        .json(&request)
        .answer()
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap_or_default();
    // Network: not mapped (2); CPU without memory: no sample (1).
    assert_eq!(body["partialSuccess"]["rejectedDataPoints"], 3, "{body}");
}
