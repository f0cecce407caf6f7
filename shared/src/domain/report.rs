//! Weekly and monthly reports: how a tenant's agents and integrations did over a period,
//! against the period before it, with the findings an operator would write in a status
//! report. Built from stored counters and alerts; served as JSON, and rendered as Markdown or
//! HTML by `render::report`.
//!
//! Periods are whole UTC days ending today (today included, so far): a week is today and
//! the 6 days before, a month today and the 29 before; the previous period is as many days
//! just before. Day counters give volumes and rates; latency percentiles come from hour
//! buckets, which are kept 31 days, so a month report's previous p95 covers only the hours
//! still kept.

use serde::Serialize;

use crate::domain::alerts::{AlertRecord, Severity};
use crate::domain::latency::{Histogram, HourSummary};
use crate::domain::records::{AgentCounters, IntegrationCounters, IntegrationRecord};
use crate::domain::round::{round1, round2, round3, round4};
use crate::domain::slo::{Objective, SloData, SloState, SloStatus, Tally};
use crate::domain::wire_name as name;
use crate::time::{day_of, format_rfc3339, Millis, DAY_MS, HOUR_MS};

/// Incidents listed one by one; the counts and means cover all of them.
pub const MAX_LISTED_INCIDENTS: usize = 100;
/// Agents and integrations named as top failing.
pub const TOP_FAILING: usize = 5;

/// Which period a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    /// 7 days.
    Week,
    /// 30 days.
    Month,
}

impl PeriodKind {
    /// From the query parameter's text.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }

    /// Its length in days.
    pub fn days(self) -> i64 {
        match self {
            Self::Week => 7,
            Self::Month => 30,
        }
    }

    /// The period's word in sentences (`week`, `month`).
    pub fn word(self) -> &'static str {
        match self {
            Self::Week => "week",
            Self::Month => "month",
        }
    }
}

/// A report's period and the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Week or month.
    pub kind: PeriodKind,
    /// The first day of the previous period (UTC day number).
    pub previous_first_day: i64,
    /// The first day of the period.
    pub first_day: i64,
    /// Its end: the report's time.
    pub to: Millis,
}

/// Which of the two periods a day or hour falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Current,
    Previous,
}

impl Period {
    /// The period of `kind` ending at `now`.
    pub fn ending(kind: PeriodKind, now: Millis) -> Self {
        let first_day = day_of(now) - kind.days() + 1;
        Self {
            kind,
            previous_first_day: first_day - kind.days(),
            first_day,
            to: now,
        }
    }

    /// When the period starts.
    pub fn from(&self) -> Millis {
        self.first_day * DAY_MS
    }

    /// When the previous period starts.
    pub fn previous_from(&self) -> Millis {
        self.previous_first_day * DAY_MS
    }

    fn side_of_day(&self, day: i64) -> Option<Side> {
        if day >= self.first_day && day <= day_of(self.to) {
            Some(Side::Current)
        } else if day >= self.previous_first_day && day < self.first_day {
            Some(Side::Previous)
        } else {
            None
        }
    }

    fn side_of_time(&self, at: Millis) -> Option<Side> {
        if at > self.to {
            None
        } else {
            self.side_of_day(day_of(at))
        }
    }
}

/// One agent's day counters over both periods.
#[derive(Debug, Clone)]
pub struct AgentInput {
    /// Its id.
    pub agent_id: String,
    /// Its display name.
    pub agent_name: String,
    /// Day counters, any order; days outside both periods are ignored.
    pub days: Vec<(i64, AgentCounters)>,
}

/// One integration's state, day counters and hour summaries over both periods.
#[derive(Debug, Clone)]
pub struct IntegrationInput {
    /// Its record now (state and lifetime state-machine counters).
    pub record: IntegrationRecord,
    /// Day counters, any order.
    pub days: Vec<(i64, IntegrationCounters)>,
    /// Hour summaries, any order (for latency percentiles).
    pub hours: Vec<(i64, HourSummary)>,
}

