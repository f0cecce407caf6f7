//! The contract's alert table as pure functions: which conditions hold for a tenant's
//! state, and which alert writes turn the stored alerts into those conditions.
//!
//! Hysteresis: a condition is raised when its value crosses the threshold, and only cleared
//! when the value is back past a clear level on the safe side of the threshold (e.g. CPU
//! raises above 80 % and clears at 75 % or below). A value hovering at the threshold keeps
//! the one alert it raised instead of raising a new one every other cycle. The same applies
//! between warning and critical.

use std::collections::HashMap;

use crate::config::Config;
use crate::domain::alerts::{occurrence, AlertKey, AlertRecord, Severity, SourceType};
use crate::domain::live::hour_window;
use crate::domain::records::{
    AgentCounters, AgentRecord, HostRecord, IntegrationRecord, SystemRecord,
};
use crate::domain::system::round1;
use crate::store::live::AgentData;
use crate::time::{format_rfc3339, Millis};

/// Host CPU or memory above this (percent) is a warning.
pub const USAGE_WARNING: f64 = 80.0;
/// Host CPU or memory above this (percent) is critical.
pub const USAGE_CRITICAL: f64 = 90.0;
/// Percentage points below a usage threshold at which its alert clears (or de-escalates).
pub const USAGE_CLEAR_MARGIN: f64 = 5.0;
/// For other thresholds: the fraction of the threshold at which their alert clears.
pub const CLEAR_FRACTION: f64 = 0.9;
/// Agent confidence below this is a warning.
pub const LOW_CONFIDENCE: f64 = 0.3;
/// ... and its alert clears at or above this.
pub const LOW_CONFIDENCE_CLEAR: f64 = 0.33;
/// More failures than this in the hour is a warning.
pub const MAX_HOURLY_FAILURES: u64 = 3;
/// Consecutive integration failures that raise a warning; [`FAILED_AFTER`] is critical.
///
/// [`FAILED_AFTER`]: crate::domain::records::FAILED_AFTER
pub const CONSECUTIVE_FAILURES_WARNING: u32 = 2;
pub use crate::config::SILENT_INTERVALS;

/// Condition names: with the source they identify an alert.
pub mod condition {
    /// Host CPU above 80 % / 90 %.
    pub const CPU_HIGH: &str = "cpu_high";
    /// Host memory above 80 % / 90 %.
    pub const MEMORY_HIGH: &str = "memory_high";
    /// Queue depth above the threshold / twice it.
    pub const QUEUE_DEPTH_HIGH: &str = "queue_depth_high";
    /// Agent error rate above the threshold.
    pub const ERROR_RATE_HIGH: &str = "error_rate_high";
    /// Agent confidence below 0.3.
    pub const LOW_CONFIDENCE: &str = "low_confidence";
    /// More than 3 agent failures in the last hour.
    pub const REPEATED_FAILURES: &str = "repeated_failures";
    /// Integration latency above the threshold.
    pub const LATENCY_HIGH: &str = "latency_high";
    /// 2 / 3 or more consecutive integration failures.
    pub const CONSECUTIVE_FAILURES: &str = "consecutive_failures";
    /// A host or an unpaused agent silent for 5 polling intervals.
    pub const SILENT: &str = "silent";
    /// An execution running longer than max(`ALERT_STUCK_MIN_SECONDS`, 3 × the agent's
    /// 7-day p99 duration).
    pub const STUCK: &str = "stuck";
    /// An SLO of the source burning its error budget fast (critical) or slowly (warning).
    pub const SLO_BURN: &str = "slo_burn";
    /// Every condition, for reading stored alerts back.
    pub const ALL: [&str; 11] = [
        CPU_HIGH,
        MEMORY_HIGH,
        QUEUE_DEPTH_HIGH,
        ERROR_RATE_HIGH,
        LOW_CONFIDENCE,
        REPEATED_FAILURES,
        LATENCY_HIGH,
        CONSECUTIVE_FAILURES,
        SILENT,
        STUCK,
        SLO_BURN,
    ];
}

