//! What the collector reads and writes per tenant: the tenant list, the claim on a cycle,
//! every entity's state in a few batched reads, and probe results.

use super::agents::bucket;
use super::ingest::{bucket_expiry, corrupt, unexpected};
use super::layout::{self, Entity};
use super::{
    retry_on_conflict, skip_unreadable, Condition, CycleRecord, ItemKey, Range, Record, Store,
    StoreError, StoredItem, TenantRecord, Write,
};
use crate::domain::alerts::AlertRecord;
use crate::domain::health::{
    integration_health, trend_start_day, window_start_minute, IntegrationHealth,
};
use crate::domain::records::{
    AgentCounters, AgentRecord, HostRecord, IntegrationCounters, IntegrationRecord, SystemRecord,
};
use crate::time::{day_of_minute, Millis};

/// An agent with the counters its health needs.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentData {
    /// The record.
    pub record: AgentRecord,
    /// Minute buckets of the hour window.
    pub minutes: Vec<(i64, AgentCounters)>,
    /// Day buckets of the trend window.
    pub days: Vec<(i64, AgentCounters)>,
}

/// An integration with the counters its health needs.
#[derive(Debug, Clone, PartialEq)]
pub struct IntegrationData {
    /// The record (which holds the probe counters not yet flushed to the buckets).
    pub record: IntegrationRecord,
    /// Minute buckets of the hour window, as stored.
    pub minutes: Vec<(i64, IntegrationCounters)>,
    /// Day buckets of the trend window, as stored.
    pub days: Vec<(i64, IntegrationCounters)>,
}

impl IntegrationData {
    /// Its health at `now`, counting the probes not yet flushed.
    pub fn health(&self, now: Millis, latency_threshold_ms: f64) -> IntegrationHealth {
        let (mut minutes, mut days) = (self.minutes.clone(), self.days.clone());
        add_pending(self.record.pending_probes.as_ref(), &mut minutes, &mut days);
        integration_health(&self.record, &minutes, &days, now, latency_threshold_ms)
    }

    /// Replaces the record with a newer one written after a probe; probe counters the
    /// newer one flushed to the buckets move to the buckets here too.
    pub fn replace_record(&mut self, newer: IntegrationRecord) {
        if let Some(old) = self.record.pending_probes.take() {
            if newer.pending_probes.as_ref().map(|(m, _)| *m) != Some(old.0) {
                add_pending(Some(&old), &mut self.minutes, &mut self.days);
            }
        }
        self.record = newer;
    }
}

/// Everything a collector cycle evaluates for one tenant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantData {
    /// Agents by id.
    pub agents: Vec<AgentData>,
    /// Integrations by id.
    pub integrations: Vec<IntegrationData>,
    /// Hosts by id.
    pub hosts: Vec<HostRecord>,
    /// Gauges.
    pub system: SystemRecord,
    /// Every stored alert (active and recently resolved) with its version.
    pub alerts: Vec<(AlertRecord, u64)>,
}

/// Adds probe counters not yet flushed to the buckets they belong to.
pub fn add_pending(
    pending: Option<&(i64, IntegrationCounters)>,
    minutes: &mut Vec<(i64, IntegrationCounters)>,
    days: &mut Vec<(i64, IntegrationCounters)>,
) {
    let Some((minute, c)) = pending else { return };
    add_to(minutes, *minute, c);
    add_to(days, day_of_minute(*minute), c);
}

fn add_to(buckets: &mut Vec<(i64, IntegrationCounters)>, at: i64, c: &IntegrationCounters) {
    match buckets.iter_mut().find(|(b, _)| *b == at) {
        Some((_, existing)) => existing.merge(c),
        None => {
            buckets.push((at, c.clone()));
            buckets.sort_by_key(|(b, _)| *b);
        }
    }
}

/// The two ranges an entity's health reads: the hour's minute buckets with the record
/// ("M#..." sorts just before "META"), and the trend's day buckets.
pub(crate) fn health_ranges(tenant: &str, entity: Entity, id: &str, now: Millis) -> [Range; 2] {
    let pk = layout::partition(tenant, entity, id);
    [
        Range {
            pk: pk.clone(),
            from: layout::minute_sk(window_start_minute(now)),
            to: layout::META.to_owned(),
        },
        Range {
            pk,
            from: layout::day_sk(trend_start_day(now)),
            to: "D#~".to_owned(),
        },
    ]
}

