//! Live items: an entity's record, counters and event marks in one stored item (see
//! `domain::live`). How each kind is stored, what leaves it with time, how an event changes
//! it ([`LiveRecord`]); the read views of agents and integrations ([`EntityData`]); and what
//! a batch changed, as written ([`Touched`]). Ingestion writes these items and tenant reads
//! list them; both come here for their shape.

use std::collections::{HashMap, HashSet};

use super::layout::{self, Entity, MarksOf};
use super::{corrupt, unexpected, Record, Store, StoreError, StoredItem};
use crate::domain::events::{Event, EventKind, Gauge, Outcome};
use crate::domain::failures::FailureRecord;
use crate::domain::health::{integration_health, IntegrationHealth};
use crate::domain::latency::HourSummary;
use crate::domain::live::{
    finish_mark, hour_of, FinishKnown, Live, LiveAgent, LiveHost, LiveIntegration, Seen,
};
use crate::domain::records::{
    AgentCounters, AgentRecord, GaugeReading, HostCounters, HostRecord, IntegrationCounters,
    IntegrationRecord, SystemRecord,
};
use crate::time::Millis;

/// An entity's record with the counters its health needs.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityData<R, C> {
    /// The record.
    pub record: R,
    /// Minute buckets of the hour window.
    pub minutes: Vec<(i64, C)>,
    /// Day buckets of the last days (the trend's 7 and more).
    pub days: Vec<(i64, C)>,
    /// Latencies by minute over the hour window.
    pub latency: Vec<(i64, crate::domain::latency::Histogram)>,
    /// The newest hour moved to an hour bucket (see [`crate::domain::live::Window`]).
    pub hours_through: Option<i64>,
}

impl<R, C> From<Live<R, C>> for EntityData<R, C> {
    fn from(live: Live<R, C>) -> Self {
        Self {
            record: live.record,
            minutes: live.window.minutes,
            days: live.window.days,
            latency: live.window.latency,
            hours_through: live.window.hours_through,
        }
    }
}

impl<R, C: crate::domain::live::Counters> EntityData<R, C> {
    /// What an SLO of this entity is computed from, with its stored hour buckets: the same
    /// as [`crate::store::slo::slo_data`] on the live item it was read from.
    pub fn slo_data(
        &self,
        mut stored: Vec<(i64, crate::domain::latency::HourSummary)>,
    ) -> crate::domain::slo::SloData {
        let window = crate::domain::live::Window {
            minutes: self.minutes.clone(),
            days: Vec::new(),
            latency: self.latency.clone(),
            hours_through: self.hours_through,
        };
        stored.extend(window.unmoved_hours());
        crate::domain::slo::SloData {
            hours: stored,
            minutes: crate::store::slo::minute_summaries(&self.minutes, &self.latency),
        }
    }
}

/// An agent with the counters its health needs.
pub type AgentData = EntityData<AgentRecord, AgentCounters>;

/// An integration with the counters its health needs.
pub type IntegrationData = EntityData<IntegrationRecord, IntegrationCounters>;

impl IntegrationData {
    /// Its health at `now`.
    pub fn health(&self, now: Millis, latency_threshold_ms: f64) -> IntegrationHealth {
        integration_health(
            &self.record,
            &self.minutes,
            &self.days,
            &self.latency,
            now,
            latency_threshold_ms,
        )
    }
}

/// Lists search and order agents by id and name before their health is computed.
impl crate::domain::listing::Named for AgentData {
    fn id(&self) -> &str {
        &self.record.agent_id
    }
    fn name(&self) -> &str {
        &self.record.agent_name
    }
}

/// Lists search and order integrations by id and name before their health is computed.
impl crate::domain::listing::Named for IntegrationData {
    fn id(&self) -> &str {
        &self.record.integration_id
    }
    fn name(&self) -> &str {
        &self.record.integration_name
    }
}

/// The sources a batch of events changed, as written: what an evaluation of those events
/// needs, without reading them again.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Touched {
    /// Agents.
    pub agents: Vec<AgentData>,
    /// Integrations.
    pub integrations: Vec<IntegrationData>,
    /// Hosts.
    pub hosts: Vec<HostRecord>,
    /// The gauges, if a gauge was reported.
    pub system: Option<SystemRecord>,
}

