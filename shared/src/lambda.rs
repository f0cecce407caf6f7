//! The Lambda side of the REST API: converts lambda_http requests to the library's `http`
//! types and runs one endpoint per function.

use bytes::Bytes;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayProxyResponse, ApiGatewayV2CustomAuthorizerSimpleResponse,
    ApiGatewayV2CustomAuthorizerV2Request, ApiGatewayWebsocketProxyRequest,
};
use lambda_http::{service_fn, Body, LambdaEvent, Request, RequestExt};

use crate::api::{self, auth, Endpoint};
use crate::time::Millis;
use crate::AppState;

/// Converts a lambda_http request to the handlers' request type, carrying as request
/// extensions the caller the Lambda authorizer identified (if API Gateway ran one) and the
/// origin the request came through ([`api::RequestOrigin`], for links in answers).
pub fn to_http(req: Request) -> http::Request<Bytes> {
    let context = req.request_context_ref();
    let principal = context
        .and_then(|c| c.authorizer())
        .and_then(|a| auth::principal_from_context(&a.fields));
    let origin = match context {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(c)) => {
            api::RequestOrigin::from_gateway(c.domain_name.as_deref(), c.stage.as_deref())
        }
        Some(lambda_http::request::RequestContext::ApiGatewayV1(c)) => {
            api::RequestOrigin::from_gateway(c.domain_name.as_deref(), c.stage.as_deref())
        }
        _ => None,
    };
    let (mut parts, body) = req.into_parts();
    if let Some(p) = principal {
        parts.extensions.insert(p);
    }
    if let Some(o) = origin {
        parts.extensions.insert(o);
    }
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(t) => Bytes::from(t),
        Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    http::Request::from_parts(parts, bytes)
}

/// The variable that tells the one Lambda binary which function it is (set per function in
/// the SAM template).
pub const FUNCTION_VAR: &str = "HEALTH_FUNCTION";

/// Every function the Lambda binary serves, by the name [`FUNCTION_VAR`] gives: the REST
/// endpoints (as [`Endpoint::function`] names them), the authorizer, the collector, the
/// notifier, the WebSocket `$connect` and `$disconnect` routes and the broadcaster.
pub fn function_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Endpoint::ALL.iter().map(|e| e.function()).collect();
    names.extend([
        "authorizer",
        "collector",
        "notifier",
        "evaluator",
        "ws-connect",
        "ws-disconnect",
        WS_WATCH,
        "broadcaster",
        INGEST_DIRECT,
    ]);
    names
}

/// The function of the WebSocket API's `watch` route (client messages).
pub const WS_WATCH: &str = "ws-watch";

/// The function that serves every ingest endpoint behind its own Lambda function URL
/// instead of the HTTP API: no gateway fee per request, the key checked in the function.
pub const INGEST_DIRECT: &str = "ingest-direct";

/// The endpoints [`INGEST_DIRECT`] serves.
pub const DIRECT_INGEST_ENDPOINTS: [Endpoint; 3] = [
    Endpoint::IngestEvents,
    Endpoint::IngestTraces,
    Endpoint::IngestMetrics,
];

/// Runs the function named by [`FUNCTION_VAR`]. One binary serves every function so that
/// one build (one arm64 link) produces what all of them deploy; each function is still its
/// own Lambda with its own IAM role. An unset or unknown name fails the cold start with a
/// message listing the names.
#[cfg(all(feature = "broadcast", feature = "invoke"))]
pub async fn run_from_env() -> Result<(), lambda_http::Error> {
    let name = std::env::var(FUNCTION_VAR).unwrap_or_default();
    let endpoint = Endpoint::ALL.into_iter().find(|e| e.function() == name);
    match (name.as_str(), endpoint) {
        (_, Some(endpoint)) => run(endpoint).await,
        ("authorizer", _) => run_authorizer().await,
        ("collector", _) => run_collector().await,
        ("notifier", _) => run_notifier().await,
        ("evaluator", _) => run_evaluator().await,
        ("ws-connect", _) => run_ws(WsRoute::Connect).await,
        ("ws-disconnect", _) => run_ws(WsRoute::Disconnect).await,
        (WS_WATCH, _) => run_ws(WsRoute::Watch).await,
        ("broadcaster", _) => run_broadcaster().await,
        (INGEST_DIRECT, _) => run_ingest_direct().await,
        _ => Err(format!(
            "{FUNCTION_VAR} must name the function to run ({}); got {name:?}",
            function_names().join(", ")
        )
        .into()),
    }
}

/// Runs the Lambda runtime loop for `endpoint` with state from the environment. A startup
/// error (bad configuration) fails the cold start with a message naming the variable.
pub async fn run(endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    #[allow(unused_mut)]
    let mut state = AppState::from_env().await?;
    #[cfg(feature = "broadcast")]
    if endpoint == Endpoint::RevokeKey {
        // Revoking a key closes the WebSocket connections it opened, through the
        // Management API when the template gives its endpoint.
        if let Ok(client) = crate::ws::broadcaster::Broadcaster::client_from_env().await {
            state.closer = Some(std::sync::Arc::new(
                crate::ws::broadcaster::ManagementCloser::new(client),
            ));
        }
    }
    let state = &state;
    if matches!(endpoint, Endpoint::IngestTraces | Endpoint::IngestMetrics) {
        return serve_otlp(state, endpoint).await;
    }
    if endpoint == Endpoint::Export {
        return serve_export(state).await;
    }
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(api::handle(state, to_http(req), Some(endpoint)).await)
    }))
    .await
}

