//! Gathers what a report is built from: every agent's and integration's day counters over
//! two periods, integrations' hour summaries, SLOs and alerts.

use futures::{StreamExt, TryStreamExt};

use super::layout::Entity;
use super::live::EntityData;
use super::tenant::Consistency;
use super::{Store, StoreError};
use crate::domain::live::{LiveAgent, LiveIntegration};
use crate::domain::report::{
    AgentInput, IntegrationInput, Period, PeriodKind, ReportInputs, SloInput,
};
use crate::domain::slo::{status, SloData, SloRecord, SloSource};
use crate::time::{Millis, DAY_MS};

/// Entities whose history is read at the same time.
const CONCURRENT_READS: usize = 16;

/// `read` of each of `items`, [`CONCURRENT_READS`] at a time, in their order; the first
/// error ends it.
async fn read_each<T, U, F>(items: Vec<T>, read: impl FnMut(T) -> F) -> Result<Vec<U>, StoreError>
where
    F: std::future::Future<Output = Result<U, StoreError>>,
{
    futures::stream::iter(items)
        .map(read)
        .buffered(CONCURRENT_READS)
        .try_collect()
        .await
}

/// An entity's id and its hour summaries.
type HoursOf = (String, Vec<(i64, crate::domain::latency::HourSummary)>);

impl Store {
    /// The hour summaries from `from` to `now` of one entity (`id`), or of every entity of
    /// its kind, by id: hour buckets, then the hours the live item holds. One eventually
    /// consistent Query per entity (the list read first when no id is given); empty if the
    /// entity does not exist.
    pub async fn hourly(
        &self,
        tenant: &str,
        entity: Entity,
        id: Option<&str>,
        from: Millis,
        now: Millis,
    ) -> Result<Vec<HoursOf>, StoreError> {
        if let Some(id) = id {
            return Ok(self
                .named_hours(tenant, entity, id, from, now)
                .await?
                .map(|(_, hours)| (id.to_owned(), hours))
                .into_iter()
                .collect());
        }
        // (id, hours the live item has not moved)
        let lives: Vec<HoursOf> = match entity {
            Entity::Agent => self
                .live_items::<LiveAgent>(tenant, entity, Consistency::Eventual)
                .await?
                .into_iter()
                .map(|l| (l.record.agent_id.clone(), l.window.unmoved_hours()))
                .collect(),
            Entity::Integration => self
                .live_items::<LiveIntegration>(tenant, entity, Consistency::Eventual)
                .await?
                .into_iter()
                .map(|l| (l.record.integration_id.clone(), l.window.unmoved_hours()))
                .collect(),
            Entity::Host => Vec::new(),
        };
        read_each(lives, |(id, unmoved)| async move {
            let mut hours = self.hours_between(tenant, entity, &id, from, now).await?;
            hours.extend(unmoved);
            Ok((id, hours))
        })
        .await
    }

    /// One agent's or integration's display name and hour summaries from `from` to `now`:
    /// one read of its live item (for the name and the hours it has not moved) and one
    /// eventually consistent Query of its hour buckets; `None` if it does not exist.
    pub async fn named_hours(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        from: Millis,
        now: Millis,
    ) -> Result<Option<(String, Vec<(i64, crate::domain::latency::HourSummary)>)>, StoreError> {
        let live = match entity {
            Entity::Agent => self
                .live_item::<LiveAgent>(tenant, entity, id)
                .await?
                .map(|l| (l.record.agent_name.clone(), l.window.unmoved_hours())),
            Entity::Integration => self
                .live_item::<LiveIntegration>(tenant, entity, id)
                .await?
                .map(|l| (l.record.integration_name.clone(), l.window.unmoved_hours())),
            Entity::Host => None,
        };
        let Some((name, unmoved)) = live else {
            return Ok(None);
        };
        let mut hours = self.hours_between(tenant, entity, id, from, now).await?;
        hours.extend(unmoved);
        Ok(Some((name, hours)))
    }

