//! The monthly bill of the reference workload: 10,000 agents each running 12 executions an
//! hour (started + finished), 1,000 integrations with one call a minute each (200 of them
//! also probed every cycle), 100 hosts sampling every 30 s, the collector every 30 s, 20
//! dashboards connected.
//!
//! Every DynamoDB request of each path is metered with DynamoDB's billing rules (the
//! `Metered` backend over the embedded store: units depend only on the calls and the item
//! sizes) on a seeded fleet of that size, then multiplied by how often the path runs in a
//! month (730 hours). Lambda and API Gateway are priced from request counts, memory and
//! durations stated below.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use shared::collector::Collector;
use shared::config::Config;
use shared::store::Store;
use shared::time::MINUTE_MS;

use super::collector::{embedded_backend, fleet, seed, Fleet, TENANT};
use super::Metered;

const HOURS: f64 = 730.0;
/// Share of executions and calls that fail in the reference workload (an assumption: the
/// design gives none); each failure also writes its failure item.
const FAILED_SHARE: f64 = 0.02;
/// On-demand DynamoDB prices (us-east-1), dollars per million units.
const WRITE_PER_MILLION: f64 = 0.625;
const READ_PER_MILLION: f64 = 0.125;
/// Lambda (arm64): per million requests, per GB-second.
const LAMBDA_REQUESTS: f64 = 0.20;
const LAMBDA_GB_S: f64 = 0.000_013_333_4;
/// API Gateway: HTTP API per million requests; WebSocket per million messages (metered in
/// 32 KB units) and per million connection minutes.
const HTTP_API: f64 = 1.00;
const WS_MESSAGES: f64 = 1.00;
const WS_MINUTES: f64 = 0.25;
/// Step Functions express workflows: per million requests, per GB-second (64 MB steps).
const SFN_REQUESTS: f64 = 1.00;
const SFN_GB_S: f64 = 0.000_016_67;
/// What a collector cycle is assumed to take in Lambda at 512 MB (the collector's goal:
/// under 3 s), the invocation billed for it alone.
const COLLECTOR_CYCLE_S: f64 = 3.0;

const FLEET: Fleet = Fleet {
    agents: 10_000,
    integrations: 1_000,
    probed: 200,
    hosts: 100,
};
const DASHBOARDS: f64 = 20.0;

/// Units (read, write) the metered backend counted since its last reset.
fn take(m: &Metered) -> (f64, f64) {
    let r = m.read_tenths.load(Ordering::Relaxed) as f64 / 10.0;
    let w = m.write_tenths.load(Ordering::Relaxed) as f64 / 10.0;
    m.reset();
    (r, w)
}

/// Average units per event of one kind, each event alone in its request (as agents report
/// them), over `n` events spread across the fleet.
async fn per_event(
    store: &Store,
    m: &Metered,
    n: usize,
    make: impl Fn(usize) -> serde_json::Value,
    now: i64,
) -> (f64, f64) {
    per_batch(store, m, n, |i| json!([make(i)]), now).await
}

/// Average units per request of batches made by `make`, over `n` requests.
async fn per_batch(
    store: &Store,
    m: &Metered,
    n: usize,
    make: impl Fn(usize) -> serde_json::Value,
    now: i64,
) -> (f64, f64) {
    m.reset();
    for i in 0..n {
        e2e_tests::seed::ingest(store, TENANT, make(i), now).await;
    }
    let (r, w) = take(m);
    (r / n as f64, w / n as f64)
}

/// The WebSocket messages `messages` are billed as: one unit per 32 KB of each.
fn ws_units(messages: &[String]) -> f64 {
    messages
        .iter()
        .map(|m| (m.len() as f64 / 32_768.0).ceil().max(1.0))
        .sum()
}

/// How often batching clients send what they have, seconds (an OpenTelemetry exporter's
/// default is 5 s).
const BATCH_SECONDS: f64 = 5.0;
/// The reference workload's execution duration, ms (the events above carry it).
const EXECUTION_MS: f64 = 1_200.0;

/// How the clients send: each event in its own request, or one exporter per host sending
/// its agents' and integrations' events every [`BATCH_SECONDS`] (the hosts' sidecars send
/// each sample as they take it, every 30 s, either way).
#[derive(Clone, Copy, PartialEq)]
enum Clients {
    OneEventPerRequest,
    Batching,
}

struct Line {
    component: &'static str,
    detail: String,
    dollars: f64,
}

fn ddb(read_units: f64, write_units: f64) -> f64 {
    read_units / 1e6 * READ_PER_MILLION + write_units / 1e6 * WRITE_PER_MILLION
}