/// Serves an OTLP endpoint, which answers in protobuf when asked in protobuf: a binary
/// body.
async fn serve_otlp(state: &AppState, endpoint: Endpoint) -> Result<(), lambda_http::Error> {
    lambda_http::run(service_fn(move |req: Request| async move {
        let response = api::handle_bytes(state, to_http(req), Some(endpoint)).await;
        Ok::<_, std::convert::Infallible>(to_lambda(response))
    }))
    .await
}

/// Runs [`INGEST_DIRECT`]: every ingest endpoint, by the request's path, the key checked
/// in the function (a function URL has no authorizer); any other path is 404.
pub async fn run_ingest_direct() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let state = &state;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, std::convert::Infallible>(to_lambda(ingest_direct(state, to_http(req)).await))
    }))
    .await
}

/// The answer of [`INGEST_DIRECT`] to one request.
pub async fn ingest_direct(state: &AppState, req: http::Request<Bytes>) -> http::Response<Bytes> {
    let endpoint = api::route(req.method(), req.uri().path())
        .ok()
        .map(|r| r.endpoint)
        .filter(|e| DIRECT_INGEST_ENDPOINTS.contains(e));
    match endpoint {
        Some(e) => api::handle_bytes(state, req, Some(e)).await,
        None => api::ApiError::NotFound(format!(
            "no route for {} {} here: this URL takes POST /api/health/events, /v1/traces and /v1/metrics",
            req.method(),
            req.uri().path()
        ))
        .into_response()
        .map(Bytes::from),
    }
}

/// A Lambda answer of `response`: JSON answers and errors are text, protobuf ones binary
/// (base64 on the wire).
fn to_lambda(response: http::Response<Bytes>) -> lambda_http::Response<Body> {
    let (parts, bytes) = response.into_parts();
    let body = if is_protobuf(&parts.headers) {
        Body::Binary(bytes.to_vec())
    } else {
        Body::Text(String::from_utf8_lossy(&bytes).into_owned())
    };
    lambda_http::Response::from_parts(parts, body)
}

/// Serves exports, streamed through the function's URL (InvokeMode RESPONSE_STREAM): an
/// export can be far larger than a buffered Lambda response (6 MB).
async fn serve_export(state: &AppState) -> Result<(), lambda_http::Error> {
    loop {
        let served =
            lambda_http::run_with_streaming_response(service_fn(move |req: Request| async move {
                use futures::TryStreamExt;
                // An earlier export whose client hung up gives its lease back first: the
                // environment was frozen between invocations, so it may not have yet.
                api::export::settled(std::time::Duration::from_secs(10)).await;
                let response = api::export::serve(state, to_http(req)).await;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    http_body_util::StreamBody::new(body.map_ok(http_body::Frame::data))
                }))
            }))
            .await;
        match served {
            Ok(()) => return Ok(()),
            // A client that hangs up mid-export breaks the response stream, which ends
            // the runtime's loop; the next invocation is served here rather than after
            // a new cold start.
            Err(e) => {
                tracing::warn!(error = %e, "an export's stream broke; serving the next invocation");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

fn is_protobuf(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-protobuf"))
}

/// The authorizer's answer to one API Gateway (HTTP API, payload 2.0, simple responses)
/// authorization request. A storage failure is an error, which API Gateway answers with
/// 500 rather than letting the request through.
pub async fn authorize(
    state: &AppState,
    request: &ApiGatewayV2CustomAuthorizerV2Request,
) -> Result<ApiGatewayV2CustomAuthorizerSimpleResponse, api::ApiError> {
    let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
    if let Some(p) = auth::authorize_request(state, &request.headers).await? {
        response.is_authorized = true;
        response.context = auth::authorizer_context(&p);
    }
    Ok(response)
}

/// Runs the Lambda authorizer.
pub async fn run_authorizer() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let state = &state;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| async move {
            authorize(state, &event.payload)
                .await
                .map_err(|e| -> lambda_http::Error { Box::new(e) })
        },
    ))
    .await
}

/// Time kept free before the Lambda deadline, so a cycle is not cut off half-way.
const DEADLINE_MARGIN_MS: i64 = 10_000;

/// What one collector invocation did, returned as the invocation's result (visible in the
/// console and in `cargo lambda invoke`).
#[derive(Debug, Default, serde::Serialize)]
pub struct InvocationSummary {
    /// Cycles run (per tenant claims counted once).
    pub cycles: usize,
    /// Tenant cycles evaluated.
    pub tenants_evaluated: usize,
    /// Tenant cycles another run had claimed.
    pub tenants_skipped: usize,
    /// Tenant cycles that failed.
    pub tenants_failed: usize,
    /// Probes recorded in cycles.
    pub probes: usize,
    /// Alerts raised.
    pub raised: usize,
    /// Alerts whose severity changed.
    pub updated: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Why nothing ran, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled: Option<&'static str>,
    /// Where the next step resumes, when a state machine drives the steps and something
    /// falls due later within the minute (the state machine waits, then invokes again
    /// with it); absent when the minute is done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<Step>,
}

