//! The contract's metric definitions: what a client reads, computed from stored state.
//!
//! Inputs are the entity's record and its time buckets; nothing here does I/O, so every
//! rule of the API contract is checked by the unit tests at the bottom.

use serde::Serialize;

use crate::domain::events::Outcome;
use crate::domain::latency::{percentiles, Histogram, Percentiles};
use crate::domain::records::{
    AgentCounters, AgentRecord, ConnectionState, IntegrationCounters, IntegrationRecord,
};
use crate::time::{format_rfc3339, Millis, DAY_MS};

/// Confidence reported when an agent has never reported one.
pub const DEFAULT_CONFIDENCE: f64 = 0.5;
/// A trend must move more than this between its oldest and newest point.
pub const TREND_DELTA: f64 = 0.1;
/// Error rate at or above which an integration counts as failing sometimes.
pub const DEGRADED_ERROR_RATE: f64 = 0.05;

use super::live::{hour_window, window_start_minute};
use super::round::{ratio, round2, round3, round4};

/// The first day of the 7-day trend window ending on `now`'s day.
pub fn trend_start_day(now: Millis) -> i64 {
    crate::time::day_of(now) - 6
}

/// An agent's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// An execution is running.
    Active,
    /// Paused by an operator.
    Paused,
    /// The last finished execution failed.
    Error,
    /// None of the above.
    Idle,
}

/// Where health is heading over the last 7 days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    /// Newest day scores more than 0.1 above the oldest.
    Improving,
    /// Newest day scores more than 0.1 below the oldest.
    Declining,
    /// Neither, or fewer than 2 days of data.
    Stable,
}

/// The status of a daily history point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayStatus {
    /// Score 0.8 or more.
    Healthy,
    /// Score 0.5 or more.
    Degraded,
    /// Below 0.5.
    Error,
}

impl DayStatus {
    /// The status a daily score earns.
    pub fn of(score: f64) -> Self {
        if score >= 0.8 {
            Self::Healthy
        } else if score >= 0.5 {
            Self::Degraded
        } else {
            Self::Error
        }
    }
}

/// One day's score, the unit of history and trends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayScore {
    /// Days since the epoch.
    pub day: i64,
    /// The score, rounded to 3 decimals.
    pub score: f64,
}

impl DayScore {
    /// The day's score from agent counters: completed / started. `None` for a day without
    /// executions, which is not a data point.
    pub fn of_agent(day: i64, c: &AgentCounters) -> Option<Self> {
        (c.started > 0).then(|| Self {
            day,
            score: round3(ratio(c.completed, c.started)),
        })
    }

    /// The day's score from integration counters: successful / all calls.
    pub fn of_integration(day: i64, c: &IntegrationCounters) -> Option<Self> {
        (c.calls > 0).then(|| Self {
            day,
            score: round3(ratio(c.calls - c.failures, c.calls)),
        })
    }

    /// The point's status.
    pub fn status(&self) -> DayStatus {
        DayStatus::of(self.score)
    }

    /// Midnight UTC of the day, in RFC 3339.
    pub fn timestamp(&self) -> String {
        format_rfc3339(self.day * DAY_MS)
    }
}

/// Compares the newest and oldest points (any order in, sorted here).
pub fn trend(points: &[DayScore]) -> Trend {
    let oldest = points.iter().min_by_key(|p| p.day);
    let newest = points.iter().max_by_key(|p| p.day);
    match (oldest, newest) {
        (Some(o), Some(n)) if o.day != n.day => {
            // Rounded so that 0.8 - 0.7 is 0.1, not 0.10000000000000009.
            let delta = round3(n.score - o.score);
            if delta > TREND_DELTA {
                Trend::Improving
            } else if delta < -TREND_DELTA {
                Trend::Declining
            } else {
                Trend::Stable
            }
        }
        _ => Trend::Stable,
    }
}

