//! The dashboard in a real browser: Debian's chromium, driven by playwright-core
//! (tests/browser/dashboard.mjs), against the local stack seeded with 1,000 agents and 200
//! integrations, with the collector on a one-second cycle. The test command installs
//! chromium and playwright-core; screenshots go to tests/artifacts/, and the README's two
//! to docs/img/ when the dashboard changed since they were taken.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use shared::config::Config;
use shared::ws::broadcaster::Broadcaster;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// 1,000 agents (some running, some failing), 200 integrations, two hosts (one hot), and a
/// queue backlog: a critical and a warning alert on the first cycle.
/// Agents seeded: the load-time goal is set at 1,000 (and 10,000: `DASHBOARD_AGENTS=10000`
/// measures that, outside the test command).
fn agents() -> usize {
    std::env::var("DASHBOARD_AGENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

fn fleet() -> Vec<Value> {
    let mut events = Vec::new();
    for i in 0..agents() {
        let agent = format!("agent-{i:04}");
        let name = format!("Agent {i:04}");
        events.push(
            json!({"event_id": format!("s{i}"), "type": "execution.started", "agent_id": agent,
            "agent_name": name, "execution_id": "x1", "operation": "Processing leads"}),
        );
        let mut finish = json!({"event_id": format!("f{i}"), "type": "execution.finished", "agent_id": agent,
            "execution_id": "x1", "outcome": "completed", "duration_ms": 1200,
            "input_tokens": 1000 + i, "output_tokens": 200});
        if i % 7 == 0 {
            finish["outcome"] = json!("failed");
            finish["error"] = json!("CRM answered 429: rate limited\n  at sync_leads (crm.py:42)");
        }
        events.push(finish);
        if i % 3 == 0 {
            events.push(
                json!({"event_id": format!("r{i}"), "type": "execution.started", "agent_id": agent,
                "execution_id": "x2", "operation": "Drafting replies"}),
            );
        }
    }
    for i in 0..200 {
        events.push(json!({"event_id": format!("c{i}"), "type": "integration.call",
            "integration_id": format!("integration-{i:03}"), "integration_name": format!("Service {i:03}"),
            "ok": i % 10 != 0, "latency_ms": 100 + i * 7}));
    }
    events.push(json!({"event_id": "h1", "type": "host.sample", "host_id": "worker-1", "cpu_usage": 95.0, "memory_usage": 50.0}));
    events.push(json!({"event_id": "h2", "type": "host.sample", "host_id": "worker-2", "cpu_usage": 35.0, "memory_usage": 40.0}));
    events.push(json!({"event_id": "q", "type": "gauge", "name": "queue_depth", "value": 150}));
    events
}

// On a runtime with a worker per core, as `cargo run` serves the local stack
// (`#[tokio::main]`): on the test's default single thread, every collector cycle over the
// fleet would hold up the page's requests, which the product's server does not do.
#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_api_acknowledges_and_updates_live_in_chromium() {
    let browser_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/browser");
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists()
            && std::path::Path::new(&format!("{browser_dir}/node_modules/playwright-core"))
                .exists(),
        "chromium or playwright-core is missing: run ./scripts/test, which installs both"
    );
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        ..Config::default()
    })
    .await;
    // A batch holds at most 1,000 events.
    for chunk in fleet().chunks(1_000) {
        e2e_tests::ingest_events(&app, &app.api_key, Value::Array(chunk.to_vec())).await;
    }
    // Wait for the first cycle's alerts, so the page has some to acknowledge.
    // With 1 s cycles every agent is "silent" 5 cycles after its one report, so wait for
    // those alerts too: the alert list then holds still while the browser compares it
    // with the API (on a slow machine they would otherwise arrive mid-comparison).
    let deadline =
        std::time::Instant::now() + Duration::from_secs(30 * agents().div_ceil(1_000) as u64);
    loop {
        let alerts = e2e_tests::get_json(&app, &app.api_key, "/api/health/alerts").await;
        let silent = alerts.as_array().map_or(0, |a| {
            a.iter()
                .filter(|x| {
                    x["source_type"] == "agent"
                        && x["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("went silent"))
                })
                .count()
        });
        if silent == agents() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no alerts: {alerts}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/artifacts");
    let mut node = tokio::process::Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(browser_dir)
        .env("BASE_URL", app.url())
        .env("API_KEY", &app.api_key)
        .env("ARTIFACTS", artifacts)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let mut stdin = node.stdin.take().unwrap_or_else(|| panic!("no stdin"));
    let stdout = node.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut lines = BufReader::new(stdout).lines();
    let mut output = Vec::new();
    let run = async {
        while let Ok(Some(line)) = lines.next_line().await {
            println!("browser: {line}");
            if line == "DROP" {
                // What API Gateway does when it drops a client: the Management API's
                // DELETE on every connection of the tenant.
                let client = Broadcaster::client_for_endpoint(&app.url());
                for id in app
                    .state
                    .store
                    .connections("local")
                    .await
                    .unwrap_or_default()
                {
                    let _ = client.delete_connection().connection_id(&id).send().await;
                }
                stdin.write_all(b"dropped\n").await.unwrap_or_else(|e| {
                    panic!("telling the browser script its sockets were dropped: {e}")
                });
                stdin
                    .flush()
                    .await
                    .unwrap_or_else(|e| panic!("flushing the browser script's input: {e}"));
            }
            output.push(line);
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish in 3 minutes: {output:?}"));
    let status = node
        .wait()
        .await
        .unwrap_or_else(|e| panic!("waiting for the browser script to exit: {e}"));
    let mut stderr = String::new();
    if let Some(mut e) = node.stderr.take() {
        use tokio::io::AsyncReadExt;
        let _ = e.read_to_string(&mut stderr).await;
    }
    assert!(
        status.success(),
        "browser checks failed:\n{}\n{stderr}",
        output.join("\n")
    );
    assert!(
        output.iter().any(|l| l.starts_with("RESULT ")),
        "{}",
        output.join("\n")
    );
    for shot in [
        "dashboard-1280.png",
        "dashboard-phone.png",
        "docs-dashboard.png",
        "docs-drilldown.png",
    ] {
        let meta = std::fs::metadata(format!("{artifacts}/{shot}"))
            .unwrap_or_else(|e| panic!("no screenshot {shot}: {e}"));
        assert!(meta.len() > 10_000, "{shot} is {} bytes", meta.len());
    }
    refresh_readme_screenshots(artifacts);
}

/// Copies this run's first-screen shots of the overview and of a drill-down page to
/// docs/img/, where the README shows them, when the dashboard's sources changed since the
/// kept ones were taken (docs.rs fails until they are taken again). Not in CI (`CI=true`):
/// there the docs test is to find kept screenshots that are out of date, not have them
/// replaced in a clone nobody commits from.
fn refresh_readme_screenshots(artifacts: &str) {
    use e2e_tests::screenshots::{dashboard_digest, root, DIGEST_FILE, FILES};
    let digest = dashboard_digest();
    let recorded = std::fs::read_to_string(root().join(DIGEST_FILE)).unwrap_or_default();
    let kept = FILES.iter().all(|f| root().join(f).exists());
    if (kept && recorded.trim() == digest) || std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    for (taken, file) in [
        ("docs-dashboard.png", FILES[0]),
        ("docs-drilldown.png", FILES[1]),
    ] {
        let target = root().join(file);
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        }
        std::fs::copy(format!("{artifacts}/{taken}"), &target)
            .unwrap_or_else(|e| panic!("copying {taken} to {file}: {e}"));
    }
    std::fs::write(root().join(DIGEST_FILE), format!("{digest}\n"))
        .unwrap_or_else(|e| panic!("writing {DIGEST_FILE}: {e}"));
    println!("the dashboard changed: its screenshots in docs/img/ were taken again (commit them)");
}

/// Which API answers make the dashboard ask for a new key (dashboard/auth.js, with Node's
/// own test runner): a 401 from anyone, and in AWS API Gateway's own 403
/// `{"message":"Forbidden"}` for a key the authorizer refused, but not our 403 for a
/// missing scope.
#[test]
fn the_dashboard_asks_for_a_new_key_on_a_401_and_on_api_gateways_403() {
    let test = concat!(env!("CARGO_MANIFEST_DIR"), "/browser/auth.test.mjs");
    let output = std::process::Command::new("node")
        .args(["--test", test])
        .output()
        .unwrap_or_else(|e| panic!("running node --test {test}: {e}"));
    assert!(
        output.status.success(),
        "dashboard/auth.js: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
