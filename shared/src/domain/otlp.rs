//! OpenTelemetry GenAI spans as this monitor's events: what agent frameworks already emit,
//! mapped by the GenAI semantic conventions (v1.41, and the older attribute names their
//! instrumentations still emit by default).
//!
//! - `invoke_agent` spans are executions of the agent named by `gen_ai.agent.id` (else
//!   `gen_ai.agent.name`, else the resource's `service.name`), started and finished at the
//!   span's times, failed when the span's status is an error or `error.type` is set;
//! - `execute_tool` spans are calls to the integration named by `gen_ai.tool.name`;
//! - model spans (`chat`, `generate_content`, `text_completion`, `embeddings`) are calls to
//!   the integration named by the provider (`gen_ai.provider.name`, older `gen_ai.system`);
//! - token usage is counted on the execution: the agent span's own `gen_ai.usage.*` when it
//!   carries them, else the sum over the model spans below it in the same request.
//!
//! Event ids derive from the trace and span ids, and execution ids from the span id, so an
//! exporter's retry of a request counts nothing twice.

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{status::StatusCode, Span};

use crate::domain::events::{
    Event, EventKind, Outcome, Tokens, MAX_DURATION_MS, MAX_EVENT_AGE_MS, MAX_FUTURE_SKEW_MS,
    MAX_LATENCY_MS, MAX_TOKENS,
};
use crate::domain::ids::check_id;
use crate::time::Millis;

/// Operation names of model spans.
const MODEL_OPERATIONS: [&str; 4] = ["chat", "generate_content", "text_completion", "embeddings"];

/// How deep the walk from a model span up to its agent span goes: far deeper than any
/// framework nests, and a bound against a parent loop in a malformed request.
const MAX_DEPTH: usize = 64;

const NOT_MAPPED: &str = "a GenAI operation the monitor does not map (it maps invoke_agent, execute_tool, chat, generate_content, text_completion and embeddings)";

/// Longest operation or error text kept (the events' free-text limit).
const MAX_TEXT_CHARS: usize = 1024;

/// A request's spans as events, and the spans left out.
#[derive(Debug, Default, PartialEq)]
pub struct Mapped {
    /// The events, each execution's start before its finish.
    pub events: Vec<Event>,
    /// Spans mapped.
    pub accepted: u64,
    /// Spans left out: without GenAI attributes, of an operation not monitored, or not
    /// usable (no id for the agent or integration, times out of range).
    pub rejected: u64,
    /// Why, by reason, in the order first seen.
    pub reasons: Vec<(String, u64)>,
    /// What was counted: spans, or data points of metrics.
    pub unit: Unit,
}

/// What a receiver counts as accepted or rejected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Unit {
    /// Spans (traces).
    #[default]
    Spans,
    /// Data points (metrics).
    DataPoints,
}

