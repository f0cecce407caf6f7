//! The agents aggregate: reading an agent's health and registering or updating agents.

use super::ingest::corrupt;
use super::layout::{self, Entity};
use super::tenant::agent_data;
use super::{retry_on_conflict, Condition, Record, Store, StoreError, StoredItem, Write};
use crate::domain::health::{agent_health, AgentHealth};
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
    /// An agent's health at `now`; `None` if the tenant has no such agent. Costs two range
    /// reads whatever the number of events: the record with the hour's minute buckets, and
    /// the trend's day buckets.
    pub async fn agent_health(
        &self,
        tenant: &str,
        agent_id: &str,
        now: Millis,
    ) -> Result<Option<AgentHealth>, StoreError> {
        let (recent, days) = self
            .read_health_ranges(tenant, Entity::Agent, agent_id, now)
            .await?;
        Ok(agent_data(recent, days)?.map(|d| agent_health(&d.record, &d.minutes, &d.days, now)))
    }

    /// Creates or updates an agent and answers its health.
    pub async fn put_agent(
        &self,
        tenant: &str,
        agent_id: &str,
        update: &AgentUpdate,
        now: Millis,
    ) -> Result<AgentHealth, StoreError> {
        let key = layout::record(tenant, Entity::Agent, agent_id);
        retry_on_conflict(|| async {
            let current = self.get_one(&key).await?;
            let (mut agent, condition, version) = match current {
                Some(StoredItem {
                    record: Record::Agent(a),
                    version,
                    ..
                }) => (a, Condition::Version(version), version),
                Some(_) => return Err(corrupt(&key, "expected an agent")),
                None => (AgentRecord::new(agent_id, now), Condition::NotExists, 0),
            };
            if let Some(name) = &update.agent_name {
                agent.agent_name.clone_from(name);
            }
            if let Some(paused) = update.paused {
                agent.paused = paused;
            }
            if let Some(c) = update.confidence_score {
                agent.report_confidence(c, now);
            }
            let write = Write {
                item: StoredItem {
                    key: key.clone(),
                    record: Record::Agent(agent),
                    version: version + 1,
                    expires_at: None,
                    index: Some(layout::index(tenant, Entity::Agent, agent_id)),
                },
                condition,
            };
            self.backend.write(vec![write]).await
        })
        .await?;
        self.agent_health(tenant, agent_id, now)
            .await?
            .ok_or_else(|| corrupt(&key, "the agent just written cannot be read"))
    }

    /// The health of every agent of the tenant, by ascending `agent_id`.
    pub async fn list_agent_health(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Vec<AgentHealth>, StoreError> {
        Ok(self
            .load_agents(tenant, now)
            .await?
            .iter()
            .map(|d| agent_health(&d.record, &d.minutes, &d.days, now))
            .collect())
    }
}

/// The bucket index of a minute or day item.
pub(crate) fn bucket(key: &super::ItemKey) -> Result<i64, StoreError> {
    layout::bucket_index(&key.sk).ok_or_else(|| corrupt(key, "bad bucket sort key"))
}