/// The metrics block of an agent's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentMetrics {
    /// Mean duration of the hour's finished executions; `None` if none finished.
    pub avg_execution_time: Option<f64>,
    /// Failed / all of the hour's executions.
    pub error_rate: f64,
    /// All executions started in the hour, running ones included.
    pub recent_executions: u64,
    /// Model input tokens of the hour's finished executions.
    pub input_tokens: u64,
    /// Model output tokens of the hour's finished executions.
    pub output_tokens: u64,
}

/// `GET /api/health/agent/{agent_id}`, exactly as the contract shapes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentHealth {
    /// The agent's id.
    pub agent_id: String,
    /// Its display name.
    pub agent_name: String,
    /// Its status.
    pub status: AgentStatus,
    /// The running execution's operation, `None` when none runs.
    pub current_operation: Option<String>,
    /// Completed executions started in the hour.
    pub operations_completed: u64,
    /// Completed / all of the hour's executions.
    pub success_rate: f64,
    /// Latest confidence, 0.5 if none was ever reported.
    pub confidence_score: f64,
    /// Newest event from the agent.
    pub last_active: Option<String>,
    /// 7-day trend.
    pub health_trend: Trend,
    /// Hourly metrics.
    pub metrics: AgentMetrics,
    /// Percentiles of the durations of the executions started in the hour.
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// An agent's status: `active` if an execution is running, else `paused` if paused, else
/// `error` if the last finished execution failed, else `idle`.
pub fn agent_status(agent: &AgentRecord) -> AgentStatus {
    if !agent.running.is_empty() {
        AgentStatus::Active
    } else if agent.paused {
        AgentStatus::Paused
    } else if agent.last_outcome == Some(Outcome::Failed) {
        AgentStatus::Error
    } else {
        AgentStatus::Idle
    }
}

/// The scored days of `days` within the trend window at `now`, by `score`.
fn trend_points<C>(
    days: &[(i64, C)],
    now: Millis,
    score: impl Fn(i64, &C) -> Option<DayScore>,
) -> Vec<DayScore> {
    let first_day = trend_start_day(now);
    days.iter()
        .filter(|(d, _)| *d >= first_day)
        .filter_map(|(d, c)| score(*d, c))
        .collect()
}

/// Computes an agent's health at `now` from its record, the counters of the minute buckets
/// in the hour window, the counters of the days in the trend window, and the durations by
/// minute. Buckets outside the windows are ignored, so callers may pass a superset.
pub fn agent_health(
    agent: &AgentRecord,
    minutes: &[(i64, AgentCounters)],
    days: &[(i64, AgentCounters)],
    latency: &[(i64, Histogram)],
    now: Millis,
) -> AgentHealth {
    let hour = hour_window(minutes, now);
    let percentiles = hour_percentiles(latency, now);
    let points = trend_points(days, now, DayScore::of_agent);
    let current_operation = agent.current_operation().map(str::to_owned);
    let status = agent_status(agent);
    AgentHealth {
        agent_id: agent.agent_id.clone(),
        agent_name: agent.agent_name.clone(),
        status,
        current_operation,
        operations_completed: hour.completed,
        success_rate: round3(ratio(hour.completed, hour.started)),
        confidence_score: round3(agent.confidence.unwrap_or(DEFAULT_CONFIDENCE)),
        last_active: agent.last_active.map(format_rfc3339),
        health_trend: trend(&points),
        metrics: AgentMetrics {
            avg_execution_time: (hour.timed > 0)
                .then(|| round2(hour.duration_sum_ms / hour.timed as f64)),
            error_rate: round3(ratio(hour.failed, hour.started)),
            recent_executions: hour.started,
            input_tokens: hour.input_tokens,
            output_tokens: hour.output_tokens,
        },
        latency: percentiles,
    }
}

/// p50, p95 and p99 of the latencies in the hour window at `now`.
pub fn hour_percentiles(latency: &[(i64, Histogram)], now: Millis) -> Percentiles {
    let first = window_start_minute(now);
    let mut h = Histogram::default();
    for (_, m) in latency.iter().filter(|(m, _)| *m >= first) {
        h.merge(m);
    }
    percentiles(&h)
}

