//! Tenant-wide reads: integrations list, the system object, and daily history.

use super::agents::bucket;
use super::ingest::corrupt;
use super::layout::{self, Entity};
use super::live::{LiveRecord, StoredAs};
use super::tenant::Consistency;
use super::{Store, StoreError, StoredItem};
use crate::domain::health::{agent_status, IntegrationHealth};
use crate::domain::history::{
    agent_point, integration_point, merge_hosts, system_point, HistoryPoint,
};
use crate::domain::live::{first_kept_day, Counters, Live, LiveHost};
use crate::domain::records::{AgentCounters, HostCounters, IntegrationCounters};
use crate::domain::system::{system_health, SystemHealth, SystemInputs};
use crate::time::{day_of, Millis, DAY_MS};

/// Day counters and hour summaries of an entity.
type DaysAndHours<C> = (
    Vec<(i64, C)>,
    Vec<(i64, crate::domain::latency::HourSummary)>,
);

/// Adds each day's latency percentiles (from its hours) to its point's metrics:
/// `latency_p50_ms`, `latency_p95_ms`, `latency_p99_ms`, null without latencies.
fn with_percentiles(
    mut points: Vec<HistoryPoint>,
    hours: &[(i64, crate::domain::latency::HourSummary)],
) -> Vec<HistoryPoint> {
    use crate::domain::latency::{percentiles, Histogram};
    let mut by_day: std::collections::BTreeMap<i64, Histogram> = Default::default();
    for (hour, s) in hours {
        let day = day_of(hour * crate::time::HOUR_MS);
        by_day.entry(day).or_default().merge(&s.latency);
    }
    for p in &mut points {
        let day = crate::time::parse_rfc3339(&p.timestamp)
            .map(day_of)
            .unwrap_or(i64::MIN);
        let day_percentiles = by_day.get(&day).map(percentiles).unwrap_or_default();
        if let (Some(m), Ok(serde_json::Value::Object(shown))) = (
            p.metrics.as_object_mut(),
            serde_json::to_value(day_percentiles),
        ) {
            m.extend(shown);
        }
    }
    points
}

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
    /// Every integration's health, by ascending `integration_id`.
    pub async fn list_integration_health(
        &self,
        tenant: &str,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<Vec<IntegrationHealth>, StoreError> {
        Ok(self
            .load_integrations(tenant, Consistency::Strong)
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
            self.load_agents(tenant, Consistency::Strong),
            self.load_hosts(tenant, Consistency::Strong),
            self.list_integration_health(tenant, now, latency_threshold_ms),
            self.active_alerts(tenant),
            self.load_system(tenant),
        )?;
        let agents: Vec<_> = agents
            .iter()
            .map(|a| (agent_status(&a.record), a.record.running.len() as u64))
            .collect();
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
    /// if the entity does not exist for the tenant. Recent days come from the live item;
    /// day buckets are read only for days older than it keeps.
    pub async fn history(
        &self,
        tenant: &str,
        of: HistoryOf<'_>,
        days: i64,
        now: Millis,
    ) -> Result<Option<Vec<HistoryPoint>>, StoreError> {
        let first = day_of(now) - (days - 1);
        let points = match of {
            HistoryOf::Agent(id) => self
                .entity_history::<_, AgentCounters>(tenant, Entity::Agent, id, first, now, true)
                .await?
                .map(|(d, hours)| {
                    with_percentiles(
                        d.iter().filter_map(|(d, c)| agent_point(*d, c)).collect(),
                        &hours,
                    )
                }),
            HistoryOf::Integration(id) => self
                .entity_history::<_, IntegrationCounters>(
                    tenant,
                    Entity::Integration,
                    id,
                    first,
                    now,
                    true,
                )
                .await?
                .map(|(d, hours)| {
                    with_percentiles(
                        d.iter()
                            .filter_map(|(d, c)| integration_point(*d, c))
                            .collect(),
                        &hours,
                    )
                }),
            HistoryOf::System(Some(id)) => self
                .entity_history::<_, HostCounters>(tenant, Entity::Host, id, first, now, false)
                .await?
                .map(|(d, _)| d.iter().filter_map(|(d, c)| system_point(*d, c)).collect()),
            HistoryOf::System(None) => Some(self.all_hosts_history(tenant, first, now).await?),
        };
        Ok(points)
    }

    /// Daily history of all hosts merged, from day `first` on.
    async fn all_hosts_history(
        &self,
        tenant: &str,
        first: i64,
        now: Millis,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let hosts: Vec<LiveHost> = self
            .live_items(tenant, Entity::Host, Consistency::Strong)
            .await?;
        let mut all = Vec::new();
        for host in hosts {
            let id = host.record.host_id.clone();
            all.extend(
                self.days_of(tenant, Entity::Host, &id, host, first, now)
                    .await?,
            );
        }
        Ok(merge_hosts(all)
            .iter()
            .filter_map(|(d, c)| system_point(*d, c))
            .collect())
    }

    /// Hourly points of one host, or of all hosts merged (`None`), for the hours from
    /// `from` to `now`: hour buckets (1 eventually consistent Query per host), then the
    /// hours the live item has not moved. `None` if the host does not exist.
    pub async fn host_hour_history(
        &self,
        tenant: &str,
        host: Option<&str>,
        from: Millis,
        now: Millis,
    ) -> Result<Option<Vec<HistoryPoint>>, StoreError> {
        use crate::domain::history::system_point_at;
        use crate::domain::live::hour_of;
        let hosts: Vec<LiveHost> = match host {
            Some(id) => match self.live_item::<LiveHost>(tenant, Entity::Host, id).await? {
                Some(h) => vec![h],
                None => return Ok(None),
            },
            None => {
                self.live_items(tenant, Entity::Host, Consistency::Eventual)
                    .await?
            }
        };
        let mut merged: std::collections::BTreeMap<i64, HostCounters> = Default::default();
        for live in hosts {
            let items = self
                .backend
                .query_eventual(
                    &layout::partition(tenant, Entity::Host, &live.record.host_id),
                    &layout::hour_sk(hour_of(from)),
                    &layout::hour_sk(hour_of(now)),
                )
                .await?;
            let stored = items.into_iter().filter_map(|item| match item.record {
                super::Record::HostCounters(c) => Some((layout::bucket_index(&item.key.sk)?, c)),
                _ => None,
            });
            for (hour, c) in stored.chain(live.window.unmoved_hour_counters()) {
                if hour >= hour_of(from) && hour <= hour_of(now) {
                    merged.entry(hour).or_default().merge(&c);
                }
            }
        }
        Ok(Some(
            merged
                .iter()
                .filter_map(|(h, c)| system_point_at(h * crate::time::HOUR_MS, c))
                .collect(),
        ))
    }

    /// An entity's day counters from day `first` on, ascending, and, when `hours`, its
    /// hour summaries over the same days (hour buckets, then the hours the live item has
    /// not moved; hosts have none); `None` if it does not exist.
    async fn entity_history<R, C>(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        first: i64,
        now: Millis,
        hours: bool,
    ) -> Result<Option<DaysAndHours<C>>, StoreError>
    where
        Live<R, C>: LiveRecord,
        C: Counters + StoredAs,
    {
        let Some(live) = self.live_item::<Live<R, C>>(tenant, entity, id).await? else {
            return Ok(None);
        };
        let hours = if hours {
            let mut stored = self
                .hours_between(tenant, entity, id, first * DAY_MS, now)
                .await?;
            stored.extend(live.window.unmoved_hours());
            stored
        } else {
            Vec::new()
        };
        let days = self.days_of(tenant, entity, id, live, first, now).await?;
        Ok(Some((days, hours)))
    }

    /// The day counters of an entity from `first` on: day buckets for days older than the
    /// live item keeps, then the live item's own days, which win over a bucket of the same
    /// day (a bucket written by a settle whose item write then lost a race).
    pub(crate) async fn days_of<R, C: Counters + StoredAs>(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        live: Live<R, C>,
        first: i64,
        now: Millis,
    ) -> Result<Vec<(i64, C)>, StoreError> {
        let mut days = std::collections::BTreeMap::new();
        let kept = first_kept_day(now);
        if first < kept {
            let items: Vec<StoredItem> = self
                .backend
                .query(
                    &layout::partition(tenant, entity, id),
                    &layout::day_sk(first),
                    &layout::day_sk(kept - 1),
                )
                .await?;
            for item in items {
                let day = bucket(&item.key)?;
                let c = C::from_record(item.record)
                    .ok_or_else(|| corrupt(&item.key, "unexpected day bucket"))?;
                days.insert(day, c);
            }
        }
        days.extend(live.window.days.into_iter().filter(|(d, _)| *d >= first));
        Ok(days.into_iter().collect())
    }
}
