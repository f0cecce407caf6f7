//! `GET /api/health/system`: tenant-wide figures from the latest records.

use serde::Serialize;

use crate::domain::alerts::{AlertRecord, Severity};
use crate::domain::health::{AgentStatus, IntegrationHealth, IntegrationStatus};
use crate::domain::records::{HostRecord, SystemRecord};
use crate::time::{format_rfc3339, Millis, MINUTE_MS};

/// Hosts (and gauges) count as current when they reported this recently.
pub const FRESH_MS: Millis = 2 * MINUTE_MS;

pub use crate::domain::round::round1;

/// One host of the `hosts` array.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSummary {
    /// The host.
    pub host_id: String,
    /// CPU usage, percent.
    pub cpu_usage: f64,
    /// Memory usage, percent.
    pub memory_usage: f64,
    /// When it last reported.
    pub last_seen: String,
}

/// Active alerts by severity.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlertCounts {
    /// Critical.
    pub critical: u64,
    /// Warning.
    pub warning: u64,
    /// Info.
    pub info: u64,
}

/// The contract's system object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SystemHealth {
    /// Mean CPU over current hosts, 0 if none.
    pub cpu_usage: f64,
    /// Mean memory over current hosts, 0 if none.
    pub memory_usage: f64,
    /// Running executions, or the `active_operations` gauge if it reported lately.
    pub active_operations: u64,
    /// Latest queue depth gauge, 0 if never reported.
    pub queue_depth: u64,
    /// Agents of the tenant.
    pub total_agents: u64,
    /// Agents with a running execution.
    pub active_agents: u64,
    /// Integrations of the tenant.
    pub total_integrations: u64,
    /// Integrations whose status is healthy.
    pub healthy_integrations: u64,
    /// Active alerts by severity, acknowledged or not.
    pub alerts: AlertCounts,
    /// Hosts that reported in the last 2 minutes, by id.
    pub hosts: Vec<HostSummary>,
}

/// Inputs of [`system_health`]: what the store read.
#[derive(Debug, Clone, Copy)]
pub struct SystemInputs<'a> {
    /// Each agent's status and number of running executions.
    pub agents: &'a [(AgentStatus, u64)],
    /// Every integration's health.
    pub integrations: &'a [IntegrationHealth],
    /// Every host's latest sample.
    pub hosts: &'a [HostRecord],
    /// Gauges.
    pub system: &'a SystemRecord,
    /// Active alerts.
    pub alerts: &'a [AlertRecord],
}

/// Computes the system object at `now`.
pub fn system_health(input: SystemInputs<'_>, now: Millis) -> SystemHealth {
    let mut hosts: Vec<&HostRecord> = input
        .hosts
        .iter()
        .filter(|h| now - h.last_seen <= FRESH_MS)
        .collect();
    hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    let mean = |f: fn(&HostRecord) -> f64| {
        if hosts.is_empty() {
            0.0
        } else {
            round1(hosts.iter().map(|h| f(h)).sum::<f64>() / hosts.len() as f64)
        }
    };
    let running: u64 = input.agents.iter().map(|(_, n)| n).sum();
    let active_operations = match input.system.active_operations {
        Some(g) if now - g.at <= FRESH_MS => g.value,
        _ => running,
    };
    let mut alerts = AlertCounts::default();
    for a in input.alerts.iter().filter(|a| a.resolved_at.is_none()) {
        match a.severity {
            Severity::Critical => alerts.critical += 1,
            Severity::Warning => alerts.warning += 1,
            Severity::Info => alerts.info += 1,
        }
    }
    SystemHealth {
        cpu_usage: mean(|h| h.cpu_usage),
        memory_usage: mean(|h| h.memory_usage),
        active_operations,
        queue_depth: input.system.queue_depth.map_or(0, |g| g.value),
        total_agents: input.agents.len() as u64,
        active_agents: input
            .agents
            .iter()
            .filter(|(s, _)| *s == AgentStatus::Active)
            .count() as u64,
        total_integrations: input.integrations.len() as u64,
        healthy_integrations: input
            .integrations
            .iter()
            .filter(|i| i.status == IntegrationStatus::Healthy)
            .count() as u64,
        alerts,
        hosts: hosts
            .iter()
            .map(|h| HostSummary {
                host_id: h.host_id.clone(),
                cpu_usage: round1(h.cpu_usage),
                memory_usage: round1(h.memory_usage),
                last_seen: format_rfc3339(h.last_seen),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::GaugeReading;

    fn host(id: &str, cpu: f64, mem: f64, last_seen: Millis) -> HostRecord {
        HostRecord {
            host_id: id.into(),
            cpu_usage: cpu,
            memory_usage: mem,
            disk_usage: None,
            load_average: None,
            uptime_seconds: None,
            last_seen,
            reporting_since: None,
        }
    }

    #[test]
    fn cpu_and_memory_are_means_over_hosts_seen_in_the_last_two_minutes() {
        let now = 10 * MINUTE_MS;
        let hosts = [
            host("b", 40.0, 60.0, now - 1000),
            host("a", 50.4, 65.6, now),
            host("stale", 99.0, 99.0, now - 3 * MINUTE_MS),
        ];
        let s = system_health(
            SystemInputs {
                agents: &[],
                integrations: &[],
                hosts: &hosts,
                system: &SystemRecord::default(),
                alerts: &[],
            },
            now,
        );
        assert_eq!((s.cpu_usage, s.memory_usage), (45.2, 62.8));
        let ids: Vec<&str> = s.hosts.iter().map(|h| h.host_id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn active_operations_count_running_executions_unless_a_recent_gauge_reports_them() {
        let now = 10 * MINUTE_MS;
        let agents = [
            (AgentStatus::Active, 2),
            (AgentStatus::Idle, 0),
            (AgentStatus::Active, 3),
        ];
        let mut system = SystemRecord::default();
        let input = |system: &SystemRecord| {
            system_health(
                SystemInputs {
                    agents: &agents,
                    integrations: &[],
                    hosts: &[],
                    system,
                    alerts: &[],
                },
                now,
            )
        };
        let s = input(&system);
        assert_eq!(
            (
                s.active_operations,
                s.active_agents,
                s.total_agents,
                s.cpu_usage
            ),
            (5, 2, 3, 0.0)
        );
        system.active_operations = Some(GaugeReading {
            value: 9,
            at: now - 1000,
        });
        system.queue_depth = Some(GaugeReading {
            value: 12,
            at: now - 9 * MINUTE_MS,
        });
        let s = input(&system);
        assert_eq!((s.active_operations, s.queue_depth), (9, 12));
    }
}
