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
    /// What it receives.
    #[serde(default, skip_serializing_if = "Feed::is_full")]
    pub feed: Feed,
    /// The entities it shows, when it said (a delta feed then carries only their changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch: Option<Watch>,
}

/// Most ids one connection may watch, agents and integrations together: a few pages of a
/// dashboard, and a bound on the connection item (about 40 KB at 128-character ids).
pub const MAX_WATCHED: usize = 300;

/// The agents and integrations a connection shows (a page of each, a drill-down): its delta
/// feed carries only their changes, besides alerts, hosts and the system's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Watch {
    /// Agent ids, sorted, without repeats.
    #[serde(default)]
    pub agents: Vec<String>,
    /// Integration ids, sorted, without repeats.
    #[serde(default)]
    pub integrations: Vec<String>,
}

impl Watch {
    /// A watch of these ids (sorted, repeats dropped).
    pub fn new(mut agents: Vec<String>, mut integrations: Vec<String>) -> Self {
        for list in [&mut agents, &mut integrations] {
            list.sort();
            list.dedup();
        }
        Self {
            agents,
            integrations,
        }
    }

    /// Whether it shows agent `id`.
    pub fn agent(&self, id: &str) -> bool {
        self.agents.binary_search_by(|a| a.as_str().cmp(id)).is_ok()
    }

    /// Whether it shows integration `id`.
    pub fn integration(&self, id: &str) -> bool {
        self.integrations
            .binary_search_by(|a| a.as_str().cmp(id))
            .is_ok()
    }
}

/// What one connection receives: its feed and, on a delta feed, what it watches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Listening {
    /// The feed.
    pub feed: Feed,
    /// The entities it shows; `None`: every changed one.
    pub watch: Option<Watch>,
}

impl From<Feed> for Listening {
    fn from(feed: Feed) -> Self {
        Self { feed, watch: None }
    }
}

/// What a connection receives after each cycle: the whole update (`?mode=full`, the
/// default), or what changed (`?mode=delta`), with every changed entity or
/// (`&scope=overview`) only the system's figures and the alerts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    /// `health:update`, whole.
    #[default]
    Full,
    /// `health:delta` with the changed entities.
    Delta,
    /// `health:delta` without entities.
    DeltaOverview,
}

impl Feed {
    /// Every feed.
    pub const ALL: [Feed; 3] = [Feed::Full, Feed::Delta, Feed::DeltaOverview];

    /// Whether it is the default.
    pub fn is_full(&self) -> bool {
        *self == Feed::Full
    }