/// How many times the agent's 7-day p99 duration an execution may run before it is stuck.
pub const STUCK_P99_FACTOR: f64 = 3.0;

/// The running time after which an agent's execution is stuck: the larger of the floor and
/// [`STUCK_P99_FACTOR`] × its 7-day p99 duration (the floor alone without durations).
pub fn stuck_after_ms(floor_ms: Millis, p99_ms: Option<f64>) -> Millis {
    let by_p99 = p99_ms.map_or(0, |p| (p * STUCK_P99_FACTOR).ceil() as Millis);
    floor_ms.max(by_p99)
}

/// The agent's longest-running execution if it has run longer than `after_ms` at `now`:
/// the warning `Agent Sales Assistant stuck on "Processing leads" for 42 min`.
pub fn stuck(agent: &AgentRecord, after_ms: Millis, now: Millis) -> Option<Firing> {
    let oldest = agent.running.values().min_by_key(|r| r.started_at)?;
    let running = now - oldest.started_at;
    (running > after_ms).then(|| Firing {
        key: AlertKey::new(SourceType::Agent, &agent.agent_id, condition::STUCK),
        severity: Severity::Warning,
        message: format!(
            "Agent {} stuck on \"{}\" for {} min",
            agent.agent_name,
            oldest.operation,
            running / 60_000
        ),
    })
}

/// The thresholds the rules use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// `ALERT_ERROR_RATE_THRESHOLD`.
    pub error_rate: f64,
    /// `ALERT_LATENCY_THRESHOLD`, ms.
    pub latency_ms: f64,
    /// `ALERT_QUEUE_DEPTH_THRESHOLD`.
    pub queue_depth: f64,
    /// Silence that raises an alert: 5 polling intervals, ms.
    pub silent_after_ms: Millis,
    /// `ALERT_STUCK_MIN_SECONDS`, ms.
    pub stuck_min_ms: Millis,
}

impl From<&Config> for Thresholds {
    fn from(c: &Config) -> Self {
        Self {
            error_rate: c.error_rate_threshold,
            latency_ms: c.latency_threshold_ms,
            queue_depth: c.queue_depth_threshold as f64,
            silent_after_ms: c.silent_after_ms(),
            stuck_min_ms: i64::try_from(c.stuck_min_seconds.saturating_mul(1000))
                .unwrap_or(i64::MAX),
        }
    }
}

/// A condition that holds now, at a severity, with its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// What it is about.
    pub key: AlertKey,
    /// How urgent.
    pub severity: Severity,
    /// For a human.
    pub message: String,
}

/// The severity a "value above threshold" condition should have, given the severity of its
/// active alert (`None`: no active alert): raised past a level, kept until back past its
/// clear level.
fn above(
    value: f64,
    current: Option<Severity>,
    warning: (f64, f64),
    critical: Option<(f64, f64)>,
) -> Option<Severity> {
    if let Some((raise, clear)) = critical {
        if value > raise || (current == Some(Severity::Critical) && value > clear) {
            return Some(Severity::Critical);
        }
    }
    let (raise, clear) = warning;
    (value > raise || (current.is_some() && value > clear)).then_some(Severity::Warning)
}

/// A percentage as the messages show it: one decimal, none when whole (`85%`, `85.5%`).
fn percent(value: f64) -> String {
    format!("{}%", round1(value))
}

/// Conditions found to hold, with the active alerts' severities for hysteresis.
struct Findings<'a> {
    active: &'a HashMap<AlertKey, Severity>,
    out: Vec<Firing>,
}

