//! Gathers what a report is built from: every agent's and integration's day counters over
//! two periods, integrations' hour summaries, SLOs and alerts.

use futures::{StreamExt, TryStreamExt};

use super::layout::Entity;
use super::tenant::Consistency;
use super::{Store, StoreError};
use crate::domain::live::{LiveAgent, LiveIntegration};
use crate::domain::report::{
    AgentInput, IntegrationInput, Period, PeriodKind, ReportInputs, SloInput,
};
use crate::domain::slo::status;
use crate::time::{Millis, DAY_MS};

/// Entities whose history is read at the same time.
const CONCURRENT_READS: usize = 16;

impl Store {
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
        let agents: Vec<AgentInput> = futures::stream::iter(agents)
            .map(|live| async move {
                let (agent_id, agent_name) =
                    (live.record.agent_id.clone(), live.record.agent_name.clone());
                let days = self
                    .days_of(tenant, Entity::Agent, &agent_id, live, first, now)
                    .await?;
                Ok::<_, StoreError>(AgentInput {
                    agent_id,
                    agent_name,
                    days,
                })
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let integrations: Vec<IntegrationInput> = futures::stream::iter(integrations)
            .map(|live| async move {
                let id = live.record.integration_id.clone();
                let record = live.record.clone();
                let mut hours = self
                    .hours_between(tenant, Entity::Integration, &id, first * DAY_MS, now)
                    .await?;
                hours.extend(live.window.unmoved_hours());
                let days = self
                    .days_of(tenant, Entity::Integration, &id, live, first, now)
                    .await?;
                Ok::<_, StoreError>(IntegrationInput {
                    record,
                    days,
                    hours,
                })
            })
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        let mut slo_inputs = Vec::with_capacity(slos.len());
        for slo in slos {
            let window = i64::from(slo.window_days) * DAY_MS;
            let span = window.max(now - period.previous_from());
            let data = self
                .slo_data(tenant, &slo, span, now)
                .await?
                .unwrap_or_default();
            slo_inputs.push(SloInput {
                status: status(&slo, &data, now),
                data,
            });
        }
        Ok(ReportInputs {
            tenant: tenant.to_owned(),
            period,
            agents,
            integrations,
            slos: slo_inputs,
            alerts: alerts.into_iter().map(|(a, _)| a).collect(),
        })
    }
}