impl Touched {
    /// Whether no source was touched.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
            && self.integrations.is_empty()
            && self.hosts.is_empty()
            && self.system.is_none()
    }

    /// The touched sources among `sources` (hosts and the gauges as `system` sources).
    pub fn only(
        self,
        sources: &std::collections::HashSet<(crate::domain::alerts::SourceType, String)>,
    ) -> Touched {
        use crate::domain::alerts::SourceType;
        let has = |t: SourceType, id: &str| sources.contains(&(t, id.to_owned()));
        Touched {
            agents: self
                .agents
                .into_iter()
                .filter(|a| has(SourceType::Agent, &a.record.agent_id))
                .collect(),
            integrations: self
                .integrations
                .into_iter()
                .filter(|i| has(SourceType::Integration, &i.record.integration_id))
                .collect(),
            hosts: self
                .hosts
                .into_iter()
                .filter(|h| has(SourceType::System, &h.host_id))
                .collect(),
            system: self.system.filter(|_| has(SourceType::System, "system")),
        }
    }

    /// Adds a later batch's sources; a source in both keeps the later state.
    pub fn merge(&mut self, later: Touched) {
        fn keep_later<T>(mine: &mut Vec<T>, later: Vec<T>, id: impl Fn(&T) -> &str) {
            for item in later {
                match mine.iter().position(|m| id(m) == id(&item)) {
                    Some(i) => mine[i] = item,
                    None => mine.push(item),
                }
            }
        }
        keep_later(&mut self.agents, later.agents, |a| &a.record.agent_id);
        keep_later(&mut self.integrations, later.integrations, |i| {
            &i.record.integration_id
        });
        keep_later(&mut self.hosts, later.hosts, |h| &h.host_id);
        if later.system.is_some() {
            self.system = later.system;
        }
    }
}

/// The mark buckets one group attempt has read, by hour.
pub(crate) struct Marks<'a> {
    store: &'a Store,
    tenant: &'a str,
    of: MarksOf<'a>,
    read: HashMap<i64, HashSet<u64>>,
}

impl<'a> Marks<'a> {
    /// No bucket read yet, for the marks of `of`.
    pub(crate) fn new(store: &'a Store, tenant: &'a str, of: MarksOf<'a>) -> Self {
        Self {
            store,
            tenant,
            of,
            read: HashMap::new(),
        }
    }

