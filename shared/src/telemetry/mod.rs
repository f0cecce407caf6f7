//! Logging, filtered by `RUST_LOG` (default `info`). Two formats: JSON lines on stdout (what
//! CloudWatch and log shippers parse) and human-readable lines on stderr. `HEALTH_LOG_FORMAT`
//! (`json` or `text`) chooses; unset, Lambda and anything not on a terminal get JSON, a
//! terminal gets text. Text goes to stderr so a program's own output on stdout (the local
//! stack's banner) stays first and parseable.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

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

/// One tenant's share of what the collector, the notifier and the WebSocket gateway did,
/// or the process's total.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Collector cycles that evaluated the tenant (or ran, for the process).
    pub cycles: u64,
    /// Of those, the ones that failed for it.
    pub failed_cycles: u64,
    /// How long the last cycle's part for it took, in seconds.
    pub last_cycle_seconds: f64,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notification attempts that failed (retried, or given up).
    pub failed_attempts: u64,
    /// Notifications waiting for a retry after the last pass.
    pub pending: u64,
    /// WebSocket connections open now.
    pub connections: i64,
}

/// What this process's collector, notifier and WebSocket gateway did: in total (what the
/// collector's CloudWatch figures report in Lambda) and per tenant (what the local stack's
/// `/metrics` shows a tenant: its own figures, never another tenant's or the process's).
/// One per process, in [`crate::AppState`]; a tenant's entry lives as long as the process,
/// so the map is bounded by the number of tenants, not by traffic.
#[derive(Debug, Default)]
pub struct StackStats {
    exposed: AtomicBool,
    figures: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    process: Figures,
    tenants: HashMap<String, Figures>,
}

impl StackStats {
    /// Exposes the tenant's figures on `/metrics` (the local stack, which runs every part;
    /// in Lambda each function is its own process and reports through [`emf`] instead).
    pub fn enable(&self) {
        self.exposed.store(true, Ordering::Relaxed);
    }

    fn update(&self, f: impl FnOnce(&mut StatsInner)) {
        let mut inner = self
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner);
    }

    /// Counts a collector cycle that took `took`: `None` if it failed as a whole (no
    /// tenant was evaluated), else its report, whose tenants each count a cycle (failed for
    /// those in `failed`).
    pub fn record_cycle(
        &self,
        took: std::time::Duration,
        report: Option<&crate::collector::CycleReport>,
    ) {
        self.update(|s| {
            s.process.cycles += 1;
            s.process.last_cycle_seconds = took.as_secs_f64();
            let Some(report) = report else {
                s.process.failed_cycles += 1;
                return;
            };
            if !report.failed.is_empty() {
                s.process.failed_cycles += 1;
            }
            let evaluated = report.tenants.iter().map(|t| (&t.tenant, false));
            let failed = report.failed.iter().map(|(t, _)| (t, true));
            for (tenant, failed) in evaluated.chain(failed) {
                let t = s.tenants.entry(tenant.clone()).or_default();
                t.cycles += 1;
                t.failed_cycles += u64::from(failed);
                if let Some(took) = report.took.get(tenant) {
                    t.last_cycle_seconds = took.as_secs_f64();
                }
            }
        });
    }

    /// The process's figures.
    pub fn process(&self) -> Figures {
        let mut out = Figures::default();
        self.update(|s| out = s.process);
        out
    }

    /// A tenant's figures (zeros for a tenant never seen).
    pub fn tenant(&self, tenant: &str) -> Figures {
        let mut out = Figures::default();
        self.update(|s| out = s.tenants.get(tenant).copied().unwrap_or_default());
        out
    }

    /// Counts a notifier pass's deliveries and what still waits, per tenant.
    pub fn record_pass(&self, report: &crate::notify::PassReport) {
        self.update(|s| {
            s.process.delivered += report.delivered as u64;
            s.process.failed_attempts += report.failed_attempts as u64;
            s.process.pending = report.pending as u64;
            for (tenant, d) in &report.tenants {
                let t = s.tenants.entry(tenant.clone()).or_default();
                t.delivered += d.delivered as u64;
                t.failed_attempts += d.failed_attempts as u64;
                t.pending = d.pending as u64;
            }
        });
    }

    /// A WebSocket connection of `tenant` opened (`+1`) or closed (`-1`).
    pub fn connection(&self, tenant: &str, change: i64) {
        self.update(|s| {
            s.process.connections += change;
            let t = s.tenants.entry(tenant.to_owned()).or_default();
            t.connections += change;
        });
    }

    /// Writes `tenant`'s figures as `agenthealth_stack_*` families, if exposed.
    pub fn families(&self, tenant: &str, out: &mut crate::api::metrics::Exposition) {
        use crate::api::metrics::Type::{Counter, Gauge};
        if !self.exposed.load(Ordering::Relaxed) {
            return;
        }
        let f = self.tenant(tenant);
        let one = |v: f64| vec![(Vec::new(), v)];
        out.family(
            "agenthealth_stack_collector_cycles",
            Counter,
            "Collector cycles that evaluated this tenant.",
            &one(f.cycles as f64),
        );
        out.family(
            "agenthealth_stack_collector_failed_cycles",
            Counter,
            "Collector cycles that failed for this tenant.",
            &one(f.failed_cycles as f64),
        );
        out.family(
            "agenthealth_stack_collector_last_cycle_seconds",
            Gauge,
            "How long the last collector cycle took for this tenant.",
            &one(f.last_cycle_seconds),
        );
        out.family(
            "agenthealth_stack_notifications_delivered",
            Counter,
            "This tenant's notifications delivered.",
            &one(f.delivered as f64),
        );
        out.family(
            "agenthealth_stack_notification_attempts_failed",
            Counter,
            "This tenant's notification attempts that failed (retried, or given up).",
            &one(f.failed_attempts as f64),
        );
        out.family(
            "agenthealth_stack_notifications_pending",
            Gauge,
            "This tenant's notifications waiting in the outbox for their next attempt, after the last pass.",
            &one(f.pending as f64),
        );
        out.family(
            "agenthealth_stack_websocket_connections",
            Gauge,
            "This tenant's open WebSocket connections.",
            &one(f.connections.max(0) as f64),
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
    fn each_tenant_sees_its_own_figures_and_the_process_keeps_the_total() {
        let stats = StackStats::default();
        stats.enable();
        stats.connection("acme", 1);
        stats.connection("acme", 1);
        stats.connection("beta", 1);
        stats.connection("acme", -1);
        let pass = crate::notify::PassReport {
            delivered: 5,
            tenants: vec![(
                "acme".to_owned(),
                crate::notify::TenantDeliveries {
                    delivered: 5,
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        stats.record_pass(&pass);
        assert_eq!(
            (
                stats.tenant("acme").connections,
                stats.tenant("acme").delivered
            ),
            (1, 5)
        );
        assert_eq!(
            (
                stats.tenant("beta").connections,
                stats.tenant("beta").delivered
            ),
            (1, 0)
        );
        assert_eq!(
            (stats.process().connections, stats.process().delivered),
            (2, 5)
        );
        let mut out = crate::api::metrics::Exposition::new(true);
        stats.families("beta", &mut out);
        let text = out.finish();
        assert!(
            text.contains("agenthealth_stack_notifications_delivered_total 0\n"),
            "{text}"
        );
        assert!(
            text.contains("agenthealth_stack_websocket_connections 1\n"),
            "{text}"
        );
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
