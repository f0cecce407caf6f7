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

use std::collections::HashMap;

use futures::StreamExt;

use super::layout::{self, Entity, MarksOf};
use super::live::{live_of, LiveRecord, Marks, Touched};
use super::{
    retry_on_conflict, retry_on_conflict_up_to, Condition, ItemKey, MarkBucket, Record, Store,
    StoreError, StoredItem, Write, MAX_INGEST_ATTEMPTS,
};
use crate::domain::events::{Event, EventKind};
use crate::domain::failures::{FailureRecord, FAILURE_TTL_MS};
use crate::domain::live::{hour_of, mark, LiveAgent, LiveHost, LiveIntegration};
use crate::domain::records::SystemRecord;
use crate::time::Millis;

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
        let runs: Vec<_> = by_target(events)
            .into_iter()
            .map(|(target, group)| self.ingest_target(tenant, target, group, now, keep))
            .collect();
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

    /// [`Store::ingest_group`] for the target's kind of item. Boxed as Send here, where the
    /// lifetimes are concrete: a stream of unboxed async blocks trips the compiler's
    /// higher-ranked Send check in the handlers.
    fn ingest_target<'s>(
        &'s self,
        tenant: &'s str,
        target: Target<'s>,
        group: Vec<&'s Event>,
        now: Millis,
        keep: bool,
    ) -> futures::future::BoxFuture<'s, GroupResult> {
        Box::pin(async move {
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
        })
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
            let mut marks = Marks::new(self, tenant, target.marks_of());
            let (outcome, failures) =
                apply_events(&mut marks, &mut value, events, self.silent_after_ms, now).await?;
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
        for (hour, marks) in value.seen_mut().take_spill_over(now, T::MAX_MARKS) {
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

/// Applies events to an entity's live item: those whose mark is held, or that change no
/// count, are duplicates. Returns the outcome and the failures of the accepted events.
async fn apply_events<T: LiveRecord>(
    marks: &mut Marks<'_>,
    value: &mut T,
    events: &[&Event],
    silent_after_ms: Millis,
    now: Millis,
) -> Result<(IngestOutcome, Vec<(String, FailureRecord)>), StoreError> {
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
        value.observe_report(event.timestamp, silent_after_ms);
        if value.apply(marks, event, now).await? {
            outcome.accepted += 1;
            failures.extend(failure);
        } else {
            outcome.duplicates += 1;
        }
    }
    Ok((outcome, failures))
}

/// The events by the item they apply to, in the order each item first appears.
fn by_target(events: &[Event]) -> Vec<(Target<'_>, Vec<&Event>)> {
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
    order
        .into_iter()
        .map(|target| (target, groups.remove(&target).unwrap_or_default()))
        .collect()
}
