//! The compact per-entity state one ingested event changes: the entity's record, its
//! counters over the windows readers need, and the marks of the events it has counted.
//!
//! Why one item per entity carries all three: DynamoDB bills a write per KB and doubles it
//! inside a transaction, so an event that changes one item of under 1 KB with one
//! conditional write costs 1 write unit, where marks, records and buckets in separate items
//! cost 8 to 10 inside a transaction. The price is a bound on what the item keeps: counters
//! of the hour window by minute and of the last [`KEPT_DAYS`] days by day (older days move to
//! day buckets, final by then because events older than 7 days are refused), and the event
//! marks of recent hours (older marks move to hour buckets of marks; see [`Seen`]).

use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::latency::{Histogram, HourSummary};
pub use crate::domain::marks::{finish_mark, hour_of, mark, packed_marks, Seen, MAX_MARKS};
use crate::domain::records::{
    AgentCounters, AgentRecord, HostCounters, HostRecord, IntegrationCounters, IntegrationRecord,
};
use crate::time::{day_of, minute_of, Millis, DAY_MS, HOUR_MS};

/// Days of counters the live item keeps: today and the 8 before it. The trend needs 7; the
/// eighth and ninth cover events up to 7 days old, so a day leaves the item only when no
/// event can change it any more.
pub const KEPT_DAYS: i64 = 9;

/// Time-bucketed counters that merge and pack into a row of numbers.
pub trait Counters: Default + Clone + PartialEq + std::fmt::Debug {
    /// Minutes one bucket of the hour window spans (a divisor of 60, so a bucket lies in
    /// one hour). A bucket is keyed by its last minute, so it stays in the hour window
    /// while any minute of it is there: with wider buckets the window spans the last hour
    /// and up to `SLOT_MINUTES - 1` minutes more. One for agents, which the hour window
    /// and the SLOs read by the minute.
    const SLOT_MINUTES: i64 = 1;
    /// Adds another bucket's counters.
    fn merge(&mut self, other: &Self);
    /// Finished executions or calls, and how many of them failed: what an hour summary
    /// and an SLO count (nothing for hosts).
    fn outcomes(&self) -> (u64, u64) {
        (0, 0)
    }
    /// Model tokens counted: input and output (agents only).
    fn tokens(&self) -> (u64, u64) {
        (0, 0)
    }
    /// The counters as numbers, in a fixed order.
    fn to_row(&self) -> Vec<f64>;
    /// The counters from [`Counters::to_row`]'s numbers; `None` if they do not fit.
    fn from_row(row: &[f64]) -> Option<Self>;
}

fn count(x: f64) -> Option<u64> {
    (x.is_finite() && x >= 0.0 && x.fract() == 0.0).then_some(x as u64)
}

impl Counters for AgentCounters {
    fn merge(&mut self, other: &Self) {
        AgentCounters::merge(self, other);
    }
    fn outcomes(&self) -> (u64, u64) {
        (self.completed.saturating_add(self.failed), self.failed)
    }
    fn tokens(&self) -> (u64, u64) {
        (self.input_tokens, self.output_tokens)
    }
    /// Tokens only when there are any, so the rows of agents that report none stay as
    /// short (and the item as small) as before tokens were counted.
    fn to_row(&self) -> Vec<f64> {
        let mut row = vec![
            self.started as f64,
            self.completed as f64,
            self.failed as f64,
            self.timed as f64,
            self.duration_sum_ms,
        ];
        if self.input_tokens > 0 || self.output_tokens > 0 {
            row.extend([self.input_tokens as f64, self.output_tokens as f64]);
        }
        row
    }
    fn from_row(row: &[f64]) -> Option<Self> {
        let (base, tokens) = match row.len() {
            5 => (row, [0.0, 0.0].as_slice()),
            7 => row.split_at(5),
            _ => return None,
        };
        let [started, completed, failed, timed, duration_sum_ms] = base else {
            return None;
        };
        let [input, output] = tokens else {
            return None;
        };
        Some(Self {
            started: count(*started)?,
            completed: count(*completed)?,
            failed: count(*failed)?,
            timed: count(*timed)?,
            duration_sum_ms: *duration_sum_ms,
            input_tokens: count(*input)?,
            output_tokens: count(*output)?,
        })
    }
}

impl Counters for IntegrationCounters {
    /// Calls and probes count in five-minute buckets: an integration called every minute
    /// would otherwise carry 60 counter rows and 60 latency rows, twice the kilobyte one
    /// write unit pays for. Its hour window so spans 60 to 64 minutes.
    const SLOT_MINUTES: i64 = 5;
    fn merge(&mut self, other: &Self) {
        IntegrationCounters::merge(self, other);
    }
    fn outcomes(&self) -> (u64, u64) {
        (self.calls, self.failures)
    }
    fn to_row(&self) -> Vec<f64> {
        vec![self.calls as f64, self.failures as f64, self.latency_sum_ms]
    }
    fn from_row(row: &[f64]) -> Option<Self> {
        let [calls, failures, latency_sum_ms] = row else {
            return None;
        };
        Some(Self {
            calls: count(*calls)?,
            failures: count(*failures)?,
            latency_sum_ms: *latency_sum_ms,
        })
    }
}