    /// Whether `m` is marked: in the item, or in the bucket of one of `hours` that the
    /// item says may hold marks.
    pub(crate) async fn contains(
        &mut self,
        seen: &Seen,
        hours: &[i64],
        m: u64,
    ) -> Result<bool, StoreError> {
        if seen.contains(m) {
            return Ok(true);
        }
        for &hour in hours.iter().filter(|h| seen.spilled(**h)) {
            if !self.read.contains_key(&hour) {
                let key = layout::marks(self.tenant, self.of, hour);
                let marks = match self.store.get_one(&key).await? {
                    Some(StoredItem {
                        record: Record::Marks(b),
                        ..
                    }) => b.marks.into_iter().collect(),
                    Some(item) => return Err(unexpected(&item, "expected event marks")),
                    None => HashSet::new(),
                };
                self.read.insert(hour, marks);
            }
            if self.read.get(&hour).is_some_and(|ms| ms.contains(&m)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// A record kept in a live item: how it is stored, what leaves it with time, and how an
/// event changes it.
#[async_trait::async_trait]
pub(crate) trait LiveRecord: StoredAs + Send + Clone {
    /// Its event marks.
    fn seen_mut(&mut self) -> &mut Seen;
    /// Most event marks its item keeps before the oldest move to their bucket.
    const MAX_MARKS: usize = crate::domain::live::MAX_MARKS;
    /// Removes the day counters that are final at `now`, as day bucket records.
    fn archive(&mut self, now: Millis) -> Vec<(i64, Record)>;
    /// The summaries of the hours over at `now` not moved out yet, for hour buckets.
    fn take_hours(&mut self, _now: Millis) -> Vec<(i64, HourSummary)> {
        Vec::new()
    }
    /// Other hour records over at `now` not moved out yet (a host's hourly counters).
    fn take_hour_records(&mut self, _now: Millis) -> Vec<(i64, Record)> {
        Vec::new()
    }
    /// The record of an entity first seen in `event`.
    fn create(event: &Event, now: Millis) -> Self;
    /// The kind of entity this is the live item of (counted by quotas); `None` for the
    /// tenant's gauges.
    fn entity() -> Option<Entity>;
    /// Whether it is a probed integration (counted by quotas).
    fn probed(&self) -> bool {
        false
    }
    /// Notes a report at `at` for the silence rule (agents and hosts keep runs of reports;
    /// see [`crate::domain::records::AgentRecord::observe_run`]).
    fn observe_report(&mut self, _at: Millis, _silent_after_ms: Millis) {}
    /// Adds the item, as written, to what a batch touched.
    fn touch(self, touched: &mut Touched);
    /// Whether an event is recognised by the mark of its `event_id`. Executions need none:
    /// the running execution, or its finish mark, recognises a repeated start or finish
    /// whatever its event id, which saves two marks of three in an agent's item.
    fn marks_events() -> bool {
        true
    }
    /// The failure `event` reports, as it would be recorded if applied now (before
    /// [`LiveRecord::apply`], which forgets the running execution it reads), with the id
    /// that keys it.
    fn failure_of(&self, _event: &Event) -> Option<(String, FailureRecord)> {
        None
    }
    /// Applies an event whose mark is not held; `false` if it changed no count (a repeat
    /// recognised otherwise than by its mark).
    async fn apply(
        &mut self,
        marks: &mut Marks<'_>,
        event: &Event,
        now: Millis,
    ) -> Result<bool, StoreError>;
}

/// A type stored as one variant of [`Record`]: live items, and counters as day buckets.
pub(crate) trait StoredAs: Sized {
    /// The stored form.
    fn into_record(self) -> Record;
    /// The value of a stored record; `None` if it holds another kind.
    fn from_record(record: Record) -> Option<Self>;
}

macro_rules! stored_as {
    ($type:ty, $variant:ident) => {
        impl StoredAs for $type {
            fn into_record(self) -> Record {
                Record::$variant(self)
            }
            fn from_record(record: Record) -> Option<Self> {
                match record {
                    Record::$variant(c) => Some(c),
                    _ => None,
                }
            }
        }
    };
}
stored_as!(AgentCounters, AgentCounters);
stored_as!(IntegrationCounters, IntegrationCounters);
stored_as!(HostCounters, HostCounters);
stored_as!(LiveAgent, Agent);
stored_as!(LiveIntegration, Integration);
stored_as!(LiveHost, Host);
stored_as!(SystemRecord, System);

/// The parts of [`LiveRecord`] every entity's [`Live`] item shares: its marks, its day
/// counters, and (`hours`) its hour summaries.
macro_rules! live_item {
    () => {
        fn seen_mut(&mut self) -> &mut Seen {
            &mut self.seen
        }
        fn archive(&mut self, now: Millis) -> Vec<(i64, Record)> {
            archive_window(self, now)
        }
    };
    (hours) => {
        live_item!();
        fn take_hours(&mut self, now: Millis) -> Vec<(i64, HourSummary)> {
            self.window.take_hours(now)
        }
    };
}

fn archive_window<R, C>(live: &mut Live<R, C>, now: Millis) -> Vec<(i64, Record)>
where
    C: crate::domain::live::Counters + StoredAs,
{
    live.window
        .prune(now)
        .into_iter()
        .map(|(d, c)| (d, c.into_record()))
        .collect()
}

#[async_trait::async_trait]
impl LiveRecord for LiveAgent {
    fn entity() -> Option<Entity> {
        Some(Entity::Agent)
    }
    live_item!(hours);
    fn touch(self, touched: &mut Touched) {
        touched.agents.push(self.into());
    }
    fn observe_report(&mut self, at: Millis, silent_after_ms: Millis) {
        self.record.observe_run(at, silent_after_ms);
    }
    fn create(event: &Event, now: Millis) -> Self {
        let id = match &event.kind {
            EventKind::ExecutionStarted { agent_id, .. }
            | EventKind::ExecutionFinished { agent_id, .. } => agent_id.as_str(),
            _ => "",
        };
        Live::new(AgentRecord::new(id, now))
    }
    fn marks_events() -> bool {
        false
    }
    fn failure_of(&self, event: &Event) -> Option<(String, FailureRecord)> {
        let EventKind::ExecutionFinished {
            execution_id,
            outcome: Outcome::Failed,
            duration_ms,
            error,
            ..
        } = &event.kind
        else {
            return None;
        };
        let running = self.record.running.get(execution_id);
        let duration =
            duration_ms.or_else(|| running.map(|r| (event.timestamp - r.started_at).max(0) as f64));
        let failure = FailureRecord::new(
            event.timestamp,
            Some(execution_id),
            running.map(|r| r.operation.as_str()),
            error.as_deref(),
            duration,
        );
        Some((execution_id.clone(), failure))
    }
    async fn apply(
        &mut self,
        marks: &mut Marks<'_>,
        event: &Event,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let ts = event.timestamp;
        Ok(match &event.kind {
            EventKind::ExecutionStarted {
                execution_id,
                operation,
                agent_name,
                ..
            } => {
                // The finish mark of an execution is filed under its start's hour.
                let known = finish_known(marks, &self.seen, &[hour_of(ts)], execution_id).await?;
                self.started(
                    execution_id,
                    operation,
                    agent_name.as_deref(),
                    ts,
                    now,
                    known,
                )
            }
            EventKind::ExecutionFinished {
                execution_id,
                outcome,
                duration_ms,
                confidence,
                tokens,
                ..
            } => {
                let start = self.start_of(execution_id, ts, *duration_ms);
                let hours = [hour_of(start), hour_of(ts)];
                let known = finish_known(marks, &self.seen, &hours, execution_id).await?;
                self.finished(
                    execution_id,
                    *outcome,
                    *duration_ms,
                    *confidence,
                    *tokens,
                    ts,
                    now,
                    known,
                )
            }
            _ => return Err(StoreError::Backend("an agent event of another kind".into())),
        })
    }
}

async fn finish_known(
    marks: &mut Marks<'_>,
    seen: &Seen,
    hours: &[i64],
    execution_id: &str,
) -> Result<FinishKnown, StoreError> {
    Ok(
        if marks
            .contains(seen, hours, finish_mark(execution_id))
            .await?
        {
            FinishKnown::Yes
        } else {
            FinishKnown::No
        },
    )
}

#[async_trait::async_trait]
impl LiveRecord for LiveIntegration {
    /// An integration called every minute files 60 marks an hour: 16 keep its item under
    /// the kilobyte of one write unit (a bucket write every 17 calls, and a bucket read
    /// for each call of the hour after the first; see docs/data-model.md).
    const MAX_MARKS: usize = 16;
    fn entity() -> Option<Entity> {
        Some(Entity::Integration)
    }
    fn probed(&self) -> bool {
        self.record.probe.is_some()
    }
    live_item!(hours);
    fn touch(self, touched: &mut Touched) {
        touched.integrations.push(self.into());
    }
    fn create(event: &Event, now: Millis) -> Self {
        let id = match &event.kind {
            EventKind::IntegrationCall { integration_id, .. } => integration_id.as_str(),
            _ => "",
        };
        Live::new(IntegrationRecord::new(id, now))
    }
    fn failure_of(&self, event: &Event) -> Option<(String, FailureRecord)> {
        let EventKind::IntegrationCall {
            latency_ms,
            ok: false,
            error,
            ..
        } = &event.kind
        else {
            return None;
        };
        let failure = FailureRecord::new(
            event.timestamp,
            None,
            None,
            error.as_deref(),
            Some(*latency_ms),
        );
        Some((event.event_id.clone(), failure))
    }
    async fn apply(
        &mut self,
        _marks: &mut Marks<'_>,
        event: &Event,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let EventKind::IntegrationCall {
            latency_ms,
            ok,
            integration_name,
            ..
        } = &event.kind
        else {
            return Err(StoreError::Backend(
                "an integration event of another kind".into(),
            ));
        };
        self.call(
            *ok,
            *latency_ms,
            integration_name.as_deref(),
            event.timestamp,
            now,
        );
        Ok(true)
    }
}

fn host_sample(event: &Event) -> Option<HostRecord> {
    match &event.kind {
        EventKind::HostSample {
            host_id,
            cpu_usage,
            memory_usage,
            disk_usage,
            load_average,
            uptime_seconds,
        } => Some(HostRecord {
            host_id: host_id.clone(),
            cpu_usage: *cpu_usage,
            memory_usage: *memory_usage,
            disk_usage: *disk_usage,
            load_average: *load_average,
            uptime_seconds: *uptime_seconds,
            last_seen: event.timestamp,
            reporting_since: None,
        }),
        _ => None,
    }
}

#[async_trait::async_trait]
impl LiveRecord for LiveHost {
    fn entity() -> Option<Entity> {
        Some(Entity::Host)
    }
    fn take_hour_records(&mut self, now: Millis) -> Vec<(i64, Record)> {
        self.window
            .take_hour_counters(now)
            .into_iter()
            .map(|(h, c)| (h, Record::HostCounters(c)))
            .collect()
    }
    live_item!();
    fn touch(self, touched: &mut Touched) {
        touched.hosts.push(self.record);
    }
    fn observe_report(&mut self, at: Millis, silent_after_ms: Millis) {
        self.record.observe_run(at, silent_after_ms);
    }
    fn create(event: &Event, _now: Millis) -> Self {
        let mut first = host_sample(event).unwrap_or_else(|| HostRecord {
            host_id: String::new(),
            cpu_usage: 0.0,
            memory_usage: 0.0,
            disk_usage: None,
            load_average: None,
            uptime_seconds: None,
            last_seen: 0,
            reporting_since: None,
        });
        // Older than any sample, so the first sample applied becomes the reading.
        first.last_seen = Millis::MIN;
        Live::new(first)
    }
    async fn apply(
        &mut self,
        _marks: &mut Marks<'_>,
        event: &Event,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let sample = host_sample(event)
            .ok_or_else(|| StoreError::Backend("a host event of another kind".into()))?;
        self.sample(sample, now);
        Ok(true)
    }
}

#[async_trait::async_trait]
impl LiveRecord for SystemRecord {
    fn entity() -> Option<Entity> {
        None
    }
    fn touch(self, touched: &mut Touched) {
        touched.system = Some(self);
    }
    fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }
    fn archive(&mut self, _now: Millis) -> Vec<(i64, Record)> {
        Vec::new()
    }
    fn create(_event: &Event, _now: Millis) -> Self {
        SystemRecord::default()
    }
    async fn apply(
        &mut self,
        _marks: &mut Marks<'_>,
        event: &Event,
        _now: Millis,
    ) -> Result<bool, StoreError> {
        let EventKind::Gauge { name, value } = &event.kind else {
            return Err(StoreError::Backend("a gauge event of another kind".into()));
        };
        let reading = GaugeReading {
            value: *value,
            at: event.timestamp,
        };
        match name {
            Gauge::QueueDepth => SystemRecord::report(&mut self.queue_depth, reading),
            Gauge::ActiveOperations => SystemRecord::report(&mut self.active_operations, reading),
        }
        Ok(true)
    }
}

/// The live record of a stored item (moved, not copied: lists of thousands go through
/// here); an error naming the item if it is of another kind or unreadable.
pub(crate) fn live_of<T: LiveRecord>(item: StoredItem) -> Result<T, StoreError> {
    let StoredItem { key, record, .. } = item;
    if let Record::Unreadable(why) = &record {
        return Err(corrupt(&key, why));
    }
    T::from_record(record).ok_or_else(|| corrupt(&key, "expected a live item of this kind"))
}