impl Mapped {
    /// Counts `n` items left out for `reason`.
    pub fn reject_n(&mut self, n: u64, reason: impl Into<String>) {
        if n == 0 {
            return;
        }
        let reason = reason.into();
        self.rejected += n;
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, k)) => *k += n,
            None => self.reasons.push((reason, n)),
        }
    }

    fn reject(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        self.rejected += 1;
        match self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, n)) => *n += 1,
            None => self.reasons.push((reason, 1)),
        }
    }

    /// The partial-success message: each reason with its count.
    pub fn message(&self) -> String {
        self.reasons
            .iter()
            .map(|(r, n)| {
                let unit = match (self.unit, *n == 1) {
                    (Unit::Spans, true) => "span",
                    (Unit::Spans, false) => "spans",
                    (Unit::DataPoints, true) => "data point",
                    (Unit::DataPoints, false) => "data points",
                };
                format!("{n} {unit}: {r}")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What one span is, by its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Tool,
    Model,
    Other,
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

pub(crate) fn attr_str<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    match attr(attrs, key)? {
        any_value::Value::StringValue(s) if !s.trim().is_empty() => Some(s.as_str()),
        _ => None,
    }
}

/// A whole, non-negative count from an int, a whole double or a numeric string (JSON
/// encoders differ).
fn attr_count(attrs: &[KeyValue], key: &str) -> Option<u64> {
    match attr(attrs, key)? {
        any_value::Value::IntValue(i) => u64::try_from(*i).ok(),
        any_value::Value::DoubleValue(d) if d.is_finite() && *d >= 0.0 && d.fract() == 0.0 => {
            Some(*d as u64)
        }
        any_value::Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
    .map(|n: u64| n.min(MAX_TOKENS))
}

/// Input and output tokens a span reports, under the current or the older names.
fn span_tokens(attrs: &[KeyValue]) -> Option<Tokens> {
    let input = attr_count(attrs, "gen_ai.usage.input_tokens")
        .or_else(|| attr_count(attrs, "gen_ai.usage.prompt_tokens"));
    let output = attr_count(attrs, "gen_ai.usage.output_tokens")
        .or_else(|| attr_count(attrs, "gen_ai.usage.completion_tokens"));
    (input.is_some() || output.is_some()).then(|| Tokens {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
    })
}

fn kind_of(span: &Span) -> Option<Kind> {
    let has_genai = span
        .attributes
        .iter()
        .any(|kv| kv.key.starts_with("gen_ai."));
    if !has_genai {
        return None;
    }
    // The operation attribute is required by the conventions; older instrumentations
    // only name the span `{operation} {target}`.
    let op = attr_str(&span.attributes, "gen_ai.operation.name")
        .unwrap_or_else(|| span.name.split_whitespace().next().unwrap_or_default());
    Some(match op {
        "invoke_agent" => Kind::Agent,
        "execute_tool" => Kind::Tool,
        op if MODEL_OPERATIONS.contains(&op) => Kind::Model,
        _ => Kind::Other,
    })
}

/// Text as the events keep it: control characters but line breaks and tabs dropped, at
/// most [`MAX_TEXT_CHARS`] characters.
pub(crate) fn clean_text(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t'))
        .take(MAX_TEXT_CHARS)
        .collect()
}

/// Whether the span failed, and what went wrong: the status message, else the recorded
/// exception's message, else `error.type`.
fn failure(span: &Span) -> Option<String> {
    let status_error = span
        .status
        .as_ref()
        .is_some_and(|s| s.code == StatusCode::Error as i32);
    let error_type = attr_str(&span.attributes, "error.type");
    if !status_error && error_type.is_none() {
        return None;
    }
    let status_message = span
        .status
        .as_ref()
        .map(|s| s.message.as_str())
        .filter(|m| !m.trim().is_empty());
    let exception = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .find_map(|e| attr_str(&e.attributes, "exception.message"));
    let text = status_message
        .or(exception)
        .or(error_type)
        .unwrap_or("the span's status is error");
    Some(clean_text(text))
}

/// A span's trace and span ids, borrowed from the request.
type SpanKey<'a> = (&'a [u8], &'a [u8]);

/// Maps a request's spans to events at `now`. Pure: nothing here reads or writes.
pub fn map_request(request: &ExportTraceServiceRequest, now: Millis) -> Mapped {
    let mut out = Mapped::default();
    // Every span of the request by (trace, span), to find a model span's agent.
    let mut index: HashMap<SpanKey, (&Span, Option<Kind>)> = HashMap::new();
    let mut spans = Vec::new();
    for rs in &request.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| attr_str(&r.attributes, "service.name"));
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let kind = kind_of(span);
                index.insert((&span.trace_id, &span.span_id), (span, kind));
                spans.push((span, kind, service));
            }
        }
    }
    let child_tokens = child_tokens(&spans, &index);
    for (span, kind, service) in spans {
        let Some(kind) = kind else {
            out.reject("no GenAI attributes (gen_ai.*), not an agent, tool or model span");
            continue;
        };
        let tokens = || {
            span_tokens(&span.attributes).or_else(|| {
                child_tokens
                    .get(&(span.trace_id.as_slice(), span.span_id.as_slice()))
                    .copied()
            })
        };
        match map_span(span, kind, service, tokens, now) {
            Ok(events) => {
                out.accepted += 1;
                out.events.extend(events);
            }
            Err(reason) => out.reject(reason),
        }
    }
    out
}