impl Counters for HostCounters {
    /// Hosts' buckets only add up to hour buckets and days: ten-minute ones keep a host
    /// sampling twice a minute under a kilobyte (one write unit a sample instead of three).
    const SLOT_MINUTES: i64 = 10;
    fn merge(&mut self, other: &Self) {
        HostCounters::merge(self, other);
    }
    fn to_row(&self) -> Vec<f64> {
        vec![
            self.samples as f64,
            self.cpu_sum,
            self.cpu_max,
            self.memory_sum,
            self.memory_max,
        ]
    }
    fn from_row(row: &[f64]) -> Option<Self> {
        let [samples, cpu_sum, cpu_max, memory_sum, memory_max] = row else {
            return None;
        };
        Some(Self {
            samples: count(*samples)?,
            cpu_sum: *cpu_sum,
            cpu_max: *cpu_max,
            memory_sum: *memory_sum,
            memory_max: *memory_max,
        })
    }
}

/// Counters by minute over the hour window and by day over the last [`KEPT_DAYS`] days,
/// and latencies by minute over the hour window.
#[derive(Debug, Clone, PartialEq)]
pub struct Window<C> {
    /// Minute buckets, ascending, none older than the hour window.
    pub minutes: Vec<(i64, C)>,
    /// Day buckets, ascending, none older than [`KEPT_DAYS`] days.
    pub days: Vec<(i64, C)>,
    /// Latencies (execution durations, call and probe latencies) by minute, ascending.
    pub latency: Vec<(i64, Histogram)>,
    /// The newest hour whose summary moved to an hour bucket: a later event of it, or of
    /// an hour before it, counts in the minutes and days only.
    pub hours_through: Option<i64>,
}

impl<C> Default for Window<C> {
    fn default() -> Self {
        Self {
            minutes: Vec::new(),
            days: Vec::new(),
            latency: Vec::new(),
            hours_through: None,
        }
    }
}

/// The counters of the hour window at `now`: the sum of the minute buckets in it (callers
/// may pass older buckets too).
pub fn hour_window<C: Counters>(minutes: &[(i64, C)], now: Millis) -> C {
    let first = window_start_minute(now);
    let mut hour = C::default();
    for (_, c) in minutes.iter().filter(|(m, _)| *m >= first) {
        hour.merge(c);
    }
    hour
}

/// The first minute bucket that overlaps the last hour before `now`. The window is the
/// last hour rounded outwards to whole minutes, since events are counted per minute.
pub fn window_start_minute(now: Millis) -> i64 {
    minute_of(now - HOUR_MS)
}

/// The first minute the window keeps at `now`.
pub fn first_kept_minute(now: Millis) -> i64 {
    window_start_minute(now)
}

/// The first day the window keeps at `now`.
pub fn first_kept_day(now: Millis) -> i64 {
    day_of(now) - (KEPT_DAYS - 1)
}

/// The key of the bucket `minute` counts in: the bucket's last minute, so every reader
/// that keeps buckets from a first minute on keeps a bucket while a minute of it is in.
fn slot_of<C: Counters>(minute: i64) -> i64 {
    minute - minute.rem_euclid(C::SLOT_MINUTES) + C::SLOT_MINUTES - 1
}

/// Whether the bucket keyed `slot` ends before `first_minute` (no minute of it is in the
/// window). Hosts' buckets stored before they were keyed by their last minute are keyed
/// by their first: they leave up to nine minutes early, once.
fn slot_gone(slot: i64, first_minute: i64) -> bool {
    slot < first_minute
}

fn bump<C: Counters>(buckets: &mut Vec<(i64, C)>, at: i64, change: impl FnOnce(&mut C)) {
    match buckets.binary_search_by_key(&at, |(b, _)| *b) {
        Ok(i) => change(&mut buckets[i].1),
        Err(i) => {
            let mut c = C::default();
            change(&mut c);
            buckets.insert(i, (at, c));
        }
    }
}

impl<C: Counters> Window<C> {
    /// Counts something that happened at `at` in its minute and its day, where those are
    /// still kept at `now`. `change` runs on each.
    pub fn add(&mut self, at: Millis, now: Millis, change: impl Fn(&mut C)) {
        let (minute, day) = (minute_of(at), day_of(at));
        if minute >= first_kept_minute(now) {
            bump(&mut self.minutes, slot_of::<C>(minute), &change);
        }
        if day >= first_kept_day(now) {
            bump(&mut self.days, day, &change);
        }
    }