/// An entity's record and counters from its two ranges (see [`health_ranges`]); `None` if
/// the record is missing. `split` tells the entity's record from its counters.
type Parsed<R, C> = Option<(R, Vec<(i64, C)>, Vec<(i64, C)>)>;

fn parse_ranges<R, C>(
    recent: Vec<StoredItem>,
    day_items: Vec<StoredItem>,
    split: impl Fn(Record) -> Option<Result<R, C>>,
) -> Result<Parsed<R, C>, StoreError> {
    let mut record = None;
    let mut minutes = Vec::new();
    for item in recent {
        if let Record::Unreadable(why) = &item.record {
            return Err(corrupt(&item.key, why));
        }
        match split(item.record) {
            Some(Ok(r)) => record = Some(r),
            Some(Err(c)) => minutes.push((bucket(&item.key)?, c)),
            None => return Err(corrupt(&item.key, "unexpected record in the partition")),
        }
    }
    let mut days = Vec::with_capacity(day_items.len());
    for item in day_items {
        if let Record::Unreadable(why) = &item.record {
            return Err(corrupt(&item.key, why));
        }
        match split(item.record) {
            Some(Err(c)) => days.push((bucket(&item.key)?, c)),
            _ => return Err(corrupt(&item.key, "expected a day bucket")),
        }
    }
    Ok(record.map(|r| (r, minutes, days)))
}

/// Parses an agent's two ranges; `None` if the record is missing.
pub(crate) fn agent_data(
    recent: Vec<StoredItem>,
    day_items: Vec<StoredItem>,
) -> Result<Option<AgentData>, StoreError> {
    let parsed = parse_ranges(recent, day_items, |r| match r {
        Record::Agent(a) => Some(Ok(a)),
        Record::AgentCounters(c) => Some(Err(c)),
        _ => None,
    })?;
    Ok(parsed.map(|(record, minutes, days)| AgentData {
        record,
        minutes,
        days,
    }))
}

/// Parses an integration's two ranges; `None` if the record is missing.
pub(crate) fn integration_data(
    recent: Vec<StoredItem>,
    day_items: Vec<StoredItem>,
) -> Result<Option<IntegrationData>, StoreError> {
    let parsed = parse_ranges(recent, day_items, |r| match r {
        Record::Integration(i) => Some(Ok(i)),
        Record::IntegrationCounters(c) => Some(Err(c)),
        _ => None,
    })?;
    Ok(parsed.map(|(record, minutes, days)| IntegrationData {
        record,
        minutes,
        days,
    }))
}

impl Store {
    /// An entity's two health ranges (see [`health_ranges`]), read in one batch.
    pub(crate) async fn read_health_ranges(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        now: Millis,
    ) -> Result<(Vec<StoredItem>, Vec<StoredItem>), StoreError> {
        let mut ranges = self
            .backend
            .query_many(&health_ranges(tenant, entity, id, now))
            .await?
            .into_iter();
        Ok((
            ranges.next().unwrap_or_default(),
            ranges.next().unwrap_or_default(),
        ))
    }

