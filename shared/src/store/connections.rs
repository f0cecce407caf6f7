//! WebSocket connections: which tenant each live connection belongs to, so the broadcaster
//! can send a tenant's updates to its connections and nobody else's.

use serde::{Deserialize, Serialize};

use super::layout::{self, CONNECTION_TTL_MS};
use super::{Condition, Record, Store, StoreError, StoredItem, Write};
use crate::time::Millis;

/// A WebSocket connection the gateway accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionRecord {
    /// The tenant whose updates it receives.
    pub tenant: String,
    /// The holder of the key it connected with.
    pub name: String,
    /// When it connected.
    pub connected_at: Millis,
    /// The key it connected with, so revoking the key closes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Checks a connection id: 1 to 128 printable ASCII characters (API Gateway's ids are
/// base64, e.g. `L0SM9cOFvHcCIhw=`).
pub fn check_connection_id(id: &str) -> Result<(), String> {
    if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("connection id must be 1 to 128 printable ASCII characters".to_owned())
    }
}

impl Store {
    /// Stores a connection of `tenant`. A repeated `$connect` for the same id rewrites it.
    pub async fn add_connection(
        &self,
        tenant: &str,
        connection_id: &str,
        name: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.add_key_connection(tenant, connection_id, name, None, now)
            .await
    }

    /// [`Store::add_connection`], noting the key it connected with.
    pub async fn add_key_connection(
        &self,
        tenant: &str,
        connection_id: &str,
        name: &str,
        key_id: Option<&str>,
        now: Millis,
    ) -> Result<(), StoreError> {
        let record = ConnectionRecord {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            connected_at: now,
            key_id: key_id.map(str::to_owned),
        };
        self.backend
            .write(vec![Write {
                item: StoredItem {
                    key: layout::connection(connection_id),
                    record: Record::Connection(record),
                    version: 1,
                    expires_at: layout::expiry(now, CONNECTION_TTL_MS),
                    index: Some(layout::connection_index(tenant, connection_id)),
                },
                condition: Condition::None,
            }])
            .await
    }

    /// Forgets a connection (it closed, or the gateway answered 410 Gone for it).
    pub async fn remove_connection(&self, connection_id: &str) -> Result<(), StoreError> {
        self.backend
            .delete(&layout::connection(connection_id))
            .await
    }

    /// The ids of the tenant's connections opened with key `key_id` (one index query and a
    /// read of the tenant's connection items).
    pub async fn key_connections(
        &self,
        tenant: &str,
        key_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let keys = self
            .backend
            .list_index(&layout::connections_partition(tenant))
            .await?;
        let items = self.backend.get(&keys).await?;
        Ok(items
            .into_iter()
            .flatten()
            .filter_map(|item| match item.record {
                Record::Connection(c) if c.key_id.as_deref() == Some(key_id) => {
                    layout::connection_id(&item.key.pk).map(str::to_owned)
                }
                _ => None,
            })
            .collect())
    }

    /// The ids of a tenant's connections, read from the index alone (one query, no item
    /// reads). The index is eventually consistent on DynamoDB: a connection made a moment
    /// ago may miss one update and gets the next.
    pub async fn connections(&self, tenant: &str) -> Result<Vec<String>, StoreError> {
        let keys = self
            .backend
            .list_index(&layout::connections_partition(tenant))
            .await?;
        Ok(keys
            .iter()
            .filter_map(|k| layout::connection_id(&k.pk).map(str::to_owned))
            .collect())
    }
}