    /// Counts a latency (ms) of something that happened at `at` in its bucket (keyed as the
    /// counters' are), if the hour window still keeps that minute at `now`.
    pub fn time(&mut self, at: Millis, now: Millis, value_ms: f64) {
        let minute = minute_of(at);
        if minute < first_kept_minute(now) {
            return;
        }
        let slot = slot_of::<C>(minute);
        match self.latency.binary_search_by_key(&slot, |(m, _)| *m) {
            Ok(i) => self.latency[i].1.add(value_ms),
            Err(i) => {
                let mut h = Histogram::default();
                h.add(value_ms);
                self.latency.insert(i, (slot, h));
            }
        }
    }

    /// The latencies of the minutes from `first_minute` on.
    pub fn latency_since(&self, first_minute: i64) -> Histogram {
        let mut out = Histogram::default();
        for (_, h) in self.latency.iter().filter(|(m, _)| *m >= first_minute) {
            out.merge(h);
        }
        out
    }

    /// The summaries of the hours whose counters or latencies the item holds and has not
    /// moved out, from `after` (exclusive) to `through` (inclusive), by hour.
    fn summaries(&self, after: i64, through: i64) -> Vec<(i64, HourSummary)> {
        let hour = |minute: i64| hour_of(minute * crate::time::MINUTE_MS);
        let mut out: std::collections::BTreeMap<i64, HourSummary> = Default::default();
        for (m, c) in &self.minutes {
            let h = hour(*m);
            if h > after && h <= through {
                let (total, failed) = c.outcomes();
                let (input, output) = c.tokens();
                let s = out.entry(h).or_default();
                s.total = s.total.saturating_add(total);
                s.failed = s.failed.saturating_add(failed);
                s.input_tokens = s.input_tokens.saturating_add(input);
                s.output_tokens = s.output_tokens.saturating_add(output);
            }
        }
        for (m, l) in &self.latency {
            let h = hour(*m);
            if h > after && h <= through {
                out.entry(h).or_default().latency.merge(l);
            }
        }
        out.into_iter().filter(|(_, s)| !s.is_empty()).collect()
    }

    /// The counters of each hour the minutes hold, from `after` (exclusive) to `through`
    /// (inclusive), by hour: a host's hours, which have no outcomes to summarise.
    pub fn hour_counters(&self, after: i64, through: i64) -> Vec<(i64, C)> {
        let mut out: std::collections::BTreeMap<i64, C> = Default::default();
        for (m, c) in &self.minutes {
            let h = hour_of(m * crate::time::MINUTE_MS);
            if h > after && h <= through {
                out.entry(h).or_default().merge(c);
            }
        }
        out.into_iter().collect()
    }

    /// [`Window::take_hours`] for counters: the hours over at `now` not moved out yet.
    pub fn take_hour_counters(&mut self, now: Millis) -> Vec<(i64, C)> {
        self.take_over(now, Self::hour_counters)
    }

    /// The counters of the hours not moved out yet (the current one among them).
    pub fn unmoved_hour_counters(&self) -> Vec<(i64, C)> {
        self.hour_counters(self.hours_through.unwrap_or(i64::MIN), i64::MAX)
    }

    /// The summaries of the hours the item holds that have not moved to hour buckets (the
    /// current one among them), by hour: with the stored hour buckets, every hour once.
    pub fn unmoved_hours(&self) -> Vec<(i64, HourSummary)> {
        self.summaries(self.hours_through.unwrap_or(i64::MIN), i64::MAX)
    }

    /// The summaries of each hour that is over at `now` and has not moved out yet, for
    /// hour buckets; the minutes keep them until they leave the hour window.
    pub fn take_hours(&mut self, now: Millis) -> Vec<(i64, HourSummary)> {
        self.take_over(now, Self::summaries)
    }

    /// What `of` makes of the hours over at `now` not moved out yet, which then count as
    /// moved.
    fn take_over<T>(
        &mut self,
        now: Millis,
        of: impl Fn(&Self, i64, i64) -> Vec<(i64, T)>,
    ) -> Vec<(i64, T)> {
        let last_over = hour_of(now) - 1;
        let through = self.hours_through.unwrap_or(i64::MIN);
        if through >= last_over {
            return Vec::new();
        }
        let out = of(self, through, last_over);
        // Only hours that moved: an hour without counts yet may still get late ones.
        if let Some((newest, _)) = out.last() {
            self.hours_through = Some(*newest);
        }
        out
    }

    /// Drops what is older than the windows at `now` and returns the days dropped, which
    /// are final and belong in day buckets.
    pub fn prune(&mut self, now: Millis) -> Vec<(i64, C)> {
        let first_minute = first_kept_minute(now);
        self.minutes.retain(|(m, _)| !slot_gone(*m, first_minute));
        self.latency.retain(|(m, _)| *m >= first_minute);
        let first_day = first_kept_day(now);
        let keep = self.days.partition_point(|(d, _)| *d < first_day);
        self.days.drain(..keep).collect()
    }