/// One SLO: its status now, and its hours over both periods.
#[derive(Debug, Clone)]
pub struct SloInput {
    /// As `GET /api/health/slos` shows it now.
    pub status: SloStatus,
    /// Its source's hour summaries over both periods.
    pub data: SloData,
}

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInputs {
    /// The tenant.
    pub tenant: String,
    /// The period.
    pub period: Period,
    /// Every agent.
    pub agents: Vec<AgentInput>,
    /// Every integration.
    pub integrations: Vec<IntegrationInput>,
    /// Every SLO.
    pub slos: Vec<SloInput>,
    /// Every stored alert (active, and resolved ones still kept).
    pub alerts: Vec<AlertRecord>,
}

/// Totals of one period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Agents that finished at least one execution.
    pub active_agents: u64,
    /// Executions finished.
    pub executions: u64,
    /// Of those, failed.
    pub failed_executions: u64,
    /// Completed share of finished executions, 3 decimals; null without executions.
    pub success_rate: Option<f64>,
    /// Integration calls and probes.
    pub calls: u64,
    /// Of those, failed.
    pub failed_calls: u64,
    /// Successful share of calls, 4 decimals; null without calls.
    pub availability: Option<f64>,
    /// Alerts raised.
    pub alerts: u64,
    /// How fast they were acknowledged and resolved.
    #[serde(flatten)]
    pub times: ResponseTimes,
}

/// How fast alerts were answered: mean seconds from raising to acknowledging (over the
/// acknowledged ones) and to resolving (over the resolved ones); null without any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ResponseTimes {
    /// Mean time to acknowledge, seconds.
    pub mtta_seconds: Option<f64>,
    /// Mean time to resolve, seconds.
    pub mttr_seconds: Option<f64>,
}

/// An integration's figures over one period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeriodFigures {
    /// Calls and probes.
    pub calls: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Successful share, 4 decimals; null without calls.
    pub availability: Option<f64>,
    /// p95 latency, ms, 1 decimal; null without kept hours.
    pub latency_p95_ms: Option<f64>,
}

/// One integration in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntegrationLine {
    /// Its id.
    pub integration_id: String,
    /// Its name.
    pub integration_name: String,
    /// Its connection state now.
    pub state: String,
    /// This period.
    pub current: PeriodFigures,
    /// The period before.
    pub previous: PeriodFigures,
    /// Health checks (probes) since it was registered.
    pub health_checks_performed: u64,
    /// Recovery attempts since it was registered.
    pub recovery_attempts: u64,
    /// Successful recoveries since it was registered.
    pub successful_recoveries: u64,
}

/// An agent among the top failing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentLine {
    /// Its id.
    pub agent_id: String,
    /// Its name.
    pub agent_name: String,
    /// Executions finished this period.
    pub executions: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Completed share, 3 decimals.
    pub success_rate: Option<f64>,
    /// The same over the previous period.
    pub previous_success_rate: Option<f64>,
}

/// An SLO in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloLine {
    /// Its id.
    pub slo_id: String,
    /// `agent` or `integration`.
    pub source_type: String,
    /// Its source.
    pub source_id: String,
    /// `availability`, `latency` or `error_rate`.
    pub objective: Objective,
    /// Its target.
    pub target: f64,
    /// Its value over its window now.
    pub current: Option<f64>,
    /// How far the value is on the good side of the target (negative: missed), as
    /// `current - target` (for an error rate `target - current`), 4 decimals.
    pub buffer: Option<f64>,
    /// Share of its budget left now.
    pub error_budget_remaining: f64,
    /// `ok`, `at_risk` or `breached`.
    pub status: SloState,
    /// Bad share over this period divided by the budget's share, 2 decimals; null
    /// without events.
    pub burn_rate: Option<f64>,
    /// The same over the previous period.
    pub previous_burn_rate: Option<f64>,
}

