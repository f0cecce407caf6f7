//! The integrations aggregate: reading an integration's health and registering integrations.

use super::ingest::corrupt;
use super::layout::{self, Entity};
use super::tenant::integration_data;
use super::{retry_on_conflict, Condition, Record, Store, StoreError, StoredItem, Write};
use crate::domain::health::IntegrationHealth;
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
    pub async fn integration_health(
        &self,
        tenant: &str,
        integration_id: &str,
        now: Millis,
        latency_threshold_ms: f64,
    ) -> Result<Option<IntegrationHealth>, StoreError> {
        let (recent, day_items) = self
            .read_health_ranges(tenant, Entity::Integration, integration_id, now)
            .await?;
        Ok(integration_data(recent, day_items)?.map(|d| d.health(now, latency_threshold_ms)))
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
        let key = layout::record(tenant, Entity::Integration, integration_id);
        retry_on_conflict(|| async {
            let (mut integration, condition, version) = match self.get_one(&key).await? {
                Some(StoredItem {
                    record: Record::Integration(i),
                    version,
                    ..
                }) => (i, Condition::Version(version), version),
                Some(_) => return Err(corrupt(&key, "expected an integration")),
                None => (
                    IntegrationRecord::new(integration_id, now),
                    Condition::NotExists,
                    0,
                ),
            };
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
            let write = Write {
                item: StoredItem {
                    key: key.clone(),
                    record: Record::Integration(integration),
                    version: version + 1,
                    expires_at: None,
                    index: Some(layout::index(tenant, Entity::Integration, integration_id)),
                },
                condition,
            };
            self.backend.write(vec![write]).await
        })
        .await?;
        self.integration_health(tenant, integration_id, now, latency_threshold_ms)
            .await?
            .ok_or_else(|| corrupt(&key, "the integration just written cannot be read"))
    }
}
