//! Idempotent ingestion: one conditional write of one live item per entity an event touches.
//!
//! A batch is grouped by the live item its events change (the agent's, the integration's,
//! the host's, or the tenant's gauges). Each group reads its item, applies its events in
//! order — each event files its mark in the item, and an event whose mark is already there
//! (or in the entity's mark bucket for that hour) is a duplicate — and writes the item back
//! with one put conditional on the version read. A lost race rereads and replays the
//! group; the mark and the counters travel in the same item, so an event counts exactly
//! once however writers and retries interleave, with no transaction. Groups are
//! independent: if one fails, the others stay stored and the client's retry counts them as
//! duplicates. See docs/data-model.md for the costs.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;

use super::layout::{self, Entity, MarksOf};
use super::{
    retry_on_conflict, retry_on_conflict_up_to, Condition, ItemKey, MarkBucket, Record, Store,
    StoreError, StoredItem, Write, MAX_INGEST_ATTEMPTS,
};
use crate::domain::events::{Event, EventKind, Gauge, Outcome};
use crate::domain::failures::{FailureRecord, FAILURE_TTL_MS};
use crate::domain::latency::HourSummary;
use crate::domain::live::{
    finish_mark, hour_of, mark, FinishKnown, Live, LiveAgent, LiveHost, LiveIntegration, Seen,
};
use crate::domain::records::{
    AgentCounters, AgentRecord, GaugeReading, HostCounters, HostRecord, IntegrationCounters,
    IntegrationRecord, SystemRecord,
};
use crate::time::Millis;

use super::tenant::Touched;
// Where every repository has taken them from.
pub(crate) use super::{corrupt, unexpected};

/// Groups of one batch written at the same time.
const CONCURRENT_GROUPS: usize = 16;

/// What an ingestion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    /// Events stored now.
    pub accepted: usize,
    /// Events whose id was already stored; they changed nothing.
    pub duplicates: usize,
}

/// What one group's ingestion did, and its item as written (if it was).
type GroupResult = Result<(IngestOutcome, Touched), StoreError>;

/// The live item an event changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Target<'a> {
    Entity(Entity, &'a str),
    System,
}

impl<'a> Target<'a> {
    fn of(event: &'a Event) -> Self {
        match &event.kind {
            EventKind::ExecutionStarted { agent_id, .. }
            | EventKind::ExecutionFinished { agent_id, .. } => {
                Self::Entity(Entity::Agent, agent_id)
            }
            EventKind::IntegrationCall { integration_id, .. } => {
                Self::Entity(Entity::Integration, integration_id)
            }
            EventKind::HostSample { host_id, .. } => Self::Entity(Entity::Host, host_id),
            EventKind::Gauge { .. } => Self::System,
        }
    }

    fn key(self, tenant: &str) -> ItemKey {
        match self {
            Self::Entity(entity, id) => layout::live(tenant, entity, id),
            Self::System => layout::system(tenant),
        }
    }