    /// Lists a tenant so the collector evaluates it. Idempotent.
    pub async fn register_tenant(&self, tenant: &str, now: Millis) -> Result<(), StoreError> {
        let key = layout::tenant(tenant);
        if self.get_one(&key).await?.is_some() {
            return Ok(());
        }
        let write = Write {
            item: StoredItem {
                key,
                record: Record::Tenant(TenantRecord { created_at: now }),
                version: 1,
                expires_at: None,
                index: Some(super::IndexKey {
                    pk: layout::TENANTS.to_owned(),
                    sk: tenant.to_owned(),
                }),
            },
            condition: Condition::NotExists,
        };
        match self.backend.write(vec![write]).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every tenant, ascending.
    pub async fn tenants(&self) -> Result<Vec<String>, StoreError> {
        let keys = self.backend.list_index(layout::TENANTS).await?;
        keys.iter()
            .map(|k| {
                layout::tenant_of(&k.pk)
                    .map(str::to_owned)
                    .ok_or_else(|| corrupt(k, "tenant index entry of another kind"))
            })
            .collect()
    }

    /// Claims cycle `slot` of a tenant for this collector run. `false` if this or a later
    /// cycle was already claimed, by this run or an overlapping one: each cycle of each
    /// tenant is evaluated once, however many collector runs overlap.
    pub async fn claim_cycle(
        &self,
        tenant: &str,
        slot: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let key = layout::cycle(tenant);
        let condition = match self.get_one(&key).await? {
            Some(StoredItem {
                record: Record::Cycle(c),
                version,
                ..
            }) => {
                if c.slot >= slot {
                    return Ok(false);
                }
                Condition::Version(version)
            }
            Some(item) => return Err(corrupt(&item.key, "expected a cycle claim")),
            None => Condition::NotExists,
        };
        let version = match condition {
            Condition::Version(v) => v + 1,
            _ => 1,
        };
        let write = Write {
            item: StoredItem {
                key,
                record: Record::Cycle(CycleRecord {
                    slot,
                    claimed_at: now,
                }),
                version,
                expires_at: None,
                index: None,
            },
            condition,
        };
        match self.backend.write(vec![write]).await {
            Ok(()) => Ok(true),
            // Someone claimed in between; whatever they claimed, it is theirs to run.
            Err(StoreError::Conflict) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every agent of the tenant with its counters, by id, in batched reads.
    pub async fn load_agents(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Vec<AgentData>, StoreError> {
        let ids = self.entity_ids(tenant, Entity::Agent).await?;
        let ranges: Vec<Range> = ids
            .iter()
            .flat_map(|id| health_ranges(tenant, Entity::Agent, id, now))
            .collect();
        let mut results = self.backend.query_many(&ranges).await?.into_iter();
        let mut out = Vec::with_capacity(ids.len());
        while let (Some(recent), Some(days)) = (results.next(), results.next()) {
            out.push(agent_data(recent, days));
        }
        Ok(skip_unreadable(tenant, out)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Every integration of the tenant with its counters, by id, in batched reads.
    pub async fn load_integrations(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Vec<IntegrationData>, StoreError> {
        let ids = self.entity_ids(tenant, Entity::Integration).await?;
        let ranges: Vec<Range> = ids
            .iter()
            .flat_map(|id| health_ranges(tenant, Entity::Integration, id, now))
            .collect();
        let mut results = self.backend.query_many(&ranges).await?.into_iter();
        let mut out = Vec::with_capacity(ids.len());
        while let (Some(recent), Some(days)) = (results.next(), results.next()) {
            out.push(integration_data(recent, days));
        }
        Ok(skip_unreadable(tenant, out)?
            .into_iter()
            .flatten()
            .collect())
    }

    /// One integration's record; `None` if the tenant has no such integration.
    pub async fn integration_record(
        &self,
        tenant: &str,
        integration_id: &str,
    ) -> Result<Option<IntegrationRecord>, StoreError> {
        let key = layout::record(tenant, Entity::Integration, integration_id);
        match self.get_one(&key).await? {
            Some(StoredItem {
                record: Record::Integration(i),
                ..
            }) => Ok(Some(i)),
            Some(item) => Err(corrupt(&item.key, "expected an integration")),
            None => Ok(None),
        }
    }

    /// The tenant's hosts, by id.
    pub async fn load_hosts(&self, tenant: &str) -> Result<Vec<HostRecord>, StoreError> {
        let items = self.entity_records(tenant, Entity::Host).await?;
        skip_unreadable(
            tenant,
            items.into_iter().map(|item| match item.record {
                Record::Host(h) => Ok(h),
                _ => Err(unexpected(&item, "expected a host")),
            }),
        )
    }

    /// The tenant's gauges.
    pub async fn load_system(&self, tenant: &str) -> Result<SystemRecord, StoreError> {
        match self.get_one(&layout::system(tenant)).await? {
            Some(StoredItem {
                record: Record::System(s),
                ..
            }) => Ok(s),
            Some(item) => Err(corrupt(&item.key, "expected the system record")),
            None => Ok(SystemRecord::default()),
        }
    }

    /// Everything a collector cycle evaluates for one tenant at `now`.
    pub async fn tenant_data(&self, tenant: &str, now: Millis) -> Result<TenantData, StoreError> {
        let (agents, integrations, hosts, system, alerts) = tokio::try_join!(
            self.load_agents(tenant, now),
            self.load_integrations(tenant, now),
            self.load_hosts(tenant),
            self.load_system(tenant),
            self.all_alerts(tenant),
        )?;
        Ok(TenantData {
            agents,
            integrations,
            hosts,
            system,
            alerts,
        })
    }

    /// Records the result of a probe of an integration that ran at `at`, if the probe was
    /// still due (`cycle_start` as in [`IntegrationRecord::probe_due`]): an overlapping
    /// collector run that recorded it first wins, and this result is dropped. Returns the
    /// updated record, or `None` if dropped or the integration is gone.
    pub async fn record_probe(
        &self,
        tenant: &str,
        integration_id: &str,
        ok: bool,
        latency_ms: f64,
        at: Millis,
        cycle_start: Option<Millis>,
    ) -> Result<Option<IntegrationRecord>, StoreError> {
        let key = layout::record(tenant, Entity::Integration, integration_id);
        retry_on_conflict(|| async {
            let (mut record, version) = match self.get_one(&key).await? {
                Some(StoredItem {
                    record: Record::Integration(i),
                    version,
                    ..
                }) => (i, version),
                Some(item) => return Err(corrupt(&item.key, "expected an integration")),
                None => return Ok(None),
            };
            if !record.probe_due(at, cycle_start) {
                return Ok(None);
            }
            if let Some((minute, counters)) = record.record_probe(ok, latency_ms, at) {
                // The finished minute's probe counters go to its buckets first, each write
                // idempotent; the record that forgets them is written last. A crash or a
                // conflict in between retries the flush, which then adds nothing twice.
                let day = day_of_minute(minute);
                for bucket_key in [
                    layout::minute(tenant, Entity::Integration, integration_id, minute),
                    layout::day(tenant, Entity::Integration, integration_id, day),
                ] {
                    self.add_probe_counters(bucket_key, minute, &counters)
                        .await?;
                }
            }
            let writes = vec![Write {
                item: StoredItem {
                    key: key.clone(),
                    record: Record::Integration(record.clone()),
                    version: version + 1,
                    expires_at: None,
                    index: Some(layout::index(tenant, Entity::Integration, integration_id)),
                },
                condition: Condition::Version(version),
            }];
            self.backend.write(writes).await?;
            Ok(Some(record))
        })
        .await
    }
}

impl Store {
    /// Adds one minute's probe counters to a bucket (the minute's or its day's), unless
    /// they were added already.
    async fn add_probe_counters(
        &self,
        key: ItemKey,
        minute: i64,
        add: &IntegrationCounters,
    ) -> Result<(), StoreError> {
        // Ingestion may be adding calls to the same bucket: a conflict re-reads and retries.
        retry_on_conflict(|| async {
            let (mut counters, condition, version) = match self.get_one(&key).await? {
                Some(StoredItem {
                    record: Record::IntegrationCounters(c),
                    version,
                    ..
                }) => (c, Condition::Version(version), version),
                Some(item) => return Err(corrupt(&item.key, "expected integration counters")),
                None => (IntegrationCounters::default(), Condition::NotExists, 0),
            };
            if counters.probes_through.is_some_and(|m| m >= minute) {
                return Ok(());
            }
            counters.merge(add);
            counters.probes_through = Some(minute);
            let write = Write {
                item: StoredItem {
                    expires_at: bucket_expiry(&key),
                    key: key.clone(),
                    record: Record::IntegrationCounters(counters),
                    version: version + 1,
                    index: None,
                },
                condition,
            };
            self.backend.write(vec![write]).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_probe_counters_merge_into_their_minute_and_day() {
        let c = |calls| IntegrationCounters {
            calls,
            failures: 0,
            latency_sum_ms: 1.0,
            probes_through: None,
        };
        let mut minutes = vec![(5, c(1))];
        let mut days = vec![(0, c(10))];
        add_pending(Some(&(5, c(2))), &mut minutes, &mut days);
        assert_eq!(
            minutes
                .iter()
                .map(|(m, c)| (*m, c.calls))
                .collect::<Vec<_>>(),
            [(5, 3)]
        );
        assert_eq!(days[0].1.calls, 12);
        add_pending(Some(&(1440 * 2, c(4))), &mut minutes, &mut days);
        assert_eq!(minutes.len(), 2);
        assert_eq!(
            days.iter().map(|(d, c)| (*d, c.calls)).collect::<Vec<_>>(),
            [(0, 12), (2, 4)]
        );
    }
}