/// Where a collector run driven by the schedule's state machine stands: the input of
/// each step (`{"steps": true}` starts a minute), and what a step hands to the next.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// Whether a state machine drives the steps (otherwise one invocation runs the whole
    /// minute, sleeping between cycles).
    #[serde(default)]
    pub steps: bool,
    /// When the minute's steps end, ms (set by its first step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Millis>,
    /// The start of the next cycle's slot, ms (the first step runs a cycle at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cycle: Option<Millis>,
    /// Seconds the state machine waits before the next step.
    #[serde(default)]
    pub wait_s: u64,
}

/// A step waits in its invocation, rather than ending it, for what is due sooner than
/// this: a hand-over through the state machine costs more than it saves below it.
pub const STEP_STAY_MS: i64 = 2_000;

/// One collector invocation from the EventBridge schedule: cycles every
/// `HEALTH_POLLING_INTERVAL` (and recovery attempts between them) until the next invocation
/// is due or the Lambda deadline nears, whichever is first.
pub async fn collect(
    state: &AppState,
    collector: &crate::collector::Collector,
    handover: Option<&crate::ws::handover::Handover>,
    deadline_ms: i64,
) -> InvocationSummary {
    collect_step(state, collector, handover, Step::default(), deadline_ms).await
}

/// One collector invocation. Without `step.steps`, as [`collect`]. With it (the schedule's
/// state machine), it runs what is due now and, if something falls due later within the
/// minute, returns at once with the [`Step`] to resume from in `next`: the state machine
/// waits `wait_s` and invokes again, so no invocation is billed while it only waits
/// between cycles. What the cycles held back is written when the minute ends (the next
/// step, one polling interval on, normally runs in the same warm instance and writes it).
pub async fn collect_step(
    state: &AppState,
    collector: &crate::collector::Collector,
    handover: Option<&crate::ws::handover::Handover>,
    step: Step,
    deadline_ms: i64,
) -> InvocationSummary {
    let mut summary = InvocationSummary::default();
    if !state.config.polling_enabled {
        summary.disabled = Some("HEALTH_POLLING_ENABLED=false");
        return summary;
    }
    let clock = &state.clock;
    let now = clock.now_ms();
    let (window, stop) = invocation_end(state, deadline_ms, now);
    // Run at least one cycle even when the function's timeout is short.
    let stop = stop.max(now + 1);
    let until = match (step.steps, step.until) {
        (true, Some(u)) => u,
        (true, None) => now + window,
        (false, _) => stop,
    };
    tracing::info!(
        window_ms = window,
        deadline_in_ms = deadline_ms - now,
        steps = step.steps,
        "collector invocation"
    );
    let failed_before = collector.stats().process().failed_cycles;
    let mut longest_cycle_s: f64 = 0.0;
    let next = {
        let on_tenant = |report: crate::collector::TenantReport| async move {
            // Each tenant's update leaves as soon as its cycle ends.
            if let Some(h) = handover {
                h.publish(&report).await;
            }
            report
        };
        let mut on_cycle = |report: crate::collector::CycleReport| {
            longest_cycle_s = longest_cycle_s.max(collector.stats().process().last_cycle_seconds);
            summary.add_cycle(&report);
            async {}
        };
        let mut next_cycle = step.next_cycle.unwrap_or(now);
        loop {
            let now = clock.now_ms();
            if now >= stop.min(until) {
                break None;
            }
            next_cycle = collector
                .run_due(now, next_cycle, &on_tenant, &mut on_cycle)
                .await;
            let wake = collector.next_due(next_cycle);
            let now = clock.now_ms();
            if wake >= until {
                break None;
            }
            if step.steps && wake - now > STEP_STAY_MS {
                break Some(Step {
                    steps: true,
                    until: Some(until),
                    next_cycle: Some(next_cycle),
                    wait_s: u64::try_from((wake - now + 999) / 1000).unwrap_or(1),
                });
            }
            let wait = (wake.min(stop) - now).max(0);
            tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ))
            .await;
        }
    };
    if next.is_none() {
        // This process may not run again: what the cycles held back is written now.
        collector.flush_probes().await;
    }
    summary.next = next;
    // What the template's alarms watch: cycles that fail or run long.
    let failed = collector
        .stats()
        .process()
        .failed_cycles
        .saturating_sub(failed_before);
    crate::telemetry::emf(
        "collector",
        &[
            ("Cycles", "Count", summary.cycles as f64),
            ("FailedCycles", "Count", failed as f64),
            ("CycleTimeMax", "Milliseconds", longest_cycle_s * 1000.0),
            ("AlertsRaised", "Count", summary.raised as f64),
        ],
    );
    summary
}

impl InvocationSummary {
    fn add_cycle(&mut self, report: &crate::collector::CycleReport) {
        self.cycles += 1;
        self.tenants_evaluated += report.tenants.len();
        self.tenants_skipped += report.skipped;
        self.tenants_failed += report.failed.len();
        for t in &report.tenants {
            self.probes += t.probes;
            self.raised += t.raised;
            self.updated += t.updated;
            self.resolved += t.resolved;
        }
    }
}

