//! Service level objectives over an agent's executions or an integration's calls: the
//! definition, its validation, and the figures a user judges it by (the objective's value
//! over its window, the error budget left, burn rates) with the multi-window burn-rate
//! alerts of the SRE workbook. Pure: the store hands in the hour summaries and the minutes.

use serde::{Deserialize, Serialize};

use crate::domain::latency::{Histogram, HourSummary};
use crate::domain::live::hour_of;
use crate::time::{Millis, DAY_MS, HOUR_MS, MINUTE_MS};

/// Longest window an SLO may have: the hour buckets it is computed from are kept 31 days.
pub const MAX_WINDOW_DAYS: u32 = 30;

/// Below this share of its budget left, an SLO is `at_risk`.
pub const AT_RISK_BUDGET: f64 = 0.25;

/// Burn rate that pages: the budget of 30 days gone in about 2 days (2 % of it in 1 h).
pub const FAST_BURN: f64 = 14.4;
/// Burn rate that opens a ticket: 5 % of the budget in 6 h.
pub const SLOW_BURN: f64 = 6.0;
/// Burn rate of a budget spent exactly by the window's end, held for 3 days.
pub const STEADY_BURN: f64 = 1.0;

/// What an SLO is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SloSource {
    /// An agent's finished executions.
    Agent,
    /// An integration's calls and probes.
    Integration,
}

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// Share of events that succeeded, at least `target`.
    Availability,
    /// Share of events at or under `threshold_ms`, at least `target`.
    Latency,
    /// Share of events that failed, at most `target`.
    ErrorRate,
}

/// A stored SLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SloRecord {
    /// Its id (the path's).
    pub slo_id: String,
    /// Kind of source.
    pub source_type: SloSource,
    /// The agent's or integration's id.
    pub source_id: String,
    /// What is measured.
    pub objective: Objective,
    /// The objective's bound (see [`Objective`]).
    pub target: f64,
    /// Rolling window, days.
    pub window_days: u32,
    /// Latency: the bound, ms.
    pub threshold_ms: Option<f64>,
    /// Latency: the percentile the bound is meant at (e.g. 99), informative; the target
    /// defaults to it.
    pub percentile: Option<f64>,
}

/// `PUT /api/health/slos/{slo_id}`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloBody {
    /// `agent` or `integration`.
    pub source_type: Option<serde_json::Value>,
    /// The source's id.
    pub source_id: Option<serde_json::Value>,
    /// `availability`, `latency` or `error_rate`.
    pub objective: Option<serde_json::Value>,
    /// See [`SloRecord::target`].
    pub target: Option<serde_json::Value>,
    /// 1 to 30, default 30.
    pub window_days: Option<serde_json::Value>,
    /// Latency only, required there.
    pub threshold_ms: Option<serde_json::Value>,
    /// Latency only, required there: above 0 and below 100.
    pub percentile: Option<serde_json::Value>,
}

pub use crate::domain::events::FieldError;

fn err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        index: None,
        field: field.to_owned(),
        message: message.into(),
    }
}

fn number(v: &Option<serde_json::Value>, field: &'static str) -> Result<Option<f64>, FieldError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| err(field, "must be a number")),
    }
}

impl SloBody {
    /// The SLO this body defines, or every field that is wrong.
    pub fn validate(&self, slo_id: &str) -> Result<SloRecord, Vec<FieldError>> {
        let mut errors = Vec::new();
        let e = &mut errors;
        let source_type = keep(e, slo_source(&self.source_type));
        let source_id = keep(e, source_id(&self.source_id));
        let objective = keep(e, objective(&self.objective));
        let latency = objective == Some(Objective::Latency);
        let threshold_ms = keep(
            e,
            latency_field(
                &self.threshold_ms,
                "threshold_ms",
                latency,
                |t| t > 0.0 && t <= 3_600_000.0,
                "from above 0 to 3600000",
            ),
        )
        .flatten();
        let percentile = keep(
            e,
            latency_field(
                &self.percentile,
                "percentile",
                latency,
                |p| p > 0.0 && p < 100.0,
                "above 0 and below 100 (e.g. 99)",
            ),
        )
        .flatten();
        let target = keep(e, target(&self.target, latency, percentile)).flatten();
        let window_days = keep(e, window_days(&self.window_days));
        match (source_type, source_id, objective, target, window_days) {
            (
                Some(source_type),
                Some(source_id),
                Some(objective),
                Some(target),
                Some(window_days),
            ) if errors.is_empty() => Ok(SloRecord {
                slo_id: slo_id.to_owned(),
                source_type,
                source_id,
                objective,
                target,
                window_days,
                threshold_ms,
                percentile,
            }),
            _ => Err(errors),
        }
    }
}

