//! Idempotent batch ingestion.
//!
//! Events are applied in order to an in-memory snapshot of the items they touch (the event
//! mark, the entity record, the execution record, the minute and day buckets), then the
//! changed items are written in one atomic, conditional write: event marks must not exist,
//! every other item must still have the version that was read. A lost race rereads and
//! replays the chunk, and an event whose mark exists counts as a duplicate, so concurrent
//! writers and retried batches never count an event twice or lose one. A batch larger than
//! one transaction (DynamoDB: 100 items) is written in chunks; a crash between chunks leaves
//! the earlier chunks stored, and the client's retry counts them as duplicates.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::layout::{self, Entity};
use super::{
    retry_on_conflict_up_to, Condition, EventMark, ItemKey, Record, Store, StoreError, StoredItem,
    Write, MAX_INGEST_ATTEMPTS,
};
use crate::domain::events::{Event, EventKind, Gauge};
use crate::domain::records::{
    AgentCounters, AgentRecord, ExecutionRecord, GaugeReading, HostCounters, HostRecord,
    IntegrationCounters, IntegrationRecord, SystemRecord,
};
use crate::time::{day_of, minute_of, Millis};

/// Most items one event can change; a chunk is cut before it could exceed the backend's
/// transaction limit.
const MAX_ITEMS_PER_EVENT: usize = 5;

/// What an ingestion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct IngestOutcome {
    /// Events stored now.
    pub accepted: usize,
    /// Events whose id was already stored; they changed nothing.
    pub duplicates: usize,
}

impl Store {
    /// Stores a validated batch for `tenant`. On error, the events of earlier chunks may be
    /// stored; retrying the batch is always safe.
    #[tracing::instrument(skip(self, events), fields(events = events.len()))]
    pub async fn ingest(
        &self,
        tenant: &str,
        events: &[Event],
        now: Millis,
    ) -> Result<IngestOutcome, StoreError> {
        let per_chunk = (self.backend.max_writes() / MAX_ITEMS_PER_EVENT).max(1);
        let mut total = IngestOutcome::default();
        for chunk in events.chunks(per_chunk) {
            let outcome = retry_on_conflict_up_to(MAX_INGEST_ATTEMPTS, || async {
                let _turn = self.writer_turn().await;
                let mut snapshot = Snapshot::default();
                // Two reads cover a chunk: the records its events need, then the buckets
                // they will touch (which for a finish depend on its execution's start).
                // `apply` still loads anything not predicted, such as the bucket of an
                // execution that starts and finishes within the chunk.
                let records: Vec<ItemKey> =
                    chunk.iter().flat_map(|e| record_keys(tenant, e)).collect();
                snapshot.load(self, &records).await?;
                let buckets: Vec<ItemKey> = chunk
                    .iter()
                    .flat_map(|e| predicted_buckets(tenant, e, &snapshot))
                    .collect();
                snapshot.load(self, &buckets).await?;
                let mut outcome = IngestOutcome::default();
                for event in chunk {
                    if self.apply(&mut snapshot, tenant, event, now).await? {
                        outcome.accepted += 1;
                    } else {
                        outcome.duplicates += 1;
                    }
                }
                self.backend.write(snapshot.into_writes()).await?;
                Ok(outcome)
            })
            .await?;
            total.accepted += outcome.accepted;
            total.duplicates += outcome.duplicates;
        }
        Ok(total)
    }