/// The window a scheduled invocation (collector or notifier) runs for, and when it stops:
/// when the next invocation is due, or before the Lambda deadline nears (with a margin, a
/// third of the time left if that is less). EventBridge fires at most once a minute: one
/// invocation runs until the next one is due (COLLECTOR_INVOCATION_SECONDS, 60 by
/// default). A deadline in the past is not a real one (some emulators send none).
fn invocation_end(state: &AppState, deadline_ms: i64, now: i64) -> (i64, i64) {
    let window = i64::try_from(state.config.collector_invocation_secs * 1000).unwrap_or(60_000);
    let mut until = now + window;
    if deadline_ms > now {
        until = until.min(deadline_ms - DEADLINE_MARGIN_MS.min((deadline_ms - now) / 3));
    }
    (window, until)
}

/// What one notifier invocation did.
#[derive(Debug, Default, serde::Serialize)]
pub struct NotifierSummary {
    /// Messages decided.
    pub decided: usize,
    /// Messages delivered.
    pub delivered: usize,
    /// Delivery attempts that failed.
    pub failed_attempts: usize,
}

/// How often a notifier invocation looks again when nothing is due sooner: nothing wakes
/// it across Lambda functions, so this bounds the delay from a raised alert to its message.
pub const NOTIFIER_TICK_MS: i64 = 2000;

/// One notifier invocation from the EventBridge schedule: passes until the next invocation
/// is due or the deadline nears (the collector's window and margin).
pub async fn notify(
    state: &AppState,
    notifier: &crate::notify::Notifier,
    deadline_ms: i64,
) -> NotifierSummary {
    let mut summary = NotifierSummary::default();
    let (_, until) = invocation_end(state, deadline_ms, state.clock.now_ms());
    // Nothing wakes it across Lambda functions: each tenant is passed again when it has
    // something due, at most a tick after its last pass.
    let never = std::sync::Arc::new(tokio::sync::Notify::new());
    notifier
        .run_until(
            std::sync::Arc::clone(&state.clock),
            Some(until),
            never,
            NOTIFIER_TICK_MS,
            |_, r| {
                summary.decided += r.decided;
                summary.delivered += r.delivered;
                summary.failed_attempts += r.failed_attempts;
            },
        )
        .await;
    crate::telemetry::emf(
        "notifier",
        &[
            ("NotificationsSent", "Count", summary.delivered as f64),
            (
                "NotificationsFailed",
                "Count",
                summary.failed_attempts as f64,
            ),
        ],
    );
    summary
}

/// Runs the notifier function.
pub async fn run_notifier() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let notifier = crate::notify::Notifier::new(&state)?;
    let (state, notifier) = (&state, &notifier);
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            Ok::<_, lambda_http::Error>(notify(state, notifier, deadline).await)
        },
    ))
    .await
}

/// Runs the evaluator function: batches of the table's stream (new images of the live
/// items and gauges that ingestion and probes wrote) are evaluated as
/// [`crate::collector::alerting::evaluate_touched`] evaluates them locally, without reading
/// those items again; a tenant whose alerts changed gets a live update through the
/// broadcaster function.
#[cfg(feature = "invoke")]
pub async fn run_evaluator() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let handover = crate::ws::handover::Invoker::from_env(state.store.clone())
        .await
        .map(crate::ws::handover::Handover::Invoke);
    let (state, handover) = (&state, handover.as_ref());
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_http::Error>(evaluate_stream(state, handover, &event.payload).await)
        },
    ))
    .await
}

/// What the evaluator did with one stream batch; its answer (for the logs and tests).
#[derive(Debug, Default, serde::Serialize)]
pub struct StreamOutcome {
    /// Stream records in the batch.
    pub records: usize,
    /// Records that were not a live item or the gauges (or could not be read).
    pub skipped: usize,
    /// Tenants evaluated.
    pub tenants: usize,
    /// Alerts raised.
    pub raised: usize,
    /// Alerts whose severity changed.
    pub updated: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Tenants whose evaluation failed (left to the next cycle).
    pub failed: usize,
}

/// The tenant and the source state of a stream image of a live item or the gauges; `None`
/// for any other item, a missing image, or one that cannot be read.
#[cfg(feature = "dynamodb")]
fn stream_image(image: &serde_json::Value) -> Option<(String, crate::store::live::Touched)> {
    use crate::store::live::{AgentData, IntegrationData, Touched};
    use crate::store::Record;
    if image.is_null() {
        return None;
    }
    let item = crate::store::dynamodb::from_stream_image(image.clone()).ok()?;
    let tenant = crate::store::layout::tenant_of_live(&item.key.pk)?.to_owned();
    let mut touched = Touched::default();
    match item.record {
        Record::Agent(l) => touched.agents.push(AgentData::from(l)),
        Record::Integration(l) => touched.integrations.push(IntegrationData::from(l)),
        Record::Host(l) => touched.hosts.push(l.record),
        Record::System(s) => touched.system = Some(s),
        _ => return None,
    }
    Some((tenant, touched))
}

