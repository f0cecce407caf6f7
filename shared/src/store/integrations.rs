//! The integrations aggregate: reading an integration's health and registering integrations.

use super::layout::Entity;
use super::live::IntegrationData;
use super::{Store, StoreError};
use crate::domain::health::IntegrationHealth;
use crate::domain::live::{Live, LiveIntegration};
use crate::domain::records::{ConnectionState, IntegrationRecord, Probe};
use crate::time::Millis;

/// Changes to an integration; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IntegrationUpdate {
    /// New display name.
    pub integration_name: Option<String>,
    /// A probe to run every collector cycle (already checked by the caller).
    pub probe: Option<Probe>,
}

impl Store {
    /// An integration's health at `now`; `None` if the tenant has no such integration.
    /// One read of its live item.
    pub async fn integration_health(
        &self,
        tenant: &str,
        integration_id: &str,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<Option<IntegrationHealth>, StoreError> {
        let live: Option<LiveIntegration> = self
            .live_item(tenant, Entity::Integration, integration_id)
            .await?;
        Ok(live.map(|l| IntegrationData::from(l).health(now, latency_threshold_ms)))
    }

    /// Creates or updates an integration and answers its health.
    pub async fn put_integration(
        &self,
        tenant: &str,
        integration_id: &str,
        update: &IntegrationUpdate,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<IntegrationHealth, StoreError> {
        self.update_live(
            tenant,
            Entity::Integration,
            integration_id,
            now,
            |live: Option<LiveIntegration>| {
                let mut live =
                    live.unwrap_or_else(|| Live::new(IntegrationRecord::new(integration_id, now)));
                let integration = &mut live.record;
                if let Some(name) = &update.integration_name {
                    integration.integration_name.clone_from(name);
                }
                if let Some(probe) = &update.probe {
                    integration.probe = Some(probe.clone());
                    // A probed integration is being set up until its first probe answers.
                    if integration.state == ConnectionState::Uninitialized {
                        integration.state = ConnectionState::Initializing;
                    }
                }
                let health = IntegrationData::from(live.clone()).health(now, latency_threshold_ms);
                Ok((Some(live), health))
            },
        )
        .await
    }

    /// Up to `limit` integrations' health after id `after`, by id, and the id to continue
    /// after if more follow.
    pub async fn integration_health_page(
        &self,
        tenant: &str,
        now: Millis,
        latency_threshold_ms: f64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<IntegrationHealth>, Option<String>), StoreError> {
        let (live, next) = self
            .live_page::<LiveIntegration>(tenant, Entity::Integration, after, limit)
            .await?;
        let page = live
            .into_iter()
            .map(|l| IntegrationData::from(l).health(now, latency_threshold_ms))
            .collect();
        Ok((page, next))
    }
}
