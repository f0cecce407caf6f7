//! The broadcaster benchmark: one `health:update` to 10,000 connections of a tenant
//! through the local stack's `@connections` Management API, with the real SDK client.
//! 9,500 are real WebSocket clients (in a child process, so each process stays within its
//! file limit) and 500 are stored connections the gateway no longer has, answering 410,
//! which the broadcast must delete.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use shared::collector::TenantReport;
use shared::domain::health::agent_health;
use shared::domain::records::AgentRecord;
use shared::domain::system::{system_health, SystemInputs};
use shared::ws::broadcaster::Broadcaster;
use tokio::io::AsyncBufReadExt;

const LIVE: usize = 9_500;
const VANISHED: usize = 500;
const RUNS: usize = 5;

/// A realistic update: 100 agents and the system object.
fn update() -> Vec<String> {
    shared::ws::update::health_update(&report(100)).expect("building the health update")
}

/// A tenant's report with `count` agents and the system object.
fn report(count: usize) -> TenantReport {
    let now = chrono::Utc::now().timestamp_millis();
    let agents: Vec<_> = (0..count)
        .map(|i| {
            let record = AgentRecord {
                agent_name: format!("Agent {i}"),
                ..AgentRecord::new(&format!("agent-{i:03}"), now)
            };
            agent_health(&record, &[], &[], &[], now)
        })
        .collect();
    let system = system_health(
        SystemInputs {
            agents: &[],
            integrations: &[],
            hosts: &[],
            system: &Default::default(),
            alerts: &[],
        },
        now,
    );
    TenantReport {
        tenant: local_stack::LOCAL_TENANT.to_owned(),
        at: now,
        agents,
        integrations: Vec::new(),
        system,
        alerts: Vec::new(),
        probes: 0,
        raised: 0,
        updated: 0,
        resolved: 0,
        silenced: Vec::new(),
        recently_resolved: Vec::new(),
    }
}

/// What one dashboard of a 10,000-agent tenant receives in a minute (two cycles) when 1 %
/// of the agents change each cycle: whole updates, deltas, the overview's deltas, and the
/// deltas of a dashboard watching the page of 100 agents it shows.
fn delta_figures() {
    use shared::store::connections::{Feed, Listening, Watch};
    use shared::ws::update::MAX_MESSAGE_BYTES;
    let mut report = report(10_000);
    let deltas = shared::ws::delta::Deltas::new();
    deltas.next(&report).expect("building the baseline delta");
    let page: Vec<String> = report.agents[..100]
        .iter()
        .map(|a| a.agent_id.clone())
        .collect();
    let watching = Listening {
        feed: Feed::Delta,
        watch: Some(Watch::new(page, Vec::new())),
    };
    let (mut full, mut delta, mut overview, mut watched) = (0usize, 0usize, 0usize, 0usize);
    for cycle in 0..2 {
        for i in 0..100 {
            let k = (cycle * 100 + i) * 97 % 10_000;
            report.agents[k].operations_completed += 1;
        }
        report.at += 30_000;
        let d = deltas.next(&report).expect("building a delta");
        let bytes = |m: Vec<String>| m.iter().map(String::len).sum::<usize>();
        full += bytes(shared::ws::update::health_update(&report).expect("building the update"));
        delta += bytes(d.messages(&Feed::Delta.into(), MAX_MESSAGE_BYTES));
        overview += bytes(d.messages(&Feed::DeltaOverview.into(), MAX_MESSAGE_BYTES));
        watched += bytes(d.messages(&watching, MAX_MESSAGE_BYTES));
    }
    println!(
        "| live updates, 10,000 agents, 1 % changing a cycle | bytes a minute to one dashboard |"
    );
    println!("|---|---|");
    println!("| whole updates (mode=full) | {full} |");
    println!("| deltas (mode=delta) | {delta} |");
    println!("| deltas, overview (mode=delta&scope=overview) | {overview} |");
    println!("| deltas, watching a page of 100 agents (mode=delta, a watch message) | {watched} |");
}

