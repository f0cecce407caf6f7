//! What the collector reads and writes per tenant: the tenant list, the claim on a cycle,
//! every entity's live item in one Query per kind, and probe results.

use super::ingest::corrupt;
use super::layout::{self, Entity};
use super::live::{live_of, AgentData, IntegrationData, LiveRecord};
use super::{
    skip_unreadable, Condition, CycleRecord, End, Range, Record, Store, StoreError, StoredItem,
    TenantRecord, Write,
};
use crate::domain::alerts::AlertRecord;
use crate::domain::live::{LiveAgent, LiveHost, LiveIntegration};
use crate::domain::records::{HostRecord, IntegrationRecord, SystemRecord};
use crate::time::Millis;

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Every write acknowledged before the read.
    Strong,
    /// Possibly a second behind, at half the price on DynamoDB.
    Eventual,
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

impl Store {
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

    /// Every live item of one kind of the tenant, by id, in one Query. Unreadable items are
    /// logged and skipped, so one damaged entity does not hide the rest.
    pub(crate) async fn live_items<T: LiveRecord>(
        &self,
        tenant: &str,
        entity: Entity,
        read: Consistency,
    ) -> Result<Vec<T>, StoreError> {
        let pk = layout::live_partition(tenant, entity);
        let items = match read {
            Consistency::Strong => self.backend.query(&pk, " ", "\u{10ffff}").await?,
            Consistency::Eventual => self.backend.query_eventual(&pk, " ", "\u{10ffff}").await?,
        };
        skip_unreadable(tenant, items.into_iter().map(live_of))
    }

    /// Up to `limit` live items of one kind with ids after `after`, by id, and the id to
    /// continue after if more follow (one Query of `limit + 1` items).
    pub(crate) async fn live_page<T: LiveRecord>(
        &self,
        tenant: &str,
        entity: Entity,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<T>, Option<String>), StoreError> {
        // Ids hold no control characters, so `<after>\u{1}` sorts after `after` and before
        // every longer id that starts with it.
        let from = after.map_or_else(|| " ".to_owned(), |a| format!("{a}\u{1}"));
        let mut items = self
            .backend
            .query_end(
                &Range::new(layout::live_partition(tenant, entity), from, "\u{10ffff}"),
                End::First(limit.saturating_add(1)),
            )
            .await?;
        let more = items.len() > limit;
        items.truncate(limit);
        let next = if more {
            items.last().map(|i| i.key.sk.clone())
        } else {
            None
        };
        let values = skip_unreadable(tenant, items.into_iter().map(live_of))?;
        Ok((values, next))
    }

    /// One live item; `None` if the tenant has no such entity.
    pub(crate) async fn live_item<T: LiveRecord>(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
    ) -> Result<Option<T>, StoreError> {
        Ok(self
            .read_live::<T>(&layout::live(tenant, entity, id))
            .await?
            .0)
    }

    /// Every agent of the tenant with its counters, by id.
    pub async fn load_agents(
        &self,
        tenant: &str,
        read: Consistency,
    ) -> Result<Vec<AgentData>, StoreError> {
        let live: Vec<LiveAgent> = self.live_items(tenant, Entity::Agent, read).await?;
        Ok(live.into_iter().map(AgentData::from).collect())
    }

    /// Every integration of the tenant with its counters, by id.
    pub async fn load_integrations(
        &self,
        tenant: &str,
        read: Consistency,
    ) -> Result<Vec<IntegrationData>, StoreError> {
        let live: Vec<LiveIntegration> = self.live_items(tenant, Entity::Integration, read).await?;
        Ok(live.into_iter().map(IntegrationData::from).collect())
    }

    /// One integration's record; `None` if the tenant has no such integration.
    pub async fn integration_record(
        &self,
        tenant: &str,
        integration_id: &str,
    ) -> Result<Option<IntegrationRecord>, StoreError> {
        let live: Option<LiveIntegration> = self
            .live_item(tenant, Entity::Integration, integration_id)
            .await?;
        Ok(live.map(|l| l.record))
    }