/// The value of a field that is right; an error joins `errors`.
fn keep<T>(errors: &mut Vec<FieldError>, field: Result<T, FieldError>) -> Option<T> {
    field.map_err(|e| errors.push(e)).ok()
}

fn slo_source(v: &Option<serde_json::Value>) -> Result<SloSource, FieldError> {
    match v.as_ref().and_then(|v| v.as_str()) {
        Some("agent") => Ok(SloSource::Agent),
        Some("integration") => Ok(SloSource::Integration),
        _ => Err(err("source_type", "must be \"agent\" or \"integration\"")),
    }
}

fn source_id(v: &Option<serde_json::Value>) -> Result<String, FieldError> {
    match v.as_ref().and_then(|v| v.as_str()) {
        Some(id) => match crate::domain::ids::check_id(id) {
            Ok(()) => Ok(id.to_owned()),
            Err(reason) => Err(err("source_id", reason)),
        },
        None => Err(err(
            "source_id",
            "is required: the agent's or integration's id",
        )),
    }
}

fn objective(v: &Option<serde_json::Value>) -> Result<Objective, FieldError> {
    match v.as_ref().and_then(|v| v.as_str()) {
        Some("availability") => Ok(Objective::Availability),
        Some("latency") => Ok(Objective::Latency),
        Some("error_rate") => Ok(Objective::ErrorRate),
        _ => Err(err(
            "objective",
            "must be \"availability\", \"latency\" or \"error_rate\"",
        )),
    }
}

/// A field that a latency SLO needs (`valid`, as `needs` says) and no other SLO has.
fn latency_field(
    value: &Option<serde_json::Value>,
    field: &'static str,
    latency: bool,
    valid: fn(f64) -> bool,
    needs: &str,
) -> Result<Option<f64>, FieldError> {
    match number(value, field)? {
        Some(v) if latency && valid(v) => Ok(Some(v)),
        None if !latency => Ok(None),
        _ if latency => Err(err(field, format!("a latency SLO needs {field}, {needs}"))),
        _ => Err(err(field, "is only for latency SLOs")),
    }
}

/// The target share; a latency SLO's defaults to its percentile.
fn target(
    value: &Option<serde_json::Value>,
    latency: bool,
    percentile: Option<f64>,
) -> Result<Option<f64>, FieldError> {
    match number(value, "target")? {
        Some(t) if t > 0.0 && t < 1.0 => Ok(Some(t)),
        None if latency => Ok(percentile.map(|p| p / 100.0)),
        None => Err(err("target", "is required: a number above 0 and below 1")),
        Some(_) => Err(err("target", "must be above 0 and below 1")),
    }
}

fn window_days(v: &Option<serde_json::Value>) -> Result<u32, FieldError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(MAX_WINDOW_DAYS),
        Some(v) => match v.as_u64() {
            Some(d) if (1..=u64::from(MAX_WINDOW_DAYS)).contains(&d) => Ok(d as u32),
            _ => Err(err("window_days", "must be a whole number from 1 to 30")),
        },
    }
}

/// Whether an SLO is met.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloState {
    /// Within budget, not burning fast.
    Ok,
    /// Under a quarter of the budget left, or burning fast enough to alert.
    AtRisk,
    /// The budget is spent: the objective is not met over the window.
    Breached,
}

/// An SLO as `GET /api/health/slos` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloStatus {
    /// The definition.
    #[serde(flatten)]
    pub slo: SloRecord,
    /// The objective's value over the window: the share of good events (availability,
    /// latency) or of failed ones (error rate), rounded as rates are (3 decimals, an
    /// integration's error rate 4); `null` without events.
    pub current: Option<f64>,
    /// Latency SLOs: the percentile's value over the window, ms, 1 decimal.
    pub current_latency_ms: Option<f64>,
    /// Events in the window.
    pub events: u64,
    /// Share of the error budget left (1 untouched, 0 spent, below 0 overspent), 4
    /// decimals.
    pub error_budget_remaining: f64,
    /// Bad share over the last hour divided by the budget's share, 2 decimals.
    pub burn_rate_1h: f64,
    /// The same over 6 hours.
    pub burn_rate_6h: f64,
    /// The same over 3 days.
    pub burn_rate_3d: f64,
    /// Whether it is met.
    pub status: SloState,
}