/// One alert raised in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentLine {
    /// Its id.
    pub alert_id: String,
    /// Its severity.
    pub severity: Severity,
    /// Its message.
    pub message: String,
    /// `agent`, `integration` or `system`.
    pub source_type: String,
    /// Its source.
    pub source_id: String,
    /// When it was raised.
    pub raised_at: String,
    /// When it was acknowledged.
    pub acknowledged_at: Option<String>,
    /// When it was resolved.
    pub resolved_at: Option<String>,
    /// Seconds to acknowledge.
    pub time_to_acknowledge_s: Option<i64>,
    /// Seconds to resolve.
    pub time_to_resolve_s: Option<i64>,
}

/// The alerts raised in the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incidents {
    /// How many.
    pub count: u64,
    /// Of those, critical.
    pub critical: u64,
    /// Of those, warnings.
    pub warning: u64,
    /// Of those, acknowledged.
    pub acknowledged: u64,
    /// Of those, resolved.
    pub resolved: u64,
    /// How fast they were acknowledged and resolved.
    #[serde(flatten)]
    pub times: ResponseTimes,
    /// The first [`MAX_LISTED_INCIDENTS`], critical first, then newest first.
    pub alerts: Vec<IncidentLine>,
}

/// A report (the JSON form; Markdown and HTML render the same content).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The tenant.
    pub tenant: String,
    /// `week` or `month`.
    pub period: PeriodKind,
    /// Start of the period (RFC 3339).
    pub from: String,
    /// End of the period: when the report was made.
    pub to: String,
    /// Start of the previous period; it ends where this one starts.
    pub previous_from: String,
    /// This period's totals.
    pub summary: Totals,
    /// The previous period's totals.
    pub previous: Totals,
    /// Every integration, by id.
    pub integrations: Vec<IntegrationLine>,
    /// Every SLO, by id.
    pub slos: Vec<SloLine>,
    /// Up to 5 agents with failed executions this period, most failures first.
    pub top_failing_agents: Vec<AgentLine>,
    /// Up to 5 integrations with failures this period, most failures first.
    pub top_failing_integrations: Vec<IntegrationLine>,
    /// The alerts raised this period.
    pub incidents: Incidents,
    /// What changed, in sentences, most serious first.
    pub findings: Vec<String>,
}

fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn mean(values: &[i64]) -> Option<f64> {
    (!values.is_empty()).then(|| round1(values.iter().sum::<i64>() as f64 / values.len() as f64))
}

pub(crate) fn pct(x: Option<f64>, decimals: usize) -> String {
    x.map_or_else(
        || "–".to_owned(),
        |x| format!("{:.*} %", decimals, x * 100.0),
    )
}

/// Builds the report.
pub fn build(inputs: &ReportInputs) -> Report {
    let p = inputs.period;
    let mut totals = [Totals::default(), Totals::default()];
    let agents = agent_lines(&inputs.agents, &p, &mut totals);
    let integrations = integration_lines(&inputs.integrations, &p, &mut totals);
    for t in &mut totals {
        t.success_rate = share(t.executions - t.failed_executions, t.executions).map(round3);
        t.availability = share(t.calls - t.failed_calls, t.calls).map(round4);
    }
    let [incidents, previous_incidents] = incidents(&inputs.alerts, &p);
    for (t, i) in totals.iter_mut().zip([&incidents, &previous_incidents]) {
        t.alerts = i.count;
        t.times = i.times;
    }
    let [summary, previous] = totals;

    let slos: Vec<SloLine> = inputs.slos.iter().map(|s| slo_line(s, &p)).collect();
    let (mut top_agents, mut top_integrations) = top_failing(agents, &integrations);
    let findings = findings(
        &summary,
        &previous,
        &integrations,
        &top_agents,
        &slos,
        p.kind,
    );
    top_agents.truncate(TOP_FAILING);
    top_integrations.truncate(TOP_FAILING);
    Report {
        tenant: inputs.tenant.clone(),
        period: p.kind,
        from: format_rfc3339(p.from()),
        to: format_rfc3339(p.to),
        previous_from: format_rfc3339(p.previous_from()),
        summary,
        previous,
        integrations,
        slos,
        top_failing_agents: top_agents,
        top_failing_integrations: top_integrations,
        incidents,
        findings,
    }
}