    /// Whether anything in the window would leave it at `now`.
    pub fn needs_prune(&self, now: Millis) -> bool {
        self.minutes
            .first()
            .is_some_and(|(m, _)| slot_gone(*m, first_kept_minute(now)))
            || self
                .latency
                .first()
                .is_some_and(|(m, _)| *m < first_kept_minute(now))
            || self
                .days
                .first()
                .is_some_and(|(d, _)| *d < first_kept_day(now))
    }
}

/// A counter as stored: sums to 2 decimals (milliseconds, percentage points), which keeps
/// `792.2135999999999` to `792.21` and the item under its kilobyte; counts are whole anyway.
fn stored(v: f64) -> f64 {
    let r = (v * 100.0).round() / 100.0;
    if r.is_finite() {
        r
    } else {
        v
    }
}

/// Packs buckets as `index,v1,v2,...;index,...` with each index relative to the one
/// before: a third of the bytes of a list of numbers, which is what the 1 KB budget needs.
fn pack<C: Counters>(buckets: &[(i64, C)]) -> String {
    let mut out = String::new();
    let mut prev = 0;
    for (i, (at, c)) in buckets.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        let _ = write!(out, "{}", at - prev);
        prev = *at;
        for v in c.to_row() {
            let _ = write!(out, ",{}", stored(v));
        }
    }
    out
}

fn unpack<C: Counters>(text: &str) -> Result<Vec<(i64, C)>, String> {
    let mut out = Vec::new();
    let mut prev = 0i64;
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let mut fields = part.split(',');
        let delta: i64 = fields
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("bad bucket index in {part:?}"))?;
        let row: Vec<f64> = fields
            .map(|f| f.parse::<f64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad counter in {part:?}: {e}"))?;
        let c = C::from_row(&row).ok_or_else(|| format!("bad counters in {part:?}"))?;
        prev = prev
            .checked_add(delta)
            .ok_or_else(|| format!("bucket index overflows in {part:?}"))?;
        if out.last().is_some_and(|(b, _)| *b >= prev) {
            return Err(format!("buckets out of order at {part:?}"));
        }
        out.push((prev, c));
    }
    Ok(out)
}

#[derive(Serialize, Deserialize)]
struct PackedWindow {
    #[serde(default)]
    m: String,
    #[serde(default)]
    d: String,
    /// Latencies: `minute,histogram` pairs, `;`-separated, minutes relative as in `m`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    l: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lt: Option<i64>,
}

fn pack_latency(rows: &[(i64, Histogram)]) -> String {
    let mut out = String::new();
    let mut prev = 0;
    for (i, (m, h)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        let _ = write!(out, "{},{}", m - prev, h.pack());
        prev = *m;
    }
    out
}

fn unpack_latency(text: &str) -> Result<Vec<(i64, Histogram)>, String> {
    let mut out: Vec<(i64, Histogram)> = Vec::new();
    let mut prev = 0i64;
    for part in text.split(';').filter(|p| !p.is_empty()) {
        let (delta, h) = part
            .split_once(',')
            .ok_or_else(|| format!("bad latency row {part:?}"))?;
        let delta: i64 = delta
            .parse()
            .map_err(|_| format!("bad latency minute in {part:?}"))?;
        prev = prev
            .checked_add(delta)
            .ok_or_else(|| format!("latency minute overflows in {part:?}"))?;
        if out.last().is_some_and(|(m, _)| *m >= prev) {
            return Err(format!("latency rows out of order at {part:?}"));
        }
        out.push((prev, Histogram::unpack(h)?));
    }
    Ok(out)
}

impl<C: Counters> Serialize for Window<C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        PackedWindow {
            m: pack(&self.minutes),
            d: pack(&self.days),
            l: pack_latency(&self.latency),
            lt: self.hours_through,
        }
        .serialize(s)
    }
}

impl<'de, C: Counters> Deserialize<'de> for Window<C> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let p = PackedWindow::deserialize(d)?;
        Ok(Self {
            minutes: unpack(&p.m).map_err(serde::de::Error::custom)?,
            days: unpack(&p.d).map_err(serde::de::Error::custom)?,
            latency: unpack_latency(&p.l).map_err(serde::de::Error::custom)?,
            hours_through: p.lt,
        })
    }
}

/// An entity's live item: its record, its counters and its marks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "R: Serialize, C: Counters",
    deserialize = "R: Deserialize<'de>, C: Counters"
))]
pub struct Live<R, C> {
    /// The entity's record.
    pub record: R,
    /// Its counters.
    #[serde(default)]
    pub window: Window<C>,
    /// Its event marks.
    #[serde(default)]
    pub seen: Seen,
}

impl<R, C: Counters> Live<R, C> {
    /// A new entity with no counters nor marks.
    pub fn new(record: R) -> Self {
        Self {
            record,
            window: Window::default(),
            seen: Seen::default(),
        }
    }
}