    /// Applies one event to the snapshot; `false` if it is a duplicate.
    async fn apply(
        &self,
        snap: &mut Snapshot,
        tenant: &str,
        event: &Event,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let ts = event.timestamp;
        let wanted = record_keys(tenant, event);
        let mut keys = wanted.iter().cloned();
        let (Some(mark), Some(entity_key)) = (keys.next(), keys.next()) else {
            return Err(StoreError::Backend("an event without record keys".into()));
        };
        let exec_key = keys.next();
        snap.load(self, &wanted).await?;
        if snap.get(&mark).is_some() {
            return Ok(false);
        }
        snap.put(
            mark,
            Record::Event(EventMark { stored_at: now }),
            layout::expiry(ts.max(now), layout::EVENT_MARK_TTL_MS),
            None,
        );

        match &event.kind {
            EventKind::ExecutionStarted {
                agent_id,
                execution_id,
                operation,
                agent_name,
            } => {
                let mut agent = snap.agent(&entity_key, agent_id, now)?;
                agent.observe(ts);
                if let Some(name) = agent_name {
                    agent.agent_name.clone_from(name);
                }
                let exec_key =
                    exec_key.unwrap_or_else(|| layout::execution(tenant, agent_id, execution_id));
                // A start after its finish, or a second start, changes no counters.
                if snap.get(&exec_key).is_none() {
                    agent.start(execution_id, operation, ts);
                    snap.put(
                        exec_key,
                        Record::Execution(ExecutionRecord {
                            started_at: ts,
                            finished_at: None,
                        }),
                        layout::expiry(ts.max(now), layout::EXECUTION_TTL_MS),
                        None,
                    );
                    self.bump_agent(snap, tenant, agent_id, ts, |c| {
                        c.started = c.started.saturating_add(1)
                    })
                    .await?;
                }
                snap.put_entity(
                    tenant,
                    Entity::Agent,
                    agent_id,
                    entity_key,
                    Record::Agent(agent),
                );
            }
            EventKind::ExecutionFinished {
                agent_id,
                execution_id,
                outcome,
                duration_ms,
                confidence,
                ..
            } => {
                let mut agent = snap.agent(&entity_key, agent_id, now)?;
                agent.observe(ts);
                if let Some(c) = confidence {
                    agent.report_confidence(*c, ts);
                }
                let exec_key =
                    exec_key.unwrap_or_else(|| layout::execution(tenant, agent_id, execution_id));
                let known = match snap.get(&exec_key) {
                    Some(Record::Execution(e)) => Some(e.clone()),
                    Some(_) => return Err(corrupt(&exec_key, "expected an execution")),
                    None => None,
                };
                match known {
                    // Already finished: a second finish for one execution changes nothing.
                    Some(ExecutionRecord {
                        finished_at: Some(_),
                        ..
                    }) => {}
                    // A known start, or (the finish came first) none: then the execution
                    // is counted from its finish, as started `duration_ms` before it.
                    known => {
                        let (started_at, new_execution, duration) = match known {
                            Some(e) => (
                                e.started_at,
                                false,
                                Some(duration_ms.unwrap_or((ts - e.started_at).max(0) as f64)),
                            ),
                            None => (
                                ts - duration_ms.map_or(0, |d| d as Millis),
                                true,
                                *duration_ms,
                            ),
                        };
                        agent.finish(execution_id, *outcome, ts);
                        snap.put(
                            exec_key,
                            Record::Execution(ExecutionRecord {
                                started_at,
                                finished_at: Some(ts),
                            }),
                            layout::expiry(ts.max(now), layout::EXECUTION_TTL_MS),
                            None,
                        );
                        self.bump_agent(snap, tenant, agent_id, started_at, |c| {
                            if new_execution {
                                c.started = c.started.saturating_add(1);
                            }
                            c.add_finish(*outcome, duration);
                        })
                        .await?;
                    }
                }
                snap.put_entity(
                    tenant,
                    Entity::Agent,
                    agent_id,
                    entity_key,
                    Record::Agent(agent),
                );
            }
            EventKind::IntegrationCall {
                integration_id,
                latency_ms,
                ok,
                integration_name,
                ..
            } => {
                let mut integration = match snap.get(&entity_key) {
                    Some(Record::Integration(i)) => i.clone(),
                    Some(_) => return Err(corrupt(&entity_key, "expected an integration")),
                    None => IntegrationRecord::new(integration_id, now),
                };
                if let Some(name) = integration_name {
                    integration.integration_name.clone_from(name);
                }
                integration.record_result(*ok, ts);
                snap.put_entity(
                    tenant,
                    Entity::Integration,
                    integration_id,
                    entity_key,
                    Record::Integration(integration),
                );
                let (ok, latency) = (*ok, *latency_ms);
                self.bump_integration(snap, tenant, integration_id, ts, |c| c.add(ok, latency))
                    .await?;
            }
            EventKind::HostSample {
                host_id,
                cpu_usage,
                memory_usage,
                disk_usage,
                load_average,
                uptime_seconds,
            } => {
                let newer = match snap.get(&entity_key) {
                    Some(Record::Host(h)) => ts >= h.last_seen,
                    Some(_) => return Err(corrupt(&entity_key, "expected a host")),
                    None => true,
                };
                if newer {
                    let host = HostRecord {
                        host_id: host_id.clone(),
                        cpu_usage: *cpu_usage,
                        memory_usage: *memory_usage,
                        disk_usage: *disk_usage,
                        load_average: *load_average,
                        uptime_seconds: *uptime_seconds,
                        last_seen: ts,
                    };
                    snap.put_entity(
                        tenant,
                        Entity::Host,
                        host_id,
                        entity_key,
                        Record::Host(host),
                    );
                }
                let (cpu, mem) = (*cpu_usage, *memory_usage);
                for key in [
                    layout::minute(tenant, Entity::Host, host_id, minute_of(ts)),
                    layout::day(tenant, Entity::Host, host_id, day_of(ts)),
                ] {
                    snap.load(self, std::slice::from_ref(&key)).await?;
                    let mut c = match snap.get(&key) {
                        Some(Record::HostCounters(c)) => c.clone(),
                        Some(_) => return Err(corrupt(&key, "expected host counters")),
                        None => HostCounters::default(),
                    };
                    c.add(cpu, mem);
                    let ttl = bucket_expiry(&key);
                    snap.put(key, Record::HostCounters(c), ttl, None);
                }
            }
            EventKind::Gauge { name, value } => {
                let mut system = match snap.get(&entity_key) {
                    Some(Record::System(s)) => s.clone(),
                    Some(_) => return Err(corrupt(&entity_key, "expected the system record")),
                    None => SystemRecord::default(),
                };
                let reading = GaugeReading {
                    value: *value,
                    at: ts,
                };
                match name {
                    Gauge::QueueDepth => SystemRecord::report(&mut system.queue_depth, reading),
                    Gauge::ActiveOperations => {
                        SystemRecord::report(&mut system.active_operations, reading)
                    }
                }
                snap.put(entity_key, Record::System(system), None, None);
            }
        }
        Ok(true)
    }