/// Sums what falls in the current period, then what falls in the previous one; `side` says
/// where an entry falls, if in either.
fn by_side<T, C: Default>(
    entries: &[(i64, T)],
    side: impl Fn(i64) -> Option<Side>,
    merge: impl Fn(&mut C, &T),
) -> [C; 2] {
    let mut sides = [C::default(), C::default()];
    for (at, c) in entries {
        match side(*at) {
            Some(Side::Current) => merge(&mut sides[0], c),
            Some(Side::Previous) => merge(&mut sides[1], c),
            None => {}
        }
    }
    sides
}

/// Each agent's line, adding its executions to the current and previous `totals`.
fn agent_lines(agents: &[AgentInput], p: &Period, totals: &mut [Totals; 2]) -> Vec<AgentLine> {
    let mut lines = Vec::new();
    for a in agents {
        let sides: [AgentCounters; 2] =
            by_side(&a.days, |day| p.side_of_day(day), AgentCounters::merge);
        for (totals, c) in totals.iter_mut().zip(&sides) {
            let finished = c.completed + c.failed;
            totals.executions += finished;
            totals.failed_executions += c.failed;
            totals.active_agents += u64::from(finished > 0);
        }
        let [cur, prev] = &sides;
        lines.push(AgentLine {
            agent_id: a.agent_id.clone(),
            agent_name: a.agent_name.clone(),
            executions: cur.completed + cur.failed,
            failed: cur.failed,
            success_rate: share(cur.completed, cur.completed + cur.failed).map(round3),
            previous_success_rate: share(prev.completed, prev.completed + prev.failed).map(round3),
        });
    }
    lines
}

/// Each integration's line by id, adding its calls to the current and previous `totals`.
fn integration_lines(
    integrations: &[IntegrationInput],
    p: &Period,
    totals: &mut [Totals; 2],
) -> Vec<IntegrationLine> {
    let mut lines = Vec::new();
    for i in integrations {
        let sides: [IntegrationCounters; 2] = by_side(
            &i.days,
            |day| p.side_of_day(day),
            IntegrationCounters::merge,
        );
        let latency: [Histogram; 2] = by_side(
            &i.hours,
            |hour| p.side_of_time(hour * HOUR_MS),
            |h: &mut Histogram, s: &HourSummary| h.merge(&s.latency),
        );
        let figures = |c: &IntegrationCounters, h: &Histogram| PeriodFigures {
            calls: c.calls,
            failures: c.failures,
            availability: share(c.calls - c.failures.min(c.calls), c.calls).map(round4),
            latency_p95_ms: h.quantile(0.95).map(round1),
        };
        for (totals, c) in totals.iter_mut().zip(&sides) {
            totals.calls += c.calls;
            totals.failed_calls += c.failures.min(c.calls);
        }
        let r = &i.record;
        lines.push(IntegrationLine {
            integration_id: r.integration_id.clone(),
            integration_name: r.integration_name.clone(),
            state: name(&r.state),
            current: figures(&sides[0], &latency[0]),
            previous: figures(&sides[1], &latency[1]),
            health_checks_performed: r.health_checks_performed,
            recovery_attempts: r.recovery_attempts,
            successful_recoveries: r.successful_recoveries,
        });
    }
    lines.sort_by(|a, b| a.integration_id.cmp(&b.integration_id));
    lines
}

/// Seconds from an alert's raising to `at`, never negative.
fn seconds_after(a: &AlertRecord, at: Millis) -> i64 {
    (at - a.raised_at).max(0) / 1000
}