/// The child process: opens `count` WebSocket connections to `url`, prints `connected`,
/// then prints `all <n>` each time every connection has received its n-th message.
pub async fn clients(url: &str, count: usize) {
    let sockets: Vec<e2e_tests::ws::Socket> = stream::iter(0..count)
        .map(|_| e2e_tests::ws::connect(url))
        .buffer_unordered(100)
        .collect()
        .await;
    println!("connected");
    let received = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let received = Arc::clone(&received);
            tokio::spawn(async move {
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() {
                        let total = received.fetch_add(1, Ordering::SeqCst) + 1;
                        if total % count == 0 {
                            println!("all {}", total / count);
                        }
                    }
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
}

/// The parent: the local stack, the child's clients, the vanished connections, and
/// [`RUNS`] broadcasts.
pub async fn broadcast_benchmarks() {
    delta_figures();
    let (app, _dir) = e2e_tests::spawn_app_limited(
        shared::config::Config {
            polling_enabled: false,
            // Ten thousand connections of one key: far past the default WebSocket quotas.
            quotas: shared::config::Quotas {
                websockets_per_tenant: 20_000,
                websockets_per_key: 20_000,
                ..shared::config::Quotas::default()
            },
            ..shared::config::Config::default()
        },
        // Ten thousand WebSocket clients and then some.
        local_stack::Limits {
            max_connections: 20_000,
            ..local_stack::Limits::default()
        },
    )
    .await;
    let exe = std::env::current_exe().expect("finding the benchmark's own executable");
    let mut child = tokio::process::Command::new(exe)
        .args([
            "ws-clients",
            &e2e_tests::ws::url(app.addr, &app.api_key),
            &LIVE.to_string(),
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the clients: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("the clients' stdout is not piped");
    };
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut next_line = async || {
        lines
            .next_line()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("the clients stopped"))
    };
    assert_eq!(next_line().await, "connected");
    let store = app.state.store.clone();
    let tenant = local_stack::LOCAL_TENANT;
    let messages = update();
    let mut broadcaster =
        Broadcaster::new(Broadcaster::client_for_endpoint(&app.url()), store.clone());
    if let Some(n) = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        broadcaster = broadcaster.with_concurrency(n);
    }
    println!(
        "update: {} message(s), {} bytes; {LIVE} live connections, {VANISHED} vanished (410)",
        messages.len(),
        messages.iter().map(String::len).sum::<usize>()
    );
    println!("| run | connections | delivered | gone (410) | left stored | broadcast s | all received s |");
    println!("|---|---|---|---|---|---|---|");
    let mut times = Vec::new();
    for run in 1..=RUNS {
        for i in 0..VANISHED {
            store
                .add_connection(tenant, &format!("Vanished{run}x{i:04}="), "bench", 0)
                .await
                .expect("storing a vanished connection");
        }
        let stored = store.connections(tenant).await.unwrap_or_default().len();
        assert_eq!(stored, LIVE + VANISHED);
        let t0 = Instant::now();
        let report = broadcaster
            .broadcast(tenant, &messages)
            .await
            .expect("broadcasting to the tenant");
        let sent = t0.elapsed();
        let line = tokio::time::timeout(Duration::from_secs(60), next_line())
            .await
            .unwrap_or_else(|_| panic!("not every client received run {run}"));
        let received = t0.elapsed();
        assert_eq!(line, format!("all {run}"));
        let left = store.connections(tenant).await.unwrap_or_default().len();
        println!(
            "| {run} | {} | {} | {} | {left} | {:.3} | {:.3} |",
            report.connections,
            report.delivered,
            report.gone,
            sent.as_secs_f64(),
            received.as_secs_f64()
        );
        assert_eq!(
            (report.delivered, report.gone, left),
            (LIVE, VANISHED, LIVE)
        );
        times.push(sent.as_secs_f64());
    }
    if std::env::var("BENCH_DEBUG").is_ok() {
        for i in 0..VANISHED {
            store
                .add_connection(tenant, &format!("D{i}="), "b", 0)
                .await
                .ok();
        }
        let t = Instant::now();
        for i in 0..VANISHED {
            store.remove_connection(&format!("D{i}=")).await.ok();
        }
        println!("500 sequential deletes: {:.3}", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let c = store.connections(tenant).await.unwrap_or_default();
        println!("list {}: {:.3}", c.len(), t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    println!(
        "broadcast p50 {:.3} s, max {:.3} s",
        times[RUNS / 2],
        times[RUNS - 1]
    );
    let _ = child.kill().await;
}