/// An agent's live item.
pub type LiveAgent = Live<AgentRecord, AgentCounters>;
/// An integration's live item.
pub type LiveIntegration = Live<IntegrationRecord, IntegrationCounters>;
/// A host's live item.
pub type LiveHost = Live<HostRecord, HostCounters>;

/// What is known, beyond the live item, of an execution's finish: whether a mark bucket
/// holds its finish mark (looked up only when the item's own marks may not tell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishKnown {
    /// A mark bucket holds the finish mark.
    Yes,
    /// No bucket holds it (or none was consulted because none could).
    No,
}

impl LiveAgent {
    /// Applies `execution.started` at `ts`; `false` if it repeats what is counted (a second
    /// start of a running execution, or a start after its finish), which changes only
    /// `last_active`.
    #[allow(clippy::too_many_arguments)]
    pub fn started(
        &mut self,
        execution_id: &str,
        operation: &str,
        agent_name: Option<&str>,
        ts: Millis,
        now: Millis,
        finished_elsewhere: FinishKnown,
    ) -> bool {
        self.record.observe(ts);
        if let Some(name) = agent_name {
            self.record.agent_name = name.to_owned();
        }
        if self.record.running.contains_key(execution_id)
            || self.seen.contains(finish_mark(execution_id))
            || finished_elsewhere == FinishKnown::Yes
        {
            return false;
        }
        self.record.start(execution_id, operation, ts);
        self.window
            .add(ts, now, |c| c.started = c.started.saturating_add(1));
        true
    }

    /// The time a finish at `ts` counts its execution from: its start if running, else
    /// `duration_ms` before the finish.
    pub fn start_of(&self, execution_id: &str, ts: Millis, duration_ms: Option<f64>) -> Millis {
        match self.record.running.get(execution_id) {
            Some(r) => r.started_at,
            None => ts - duration_ms.map_or(0, |d| d as Millis),
        }
    }

    /// Applies `execution.finished` at `ts`: counts the execution from its start (a finish
    /// without a known start counts it as started `duration_ms` earlier), unless it already
    /// finished (then `false`). Files the finish mark under the start's hour, where a late
    /// start looks, and under the finish's hour, where a retried finish looks.
    #[allow(clippy::too_many_arguments)]
    pub fn finished(
        &mut self,
        execution_id: &str,
        outcome: crate::domain::events::Outcome,
        duration_ms: Option<f64>,
        confidence: Option<f64>,
        tokens: Option<crate::domain::events::Tokens>,
        ts: Millis,
        now: Millis,
        finished_elsewhere: FinishKnown,
    ) -> bool {
        self.record.observe(ts);
        let fmark = finish_mark(execution_id);
        if self.seen.contains(fmark) || finished_elsewhere == FinishKnown::Yes {
            return false;
        }
        if let Some(c) = confidence {
            self.record.report_confidence(c, ts);
        }
        let known = self.record.running.get(execution_id).map(|r| r.started_at);
        let started_at = self.start_of(execution_id, ts, duration_ms);
        let duration = match known {
            Some(start) => Some(duration_ms.unwrap_or((ts - start).max(0) as f64)),
            None => duration_ms,
        };
        self.record.finish(execution_id, outcome, ts);
        if let Some(d) = duration {
            self.window.time(started_at, now, d);
        }
        self.record
            .totals
            .add(outcome == crate::domain::events::Outcome::Failed);
        if let Some(t) = tokens {
            self.record.totals.add_tokens(t);
        }
        self.window.add(started_at, now, |c| {
            if known.is_none() {
                c.started = c.started.saturating_add(1);
            }
            c.add_finish(outcome, duration);
            if let Some(t) = tokens {
                c.add_tokens(t);
            }
        });
        // Under the start's hour, where a late start looks; and under the finish's own
        // hour, where a retried finish looks when it cannot tell the start (no
        // `duration_ms`, nothing running any more), once the item's marks have moved out.
        self.seen.insert(hour_of(started_at), fmark);
        if hour_of(ts) != hour_of(started_at) {
            self.seen.insert(hour_of(ts), fmark);
        }
        true
    }
}

impl LiveIntegration {
    /// Applies `integration.call` at `ts`.
    pub fn call(&mut self, ok: bool, latency_ms: f64, name: Option<&str>, ts: Millis, now: Millis) {
        if let Some(name) = name {
            self.record.integration_name = name.to_owned();
        }
        self.record.record_result(ok, ts);
        self.record.totals.add(!ok);
        self.window.time(ts, now, latency_ms);
        self.window.add(ts, now, |c| c.add(ok, latency_ms));
    }

    /// Records a probe's result: the check, the state machine and the counters.
    pub fn probe(&mut self, ok: bool, latency_ms: f64, at: Millis, now: Millis) {
        self.record.record_probe(ok, at);
        self.count(ok, latency_ms, at, now);
    }