/// Evaluates one DynamoDB stream batch (`{"Records": [{"dynamodb": {"NewImage": ...,
/// "OldImage": ...}}]}`).
/// Failures are logged and counted, never returned: the stream would retry the whole
/// batch, and the next collector cycle re-evaluates every source anyway.
#[cfg(feature = "dynamodb")]
pub async fn evaluate_stream(
    state: &AppState,
    handover: Option<&crate::ws::handover::Handover>,
    payload: &serde_json::Value,
) -> StreamOutcome {
    let mut out = StreamOutcome::default();
    let tenants = stream_sources(payload, &mut out);
    let now = state.clock.now_ms();
    let tenants = tenants.into_iter().filter_map(|(tenant, (after, before))| {
        // Only sources on which some condition could hold, before or after, have alerts
        // to read (half the batch's reads at the reference workload were of sources with
        // no alert and nothing to raise).
        let mut wanted =
            crate::collector::alerting::sources_that_may_alert(&after, &state.config, now);
        wanted.extend(crate::collector::alerting::sources_that_may_alert(
            &before,
            &state.config,
            now,
        ));
        let after = after.only(&wanted);
        (!after.is_empty()).then_some((tenant, after))
    });
    let tallied = |_: &str, tally: Option<crate::collector::alerting::Tally>| {
        out.tenants += 1;
        let Some(tally) = tally else {
            out.failed += 1;
            return false;
        };
        out.raised += tally.raised;
        out.updated += tally.updated;
        out.resolved += tally.resolved;
        tally.changed() && handover.is_some()
    };
    let publish = |report: crate::collector::TenantReport| async move {
        if let Some(handover) = handover {
            handover.publish_event(&report).await;
        }
    };
    crate::collector::alerting::evaluate_tenants(
        state,
        tenants,
        now,
        "stream evaluation failed",
        tallied,
        &publish,
    )
    .await;
    tracing::info!(
        records = out.records,
        tenants = out.tenants,
        raised = out.raised,
        resolved = out.resolved,
        "stream batch evaluated"
    );
    out
}

/// Per tenant: the sources as a stream batch left them, and as they were before it.
#[cfg(feature = "dynamodb")]
type StreamSources =
    std::collections::BTreeMap<String, (crate::store::live::Touched, crate::store::live::Touched)>;

/// Reads a stream batch into the sources it touched; `out` counts the records and those
/// skipped.
#[cfg(feature = "dynamodb")]
fn stream_sources(payload: &serde_json::Value, out: &mut StreamOutcome) -> StreamSources {
    let mut tenants = StreamSources::default();
    let records = payload["Records"].as_array().cloned().unwrap_or_default();
    out.records = records.len();
    for r in records {
        let Some((tenant, image)) = stream_image(&r["dynamodb"]["NewImage"]) else {
            out.skipped += 1;
            continue;
        };
        let entry = tenants.entry(tenant).or_default();
        // The oldest old image of a source in the batch is what the last evaluation saw.
        if let Some((_, before)) = stream_image(&r["dynamodb"]["OldImage"]) {
            let mut first = before;
            first.merge(std::mem::take(&mut entry.1));
            entry.1 = first;
        }
        // A batch may hold several images of one item; merging keeps the last (newest).
        entry.0.merge(image);
    }
    tenants
}

/// Runs the collector function.
#[cfg(feature = "invoke")]
pub async fn run_collector() -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let collector = crate::collector::Collector::new(&state)?;
    // Without a broadcaster function configured the collector still runs; dashboards
    // then refresh by polling the REST API.
    let handover = crate::ws::handover::Invoker::from_env(state.store.clone())
        .await
        .map(crate::ws::handover::Handover::Invoke);
    if handover.is_none() {
        tracing::warn!("BROADCASTER_FUNCTION is not set: no live updates are sent");
    }
    let (state, collector, handover) = (&state, &collector, handover.as_ref());
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
            // The schedule's state machine sends steps; a scheduled event, or a manual
            // invocation with any other payload (`aws lambda invoke` with `{}`), runs
            // the whole minute in one invocation.
            let step = serde_json::from_value::<Step>(event.payload.clone()).unwrap_or_default();
            match serde_json::from_value::<aws_lambda_events::eventbridge::EventBridgeEvent>(
                event.payload,
            ) {
                Ok(e) => tracing::info!(source = %e.source, detail_type = %e.detail_type, "collector invoked"),
                Err(_) => tracing::info!(steps = step.steps, "collector invoked without a scheduled event"),
            }
            Ok::<_, lambda_http::Error>(
                collect_step(state, collector, handover, step, deadline).await,
            )
        },
    ))
    .await
}

/// The answer to a WebSocket route: API Gateway turns a non-2xx answer to `$connect` into
/// a refused handshake with that status.
fn ws_response(result: Result<(), api::ApiError>) -> ApiGatewayProxyResponse {
    let mut response = ApiGatewayProxyResponse::default();
    match result {
        Ok(()) => response.status_code = 200,
        Err(e) => {
            let r = e.into_response();
            response.status_code = i64::from(r.status().as_u16());
            response.headers = r.headers().clone();
            response.body = Some(Body::Text(r.into_body()));
        }
    }
    response
}

