//! Tenant-wide reads: integrations list, the system object, and daily history.

use super::agents::bucket;
use super::ingest::{corrupt, unexpected};
use super::layout::{self, Entity};
use super::tenant::add_pending;
use super::{skip_unreadable, ItemKey, Record, Store, StoreError, StoredItem};
use crate::domain::health::{agent_status, IntegrationHealth};
use crate::domain::history::{
    agent_point, integration_point, merge_hosts, system_point, HistoryPoint,
};
use crate::domain::records::HostCounters;
use crate::domain::system::{system_health, SystemHealth, SystemInputs};
use crate::time::{day_of, day_of_minute, Millis};

/// What history is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryOf<'a> {
    /// One agent.
    Agent(&'a str),
    /// One integration.
    Integration(&'a str),
    /// One host, or (`None`) all hosts of the tenant.
    System(Option<&'a str>),
}

impl Store {
    /// The ids of a tenant's entities of one kind, ascending.
    pub(crate) async fn entity_ids(
        &self,
        tenant: &str,
        entity: Entity,
    ) -> Result<Vec<String>, StoreError> {
        let keys = self
            .backend
            .list_index(&layout::index_partition(tenant, entity))
            .await?;
        keys.iter()
            .map(|k| {
                layout::entity_id(tenant, entity, &k.pk)
                    .map(str::to_owned)
                    .ok_or_else(|| corrupt(k, "index entry of another kind"))
            })
            .collect()
    }

    /// The records of a tenant's entities of one kind, in id order, in one batched read.
    pub(crate) async fn entity_records(
        &self,
        tenant: &str,
        entity: Entity,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let keys: Vec<ItemKey> = self
            .entity_ids(tenant, entity)
            .await?
            .iter()
            .map(|id| layout::record(tenant, entity, id))
            .collect();
        Ok(self
            .backend
            .get(&keys)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Every integration's health, by ascending `integration_id`.
    pub async fn list_integration_health(
        &self,
        tenant: &str,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<Vec<IntegrationHealth>, StoreError> {
        Ok(self
            .load_integrations(tenant, now)
            .await?
            .iter()
            .map(|d| d.health(now, latency_threshold_ms))
            .collect())
    }

    /// The system object at `now`.
    pub async fn system_health(
        &self,
        tenant: &str,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<SystemHealth, StoreError> {
        let (agents, hosts, integrations, alerts, system) = tokio::try_join!(
            self.entity_records(tenant, Entity::Agent),
            self.load_hosts(tenant),
            self.list_integration_health(tenant, now, latency_threshold_ms),
            self.active_alerts(tenant),
            self.load_system(tenant),
        )?;
        let agents = skip_unreadable(
            tenant,
            agents.into_iter().map(|item| match item.record {
                Record::Agent(a) => Ok((agent_status(&a), a.running.len() as u64)),
                _ => Err(unexpected(&item, "expected an agent")),
            }),
        )?;
        Ok(system_health(
            SystemInputs {
                agents: &agents,
                integrations: &integrations,
                hosts: &hosts,
                system: &system,
                alerts: &alerts,
            },
            now,
        ))
    }

    /// Daily history over the last `days` UTC days (today included), oldest first; `None`
    /// if the entity does not exist for the tenant.
    pub async fn history(
        &self,
        tenant: &str,
        of: HistoryOf<'_>,
        days: i64,
        now: Millis,
    ) -> Result<Option<Vec<HistoryPoint>>, StoreError> {
        let from = layout::day_sk(day_of(now) - (days - 1));
        let (entity, id) = match of {
            HistoryOf::Agent(id) => (Entity::Agent, id),
            HistoryOf::Integration(id) => (Entity::Integration, id),
            HistoryOf::System(Some(id)) => (Entity::Host, id),
            HistoryOf::System(None) => {
                let mut all = Vec::new();
                for host in self.entity_ids(tenant, Entity::Host).await? {
                    let pk = layout::partition(tenant, Entity::Host, &host);
                    all.extend(host_days(self.backend.query(&pk, &from, "D#~").await?)?);
                }
                return Ok(Some(
                    merge_hosts(all)
                        .iter()
                        .filter_map(|(d, c)| system_point(*d, c))
                        .collect(),
                ));
            }
        };
        let Some(record) = self.get_one(&layout::record(tenant, entity, id)).await? else {
            return Ok(None);
        };
        let items = self
            .backend
            .query(&layout::partition(tenant, entity, id), &from, "D#~")
            .await?;
        let mut points = Vec::with_capacity(items.len());
        let mut integration_days = Vec::new();
        for item in items {
            let day = bucket(&item.key)?;
            let point = match (item.record, entity) {
                (Record::AgentCounters(c), Entity::Agent) => agent_point(day, &c),
                (Record::IntegrationCounters(c), Entity::Integration) => {
                    integration_days.push((day, c));
                    continue;
                }
                (Record::HostCounters(c), Entity::Host) => system_point(day, &c),
                _ => return Err(corrupt(&item.key, "unexpected day bucket")),
            };
            points.extend(point);
        }
        if let Record::Integration(i) = &record.record {
            // Probe counters of the current minute are still in the record.
            let first_day = day_of(now) - (days - 1);
            let pending = i
                .pending_probes
                .as_ref()
                .filter(|(m, _)| day_of_minute(*m) >= first_day);
            add_pending(pending, &mut Vec::new(), &mut integration_days);
            points.extend(
                integration_days
                    .iter()
                    .filter_map(|(d, c)| integration_point(*d, c)),
            );
        }
        Ok(Some(points))
    }
}

fn host_days(items: Vec<StoredItem>) -> Result<Vec<(i64, HostCounters)>, StoreError> {
    items
        .into_iter()
        .map(|item| match item.record {
            Record::HostCounters(c) => Ok((bucket(&item.key)?, c)),
            _ => Err(corrupt(&item.key, "expected host counters")),
        })
        .collect()
}
