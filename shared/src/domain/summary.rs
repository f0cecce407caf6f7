//! `GET /api/health/summary`: what the overview's first paint needs, in one small object
//! (counts by status, the worst entities, the alert counts and the first alerts, the system
//! object), computed by the collector's cycle from the health it already evaluated, so a
//! dashboard of 10,000 agents reads one item instead of every agent.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::alerts::{AlertView, Severity};
use crate::domain::health::{AgentHealth, AgentStatus, IntegrationHealth, IntegrationStatus};
use crate::domain::system::SystemHealth;
use crate::time::{format_rfc3339, Millis};

/// Agents and integrations listed as the worst of each kind.
pub const WORST: usize = 10;
/// Active alerts listed (the first page, in the alerts endpoint's order).
pub const FIRST_ALERTS: usize = 20;
/// Hosts the summary's system object lists (the busiest by CPU); `hosts_reporting` counts
/// them all. Bounds the stored item whatever the fleet.
pub const BUSIEST_HOSTS: usize = 20;

/// The summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// When the health in it was evaluated (the cycle's time).
    pub evaluated_at: String,
    /// The agents.
    pub agents: Group<AgentHealth>,
    /// The integrations.
    pub integrations: Group<IntegrationHealth>,
    /// The active alerts.
    pub alerts: AlertSummary,
    /// The system object; its `hosts` holds the [`BUSIEST_HOSTS`] busiest.
    pub system: SystemHealth,
    /// Hosts that reported in the last 2 minutes (the system object lists at most
    /// [`BUSIEST_HOSTS`] of them).
    pub hosts_reporting: u64,
}

/// One kind of entity: how many, how many of each status, and the worst.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group<T> {
    /// Entities of the kind.
    pub total: u64,
    /// Entities by status; every status is present, 0 when none has it.
    pub by_status: BTreeMap<&'static str, u64>,
    /// At most [`WORST`] entities that need a look, worst first; none when all are well.
    pub worst: Vec<T>,
}

/// The active alerts: counts and the first ones.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertSummary {
    /// Active alerts.
    pub total: u64,
    /// Critical ones.
    pub critical: u64,
    /// Warnings.
    pub warning: u64,
    /// Info.
    pub info: u64,
    /// Acknowledged ones (of any severity).
    pub acknowledged: u64,
    /// Ones a silence or maintenance window holds.
    pub silenced: u64,
    /// The first [`FIRST_ALERTS`], critical first, then newest first (as the alerts
    /// endpoint lists them).
    pub first: Vec<AlertView>,
}

/// What a summary is made of: the cycle's health objects and alerts.
#[derive(Debug, Clone, Copy)]
pub struct SummaryInputs<'a> {
    /// Every agent's health.
    pub agents: &'a [AgentHealth],
    /// Every integration's health.
    pub integrations: &'a [IntegrationHealth],
    /// The active alerts as clients see them, in the alerts endpoint's order.
    pub alerts: &'a [AlertView],
    /// The system object.
    pub system: &'a SystemHealth,
}

const AGENT_STATUSES: [(AgentStatus, &str); 4] = [
    (AgentStatus::Error, "error"),
    (AgentStatus::Paused, "paused"),
    (AgentStatus::Idle, "idle"),
    (AgentStatus::Active, "active"),
];

const INTEGRATION_STATUSES: [(IntegrationStatus, &str); 3] = [
    (IntegrationStatus::Error, "error"),
    (IntegrationStatus::Degraded, "degraded"),
    (IntegrationStatus::Healthy, "healthy"),
];

/// An agent needs a look when its last execution failed or some of the hour's failed;
/// worse is: failed status first, then the higher error rate, then the id.
fn agent_badness(a: &AgentHealth) -> Option<(u8, f64)> {
    let failed = a.status == AgentStatus::Error;
    (failed || a.metrics.error_rate > 0.0).then_some((u8::from(!failed), a.metrics.error_rate))
}

/// An integration needs a look when it is not healthy or some of the hour's calls failed;
/// worse is: error, then degraded, then the higher error rate, then the id.
fn integration_badness(i: &IntegrationHealth) -> Option<(u8, f64)> {
    let rank = match i.status {
        IntegrationStatus::Error => 0,
        IntegrationStatus::Degraded => 1,
        IntegrationStatus::Healthy => 2,
    };
    (rank < 2 || i.error_rate > 0.0).then_some((rank, i.error_rate))
}