    /// Applies a probe's result as [`LiveIntegration::probe`] does. One that was held back
    /// to be written with a later one counts the same, but a held success moves the state
    /// machine only if nothing newer did (no call or probe recorded after it, the state
    /// still steady): a success that waited must not undo failures reported meanwhile.
    pub fn apply_probe(&mut self, r: &crate::domain::records::ProbeResult) {
        let newer = self.record.last_used.is_some_and(|u| u > r.at) || !self.record.steady_if_ok();
        if r.held && r.ok && newer {
            self.record.count_probe(r.at);
            self.count(r.ok, r.latency_ms, r.at, r.at);
        } else {
            self.probe(r.ok, r.latency_ms, r.at, r.at);
        }
    }

    fn count(&mut self, ok: bool, latency_ms: f64, at: Millis, now: Millis) {
        self.record.totals.add(!ok);
        self.window.time(at, now, latency_ms);
        self.window.add(at, now, |c| c.add(ok, latency_ms));
    }
}

impl LiveHost {
    /// Applies `host.sample` at `ts`: the newest sample is the host's reading; every sample
    /// counts.
    pub fn sample(&mut self, sample: HostRecord, now: Millis) {
        let (cpu, memory, ts) = (sample.cpu_usage, sample.memory_usage, sample.last_seen);
        if ts >= self.record.last_seen {
            let since = self.record.reporting_since;
            self.record = HostRecord {
                reporting_since: since,
                ..sample
            };
        }
        self.window.add(ts, now, |c| c.add(cpu, memory));
    }
}

/// The end of the hour `hour`, for the TTL of its mark bucket.
pub fn hour_end(hour: i64) -> Millis {
    (hour + 1) * HOUR_MS
}

