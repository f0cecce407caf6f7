//! `GET /api/health/hourly`: the last hours of one source, or of every source of a type,
//! hour by hour (a drill-down's 24-hour charts, the overview's uptime bars).

use super::Reply;
use http::StatusCode;
use serde::Serialize;

use super::{agent_or_integration, bounded_param, json_response, source_id_param, ApiError};
use crate::domain::latency::{percentiles, HourSummary, Percentiles};
use crate::domain::live::hour_of;
use crate::time::{format_rfc3339, HOUR_MS};
use crate::AppState;

/// Hours shown when the request gives none.
pub const DEFAULT_HOURS: i64 = 24;
/// Most hours one request shows (hour buckets are kept 31 days).
pub const MAX_HOURS: i64 = 168;

/// One hour of one source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slot {
    /// The hour's start (RFC 3339).
    pub start: String,
    /// Executions finished (agents) or calls and probes (integrations).
    pub total: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Successful share, 4 decimals; null in an hour without any.
    pub availability: Option<f64>,
    /// Percentiles of the hour's durations or latencies.
    #[serde(flatten)]
    pub latency: Percentiles,
    /// Model input tokens (agents; 0 for integrations).
    pub input_tokens: u64,
    /// Model output tokens (agents; 0 for integrations).
    pub output_tokens: u64,
}

/// One source's hours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hourly {
    /// `agent` or `integration`.
    pub source_type: &'static str,
    /// Its id.
    pub source_id: String,
    /// Every hour of the range, oldest first (the last one is the current hour, so far).
    pub slots: Vec<Slot>,
}

/// Slots for the `hours` hours up to the one holding `now`, from an entity's summaries.
pub fn slots(summaries: &[(i64, HourSummary)], hours: i64, now: crate::time::Millis) -> Vec<Slot> {
    let last = hour_of(now);
    let mut by_hour: std::collections::BTreeMap<i64, HourSummary> = Default::default();
    for (h, s) in summaries {
        by_hour.entry(*h).or_default().merge(s);
    }
    (last - hours + 1..=last)
        .map(|h| {
            let s = by_hour.remove(&h).unwrap_or_default();
            Slot {
                start: format_rfc3339(h * HOUR_MS),
                total: s.total,
                failed: s.failed.min(s.total),
                availability: (s.total > 0).then(|| {
                    crate::domain::round::round4(
                        1.0 - s.failed.min(s.total) as f64 / s.total as f64,
                    )
                }),
                latency: percentiles(&s.latency),
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
            }
        })
        .collect()
}

/// `GET /api/health/hourly?source_type=agent|integration[&source_id=][&hours=24]`.
pub async fn get(state: &AppState, tenant: &str, query: Option<&str>) -> Reply {
    let (entity, source_type) = agent_or_integration(query)?;
    let source_id = source_id_param(query)?;
    let hours = bounded_param(query, "hours", MAX_HOURS)?.unwrap_or(DEFAULT_HOURS);
    let now = state.clock.now_ms();
    let from = (hour_of(now) - hours + 1) * HOUR_MS;
    let found = state
        .store
        .hourly(tenant, entity, source_id.as_deref(), from, now)
        .await?;
    if let (Some(id), true) = (&source_id, found.is_empty()) {
        return Err(ApiError::NotFound(format!("no {source_type} with id {id}")));
    }
    let list: Vec<Hourly> = found
        .into_iter()
        .map(|(source_id, summaries)| Hourly {
            source_type,
            slots: slots(&summaries, hours, now),
            source_id,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &list))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hour_has_a_slot_and_empty_hours_have_no_rates() {
        let now = 100 * HOUR_MS + 5;
        let mut s = HourSummary {
            total: 4,
            failed: 1,
            ..HourSummary::default()
        };
        s.latency.add(100.0);
        let slots = slots(
            &[(99, s.clone()), (99, s), (50, HourSummary::default())],
            3,
            now,
        );
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0].start, format_rfc3339(98 * HOUR_MS));
        assert_eq!((slots[0].total, slots[0].availability), (0, None));
        assert_eq!(
            (slots[1].total, slots[1].failed, slots[1].availability),
            (8, 2, Some(0.75))
        );
        assert!(slots[1]
            .latency
            .p95
            .is_some_and(|p| (p - 100.0).abs() <= 2.0));
        assert_eq!(
            slots[2].start,
            format_rfc3339(100 * HOUR_MS),
            "the current hour last"
        );
    }
}