/// Tokens of model spans, summed on the nearest agent span above each.
fn child_tokens<'a>(
    spans: &[(&'a Span, Option<Kind>, Option<&str>)],
    index: &HashMap<SpanKey<'a>, (&'a Span, Option<Kind>)>,
) -> HashMap<SpanKey<'a>, Tokens> {
    let mut child_tokens: HashMap<SpanKey, Tokens> = HashMap::new();
    for (span, kind, _) in spans {
        if *kind != Some(Kind::Model) {
            continue;
        }
        let Some(tokens) = span_tokens(&span.attributes) else {
            continue;
        };
        let mut parent: &[u8] = &span.parent_span_id;
        for _ in 0..MAX_DEPTH {
            let key: SpanKey = (&span.trace_id, parent);
            let Some((p, pkind)) = index.get(&key) else {
                break;
            };
            if *pkind == Some(Kind::Agent) {
                let sum = child_tokens.entry(key).or_default();
                sum.input = sum.input.saturating_add(tokens.input).min(MAX_TOKENS);
                sum.output = sum.output.saturating_add(tokens.output).min(MAX_TOKENS);
                break;
            }
            parent = &p.parent_span_id;
        }
    }
    child_tokens
}

fn map_span(
    span: &Span,
    kind: Kind,
    service: Option<&str>,
    tokens: impl FnOnce() -> Option<Tokens>,
    now: Millis,
) -> Result<Vec<Event>, String> {
    if kind == Kind::Other {
        return Err(NOT_MAPPED.into());
    }
    let facts = span_facts(span, now)?;
    match kind {
        Kind::Agent => agent_events(span, facts, service, tokens),
        Kind::Tool | Kind::Model => call_event(span, kind, facts),
        Kind::Other => Err(NOT_MAPPED.into()),
    }
}

/// What every mapped span gives its events: a key, times, duration and failure.
struct SpanFacts {
    key: String,
    start_ms: Millis,
    end_ms: Millis,
    duration_ms: f64,
    error: Option<String>,
}

/// Checks the span's ids and times (within the events' age and skew) and reads its facts.
fn span_facts(span: &Span, now: Millis) -> Result<SpanFacts, String> {
    if span.trace_id.len() != 16 || span.span_id.len() != 8 {
        return Err("traceId must be 16 bytes and spanId 8".into());
    }
    let (start, end) = (span.start_time_unix_nano, span.end_time_unix_nano);
    if start == 0 || end < start {
        return Err("start and end times missing or end before start".into());
    }
    let (start_ms, end_ms) = ((start / 1_000_000) as Millis, (end / 1_000_000) as Millis);
    if end_ms > now + MAX_FUTURE_SKEW_MS || start_ms < now - MAX_EVENT_AGE_MS {
        return Err("older than 7 days or more than 5 minutes in the future".into());
    }
    Ok(SpanFacts {
        key: format!(
            "{}-{}",
            hex::encode(&span.trace_id),
            hex::encode(&span.span_id)
        ),
        start_ms,
        end_ms,
        duration_ms: (end - start) as f64 / 1e6,
        error: failure(span),
    })
}

/// The first of the attribute values that is given, as an id; `what` names them.
fn id_of(value: Option<&str>, what: &str) -> Result<String, String> {
    let v = value.ok_or_else(|| format!("no {what}"))?;
    check_id(v).map_err(|m| format!("{what} {m}"))?;
    Ok(v.to_owned())
}

