//! Logging, filtered by `RUST_LOG` (default `info`). Two formats: JSON lines on stdout (what
//! CloudWatch and log shippers parse) and human-readable lines on stderr. `HEALTH_LOG_FORMAT`
//! (`json` or `text`) chooses; unset, Lambda and anything not on a terminal get JSON, a
//! terminal gets text. Text goes to stderr so a program's own output on stdout (the local
//! stack's banner) stays first and parseable.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub mod exposition;
mod stats;

pub use stats::{CycleOutcome, Deliveries, Figures, StackStats};

use crate::config::LOG_FORMAT_VAR;

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
