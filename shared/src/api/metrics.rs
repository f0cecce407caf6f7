//! `GET /metrics`: the tenant's health as Prometheus metrics, in OpenMetrics 1.0 text, or
//! in the classic text format 0.0.4 for a scraper that asks only for that.
//!
//! Every family is prefixed `agenthealth_`. Gauges describe now (statuses as numbers, the
//! last hour's rates and percentiles, hosts' latest sample); counters are monotonic totals
//! kept on each agent's and integration's record; active alerts are one series each, as
//! Prometheus's own `ALERTS`. Label values are escaped as both formats require.

use http::{HeaderValue, Response, StatusCode};

use super::ApiError;
use crate::domain::health::{AgentStatus, IntegrationStatus};
use crate::domain::wire_name;
use crate::store::tenant::TenantData;
use crate::telemetry::exposition::{
    wants_openmetrics, Exposition, Sample, Type, OPENMETRICS, PROMETHEUS_TEXT,
};
use crate::time::Millis;
use crate::AppState;

/// Serves `/metrics` for the key's tenant; `accept` is the request's `Accept` header.
pub async fn get(
    state: &AppState,
    tenant: &str,
    accept: Option<&str>,
) -> Result<Response<String>, ApiError> {
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
    use Type::{Counter, Gauge};
    let agents: Vec<_> = data
        .agents
        .iter()
        .map(|d| (d, crate::store::agents::health_of(d, now)))
        .collect();
    let al = |d: &crate::store::live::AgentData| {
        vec![
            ("agent_id", d.record.agent_id.clone()),
            ("agent_name", d.record.agent_name.clone()),
        ]
    };
    let each = |f: &dyn Fn(
        &crate::store::live::AgentData,
        &crate::domain::health::AgentHealth,
    ) -> Option<f64>|
     -> Vec<Sample> {
        agents
            .iter()
            .filter_map(|(d, h)| f(d, h).map(|v| (al(d), v)))
            .collect()
    };
    out.family(
        "agenthealth_agent_status",
        Gauge,
        "Agent status: 0 idle, 1 active (an execution runs), 2 paused, 3 error (the last execution failed).",
        &each(&|_, h| Some(agent_status_value(h.status))),
    );
    out.family(
        "agenthealth_agent_success_ratio",
        Gauge,
        "Completed share of the executions started in the last hour.",
        &each(&|_, h| Some(h.success_rate)),
    );
    out.family(
        "agenthealth_agent_error_ratio",
        Gauge,
        "Failed share of the executions started in the last hour.",
        &each(&|_, h| Some(h.metrics.error_rate)),
    );
    out.family(
        "agenthealth_agent_running_executions",
        Gauge,
        "Executions in flight.",
        &each(&|d, _| Some(d.record.running.len() as f64)),
    );
    out.family(
        "agenthealth_agent_confidence",
        Gauge,
        "Latest confidence the agent reported (0.5 if none).",
        &each(&|_, h| Some(h.confidence_score)),
    );
    let durations: Vec<Sample> = agents
        .iter()
        .flat_map(|(d, h)| {
            by_percentile(
                &al(d),
                [h.latency_p50_ms, h.latency_p95_ms, h.latency_p99_ms],
            )
        })
        .collect();
    out.family(
        "agenthealth_agent_execution_duration_seconds",
        Gauge,
        "Percentiles of the last hour's execution durations, by the percentile label.",
        &durations,
    );
    out.family(
        "agenthealth_agent_executions",
        Counter,
        "Executions finished.",
        &each(&|d, _| Some(d.record.totals.count as f64)),
    );
    out.family(
        "agenthealth_agent_failures",
        Counter,
        "Executions that failed.",
        &each(&|d, _| Some(d.record.totals.failed as f64)),
    );
    let mut tokens = Vec::new();
    for (d, _) in &agents {
        for (kind, n) in [
            ("input", d.record.totals.input_tokens),
            ("output", d.record.totals.output_tokens),
        ] {
            let mut labels = al(d);
            labels.push(("token_type", kind.to_owned()));
            tokens.push((labels, n as f64));
        }
    }
    out.family(
        "agenthealth_agent_tokens",
        Counter,
        "Model tokens the agent's finished executions used, by token_type (input, output).",
        &tokens,
    );

    let integrations: Vec<_> = data
        .integrations
        .iter()
        .map(|d| (d, d.health(now, threshold_ms)))
        .collect();
    let il = |r: &crate::domain::records::IntegrationRecord| {
        vec![
            ("integration_id", r.integration_id.clone()),
            ("integration_name", r.integration_name.clone()),
        ]
    };
    let each = |f: &dyn Fn(
        &crate::store::live::IntegrationData,
        &crate::domain::health::IntegrationHealth,
    ) -> Option<f64>|
     -> Vec<Sample> {
        integrations
            .iter()
            .filter_map(|(d, h)| f(d, h).map(|v| (il(&d.record), v)))
            .collect()
    };
    out.family(
        "agenthealth_integration_status",
        Gauge,
        "Integration status: 0 healthy, 1 degraded, 2 error.",
        &each(&|_, h| Some(integration_status_value(h.status))),
    );
    out.family(
        "agenthealth_integration_error_ratio",
        Gauge,
        "Failed share of the last hour's calls and probes.",
        &each(&|_, h| Some(h.error_rate)),
    );
    out.family(
        "agenthealth_integration_consecutive_failures",
        Gauge,
        "Calls and probes failed in a row.",
        &each(&|_, h| Some(f64::from(h.consecutive_failures))),
    );
    let latency: Vec<Sample> = integrations
        .iter()
        .flat_map(|(d, h)| {
            by_percentile(
                &il(&d.record),
                [h.latency_p50_ms, h.latency_p95_ms, h.latency_p99_ms],
            )
        })
        .collect();
    out.family(
        "agenthealth_integration_latency_seconds",
        Gauge,
        "Percentiles of the last hour's call and probe latencies, by the percentile label.",
        &latency,
    );
    out.family(
        "agenthealth_integration_calls",
        Counter,
        "Calls and probes.",
        &each(&|d, _| Some(d.record.totals.count as f64)),
    );
    out.family(
        "agenthealth_integration_failures",
        Counter,
        "Calls and probes that failed.",
        &each(&|d, _| Some(d.record.totals.failed as f64)),
    );

    let host = |f: &dyn Fn(&crate::domain::records::HostRecord) -> Option<f64>| -> Vec<Sample> {
        data.hosts
            .iter()
            .filter_map(|h| f(h).map(|v| (vec![("host_id", h.host_id.clone())], v)))
            .collect()
    };
    out.family(
        "agenthealth_host_cpu_utilization_ratio",
        Gauge,
        "The host's latest CPU usage, 0 to 1.",
        &host(&|h| Some(h.cpu_usage / 100.0)),
    );
    out.family(
        "agenthealth_host_memory_utilization_ratio",
        Gauge,
        "The host's latest memory usage, 0 to 1.",
        &host(&|h| Some(h.memory_usage / 100.0)),
    );
    out.family(
        "agenthealth_host_disk_utilization_ratio",
        Gauge,
        "The host's latest disk usage, 0 to 1.",
        &host(&|h| h.disk_usage.map(|d| d / 100.0)),
    );
    out.family(
        "agenthealth_host_last_seen_timestamp_seconds",
        Gauge,
        "When the host last reported (Unix time).",
        &host(&|h| Some(h.last_seen as f64 / 1000.0)),
    );

    let mut alerts: Vec<Sample> = data
        .alerts
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
    alerts.sort_by(|a, b| a.0.cmp(&b.0));
    out.family(
        "agenthealth_alerts",
        Gauge,
        "Active alerts, one series each (as Prometheus's ALERTS): alertstate firing or acknowledged.",
        &alerts,
    );
}