/// An `invoke_agent` span: an execution that started and finished.
fn agent_events(
    span: &Span,
    facts: SpanFacts,
    service: Option<&str>,
    tokens: impl FnOnce() -> Option<Tokens>,
) -> Result<Vec<Event>, String> {
    let attrs = &span.attributes;
    let agent_name = attr_str(attrs, "gen_ai.agent.name");
    let agent_id = id_of(
        attr_str(attrs, "gen_ai.agent.id")
            .or(agent_name)
            .or(service),
        "gen_ai.agent.id, gen_ai.agent.name or service.name on an invoke_agent span",
    )?;
    if facts.duration_ms > MAX_DURATION_MS {
        return Err("an invoke_agent span longer than 7 days".into());
    }
    let execution_id = hex::encode(&span.span_id);
    let SpanFacts {
        key,
        start_ms,
        end_ms,
        duration_ms,
        error,
    } = facts;
    Ok(vec![
        Event {
            event_id: format!("otel-{key}-start"),
            timestamp: start_ms,
            kind: EventKind::ExecutionStarted {
                agent_id: agent_id.clone(),
                execution_id: execution_id.clone(),
                operation: clean_text(&span.name),
                agent_name: agent_name
                    .filter(|n| check_id(n).is_ok())
                    .map(str::to_owned),
            },
        },
        Event {
            event_id: format!("otel-{key}-finish"),
            timestamp: end_ms,
            kind: EventKind::ExecutionFinished {
                agent_id,
                execution_id,
                outcome: if error.is_some() {
                    Outcome::Failed
                } else {
                    Outcome::Completed
                },
                duration_ms: Some(duration_ms),
                confidence: None,
                error,
                tokens: tokens(),
            },
        },
    ])
}