    /// The feed a connect request's `mode` and `scope` ask for.
    pub fn parse(mode: Option<&str>, scope: Option<&str>) -> Result<Self, String> {
        match (mode.unwrap_or("full"), scope.unwrap_or("all")) {
            ("full", "all") => Ok(Feed::Full),
            ("full", _) => Err("scope goes with mode=delta".to_owned()),
            ("delta", "all") => Ok(Feed::Delta),
            ("delta", "overview") => Ok(Feed::DeltaOverview),
            ("delta", other) => Err(format!("scope must be all or overview, not {other:?}")),
            (other, _) => Err(format!("mode must be full or delta, not {other:?}")),
        }
    }
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
        let record = ConnectionRecord {
            tenant: tenant.to_owned(),
            name: name.to_owned(),
            connected_at: now,
            key_id: None,
            feed: Feed::Full,
            watch: None,
        };
        self.put_connection(connection_id, record).await
    }

    /// Stores `record`, a connection of its tenant (with the key it connected with and the
    /// feed it asked for).
    pub async fn put_connection(
        &self,
        connection_id: &str,
        record: ConnectionRecord,
    ) -> Result<(), StoreError> {
        let (tenant, now) = (record.tenant.clone(), record.connected_at);
        let tenant = tenant.as_str();
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
    /// strongly consistent read of the tenant's connection items).
    pub async fn key_connections(
        &self,
        tenant: &str,
        key_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .connection_records(tenant, true)
            .await?
            .into_iter()
            .filter(|(_, c)| c.key_id.as_deref() == Some(key_id))
            .map(|(id, _)| id)
            .collect())
    }

    /// A tenant's connections with what each receives: one index query and a read of the
    /// connection items (eventually consistent on DynamoDB, as [`Store::connections`]).
    pub async fn connection_feeds(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, Listening)>, StoreError> {
        Ok(self
            .connection_records(tenant, false)
            .await?
            .into_iter()
            .map(|(id, c)| {
                let listening = Listening {
                    feed: c.feed,
                    watch: c.watch,
                };
                (id, listening)
            })
            .collect())
    }

    /// The stored connection `connection_id`, read strongly; `None` if it is not stored.
    pub async fn connection(
        &self,
        connection_id: &str,
    ) -> Result<Option<(ConnectionRecord, u64)>, StoreError> {
        match self.get_one(&layout::connection(connection_id)).await? {
            Some(StoredItem {
                record: Record::Connection(c),
                version,
                ..
            }) => Ok(Some((c, version))),
            Some(item) => Err(super::corrupt(&item.key, "expected a connection")),
            None => Ok(None),
        }
    }

    /// Stores what connection `connection_id` watches, over `stored` (its record and
    /// version as [`Store::connection`] read them): 1 write unit per KB of the item.
    /// [`StoreError::Conflict`] when the item changed since that read (read it again and
    /// retry).
    pub async fn set_watch(
        &self,
        connection_id: &str,
        (record, version): (ConnectionRecord, u64),
        watch: Option<Watch>,
    ) -> Result<(), StoreError> {
        let tenant = record.tenant.clone();
        let connected_at = record.connected_at;
        let write = Write {
            item: StoredItem {
                key: layout::connection(connection_id),
                record: Record::Connection(ConnectionRecord { watch, ..record }),
                version: version + 1,
                // The connection's life does not change with what it watches.
                expires_at: layout::expiry(connected_at, CONNECTION_TTL_MS),
                index: Some(layout::connection_index(&tenant, connection_id)),
            },
            condition: Condition::Version(version),
        };
        self.backend.write(vec![write]).await
    }

    /// A tenant's connections by id, read `strong`ly or eventually consistent.
    async fn connection_records(
        &self,
        tenant: &str,
        strong: bool,
    ) -> Result<Vec<(String, ConnectionRecord)>, StoreError> {
        let keys = self
            .backend
            .list_index(&layout::connections_partition(tenant))
            .await?;
        let items = if strong {
            self.backend.get(&keys).await?
        } else {
            self.backend.get_eventual(&keys).await?
        };
        Ok(items
            .into_iter()
            .flatten()
            .filter_map(|item| match item.record {
                Record::Connection(c) => {
                    layout::connection_id(&item.key.pk).map(|id| (id.to_owned(), c))
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

#[cfg(test)]
mod tests {
    use super::Feed;

    #[test]
    fn a_connect_request_names_its_feed_or_is_told_what_is_wrong() {
        assert_eq!(Feed::parse(None, None), Ok(Feed::Full));
        assert_eq!(Feed::parse(Some("full"), None), Ok(Feed::Full));
        assert_eq!(Feed::parse(Some("delta"), None), Ok(Feed::Delta));
        assert_eq!(
            Feed::parse(Some("delta"), Some("overview")),
            Ok(Feed::DeltaOverview)
        );
        assert_eq!(
            Feed::parse(Some("deltas"), None),
            Err("mode must be full or delta, not \"deltas\"".to_owned())
        );
        assert_eq!(
            Feed::parse(Some("delta"), Some("page")),
            Err("scope must be all or overview, not \"page\"".to_owned())
        );
        assert_eq!(
            Feed::parse(None, Some("overview")),
            Err("scope goes with mode=delta".to_owned())
        );
    }
}
