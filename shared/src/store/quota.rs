//! Per-tenant counts behind the entity quotas: how many agents, integrations and hosts a
//! tenant holds, and how many of its integrations are probed.
//!
//! Entities are created by their first event or `PUT`, possibly by several writers at
//! once, so counting them by listing would cost a read of every entity per creation. The
//! counts live in one small item instead (`T#<tenant>#COUNTS`), written in the same
//! transaction as the new live item and conditional on the version read: two writers can
//! neither both take the last place nor count one entity twice. Only creations pay for it
//! (a strong read of the counts and a two-item transaction: 1 read unit and 4 write units
//! instead of 1); events for existing entities are unchanged. Nothing deletes entities, so
//! the counts only grow.

use serde::{Deserialize, Serialize};

use super::layout::{self, Entity};
use super::{Condition, Record, Store, StoreError, StoredItem, Write};

/// The counts item's record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountsRecord {
    /// Agents.
    #[serde(default)]
    pub agents: u64,
    /// Integrations.
    #[serde(default)]
    pub integrations: u64,
    /// Hosts.
    #[serde(default)]
    pub hosts: u64,
    /// Integrations with a probe.
    #[serde(default)]
    pub probed: u64,
}

impl CountsRecord {
    fn of_mut(&mut self, entity: Entity) -> &mut u64 {
        match entity {
            Entity::Agent => &mut self.agents,
            Entity::Integration => &mut self.integrations,
            Entity::Host => &mut self.hosts,
        }
    }
}

/// What a write adds to the counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Growth {
    /// A new entity of this kind.
    pub entity: Option<Entity>,
    /// An integration that gains a probe.
    pub probe: bool,
}

impl Store {
    /// Writes `write` (a live item), counting what it adds in the same transaction, or
    /// refuses it with [`StoreError::Quota`] when that passes a quota. A lost race on
    /// either item is a [`StoreError::Conflict`] for the caller's retry.
    pub(crate) async fn write_counted(
        &self,
        tenant: &str,
        growth: Growth,
        write: Write,
    ) -> Result<(), StoreError> {
        if growth == Growth::default() {
            return self.backend.write(vec![write]).await;
        }
        let key = layout::counts(tenant);
        let (mut counts, condition, version) = match self.get_one(&key).await? {
            Some(StoredItem {
                record: Record::Counts(c),
                version,
                ..
            }) => (c, Condition::Version(version), version + 1),
            Some(item) => return Err(super::unexpected(&item, "expected counts")),
            None => (self.count_entities(tenant).await?, Condition::NotExists, 1),
        };
        if let Some(entity) = growth.entity {
            let limit = self.quotas.entities;
            let n = counts.of_mut(entity);
            if *n >= limit {
                return Err(StoreError::Quota {
                    quota: "entities",
                    limit,
                });
            }
            *n += 1;
        }
        if growth.probe {
            let limit = self.quotas.probed_integrations;
            if counts.probed >= limit {
                return Err(StoreError::Quota {
                    quota: "probed_integrations",
                    limit,
                });
            }
            counts.probed += 1;
        }
        let counts = Write {
            item: StoredItem {
                key,
                record: Record::Counts(counts),
                version,
                expires_at: None,
                index: None,
            },
            condition,
        };
        self.backend.write(vec![write, counts]).await
    }

    /// The counts of a tenant that has none stored yet (one created before quotas, or a
    /// new one): its live items, listed once.
    async fn count_entities(&self, tenant: &str) -> Result<CountsRecord, StoreError> {
        let mut counts = CountsRecord::default();
        for entity in [Entity::Agent, Entity::Integration, Entity::Host] {
            let items = self
                .backend
                .query(&layout::live_partition(tenant, entity), " ", "\u{10ffff}")
                .await?;
            *counts.of_mut(entity) = items.len() as u64;
            if entity == Entity::Integration {
                counts.probed = items
                    .iter()
                    .filter(
                        |i| matches!(&i.record, Record::Integration(l) if l.record.probe.is_some()),
                    )
                    .count() as u64;
            }
        }
        Ok(counts)
    }
}

/// Leases on a bounded number of places (e.g. exports streaming at once), per tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeasesRecord {
    /// The places taken: (lease id, held until).
    pub leases: Vec<(String, crate::time::Millis)>,
}

impl Store {
    /// Takes one of `limit` places named `name` of `tenant` until `now + ttl_ms` (after
    /// which a holder that never gave it back, e.g. a process that died, loses it);
    /// `None` when all are taken. Give it back with [`Store::release_lease`].
    pub async fn acquire_lease(
        &self,
        tenant: &str,
        name: &str,
        limit: u64,
        ttl_ms: crate::time::Millis,
        now: crate::time::Millis,
    ) -> Result<Option<String>, StoreError> {
        let key = layout::leases(tenant, name);
        super::retry_on_conflict(|| async {
            let (mut record, condition, version) = self.read_leases(&key).await?;
            record.leases.retain(|(_, until)| *until > now);
            if record.leases.len() as u64 >= limit {
                return Ok(None);
            }
            let mut bytes = [0u8; 8];
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            let id = hex::encode(bytes);
            record.leases.push((id.clone(), now + ttl_ms));
            self.write_leases(&key, record, condition, version, now + ttl_ms)
                .await?;
            Ok(Some(id))
        })
        .await
    }

    /// Gives back a place taken by [`Store::acquire_lease`].
    pub async fn release_lease(
        &self,
        tenant: &str,
        name: &str,
        id: &str,
    ) -> Result<(), StoreError> {
        let key = layout::leases(tenant, name);
        super::retry_on_conflict(|| async {
            let (mut record, condition, version) = self.read_leases(&key).await?;
            let before = record.leases.len();
            record.leases.retain(|(lease, _)| lease != id);
            if record.leases.len() == before {
                return Ok(());
            }
            let last = record.leases.iter().map(|(_, u)| *u).max().unwrap_or(0);
            self.write_leases(&key, record, condition, version, last)
                .await
        })
        .await
    }

    async fn read_leases(
        &self,
        key: &super::ItemKey,
    ) -> Result<(LeasesRecord, Condition, u64), StoreError> {
        match self.get_one(key).await? {
            Some(StoredItem {
                record: Record::Leases(r),
                version,
                ..
            }) => Ok((r, Condition::Version(version), version + 1)),
            Some(item) => Err(super::unexpected(&item, "expected leases")),
            None => Ok((LeasesRecord::default(), Condition::NotExists, 1)),
        }
    }

    async fn write_leases(
        &self,
        key: &super::ItemKey,
        record: LeasesRecord,
        condition: Condition,
        version: u64,
        last_until: crate::time::Millis,
    ) -> Result<(), StoreError> {
        self.backend
            .write(vec![Write {
                item: StoredItem {
                    key: key.clone(),
                    record: Record::Leases(record),
                    version,
                    // Gone by itself a day after its last lease ends.
                    expires_at: layout::expiry(last_until, crate::time::DAY_MS),
                    index: None,
                },
                condition,
            }])
            .await
    }
}
