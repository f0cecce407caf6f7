//! Logging, filtered by `RUST_LOG` (default `info`). Two formats: JSON lines on stdout (what
//! CloudWatch and log shippers parse) and human-readable lines on stderr. `HEALTH_LOG_FORMAT`
//! (`json` or `text`) chooses; unset, Lambda and anything not on a terminal get JSON, a
//! terminal gets text. Text goes to stderr so a program's own output on stdout (the local
//! stack's banner) stays first and parseable.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

/// The variable that chooses the log format.
pub const LOG_FORMAT_VAR: &str = "HEALTH_LOG_FORMAT";

/// A log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, on stdout.
    Json,
    /// Human-readable lines, on stderr.
    Text,
}

/// The format for a `HEALTH_LOG_FORMAT` value (`None`: unset), whether this runs in
/// Lambda, and whether stderr is a terminal. An unknown value falls back to the default
/// rather than losing logs.
pub fn choose_format(setting: Option<&str>, in_lambda: bool, terminal: bool) -> LogFormat {
    match setting.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        _ if in_lambda || !terminal => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Installs the subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let setting = std::env::var(LOG_FORMAT_VAR).ok();
    let in_lambda = std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some();
    let format = choose_format(
        setting.as_deref(),
        in_lambda,
        std::io::stderr().is_terminal(),
    );
    let _ = match format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .with_target(false)
            .try_init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_writer(std::io::stderr)
            .try_init(),
    };
}

/// This process's own figures, for the local stack's `/metrics`: what the collector,
/// the notifier and the WebSocket gateway running in it did. In Lambda each function is
/// its own process and reports through [`emf`] instead, so nothing is exposed unless
/// [`ProcessStats::enable`] was called.
#[derive(Debug)]
pub struct ProcessStats {
    enabled: AtomicBool,
    cycles: AtomicU64,
    failed_cycles: AtomicU64,
    last_cycle_micros: AtomicU64,
    delivered: AtomicU64,
    failed_attempts: AtomicU64,
    pending: AtomicU64,
    connections: AtomicI64,
}

static STATS: ProcessStats = ProcessStats {
    enabled: AtomicBool::new(false),
    cycles: AtomicU64::new(0),
    failed_cycles: AtomicU64::new(0),
    last_cycle_micros: AtomicU64::new(0),
    delivered: AtomicU64::new(0),
    failed_attempts: AtomicU64::new(0),
    pending: AtomicU64::new(0),
    connections: AtomicI64::new(0),
};

/// The process's figures.
pub fn stats() -> &'static ProcessStats {
    &STATS
}

impl ProcessStats {
    /// Exposes the figures on `/metrics` (the local stack, which runs every part).
    pub fn enable(&self) {
        self.enabled.store(true, Ordering::Relaxed);
    }

    /// Counts a collector cycle: how long it took, and whether it (or a tenant's part of
    /// it) failed.
    pub fn record_cycle(&self, took: std::time::Duration, failed: bool) {
        self.cycles.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed_cycles.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.last_cycle_micros.store(micros, Ordering::Relaxed);
    }

    /// How long the last collector cycle took, in seconds.
    pub fn last_cycle_seconds(&self) -> f64 {
        self.last_cycle_micros.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Collector cycles that failed so far.
    pub fn failed_cycles(&self) -> u64 {
        self.failed_cycles.load(Ordering::Relaxed)
    }

    /// Counts a notifier pass's deliveries and what still waits.
    pub fn record_pass(&self, report: &crate::notify::PassReport) {
        self.delivered
            .fetch_add(report.delivered as u64, Ordering::Relaxed);
        self.failed_attempts
            .fetch_add(report.failed_attempts as u64, Ordering::Relaxed);
        self.pending.store(report.pending as u64, Ordering::Relaxed);
    }

    /// A WebSocket connection opened (`+1`) or closed (`-1`).
    pub fn connection(&self, change: i64) {
        self.connections.fetch_add(change, Ordering::Relaxed);
    }

    /// Writes the figures as `agenthealth_stack_*` families, if enabled.
    pub fn families(&self, out: &mut crate::api::metrics::Exposition) {
        use crate::api::metrics::Type::{Counter, Gauge};
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        let one = |v: f64| vec![(Vec::new(), v)];
        out.family(
            "agenthealth_stack_collector_cycles",
            Counter,
            "Collector cycles run by this process.",
            &one(get(&self.cycles)),
        );
        out.family(
            "agenthealth_stack_collector_failed_cycles",
            Counter,
            "Collector cycles that failed, wholly or for a tenant.",
            &one(get(&self.failed_cycles)),
        );
        out.family(
            "agenthealth_stack_collector_last_cycle_seconds",
            Gauge,
            "How long the last collector cycle took.",
            &one(get(&self.last_cycle_micros) / 1e6),
        );
        out.family(
            "agenthealth_stack_notifications_delivered",
            Counter,
            "Notifications delivered.",
            &one(get(&self.delivered)),
        );
        out.family(
            "agenthealth_stack_notification_attempts_failed",
            Counter,
            "Notification attempts that failed (retried, or given up).",
            &one(get(&self.failed_attempts)),
        );
        out.family(
            "agenthealth_stack_notifications_pending",
            Gauge,
            "Notifications waiting in the outbox for their next attempt, after the last pass.",
            &one(get(&self.pending)),
        );
        out.family(
            "agenthealth_stack_websocket_connections",
            Gauge,
            "Open WebSocket connections.",
            &one(self.connections.load(Ordering::Relaxed).max(0) as f64),
        );
    }
}

/// The CloudWatch namespace of the functions' own metrics.
pub const EMF_NAMESPACE: &str = "AgentHealthMonitor";

/// One line in CloudWatch's embedded metric format: CloudWatch Logs turns it into metrics
/// (namespace [`EMF_NAMESPACE`], dimension `Function`) without an API call, which the
/// template's alarms watch. `metrics` are (name, unit, value).
pub fn emf_line(function: &str, now_ms: i64, metrics: &[(&str, &str, f64)]) -> String {
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, unit, _)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": EMF_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    for (name, _, value) in metrics {
        line[*name] = serde_json::json!(value);
    }
    line.to_string()
}

/// Prints [`emf_line`] on stdout, where Lambda's log stream picks it up.
pub fn emf(function: &str, metrics: &[(&str, &str, f64)]) {
    println!(
        "{}",
        emf_line(function, chrono::Utc::now().timestamp_millis(), metrics)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_text_and_lambda_or_a_pipe_gets_json_unless_chosen() {
        assert_eq!(choose_format(None, false, true), LogFormat::Text);
        assert_eq!(choose_format(None, false, false), LogFormat::Json);
        assert_eq!(choose_format(None, true, true), LogFormat::Json);
        assert_eq!(choose_format(Some("json"), false, true), LogFormat::Json);
        assert_eq!(choose_format(Some("TEXT"), true, false), LogFormat::Text);
        assert_eq!(choose_format(Some("xml"), false, true), LogFormat::Text);
    }

    #[test]
    fn an_emf_line_declares_each_metric_with_its_value() {
        let line = emf_line("collector", 1_000, &[("CycleTime", "Milliseconds", 12.5)]);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            EMF_NAMESPACE
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "CycleTime"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "Function"
        );
        assert_eq!(
            (v["Function"].as_str(), v["CycleTime"].as_f64()),
            (Some("collector"), Some(12.5))
        );
    }
}