/// `$connect` of the WebSocket API: checks `?token=` and stores the connection.
pub async fn ws_connect(
    state: &AppState,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let id = event.request_context.connection_id.as_deref().unwrap_or("");
    let token = event.query_string_parameters.first("token");
    let query = &event.query_string_parameters;
    let feed = crate::store::connections::Feed::parse(query.first("mode"), query.first("scope"))
        .map_err(|m| api::ApiError::bad_request("invalid_feed", m));
    let connected = match feed {
        Ok(feed) => crate::ws::connect(state, token, feed, id).await.map(|_| ()),
        Err(e) => Err(e),
    };
    ws_response(connected)
}

/// `$disconnect` of the WebSocket API: forgets the connection.
pub async fn ws_disconnect(
    state: &AppState,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let id = event.request_context.connection_id.as_deref().unwrap_or("");
    ws_response(crate::ws::disconnect(state, id).await)
}

/// The `watch` route of the WebSocket API: a client message saying what the connection
/// shows (see [`crate::ws::on_message`]).
pub async fn ws_watch(
    state: &AppState,
    event: &ApiGatewayWebsocketProxyRequest,
) -> ApiGatewayProxyResponse {
    let id = event.request_context.connection_id.as_deref().unwrap_or("");
    let body = event.body.as_deref().unwrap_or("");
    ws_response(crate::ws::on_message(state, id, body).await)
}

/// The routes of the WebSocket API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsRoute {
    /// `$connect`.
    Connect,
    /// `$disconnect`.
    Disconnect,
    /// `watch` (a client message).
    Watch,
}

/// Runs the function of a WebSocket route.
pub async fn run_ws(route: WsRoute) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let state = &state;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            Ok::<_, std::convert::Infallible>(match route {
                WsRoute::Connect => ws_connect(state, &event.payload).await,
                WsRoute::Disconnect => ws_disconnect(state, &event.payload).await,
                WsRoute::Watch => ws_watch(state, &event.payload).await,
            })
        },
    ))
    .await
}

