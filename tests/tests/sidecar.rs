//! The host sidecar against the local stack: real sysinfo samples arrive in
//! `GET /api/health/system`, and through an outage of the API every sample taken arrives
//! exactly once.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use e2e_tests::RequestExt as _;
use health_sidecar::{run, Options, Stats};
use serde_json::Value;

fn options(url: String, key: String, host_id: &str) -> Options {
    let interval = Duration::from_millis(100);
    Options {
        api_url: url,
        api_key: key,
        host_id: host_id.to_owned(),
        interval,
        buffer: Options::hour_of_samples(interval),
        check_api: false,
    }
}

type Running = (
    Arc<Stats>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), health_sidecar::Error>>,
);

/// Runs a sidecar (100 ms interval) until the returned sender fires.
fn spawn_sidecar(url: String, key: String, host_id: &str) -> Running {
    let stats = Arc::new(Stats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let sidecar = tokio::spawn(run(options(url, key, host_id), Arc::clone(&stats), async {
        let _ = stopped.await;
    }));
    (stats, stop, sidecar)
}

/// Samples of `host_id` stored over the last two days, from the history endpoint, with
/// the history document for messages.
async fn stored_samples(url: &str, key: &str, host_id: &str) -> (u64, Value) {
    let history = get(
        &format!("{url}/api/health/history/system?entity_id={host_id}&days=2"),
        key,
    )
    .await;
    let stored = history["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {history}"))
        .iter()
        .map(|p| p["metrics"]["samples"].as_u64().unwrap_or(0))
        .sum();
    (stored, history)
}

async fn get(url: &str, key: &str) -> Value {
    let res = reqwest::Client::new()
        .get(url)
        .bearer_auth(key)
        .answer()
        .await;
    assert!(res.status().is_success(), "{url}: {}", res.status());
    res.json().await.unwrap_or_else(|e| panic!("{url}: {e}"))
}

async fn eventually(what: &str, check: impl AsyncFnMut() -> bool) {
    e2e_tests::eventually(what, Duration::from_secs(20), check).await;
}

/// Waits until the sidecar's buffer is empty, then stops it and waits for it to end.
async fn drain_and_stop((stats, stop, sidecar): Running) -> Arc<Stats> {
    eventually("the buffer to drain", async || {
        stats.waiting.load(Ordering::SeqCst) == 0
    })
    .await;
    stop_sidecar(stop, sidecar).await;
    stats
}

/// Stops a sidecar and waits for it to end; panics if it failed.
async fn stop_sidecar(
    stop: tokio::sync::oneshot::Sender<()>,
    sidecar: tokio::task::JoinHandle<Result<(), health_sidecar::Error>>,
) {
    let _ = stop.send(());
    sidecar
        .await
        .expect("the sidecar's task panicked")
        .expect("the sidecar failed");
}

#[tokio::test]
async fn samples_arrive_and_show_in_the_system_endpoint() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let (url, key) = (app.url(), app.api_key.clone());
    let (stats, stop, sidecar) = spawn_sidecar(url.clone(), key.clone(), "sidecar-test");
    let system_url = format!("{url}/api/health/system");
    let mut host = Value::Null;
    eventually("the host in /api/health/system", async || {
        let system = get(&system_url, &key).await;
        host = system["hosts"]
            .as_array()
            .and_then(|h| h.iter().find(|h| h["host_id"] == "sidecar-test").cloned())
            .unwrap_or(Value::Null);
        !host.is_null()
    })
    .await;
    for field in ["cpu_usage", "memory_usage"] {
        let v = host[field].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&v), "{field} = {v}");
    }
    stop_sidecar(stop, sidecar).await;
    assert!(stats.taken.load(Ordering::SeqCst) >= 1);
    app.stop().await.expect("stopping the local stack");
}

/// The API goes down for 1.5 s (15 samples' worth) and comes back on the same port: the
/// samples taken meanwhile are delivered when it is back, each with its original timestamp
/// and id, and the host's history counts every sample taken exactly once.
#[tokio::test]
async fn through_an_outage_every_sample_arrives_exactly_once() {
    let dir = e2e_tests::temp_dir();
    let app = e2e_tests::start(e2e_tests::stack_options(dir.path())).await;
    let (addr, url, key) = (app.addr, app.url(), app.api_key.clone());
    let (stats, stop, sidecar) = spawn_sidecar(url.clone(), key.clone(), "outage-host");
    tokio::time::sleep(Duration::from_millis(800)).await;

    app.stop().await.expect("stopping the local stack");
    let taken_at_outage = stats.taken.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = stats.waiting.load(Ordering::SeqCst);
    assert!(
        waiting >= 10,
        "samples taken during the outage wait: {waiting}"
    );
    assert!(stats.taken.load(Ordering::SeqCst) >= taken_at_outage + 10);

    // Back on the same port.
    let app = e2e_tests::start(local_stack::Options {
        addr,
        ..e2e_tests::stack_options(dir.path())
    })
    .await;
    let stats = drain_and_stop((stats, stop, sidecar)).await;
    let taken = stats.taken.load(Ordering::SeqCst);
    assert_eq!(stats.waiting.load(Ordering::SeqCst), 0);

    let (stored, history) = stored_samples(&url, &key, "outage-host").await;
    assert_eq!(stored, taken, "{history}");
    app.stop().await.expect("stopping the local stack");
}

/// A proxy to `upstream` that forwards every request but, for the first `lose` requests,
/// answers 503 after the upstream stored the batch: the answer was lost, as on a network
/// failure after the write.
async fn lossy_proxy(upstream: String, lose: usize) -> String {
    use std::sync::atomic::AtomicUsize;
    let seen = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (upstream, seen) = (upstream.clone(), Arc::clone(&seen));
        async move {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 2 << 20)
                .await
                .unwrap_or_default();
            let forwarded = reqwest::Client::new()
                .request(parts.method, format!("{upstream}{}", parts.uri))
                .headers(parts.headers)
                .body(body)
                .send()
                .await;
            let status = forwarded.map_or(502, |r| r.status().as_u16());
            if seen.fetch_add(1, Ordering::SeqCst) < lose {
                return http::StatusCode::SERVICE_UNAVAILABLE;
            }
            http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_GATEWAY)
        }
    });
    format!("http://{}", e2e_tests::serve(app).await)
}

/// Answers lost after the API stored the samples make the sidecar send them again; they
/// still count once.
#[tokio::test]
async fn samples_resent_after_a_lost_answer_count_once() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let (url, key) = (app.url(), app.api_key.clone());
    let proxy = lossy_proxy(url.clone(), 3).await;
    let running = spawn_sidecar(proxy, key.clone(), "lossy-host");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats = drain_and_stop(running).await;
    let (stored, history) = stored_samples(&url, &key, "lossy-host").await;
    assert_eq!(stored, stats.taken.load(Ordering::SeqCst), "{history}");
    app.stop().await.expect("stopping the local stack");
}