    /// The inputs of the tenant's report over the period of `kind` ending at `now`. Reads
    /// eventually consistent (a report does not need the last second): the live lists,
    /// each entity's day buckets older than its live item keeps, each integration's and
    /// SLO source's hour buckets, and the alerts.
    pub async fn report_inputs(
        &self,
        tenant: &str,
        kind: PeriodKind,
        now: Millis,
    ) -> Result<ReportInputs, StoreError> {
        let period = Period::ending(kind, now);
        let first = period.previous_first_day;
        let (agents, integrations, slos, alerts) = tokio::try_join!(
            self.live_items::<LiveAgent>(tenant, Entity::Agent, Consistency::Eventual),
            self.live_items::<LiveIntegration>(tenant, Entity::Integration, Consistency::Eventual),
            self.slos(tenant),
            self.all_alerts_with(tenant, Consistency::Eventual),
        )?;
        let mut slo_inputs = Vec::with_capacity(slos.len());
        for slo in slos {
            let span = (i64::from(slo.window_days) * DAY_MS).max(now - period.previous_from());
            let data = self
                .report_slo_data(tenant, &slo, &agents, &integrations, span, now)
                .await?;
            slo_inputs.push(SloInput {
                status: status(&slo, &data, now),
                data,
            });
        }
        Ok(ReportInputs {
            tenant: tenant.to_owned(),
            period,
            agents: self.agent_inputs(tenant, agents, first, now).await?,
            integrations: self
                .integration_inputs(tenant, integrations, first, now)
                .await?,
            slos: slo_inputs,
            alerts: alerts.into_iter().map(|(a, _)| a).collect(),
        })
    }

    /// What an SLO is computed from over the `span` before `now`. Its source is among the
    /// lives just read: only its hour buckets are read.
    async fn report_slo_data(
        &self,
        tenant: &str,
        slo: &SloRecord,
        agents: &[LiveAgent],
        integrations: &[LiveIntegration],
        span: Millis,
        now: Millis,
    ) -> Result<SloData, StoreError> {
        let (entity, source) = match slo.source_type {
            SloSource::Agent => (
                Entity::Agent,
                agents
                    .iter()
                    .find(|a| a.record.agent_id == slo.source_id)
                    .map(|a| EntityData::from(a.clone()).slo_data(Vec::new())),
            ),
            SloSource::Integration => (
                Entity::Integration,
                integrations
                    .iter()
                    .find(|i| i.record.integration_id == slo.source_id)
                    .map(|i| EntityData::from(i.clone()).slo_data(Vec::new())),
            ),
        };
        Ok(match source {
            Some(mut data) => {
                let mut stored = self
                    .hours_between(tenant, entity, &slo.source_id, now - span, now)
                    .await?;
                stored.append(&mut data.hours);
                data.hours = stored;
                data
            }
            None => Default::default(),
        })
    }

    /// Each agent's day counters from day `first` on.
    async fn agent_inputs(
        &self,
        tenant: &str,
        agents: Vec<LiveAgent>,
        first: i64,
        now: Millis,
    ) -> Result<Vec<AgentInput>, StoreError> {
        read_each(agents, |live| async move {
            let (agent_id, agent_name) =
                (live.record.agent_id.clone(), live.record.agent_name.clone());
            let days = self
                .days_of(tenant, Entity::Agent, &agent_id, live, first, now)
                .await?;
            Ok(AgentInput {
                agent_id,
                agent_name,
                days,
            })
        })
        .await
    }

    /// Each integration's day counters and hour summaries from day `first` on.
    async fn integration_inputs(
        &self,
        tenant: &str,
        integrations: Vec<LiveIntegration>,
        first: i64,
        now: Millis,
    ) -> Result<Vec<IntegrationInput>, StoreError> {
        read_each(integrations, |live| async move {
            let id = live.record.integration_id.clone();
            let record = live.record.clone();
            let mut hours = self
                .hours_between(tenant, Entity::Integration, &id, first * DAY_MS, now)
                .await?;
            hours.extend(live.window.unmoved_hours());
            let days = self
                .days_of(tenant, Entity::Integration, &id, live, first, now)
                .await?;
            Ok(IntegrationInput {
                record,
                days,
                hours,
            })
        })
        .await
    }
}