/// Prints the mean and largest size of the seeded live items by kind, as DynamoDB sizes
/// them: what one event's write costs in write units.
fn print_sizes(items: &[shared::store::Write]) {
    use shared::store::Record;
    let mut by_kind: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for w in items {
        let kind = match &w.item.record {
            Record::Agent(_) => "agent",
            Record::Integration(_) => "integration",
            Record::Host(_) => "host",
            _ => continue,
        };
        let size = shared::store::dynamodb::item_size(&w.item).unwrap_or(0);
        by_kind.entry(kind).or_default().push(size);
    }
    println!("\n| live item after an hour of the workload | mean bytes | largest |");
    println!("|---|---|---|");
    for (kind, sizes) in by_kind {
        let mean = sizes.iter().sum::<usize>() / sizes.len().max(1);
        let max = sizes.iter().max().copied().unwrap_or(0);
        println!("| {kind} | {mean} | {max} |");
    }
}

/// Prints the bill.
pub async fn cost_benchmark() {
    let (backend, _dir) = embedded_backend();
    let metered = Arc::new(Metered::new(backend));
    let target = e2e_tests::ProbeTarget::start().await;
    let now = chrono::Utc::now().timestamp_millis();
    // Half an hour into the hour before this one (items then hold half an hour of marks, the
    // mean over an hour), and every measured event and cycle falls in that hour, so no
    // measurement pays, or misses, an hour's first write by the clock.
    let mut t0 =
        now - now.rem_euclid(shared::time::HOUR_MS) - shared::time::HOUR_MS + 30 * MINUTE_MS;
    // The next hour's first events (measured below) must not also start a new day, when
    // every item moves a day out as well: that happens once a day, not once an hour.
    if shared::time::day_of(t0 + shared::time::HOUR_MS + 5 * MINUTE_MS) != shared::time::day_of(t0)
    {
        t0 -= 2 * shared::time::HOUR_MS;
    }
    let items = fleet(FLEET, t0, &target.url());
    print_sizes(&items);
    seed(&(metered.clone() as Arc<dyn shared::store::Backend>), items).await;
    let store = Store::new(metered.clone());
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("registering the tenant");
    let mut lines: Vec<Line> = Vec::new();

    // Ingestion, one event per request, steady state (entities and this minute's buckets
    // exist): a first pass warms the minute, the second is measured.
    let at = t0 + 5 * MINUTE_MS + 1_000;
    let started = |i: usize| {
        json!({"event_id": format!("s{i}"), "type": "execution.started",
        "agent_id": format!("agent-{:05}", i * 7 % 10_000), "execution_id": format!("x{i}"), "operation": "Processing leads"})
    };
    let finished = |i: usize| {
        json!({"event_id": format!("f{i}"), "type": "execution.finished",
        "agent_id": format!("agent-{:05}", i * 7 % 10_000), "execution_id": format!("x{i}"), "outcome": "completed", "duration_ms": 1200})
    };
    let call = |i: usize| {
        json!({"event_id": format!("c{i}"), "type": "integration.call",
        "integration_id": format!("integration-{:04}", i % 1_000), "ok": true, "latency_ms": 120})
    };
    let sample = |i: usize| {
        json!({"event_id": format!("h{i}"), "type": "host.sample",
        "host_id": format!("host-{:02}", i % 100), "cpu_usage": 40.0, "memory_usage": 50.0})
    };
    // Failures also store one item each with the error text (the drill-down's recent
    // failures, the executions export).
    let failed_finish = |i: usize| {
        json!({"event_id": format!("ff{i}"), "type": "execution.finished",
        "agent_id": format!("agent-{:05}", i * 7 % 10_000), "execution_id": format!("xf{i}"), "outcome": "failed", "duration_ms": 1200,
        "error": "CRM answered 429: rate limited\n  at sync_leads (crm.py:42)"})
    };
    let failed_call = |i: usize| {
        json!({"event_id": format!("cf{i}"), "type": "integration.call",
        "integration_id": format!("integration-{:04}", i % 1_000), "ok": false, "latency_ms": 120, "error": "502 Bad Gateway"})
    };
    let n = 1_000;
    let s = per_event(&store, &metered, n, started, at).await;
    let f = per_event(&store, &metered, n, finished, at).await;
    let ff = per_event(&store, &metered, n, failed_finish, at).await;
    let c = per_event(&store, &metered, n, call, at).await;
    let cf = per_event(&store, &metered, n, failed_call, at).await;
    let h = per_event(&store, &metered, 100, sample, at).await;
    // An integration called once a minute files 60 marks an hour and its item keeps 16:
    // the 18th, 35th and 52nd calls of an hour move the hour's marks to their bucket, and
    // every call after the first move reads that bucket to tell a retry from a new call.
    // Half an hour in, each integration's hour has moved once (the fleet is seeded so):
    // `c` and `cf` above were such calls after a move. Each now holds 14 of this hour's
    // marks: two more calls fill it to 16, the next two store 17 and then move them.
    let again = |tag: &'static str| {
        move |i: usize| {
            let mut e = call(i);
            e["event_id"] = json!(format!("{tag}{i}"));
            e
        }
    };
    for tag in ["cw", "cx", "cy"] {
        per_event(&store, &metered, n, again(tag), at).await;
    }
    let c_moving = per_event(&store, &metered, n, again("cm"), at).await;

    // A batching client sends an execution's start and finish in one request when both
    // fall in one batch window: measured as such a pair per request, in the same hour as
    // the single events (measured after the next hour's events, its hour's marks would
    // have moved to their bucket and each pair would pay a bucket read it does not).
    let pair = per_batch(
        &store,
        &metered,
        n,
        |i| {
            let mut a = started(i);
            let mut b = finished(i);
            a["event_id"] = json!(format!("bs{i}"));
            a["execution_id"] = json!(format!("bx{i}"));
            b["event_id"] = json!(format!("bf{i}"));
            b["execution_id"] = json!(format!("bx{i}"));
            json!([a, b])
        },
        at,
    )
    .await;
    // The first event of each entity in a new hour moves the last hour's marks to a mark
    // bucket: measured on the same entities an hour later, charged once per entity-hour.
    let next = at + shared::time::HOUR_MS;
    let renamed = |f: &dyn Fn(usize) -> serde_json::Value, i: usize| {
        let mut e = f(i);
        e["event_id"] = json!(format!("next-{}", e["event_id"].as_str().unwrap_or("")));
        e
    };
    let s_next = per_event(&store, &metered, n, |i| renamed(&started, i), next).await;
    let c_next = per_event(&store, &metered, n, |i| renamed(&call, i), next).await;
    // The next call of that hour, before any of its marks moved: what the first 17 calls
    // of an hour cost.
    let c_fresh = per_event(&store, &metered, n, again("cn"), next + MINUTE_MS).await;
    // Over an hour of one call a minute: 17 before the first move (the first of them also
    // moves the last hour out, charged below), the 3 moves, 40 after.
    let hourly_call =
        |x: fn(&(f64, f64)) -> f64| (17.0 * x(&c_fresh) + 3.0 * x(&c_moving) + 40.0 * x(&c)) / 60.0;
    let c_hour = (hourly_call(|u| u.0), hourly_call(|u| u.1));
    let h_next = per_event(&store, &metered, 100, |i| renamed(&sample, i), next).await;
    let entity_hours = |entities: usize| entities as f64 * HOURS;
    let settle_read = entity_hours(FLEET.agents) * (s_next.0 - s.0)
        + entity_hours(FLEET.integrations) * (c_next.0 - c_fresh.0)
        + entity_hours(FLEET.hosts) * (h_next.0 - h.0);
    let settle_write = entity_hours(FLEET.agents) * (s_next.1 - s.1)
        + entity_hours(FLEET.integrations) * (c_next.1 - c_fresh.1)
        + entity_hours(FLEET.hosts) * (h_next.1 - h.1);
    let together = ((BATCH_SECONDS * 1_000.0 - EXECUTION_MS) / (BATCH_SECONDS * 1_000.0)).max(0.0);
    let executions = FLEET.agents as f64 * 12.0 * HOURS;
    let calls = FLEET.integrations as f64 * 60.0 * HOURS;
    let samples = FLEET.hosts as f64 * 120.0 * HOURS;
    let events = executions * 2.0 + calls + samples;
    // What a failure adds over its success, at the assumed failure share.
    let failure_write = FAILED_SHARE * (executions * (ff.1 - f.1) + calls * (cf.1 - c.1));
    let ingest = |clients: Clients| {
        let (exec_r, exec_w) = match clients {
            Clients::OneEventPerRequest => (s.0 + f.0, s.1 + f.1),
            Clients::Batching => (
                together * pair.0 + (1.0 - together) * (s.0 + f.0),
                together * pair.1 + (1.0 - together) * (s.1 + f.1),
            ),
        };
        let read = executions * exec_r + calls * c_hour.0 + samples * h.0 + settle_read;
        let write =
            executions * exec_w + calls * c_hour.1 + samples * h.1 + settle_write + failure_write;
        (read, write)
    };
    // Requests: one per event; or per host, one every batch window that has an event
    // (Poisson arrivals at the host's rate), and the sidecar's samples.
    let per_host_per_s = (FLEET.agents as f64 * 24.0 + FLEET.integrations as f64 * 60.0)
        / FLEET.hosts as f64
        / 3600.0;
    let windows_with_events = 1.0 - (-per_host_per_s * BATCH_SECONDS).exp();
    let requests = |clients: Clients| match clients {
        Clients::OneEventPerRequest => events,
        Clients::Batching => {
            FLEET.hosts as f64 * HOURS * (3600.0 / BATCH_SECONDS * windows_with_events + 120.0)
        }
    };
    let (ingest_read, ingest_write) = ingest(Clients::OneEventPerRequest);
    println!("\n| event (alone in its request) | RCU | WCU |");
    println!("|---|---|---|");
    println!("| execution.started | {:.2} | {:.2} |", s.0, s.1);
    println!("| execution.finished | {:.2} | {:.2} |", f.0, f.1);
    println!(
        "| execution.started and .finished in one request (batching clients) | {:.2} | {:.2} |",
        pair.0, pair.1
    );
    println!(
        "| execution.finished, failed (+ its failure item) | {:.2} | {:.2} |",
        ff.0, ff.1
    );
    println!(
        "| integration.call, before its hour's marks moved / the call that moves them to their bucket / after | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} |",
        c_fresh.0, c_moving.0, c.0, c_fresh.1, c_moving.1, c.1
    );
    println!(
        "| integration.call over an hour of one a minute (17, 3 and 40 of those) | {:.2} | {:.2} |",
        c_hour.0, c_hour.1
    );
    println!(
        "| integration.call, failed (+ its failure item) | {:.2} | {:.2} |",
        cf.0, cf.1
    );
    println!(
        "| failures at {:.0} % of executions and calls, per month | | {:.2} M WCU |",
        FAILED_SHARE * 100.0,
        failure_write / 1e6
    );
    println!("| host.sample | {:.2} | {:.2} |", h.0, h.1);
    println!(
        "| first event of an entity in an hour (agent / integration / host; moves the marks) | {:.2} / {:.2} / {:.2} | {:.2} / {:.2} / {:.2} |",
        s_next.0, c_next.0, h_next.0, s_next.1, c_next.1, h_next.1
    );
    println!(
        "| weighted mean over the month's {:.0} M events, hourly moves included | {:.2} | {:.2} |",
        events / 1e6,
        ingest_read / events,
        ingest_write / events
    );
    println!(
        "\nclients: {:.1} M events a month; one event per request: {:.1} M requests; batching every {BATCH_SECONDS:.0} s (one exporter per host, {:.0} % of windows hold an event; {:.0} % of executions have both events in one batch): {:.1} M requests",
        events / 1e6,
        requests(Clients::OneEventPerRequest) / 1e6,
        windows_with_events * 100.0,
        together * 100.0,
        requests(Clients::Batching) / 1e6
    );
    let ingest_lines = |clients: Clients| {
        let (read, write) = ingest(clients);
        vec![
            Line {
                component: "DynamoDB: ingest writes",
                detail: format!("{:.1} M events × {:.2} WCU", events / 1e6, write / events),
                dollars: ddb(0.0, write),
            },
            Line {
                component: "DynamoDB: ingest reads",
                detail: format!("{:.1} M events × {:.2} RCU", events / 1e6, read / events),
                dollars: ddb(read, 0.0),
            },
        ]
    };

    // The collector: steady cycles (the first raises the fleet's alerts once).
    let config = Config {
        probe_allowed_addresses: vec![target.addr.ip().into()],
        ..Config::default()
    };
    let state = shared::AppState::new(store.clone(), config);
    // What one check of a key reads (the first use of a key also notes it, which the
    // second does not).
    let ingest_key = e2e_tests::new_key(&store, TENANT, &["ingest"], "bench").await;
    let check = || async {
        shared::api::auth::authorize(&state, Some(&ingest_key), shared::api::auth::Scope::Ingest)
            .await
            .expect("checking the ingest key")
    };
    check().await;
    metered.reset();
    check().await;
    let (key_read, _) = take(&metered);
    let collector = Collector::new(&state).expect("building the collector");
    let first = t0 + 6 * MINUTE_MS;
    let report = collector
        .run_cycle(first)
        .await
        .expect("running the first collector cycle");
    metered.reset();
    let cycles_measured = 4;
    let mut last = report;
    for k in 1..=cycles_measured {
        last = collector
            .run_cycle(first + k * 30_000)
            .await
            .expect("running a collector cycle");
    }
    let (quiet_r, quiet_w) = take(&metered);
    let (quiet_r, quiet_w) = (
        quiet_r / cycles_measured as f64,
        quiet_w / cycles_measured as f64,
    );
    let cycles = 2.0 * 60.0 * HOURS;
    let steady = workload_cycles(&target).await;
    let (cr, cw) = (steady.read, steady.write);
    println!("\n| collector cycle | RCU | WCU |");
    println!("|---|---|---|");
    println!("| quiet: no events between cycles (mean of {cycles_measured}) | {quiet_r:.0} | {quiet_w:.0} |");
    println!(
        "| in the workload: its events between cycles, after {} min of them (mean of {}) | {cr:.0} | {cw:.0} |",
        steady.warm_minutes, steady.measured
    );
    println!(
        "\nin the workload, per cycle: {:.0} alerts raised, {:.0} resolved, {:.0} deleted (history past {} occurrences); {:.0} active, {:.0} stored (read every cycle)",
        steady.raised, steady.resolved, steady.deleted, shared::config::Config::default().alert_history, steady.active, steady.stored
    );
    lines.push(Line {
        component: "DynamoDB: collector reads",
        detail: format!("{cycles:.0} cycles × {cr:.0} RCU"),
        dollars: ddb(cr * cycles, 0.0),
    });
    lines.push(Line {
        component: "DynamoDB: collector writes",
        detail: format!("{cycles:.0} cycles × {cw:.0} WCU"),
        dollars: ddb(0.0, cw * cycles),
    });

    // Event evaluation (AWS: the evaluator function on the table's stream, batched for at
    // most a second): per batch, one read of the alerts of each touched source on which a
    // condition could hold, before or after the batch (a second of the reference workload:
    // ~87 events, each of another source); the alert writes are the same the cycle's
    // figures count. Which share of sources could alert is judged on the whole fleet.
    let per_second = (FLEET.agents as f64 * 24.0
        + FLEET.integrations as f64 * 60.0
        + FLEET.hosts as f64 * 120.0)
        / 3600.0;
    let data = store
        .tenant_data(TENANT)
        .await
        .expect("reading the tenant's data");
    let fleet = shared::store::live::Touched {
        agents: data.agents,
        integrations: data.integrations,
        hosts: data.hosts,
        system: None,
    };
    let all = fleet.agents.len() + fleet.integrations.len() + fleet.hosts.len();
    let may = shared::collector::alerting::sources_that_may_alert(
        &fleet,
        &state.config,
        first + cycles_measured * 30_000,
    );
    let share = may.len() as f64 / all as f64;
    let sources: Vec<_> = may
        .into_iter()
        .take((per_second * share).ceil() as usize)
        .collect();
    metered.reset();
    let _ = store.alerts_of_sources(TENANT, &sources).await;
    let (er, _) = take(&metered);
    let seconds = HOURS * 3600.0;
    lines.push(Line {
        component: "DynamoDB: event evaluation (alerts of the touched sources that may alert)",
        detail: format!(
            "{seconds:.0} batches of {per_second:.0} sources, {:.1} % of which may alert: {er:.1} RCU",
            share * 100.0
        ),
        dollars: ddb(er * seconds, 0.0),
    });

    // Dashboards: each loads what the overview shows when it (re)connects (the summary the
    // cycles wrote, the first page of agents and of integrations, the active alerts); API
    // Gateway closes WebSockets after 2 hours, so 12 loads a day each.
    metered.reset();
    let latency = 5000.0;
    let at = first + cycles_measured * 30_000;
    let summary = store
        .summary(TENANT)
        .await
        .expect("reading the summary the cycles wrote");
    assert!(summary.is_some(), "the cycles wrote a summary");
    let _ = store.agent_health_page(TENANT, at, None, 100).await;
    let _ = store
        .integration_health_page(TENANT, at, latency, None, 100)
        .await;
    let _ = store.active_alerts(TENANT).await;
    let (lr, _) = take(&metered);
    let loads = DASHBOARDS * 12.0 * HOURS / 24.0;
    lines.push(Line {
        component: "DynamoDB: API reads (dashboard loads)",
        detail: format!("{loads:.0} loads × {lr:.0} RCU"),
        dollars: ddb(lr * loads, 0.0),
    });

    // WebSocket connection items: $connect puts, $disconnect deletes, and two listings of
    // the tenant's connections per cycle (the collector's and the broadcaster's).
    for d in 0..20 {
        store
            .add_connection(TENANT, &format!("conn-{d:02}"), "dashboard", at)
            .await
            .unwrap_or_else(|e| panic!("storing dashboard connection {d}: {e}"));
    }
    let (_, put_w) = take(&metered);
    let _ = store.connection_feeds(TENANT).await;
    let (list_r, _) = take(&metered);
    let connects = loads;
    let ws_read = 2.0 * list_r * cycles;
    let ws_write = connects * (put_w / 20.0 + 1.0);
    lines.push(Line {
        component: "DynamoDB: WebSocket connection items",
        detail: format!("{connects:.0} connects; 2 listings × {list_r:.1} RCU per cycle"),
        dollars: ddb(ws_read, ws_write),
    });

    // Lambda and API Gateway. Ingest: 128 MB, 20 ms a request, batched or not (a batch's
    // entities are written concurrently: one DynamoDB round trip). Collector: an
    // invocation per cycle at 512 MB; notifier: one 60 s invocation a minute at 256 MB
    // (both below). Broadcaster: one
    // invocation per cycle, 128 MB, 200 ms.
    let report = last
        .tenants
        .first()
        .unwrap_or_else(|| panic!("the tenant was not evaluated"));
    let update_units =
        ws_units(&shared::ws::update::health_update(report).expect("building the health update"));
    // Live updates as deltas: what changes in a cycle, from the workload's own events. A
    // baseline cycle, then 30 s of the workload's events (1,000 executions started and
    // finished, 500 calls, 100 host samples), then the next cycle.
    let deltas = shared::ws::delta::Deltas::new();
    deltas.next(report).expect("building the baseline delta");
    let then = first + (cycles_measured + 1) * 30_000;
    let window: Vec<serde_json::Value> = (0..1_000)
        .flat_map(|i| {
            let mut a = started(10_000 + i);
            let mut b = finished(10_000 + i);
            a["timestamp"] = json!(shared::time::format_rfc3339(then - 20_000));
            b["timestamp"] = json!(shared::time::format_rfc3339(then - 18_800));
            [a, b]
        })
        .chain((0..500).map(|i| call(20_000 + i)))
        .chain((0..100).map(|i| sample(30_000 + i)))
        .collect();
    for batch in window.chunks(500) {
        e2e_tests::seed::ingest(&store, TENANT, json!(batch), then - 10_000).await;
    }
    let next = collector
        .run_cycle(then)
        .await
        .expect("running the cycle after 30 s of events");
    let delta = deltas
        .next(
            next.tenants
                .first()
                .unwrap_or_else(|| panic!("the tenant was not evaluated")),
        )
        .expect("building the delta");
    metered.reset();
    use shared::store::connections::{Feed, Listening, Watch};
    let delta_units =
        ws_units(&delta.messages(&Feed::Delta.into(), shared::ws::update::MAX_MESSAGE_BYTES));
    let overview_units = ws_units(&delta.messages(
        &Feed::DeltaOverview.into(),
        shared::ws::update::MAX_MESSAGE_BYTES,
    ));
    // The dashboard as it is: the first page (100) of agents and of integrations by name,
    // watched.
    let shown = next.tenants.first().map(|t| {
        let mut agents: Vec<String> = t.agents.iter().map(|a| a.agent_id.clone()).collect();
        let mut integrations: Vec<String> = t
            .integrations
            .iter()
            .map(|i| i.integration_id.clone())
            .collect();
        agents.truncate(100);
        integrations.truncate(100);
        Watch::new(agents, integrations)
    });
    let watching = Listening {
        feed: Feed::Delta,
        watch: shown,
    };
    let watch_units = ws_units(&delta.messages(&watching, shared::ws::update::MAX_MESSAGE_BYTES));
    println!(
        "\n| live update per dashboard and cycle | elements | 32 KB units |\n|---|---|---|\n| whole (mode=full) | every entity | {update_units:.0} |\n| delta (mode=delta): entities changed by 30 s of the workload | {} | {delta_units:.0} |\n| delta, overview (scope=overview) | alerts and system only | {overview_units:.0} |\n| delta, watching the dashboard's pages (100 agents, 100 integrations) | their changes, alerts and system | {watch_units:.0} |",
        delta.len()
    );
    let per_month = |units: f64| cycles * DASHBOARDS * units / 1e6 * WS_MESSAGES;
    println!(
        "WebSocket messages a month, 20 dashboards: whole ${:.0}, deltas ${:.0}, overview deltas ${:.2}, watching their pages ${:.2}",
        per_month(update_units),
        per_month(delta_units),
        per_month(overview_units),
        per_month(watch_units)
    );
    let minutes = 60.0 * HOURS;
    // The evaluator: one invocation per stream batch (at most one a second), 256 MB, 50 ms.
    // The broadcaster: one invocation per way of listening a cycle; each dashboard watching
    // its own pages is its own (20), 200 ms each at 128 MB. A watch message per dashboard
    // and page change: a few a load, counted as 4.
    let broadcasts = cycles * DASHBOARDS;
    let watches = connects * 4.0;
    // The collector: one invocation per cycle from its schedule's workflow (512 MB,
    // COLLECTOR_CYCLE_S each); the notifier: one invocation a minute that runs the minute
    // (256 MB).
    let other_requests = cycles + minutes + broadcasts + connects * 2.0 + watches + seconds;
    let other_gb_s = cycles * 0.5 * COLLECTOR_CYCLE_S
        + minutes * 0.25 * 60.0
        + broadcasts * 0.125 * 0.2
        + seconds * 0.25 * 0.05;
    // The HTTP API caches the authorizer's answer per key for 300 s (the template's
    // ReauthorizeEvery): one authorizer invocation (128 MB, 10 ms) and one key read per
    // client key every 5 minutes, a key per host here. Behind the ingest URL the function
    // reads the key for every request (at most: it reuses a key it looked up within the
    // second), and neither the gateway's fee nor the authorizer is paid.
    let key_checks = FLEET.hosts as f64 * HOURS * 3600.0 / 300.0;
    let request_lines = |clients: Clients| {
        let ingest_requests = requests(clients);
        let lambda_requests = ingest_requests + key_checks + other_requests;
        let gb_s = ingest_requests * 0.125 * 0.020 + key_checks * 0.125 * 0.010 + other_gb_s;
        let authorizer =
            key_checks / 1e6 * LAMBDA_REQUESTS + key_checks * 0.125 * 0.010 * LAMBDA_GB_S;
        let http_fee = ingest_requests / 1e6 * HTTP_API;
        let url_key_reads = ddb((ingest_requests - key_checks) * key_read, 0.0);
        let lines = vec![
            Line {
                component: "DynamoDB: key checks (the authorizer, once per key per 300 s)",
                detail: format!("{:.2} M checks × {key_read:.1} RCU", key_checks / 1e6),
                dollars: ddb(key_checks * key_read, 0.0),
            },
            Line {
                component: "Lambda: requests (ingest, the authorizer, collector, notifier, evaluator, broadcaster, WebSocket routes)",
                detail: format!("{:.1} M invocations", lambda_requests / 1e6),
                dollars: lambda_requests / 1e6 * LAMBDA_REQUESTS,
            },
            Line {
                component: "Lambda: GB-seconds",
                detail: format!("{:.0} k GB-s", gb_s / 1e3),
                dollars: gb_s * LAMBDA_GB_S,
            },
            Line {
                component: "API Gateway: HTTP requests",
                detail: format!("{:.1} M requests", ingest_requests / 1e6),
                dollars: http_fee,
            },
        ];
        (lines, http_fee + authorizer - url_key_reads)
    };
    // The dashboard asks for deltas and watches the pages it shows (a page of agents and
    // one of integrations): their changes, the alerts' and the system's.
    let ws_messages = cycles * DASHBOARDS * watch_units;
    lines.push(Line {
        component: "API Gateway: WebSocket messages",
        detail: format!(
            "{cycles:.0} deltas × 20 dashboards × {watch_units:.0} units of 32 KB (the changes of the 200 entities each shows, of {} entities and alert changes a cycle; every changed entity would be {delta_units:.0} units, whole updates {update_units:.0})",
            delta.len()
        ),
        dollars: ws_messages / 1e6 * WS_MESSAGES + DASHBOARDS * minutes / 1e6 * WS_MINUTES,
    });

    // The collector's schedule: an express workflow a minute, running from its first
    // cycle through the wait to its second, billed by duration in 64 MB steps.
    let workflow_s = 30.0 + 2.0 * COLLECTOR_CYCLE_S;
    lines.push(Line {
        component: "Step Functions: the collector's schedule (express workflows)",
        detail: format!(
            "{:.1} k workflows × {workflow_s:.0} s at 64 MB",
            minutes / 1e3
        ),
        dollars: minutes / 1e6 * SFN_REQUESTS + minutes * workflow_s * 0.0625 * SFN_GB_S,
    });

    let common = lines;
    for (clients, title) in [
        (
            Clients::Batching,
            format!("clients batching every {BATCH_SECONDS:.0} s (the goal's workload)"),
        ),
        (
            Clients::OneEventPerRequest,
            "one event per request".to_owned(),
        ),
    ] {
        let mut all = ingest_lines(clients);
        all.extend(common.iter().map(|l| Line {
            component: l.component,
            detail: l.detail.clone(),
            dollars: l.dollars,
        }));
        let (lines, url_saves) = request_lines(clients);
        all.extend(lines);
        print_bill(&title, &all, url_saves);
    }
}

