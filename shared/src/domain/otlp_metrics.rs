//! OpenTelemetry host metrics as host samples: what the OpenTelemetry Collector's
//! `hostmetrics` receiver (and SDKs' system metrics instrumentations) export, mapped so a
//! host already watched by OpenTelemetry needs no sidecar.
//!
//! Per resource (one host: `host.name`, else `host.id`):
//! - `system.cpu.utilization` (0..1) is per CPU and state (`state`, newer `system.cpu.state`
//!   or `cpu.mode`): CPU usage is 100 × (1 − the mean `idle` share over the CPUs); a point
//!   without a state is the whole host's utilization;
//! - `system.memory.utilization` (0..1) is per state (`state`, `system.memory.state`): memory
//!   usage is 100 × the `used` share; a point without a state is the whole host's.
//! - `system.filesystem.utilization`, when present, gives `disk_usage` (the fullest device).
//!
//! Each resource with both CPU and memory becomes one sample at its newest point's time,
//! with an event id from the host and that time, so a retried export counts once. Every
//! other data point is left out and counted.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, Metric, NumberDataPoint,
};

use super::otlp::{attr_str, Mapped, Unit};
use crate::domain::events::{Event, EventKind, MAX_EVENT_AGE_MS, MAX_FUTURE_SKEW_MS};
use crate::domain::ids::check_id;
use crate::time::Millis;

const CPU: &str = "system.cpu.utilization";
const MEMORY: &str = "system.memory.utilization";
const FILESYSTEM: &str = "system.filesystem.utilization";

/// Data points of any kind a metric holds.
fn point_count(m: &Metric) -> u64 {
    let n = match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    };
    n as u64
}

