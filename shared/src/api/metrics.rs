//! `GET /metrics`: the tenant's health as Prometheus metrics, in OpenMetrics 1.0 text, or
//! in the classic text format 0.0.4 for a scraper that asks only for that.
//!
//! Every family is prefixed `agenthealth_`. Gauges describe now (statuses as numbers, the
//! last hour's rates and percentiles, hosts' latest sample); counters are monotonic totals
//! kept on each agent's and integration's record; active alerts are one series each, as
//! Prometheus's own `ALERTS`. Label values are escaped as both formats require.

use super::Reply;
use http::{HeaderValue, Response, StatusCode};

use crate::domain::alerts::AlertRecord;
use crate::domain::health::{AgentHealth, AgentStatus, IntegrationHealth, IntegrationStatus};
use crate::domain::records::HostRecord;
use crate::domain::wire_name;
use crate::store::live::{AgentData, IntegrationData};
use crate::store::tenant::TenantData;
use crate::telemetry::exposition::{
    wants_openmetrics, Exposition, Sample, Type, OPENMETRICS, PROMETHEUS_TEXT,
};
use crate::time::Millis;
use crate::AppState;

/// Serves `/metrics` for the key's tenant; `accept` is the request's `Accept` header.
pub async fn get(state: &AppState, tenant: &str, accept: Option<&str>) -> Reply {
    let now = state.clock.now_ms();
    let data = state.store.tenant_data(tenant).await?;
    let open = wants_openmetrics(accept);
    let mut out = Exposition::new(open);
    tenant_families(&mut out, &data, now, state.config.latency_threshold_ms);
    state.stats.families(tenant, &mut out);
    let mut response = Response::new(out.finish());
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(if open { OPENMETRICS } else { PROMETHEUS_TEXT }),
    );
    Ok(response)
}