/// Prints one bill: its lines, the DynamoDB total and the total, and the total when clients
/// send to the ingest URL, which saves `url_saves` (the gateway's fee and the authorizer,
/// less a key read per request).
fn print_bill(title: &str, lines: &[Line], url_saves: f64) {
    println!("\n### {title}\n");
    println!("| component | volume | $ / month |");
    println!("|---|---|---|");
    let mut dynamo = 0.0;
    let mut total = 0.0;
    for l in lines {
        println!("| {} | {} | {:.0} |", l.component, l.detail, l.dollars);
        if l.component.starts_with("DynamoDB") {
            dynamo += l.dollars;
        }
        total += l.dollars;
    }
    println!("| **DynamoDB total** | | **{dynamo:.0}** |");
    println!("| **total** | | **{total:.0}** |");
    println!(
        "| **total, clients sending to the ingest URL** | | **{:.0}** |",
        total - url_saves
    );
}

/// What a collector cycle costs in the reference workload's steady state.
struct WorkloadCycles {
    /// Read and write units of a cycle, mean over the measured ones.
    read: f64,
    write: f64,
    /// Minutes of the workload before the measured cycles.
    warm_minutes: i64,
    /// Cycles measured.
    measured: usize,
    /// Per measured cycle: alerts raised, resolved and deleted.
    raised: f64,
    resolved: f64,
    deleted: f64,
    /// After the last cycle: active alerts, and stored ones (active and resolved).
    active: f64,
    stored: f64,
}