/// The incidents of the current and of the previous period; the current one lists its
/// alerts, most severe and latest first.
fn incidents(alerts: &[AlertRecord], p: &Period) -> [Incidents; 2] {
    let mut sides = [Incidents::default(), Incidents::default()];
    for (side, target) in [Side::Current, Side::Previous].into_iter().zip(&mut sides) {
        let (mut acks, mut resolves) = (Vec::new(), Vec::new());
        for a in alerts
            .iter()
            .filter(|a| p.side_of_time(a.raised_at) == Some(side))
        {
            target.count += 1;
            match a.severity {
                Severity::Critical => target.critical += 1,
                Severity::Warning => target.warning += 1,
                Severity::Info => {}
            }
            if let Some(at) = a.acknowledged_at {
                target.acknowledged += 1;
                acks.push(seconds_after(a, at));
            }
            if let Some(at) = a.resolved_at {
                target.resolved += 1;
                resolves.push(seconds_after(a, at));
            }
        }
        target.times = ResponseTimes {
            mtta_seconds: mean(&acks),
            mttr_seconds: mean(&resolves),
        };
    }
    sides[0].alerts = incident_lines(alerts, p);
    sides
}

/// The current period's alerts, most severe and latest first, at most
/// `MAX_LISTED_INCIDENTS`.
fn incident_lines(alerts: &[AlertRecord], p: &Period) -> Vec<IncidentLine> {
    let mut listed: Vec<&AlertRecord> = alerts
        .iter()
        .filter(|a| p.side_of_time(a.raised_at) == Some(Side::Current))
        .collect();
    listed.sort_by(|a, b| {
        a.severity
            .cmp(&b.severity)
            .then(b.raised_at.cmp(&a.raised_at))
            .then(a.alert_id.cmp(&b.alert_id))
    });
    listed
        .into_iter()
        .take(MAX_LISTED_INCIDENTS)
        .map(|a| IncidentLine {
            alert_id: a.alert_id.clone(),
            severity: a.severity,
            message: a.message.clone(),
            source_type: name(&a.source_type),
            source_id: a.source_id.clone(),
            raised_at: format_rfc3339(a.raised_at),
            acknowledged_at: a.acknowledged_at.map(format_rfc3339),
            resolved_at: a.resolved_at.map(format_rfc3339),
            time_to_acknowledge_s: a.acknowledged_at.map(|t| seconds_after(a, t)),
            time_to_resolve_s: a.resolved_at.map(|t| seconds_after(a, t)),
        })
        .collect()
}

/// Agents and integrations with failures in the current period, most failures first (not
/// yet cut to `TOP_FAILING`).
fn top_failing(
    agents: Vec<AgentLine>,
    integrations: &[IntegrationLine],
) -> (Vec<AgentLine>, Vec<IntegrationLine>) {
    let mut top_agents: Vec<AgentLine> = agents.into_iter().filter(|a| a.failed > 0).collect();
    top_agents.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.agent_id.cmp(&b.agent_id)));
    let mut top_integrations: Vec<IntegrationLine> = integrations
        .iter()
        .filter(|i| i.current.failures > 0)
        .cloned()
        .collect();
    top_integrations.sort_by(|a, b| {
        b.current
            .failures
            .cmp(&a.current.failures)
            .then(a.integration_id.cmp(&b.integration_id))
    });
    (top_agents, top_integrations)
}

fn slo_line(s: &SloInput, p: &Period) -> SloLine {
    let st = &s.status;
    let slo = &st.slo;
    let budget = slo.budget();
    let tallies: [Tally; 2] = by_side(
        &s.data.hours,
        |hour| p.side_of_time(hour * HOUR_MS),
        |t: &mut Tally, summary| t.add(slo.tally(summary)),
    );
    let burn = |t: &Tally| (t.total > 0 && budget > 0.0).then(|| round2(t.bad_share() / budget));
    let buffer = st.current.map(|c| {
        let b = match slo.objective {
            Objective::ErrorRate => slo.target - c,
            _ => c - slo.target,
        };
        round4(b)
    });
    SloLine {
        slo_id: slo.slo_id.clone(),
        source_type: name(&slo.source_type),
        source_id: slo.source_id.clone(),
        objective: slo.objective,
        target: slo.target,
        current: st.current,
        buffer,
        error_budget_remaining: st.error_budget_remaining,
        status: st.status,
        burn_rate: burn(&tallies[0]),
        previous_burn_rate: burn(&tallies[1]),
    }
}