    async fn bump_agent(
        &self,
        snap: &mut Snapshot,
        tenant: &str,
        agent_id: &str,
        at: Millis,
        change: impl Fn(&mut AgentCounters),
    ) -> Result<(), StoreError> {
        let keys = [
            layout::minute(tenant, Entity::Agent, agent_id, minute_of(at)),
            layout::day(tenant, Entity::Agent, agent_id, day_of(at)),
        ];
        snap.load(self, &keys).await?;
        for key in keys {
            let mut c = match snap.get(&key) {
                Some(Record::AgentCounters(c)) => c.clone(),
                Some(_) => return Err(corrupt(&key, "expected agent counters")),
                None => AgentCounters::default(),
            };
            change(&mut c);
            let ttl = bucket_expiry(&key);
            snap.put(key, Record::AgentCounters(c), ttl, None);
        }
        Ok(())
    }

    async fn bump_integration(
        &self,
        snap: &mut Snapshot,
        tenant: &str,
        integration_id: &str,
        at: Millis,
        change: impl Fn(&mut IntegrationCounters),
    ) -> Result<(), StoreError> {
        let keys = [
            layout::minute(tenant, Entity::Integration, integration_id, minute_of(at)),
            layout::day(tenant, Entity::Integration, integration_id, day_of(at)),
        ];
        snap.load(self, &keys).await?;
        for key in keys {
            let mut c = match snap.get(&key) {
                Some(Record::IntegrationCounters(c)) => c.clone(),
                Some(_) => return Err(corrupt(&key, "expected integration counters")),
                None => IntegrationCounters::default(),
            };
            change(&mut c);
            let ttl = bucket_expiry(&key);
            snap.put(key, Record::IntegrationCounters(c), ttl, None);
        }
        Ok(())
    }
}

/// The event mark, entity record and (for executions) execution record of an event, in
/// that order.
fn record_keys(tenant: &str, event: &Event) -> Vec<ItemKey> {
    let mut keys = vec![layout::event(tenant, &event.event_id)];
    match &event.kind {
        EventKind::ExecutionStarted {
            agent_id,
            execution_id,
            ..
        }
        | EventKind::ExecutionFinished {
            agent_id,
            execution_id,
            ..
        } => {
            keys.push(layout::record(tenant, Entity::Agent, agent_id));
            keys.push(layout::execution(tenant, agent_id, execution_id));
        }
        EventKind::IntegrationCall { integration_id, .. } => {
            keys.push(layout::record(tenant, Entity::Integration, integration_id));
        }
        EventKind::HostSample { host_id, .. } => {
            keys.push(layout::record(tenant, Entity::Host, host_id))
        }
        EventKind::Gauge { .. } => keys.push(layout::system(tenant)),
    }
    keys
}