/// An integration's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationStatus {
    /// Working normally.
    Healthy,
    /// Slow, failing sometimes, or recovering.
    Degraded,
    /// Failed or disconnected.
    Error,
}

/// Whether the integration can be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    /// The latest calls or probes get through.
    Connected,
    /// Failed.
    Disconnected,
    /// Never used.
    Unknown,
}

/// One item of `GET /api/health/integrations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrationHealth {
    /// The integration's id.
    pub integration_id: String,
    /// Its display name.
    pub integration_name: String,
    /// Its status.
    pub status: IntegrationStatus,
    /// Newest call or probe.
    pub last_used: Option<String>,
    /// Mean latency of the hour's calls and probes (0 when there were none).
    pub latency_ms: f64,
    /// Failed / all of the hour's calls and probes, to 4 decimals.
    pub error_rate: f64,
    /// 7-day trend.
    pub health_trend: Trend,
    /// Reachability.
    pub connection_status: ConnectionStatus,
    /// Connection state machine.
    pub state: ConnectionState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Probes performed.
    pub health_checks_performed: u64,
    /// Recovery attempts made while failed.
    pub recovery_attempts: u64,
    /// Recoveries that succeeded.
    pub successful_recoveries: u64,
    /// Seconds up since it last became active.
    pub uptime_seconds: u64,
    /// Percentiles of the latencies of the hour's calls and probes.
    #[serde(flatten)]
    pub latency: Percentiles,
}