/// Ratio at which a rate's rise is worth a finding.
const RISE: f64 = 3.0;

fn findings(
    now: &Totals,
    before: &Totals,
    integrations: &[IntegrationLine],
    failing_agents: &[AgentLine],
    slos: &[SloLine],
    kind: PeriodKind,
) -> Vec<String> {
    let last = format!("last {}", kind.word());
    let mut out = Vec::new();
    for s in slos {
        slo_findings(s, &last, &mut out);
    }
    for i in integrations {
        integration_findings(i, &last, &mut out);
    }
    for a in failing_agents {
        if let (Some(b), Some(p)) = (a.success_rate, a.previous_success_rate) {
            if p - b >= 0.05 {
                out.push(format!(
                    "{}'s success rate fell from {} to {}.",
                    a.agent_name,
                    pct(Some(p), 1),
                    pct(Some(b), 1)
                ));
            }
        }
    }
    totals_findings(now, before, &last, &mut out);
    if out.is_empty() {
        out.push(format!("No notable change against {last}."));
    }
    out
}

/// An SLO breached or at risk, and one that burns its budget much faster than `last`.
fn slo_findings(s: &SloLine, last: &str, out: &mut Vec<String>) {
    let state = match s.status {
        SloState::Breached => Some("is breached"),
        SloState::AtRisk => Some("is at risk"),
        SloState::Ok => None,
    };
    if let Some(state) = state {
        out.push(format!(
            "SLO {} ({} {}) {state}: {} of its error budget left.",
            s.slo_id,
            s.source_type,
            s.source_id,
            pct(Some(s.error_budget_remaining), 1)
        ));
    }
    match (s.burn_rate, s.previous_burn_rate) {
        (Some(b), Some(a)) if a > 0.0 && b >= RISE * a && b >= 1.0 => out.push(format!(
            "{} {} burned SLO {}'s error budget {:.1}× faster than {last} ({b:.2}× against {a:.2}×).",
            s.source_type,
            s.source_id,
            s.slo_id,
            b / a
        )),
        (Some(b), Some(a)) if a == 0.0 && b >= 1.0 => out.push(format!(
            "{} {} started burning SLO {}'s error budget ({b:.2}×; none {last}).",
            s.source_type, s.source_id, s.slo_id
        )),
        _ => {}
    }
}

/// An integration failed now, failing much more than `last`, or much slower.
fn integration_findings(i: &IntegrationLine, last: &str, out: &mut Vec<String>) {
    if i.state == "failed" {
        out.push(format!("{} is failed now.", i.integration_name));
    }
    let rate = |f: &PeriodFigures| share(f.failures, f.calls);
    match (rate(&i.current), rate(&i.previous)) {
        (Some(b), Some(a)) if b >= 0.01 && (a == 0.0 || b >= RISE * a) => out.push(if a == 0.0 {
            format!(
                "{} failed {} of its calls ({} of {}); none failed {last}.",
                i.integration_name,
                pct(Some(b), 1),
                i.current.failures,
                i.current.calls
            )
        } else {
            format!(
                "{} failed {} of its calls, {:.1}× {last}'s {}.",
                i.integration_name,
                pct(Some(b), 1),
                b / a,
                pct(Some(a), 1)
            )
        }),
        _ => {}
    }
    if let (Some(b), Some(a)) = (i.current.latency_p95_ms, i.previous.latency_p95_ms) {
        if a > 0.0 && b >= 2.0 * a && b - a >= 50.0 {
            out.push(format!(
                "{}'s p95 latency rose from {a:.0} ms to {b:.0} ms.",
                i.integration_name
            ));
        }
    }
}