/// The buckets an event will most likely update, given the records already read.
fn predicted_buckets(tenant: &str, event: &Event, snap: &Snapshot) -> Vec<ItemKey> {
    let ts = event.timestamp;
    let (entity, id, at) = match &event.kind {
        EventKind::ExecutionStarted { agent_id, .. } => (Entity::Agent, agent_id, ts),
        EventKind::ExecutionFinished {
            agent_id,
            execution_id,
            duration_ms,
            ..
        } => {
            let at = match snap.get(&layout::execution(tenant, agent_id, execution_id)) {
                Some(Record::Execution(e)) => e.started_at,
                _ => ts - duration_ms.map_or(0, |d| d as Millis),
            };
            (Entity::Agent, agent_id, at)
        }
        EventKind::IntegrationCall { integration_id, .. } => {
            (Entity::Integration, integration_id, ts)
        }
        EventKind::HostSample { host_id, .. } => (Entity::Host, host_id, ts),
        EventKind::Gauge { .. } => return Vec::new(),
    };
    vec![
        layout::minute(tenant, entity, id, minute_of(at)),
        layout::day(tenant, entity, id, day_of(at)),
    ]
}

/// The TTL of a bucket item, from its sort key.
pub(crate) fn bucket_expiry(key: &ItemKey) -> Option<i64> {
    let index = layout::bucket_index(&key.sk)?;
    if key.sk.starts_with("M#") {
        layout::expiry(layout::minute_end(index), layout::MINUTE_BUCKET_TTL_MS)
    } else {
        layout::expiry(layout::day_end(index), layout::DAY_BUCKET_TTL_MS)
    }
}

/// The error for an item that is not what its key promises. An item the backend could not
/// parse ([`Record::Unreadable`]) reports its own reason instead of `reason`.
pub(crate) fn unexpected(item: &StoredItem, reason: &str) -> StoreError {
    match &item.record {
        Record::Unreadable(why) => corrupt(&item.key, why),
        _ => corrupt(&item.key, reason),
    }
}

pub(crate) fn corrupt(key: &ItemKey, reason: &str) -> StoreError {
    StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    }
}

/// The items a chunk has read, with the versions read, and what it changed.
#[derive(Default)]
struct Snapshot {
    slots: HashMap<ItemKey, Slot>,
    order: Vec<ItemKey>,
}

struct Slot {
    read_version: Option<u64>,
    item: Option<StoredItem>,
    dirty: bool,
}

impl Snapshot {
    /// Reads the keys not yet in the snapshot, in one backend call.
    async fn load(&mut self, store: &Store, keys: &[ItemKey]) -> Result<(), StoreError> {
        let mut seen = std::collections::HashSet::new();
        let missing: Vec<ItemKey> = keys
            .iter()
            .filter(|k| !self.slots.contains_key(*k) && seen.insert(*k))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let items = store.backend.get(&missing).await?;
        for (key, item) in missing.into_iter().zip(items) {
            self.order.push(key.clone());
            self.slots.insert(
                key,
                Slot {
                    read_version: item.as_ref().map(|i| i.version),
                    item,
                    dirty: false,
                },
            );
        }
        Ok(())
    }

    fn get(&self, key: &ItemKey) -> Option<&Record> {
        self.slots.get(key)?.item.as_ref().map(|i| &i.record)
    }

    fn agent(&self, key: &ItemKey, agent_id: &str, now: Millis) -> Result<AgentRecord, StoreError> {
        match self.get(key) {
            Some(Record::Agent(a)) => Ok(a.clone()),
            Some(_) => Err(corrupt(key, "expected an agent")),
            None => Ok(AgentRecord::new(agent_id, now)),
        }
    }

    fn put_entity(&mut self, tenant: &str, entity: Entity, id: &str, key: ItemKey, record: Record) {
        let index = Some(layout::index(tenant, entity, id));
        self.put(key, record, None, index);
    }

    fn put(
        &mut self,
        key: ItemKey,
        record: Record,
        expires_at: Option<i64>,
        index: Option<super::IndexKey>,
    ) {
        let slot = match self.slots.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                self.order.push(key.clone());
                e.insert(Slot {
                    read_version: None,
                    item: None,
                    dirty: false,
                })
            }
        };
        let version = slot.read_version.unwrap_or(0) + 1;
        slot.item = Some(StoredItem {
            key,
            record,
            version,
            expires_at,
            index,
        });
        slot.dirty = true;
    }

    fn into_writes(mut self) -> Vec<Write> {
        let mut writes = Vec::new();
        for key in self.order {
            if let Some(slot) = self.slots.remove(&key) {
                if let (true, Some(item)) = (slot.dirty, slot.item) {
                    let condition = match slot.read_version {
                        Some(v) => Condition::Version(v),
                        None => Condition::NotExists,
                    };
                    writes.push(Write { item, condition });
                }
            }
        }
        writes
    }
}