/// Percentile samples (p50, p95, p99 in ms) as seconds, labelled `percentile`; none for
/// a percentile without data.
fn by_percentile(labels: &[(&'static str, String)], ms: [Option<f64>; 3]) -> Vec<Sample> {
    ["50", "95", "99"]
        .into_iter()
        .zip(ms)
        .filter_map(|(p, v)| {
            let mut l = labels.to_vec();
            l.push(("percentile", p.to_owned()));
            v.map(|v| (l, v / 1000.0))
        })
        .collect()
}

fn agent_status_value(s: AgentStatus) -> f64 {
    match s {
        AgentStatus::Idle => 0.0,
        AgentStatus::Active => 1.0,
        AgentStatus::Paused => 2.0,
        AgentStatus::Error => 3.0,
    }
}

fn integration_status_value(s: IntegrationStatus) -> f64 {
    match s {
        IntegrationStatus::Healthy => 0.0,
        IntegrationStatus::Degraded => 1.0,
        IntegrationStatus::Error => 2.0,
    }
}

/// The tenant's families: agents, integrations, hosts and active alerts.
pub fn tenant_families(out: &mut Exposition, data: &TenantData, now: Millis, threshold_ms: f64) {
    let agents: Vec<_> = data
        .agents
        .iter()
        .map(|d| (d, crate::store::agents::health_of(d, now)))
        .collect();
    agent_families(out, &agents);
    let integrations: Vec<_> = data
        .integrations
        .iter()
        .map(|d| (d, d.health(now, threshold_ms)))
        .collect();
    integration_families(out, &integrations);
    host_families(out, &data.hosts);
    alert_family(out, &data.alerts);
}

/// An agent with its health now.
type AgentRow<'a> = (&'a AgentData, AgentHealth);
/// An integration with its health now.
type IntegrationRow<'a> = (&'a IntegrationData, IntegrationHealth);
/// A family of one sample a source: name, type, help and the value of a source with
/// what was derived from it.
type Family<D, H> = (&'static str, Type, &'static str, fn(&D, &H) -> Option<f64>);
/// Labels of one series.
type Labels = Vec<(&'static str, String)>;

/// Agent families before the duration percentiles, in exposition order.
const AGENT_GAUGES: [Family<AgentData, AgentHealth>; 5] = [
    (
        "agenthealth_agent_status",
        Type::Gauge,
        "Agent status: 0 idle, 1 active (an execution runs), 2 paused, 3 error (the last execution failed).",
        |_, h| Some(agent_status_value(h.status)),
    ),
    (
        "agenthealth_agent_success_ratio",
        Type::Gauge,
        "Completed share of the executions started in the last hour.",
        |_, h| Some(h.success_rate),
    ),
    (
        "agenthealth_agent_error_ratio",
        Type::Gauge,
        "Failed share of the executions started in the last hour.",
        |_, h| Some(h.metrics.error_rate),
    ),
    (
        "agenthealth_agent_running_executions",
        Type::Gauge,
        "Executions in flight.",
        |d, _| Some(d.record.running.len() as f64),
    ),
    (
        "agenthealth_agent_confidence",
        Type::Gauge,
        "Latest confidence the agent reported (0.5 if none).",
        |_, h| Some(h.confidence_score),
    ),
];

/// Agent counters after the duration percentiles, in exposition order.
const AGENT_COUNTERS: [Family<AgentData, AgentHealth>; 2] = [
    (
        "agenthealth_agent_executions",
        Type::Counter,
        "Executions finished.",
        |d, _| Some(d.record.totals.count as f64),
    ),
    (
        "agenthealth_agent_failures",
        Type::Counter,
        "Executions that failed.",
        |d, _| Some(d.record.totals.failed as f64),
    ),
];

/// Integration families before the latency percentiles, in exposition order.
const INTEGRATION_GAUGES: [Family<IntegrationData, IntegrationHealth>; 3] = [
    (
        "agenthealth_integration_status",
        Type::Gauge,
        "Integration status: 0 healthy, 1 degraded, 2 error.",
        |_, h| Some(integration_status_value(h.status)),
    ),
    (
        "agenthealth_integration_error_ratio",
        Type::Gauge,
        "Failed share of the last hour's calls and probes.",
        |_, h| Some(h.error_rate),
    ),
    (
        "agenthealth_integration_consecutive_failures",
        Type::Gauge,
        "Calls and probes failed in a row.",
        |_, h| Some(f64::from(h.consecutive_failures)),
    ),
];

/// Integration counters after the latency percentiles, in exposition order.
const INTEGRATION_COUNTERS: [Family<IntegrationData, IntegrationHealth>; 2] = [
    (
        "agenthealth_integration_calls",
        Type::Counter,
        "Calls and probes.",
        |d, _| Some(d.record.totals.count as f64),
    ),
    (
        "agenthealth_integration_failures",
        Type::Counter,
        "Calls and probes that failed.",
        |d, _| Some(d.record.totals.failed as f64),
    ),
];

/// Host families, in exposition order.
const HOST_GAUGES: [Family<HostRecord, ()>; 4] = [
    (
        "agenthealth_host_cpu_utilization_ratio",
        Type::Gauge,
        "The host's latest CPU usage, 0 to 1.",
        |h, _| Some(h.cpu_usage / 100.0),
    ),
    (
        "agenthealth_host_memory_utilization_ratio",
        Type::Gauge,
        "The host's latest memory usage, 0 to 1.",
        |h, _| Some(h.memory_usage / 100.0),
    ),
    (
        "agenthealth_host_disk_utilization_ratio",
        Type::Gauge,
        "The host's latest disk usage, 0 to 1.",
        |h, _| h.disk_usage.map(|d| d / 100.0),
    ),
    (
        "agenthealth_host_last_seen_timestamp_seconds",
        Type::Gauge,
        "When the host last reported (Unix time).",
        |h, _| Some(h.last_seen as f64 / 1000.0),
    ),
];

/// Writes each family with one sample a source that has a value, labelled by `labels`.
fn families<D, H>(
    out: &mut Exposition,
    table: &[Family<D, H>],
    rows: &[(&D, H)],
    labels: impl Fn(&D) -> Labels,
) {
    for (name, kind, help, value) in table {
        let samples: Vec<Sample> = rows
            .iter()
            .filter_map(|(d, h)| value(d, h).map(|v| (labels(d), v)))
            .collect();
        out.family(name, *kind, help, &samples);
    }
}

fn agent_labels(d: &AgentData) -> Labels {
    vec![
        ("agent_id", d.record.agent_id.clone()),
        ("agent_name", d.record.agent_name.clone()),
    ]
}

fn integration_labels(d: &IntegrationData) -> Labels {
    vec![
        ("integration_id", d.record.integration_id.clone()),
        ("integration_name", d.record.integration_name.clone()),
    ]
}

/// The agent families: statuses and rates, duration percentiles, totals and tokens.
fn agent_families(out: &mut Exposition, agents: &[AgentRow]) {
    families(out, &AGENT_GAUGES, agents, agent_labels);
    let durations: Vec<Sample> = agents
        .iter()
        .flat_map(|(d, h)| by_percentile(&agent_labels(d), h.latency.values()))
        .collect();
    out.family(
        "agenthealth_agent_execution_duration_seconds",
        Type::Gauge,
        "Percentiles of the last hour's execution durations, by the percentile label.",
        &durations,
    );
    families(out, &AGENT_COUNTERS, agents, agent_labels);
    let mut tokens = Vec::new();
    for (d, _) in agents {
        let totals = &d.record.totals;
        for (kind, n) in [
            ("input", totals.input_tokens),
            ("output", totals.output_tokens),
        ] {
            let mut labels = agent_labels(d);
            labels.push(("token_type", kind.to_owned()));
            tokens.push((labels, n as f64));
        }
    }
    out.family(
        "agenthealth_agent_tokens",
        Type::Counter,
        "Model tokens the agent's finished executions used, by token_type (input, output).",
        &tokens,
    );
}

/// The integration families: statuses and rates, latency percentiles and totals.
fn integration_families(out: &mut Exposition, integrations: &[IntegrationRow]) {
    families(out, &INTEGRATION_GAUGES, integrations, integration_labels);
    let latency: Vec<Sample> = integrations
        .iter()
        .flat_map(|(d, h)| by_percentile(&integration_labels(d), h.latency.values()))
        .collect();
    out.family(
        "agenthealth_integration_latency_seconds",
        Type::Gauge,
        "Percentiles of the last hour's call and probe latencies, by the percentile label.",
        &latency,
    );
    families(out, &INTEGRATION_COUNTERS, integrations, integration_labels);
}

/// The host families: each host's latest usage and when it last reported.
fn host_families(out: &mut Exposition, hosts: &[HostRecord]) {
    let hosts: Vec<_> = hosts.iter().map(|h| (h, ())).collect();
    families(out, &HOST_GAUGES, &hosts, |h| {
        vec![("host_id", h.host_id.clone())]
    });
}

/// The active alerts, one series each, in label order.
fn alert_family(out: &mut Exposition, alerts: &[(AlertRecord, u64)]) {
    let mut samples: Vec<Sample> = alerts
        .iter()
        .map(|(a, _)| a)
        .filter(|a| a.resolved_at.is_none())
        .map(|a| {
            let state = if a.acknowledged_at.is_some() {
                "acknowledged"
            } else {
                "firing"
            };
            (
                vec![
                    ("alertname", a.condition.clone()),
                    ("alertstate", state.to_owned()),
                    ("severity", wire_name(&a.severity)),
                    ("source_type", wire_name(&a.source_type)),
                    ("source_id", a.source_id.clone()),
                    ("alert_id", a.alert_id.clone()),
                ],
                1.0,
            )
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    out.family(
        "agenthealth_alerts",
        Type::Gauge,
        "Active alerts, one series each (as Prometheus's ALERTS): alertstate firing or acknowledged.",
        &samples,
    );
}