    fn marks_of(self) -> MarksOf<'a> {
        match self {
            Self::Entity(entity, id) => MarksOf::Entity(entity, id),
            Self::System => MarksOf::System,
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

impl Marks<'_> {
    /// Whether `m` is marked: in the item, or in the bucket of one of `hours` that the
    /// item says may hold marks.
    async fn contains(&mut self, seen: &Seen, hours: &[i64], m: u64) -> Result<bool, StoreError> {
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
pub(crate) trait LiveRecord: Sized + Send + Clone {
    /// The record from a stored item; `None` if the item is of another kind.
    fn from_record(record: Record) -> Option<Self>;
    /// The stored form.
    fn into_record(self) -> Record;
    /// Its event marks.
    fn seen_mut(&mut self) -> &mut Seen;
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

/// How each kind of counters is stored as a day bucket.
pub(crate) trait DayRecord: Sized {
    /// The day bucket's record.
    fn into_record(self) -> Record;
    /// The counters of a day bucket; `None` if it holds another kind.
    fn from_record(record: Record) -> Option<Self>;
}

macro_rules! day_record {
    ($counters:ty, $variant:ident) => {
        impl DayRecord for $counters {
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
day_record!(AgentCounters, AgentCounters);
day_record!(IntegrationCounters, IntegrationCounters);
day_record!(HostCounters, HostCounters);

fn archive_window<R, C>(live: &mut Live<R, C>, now: Millis) -> Vec<(i64, Record)>
where
    C: crate::domain::live::Counters + DayRecord,
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
    fn take_hours(&mut self, now: Millis) -> Vec<(i64, HourSummary)> {
        self.window.take_hours(now)
    }
    fn touch(self, touched: &mut Touched) {
        touched.agents.push(self.into());
    }
    fn from_record(record: Record) -> Option<Self> {
        match record {
            Record::Agent(a) => Some(a),
            _ => None,
        }
    }
    fn into_record(self) -> Record {
        Record::Agent(self)
    }
    fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }
    fn archive(&mut self, now: Millis) -> Vec<(i64, Record)> {
        archive_window(self, now)
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
    fn entity() -> Option<Entity> {
        Some(Entity::Integration)
    }
    fn probed(&self) -> bool {
        self.record.probe.is_some()
    }
    fn take_hours(&mut self, now: Millis) -> Vec<(i64, HourSummary)> {
        self.window.take_hours(now)
    }
    fn touch(self, touched: &mut Touched) {
        touched.integrations.push(self.into());
    }
    fn from_record(record: Record) -> Option<Self> {
        match record {
            Record::Integration(i) => Some(i),
            _ => None,
        }
    }
    fn into_record(self) -> Record {
        Record::Integration(self)
    }
    fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }
    fn archive(&mut self, now: Millis) -> Vec<(i64, Record)> {
        archive_window(self, now)
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
    fn touch(self, touched: &mut Touched) {
        touched.hosts.push(self.record);
    }
    fn from_record(record: Record) -> Option<Self> {
        match record {
            Record::Host(h) => Some(h),
            _ => None,
        }
    }
    fn into_record(self) -> Record {
        Record::Host(self)
    }
    fn seen_mut(&mut self) -> &mut Seen {
        &mut self.seen
    }
    fn archive(&mut self, now: Millis) -> Vec<(i64, Record)> {
        archive_window(self, now)
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
    fn from_record(record: Record) -> Option<Self> {
        match record {
            Record::System(s) => Some(s),
            _ => None,
        }
    }
    fn into_record(self) -> Record {
        Record::System(self)
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

impl Store {
    /// Stores a validated batch for `tenant`. On error, the events of other entities may be
    /// stored; retrying the batch is always safe.
    pub async fn ingest(
        &self,
        tenant: &str,
        events: &[Event],
        now: Millis,
    ) -> Result<IngestOutcome, StoreError> {
        Ok(self.ingest_batch(tenant, events, now, false).await?.0)
    }

    /// [`Store::ingest`], also returning the sources whose state changed, as written.
    pub async fn ingest_touching(
        &self,
        tenant: &str,
        events: &[Event],
        now: Millis,
    ) -> Result<(IngestOutcome, Touched), StoreError> {
        self.ingest_batch(tenant, events, now, true).await
    }

    /// Ingests a batch; with `keep`, also returns the sources as written (a copy of each
    /// item, so only when an evaluator wants them).
    #[tracing::instrument(skip(self, events), fields(events = events.len()))]
    async fn ingest_batch(
        &self,
        tenant: &str,
        events: &[Event],
        now: Millis,
        keep: bool,
    ) -> Result<(IngestOutcome, Touched), StoreError> {
        let mut order: Vec<Target<'_>> = Vec::new();
        let mut groups: HashMap<Target<'_>, Vec<&Event>> = HashMap::new();
        for event in events {
            let target = Target::of(event);
            groups
                .entry(target)
                .or_insert_with(|| {
                    order.push(target);
                    Vec::new()
                })
                .push(event);
        }
        let mut runs = Vec::with_capacity(order.len());
        for target in order {
            let group = groups.remove(&target).unwrap_or_default();
            // Boxed as Send here, where the lifetimes are concrete: a stream of unboxed
            // async blocks trips the compiler's higher-ranked Send check in the handlers.
            let run: futures::future::BoxFuture<'_, GroupResult> = Box::pin(async move {
                match target {
                    Target::Entity(Entity::Agent, _) => {
                        self.ingest_group::<LiveAgent>(tenant, target, &group, now, keep)
                            .await
                    }
                    Target::Entity(Entity::Integration, _) => {
                        self.ingest_group::<LiveIntegration>(tenant, target, &group, now, keep)
                            .await
                    }
                    Target::Entity(Entity::Host, _) => {
                        self.ingest_group::<LiveHost>(tenant, target, &group, now, keep)
                            .await
                    }
                    Target::System => {
                        self.ingest_group::<SystemRecord>(tenant, target, &group, now, keep)
                            .await
                    }
                }
            });
            runs.push(run);
        }
        let mut runs = futures::stream::iter(runs).buffer_unordered(CONCURRENT_GROUPS);
        let mut total = IngestOutcome::default();
        let mut touched = Touched::default();
        let mut failed = None;
        while let Some(result) = runs.next().await {
            match result {
                Ok((o, t)) => {
                    total.accepted += o.accepted;
                    total.duplicates += o.duplicates;
                    touched.merge(t);
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        match failed {
            Some(e) => Err(e),
            None => Ok((total, touched)),
        }
    }

    /// Applies one entity's events to its live item with one conditional write.
    async fn ingest_group<T: LiveRecord>(
        &self,
        tenant: &str,
        target: Target<'_>,
        events: &[&Event],
        now: Millis,
        keep: bool,
    ) -> GroupResult {
        let key = target.key(tenant);
        let first = events
            .first()
            .ok_or_else(|| StoreError::Backend("an empty group".into()))?;
        let attempt = std::sync::atomic::AtomicUsize::new(0);
        retry_on_conflict_up_to(MAX_INGEST_ATTEMPTS, || async {
            let _turn = self.writer_turn().await;
            // The first read may be stale (half the price): the put's condition on the
            // version catches it, and every retry reads strongly.
            let retry = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            let (value, read_version) = self.read_live_with::<T>(&key, retry).await?;
            let mut value = value.unwrap_or_else(|| T::create(first, now));
            let settled = self
                .settle(tenant, target.marks_of(), &mut value, now)
                .await?;
            let mut marks = Marks {
                store: self,
                tenant,
                of: target.marks_of(),
                read: HashMap::new(),
            };
            let mut outcome = IngestOutcome::default();
            let mut failures = Vec::new();
            for event in events {
                if T::marks_events() {
                    let m = mark(&event.event_id);
                    let hour = hour_of(event.timestamp);
                    if marks.contains(value.seen_mut(), &[hour], m).await? {
                        outcome.duplicates += 1;
                        continue;
                    }
                    value.seen_mut().insert(hour, m);
                }
                let failure = value.failure_of(event);
                if value.apply(&mut marks, event, now).await? {
                    outcome.accepted += 1;
                    failures.extend(failure);
                } else {
                    outcome.duplicates += 1;
                }
            }
            // Before the item that counts them: a crash in between leaves failures whose
            // events are retried, and the retry rewrites the same items.
            if let Target::Entity(entity, id) = target {
                self.put_failures(tenant, entity, id, &failures).await?;
            }
            let mut touched = Touched::default();
            if outcome.accepted > 0 {
                if keep {
                    value.clone().touch(&mut touched);
                }
                let probed = value.probed();
                self.put_live(tenant, &key, value, read_version, probed)
                    .await?;
            } else if settled && read_version.is_some() {
                // Only duplicates, but hours or days moved to their buckets: the item must
                // say so, or readers would count those hours twice (bucket and item) until
                // its next event.
                let probed = value.probed();
                self.put_live(tenant, &key, value, read_version, probed)
                    .await?;
            }
            Ok((outcome, touched))
        })
        .await
    }

    /// Stores failures of one entity, each its own item (1 write unit; a transaction would
    /// cost twice), keyed by time and id so a rewrite is harmless.
    pub(crate) async fn put_failures(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        failures: &[(String, FailureRecord)],
    ) -> Result<(), StoreError> {
        let writes = failures.iter().map(|(what, failure)| {
            self.backend.write(vec![Write {
                item: StoredItem {
                    key: layout::failure(tenant, entity, id, failure.at, what),
                    record: Record::Failure(failure.clone()),
                    version: 1,
                    expires_at: layout::expiry(failure.at, FAILURE_TTL_MS),
                    index: None,
                },
                condition: Condition::None,
            }])
        });
        futures::future::try_join_all(writes).await.map(|_| ())
    }

    /// Reads a live item and its version; `None` if absent.
    pub(crate) async fn read_live<T: LiveRecord>(
        &self,
        key: &ItemKey,
    ) -> Result<(Option<T>, Option<u64>), StoreError> {
        self.read_live_with(key, true).await
    }

    /// [`Store::read_live`], eventually consistent unless `consistent`.
    async fn read_live_with<T: LiveRecord>(
        &self,
        key: &ItemKey,
        consistent: bool,
    ) -> Result<(Option<T>, Option<u64>), StoreError> {
        match self.get_one_with(key, consistent).await? {
            Some(item) => {
                let version = item.version;
                Ok((Some(live_of(item)?), Some(version)))
            }
            None => Ok((None, None)),
        }
    }

    /// Moves out of a live item what time has taken from it: the summaries of hours that
    /// are over to hour buckets, final days to day buckets and older marks to mark buckets.
    /// All are idempotent (an hour's summary and a final day are the same whoever writes
    /// them, an event arriving after its hour moved counting in minutes and days only; marks
    /// are added as a union), so they happen before the item's own conditional write and a
    /// lost race simply repeats them. `true` if anything moved (the item changed).
    pub(crate) async fn settle<T: LiveRecord>(
        &self,
        tenant: &str,
        of: MarksOf<'_>,
        value: &mut T,
        now: Millis,
    ) -> Result<bool, StoreError> {
        // Before the archive prunes the minutes that hold them.
        let mut hours: Vec<(i64, Record)> = value
            .take_hours(now)
            .into_iter()
            .map(|(h, s)| (h, Record::Hour(s)))
            .collect();
        hours.extend(value.take_hour_records(now));
        let mut moved = !hours.is_empty();
        if let MarksOf::Entity(entity, id) = of {
            for (hour, record) in hours {
                let write = Write {
                    item: StoredItem {
                        key: layout::hour(tenant, entity, id, hour),
                        record,
                        version: 1,
                        expires_at: layout::expiry(
                            crate::domain::live::hour_end(hour),
                            layout::HOUR_BUCKET_TTL_MS,
                        ),
                        index: None,
                    },
                    condition: Condition::None,
                };
                self.backend.write(vec![write]).await?;
            }
        }
        let days = value.archive(now);
        moved |= !days.is_empty();
        if let (MarksOf::Entity(entity, id), false) = (of, days.is_empty()) {
            let writes = days
                .into_iter()
                .map(|(day, record)| Write {
                    item: StoredItem {
                        key: layout::day(tenant, entity, id, day),
                        record,
                        version: 1,
                        expires_at: layout::expiry(layout::day_end(day), layout::DAY_BUCKET_TTL_MS),
                        index: None,
                    },
                    condition: Condition::None,
                })
                .collect::<Vec<_>>();
            for write in writes {
                self.backend.write(vec![write]).await?;
            }
        }
        for (hour, marks) in value.seen_mut().take_spill(now) {
            moved = true;
            self.add_marks(layout::marks(tenant, of, hour), hour, &marks)
                .await?;
        }
        Ok(moved)
    }

    /// Adds marks to an hour's mark bucket.
    async fn add_marks(&self, key: ItemKey, hour: i64, add: &[u64]) -> Result<(), StoreError> {
        retry_on_conflict(|| async {
            let (mut bucket, condition, version) = match self.get_one(&key).await? {
                Some(StoredItem {
                    record: Record::Marks(b),
                    version,
                    ..
                }) => (b, Condition::Version(version), version),
                Some(item) => return Err(unexpected(&item, "expected event marks")),
                None => (MarkBucket::default(), Condition::NotExists, 0),
            };
            let before = bucket.marks.len();
            for m in add {
                if !bucket.marks.contains(m) {
                    bucket.marks.push(*m);
                }
            }
            if bucket.marks.len() == before && condition != Condition::NotExists {
                return Ok(());
            }
            let write = Write {
                item: StoredItem {
                    key: key.clone(),
                    record: Record::Marks(bucket),
                    version: version + 1,
                    expires_at: layout::expiry(
                        crate::domain::live::hour_end(hour),
                        layout::EVENT_MARK_TTL_MS,
                    ),
                    index: None,
                },
                condition,
            };
            self.backend.write(vec![write]).await
        })
        .await
    }

    /// Writes a live item back, conditional on the version read (`None`: must not exist).
    /// A new entity, or an integration that gains a probe (`was_probed` false, the value
    /// probed), is counted against the tenant's quotas in the same write
    /// ([`Store::write_counted`]).
    pub(crate) async fn put_live<T: LiveRecord>(
        &self,
        tenant: &str,
        key: &ItemKey,
        value: T,
        read_version: Option<u64>,
        was_probed: bool,
    ) -> Result<(), StoreError> {
        let (condition, version) = match read_version {
            Some(v) => (Condition::Version(v), v + 1),
            None => (Condition::NotExists, 1),
        };
        let growth = super::quota::Growth {
            entity: T::entity().filter(|_| read_version.is_none()),
            probe: value.probed() && !was_probed,
        };
        let write = Write {
            item: StoredItem {
                key: key.clone(),
                record: value.into_record(),
                version,
                expires_at: None,
                index: None,
            },
            condition,
        };
        self.write_counted(tenant, growth, write).await
    }

    /// Reads a live item, settles it, lets `change` modify it and writes it back, again
    /// on a lost race. `change` gets `None` for a missing item and returns the item to
    /// write, or `None` to write nothing; its other result is returned.
    pub(crate) async fn update_live<T: LiveRecord + Clone, O>(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        now: Millis,
        change: impl Fn(Option<T>) -> Result<(Option<T>, O), StoreError>,
    ) -> Result<O, StoreError> {
        let key = layout::live(tenant, entity, id);
        let attempt = std::sync::atomic::AtomicUsize::new(0);
        retry_on_conflict(|| async {
            // As in ingestion: a stale first read fails the version condition of the write,
            // and the retry reads strongly.
            let retry = attempt.fetch_add(1, std::sync::atomic::Ordering::Relaxed) > 0;
            let (value, read_version) = self.read_live_with::<T>(&key, retry).await?;
            let mut settled = false;
            let value = match value {
                Some(mut v) => {
                    settled = self
                        .settle(tenant, MarksOf::Entity(entity, id), &mut v, now)
                        .await?;
                    Some(v)
                }
                None => None,
            };
            // Written even when `change` keeps it as it was, if settling moved hours or
            // days out of it (as in ingestion).
            let settled_value = if settled { value.clone() } else { None };
            let was_probed = value.as_ref().is_some_and(LiveRecord::probed);
            let (new, out) = change(value)?;
            if let Some(new) = new.or(settled_value) {
                self.put_live(tenant, &key, new, read_version, was_probed)
                    .await?;
            }
            Ok(out)
        })
        .await
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