/// Events and bad events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Events.
    pub total: u64,
    /// Bad events: failed, or slower than the threshold.
    pub bad: u64,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, other: Tally) {
        self.total = self.total.saturating_add(other.total);
        self.bad = self.bad.saturating_add(other.bad);
    }

    /// Bad events' share of all; 0 without events.
    pub fn bad_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.bad as f64 / self.total as f64
        }
    }
}

impl SloRecord {
    /// The share of bad events the objective allows.
    pub fn budget(&self) -> f64 {
        match self.objective {
            Objective::ErrorRate => self.target,
            Objective::Availability | Objective::Latency => 1.0 - self.target,
        }
    }

    /// The events and bad events of one hour's summary.
    pub fn tally(&self, s: &HourSummary) -> Tally {
        match self.objective {
            Objective::Availability | Objective::ErrorRate => Tally {
                total: s.total,
                bad: s.failed.min(s.total),
            },
            Objective::Latency => {
                let total = s.latency.count();
                let good = s
                    .latency
                    .count_at_most(self.threshold_ms.unwrap_or(f64::INFINITY));
                Tally {
                    total,
                    bad: total - good.min(total),
                }
            }
        }
    }
}

/// What an SLO is computed from: summaries by hour (stored hour buckets and the hours the
/// live item still holds, each hour once) and by minute (the live item's hour window).
#[derive(Debug, Clone, Default)]
pub struct SloData {
    /// By hour, any order.
    pub hours: Vec<(i64, HourSummary)>,
    /// By minute, any order.
    pub minutes: Vec<(i64, HourSummary)>,
}

impl SloData {
    /// The tally of the last `span` before `now`: whole minutes for spans up to an hour,
    /// whole hours beyond (both rounded outwards, as the hour window is).
    pub fn tally(&self, slo: &SloRecord, span: Millis, now: Millis) -> Tally {
        let mut t = Tally::default();
        if span <= HOUR_MS {
            let first = crate::time::minute_of(now - span);
            for (_, s) in self.minutes.iter().filter(|(m, _)| *m >= first) {
                t.add(slo.tally(s));
            }
        } else {
            let first = hour_of(now - span);
            for (_, s) in self.hours.iter().filter(|(h, _)| *h >= first) {
                t.add(slo.tally(s));
            }
        }
        t
    }

    /// The latency distribution of the last `span`, by hour.
    fn latency(&self, span: Millis, now: Millis) -> Histogram {
        let first = hour_of(now - span);
        let mut h = Histogram::default();
        for (_, s) in self.hours.iter().filter(|(x, _)| *x >= first) {
            h.merge(&s.latency);
        }
        h
    }
}

/// The burn rate of a span: its bad share over the budget's share.
pub fn burn_rate(slo: &SloRecord, data: &SloData, span: Millis, now: Millis) -> f64 {
    let budget = slo.budget();
    if budget <= 0.0 {
        return 0.0;
    }
    data.tally(slo, span, now).bad_share() / budget
}

fn round(x: f64, decimals: i32) -> f64 {
    crate::domain::round::round_to(x, decimals)
}

/// Which burn alert holds, if any: fast (14.4× over 1 h and over 5 min) is critical; slow
/// (6× over 6 h and over 30 min, or 1× over 3 days and over 6 h) a warning. The short
/// window makes an alert end soon after the burning stops.
pub fn burn_alert(
    slo: &SloRecord,
    data: &SloData,
    now: Millis,
) -> Option<(crate::domain::alerts::Severity, f64)> {
    use crate::domain::alerts::Severity;
    let rate = |span| burn_rate(slo, data, span, now);
    let (h1, m5) = (rate(HOUR_MS), rate(5 * MINUTE_MS));
    if h1 >= FAST_BURN && m5 >= FAST_BURN {
        return Some((Severity::Critical, round(h1, 2)));
    }
    let (h6, m30) = (rate(6 * HOUR_MS), rate(30 * MINUTE_MS));
    if h6 >= SLOW_BURN && m30 >= SLOW_BURN {
        return Some((Severity::Warning, round(h6, 2)));
    }
    let d3 = rate(3 * DAY_MS);
    (d3 >= STEADY_BURN && h6 >= STEADY_BURN).then_some((Severity::Warning, round(d3, 2)))
}

