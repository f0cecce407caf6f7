//! Ingestion events: the contract's wire format, validated whole before anything is stored.
//!
//! Validation walks the JSON by hand rather than through `#[derive(Deserialize)]` so that
//! every problem in a batch is reported at once, by event index and field name, which is what
//! a client fixing a batch needs.

use serde_json::{Map, Value};

use crate::domain::ids::{check_id, check_name, check_text};
use crate::time::{format_rfc3339, parse_rfc3339, Millis, DAY_MS, MINUTE_MS};

/// Most events one batch may carry.
pub const MAX_EVENTS_PER_BATCH: usize = 1000;
/// How far in the future an event's timestamp may be (clock skew allowance).
pub const MAX_FUTURE_SKEW_MS: Millis = 5 * MINUTE_MS;
/// How old an event may be. Duplicate detection remembers event ids for longer than this,
/// so a retry within this horizon is always recognised.
pub const MAX_EVENT_AGE_MS: Millis = 7 * DAY_MS;
/// Longest execution duration accepted, in ms (7 days): longer is a client bug, and bounding
/// every number keeps the sums built from them finite.
pub const MAX_DURATION_MS: f64 = 604_800_000.0;
/// Longest integration call latency accepted, in ms (1 hour).
pub const MAX_LATENCY_MS: f64 = 3_600_000.0;
/// Largest gauge value accepted (10^12).
pub const MAX_GAUGE_VALUE: u64 = 1_000_000_000_000;
/// Most tokens one execution may report per direction (10^12), which keeps every sum of
/// them exact in the counters' numbers.
pub const MAX_TOKENS: u64 = 1_000_000_000_000;
/// Longest host uptime accepted, in seconds (100 years of 365 days).
pub const MAX_UPTIME_SECONDS: u64 = 3_153_600_000;
/// Largest load average accepted.
pub const MAX_LOAD_AVERAGE: f64 = 1_000_000.0;

/// One validated event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The client's id for the event; a retry reuses it.
    pub event_id: String,
    /// When it happened.
    pub timestamp: Millis,
    /// What happened.
    pub kind: EventKind,
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It did its work.
    Completed,
    /// It failed.
    Failed,
}

/// The two gauges a tenant can report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gauge {
    /// Work waiting to be picked up.
    QueueDepth,
    /// Operations in progress, as the client counts them.
    ActiveOperations,
}

/// Model tokens, as the GenAI conventions count them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
}

/// The typed content of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// An agent started an execution.
    ExecutionStarted {
        /// The agent.
        agent_id: String,
        /// The execution, unique per agent.
        execution_id: String,
        /// What the agent is doing, shown as `current_operation`.
        operation: String,
        /// The agent's display name, if the client sends one.
        agent_name: Option<String>,
    },
    /// An agent finished an execution.
    ExecutionFinished {
        /// The agent.
        agent_id: String,
        /// The execution.
        execution_id: String,
        /// How it ended.
        outcome: Outcome,
        /// How long it took; `None` means "from the matching start".
        duration_ms: Option<f64>,
        /// The agent's confidence in the result, 0..=1.
        confidence: Option<f64>,
        /// What went wrong, for failed executions.
        error: Option<String>,
        /// Model tokens the execution used: input (prompt) and output (completion).
        tokens: Option<Tokens>,
    },
    /// A call from an agent to an integration.
    IntegrationCall {
        /// The integration.
        integration_id: String,
        /// How long the call took.
        latency_ms: f64,
        /// Whether it succeeded.
        ok: bool,
        /// What went wrong.
        error: Option<String>,
        /// The integration's display name.
        integration_name: Option<String>,
    },
    /// A host's resource sample.
    HostSample {
        /// The host.
        host_id: String,
        /// CPU usage, percent.
        cpu_usage: f64,
        /// Memory usage, percent.
        memory_usage: f64,
        /// Disk usage, percent.
        disk_usage: Option<f64>,
        /// 1, 5 and 15 minute load averages.
        load_average: Option<[f64; 3]>,
        /// Seconds since boot.
        uptime_seconds: Option<u64>,
    },
    /// A gauge reading for the tenant.
    Gauge {
        /// Which gauge.
        name: Gauge,
        /// Its value.
        value: u64,
    },
}