/// The worst `WORST` of `items` by `badness` (rank ascending, rate descending), ties by id.
fn worst<T: Clone>(
    items: &[T],
    badness: impl Fn(&T) -> Option<(u8, f64)>,
    id: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut bad: Vec<((u8, f64), &T)> = items
        .iter()
        .filter_map(|x| badness(x).map(|b| (b, x)))
        .collect();
    bad.sort_by(|((ra, ea), a), ((rb, eb), b)| {
        ra.cmp(rb)
            .then(eb.total_cmp(ea))
            .then_with(|| id(a).cmp(id(b)))
    });
    bad.into_iter()
        .take(WORST)
        .map(|(_, x)| x.clone())
        .collect()
}

fn by_status<T, S: PartialEq + Copy>(
    items: &[T],
    names: &[(S, &'static str)],
    status: impl Fn(&T) -> S,
) -> BTreeMap<&'static str, u64> {
    names
        .iter()
        .map(|(s, name)| {
            (
                *name,
                items.iter().filter(|x| status(x) == *s).count() as u64,
            )
        })
        .collect()
}

/// The summary of a tenant's health evaluated at `at`.
pub fn summarize(input: SummaryInputs<'_>, at: Millis) -> Summary {
    let count =
        |f: &dyn Fn(&AlertView) -> bool| input.alerts.iter().filter(|a| f(a)).count() as u64;
    let mut system = input.system.clone();
    let hosts_reporting = system.hosts.len() as u64;
    // The busiest first, ties by id; the system object lists hosts by id, so back to that.
    system.hosts.sort_by(|a, b| {
        b.cpu_usage
            .total_cmp(&a.cpu_usage)
            .then_with(|| a.host_id.cmp(&b.host_id))
    });
    system.hosts.truncate(BUSIEST_HOSTS);
    system.hosts.sort_by(|a, b| a.host_id.cmp(&b.host_id));
    Summary {
        evaluated_at: format_rfc3339(at),
        agents: Group {
            total: input.agents.len() as u64,
            by_status: by_status(input.agents, &AGENT_STATUSES, |a| a.status),
            worst: worst(input.agents, agent_badness, |a| &a.agent_id),
        },
        integrations: Group {
            total: input.integrations.len() as u64,
            by_status: by_status(input.integrations, &INTEGRATION_STATUSES, |i| i.status),
            worst: worst(input.integrations, integration_badness, |i| {
                &i.integration_id
            }),
        },
        alerts: AlertSummary {
            total: input.alerts.len() as u64,
            critical: count(&|a| a.severity == Severity::Critical),
            warning: count(&|a| a.severity == Severity::Warning),
            info: count(&|a| a.severity == Severity::Info),
            acknowledged: count(&|a| a.acknowledged),
            silenced: count(&|a| a.silenced),
            first: input.alerts.iter().take(FIRST_ALERTS).cloned().collect(),
        },
        system,
        hosts_reporting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alerts::{AlertRecord, SourceType};
    use crate::domain::events::Outcome;
    use crate::domain::health::{agent_health, integration_health};
    use crate::domain::records::{
        AgentCounters, AgentRecord, HostRecord, IntegrationCounters, IntegrationRecord,
        SystemRecord,
    };
    use crate::domain::system::{system_health, SystemInputs};
    use crate::time::minute_of;

    const NOW: Millis = 1_800_000_000_000;

    /// An agent that started `started` executions this hour, `failed` of which failed (the
    /// last one too when any did).
    fn agent(id: &str, started: u64, failed: u64) -> AgentHealth {
        let mut record = AgentRecord::new(id, NOW - 1_000);
        if failed > 0 {
            record.last_outcome = Some(Outcome::Failed);
        }
        let counters = AgentCounters {
            started,
            completed: started - failed,
            failed,
            ..AgentCounters::default()
        };
        agent_health(&record, &[(minute_of(NOW), counters)], &[], &[], NOW)
    }

    fn integration(id: &str, calls: u64, failures: u64) -> IntegrationHealth {
        let mut record = IntegrationRecord::new(id, NOW - 1_000);
        for k in 0..calls {
            record.record_result(k >= failures, NOW - 1_000 + k as Millis);
        }
        let counters = IntegrationCounters {
            calls,
            failures,
            latency_sum_ms: 100.0 * calls as f64,
        };
        integration_health(
            &record,
            &[(minute_of(NOW), counters)],
            &[],
            &[],
            NOW,
            5_000.0,
        )
    }

    fn system(hosts: usize, alerts: &[AlertRecord]) -> SystemHealth {
        let hosts: Vec<HostRecord> = (0..hosts)
            .map(|h| HostRecord {
                host_id: format!("host-{h:03}"),
                cpu_usage: (h * 7 % 100) as f64,
                memory_usage: 50.0,
                disk_usage: None,
                load_average: None,
                uptime_seconds: None,
                last_seen: NOW - 1_000,
                reporting_since: None,
            })
            .collect();
        system_health(
            SystemInputs {
                agents: &[],
                integrations: &[],
                hosts: &hosts,
                system: &SystemRecord::default(),
                alerts,
            },
            NOW,
        )
    }

    fn alert(id: &str, severity: Severity, acknowledged: bool) -> AlertRecord {
        let mut a = AlertRecord::open(
            id,
            severity,
            "something",
            (SourceType::Agent, "a"),
            "error_rate",
            NOW,
        );
        if acknowledged {
            a.acknowledged_at = Some(NOW);
        }
        a
    }

    #[test]
    fn counts_every_status_and_lists_the_worst_first() {
        let agents = vec![
            agent("ok", 4, 0),
            agent("half", 4, 2),
            agent("all", 2, 2),
            agent("quiet", 0, 0),
        ];
        let integrations = vec![
            integration("fine", 10, 0),
            integration("flaky", 10, 1),
            integration("down", 5, 5),
        ];
        let s = summarize(
            SummaryInputs {
                agents: &agents,
                integrations: &integrations,
                alerts: &[],
                system: &system(0, &[]),
            },
            NOW,
        );
        assert_eq!(s.agents.total, 4);
        assert_eq!(
            s.agents
                .by_status
                .iter()
                .map(|(k, v)| (*k, *v))
                .collect::<Vec<_>>(),
            [("active", 0), ("error", 2), ("idle", 2), ("paused", 0)],
            "agents by status, every status present"
        );
        let ids = |v: &[AgentHealth]| v.iter().map(|a| a.agent_id.clone()).collect::<Vec<_>>();
        assert_eq!(
            ids(&s.agents.worst),
            ["all", "half"],
            "failing agents only, the higher error rate first"
        );
        assert_eq!(
            s.integrations
                .worst
                .iter()
                .map(|i| i.integration_id.as_str())
                .collect::<Vec<_>>(),
            ["down", "flaky"],
            "the failed integration before the one with some failed calls; the fine one left out"
        );
        assert_eq!(s.integrations.by_status.values().sum::<u64>(), 3);
        assert_eq!(s.evaluated_at, format_rfc3339(NOW));
    }

    #[test]
    fn the_worst_are_bounded_and_ties_go_by_id() {
        let agents: Vec<AgentHealth> = (0..25)
            .rev()
            .map(|i| agent(&format!("a{i:02}"), 2, 1))
            .collect();
        let s = summarize(
            SummaryInputs {
                agents: &agents,
                integrations: &[],
                alerts: &[],
                system: &system(0, &[]),
            },
            NOW,
        );
        assert_eq!(s.agents.worst.len(), WORST);
        assert_eq!(s.agents.worst[0].agent_id, "a00");
        assert_eq!(s.agents.worst[WORST - 1].agent_id, "a09");
    }

    #[test]
    fn alerts_are_counted_and_the_first_page_kept_in_order() {
        let mut records: Vec<AlertRecord> = (0..30)
            .map(|i| alert(&format!("w{i:02}"), Severity::Warning, i % 3 == 0))
            .collect();
        records.insert(0, alert("c", Severity::Critical, false));
        let mut views: Vec<AlertView> = records.iter().map(AlertRecord::view).collect();
        views[1].silenced = true;
        let s = summarize(
            SummaryInputs {
                agents: &[],
                integrations: &[],
                alerts: &views,
                system: &system(0, &records),
            },
            NOW,
        );
        let a = &s.alerts;
        assert_eq!((a.total, a.critical, a.warning, a.info), (31, 1, 30, 0));
        assert_eq!((a.acknowledged, a.silenced), (10, 1));
        assert_eq!(a.first.len(), FIRST_ALERTS);
        assert_eq!(
            a.first[0].alert_id, "c",
            "the alerts endpoint's order is kept"
        );
        assert_eq!(s.system.alerts.critical, 1);
    }

    #[test]
    fn the_system_lists_the_busiest_hosts_by_id_and_counts_them_all() {
        let s = summarize(
            SummaryInputs {
                agents: &[],
                integrations: &[],
                alerts: &[],
                system: &system(60, &[]),
            },
            NOW,
        );
        assert_eq!(s.hosts_reporting, 60);
        assert_eq!(s.system.hosts.len(), BUSIEST_HOSTS);
        let cpus: Vec<f64> = s.system.hosts.iter().map(|h| h.cpu_usage).collect();
        let least = cpus.iter().copied().fold(f64::INFINITY, f64::min);
        assert!(least >= 66.0, "only the busiest 20 of 60 hosts: {cpus:?}");
        assert!(
            s.system
                .hosts
                .windows(2)
                .all(|w| w[0].host_id < w[1].host_id),
            "listed by id as the system object lists them"
        );
    }
}