/// Runs the broadcaster function: sends an event's messages to the tenant's connections.
/// A storage failure fails the invocation, so Lambda retries the asynchronous event.
#[cfg(feature = "broadcast")]
pub async fn run_broadcaster() -> Result<(), lambda_http::Error> {
    use crate::ws::broadcaster::Broadcaster;
    use crate::ws::handover::BroadcastRequest;
    crate::telemetry::init();
    let state = AppState::from_env().await?;
    let broadcaster = Broadcaster::new(Broadcaster::client_from_env().await?, state.store);
    let broadcaster = &broadcaster;
    lambda_http::lambda_runtime::run(service_fn(
        move |event: LambdaEvent<BroadcastRequest>| async move {
            let request = event.payload;
            let messages: Vec<&str> = request.messages.iter().map(|m| m.get()).collect();
            let sent = if request.connections.is_empty() {
                broadcaster
                    .broadcast_feed(&request.tenant, &request.feed.into(), &messages)
                    .await
            } else {
                broadcaster
                    .broadcast_to(&request.tenant, request.connections, &messages)
                    .await
            };
            sent.map_err(|e| -> lambda_http::Error { Box::new(e) })
        },
    ))
    .await
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::state::testing::{connections, state, state_with_reader};

    /// State with `config` and one tenant, and a collector over it.
    async fn collector_with(
        config: Config,
    ) -> (AppState, crate::collector::Collector, tempfile::TempDir) {
        let (mut state, dir) = state();
        state.config = Arc::new(config);
        state
            .store
            .register_tenant("acme", 0)
            .await
            .unwrap_or_else(|e| panic!("registering tenant acme: {e}"));
        let collector = crate::collector::Collector::new(&state)
            .unwrap_or_else(|e| panic!("building the collector: {e}"));
        (state, collector, dir)
    }

    #[tokio::test]
    async fn a_disabled_collector_returns_at_once_without_a_cycle() {
        let (state, collector, _dir) = collector_with(Config {
            polling_enabled: false,
            ..Config::default()
        })
        .await;
        let summary = collect(&state, &collector, None, i64::MAX).await;
        assert_eq!(summary.disabled, Some("HEALTH_POLLING_ENABLED=false"));
        assert_eq!(summary.cycles, 0);
    }

    /// A collector cycling every `interval` seconds, `window` seconds an invocation.
    async fn collector_every(
        interval: u64,
        window: u64,
    ) -> (AppState, crate::collector::Collector, tempfile::TempDir) {
        collector_with(Config {
            polling_interval_secs: interval,
            collector_invocation_secs: window,
            ..Config::default()
        })
        .await
    }

    #[tokio::test]
    async fn an_invocation_runs_a_cycle_per_slot_until_its_window_ends() {
        let (state, collector, _dir) = collector_every(1, 2).await;
        let summary = collect(&state, &collector, None, i64::MAX).await;
        // Now, then the starts of the next one or two 1-second slots within 2 s.
        assert!((2..=3).contains(&summary.cycles), "{summary:?}");
        assert_eq!(summary.tenants_evaluated, summary.cycles);
        assert_eq!(
            summary.next, None,
            "a scheduled invocation runs its whole window"
        );
    }

    #[tokio::test]
    async fn steps_run_each_slots_cycle_and_hand_the_waits_to_the_state_machine() {
        let (state, collector, _dir) = collector_every(4, 8).await;
        let mut step = Step {
            steps: true,
            ..Step::default()
        };
        let (mut cycles, mut steps, mut until) = (0, 0, None);
        loop {
            let summary = collect_step(&state, &collector, None, step.clone(), i64::MAX).await;
            steps += 1;
            cycles += summary.cycles;
            assert_eq!(summary.tenants_evaluated, summary.cycles, "{summary:?}");
            let Some(next) = summary.next else { break };
            // Only a wait longer than a step stays for is handed over; never past a slot.
            assert!((2..=4).contains(&next.wait_s), "step {steps}: {next:?}");
            assert!(
                until.is_none_or(|u| next.until == Some(u)),
                "the minute's end moved"
            );
            until = next.until;
            tokio::time::sleep(std::time::Duration::from_secs(next.wait_s)).await;
            step = next;
            assert!(steps < 10, "the steps do not end");
        }
        // A cycle at once, then one at each 4-second slot that starts within the 8 s.
        assert!(
            (2..=3).contains(&cycles),
            "{cycles} cycles in {steps} steps"
        );
        assert!(steps >= 2, "no wait was handed over: {steps} steps");
    }

    #[tokio::test]
    async fn an_api_gateway_event_is_served_for_the_tenant_the_authorizer_passed() {
        let (state, _dir) = state();
        let update = crate::store::agents::AgentUpdate {
            agent_name: Some("Acme bot".into()),
            ..Default::default()
        };
        state
            .store
            .put_agent("acme", "a1", &update, 0)
            .await
            .expect("putting agent a1 of acme");
        state
            .store
            .put_agent("other", "a1", &Default::default(), 0)
            .await
            .expect("putting agent a1 of other");
        let event = include_str!("../tests/fixtures/apigw-v2-get-agent.json");
        let req = lambda_http::request::from_str(event).unwrap_or_else(|e| panic!("fixture: {e}"));
        let res = api::handle(&state, to_http(req), Some(Endpoint::GetAgentHealth)).await;
        assert_eq!(res.status(), 200, "{}", res.body());
        let body: serde_json::Value = serde_json::from_str(res.body()).unwrap_or_default();
        assert_eq!(body["agent_name"], "Acme bot");

        // The same event for another function's route is not served by this one.
        let req = lambda_http::request::from_str(event).unwrap_or_else(|e| panic!("fixture: {e}"));
        assert_eq!(
            api::handle(&state, to_http(req), Some(Endpoint::GetSystem))
                .await
                .status(),
            404
        );
        // A read-only caller is refused an ingest route.
        let put = event
            .replace("\"GET\"", "\"PUT\"")
            .replace("/api/health/agent/a1", "/api/health/agents/a1");
        let req = lambda_http::request::from_str(&put).unwrap_or_else(|e| panic!("fixture: {e}"));
        assert_eq!(api::handle(&state, to_http(req), None).await.status(), 403);
    }

    /// Without `HEALTH_PUBLIC_URL` (the template sets none for HTTP API functions, since
    /// the API's URL there would make a dependency cycle), a badge's URL starts with the
    /// address the request came through, and the override still wins.
    #[tokio::test]
    async fn a_badge_made_through_api_gateway_links_to_the_address_the_caller_used() {
        let (mut state, _dir) = state();
        state
            .store
            .put_agent("acme", "a1", &Default::default(), 0)
            .await
            .unwrap_or_else(|e| panic!("seeding agent a1: {e}"));
        let event = include_str!("../tests/fixtures/apigw-v2-get-agent.json")
            .replace("\"GET /api/health/agent/{agent_id}\"", "\"POST /api/health/badges\"")
            .replace("\"method\": \"GET\"", "\"method\": \"POST\"")
            .replace("/api/health/agent/a1", "/api/health/badges")
            .replace("\"scopes\": \"read\"", "\"scopes\": \"admin\"")
            .replace(
                "\"isBase64Encoded\": false",
                "\"body\": \"{\\\"source_type\\\": \\\"agent\\\", \\\"source_id\\\": \\\"a1\\\"}\", \"isBase64Encoded\": false",
            );
        let badge_url = |state: &AppState| {
            let req = lambda_http::request::from_str(&event)
                .unwrap_or_else(|e| panic!("parsing the badge event: {e}"));
            let state = state.clone();
            async move {
                let res = api::handle(&state, to_http(req), Some(Endpoint::CreateBadge)).await;
                assert_eq!(res.status(), 201, "creating a badge: {}", res.body());
                let body: serde_json::Value = serde_json::from_str(res.body())
                    .unwrap_or_else(|e| panic!("the badge answer is not JSON ({e})"));
                body["url"].as_str().unwrap_or_default().to_owned()
            }
        };
        let url = badge_url(&state).await;
        assert!(
            url.starts_with(
                "https://abc123.execute-api.eu-west-1.amazonaws.com/api/health/badge/ahb_"
            ),
            "{url}"
        );
        state.config = Arc::new(Config {
            public_url: Some("https://health.example.com".to_owned()),
            ..Config::default()
        });
        let url = badge_url(&state).await;
        assert!(
            url.starts_with("https://health.example.com/api/health/badge/ahb_"),
            "{url}"
        );
    }

    /// An API Gateway WebSocket event from a fixture's text.
    fn ws_event(text: &str) -> ApiGatewayWebsocketProxyRequest {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("reading a WebSocket fixture: {e}"))
    }

    #[tokio::test]
    async fn websocket_connect_and_disconnect_events_keep_the_connection_table() {
        let (state, _dir, key) = state_with_reader().await;
        let connect = include_str!("../tests/fixtures/apigw-websocket-connect.json");
        let refused = ws_connect(&state, &ws_event(&connect.replace("KEY", "ahm_nope"))).await;
        assert_eq!(refused.status_code, 401);
        let body = match &refused.body {
            Some(Body::Text(t)) => t.clone(),
            other => panic!("not a text body: {other:?}"),
        };
        assert!(body.contains("not valid"), "{body}");
        assert!(connections(&state, "acme").await.is_empty());

        let accepted = ws_connect(&state, &ws_event(&connect.replace("KEY", &key))).await;
        assert_eq!(accepted.status_code, 200);
        assert_eq!(
            connections(&state, "acme").await,
            vec!["AAAA1234=".to_owned()]
        );
        let disconnect = include_str!("../tests/fixtures/apigw-websocket-disconnect.json");
        assert_eq!(
            ws_disconnect(&state, &ws_event(disconnect))
                .await
                .status_code,
            200
        );
        assert!(connections(&state, "acme").await.is_empty());
    }

    /// A connection that asks for deltas gets that feed, and the `watch` route stores what
    /// it shows; a feed that does not exist is refused with 400 before anything is stored.
    #[tokio::test]
    async fn a_delta_connection_keeps_its_feed_and_what_the_watch_route_says_it_shows() {
        use crate::store::connections::{Feed, Listening, Watch};
        let (state, _dir, key) = state_with_reader().await;
        let connect = include_str!("../tests/fixtures/apigw-websocket-connect.json");
        let with_mode = |mode: &str| -> ApiGatewayWebsocketProxyRequest {
            let mut v: serde_json::Value = serde_json::from_str(&connect.replace("KEY", &key))
                .unwrap_or_else(|e| panic!("fixture: {e}"));
            v["queryStringParameters"]["mode"] = serde_json::json!(mode);
            v["multiValueQueryStringParameters"]["mode"] = serde_json::json!([mode]);
            serde_json::from_value(v).unwrap_or_else(|e| panic!("fixture with a mode: {e}"))
        };
        let delta = ws_connect(&state, &with_mode("delta")).await;
        assert_eq!(delta.status_code, 200);
        let feeds = async || {
            state
                .store
                .connection_feeds("acme")
                .await
                .expect("reading acme's connection feeds")
        };
        let listening = |watch| Listening {
            feed: Feed::Delta,
            watch,
        };
        assert_eq!(
            feeds().await,
            vec![("AAAA1234=".to_owned(), listening(None))]
        );
        // The `watch` route: the message's entities become what the connection watches.
        let watch = include_str!("../tests/fixtures/apigw-websocket-watch.json");
        assert_eq!(ws_watch(&state, &ws_event(watch)).await.status_code, 200);
        let watched = Watch::new(vec!["a1".into(), "a2".into()], vec!["slack".into()]);
        assert_eq!(
            feeds().await,
            vec![("AAAA1234=".to_owned(), listening(Some(watched)))]
        );
        let disconnect = include_str!("../tests/fixtures/apigw-websocket-disconnect.json");
        ws_disconnect(&state, &ws_event(disconnect)).await;
        assert_eq!(
            ws_watch(&state, &ws_event(watch)).await.status_code,
            404,
            "a closed connection watches nothing"
        );
        let bad = ws_connect(&state, &with_mode("deltas")).await;
        assert_eq!(bad.status_code, 400);
        assert!(connections(&state, "acme").await.is_empty());
    }

    #[tokio::test]
    async fn the_authorizer_allows_stored_keys_with_their_tenant_and_denies_others() {
        let (state, _dir, key) = state_with_reader().await;
        let event = include_str!("../tests/fixtures/authorizer-v2.json");
        let request: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(&event.replace("KEY", &key))
                .unwrap_or_else(|e| panic!("fixture: {e}"));
        let answer = authorize(&state, &request)
            .await
            .expect("authorizing a stored key");
        assert!(answer.is_authorized);
        let key_id = crate::store::keys::key_id_of_hash(&crate::store::keys::hash_key(&key));
        assert_eq!(
            answer.context,
            serde_json::json!({"tenant": "acme", "name": "oncall", "scopes": "read", "key_id": key_id})
        );
        // A revoked key is denied (once the authorizer's cache lets the request through).
        let revoked = state
            .store
            .revoke_api_key("acme", &key_id, 1)
            .await
            .expect("revoking the key");
        assert!(matches!(
            revoked,
            crate::store::keys::Revocation::Revoked(_)
        ));
        let answer = authorize(&state, &request)
            .await
            .expect("authorizing the revoked key");
        assert!(!answer.is_authorized);
        let request: ApiGatewayV2CustomAuthorizerV2Request =
            serde_json::from_str(&event.replace("KEY", "ahm_unknown"))
                .unwrap_or_else(|e| panic!("fixture: {e}"));
        let answer = authorize(&state, &request)
            .await
            .expect("authorizing an unknown key");
        assert!(!answer.is_authorized);
        assert_eq!(answer.context, serde_json::Value::Null);
    }
}