/// The number points of a gauge or sum.
fn number_points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(Data::Gauge(g)) => &g.data_points,
        Some(Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

fn value(p: &NumberDataPoint) -> Option<f64> {
    match p.value? {
        number_data_point::Value::AsDouble(d) => Some(d),
        number_data_point::Value::AsInt(i) => Some(i as f64),
    }
    .filter(|v| v.is_finite())
}

fn state(attrs: &[KeyValue]) -> Option<&str> {
    [
        "state",
        "system.cpu.state",
        "cpu.mode",
        "system.memory.state",
    ]
    .iter()
    .find_map(|k| attr_str(attrs, k))
}

/// CPU usage (percent) from the utilization points of one time.
fn cpu_usage(points: &[&NumberDataPoint]) -> Option<f64> {
    if points.iter().all(|p| state(&p.attributes).is_none()) {
        let values: Vec<f64> = points.iter().filter_map(|p| value(p)).collect();
        return (!values.is_empty())
            .then(|| 100.0 * values.iter().sum::<f64>() / values.len() as f64);
    }
    let idle: Vec<&&NumberDataPoint> = points
        .iter()
        .filter(|p| state(&p.attributes) == Some("idle"))
        .collect();
    if idle.is_empty() {
        return None;
    }
    let cpus: BTreeSet<&str> = idle
        .iter()
        .map(|p| {
            attr_str(&p.attributes, "cpu")
                .or_else(|| attr_str(&p.attributes, "cpu.logical_number"))
                .unwrap_or("")
        })
        .collect();
    let idle_sum: f64 = idle.iter().filter_map(|p| value(p)).sum();
    Some(100.0 * (1.0 - idle_sum / cpus.len().max(1) as f64))
}

/// Memory usage (percent) from the utilization points of one time.
fn memory_usage(points: &[&NumberDataPoint]) -> Option<f64> {
    let stateless: Vec<f64> = points
        .iter()
        .filter(|p| state(&p.attributes).is_none())
        .filter_map(|p| value(p))
        .collect();
    if let Some(v) = stateless.first() {
        return Some(100.0 * v);
    }
    let used: Vec<f64> = points
        .iter()
        .filter(|p| state(&p.attributes) == Some("used"))
        .filter_map(|p| value(p))
        .collect();
    (!used.is_empty()).then(|| 100.0 * used.iter().sum::<f64>())
}

/// The points of the newest time among `points`, and that time (ns).
fn newest(points: &[NumberDataPoint]) -> Option<(u64, Vec<&NumberDataPoint>)> {
    let mut by_time: BTreeMap<u64, Vec<&NumberDataPoint>> = BTreeMap::new();
    for p in points {
        by_time.entry(p.time_unix_nano).or_default().push(p);
    }
    by_time.into_iter().next_back()
}

/// Maps a request's metrics to host samples at `now`. Pure.
pub fn map_request(request: &ExportMetricsServiceRequest, now: Millis) -> Mapped {
    let mut out = Mapped {
        unit: Unit::DataPoints,
        ..Mapped::default()
    };
    for rm in &request.resource_metrics {
        let attrs = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let metrics: Vec<&Metric> = rm.scope_metrics.iter().flat_map(|s| &s.metrics).collect();
        let used: Vec<&Metric> = metrics
            .iter()
            .copied()
            .filter(|m| [CPU, MEMORY, FILESYSTEM].contains(&m.name.as_str()))
            .collect();
        let used_points: u64 = used.iter().map(|m| point_count(m)).sum();
        let others: u64 = metrics.iter().map(|m| point_count(m)).sum::<u64>() - used_points;
        out.reject_n(
            others,
            "not a host metric the monitor maps (it maps system.cpu.utilization, system.memory.utilization and system.filesystem.utilization)",
        );
        if used_points == 0 {
            continue;
        }
        match host_sample(&metrics, attrs, now) {
            Ok(event) => {
                out.accepted += used_points;
                out.events.push(event);
            }
            Err(reason) => out.reject_n(used_points, reason),
        }
    }
    out
}

/// The host sample of one resource's metrics, or why there is none.
fn host_sample(
    metrics: &[&Metric],
    attrs: &[KeyValue],
    now: Millis,
) -> Result<Event, &'static str> {
    let find = |name: &str| metrics.iter().find(|m| m.name == name).copied();
    let host = attr_str(attrs, "host.name").or_else(|| attr_str(attrs, "host.id"));
    let host = host
        .filter(|h| check_id(h).is_ok())
        .ok_or("no host.name (or host.id) of 1 to 128 characters on the resource")?;
    let cpu = find(CPU).and_then(|m| newest(number_points(m)));
    let memory = find(MEMORY).and_then(|m| newest(number_points(m)));
    let (Some((cpu_at, cpu_points)), Some((mem_at, mem_points))) = (cpu, memory) else {
        return Err(
            "a host sample needs both system.cpu.utilization and system.memory.utilization",
        );
    };
    let (Some(cpu_usage), Some(memory_usage)) = (cpu_usage(&cpu_points), memory_usage(&mem_points))
    else {
        return Err("no idle CPU state or used memory state among the points");
    };
    let disk_usage = find(FILESYSTEM)
        .and_then(|m| newest(number_points(m)))
        .and_then(|(_, ps)| ps.iter().filter_map(|p| value(p)).reduce(f64::max))
        .map(|d| (100.0 * d).clamp(0.0, 100.0));
    let at_ns = cpu_at.max(mem_at);
    let at = (at_ns / 1_000_000) as Millis;
    if at > now + MAX_FUTURE_SKEW_MS || at < now - MAX_EVENT_AGE_MS {
        return Err("older than 7 days or more than 5 minutes in the future");
    }
    Ok(Event {
        event_id: format!("otel-metrics-{at_ns}"),
        timestamp: at,
        kind: EventKind::HostSample {
            host_id: host.to_owned(),
            cpu_usage: cpu_usage.clamp(0.0, 100.0),
            memory_usage: memory_usage.clamp(0.0, 100.0),
            disk_usage,
            load_average: None,
            uptime_seconds: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::metrics::v1::{Gauge, ResourceMetrics, ScopeMetrics};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const NOW: Millis = 1_780_000_000_000;

    fn s(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..KeyValue::default()
        }
    }

    fn point(v: f64, attrs: Vec<KeyValue>) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs,
            time_unix_nano: (NOW as u64 - 1_000) * 1_000_000,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..NumberDataPoint::default()
        }
    }

    fn gauge(name: &str, points: Vec<NumberDataPoint>) -> Metric {
        Metric {
            name: name.into(),
            data: Some(Data::Gauge(Gauge {
                data_points: points,
            })),
            ..Metric::default()
        }
    }

    fn request(host: Option<&str>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: host.map(|h| vec![s("host.name", h)]).unwrap_or_default(),
                    ..Resource::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            }],
        }
    }

    #[test]
    fn per_cpu_states_become_one_sample_and_other_metrics_are_counted() {
        let cpu = gauge(
            CPU,
            vec![
                point(0.25, vec![s("cpu", "cpu0"), s("state", "idle")]),
                point(0.70, vec![s("cpu", "cpu0"), s("state", "user")]),
                point(0.75, vec![s("cpu", "cpu1"), s("state", "idle")]),
                point(0.20, vec![s("cpu", "cpu1"), s("state", "user")]),
            ],
        );
        let memory = gauge(
            MEMORY,
            vec![
                point(0.625, vec![s("state", "used")]),
                point(0.375, vec![s("state", "free")]),
            ],
        );
        let other = gauge(
            "system.network.io",
            vec![point(1.0, vec![]), point(2.0, vec![])],
        );
        let m = map_request(&request(Some("web-1"), vec![cpu, memory, other]), NOW);
        assert_eq!((m.accepted, m.rejected), (6, 2));
        assert!(
            m.message().starts_with("2 data points: not a host metric"),
            "{}",
            m.message()
        );
        assert_eq!(m.events.len(), 1);
        assert!(
            matches!(&m.events[0].kind, EventKind::HostSample { host_id, cpu_usage, memory_usage, .. }
            if host_id == "web-1" && (*cpu_usage - 50.0).abs() < 1e-9 && (*memory_usage - 62.5).abs() < 1e-9)
        );
        assert_eq!(m.events[0].timestamp, NOW - 1_000);
    }

    #[test]
    fn a_host_needs_a_name_and_both_metrics() {
        let cpu = || gauge(CPU, vec![point(0.4, vec![])]);
        let m = map_request(
            &request(None, vec![cpu(), gauge(MEMORY, vec![point(0.5, vec![])])]),
            NOW,
        );
        assert_eq!((m.accepted, m.rejected, m.events.len()), (0, 2, 0));
        let m = map_request(&request(Some("h"), vec![cpu()]), NOW);
        assert!(m.message().contains("needs both"), "{}", m.message());
        let m = map_request(
            &request(
                Some("h"),
                vec![cpu(), gauge(MEMORY, vec![point(0.5, vec![])])],
            ),
            NOW,
        );
        assert!(
            matches!(&m.events[0].kind, EventKind::HostSample { cpu_usage, memory_usage, .. }
            if (*cpu_usage - 40.0).abs() < 1e-9 && (*memory_usage - 50.0).abs() < 1e-9)
        );
    }
}