/// Computes an integration's health at `now`; `latency_threshold_ms` is the contract's
/// `ALERT_LATENCY_THRESHOLD`, above which it counts as slow.
pub fn integration_health(
    integration: &IntegrationRecord,
    minutes: &[(i64, IntegrationCounters)],
    days: &[(i64, IntegrationCounters)],
    latency: &[(i64, Histogram)],
    now: Millis,
    latency_threshold_ms: f64,
) -> IntegrationHealth {
    let hour: IntegrationCounters = hour_window(minutes, now);
    let percentiles = hour_percentiles(latency, now);
    let points = trend_points(days, now, DayScore::of_integration);
    let latency_ms = if hour.calls > 0 {
        round2(hour.latency_sum_ms / hour.calls as f64)
    } else {
        0.0
    };
    let error_rate = round4(ratio(hour.failures, hour.calls));
    let status = match integration.state {
        ConnectionState::Failed => IntegrationStatus::Error,
        ConnectionState::Degraded => IntegrationStatus::Degraded,
        _ if latency_ms > latency_threshold_ms || error_rate >= DEGRADED_ERROR_RATE => {
            IntegrationStatus::Degraded
        }
        _ => IntegrationStatus::Healthy,
    };
    let connection_status = match integration.state {
        ConnectionState::Uninitialized => ConnectionStatus::Unknown,
        ConnectionState::Initializing if integration.last_used.is_none() => {
            ConnectionStatus::Unknown
        }
        ConnectionState::Failed => ConnectionStatus::Disconnected,
        _ => ConnectionStatus::Connected,
    };
    IntegrationHealth {
        integration_id: integration.integration_id.clone(),
        integration_name: integration.integration_name.clone(),
        status,
        last_used: integration.last_used.map(format_rfc3339),
        latency_ms,
        error_rate,
        health_trend: trend(&points),
        connection_status,
        state: integration.state,
        consecutive_failures: integration.consecutive_failures,
        health_checks_performed: integration.health_checks_performed,
        recovery_attempts: integration.recovery_attempts,
        successful_recoveries: integration.successful_recoveries,
        uptime_seconds: integration.uptime_seconds(now),
        latency: percentiles,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{day_of, minute_of, HOUR_MS, MINUTE_MS};

    const NOW: Millis = 1_770_000_000_000;

    fn finished(outcome: Outcome, duration_ms: f64) -> AgentCounters {
        let mut c = AgentCounters {
            started: 1,
            ..AgentCounters::default()
        };
        c.add_finish(outcome, Some(duration_ms));
        c
    }

    fn day(score_completed: u64, total: u64) -> AgentCounters {
        AgentCounters {
            started: total,
            completed: score_completed,
            failed: total - score_completed,
            ..AgentCounters::default()
        }
    }

    #[test]
    fn an_idle_agent_with_confidence_085_reports_idle_and_085() {
        let mut agent = AgentRecord::new("agent_1", NOW - HOUR_MS);
        agent.report_confidence(0.85, NOW - MINUTE_MS);
        let h = agent_health(&agent, &[], &[], &[], NOW);
        assert_eq!(h.status, AgentStatus::Idle);
        assert_eq!(h.confidence_score, 0.85);
        assert_eq!(h.current_operation, None);
        assert_eq!(h.metrics.avg_execution_time, None);
        assert_eq!(h.health_trend, Trend::Stable);
    }

    #[test]
    fn an_agent_without_reported_confidence_scores_half() {
        let h = agent_health(&AgentRecord::new("a", NOW), &[], &[], &[], NOW);
        assert_eq!(h.confidence_score, 0.5);
    }

    #[test]
    fn one_completed_and_one_failed_execution_give_half_error_rate() {
        let agent = AgentRecord::new("a", NOW);
        let m = minute_of(NOW - 10 * MINUTE_MS);
        let minutes = [
            (m, finished(Outcome::Completed, 60_000.0)),
            (m + 1, finished(Outcome::Failed, 60_000.0)),
        ];
        let h = agent_health(&agent, &minutes, &[], &[], NOW);
        assert_eq!(h.operations_completed, 1);
        assert_eq!(h.metrics.recent_executions, 2);
        assert_eq!(h.metrics.error_rate, 0.5);
        assert_eq!(h.success_rate, 0.5);
        assert_eq!(h.metrics.avg_execution_time, Some(60_000.0));
    }

    #[test]
    fn three_completed_and_one_failed_give_075_and_025() {
        let agent = AgentRecord::new("a", NOW);
        let m = minute_of(NOW);
        let mut c = AgentCounters::default();
        for outcome in [
            Outcome::Completed,
            Outcome::Completed,
            Outcome::Completed,
            Outcome::Failed,
        ] {
            c.started += 1;
            c.add_finish(outcome, Some(1_000.0));
        }
        let h = agent_health(&agent, &[(m, c)], &[], &[], NOW);
        assert_eq!((h.success_rate, h.metrics.error_rate), (0.75, 0.25));
    }

    #[test]
    fn executions_started_over_an_hour_ago_are_outside_the_window() {
        let agent = AgentRecord::new("a", NOW);
        let old = minute_of(NOW - HOUR_MS - 2 * MINUTE_MS);
        let h = agent_health(
            &agent,
            &[(old, finished(Outcome::Failed, 5.0))],
            &[],
            &[],
            NOW,
        );
        assert_eq!(h.metrics.recent_executions, 0);
        assert_eq!(h.metrics.error_rate, 0.0);
    }

    #[test]
    fn a_running_execution_makes_the_agent_active_and_counts_as_recent() {
        let mut agent = AgentRecord::new("a", NOW);
        agent.start("x1", "Processing leads", NOW - MINUTE_MS);
        agent.paused = true;
        let c = AgentCounters {
            started: 1,
            ..AgentCounters::default()
        };
        let h = agent_health(&agent, &[(minute_of(NOW - MINUTE_MS), c)], &[], &[], NOW);
        assert_eq!(h.status, AgentStatus::Active);
        assert_eq!(h.current_operation.as_deref(), Some("Processing leads"));
        assert_eq!((h.metrics.recent_executions, h.success_rate), (1, 0.0));
    }

    #[test]
    fn status_is_paused_then_error_then_idle_in_that_order() {
        let mut agent = AgentRecord::new("a", NOW);
        agent.finish("x", Outcome::Failed, NOW);
        assert_eq!(
            agent_health(&agent, &[], &[], &[], NOW).status,
            AgentStatus::Error
        );
        agent.paused = true;
        assert_eq!(
            agent_health(&agent, &[], &[], &[], NOW).status,
            AgentStatus::Paused
        );
    }

    #[test]
    fn a_day_with_one_completed_and_one_failed_scores_half_degraded() {
        let p = DayScore::of_agent(20_000, &day(1, 2));
        assert_eq!(
            p.map(|p| (p.score, p.status())),
            Some((0.5, DayStatus::Degraded))
        );
        assert_eq!(DayScore::of_agent(20_000, &day(0, 0)), None);
        assert_eq!(DayStatus::of(0.8), DayStatus::Healthy);
        assert_eq!(DayStatus::of(0.499), DayStatus::Error);
    }

    #[test]
    fn trends_compare_the_newest_and_oldest_day() {
        let pts = |a: f64, b: f64| [DayScore { day: 1, score: a }, DayScore { day: 5, score: b }];
        assert_eq!(trend(&pts(0.3, 0.9)), Trend::Improving);
        assert_eq!(trend(&pts(0.9, 0.2)), Trend::Declining);
        assert_eq!(trend(&pts(0.7, 0.75)), Trend::Stable);
        assert_eq!(trend(&pts(0.7, 0.8)), Trend::Stable);
        assert_eq!(trend(&[DayScore { day: 1, score: 0.1 }]), Trend::Stable);
    }

    #[test]
    fn the_agent_trend_uses_only_the_last_seven_days() {
        let agent = AgentRecord::new("a", NOW);
        let today = day_of(NOW);
        let days = [
            (today - 7, day(0, 10)),
            (today - 6, day(3, 10)),
            (today, day(9, 10)),
        ];
        assert_eq!(
            agent_health(&agent, &[], &days, &[], NOW).health_trend,
            Trend::Improving
        );
        let days = [(today - 7, day(0, 10)), (today, day(9, 10))];
        assert_eq!(
            agent_health(&agent, &[], &days, &[], NOW).health_trend,
            Trend::Stable
        );
    }

    #[test]
    fn integration_error_rate_has_four_decimals_and_failures_set_the_status() {
        let mut i = IntegrationRecord::new("slack", NOW);
        let mut c = IntegrationCounters::default();
        for n in 0..3 {
            c.add(n != 0, 100.0 + f64::from(n));
        }
        for _ in 0..3 {
            i.record_result(false, NOW);
        }
        let h = integration_health(&i, &[(minute_of(NOW), c)], &[], &[], NOW, 5_000.0);
        assert_eq!(h.error_rate, 0.3333);
        assert_eq!(h.latency_ms, 101.0);
        assert_eq!(h.status, IntegrationStatus::Error);
        assert_eq!(h.connection_status, ConnectionStatus::Disconnected);
        assert_eq!(h.state, ConnectionState::Failed);
    }

    #[test]
    fn a_slow_integration_is_degraded_and_a_new_one_is_unknown() {
        let mut i = IntegrationRecord::new("gmail", NOW);
        let fresh = integration_health(&i, &[], &[], &[], NOW, 5_000.0);
        assert_eq!(fresh.connection_status, ConnectionStatus::Unknown);
        assert_eq!(fresh.status, IntegrationStatus::Healthy);
        i.record_result(true, NOW);
        let mut c = IntegrationCounters::default();
        c.add(true, 6_000.0);
        let h = integration_health(&i, &[(minute_of(NOW), c)], &[], &[], NOW, 5_000.0);
        assert_eq!(
            (h.status, h.connection_status),
            (IntegrationStatus::Degraded, ConnectionStatus::Connected)
        );
    }
}