/// Runs the collector every 30 s on a fleet of its own while the workload's events arrive
/// between the cycles (per 30 s: 1,000 executions started and finished, so each agent
/// runs one every 5 minutes; 500 calls; 100 host samples), and meters the cycles alone
/// once the alerts the workload keeps raising and resolving have built their history.
async fn workload_cycles(target: &e2e_tests::ProbeTarget) -> WorkloadCycles {
    const STEP_MS: i64 = 30_000;
    let (backend, _dir) = embedded_backend();
    let metered = Arc::new(Metered::new(backend));
    let t0 = chrono::Utc::now().timestamp_millis() - 2 * shared::time::HOUR_MS;
    seed(
        &(metered.clone() as Arc<dyn shared::store::Backend>),
        fleet(FLEET, t0, &target.url()),
    )
    .await;
    let store = Store::new(metered.clone());
    store
        .register_tenant(TENANT, t0)
        .await
        .expect("registering the tenant of the workload's cycles");
    let config = Config {
        probe_allowed_addresses: vec![target.addr.ip().into()],
        ..Config::default()
    };
    let state = shared::AppState::new(store.clone(), config);
    let collector = Collector::new(&state).expect("building the collector of the workload");
    // Ten occurrences of an agent's alert (the history kept) take 50 minutes when it
    // comes back every 5; the measured cycles come after.
    let warm_steps = 110;
    let measured = 10;
    let (mut read, mut write) = (0.0, 0.0);
    let (mut raised, mut resolved) = (0, 0);
    let mut stored_before = 0;
    for step in 0..warm_steps + measured {
        let now = t0 + step as i64 * STEP_MS;
        let n = step * 1_000;
        let events: Vec<serde_json::Value> = (0..1_000)
            .flat_map(|j| {
                let agent = format!("agent-{:05}", (n + j) * 7 % 10_000);
                [
                    json!({"event_id": format!("ws{}", n + j), "type": "execution.started", "agent_id": agent,
                        "execution_id": format!("wx{}", n + j), "operation": "Processing leads",
                        "timestamp": shared::time::format_rfc3339(now - 20_000)}),
                    json!({"event_id": format!("wf{}", n + j), "type": "execution.finished", "agent_id": agent,
                        "execution_id": format!("wx{}", n + j), "outcome": "completed", "duration_ms": 1200,
                        "timestamp": shared::time::format_rfc3339(now - 18_800)}),
                ]
            })
            .chain((0..500).map(|j| {
                json!({"event_id": format!("wc{}", step * 500 + j), "type": "integration.call",
                    "integration_id": format!("integration-{:04}", (step * 500 + j) % 1_000), "ok": true, "latency_ms": 120})
            }))
            .chain((0..100).map(|j| {
                json!({"event_id": format!("wh{}", step * 100 + j), "type": "host.sample",
                    "host_id": format!("host-{j:02}"), "cpu_usage": 40.0, "memory_usage": 50.0})
            }))
            .collect();
        for batch in events.chunks(500) {
            e2e_tests::seed::ingest(&store, TENANT, json!(batch), now - 10_000).await;
        }
        if step == warm_steps {
            stored_before = store
                .all_alerts(TENANT)
                .await
                .expect("counting the stored alerts")
                .len();
        }
        metered.reset();
        let report = collector
            .run_cycle(now)
            .await
            .unwrap_or_else(|e| panic!("running the workload's cycle {step}: {e}"));
        let (r, w) = take(&metered);
        if step >= warm_steps {
            read += r;
            write += w;
            for t in &report.tenants {
                raised += t.raised;
                resolved += t.resolved;
            }
        }
    }
    let all = store
        .all_alerts(TENANT)
        .await
        .expect("counting the stored alerts");
    let active = all.iter().filter(|(a, _)| a.resolved_at.is_none()).count();
    let m = measured as f64;
    // Every raise stores a new alert; what the store holds less than that was deleted.
    let deleted = (stored_before + raised).saturating_sub(all.len());
    WorkloadCycles {
        read: read / m,
        write: write / m,
        warm_minutes: warm_steps as i64 / 2,
        measured,
        raised: raised as f64 / m,
        resolved: resolved as f64 / m,
        deleted: deleted as f64 / m,
        active: active as f64,
        stored: all.len() as f64,
    }
}
