//! The agents aggregate: reading an agent's health and registering or updating agents.

use super::layout::Entity;
use super::live::AgentData;
use super::tenant::Consistency;
use super::{Store, StoreError};
use crate::domain::health::{agent_health, AgentHealth};
use crate::domain::live::{Live, LiveAgent};
use crate::domain::records::AgentRecord;
use crate::time::Millis;

/// Changes an operator makes to an agent; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// New display name.
    pub agent_name: Option<String>,
    /// Pause or resume.
    pub paused: Option<bool>,
    /// A confidence reading, 0..=1.
    pub confidence_score: Option<f64>,
}

impl Store {
    /// An agent's health at `now`; `None` if the tenant has no such agent. One read of its
    /// live item, whatever the number of events.
    pub async fn agent_health(
        &self,
        tenant: &str,
        agent_id: &str,
        now: Millis,
    ) -> Result<Option<AgentHealth>, StoreError> {
        let live: Option<LiveAgent> = self.live_item(tenant, Entity::Agent, agent_id).await?;
        Ok(live.map(|l| health_of(&AgentData::from(l), now)))
    }

    /// Creates or updates an agent and answers its health.
    pub async fn put_agent(
        &self,
        tenant: &str,
        agent_id: &str,
        update: &AgentUpdate,
        now: Millis,
    ) -> Result<AgentHealth, StoreError> {
        self.update_live(
            tenant,
            Entity::Agent,
            agent_id,
            now,
            |live: Option<LiveAgent>| {
                let mut live = live.unwrap_or_else(|| Live::new(AgentRecord::new(agent_id, now)));
                let agent = &mut live.record;
                if let Some(name) = &update.agent_name {
                    agent.agent_name.clone_from(name);
                }
                if let Some(paused) = update.paused {
                    agent.paused = paused;
                }
                if let Some(c) = update.confidence_score {
                    agent.report_confidence(c, now);
                }
                let health = health_of(&AgentData::from(live.clone()), now);
                Ok((Some(live), health))
            },
        )
        .await
    }

    /// The health of every agent of the tenant, by ascending `agent_id`.
    pub async fn list_agent_health(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Vec<AgentHealth>, StoreError> {
        Ok(self
            .load_agents(tenant, Consistency::Strong)
            .await?
            .iter()
            .map(|d| health_of(d, now))
            .collect())
    }
}

impl Store {
    /// Up to `limit` agents' health after agent id `after`, by id, and the id to continue
    /// after if more follow.
    pub async fn agent_health_page(
        &self,
        tenant: &str,
        now: Millis,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<AgentHealth>, Option<String>), StoreError> {
        let (live, next) = self
            .live_page::<LiveAgent>(tenant, Entity::Agent, after, limit)
            .await?;
        let page = live
            .into_iter()
            .map(|l| health_of(&AgentData::from(l), now))
            .collect();
        Ok((page, next))
    }
}

/// An agent's health from its data.
pub fn health_of(d: &AgentData, now: Millis) -> AgentHealth {
    agent_health(&d.record, &d.minutes, &d.days, &d.latency, now)
}

/// The bucket index of a day or mark bucket.
pub(crate) fn bucket(key: &super::ItemKey) -> Result<i64, StoreError> {
    super::layout::bucket_index(&key.sk)
        .ok_or_else(|| super::ingest::corrupt(key, "bad bucket sort key"))
}