impl EventKind {
    /// The agent an event belongs to, if any.
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            Self::ExecutionStarted { agent_id, .. } | Self::ExecutionFinished { agent_id, .. } => {
                Some(agent_id)
            }
            _ => None,
        }
    }
}

/// One problem with one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The event's position in the batch; `None` for the batch itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
    /// The field, e.g. `latency_ms` or `events`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    fn at(index: usize, field: &str, message: impl Into<String>) -> Self {
        Self {
            index: Some(index),
            field: field.to_owned(),
            message: message.into(),
        }
    }
    fn batch(field: &str, message: impl Into<String>) -> Self {
        Self {
            index: None,
            field: field.to_owned(),
            message: message.into(),
        }
    }
    /// The error as one line a human reads: `events[3].latency_ms: must be >= 0`.
    pub fn describe(&self) -> String {
        match self.index {
            Some(i) => format!("events[{i}].{}: {}", self.field, self.message),
            None => format!("{}: {}", self.field, self.message),
        }
    }
}

/// Parses and validates a whole batch body. `Err` holds every problem found; an empty body
/// or one that is not JSON is a single batch-level error.
pub fn parse_batch(body: &[u8], now: Millis) -> Result<Vec<Event>, Vec<FieldError>> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        vec![FieldError::batch(
            "body",
            format!("is not valid JSON ({e})"),
        )]
    })?;
    let Some(events) = value.get("events") else {
        return Err(vec![FieldError::batch(
            "events",
            "is required: send {\"events\": [...]}",
        )]);
    };
    let Some(events) = events.as_array() else {
        return Err(vec![FieldError::batch("events", "must be an array")]);
    };
    if events.is_empty() || events.len() > MAX_EVENTS_PER_BATCH {
        return Err(vec![FieldError::batch(
            "events",
            format!(
                "must hold 1 to {MAX_EVENTS_PER_BATCH} events, got {}",
                events.len()
            ),
        )]);
    }
    let mut errors = Vec::new();
    let mut parsed = Vec::with_capacity(events.len());
    for (index, raw) in events.iter().enumerate() {
        let mut f = Fields::new(index, &mut errors);
        if let Some(event) = f.event(raw, now) {
            parsed.push(event);
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Reads the fields of one event, collecting errors instead of stopping at the first.
struct Fields<'a> {
    index: usize,
    errors: &'a mut Vec<FieldError>,
    obj: Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(index: usize, errors: &'a mut Vec<FieldError>) -> Self {
        Self {
            index,
            errors,
            obj: Map::new(),
        }
    }

    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::at(self.index, field, message));
    }

    fn event(&mut self, raw: &Value, now: Millis) -> Option<Event> {
        let Some(obj) = raw.as_object() else {
            self.fail("event", "must be an object");
            return None;
        };
        self.obj = obj.clone();
        let errors_before = self.errors.len();
        let event_id = self.id("event_id");
        let timestamp = self.timestamp(now);
        let kind = match self.obj.get("type") {
            None => {
                self.fail("type", "is required");
                None
            }
            Some(Value::String(t)) => self.kind(&t.clone()),
            Some(_) => {
                self.fail("type", "must be a string");
                None
            }
        };
        if self.errors.len() != errors_before {
            return None;
        }
        Some(Event {
            event_id: event_id?,
            timestamp: timestamp?,
            kind: kind?,
        })
    }

    fn timestamp(&mut self, now: Millis) -> Option<Millis> {
        match self.obj.get("timestamp") {
            None | Some(Value::Null) => Some(now),
            Some(Value::String(text)) => match parse_rfc3339(text) {
                None => {
                    self.fail(
                        "timestamp",
                        "must be an RFC 3339 time such as 2026-02-02T13:00:00Z",
                    );
                    None
                }
                Some(t) if t > now + MAX_FUTURE_SKEW_MS => {
                    self.fail(
                        "timestamp",
                        format!(
                            "is more than 5 minutes in the future (server time {})",
                            format_rfc3339(now)
                        ),
                    );
                    None
                }
                Some(t) if t < now - MAX_EVENT_AGE_MS => {
                    self.fail("timestamp", "is more than 7 days in the past");
                    None
                }
                Some(t) => Some(t),
            },
            Some(_) => {
                self.fail("timestamp", "must be a string");
                None
            }
        }
    }

    fn kind(&mut self, kind: &str) -> Option<EventKind> {
        match kind {
            "execution.started" => self.execution_started(),
            "execution.finished" => self.execution_finished(),
            "integration.call" => self.integration_call(),
            "host.sample" => self.host_sample(),
            "gauge" => self.gauge(),
            other => self.unknown_kind(other),
        }
    }

    /// An `execution.started` event's fields.
    fn execution_started(&mut self) -> Option<EventKind> {
        let agent_id = self.id("agent_id");
        let execution_id = self.id("execution_id");
        let operation = self.text("operation", true);
        let agent_name = self.text("agent_name", false);
        Some(EventKind::ExecutionStarted {
            agent_id: agent_id?,
            execution_id: execution_id?,
            operation: operation??,
            agent_name: agent_name?,
        })
    }

    /// An `execution.finished` event's fields.
    fn execution_finished(&mut self) -> Option<EventKind> {
        let agent_id = self.id("agent_id");
        let execution_id = self.id("execution_id");
        let outcome = match self.obj.get("outcome").and_then(Value::as_str) {
            Some("completed") => Some(Outcome::Completed),
            Some("failed") => Some(Outcome::Failed),
            _ => {
                self.fail(
                    "outcome",
                    "is required and must be \"completed\" or \"failed\"",
                );
                None
            }
        };
        let duration_ms = self.number("duration_ms", false, 0.0, MAX_DURATION_MS);
        let confidence = self.number("confidence", false, 0.0, 1.0);
        let error = self.text("error", false);
        let input = self.integer("input_tokens", false, MAX_TOKENS);
        let output = self.integer("output_tokens", false, MAX_TOKENS);
        let tokens = match (input?, output?) {
            (None, None) => None,
            (i, o) => Some(Tokens {
                input: i.unwrap_or(0),
                output: o.unwrap_or(0),
            }),
        };
        Some(EventKind::ExecutionFinished {
            agent_id: agent_id?,
            execution_id: execution_id?,
            outcome: outcome?,
            duration_ms: duration_ms?,
            confidence: confidence?,
            error: error?,
            tokens,
        })
    }

    /// An `integration.call` event's fields.
    fn integration_call(&mut self) -> Option<EventKind> {
        let integration_id = self.id("integration_id");
        let latency_ms = self.number("latency_ms", true, 0.0, MAX_LATENCY_MS);
        let ok = match self.obj.get("ok") {
            Some(Value::Bool(b)) => Some(*b),
            _ => {
                self.fail("ok", "is required and must be true or false");
                None
            }
        };
        let error = self.text("error", false);
        let integration_name = self.text("integration_name", false);
        Some(EventKind::IntegrationCall {
            integration_id: integration_id?,
            latency_ms: latency_ms??,
            ok: ok?,
            error: error?,
            integration_name: integration_name?,
        })
    }

    /// A `host.sample` event's fields.
    fn host_sample(&mut self) -> Option<EventKind> {
        let host_id = self.id("host_id");
        let cpu_usage = self.number("cpu_usage", true, 0.0, 100.0);
        let memory_usage = self.number("memory_usage", true, 0.0, 100.0);
        let disk_usage = self.number("disk_usage", false, 0.0, 100.0);
        let load_average = self.load_average();
        let uptime_seconds = self.integer("uptime_seconds", false, MAX_UPTIME_SECONDS);
        Some(EventKind::HostSample {
            host_id: host_id?,
            cpu_usage: cpu_usage??,
            memory_usage: memory_usage??,
            disk_usage: disk_usage?,
            load_average: load_average?,
            uptime_seconds: uptime_seconds?,
        })
    }

    /// A `gauge` event's fields.
    fn gauge(&mut self) -> Option<EventKind> {
        let name = match self.obj.get("name").and_then(Value::as_str) {
            Some("queue_depth") => Some(Gauge::QueueDepth),
            Some("active_operations") => Some(Gauge::ActiveOperations),
            _ => {
                self.fail(
                    "name",
                    "is required and must be \"queue_depth\" or \"active_operations\"",
                );
                None
            }
        };
        let value = self.integer("value", true, MAX_GAUGE_VALUE);
        Some(EventKind::Gauge {
            name: name?,
            value: value??,
        })
    }

    /// Says the event type is none of the five.
    fn unknown_kind(&mut self, kind: &str) -> Option<EventKind> {
        let shown: String = kind.chars().take(40).collect();
        self.fail(
            "type",
            format!(
                "unknown event type \"{shown}\"; expected execution.started, \
                 execution.finished, integration.call, host.sample or gauge"
            ),
        );
        None
    }

    fn id(&mut self, field: &str) -> Option<String> {
        let s = self.string(field, true)??;
        self.checked(field, s, check_id)
    }

    /// A name (`*_name`: the name rule) or free text (the text rule). `Some(None)` is an
    /// absent optional field; `None` means an error was recorded.
    fn text(&mut self, field: &str, required: bool) -> Option<Option<String>> {
        let Some(s) = self.string(field, required)? else {
            return Some(None);
        };
        let check = if field.ends_with("_name") {
            check_name
        } else {
            check_text
        };
        self.checked(field, s, check).map(Some)
    }

    /// The string `field` holds: `Some(None)` if it is absent (or null) and not
    /// `required`; `None`, with the error recorded, if it is missing or not a string.
    fn string(&mut self, field: &str, required: bool) -> Option<Option<String>> {
        match self.obj.get(field) {
            None | Some(Value::Null) if !required => Some(None),
            None | Some(Value::Null) => {
                self.fail(field, "is required");
                None
            }
            Some(Value::String(s)) => Some(Some(s.clone())),
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    /// `s` if `check` accepts it; else `None`, with `check`'s message recorded.
    fn checked(
        &mut self,
        field: &str,
        s: String,
        check: impl Fn(&str) -> Result<(), &'static str>,
    ) -> Option<String> {
        match check(&s) {
            Ok(()) => Some(s),
            Err(msg) => {
                self.fail(field, msg);
                None
            }
        }
    }

    fn number(&mut self, field: &str, required: bool, min: f64, max: f64) -> Option<Option<f64>> {
        match self.obj.get(field) {
            None | Some(Value::Null) if !required => Some(None),
            None | Some(Value::Null) => {
                self.fail(field, "is required");
                None
            }
            Some(Value::Number(n)) => match n.as_f64() {
                Some(v) if v.is_finite() && v >= min && v <= max => Some(Some(v)),
                _ => {
                    self.fail(field, format!("must be a number from {min} to {max}"));
                    None
                }
            },
            Some(_) => {
                self.fail(field, "must be a number");
                None
            }
        }
    }

    fn integer(&mut self, field: &str, required: bool, max: u64) -> Option<Option<u64>> {
        match self.obj.get(field) {
            None | Some(Value::Null) if !required => Some(None),
            None | Some(Value::Null) => {
                self.fail(field, "is required");
                None
            }
            Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v <= max) => Some(n.as_u64()),
            Some(_) => {
                self.fail(field, format!("must be an integer from 0 to {max}"));
                None
            }
        }
    }

    fn load_average(&mut self) -> Option<Option<[f64; 3]>> {
        match self.obj.get("load_average") {
            None | Some(Value::Null) => Some(None),
            Some(Value::Array(items)) if items.len() == 3 => {
                let mut out = [0.0; 3];
                for (slot, item) in out.iter_mut().zip(items) {
                    match item.as_f64() {
                        Some(v) if (0.0..=MAX_LOAD_AVERAGE).contains(&v) => *slot = v,
                        _ => {
                            self.fail(
                                "load_average",
                                format!("must hold 3 numbers from 0 to {MAX_LOAD_AVERAGE}"),
                            );
                            return None;
                        }
                    }
                }
                Some(Some(out))
            }
            Some(_) => {
                self.fail(
                    "load_average",
                    format!("must be an array of 3 numbers from 0 to {MAX_LOAD_AVERAGE}"),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_770_000_000_000;

    fn errors_of(body: &str) -> Vec<String> {
        match parse_batch(body.as_bytes(), NOW) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(FieldError::describe).collect(),
        }
    }

    #[test]
    fn a_valid_batch_of_every_type_parses() {
        let body = r#"{"events": [
          {"event_id": "1", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "Work"},
          {"event_id": "2", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "failed", "confidence": 0.4, "error": "boom"},
          {"event_id": "3", "type": "integration.call", "integration_id": "slack", "latency_ms": 12.5, "ok": true},
          {"event_id": "4", "type": "host.sample", "host_id": "h", "cpu_usage": 45.2, "memory_usage": 62.8, "load_average": [1, 0.5, 0.25], "uptime_seconds": 99},
          {"event_id": "5", "type": "gauge", "name": "queue_depth", "value": 12, "timestamp": "2026-02-02T00:00:00Z"}
        ]}"#;
        let events = parse_batch(body.as_bytes(), NOW).unwrap_or_default();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0].timestamp, NOW);
        assert!(
            matches!(events[1].kind, EventKind::ExecutionFinished { outcome: Outcome::Failed, confidence: Some(c), .. } if c == 0.4)
        );
    }

    #[test]
    fn every_invalid_event_is_reported_by_index_and_field() {
        let body = r#"{"events": [
          {"event_id": "ok", "type": "gauge", "name": "queue_depth", "value": 1},
          {"event_id": "bad1", "type": "integration.call", "integration_id": "s", "latency_ms": -1, "ok": true},
          {"event_id": "bad2", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "completed", "confidence": 1.5},
          {"event_id": "bad3", "type": "teleport"}
        ]}"#;
        assert_eq!(
            errors_of(body),
            vec![
                "events[1].latency_ms: must be a number from 0 to 3600000",
                "events[2].confidence: must be a number from 0 to 1",
                "events[3].type: unknown event type \"teleport\"; expected execution.started, execution.finished, integration.call, host.sample or gauge",
            ]
        );
    }

    #[test]
    fn numbers_beyond_their_documented_range_are_refused_by_field() {
        let body = r#"{"events": [
          {"event_id": "1", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "completed", "duration_ms": 1.7e308},
          {"event_id": "2", "type": "integration.call", "integration_id": "s", "latency_ms": 3600001, "ok": true},
          {"event_id": "3", "type": "gauge", "name": "queue_depth", "value": 1000000000001},
          {"event_id": "4", "type": "host.sample", "host_id": "h", "cpu_usage": 1, "memory_usage": 1, "uptime_seconds": 18446744073709551615, "load_average": [1, 1e300, 1]},
          {"event_id": "5", "type": "execution.finished", "agent_id": "a", "execution_id": "y", "outcome": "completed", "duration_ms": 604800000},
          {"event_id": "6", "type": "gauge", "name": "active_operations", "value": 1000000000000}
        ]}"#;
        assert_eq!(
            errors_of(body),
            vec![
                "events[0].duration_ms: must be a number from 0 to 604800000",
                "events[1].latency_ms: must be a number from 0 to 3600000",
                "events[2].value: must be an integer from 0 to 1000000000000",
                "events[3].load_average: must hold 3 numbers from 0 to 1000000",
                "events[3].uptime_seconds: must be an integer from 0 to 3153600000",
            ]
        );
    }

    #[test]
    fn names_and_free_text_follow_one_rule_in_events() {
        let body = r#"{"events": [
          {"event_id": "1", "type": "execution.started", "agent_id": "a", "execution_id": "x", "operation": "Work", "agent_name": "Bell\u0007"},
          {"event_id": "2", "type": "integration.call", "integration_id": "s", "latency_ms": 1, "ok": true, "integration_name": ""},
          {"event_id": "3", "type": "execution.finished", "agent_id": "a", "execution_id": "x", "outcome": "failed", "error": "Traceback:\n\tline 1\u001b[0m"},
          {"event_id": "4", "type": "execution.finished", "agent_id": "a", "execution_id": "y", "outcome": "failed", "error": "Traceback:\n\tline 1"}
        ]}"#;
        assert_eq!(
            errors_of(body),
            vec![
                "events[0].agent_name: must not contain control characters",
                "events[1].integration_name: must be 1 to 128 characters",
                "events[2].error: must not contain control characters other than line breaks and tabs",
            ]
        );
    }

    #[test]
    fn ids_over_128_characters_or_with_control_characters_are_refused() {
        let long = "a".repeat(129);
        let body = format!(
            r#"{{"events": [{{"event_id": "{long}", "type": "gauge", "name": "queue_depth", "value": 1}},
                          {{"event_id": "e\u0007", "type": "gauge", "name": "queue_depth", "value": 1}}]}}"#
        );
        let errors = errors_of(&body);
        assert_eq!(errors.len(), 2);
        assert!(errors[0].starts_with("events[0].event_id: must be 1 to 128 characters"));
        assert!(errors[1].starts_with("events[1].event_id: must not contain control characters"));
    }

    #[test]
    fn timestamps_far_in_the_future_are_refused_and_near_ones_accepted() {
        let at = |offset_ms: Millis| {
            format!(
                r#"{{"events": [{{"event_id": "e", "type": "gauge", "name": "queue_depth", "value": 1, "timestamp": "{}"}}]}}"#,
                format_rfc3339(NOW + offset_ms)
            )
        };
        assert!(errors_of(&at(4 * MINUTE_MS)).is_empty());
        assert_eq!(errors_of(&at(6 * MINUTE_MS)).len(), 1);
        assert!(errors_of(&at(6 * MINUTE_MS))[0]
            .starts_with("events[0].timestamp: is more than 5 minutes in the future"));
    }

    #[test]
    fn batch_shape_errors_name_the_events_field() {
        assert_eq!(
            errors_of("{}"),
            vec!["events: is required: send {\"events\": [...]}"]
        );
        assert_eq!(
            errors_of(r#"{"events": []}"#),
            vec!["events: must hold 1 to 1000 events, got 0"]
        );
        let many: Vec<String> = (0..1001)
            .map(|i| {
                format!(
                    r#"{{"event_id": "{i}", "type": "gauge", "name": "queue_depth", "value": 1}}"#
                )
            })
            .collect();
        assert_eq!(
            errors_of(&format!(r#"{{"events": [{}]}}"#, many.join(","))),
            vec!["events: must hold 1 to 1000 events, got 1001"]
        );
        assert!(errors_of("{not json")[0].starts_with("body: is not valid JSON"));
    }

    #[test]
    fn wrong_types_and_missing_fields_are_named() {
        let body = r#"{"events": [{"event_id": 5, "type": "host.sample", "host_id": "h", "cpu_usage": "high"}]}"#;
        assert_eq!(
            errors_of(body),
            vec![
                "events[0].event_id: must be a string",
                "events[0].cpu_usage: must be a number",
                "events[0].memory_usage: is required",
            ]
        );
    }
}