impl Findings<'_> {
    fn current(&self, key: &AlertKey) -> Option<Severity> {
        self.active.get(key).copied()
    }

    /// Records `key` at the severity [`above`] gives `value` against the `warning` and
    /// `critical` levels, given its active alert.
    fn check_above(
        &mut self,
        key: AlertKey,
        value: f64,
        (warning, critical): ((f64, f64), Option<(f64, f64)>),
        message: impl FnOnce() -> String,
    ) {
        let severity = above(value, self.current(&key), warning, critical);
        self.check(key, severity, message);
    }

    /// Records the silent alert `key` of a source that is `silent` now, with hysteresis as
    /// for a value at its threshold: once raised, it holds until the source has
    /// `reported` for longer than the threshold without such a gap, so a source that
    /// reports less often than that (every 5 minutes against 150 s) has one alert, not
    /// one per report (each a raise, a resolve and a history delete).
    fn check_silence(
        &mut self,
        key: AlertKey,
        silent: bool,
        reported: bool,
        message: impl FnOnce() -> String,
    ) {
        let held = self.current(&key).is_some() && !reported;
        self.check(key, (silent || held).then_some(Severity::Warning), message);
    }

    /// Records `key` as holding at `severity` (nothing if `None`).
    fn check(
        &mut self,
        key: AlertKey,
        severity: Option<Severity>,
        message: impl FnOnce() -> String,
    ) {
        if let Some(severity) = severity {
            self.out.push(Firing {
                key,
                severity,
                message: message(),
            });
        }
    }
}

/// Evaluates every condition of the contract's alert table at `now`. `active` gives the
/// severity of each active alert, for hysteresis.
pub fn evaluate(
    agents: &[AgentData],
    integrations: &[(&IntegrationRecord, f64)],
    hosts: &[HostRecord],
    system: &SystemRecord,
    active: &HashMap<AlertKey, Severity>,
    t: &Thresholds,
    now: Millis,
) -> Vec<Firing> {
    let mut f = Findings {
        active,
        out: Vec::new(),
    };
    for host in hosts {
        evaluate_host(&mut f, host, t, now);
    }
    evaluate_gauges(&mut f, system, t);
    for agent in agents {
        evaluate_agent(&mut f, agent, t, now);
    }
    for (integration, latency_ms) in integrations {
        evaluate_integration(&mut f, integration, *latency_ms, t);
    }
    f.out
}

/// A host's CPU, memory and silence.
fn evaluate_host(f: &mut Findings<'_>, host: &HostRecord, t: &Thresholds, now: Millis) {
    let silent = now - host.last_seen > t.silent_after_ms;
    for (condition, value, what) in [
        (condition::CPU_HIGH, host.cpu_usage, "CPU"),
        (condition::MEMORY_HIGH, host.memory_usage, "memory"),
    ] {
        let key = AlertKey::new(SourceType::System, &host.host_id, condition);
        let cur = f.current(&key);
        // A silent host's last sample is stale: keep what it raised, raise nothing new.
        let severity = if silent {
            cur
        } else {
            above(
                value,
                cur,
                (USAGE_WARNING, USAGE_WARNING - USAGE_CLEAR_MARGIN),
                Some((USAGE_CRITICAL, USAGE_CRITICAL - USAGE_CLEAR_MARGIN)),
            )
        };
        f.check(key, severity, || {
            format!("High {what} usage: {}", percent(value))
        });
    }
    let key = AlertKey::new(SourceType::System, &host.host_id, condition::SILENT);
    let reported = host.reported_through(t.silent_after_ms);
    f.check_silence(key, silent, reported, || {
        silent_message(&format!("Host {}", host.host_id), host.last_seen, t)
    });
}

/// The message of a silent alert: written when raised and kept while held, so worded to
/// stay true after the source reports again.
fn silent_message(who: &str, last: Millis, t: &Thresholds) -> String {
    format!(
        "{who} went silent after {}: no report for over {} s",
        format_rfc3339(last),
        t.silent_after_ms / 1000
    )
}

