//! `GET /api/health/history/{type}`: one point per UTC day with data, oldest first.

use serde::Serialize;

use crate::domain::health::{DayScore, DayStatus};
use crate::domain::records::{AgentCounters, HostCounters, IntegrationCounters};
use crate::domain::round::{round2, round3};
use crate::domain::system::round1;
use crate::time::{format_rfc3339, DAY_MS};

/// One day of history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Midnight UTC of the day.
    pub timestamp: String,
    /// 0..=1.
    pub health_score: f64,
    /// From the score: healthy at 0.8, degraded at 0.5, else error.
    pub status: DayStatus,
    /// The day's own figures, which depend on the type.
    pub metrics: serde_json::Value,
}

/// A scored day with its type's own figures.
fn scored_point(score: &DayScore, metrics: serde_json::Value) -> HistoryPoint {
    HistoryPoint {
        timestamp: score.timestamp(),
        health_score: score.score,
        status: score.status(),
        metrics,
    }
}

/// An agent's day: score completed / started.
pub fn agent_point(day: i64, c: &AgentCounters) -> Option<HistoryPoint> {
    let score = DayScore::of_agent(day, c)?;
    let metrics = serde_json::json!({
        "total_executions": c.started,
        "completed": c.completed,
        "failed": c.failed,
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
    });
    Some(scored_point(&score, metrics))
}

/// An integration's day: score successful / all calls.
pub fn integration_point(day: i64, c: &IntegrationCounters) -> Option<HistoryPoint> {
    let score = DayScore::of_integration(day, c)?;
    let metrics = serde_json::json!({
        "calls": c.calls,
        "failures": c.failures,
        "avg_latency_ms": round2(c.latency_sum_ms / c.calls.max(1) as f64),
    });
    Some(scored_point(&score, metrics))
}

/// A host's (or all hosts') day. The contract gives systems no score; here it is the
/// headroom left by the busier resource: `1 - max(mean CPU, mean memory) / 100`.
pub fn system_point(day: i64, c: &HostCounters) -> Option<HistoryPoint> {
    system_point_at(day * DAY_MS, c)
}

/// A host's (or all hosts') figures over the period starting at `start` (a day or an hour).
pub fn system_point_at(start: crate::time::Millis, c: &HostCounters) -> Option<HistoryPoint> {
    if c.samples == 0 {
        return None;
    }
    let n = c.samples as f64;
    let (cpu, mem) = (c.cpu_sum / n, c.memory_sum / n);
    let score = round3(1.0 - cpu.max(mem) / 100.0).clamp(0.0, 1.0);
    Some(HistoryPoint {
        timestamp: format_rfc3339(start),
        health_score: score,
        status: DayStatus::of(score),
        metrics: serde_json::json!({
            "samples": c.samples,
            "cpu_avg": round1(cpu),
            "cpu_max": round1(c.cpu_max),
            "memory_avg": round1(mem),
            "memory_max": round1(c.memory_max),
        }),
    })
}

/// Merges the day buckets of several hosts into one per day.
pub fn merge_hosts(
    days: impl IntoIterator<Item = (i64, HostCounters)>,
) -> Vec<(i64, HostCounters)> {
    let mut merged: std::collections::BTreeMap<i64, HostCounters> =
        std::collections::BTreeMap::new();
    for (day, c) in days {
        merged.entry(day).or_default().merge(&c);
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agent_day_reports_its_counts_and_score() {
        let c = AgentCounters {
            started: 20,
            completed: 18,
            failed: 2,
            input_tokens: 1500,
            output_tokens: 300,
            ..AgentCounters::default()
        };
        let p = agent_point(20_456, &c);
        assert_eq!(
            p.as_ref().map(|p| (p.health_score, p.status)),
            Some((0.9, DayStatus::Healthy))
        );
        assert_eq!(
            p.map(|p| p.metrics),
            Some(
                serde_json::json!({"total_executions": 20, "completed": 18, "failed": 2, "input_tokens": 1500, "output_tokens": 300})
            )
        );
        assert_eq!(agent_point(1, &AgentCounters::default()), None);
    }

    #[test]
    fn a_system_day_scores_the_headroom_of_the_busier_resource() {
        let mut c = HostCounters::default();
        c.add(70.0, 40.0);
        c.add(90.0, 50.0);
        let p = system_point(0, &c);
        assert_eq!(
            p.as_ref().map(|p| (p.health_score, p.status)),
            Some((0.2, DayStatus::Error))
        );
        assert_eq!(
            p.map(|p| p.metrics["cpu_max"].clone()),
            Some(serde_json::json!(90.0))
        );
    }
}