/// The end of the day `day`.
pub fn day_end(day: i64) -> Millis {
    (day + 1) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::Outcome;
    use crate::time::MINUTE_MS;

    fn host(id: &str, cpu: f64, at: Millis) -> HostRecord {
        HostRecord {
            host_id: id.to_owned(),
            cpu_usage: cpu,
            memory_usage: 40.0,
            disk_usage: Some(40.0),
            load_average: Some([0.5, 0.4, 0.3]),
            uptime_seconds: Some(86_400),
            last_seen: at,
            reporting_since: None,
        }
    }

    #[test]
    fn a_host_sampled_twice_a_minute_keeps_ten_minute_buckets_and_exact_hours() {
        // From the start of an hour to the middle of the next.
        let start = NOW - NOW.rem_euclid(HOUR_MS) - HOUR_MS;
        let mut h = LiveHost::new(host("h", 0.0, start));
        let mut sum = 0.0;
        for k in 0..180 {
            let at = start + k * 30_000;
            let cpu = (k % 97) as f64 + 0.25;
            h.sample(host("h", cpu, at), at);
            if k < 120 {
                sum += cpu;
            }
        }
        let now = start + 180 * 30_000;
        h.window.prune(now);
        assert!(
            h.window.minutes.len() <= 7,
            "ten-minute buckets over the hour window: {:?}",
            h.window.minutes.iter().map(|(m, _)| m).collect::<Vec<_>>()
        );
        assert!(
            h.window.minutes.iter().all(|(m, _)| m % 10 == 9),
            "buckets keyed by their last minute"
        );
        let hours = h.window.take_hour_counters(now);
        let first: &HostCounters = &hours[0].1;
        assert_eq!(
            first.samples, 60,
            "the first hour's samples: the minutes it still holds"
        );
        let stored = serde_json::to_string(&h.window).expect("the window serializes");
        assert!(stored.len() < 400, "{} bytes: {stored}", stored.len());
        // The whole first hour, as its samples summed, before it left the window.
        let mut whole = LiveHost::new(host("h", 0.0, start));
        for k in 0..120 {
            let at = start + k * 30_000;
            whole.sample(host("h", (k % 97) as f64 + 0.25, at), start + HOUR_MS);
        }
        let hours = whole.window.hour_counters(i64::MIN, i64::MAX);
        assert_eq!(hours.len(), 1);
        assert_eq!((hours[0].1.samples, hours[0].1.cpu_sum), (120, sum));
    }

    #[test]
    fn an_integration_called_every_minute_keeps_five_minute_buckets_while_a_minute_is_in() {
        let start = NOW - NOW.rem_euclid(HOUR_MS);
        let mut i = LiveIntegration::new(IntegrationRecord::new("crm", start - HOUR_MS));
        // A failed call at minute 2 of the hour, then a good one every minute for an hour.
        i.call(
            false,
            900.0,
            None,
            start + 2 * MINUTE_MS,
            start + 2 * MINUTE_MS,
        );
        for k in 3..60 {
            let at = start + k * MINUTE_MS;
            i.call(true, 100.0 + k as f64, None, at, at);
        }
        assert_eq!(i.window.minutes.len(), 12, "an hour in five-minute buckets");
        assert_eq!(
            i.window.latency.len(),
            12,
            "latencies bucketed as the counters"
        );
        assert_eq!(i.window.minutes[0].0, minute_of(start) + 4);
        let health = |now: Millis| {
            crate::domain::health::integration_health(
                &i.record,
                &i.window.minutes,
                &i.window.days,
                &i.window.latency,
                now,
                5_000.0,
            )
        };
        // Minute 4 of the next hour: the bucket of minutes 0 to 4 still has a minute in
        // the window, so the failure and its latency still count.
        let h = health(start + HOUR_MS + 4 * MINUTE_MS);
        assert!(
            h.error_rate > 0.0,
            "the failure left the window early: {h:?}"
        );
        assert_eq!(h.latency.p99, Some(crate::domain::latency::estimate(900.0)));
        // Minute 5: that bucket has left.
        let h = health(start + HOUR_MS + 5 * MINUTE_MS);
        assert_eq!(
            h.error_rate, 0.0,
            "the failure stayed past its bucket: {h:?}"
        );
        assert!(h.latency.p99.is_some_and(|p| p < 900.0), "{h:?}");
        let stored = serde_json::to_string(&i.window).expect("the window serializes");
        assert!(stored.len() < 450, "{} bytes: {stored}", stored.len());
    }

    #[test]
    fn an_integration_item_stored_with_minute_buckets_and_null_options_still_reads() {
        // As items were stored before five-minute buckets and with every option written.
        let old = r#"{"record":{"consecutive_failures":0,"created_at":1000,
            "health_checks_performed":2,"integration_id":"crm","integration_name":"CRM",
            "last_probe_at":null,"last_used":5000,"next_attempt_at":null,"probe":null,
            "recovery_attempts":0,"state":"active","successful_recoveries":0,"up_since":1000},
            "seen":{"h":""},"window":{"m":"100,1,1,900;1,1,0,100","d":"","l":"100,400;1,300"}}"#;
        let i: LiveIntegration = serde_json::from_str(old).expect("the old item reads");
        assert_eq!(i.record.integration_id, "crm");
        assert_eq!(i.record.integration_name, "CRM");
        assert_eq!(i.record.health_checks_performed, 2);
        assert_eq!(i.window.minutes.len(), 2);
        let h = crate::domain::health::integration_health(
            &i.record,
            &i.window.minutes,
            &i.window.days,
            &i.window.latency,
            101 * MINUTE_MS,
            5_000.0,
        );
        assert_eq!((h.error_rate, h.latency_ms), (0.5, 500.0));
        // Written again, it leaves the empty options out and keeps every other field.
        let again = serde_json::to_string(&i).expect("it serializes");
        assert!(
            again.contains(r#""integration_id":"crm""#)
                && again.contains(r#""recovery_attempts":0"#)
                && !again.contains("next_attempt_at"),
            "{again}"
        );
        let back: LiveIntegration = serde_json::from_str(&again).expect("it reads back");
        assert_eq!(back, i);
    }

    #[test]
    fn a_host_item_stored_with_minute_buckets_still_adds_up() {
        let start = NOW - NOW.rem_euclid(HOUR_MS);
        let mut h = LiveHost::new(host("h", 0.0, start));
        // As an item written before: a bucket at minute 3 of the hour.
        h.window
            .minutes
            .push((minute_of(start) + 3, HostCounters::default()));
        h.window.minutes[0].1.add(50.0, 40.0);
        h.sample(
            host("h", 30.0, start + 4 * MINUTE_MS),
            start + 5 * MINUTE_MS,
        );
        h.sample(
            host("h", 20.0, start + 5 * MINUTE_MS),
            start + 5 * MINUTE_MS,
        );
        let hours = h.window.hour_counters(i64::MIN, i64::MAX);
        assert_eq!((hours[0].1.samples, hours[0].1.cpu_sum), (3, 100.0));
        let text = serde_json::to_string(&h.window).expect("serializes");
        let back: Window<HostCounters> = serde_json::from_str(&text).expect("reads back");
        assert_eq!(
            back, h.window,
            "old and new buckets side by side survive a round trip"
        );
    }

    #[test]
    fn a_finish_counts_from_its_start_once_and_a_late_start_changes_nothing() {
        let mut a = LiveAgent::new(AgentRecord::new("a", 0));
        a.started("x1", "op", None, NOW - 10_000, NOW, FinishKnown::No);
        a.finished(
            "x1",
            Outcome::Completed,
            None,
            None,
            None,
            NOW,
            NOW,
            FinishKnown::No,
        );
        a.finished(
            "x1",
            Outcome::Failed,
            None,
            None,
            None,
            NOW,
            NOW,
            FinishKnown::No,
        );
        let hour: AgentCounters =
            a.window
                .minutes
                .iter()
                .fold(AgentCounters::default(), |mut t, (_, c)| {
                    t.merge(c);
                    t
                });
        assert_eq!((hour.started, hour.completed, hour.failed), (1, 1, 0));
        assert_eq!(hour.duration_sum_ms, 10_000.0);
        // Finish first, then its start: one execution, not running.
        a.finished(
            "x2",
            Outcome::Failed,
            Some(500.0),
            None,
            None,
            NOW,
            NOW,
            FinishKnown::No,
        );
        a.started("x2", "op", None, NOW - 500, NOW, FinishKnown::No);
        assert!(a.record.running.is_empty());
        let total: u64 = a.window.days.iter().map(|(_, c)| c.started).sum();
        assert_eq!(total, 2);
        // A finish the item forgot but a mark bucket remembers changes nothing.
        a.finished(
            "x3",
            Outcome::Failed,
            Some(1.0),
            None,
            None,
            NOW,
            NOW,
            FinishKnown::Yes,
        );
        let total: u64 = a.window.days.iter().map(|(_, c)| c.started).sum();
        assert_eq!(total, 2);
    }

    const NOW: Millis = 1_780_000_000_000;

    #[test]
    fn windows_pack_small_and_round_trip() {
        let mut w: Window<AgentCounters> = Window::default();
        for k in 0..12 {
            w.add(NOW - k * 5 * MINUTE_MS, NOW, |c| {
                c.started += 1;
                c.add_finish(crate::domain::events::Outcome::Completed, Some(1234.5));
            });
        }
        let text = serde_json::to_string(&w).unwrap_or_default();
        assert!(text.len() < 300, "{} bytes: {text}", text.len());
        let back: Window<AgentCounters> = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back, w);
        assert_eq!(back.minutes.len(), 12);
        assert_eq!(back.days.iter().map(|(_, c)| c.started).sum::<u64>(), 12);
    }

    #[test]
    fn tokens_count_once_per_execution_and_rows_without_them_stay_short() {
        use crate::domain::events::Tokens;
        let mut a = LiveAgent::new(AgentRecord::new("a", 0));
        let t = Some(Tokens {
            input: 120,
            output: 30,
        });
        for _ in 0..2 {
            a.finished(
                "x1",
                Outcome::Completed,
                Some(5.0),
                None,
                t,
                NOW,
                NOW,
                FinishKnown::No,
            );
        }
        a.finished(
            "x2",
            Outcome::Failed,
            Some(5.0),
            None,
            None,
            NOW,
            NOW,
            FinishKnown::No,
        );
        let totals = &a.record.totals;
        assert_eq!((totals.count, totals.failed), (2, 1));
        assert_eq!((totals.input_tokens, totals.output_tokens), (120, 30));
        let minute = &a.window.minutes[0].1;
        assert_eq!(minute.to_row().len(), 7);
        assert_eq!(
            AgentCounters::from_row(&minute.to_row()).as_ref(),
            Some(minute)
        );
        // Rows written before tokens were counted still read.
        let old = AgentCounters::from_row(&[1.0, 1.0, 0.0, 1.0, 5.0]);
        assert_eq!(old.map(|c| (c.started, c.input_tokens)), Some((1, 0)));
        assert_eq!(AgentCounters::default().to_row().len(), 5);
        // The hour's summary carries them, and the record stores its totals as a row.
        let hours = a.window.take_hours(NOW + 2 * HOUR_MS);
        assert_eq!(hours.iter().map(|(_, s)| s.input_tokens).sum::<u64>(), 120);
        let text = serde_json::to_string(&a.record).unwrap_or_default();
        assert!(text.contains("\"tot\":[2,1,120,30]"), "{text}");
        let back: Option<AgentRecord> = serde_json::from_str(&text).ok();
        assert_eq!(back.as_ref(), Some(&a.record));
    }

    #[test]
    fn old_minutes_and_days_leave_the_window_and_old_days_are_returned_final() {
        let mut w: Window<IntegrationCounters> = Window::default();
        w.add(NOW - 2 * HOUR_MS, NOW, |c| c.add(true, 1.0));
        assert!(w.minutes.is_empty(), "older than the hour window");
        assert_eq!(w.days.len(), 1);
        w.add(NOW, NOW, |c| c.add(false, 3.0));
        let later = NOW + KEPT_DAYS * DAY_MS;
        assert!(w.needs_prune(later));
        let gone = w.prune(later);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.calls, 2);
        assert!(w.days.is_empty() && w.minutes.is_empty());
    }

    #[test]
    fn damaged_windows_are_refused() {
        for bad in [
            r#"{"m":"x,1,2,3"}"#,
            r#"{"m":"5,1,2"}"#,
            r#"{"d":"5,1,2,3;0,1,2,3"}"#,
            r#"{"d":"5,-1,2,3"}"#,
        ] {
            assert!(
                serde_json::from_str::<Window<IntegrationCounters>>(bad).is_err(),
                "{bad}"
            );
        }
    }
}