/// The tenant's queue depth.
fn evaluate_gauges(f: &mut Findings<'_>, system: &SystemRecord, t: &Thresholds) {
    let Some(depth) = system.queue_depth else {
        return;
    };
    let key = AlertKey::new(SourceType::System, "system", condition::QUEUE_DEPTH_HIGH);
    let q = t.queue_depth;
    let levels = (
        (q, q * CLEAR_FRACTION),
        Some((2.0 * q, 2.0 * q * CLEAR_FRACTION)),
    );
    f.check_above(key, depth.value as f64, levels, || {
        format!("High queue depth: {}", depth.value)
    });
}

/// An agent's error rate, confidence, failures in the hour, and silence.
fn evaluate_agent(f: &mut Findings<'_>, agent: &AgentData, t: &Thresholds, now: Millis) {
    let a = &agent.record;
    let hour: AgentCounters = hour_window(&agent.minutes, now);
    let key = |condition| AlertKey::new(SourceType::Agent, &a.agent_id, condition);
    let name = &a.agent_name;

    let rate = hour.failed as f64 / hour.started.max(1) as f64;
    let levels = ((t.error_rate, t.error_rate * CLEAR_FRACTION), None);
    f.check_above(key(condition::ERROR_RATE_HIGH), rate, levels, || {
        format!("Agent {name} has high error rate: {:.1}%", rate * 100.0)
    });

    if let Some(confidence) = a.confidence {
        // "Below" is "above" on the negated value.
        let levels = ((-LOW_CONFIDENCE, -LOW_CONFIDENCE_CLEAR), None);
        f.check_above(key(condition::LOW_CONFIDENCE), -confidence, levels, || {
            format!("Agent {name} has low confidence: {confidence:.2}")
        });
    }

    let max = MAX_HOURLY_FAILURES as f64;
    let failed = hour.failed as f64;
    f.check_above(
        key(condition::REPEATED_FAILURES),
        failed,
        ((max, max - 1.0), None),
        || format!("Agent {name} failed {} times in the last hour", hour.failed),
    );

    if let Some(last) = a.last_active {
        let silent = now - last > t.silent_after_ms;
        // A paused agent is never silent: as if it had reported all along.
        let reported = a.paused || a.reported_through(t.silent_after_ms);
        f.check_silence(
            key(condition::SILENT),
            silent && !a.paused,
            reported,
            || silent_message(&format!("Agent {name}"), last, t),
        );
    }
}

/// An integration's mean latency and failures in a row.
fn evaluate_integration(
    f: &mut Findings<'_>,
    i: &IntegrationRecord,
    latency_ms: f64,
    t: &Thresholds,
) {
    let key = |condition| AlertKey::new(SourceType::Integration, &i.integration_id, condition);
    let name = &i.integration_name;
    let levels = ((t.latency_ms, t.latency_ms * CLEAR_FRACTION), None);
    f.check_above(key(condition::LATENCY_HIGH), latency_ms, levels, || {
        format!("Integration {name} is slow: {latency_ms} ms mean latency")
    });

    let failures = i.consecutive_failures;
    let severity = if failures >= crate::domain::records::FAILED_AFTER {
        Some(Severity::Critical)
    } else if failures >= CONSECUTIVE_FAILURES_WARNING {
        Some(Severity::Warning)
    } else {
        None
    };
    f.check(key(condition::CONSECUTIVE_FAILURES), severity, || {
        format!("Integration {name} failed {failures} times in a row")
    });
}

/// The active alerts of `stored`, by key, with their severity.
pub fn active_severities(stored: &[(AlertRecord, u64)]) -> HashMap<AlertKey, Severity> {
    stored
        .iter()
        .filter(|(a, _)| a.resolved_at.is_none())
        .filter_map(|(a, _)| Some((key_of(a)?, a.severity)))
        .collect()
}

/// The key of a stored alert; `None` for a condition this version does not know.
fn key_of(a: &AlertRecord) -> Option<AlertKey> {
    let condition = condition::ALL.into_iter().find(|c| *c == a.condition)?;
    Some(AlertKey::new(a.source_type, &a.source_id, condition))
}

