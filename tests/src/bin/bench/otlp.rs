//! OTLP trace ingestion: how fast `POST /v1/traces` turns an exporter's batches into
//! stored executions and calls, and what each span costs on DynamoDB.
//!
//! Each request is what an agent framework's exporter sends by default: a batch of 512
//! spans (here 102 agent runs of 5 spans: `invoke_agent`, two model calls, a tool call and a
//! plain HTTP span), from 10 agents calling 2 providers and 5 tools, in protobuf with gzip.
//! The receiver runs as the Lambda function and the local stack run it (decode, map,
//! ingest) over the embedded store, metered with DynamoDB's billing rules.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use shared::api::auth::Principal;
use shared::config::Config;
use shared::store::Store;

use super::collector::embedded_backend;
use super::Metered;

const RUNS_PER_REQUEST: usize = 102;
const REQUESTS: usize = 200;

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.to_owned()))
}

/// One exporter batch: request `r`'s runs, ending before `now_ms`.
fn request(r: usize, now_ms: i64) -> ExportTraceServiceRequest {
    let ns = |ms: i64| u64::try_from(ms).unwrap_or(0) * 1_000_000;
    let mut spans = Vec::new();
    for run in 0..RUNS_PER_REQUEST {
        let n = r * RUNS_PER_REQUEST + run;
        let trace: Vec<u8> = (n as u128).to_be_bytes().to_vec();
        let id = |k: u64| ((n as u64) << 3 | k).to_be_bytes().to_vec();
        // Within the current hour (an hour turning mid-run would add its moves to the
        // figures), over the last two minutes or so.
        let hour_start = now_ms - now_ms.rem_euclid(shared::time::HOUR_MS);
        let t0 = (now_ms - 120_000).max(hour_start + 1_000) + (n % 100) as i64 * 1_000;
        let span =
            |k: u64, parent: Option<u64>, name: &str, from: i64, to: i64, attrs: Vec<KeyValue>| {
                Span {
                    trace_id: trace.clone(),
                    span_id: id(k),
                    parent_span_id: parent.map(id).unwrap_or_default(),
                    name: name.to_owned(),
                    start_time_unix_nano: ns(t0 + from),
                    end_time_unix_nano: ns(t0 + to),
                    attributes: attrs,
                    ..Span::default()
                }
            };
        let agent = format!("agent-{}", n % 10);
        spans.push(span(
            1,
            None,
            "invoke_agent",
            0,
            2_000,
            vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.id", &agent),
                s("gen_ai.agent.name", &agent),
            ],
        ));
        for (k, provider, from) in [(2, "openai", 100), (3, "anthropic", 900)] {
            spans.push(span(
                k,
                Some(1),
                "chat",
                from,
                from + 300,
                vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", provider),
                    kv("gen_ai.usage.input_tokens", any_value::Value::IntValue(800)),
                    kv(
                        "gen_ai.usage.output_tokens",
                        any_value::Value::IntValue(120),
                    ),
                ],
            ));
        }
        spans.push(span(
            4,
            Some(1),
            "execute_tool",
            500,
            800,
            vec![
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", &format!("tool-{}", n % 5)),
            ],
        ));
        spans.push(span(
            5,
            Some(4),
            "GET",
            510,
            790,
            vec![s("http.request.method", "GET")],
        ));
    }
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = gz.write_all(bytes);
    gz.finish().unwrap_or_default()
}

pub async fn otlp_benchmark() {
    let (backend, _dir) = embedded_backend();
    let metered = Arc::new(Metered::new(backend));
    let state = shared::AppState::new(Store::new(metered.clone()), Config::default());
    let now = chrono::Utc::now().timestamp_millis();
    let bodies: Vec<Bytes> = (0..REQUESTS)
        .map(|r| Bytes::from(gzip(&request(r, now).encode_to_vec())))
        .collect();
    let spans = RUNS_PER_REQUEST * 5;
    let raw = request(0, now).encode_to_vec().len();
    println!(
        "\n| OTLP batch | spans | protobuf bytes | gzip bytes |\n|---|---|---|---|\n| one exporter request | {spans} | {raw} | {} |",
        bodies[0].len()
    );
    let mut latencies = Vec::new();
    metered.reset();
    let started = Instant::now();
    for body in &bodies {
        let mut req = http::Request::new(body.clone());
        let headers = req.headers_mut();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert("content-encoding", http::HeaderValue::from_static("gzip"));
        req.extensions_mut().insert(Principal {
            tenant: "bench".into(),
            name: "bench".into(),
            scopes: vec!["ingest".into()],
            key_id: "key_bench".into(),
        });
        let at = Instant::now();
        let res = shared::api::otlp::serve(&state, req, shared::api::otlp::Signal::Traces).await;
        latencies.push(at.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(res.status(), 200, "{:?}", res.body());
    }
    let took = started.elapsed().as_secs_f64();
    let read = metered
        .read_tenths
        .load(std::sync::atomic::Ordering::Relaxed) as f64
        / 10.0;
    let write = metered
        .write_tenths
        .load(std::sync::atomic::Ordering::Relaxed) as f64
        / 10.0;
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    let mapped = (RUNS_PER_REQUEST * 4 * REQUESTS) as f64;
    println!("\n| {REQUESTS} requests, one after another | value |\n|---|---|");
    println!(
        "| spans a second (decode, map, store) | {:.0} |",
        (spans * REQUESTS) as f64 / took
    );
    println!(
        "| request p50 / p99 ms | {:.1} / {:.1} |",
        pct(0.5),
        pct(0.99)
    );
    println!(
        "| WCU per request / per mapped span | {:.1} / {:.3} |",
        write / REQUESTS as f64,
        write / mapped
    );
    println!(
        "| RCU per request / per mapped span | {:.1} / {:.3} |",
        read / REQUESTS as f64,
        read / mapped
    );
    // The same runs sent as one event per execution start, finish and call, one per
    // request (how an agent without batching reports): 1 WCU an execution event, 2.2 a call
    // (as `bench cost` measures them).
    let per_run_events = 2.0 * 0.99 + 3.0 * 2.2;
    println!(
        "| WCU per agent run, OTLP batch / events one by one (cost bench figures) | {:.2} / {per_run_events:.2} |",
        write / (RUNS_PER_REQUEST * REQUESTS) as f64
    );
}