/// A tool or model span: one call of the integration it names.
fn call_event(span: &Span, kind: Kind, facts: SpanFacts) -> Result<Vec<Event>, String> {
    let attrs = &span.attributes;
    let integration_id = if kind == Kind::Tool {
        id_of(
            attr_str(attrs, "gen_ai.tool.name"),
            "gen_ai.tool.name on an execute_tool span",
        )?
    } else {
        id_of(
            attr_str(attrs, "gen_ai.provider.name").or_else(|| attr_str(attrs, "gen_ai.system")),
            "gen_ai.provider.name (or gen_ai.system) on a model span",
        )?
    };
    if facts.duration_ms > MAX_LATENCY_MS {
        return Err("a tool or model span longer than 1 hour".into());
    }
    Ok(vec![Event {
        event_id: format!("otel-{}", facts.key),
        timestamp: facts.end_ms,
        kind: EventKind::IntegrationCall {
            integration_id,
            latency_ms: facts.duration_ms,
            ok: facts.error.is_none(),
            error: facts.error,
            integration_name: None,
        },
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

    const NOW: Millis = 1_780_000_000_000;
    const TRACE: [u8; 16] = [7; 16];

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
    fn i(key: &str, v: i64) -> KeyValue {
        kv(key, any_value::Value::IntValue(v))
    }

    fn span(id: u8, parent: Option<u8>, name: &str, ms: (i64, i64), attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: vec![id; 8],
            parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
            name: name.to_owned(),
            start_time_unix_nano: (NOW - ms.0) as u64 * 1_000_000,
            end_time_unix_nano: (NOW - ms.1) as u64 * 1_000_000,
            attributes: attrs,
            ..Span::default()
        }
    }

    fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![s("service.name", "svc")],
                    ..Resource::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        }
    }

    /// agent (1) → model (2, 100 in / 20 out), tool (3, failed), model (4, 5 in / 1 out),
    /// plus a plain HTTP span (5).
    fn framework_trace() -> Vec<Span> {
        let mut tool = span(
            3,
            Some(1),
            "execute_tool get_weather",
            (900, 700),
            vec![
                s("gen_ai.operation.name", "execute_tool"),
                s("gen_ai.tool.name", "get_weather"),
            ],
        );
        tool.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "timeout calling weather API".into(),
        });
        vec![
            span(
                2,
                Some(1),
                "chat gpt-4o",
                (1000, 900),
                vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.provider.name", "openai"),
                    i("gen_ai.usage.input_tokens", 100),
                    i("gen_ai.usage.output_tokens", 20),
                ],
            ),
            tool,
            span(
                4,
                Some(3),
                "chat claude",
                (800, 750),
                vec![
                    s("gen_ai.system", "anthropic"),
                    i("gen_ai.usage.prompt_tokens", 5),
                    i("gen_ai.usage.completion_tokens", 1),
                ],
            ),
            span(
                5,
                Some(1),
                "GET /weather",
                (850, 800),
                vec![s("http.method", "GET")],
            ),
            span(
                1,
                None,
                "invoke_agent Researcher",
                (1200, 500),
                vec![
                    s("gen_ai.operation.name", "invoke_agent"),
                    s("gen_ai.agent.id", "agent-7"),
                    s("gen_ai.agent.name", "Researcher"),
                ],
            ),
        ]
    }

    #[test]
    fn an_agent_trace_becomes_an_execution_and_its_calls_with_the_models_tokens() {
        let m = map_request(&request(framework_trace()), NOW);
        assert_eq!((m.accepted, m.rejected), (4, 1));
        assert!(m.message().starts_with("1 span: no GenAI attributes"));
        let calls: Vec<(&str, bool, f64)> = m
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::IntegrationCall {
                    integration_id,
                    ok,
                    latency_ms,
                    ..
                } => Some((integration_id.as_str(), *ok, *latency_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("openai", true, 100.0),
                ("get_weather", false, 200.0),
                ("anthropic", true, 50.0)
            ]
        );
        let started = &m.events[m.events.len() - 2];
        assert_eq!(started.timestamp, NOW - 1200);
        assert!(
            matches!(&started.kind, EventKind::ExecutionStarted { agent_id, operation, agent_name: Some(n), .. }
            if agent_id == "agent-7" && operation == "invoke_agent Researcher" && n == "Researcher")
        );
        let finished = &m.events[m.events.len() - 1];
        assert_eq!(finished.timestamp, NOW - 500);
        // The tool failed but the agent span did not: the execution completed, and its
        // tokens are its two model spans' (the second one under the tool).
        assert!(matches!(&finished.kind, EventKind::ExecutionFinished {
            outcome: Outcome::Completed, duration_ms: Some(d), tokens: Some(t), execution_id, ..
        } if *d == 700.0 && *t == Tokens { input: 105, output: 21 } && execution_id == "0101010101010101"));
    }

    #[test]
    fn a_failed_agent_span_keeps_its_error_text_and_its_own_usage_wins() {
        let mut agent = span(
            1,
            None,
            "invoke_agent",
            (100, 0),
            vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("error.type", "RateLimitError"),
                i("gen_ai.usage.input_tokens", 7),
            ],
        );
        agent
            .events
            .push(opentelemetry_proto::tonic::trace::v1::span::Event {
                name: "exception".into(),
                attributes: vec![s("exception.message", "429 Too Many Requests")],
                ..Default::default()
            });
        let model = span(
            2,
            Some(1),
            "chat",
            (90, 10),
            vec![
                s("gen_ai.provider.name", "openai"),
                i("gen_ai.usage.input_tokens", 500),
            ],
        );
        let m = map_request(&request(vec![model, agent]), NOW);
        let finished = m.events.last().map(|e| e.kind.clone());
        // No agent id nor name: the service's name.
        assert!(matches!(finished, Some(EventKind::ExecutionFinished {
            agent_id, outcome: Outcome::Failed, error: Some(e), tokens: Some(t), ..
        }) if agent_id == "svc" && e == "429 Too Many Requests" && t == Tokens { input: 7, output: 0 }));
    }

    #[test]
    fn unusable_spans_are_counted_with_their_reason_and_ids_are_stable() {
        let spans = vec![
            span(
                1,
                None,
                "execute_tool",
                (10, 0),
                vec![s("gen_ai.operation.name", "execute_tool")],
            ),
            span(
                2,
                None,
                "create_agent x",
                (10, 0),
                vec![s("gen_ai.operation.name", "create_agent")],
            ),
            span(
                3,
                None,
                "chat",
                (8 * 86_400_000, 8 * 86_400_000 - 5),
                vec![s("gen_ai.system", "openai")],
            ),
            span(4, None, "chat", (0, 10), vec![s("gen_ai.system", "openai")]),
            span(5, None, "chat", (10, 0), vec![s("gen_ai.system", "openai")]),
        ];
        let m = map_request(&request(spans.clone()), NOW);
        assert_eq!((m.accepted, m.rejected), (1, 4));
        assert_eq!(m.reasons.len(), 4, "{}", m.message());
        assert!(m.message().contains("no gen_ai.tool.name"));
        assert_eq!(
            m.events[0].event_id,
            "otel-07070707070707070707070707070707-0505050505050505"
        );
        assert_eq!(map_request(&request(spans), NOW).events, m.events);
    }
}