/// One alert write.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// A new alert (must not exist yet).
    Raise(AlertRecord),
    /// A changed severity of an active alert stored at this version.
    Update(AlertRecord, u64),
    /// An active alert, stored at this version, whose condition cleared.
    Resolve(AlertRecord, u64),
}

impl Change {
    /// The alert to write and the version it must be stored at (`None`: it must be new).
    pub fn target(&self) -> (&AlertRecord, Option<u64>) {
        match self {
            Self::Raise(a) => (a, None),
            Self::Update(a, v) | Self::Resolve(a, v) => (a, Some(*v)),
        }
    }
}

/// The writes that make the stored alerts match the conditions that hold: raise what is
/// new, escalate (clearing the acknowledgement) or de-escalate (keeping it) what changed
/// severity, resolve what cleared. Nothing is written for alerts that stay as they are.
///
/// Ids are stable and deterministic: `alert_<hash of source and condition>_<n>`, where `n`
/// counts the occurrences of that condition on that source. Two collector runs that raise
/// the same alert compute the same id, and the conditional write lets only one succeed.
pub fn reconcile(stored: &[(AlertRecord, u64)], firing: &[Firing], now: Millis) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut active: HashMap<AlertKey, (&AlertRecord, u64)> = HashMap::new();
    let mut occurrences: HashMap<String, u64> = HashMap::new();
    for (a, version) in stored {
        if let Some((prefix, n)) = occurrence(&a.alert_id) {
            let max = occurrences.entry(prefix.to_owned()).or_insert(0);
            *max = (*max).max(n);
        }
        if a.resolved_at.is_none() {
            if let Some(key) = key_of(a) {
                active.insert(key, (a, *version));
            }
        }
    }
    for f in firing {
        match active.remove(&f.key) {
            None => {
                let prefix = f.key.id_prefix();
                let n = occurrences.get(&prefix).copied().unwrap_or(0) + 1;
                changes.push(Change::Raise(AlertRecord::open(
                    format!("{prefix}_{n}"),
                    f.severity,
                    f.message.clone(),
                    (f.key.source_type, &f.key.source_id),
                    f.key.condition,
                    now,
                )));
            }
            Some((a, version)) if a.severity != f.severity => {
                let mut updated = a.clone();
                updated.severity = f.severity;
                updated.message.clone_from(&f.message);
                // Severity orders most urgent first: smaller is an escalation.
                if f.severity < a.severity {
                    updated.raised_at = now;
                    updated.acknowledged_at = None;
                    updated.acknowledged_by = None;
                    updated.notes = None;
                }
                changes.push(Change::Update(updated, version));
            }
            Some(_) => {}
        }
    }
    let mut cleared: Vec<_> = active.into_values().collect();
    cleared.sort_by(|a, b| a.0.alert_id.cmp(&b.0.alert_id));
    for (a, version) in cleared {
        let mut resolved = a.clone();
        resolved.resolved_at = Some(now);
        changes.push(Change::Resolve(resolved, version));
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::{AgentRecord, GaugeReading};
    use crate::time::MINUTE_MS;

    const NOW: Millis = 1_800_000_000_000;

    fn thresholds() -> Thresholds {
        Thresholds::from(&Config::default())
    }

    fn host(id: &str, cpu: f64, memory: f64, last_seen: Millis) -> HostRecord {
        HostRecord {
            host_id: id.into(),
            cpu_usage: cpu,
            memory_usage: memory,
            disk_usage: None,
            load_average: None,
            uptime_seconds: None,
            last_seen,
            reporting_since: None,
        }
    }

    fn eval_hosts(hosts: &[HostRecord], active: &HashMap<AlertKey, Severity>) -> Vec<Firing> {
        evaluate(
            &[],
            &[],
            hosts,
            &SystemRecord::default(),
            active,
            &thresholds(),
            NOW,
        )
    }

    /// Runs reconcile and applies its changes to `stored`, like the collector does.
    fn apply(stored: &mut Vec<(AlertRecord, u64)>, firing: &[Firing], now: Millis) -> usize {
        let changes = reconcile(stored, firing, now);
        let n = changes.len();
        for c in changes {
            match c {
                Change::Raise(a) => stored.push((a, 1)),
                Change::Update(a, v) | Change::Resolve(a, v) => {
                    if let Some(slot) = stored.iter_mut().find(|(s, _)| s.alert_id == a.alert_id) {
                        *slot = (a, v + 1);
                    }
                }
            }
        }
        n
    }

    #[test]
    fn host_usage_raises_warning_then_critical_with_the_contracts_message() {
        let f = eval_hosts(&[host("web-1", 85.0, 50.0, NOW)], &HashMap::new());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(f[0].message, "High CPU usage: 85%");
        assert_eq!(f[0].key.source_id, "web-1");
        let f = eval_hosts(&[host("web-1", 50.0, 95.5, NOW)], &HashMap::new());
        assert_eq!(
            (f[0].severity, f[0].message.as_str()),
            (Severity::Critical, "High memory usage: 95.5%")
        );
    }

    #[test]
    fn a_value_hovering_around_80_percent_for_ten_minutes_makes_one_alert() {
        let mut stored = Vec::new();
        let mut writes = 0;
        for cycle in 0..20 {
            let cpu = if cycle % 2 == 0 { 81.0 } else { 79.0 };
            let now = NOW + cycle * 30_000;
            let active = active_severities(&stored);
            let mut firing = evaluate(
                &[],
                &[],
                &[host("web-1", cpu, 10.0, now)],
                &SystemRecord::default(),
                &active,
                &thresholds(),
                now,
            );
            firing.retain(|f| f.key.condition == condition::CPU_HIGH);
            writes += apply(&mut stored, &firing, now);
        }
        assert_eq!(stored.len(), 1);
        assert_eq!(writes, 1);
        // Back to 75 % clears it.
        let active = active_severities(&stored);
        let firing = eval_hosts(&[host("web-1", 75.0, 10.0, NOW)], &active);
        assert_eq!(apply(&mut stored, &firing, NOW + 600_000), 1);
        assert!(stored[0].0.resolved_at.is_some());
    }

    #[test]
    fn escalation_clears_acknowledgement_and_de_escalation_keeps_it() {
        let mut stored = Vec::new();
        let firing = eval_hosts(&[host("h", 85.0, 0.0, NOW)], &HashMap::new());
        apply(&mut stored, &firing, NOW);
        stored[0].0.acknowledged_at = Some(NOW + 1);
        stored[0].0.acknowledged_by = Some("ops".into());
        let id = stored[0].0.alert_id.clone();
        let firing = eval_hosts(&[host("h", 93.0, 0.0, NOW)], &active_severities(&stored));
        apply(&mut stored, &firing, NOW + 30_000);
        let a = &stored[0].0;
        assert_eq!(
            (a.alert_id.as_str(), a.severity),
            (id.as_str(), Severity::Critical)
        );
        assert_eq!((a.acknowledged_at, a.raised_at), (None, NOW + 30_000));
        // 87 % is within the critical band's hysteresis: still critical.
        let firing = eval_hosts(&[host("h", 87.0, 0.0, NOW)], &active_severities(&stored));
        assert_eq!(apply(&mut stored, &firing, NOW + 60_000), 0);
        stored[0].0.acknowledged_at = Some(NOW + 61_000);
        let firing = eval_hosts(&[host("h", 84.0, 0.0, NOW)], &active_severities(&stored));
        apply(&mut stored, &firing, NOW + 90_000);
        let a = &stored[0].0;
        assert_eq!(a.severity, Severity::Warning);
        assert_eq!(a.acknowledged_at, Some(NOW + 61_000));
    }

    #[test]
    fn a_condition_that_returns_after_resolving_is_a_new_alert_with_a_new_id() {
        let mut stored = Vec::new();
        let firing = eval_hosts(&[host("h", 85.0, 0.0, NOW)], &HashMap::new());
        apply(&mut stored, &firing, NOW);
        apply(&mut stored, &[], NOW + 1);
        apply(&mut stored, &firing, NOW + 2);
        assert_eq!(stored.len(), 2);
        assert_ne!(stored[0].0.alert_id, stored[1].0.alert_id);
        assert!(stored[1].0.alert_id.ends_with("_2"));
        // The same source and condition always start from the same prefix.
        assert_eq!(
            stored[0].0.alert_id.rsplit_once('_').map(|p| p.0),
            stored[1].0.alert_id.rsplit_once('_').map(|p| p.0)
        );
    }

    fn agent_with(failed: u64, started: u64, confidence: Option<f64>, last: Millis) -> AgentData {
        let mut record = AgentRecord::new("bot", 0);
        record.agent_name = "Sales Bot".into();
        record.confidence = confidence;
        record.last_active = Some(last);
        AgentData {
            record,
            minutes: vec![(
                crate::time::minute_of(NOW - 5 * MINUTE_MS),
                AgentCounters {
                    started,
                    completed: started - failed,
                    failed,
                    ..AgentCounters::default()
                },
            )],
            days: Vec::new(),
            latency: Vec::new(),
            hours_through: None,
        }
    }

    fn eval_agent(a: &AgentData) -> Vec<(&'static str, Severity, String)> {
        evaluate(
            std::slice::from_ref(a),
            &[],
            &[],
            &SystemRecord::default(),
            &HashMap::new(),
            &thresholds(),
            NOW,
        )
        .into_iter()
        .map(|f| (f.key.condition, f.severity, f.message))
        .collect()
    }

    #[test]
    fn agent_conditions_follow_the_table() {
        let f = eval_agent(&agent_with(13, 20, None, NOW));
        assert_eq!(
            f,
            [
                (
                    condition::ERROR_RATE_HIGH,
                    Severity::Warning,
                    "Agent Sales Bot has high error rate: 65.0%".to_owned()
                ),
                (
                    condition::REPEATED_FAILURES,
                    Severity::Warning,
                    "Agent Sales Bot failed 13 times in the last hour".to_owned()
                ),
            ]
        );
        // Three failures of many: neither condition.
        assert!(eval_agent(&agent_with(3, 100, Some(0.9), NOW)).is_empty());
        let f = eval_agent(&agent_with(0, 1, Some(0.25), NOW));
        assert_eq!(f[0].0, condition::LOW_CONFIDENCE);
        // Silent for more than 5 intervals of 30 s.
        let f = eval_agent(&agent_with(0, 1, None, NOW - 151_000));
        assert_eq!(f[0].0, condition::SILENT);
        assert!(eval_agent(&agent_with(0, 1, None, NOW - 149_000)).is_empty());
        let mut paused = agent_with(0, 1, None, NOW - 3_600_000);
        paused.record.paused = true;
        assert!(eval_agent(&paused).is_empty());
    }

    #[test]
    fn queue_depth_is_warning_above_the_threshold_and_critical_above_twice_it() {
        let eval = |value| {
            let system = SystemRecord {
                queue_depth: Some(GaugeReading { value, at: NOW }),
                ..SystemRecord::default()
            };
            evaluate(&[], &[], &[], &system, &HashMap::new(), &thresholds(), NOW)
                .into_iter()
                .map(|f| (f.severity, f.key.source_id, f.message))
                .collect::<Vec<_>>()
        };
        assert!(eval(100).is_empty());
        assert_eq!(
            eval(101),
            [(
                Severity::Warning,
                "system".into(),
                "High queue depth: 101".into()
            )]
        );
        assert_eq!(eval(201)[0].0, Severity::Critical);
    }

    /// Whether the agent, fed `reports` (times) in order, is silent at `now` given
    /// whether its silent alert is active.
    fn silent_after(reports: &[Millis], now: Millis, active: bool) -> bool {
        let mut a = agent_with(0, 1, None, 0);
        a.record.last_active = None;
        let t = thresholds();
        for at in reports {
            a.record.observe_run(*at, t.silent_after_ms);
        }
        let key = AlertKey::new(SourceType::Agent, "bot", condition::SILENT);
        let open: HashMap<AlertKey, Severity> = if active {
            HashMap::from([(key.clone(), Severity::Warning)])
        } else {
            HashMap::new()
        };
        evaluate(
            std::slice::from_ref(&a),
            &[],
            &[],
            &SystemRecord::default(),
            &open,
            &t,
            now,
        )
        .iter()
        .any(|f| f.key == key)
    }

    #[test]
    fn an_agent_reporting_less_often_than_the_silence_keeps_one_alert() {
        // An execution every 5 minutes (start and finish 1.2 s apart), against 150 s.
        let runs: Vec<Millis> = (0..4)
            .flat_map(|k| [NOW - k * 300_000, NOW - k * 300_000 + 1_200])
            .rev()
            .collect();
        // Silent before the latest execution: raised.
        assert!(silent_after(&runs[..6], NOW - 30_000, false));
        // Right after the execution: no new alert, but an open one holds.
        assert!(!silent_after(&runs, NOW + 30_000, false));
        assert!(silent_after(&runs, NOW + 30_000, true));
    }

    #[test]
    fn an_agent_that_reports_again_for_longer_than_the_silence_clears_it() {
        // Back after 10 minutes, then a report every 10 s.
        let back: Vec<Millis> = std::iter::once(NOW - 900_000)
            .chain((0..=16).map(|k| NOW - 300_000 + k * 10_000))
            .collect();
        // 120 s of reports: held; 160 s: cleared.
        assert!(silent_after(&back[..14], NOW - 300_000 + 130_000, true));
        assert!(!silent_after(&back, NOW - 300_000 + 170_000, true));
        // A report older than the newest starts no run.
        let mut late = back.clone();
        late.push(NOW - 800_000);
        assert!(!silent_after(&late, NOW - 300_000 + 170_000, true));
    }

    #[test]
    fn a_host_back_from_silence_holds_its_alert_until_it_has_sampled_for_the_threshold() {
        let t = thresholds();
        let key = AlertKey::new(SourceType::System, "h", condition::SILENT);
        let open = HashMap::from([(key.clone(), Severity::Warning)]);
        let mut live = crate::domain::live::Live::new(host("h", 10.0, 10.0, Millis::MIN));
        let mut silent_with = |samples: std::ops::Range<i64>| {
            for k in samples {
                let at = NOW - 300_000 + k * 30_000;
                live.record.observe_run(at, t.silent_after_ms);
                live.sample(host("h", 10.0, 10.0, at), at);
            }
            eval_hosts(std::slice::from_ref(&live.record), &open)
                .iter()
                .any(|f| f.key == key)
        };
        // Samples every 30 s after a silence: 150 s of them hold the alert, 180 s clear it.
        assert!(silent_with(0..6));
        assert!(!silent_with(6..7));
        // Silent again (a gap of 5 minutes), then one sample: held.
        assert!(silent_with(17..18));
        assert!(silent_with(18..23));
        assert!(!silent_with(23..24));
    }

    #[test]
    fn a_silent_host_keeps_its_usage_alert_but_raises_no_new_one() {
        let stale = NOW - 10 * 60_000;
        let f = eval_hosts(&[host("h", 99.0, 10.0, stale)], &HashMap::new());
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key.condition, condition::SILENT);
        assert_eq!(
            f[0].message,
            format!(
                "Host h went silent after {}: no report for over 150 s",
                format_rfc3339(stale)
            )
        );
    }
}