/// The SLO's figures at `now`.
pub fn status(slo: &SloRecord, data: &SloData, now: Millis) -> SloStatus {
    let window = i64::from(slo.window_days) * DAY_MS;
    let tally = data.tally(slo, window, now);
    let bad_share = tally.bad_share();
    // Rates as the API rounds them everywhere: 3 decimals, an integration's error rate 4.
    let current = (tally.total > 0).then(|| match slo.objective {
        Objective::ErrorRate if slo.source_type == SloSource::Integration => round(bad_share, 4),
        Objective::ErrorRate => round(bad_share, 3),
        _ => round(1.0 - bad_share, 3),
    });
    let budget = slo.budget();
    let remaining = if budget > 0.0 {
        1.0 - bad_share / budget
    } else {
        1.0
    };
    let current_latency_ms = match (slo.objective, slo.percentile) {
        (Objective::Latency, Some(p)) => data
            .latency(window, now)
            .quantile(p / 100.0)
            .map(|v| round(v, 1)),
        _ => None,
    };
    let status = if remaining < 0.0 {
        SloState::Breached
    } else if remaining < AT_RISK_BUDGET || burn_alert(slo, data, now).is_some() {
        SloState::AtRisk
    } else {
        SloState::Ok
    };
    SloStatus {
        slo: slo.clone(),
        current,
        current_latency_ms,
        events: tally.total,
        error_budget_remaining: round(remaining, 4),
        burn_rate_1h: round(burn_rate(slo, data, HOUR_MS, now), 2),
        burn_rate_6h: round(burn_rate(slo, data, 6 * HOUR_MS, now), 2),
        burn_rate_3d: round(burn_rate(slo, data, 3 * DAY_MS, now), 2),
        status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::alerts::Severity;

    /// An hour exactly, so hour and minute windows line up.
    const NOW: Millis = 1_780_000_000_000 - 1_780_000_000_000 % HOUR_MS;

    fn availability(target: f64) -> SloRecord {
        SloRecord {
            slo_id: "stripe-availability".into(),
            source_type: SloSource::Integration,
            source_id: "stripe".into(),
            objective: Objective::Availability,
            target,
            window_days: 30,
            threshold_ms: None,
            percentile: None,
        }
    }

    fn hour(total: u64, failed: u64) -> HourSummary {
        HourSummary {
            total,
            failed,
            ..HourSummary::default()
        }
    }

    /// `per_hour` calls an hour for the 30 days before `NOW`, none failed, and
    /// `minutes` of the last hour spread evenly.
    fn steady(per_hour: u64) -> SloData {
        let last = hour_of(NOW) - 1;
        SloData {
            hours: (0..720).map(|k| (last - k, hour(per_hour, 0))).collect(),
            minutes: (1..=60)
                .map(|k| (crate::time::minute_of(NOW) - k, hour(per_hour / 60, 0)))
                .collect(),
        }
    }

    #[test]
    fn budget_and_burn_figures_match_the_hand_computed_ones() {
        // 99.9 % over 30 days of 600 calls an hour: 432,000 calls, a budget of 432 failures.
        let slo = availability(0.999);
        let mut data = steady(600);
        // 108 failures 2 days ago (a quarter of the budget), 60 in the last hour.
        let two_days_ago = hour_of(NOW) - 48;
        let last = hour_of(NOW) - 1;
        for (h, s) in data.hours.iter_mut() {
            if *h == two_days_ago {
                s.failed = 108;
            } else if *h == last {
                s.failed = 60;
            }
        }
        for (_, m) in data.minutes.iter_mut() {
            m.failed = 1;
        }
        let s = status(&slo, &data, NOW);
        assert_eq!(s.events, 432_000);
        // 168 bad of 432,000: availability 1 − 168/432000 = 0.999611, to 3 decimals 1.0
        // (the budget left tells the rest).
        assert_eq!(s.current, Some(1.0));
        // Budget 432, spent 168: 1 − 168/432 = 0.6111.
        assert_eq!(s.error_budget_remaining, 0.6111);
        // Last hour: 60/600 bad = 0.1, over a budget share of 0.001: 100×.
        assert_eq!(s.burn_rate_1h, 100.0);
        // 6 hours (hours from 6 back, the current one empty): 60 / 3600 / 0.001 = 16.67.
        assert_eq!(s.burn_rate_6h, 16.67);
        // 3 days, 72 hours of 600: (60 + 108) / 43200 / 0.001 = 3.89.
        assert_eq!(s.burn_rate_3d, 3.89);
        assert_eq!(s.status, SloState::AtRisk);
        assert_eq!(
            burn_alert(&slo, &data, NOW),
            Some((Severity::Critical, 100.0))
        );
    }

    #[test]
    fn a_spent_budget_is_breached_and_a_quiet_one_is_ok() {
        let slo = availability(0.999);
        let mut data = steady(600);
        let old = hour_of(NOW) - 200;
        for (h, s) in data.hours.iter_mut() {
            if *h == old {
                s.failed = 500;
            }
        }
        let s = status(&slo, &data, NOW);
        // 500 bad of a 432 budget: 1 − 500/432 = −0.1574.
        assert_eq!(s.error_budget_remaining, -0.1574);
        assert_eq!(s.status, SloState::Breached);
        // Old failures burn nothing now.
        assert_eq!(s.burn_rate_1h, 0.0);
        assert_eq!(burn_alert(&slo, &data, NOW), None);
        let quiet = status(&slo, &steady(600), NOW);
        assert_eq!(
            (quiet.status, quiet.error_budget_remaining),
            (SloState::Ok, 1.0)
        );
    }

    #[test]
    fn slow_burn_over_six_hours_and_thirty_minutes_warns() {
        let slo = availability(0.99);
        let mut data = steady(600);
        // 7 % failing for the last 6 hours: 7× a 1 % budget.
        for (h, s) in data.hours.iter_mut() {
            if *h >= hour_of(NOW) - 6 {
                s.failed = 42;
            }
        }
        for (_, m) in data.minutes.iter_mut() {
            m.total = 100;
            m.failed = 7;
        }
        let s = status(&slo, &data, NOW);
        assert_eq!(s.burn_rate_6h, 7.0);
        assert_eq!(burn_alert(&slo, &data, NOW), Some((Severity::Warning, 7.0)));
    }

    #[test]
    fn latency_slos_count_events_over_the_threshold() {
        let slo = SloRecord {
            objective: Objective::Latency,
            target: 0.99,
            threshold_ms: Some(200.0),
            percentile: Some(99.0),
            ..availability(0.99)
        };
        let mut h = HourSummary::default();
        for _ in 0..98 {
            h.latency.add(100.0);
        }
        h.latency.add(300.0);
        h.latency.add(400.0);
        let data = SloData {
            hours: vec![(hour_of(NOW) - 1, h.clone())],
            minutes: vec![(crate::time::minute_of(NOW) - 5, h)],
        };
        let s = status(&slo, &data, NOW);
        // 2 of 100 over 200 ms: 98 % under, budget 1 %, spent twice over.
        assert_eq!(s.current, Some(0.98));
        assert_eq!(s.error_budget_remaining, -1.0);
        assert_eq!(s.burn_rate_1h, 2.0);
        // p99 by nearest rank: the 99th of 100 is 300 ms (within 2 %).
        assert!(s
            .current_latency_ms
            .is_some_and(|v| (v - 300.0).abs() <= 6.0));
    }

    #[test]
    fn bodies_are_validated_field_by_field() {
        let body = |v: serde_json::Value| -> SloBody {
            serde_json::from_value(v).expect("parsing an SLO body")
        };
        let ok = body(
            serde_json::json!({"source_type": "integration", "source_id": "stripe",
            "objective": "availability", "target": 0.999, "window_days": 30}),
        )
        .validate("s1");
        assert_eq!(
            ok.map(|s| s.budget()).ok().map(|b| (b * 1e6).round()),
            Some(1_000.0)
        );
        let latency = body(serde_json::json!({"source_type": "agent", "source_id": "a",
            "objective": "latency", "threshold_ms": 200, "percentile": 99}))
        .validate("s2")
        .expect("validating the latency SLO");
        assert_eq!((latency.target, latency.window_days), (0.99, 30));
        let bad = body(
            serde_json::json!({"source_type": "host", "objective": "latency",
            "target": 1.5, "window_days": 90}),
        )
        .validate("s3")
        .err()
        .unwrap_or_default();
        let fields: Vec<_> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "source_type",
                "source_id",
                "threshold_ms",
                "percentile",
                "target",
                "window_days"
            ]
        );
    }
}