/// Executions that rose or fell by half or more, and alerts acknowledged much slower.
fn totals_findings(now: &Totals, before: &Totals, last: &str, out: &mut Vec<String>) {
    if before.executions >= 100 {
        let change = now.executions as f64 / before.executions as f64 - 1.0;
        if change.abs() >= 0.5 {
            out.push(format!(
                "Executions {} by {:.0} % ({} against {} {last}).",
                if change > 0.0 { "rose" } else { "fell" },
                change.abs() * 100.0,
                now.executions,
                before.executions
            ));
        }
    }
    if let (Some(b), Some(a)) = (now.times.mtta_seconds, before.times.mtta_seconds) {
        if b >= 2.0 * a && b - a >= 60.0 {
            out.push(format!(
                "Alerts took {} to acknowledge on average, {} {last}.",
                duration(b),
                duration(a)
            ));
        }
    }
}

/// Seconds as people say them: `45 s`, `12 min`, `3 h 5 min`.
pub(crate) fn duration(seconds: f64) -> String {
    let s = seconds.round() as i64;
    if s < 60 {
        format!("{s} s")
    } else if s < 3600 {
        format!("{} min", (s + 30) / 60)
    } else {
        let m = (s + 30) / 60;
        format!("{} h {} min", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(days: Vec<(i64, AgentCounters)>, now: Millis) -> ReportInputs {
        ReportInputs {
            tenant: "acme".into(),
            period: Period::ending(PeriodKind::Week, now),
            agents: vec![AgentInput {
                agent_id: "a".into(),
                agent_name: "A | <b>".into(),
                days,
            }],
            integrations: Vec::new(),
            slos: Vec::new(),
            alerts: Vec::new(),
        }
    }

    fn counters(completed: u64, failed: u64) -> AgentCounters {
        AgentCounters {
            started: completed + failed,
            completed,
            failed,
            ..AgentCounters::default()
        }
    }

    #[test]
    fn a_week_is_today_and_the_six_days_before_against_the_seven_before_that() {
        let now = 100 * DAY_MS + 5 * HOUR_MS;
        let p = Period::ending(PeriodKind::Week, now);
        assert_eq!((p.first_day, p.previous_first_day), (94, 87));
        assert_eq!(p.side_of_day(100), Some(Side::Current));
        assert_eq!(p.side_of_day(94), Some(Side::Current));
        assert_eq!(p.side_of_day(93), Some(Side::Previous));
        assert_eq!(p.side_of_day(87), Some(Side::Previous));
        assert_eq!(p.side_of_day(86), None);
        assert_eq!(
            p.side_of_time(now + 1),
            None,
            "nothing after the report's time"
        );
        let m = Period::ending(PeriodKind::Month, now);
        assert_eq!((m.first_day, m.previous_first_day), (71, 41));
    }

    #[test]
    fn days_count_in_their_own_period_only() {
        let now = 100 * DAY_MS;
        let r = build(&inputs(
            vec![
                (100, counters(3, 1)),
                (94, counters(1, 0)),
                (93, counters(8, 2)),
                (80, counters(50, 50)),
            ],
            now,
        ));
        assert_eq!((r.summary.executions, r.summary.failed_executions), (5, 1));
        assert_eq!(r.summary.success_rate, Some(0.8));
        assert_eq!(
            (r.previous.executions, r.previous.failed_executions),
            (10, 2)
        );
        assert_eq!(r.top_failing_agents[0].previous_success_rate, Some(0.8));
        assert_eq!(r.findings, ["No notable change against last week."]);
    }

    #[test]
    fn volume_changes_of_half_or_more_are_findings() {
        let now = 100 * DAY_MS;
        let r = build(&inputs(
            vec![(99, counters(40, 0)), (90, counters(100, 0))],
            now,
        ));
        assert_eq!(
            r.findings,
            ["Executions fell by 60 % (40 against 100 last week)."]
        );
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(45.0), "45 s");
        assert_eq!(duration(600.0), "10 min");
        assert_eq!(duration(3600.0 + 5.0 * 60.0), "1 h 5 min");
    }
}