    /// The tenant's hosts, by id.
    pub async fn load_hosts(
        &self,
        tenant: &str,
        read: Consistency,
    ) -> Result<Vec<HostRecord>, StoreError> {
        let live: Vec<LiveHost> = self.live_items(tenant, Entity::Host, read).await?;
        Ok(live.into_iter().map(|h| h.record).collect())
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

    /// Everything a collector cycle evaluates for one tenant. The live items are read
    /// eventually consistent (half the price): a cycle that misses the last second's event
    /// sees it in the next one.
    pub async fn tenant_data(&self, tenant: &str) -> Result<TenantData, StoreError> {
        let read = Consistency::Eventual;
        let (agents, integrations, hosts, system, alerts) = tokio::try_join!(
            self.load_agents(tenant, read),
            self.load_integrations(tenant, read),
            self.load_hosts(tenant, read),
            self.load_system(tenant),
            self.all_alerts_with(tenant, read),
        )?;
        Ok(TenantData {
            agents,
            integrations,
            hosts,
            system,
            alerts,
        })
    }

    /// Records the results of probes of an integration, in order, each if it was still due
    /// (its `cycle_start` as in [`IntegrationRecord::probe_due`]): an overlapping collector
    /// run that recorded one first wins, and this one is dropped. Several results (a
    /// success held back and the next probe) cost one write. A failed probe is also kept
    /// as a failure (operation `probe`) with its error. Returns the integration as
    /// updated, or `None` if every result was dropped or the integration is gone.
    pub async fn record_probes(
        &self,
        tenant: &str,
        integration_id: &str,
        results: &[crate::domain::records::ProbeResult],
    ) -> Result<Option<IntegrationData>, StoreError> {
        let updated = self
            .update_live(
                tenant,
                Entity::Integration,
                integration_id,
                results.last().map_or(0, |r| r.at),
                |live: Option<LiveIntegration>| {
                    let Some(mut live) = live else {
                        return Ok((None, None));
                    };
                    let mut applied = 0;
                    let mut failed = Vec::new();
                    for r in results {
                        if live.record.probe_due(r.at, r.cycle_start) {
                            live.apply_probe(r);
                            applied += 1;
                            if !r.ok {
                                failed.push(r);
                            }
                        }
                    }
                    if applied == 0 {
                        return Ok((None, None));
                    }
                    Ok((
                        Some(live.clone()),
                        Some((IntegrationData::from(live), failed)),
                    ))
                },
            )
            .await?;
        let Some((data, failed)) = updated else {
            return Ok(None);
        };
        let failures: Vec<(String, crate::domain::failures::FailureRecord)> = failed
            .into_iter()
            .map(|r| {
                let failure = crate::domain::failures::FailureRecord::new(
                    r.at,
                    None,
                    Some("probe"),
                    r.error.as_deref(),
                    Some(r.latency_ms),
                );
                ("probe".to_owned(), failure)
            })
            .collect();
        if !failures.is_empty() {
            self.put_failures(tenant, Entity::Integration, integration_id, &failures)
                .await?;
        }
        Ok(Some(data))
    }
}

impl Store {
    /// The hour buckets of an entity for the hours from `from` to `to` (times), by hour:
    /// one eventually consistent Query of its partition. An unreadable hour is left out,
    /// as a damaged item is everywhere.
    pub async fn hours_between(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        from: Millis,
        to: Millis,
    ) -> Result<Vec<(i64, crate::domain::latency::HourSummary)>, StoreError> {
        use crate::domain::live::hour_of;
        let items = self
            .backend
            .query_eventual(
                &layout::partition(tenant, entity, id),
                &layout::hour_sk(hour_of(from)),
                &layout::hour_sk(hour_of(to)),
            )
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|item| match item.record {
                Record::Hour(h) => Some((layout::bucket_index(&item.key.sk)?, h)),
                _ => None,
            })
            .collect())
    }
}
