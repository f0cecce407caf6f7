//! The notifications aggregate: channels, rules, silences and each channel's notification
//! state in one small partition per tenant (one Query reads it all), and the outbox and
//! delivery log of messages in another.

use std::collections::BTreeMap;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::ingest::unexpected;
use super::layout;
use super::{
    retry_on_conflict, skip_unreadable, Condition, ItemKey, Record, Store, StoreError, StoredItem,
    Write,
};
use crate::domain::alerts::AlertRecord;
use crate::domain::notify::{ChannelRecord, RuleRecord, SilenceRecord};
use crate::domain::notify::{ChannelState, Kind};
use crate::time::{format_rfc3339, Millis, DAY_MS};

/// How long a message and its delivery log are kept after it was decided.
pub const NOTIFICATION_TTL_MS: Millis = 30 * DAY_MS;
/// How long an ended silence is kept (it is no longer listed).
pub const ENDED_SILENCE_TTL_MS: Millis = 7 * DAY_MS;

/// A channel's notification state as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelStateRecord {
    /// The channel.
    pub channel_id: String,
    /// The state.
    pub state: ChannelState,
}

/// Where a message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; retried when due.
    Pending,
    /// The channel accepted it.
    Delivered,
    /// Given up: a final refusal, or retries exhausted.
    Failed,
}

/// One message to one channel: the outbox entry while pending, the delivery log after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Stable across retries; receivers deduplicate on it.
    pub notification_id: String,
    /// The channel.
    pub channel_id: String,
    /// What kind of message (stored as `message_kind`: `kind` tags the item's type).
    #[serde(rename = "message_kind")]
    pub kind: Kind,
    /// The alerts as they were when it was decided.
    pub alerts: Vec<AlertRecord>,
    /// Display names of the alerts' sources, by source id.
    #[serde(default)]
    pub source_names: BTreeMap<String, String>,
    /// When it was decided.
    pub created_at: Millis,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_attempt_at: Millis,
    /// An attempt in progress holds the message until then, so two notifiers never send
    /// it at the same time; after a crash it is retried once this passes.
    #[serde(default)]
    pub lease_until: Option<Millis>,
    /// When the channel accepted it.
    pub delivered_at: Option<Millis>,
    /// The last failure.
    pub last_error: Option<String>,
}

impl NotificationRecord {
    /// The delivery log's shape.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "notification_id": self.notification_id,
            "channel_id": self.channel_id,
            "status": self.status,
            "attempts": self.attempts,
            "delivered_at": self.delivered_at.map(format_rfc3339),
            "last_error": self.last_error,
            "kind": self.kind,
            "created_at": format_rfc3339(self.created_at),
            "alert_ids": self.alerts.iter().map(|a| a.alert_id.as_str()).collect::<Vec<_>>(),
        })
    }
}

/// The deployment's secret for acknowledge links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretRecord {
    /// 32 random bytes, hex.
    pub hex: String,
}

/// Everything of a tenant's notification configuration, with versions.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotifyConfig {
    /// Channels by id.
    pub channels: Vec<ChannelRecord>,
    /// Rules by id.
    pub rules: Vec<RuleRecord>,
    /// Silences and windows by id, ended ones included until they expire.
    pub silences: Vec<SilenceRecord>,
    /// Each channel's state and its version.
    pub states: BTreeMap<String, (ChannelState, u64)>,
}

/// A new silence id: `s_` and 16 random hex digits.
pub fn new_silence_id() -> String {
    super::keys::random_hex::<8>("s_")
}

fn item(key: ItemKey, record: Record, version: u64, expires_at: Option<i64>) -> StoredItem {
    StoredItem {
        key,
        record,
        version,
        expires_at,
        index: None,
    }
}

impl Store {
    /// The tenant's channels, rules, silences and channel states: one Query.
    pub async fn notify_config(&self, tenant: &str) -> Result<NotifyConfig, StoreError> {
        let items = self
            .backend
            .query(&layout::notify_partition(tenant), " ", "\u{10ffff}")
            .await?;
        let mut config = NotifyConfig::default();
        let mut results = Vec::new();
        for i in items {
            match i.record {
                Record::Channel(c) => config.channels.push(c),
                Record::Rule(r) => config.rules.push(r),
                Record::Silence(s) => config.silences.push(s),
                Record::ChannelState(s) => {
                    config.states.insert(s.channel_id, (s.state, i.version));
                }
                _ => results.push(Err::<(), _>(unexpected(
                    &i,
                    "expected notification configuration",
                ))),
            }
        }
        skip_unreadable(tenant, results)?;
        Ok(config)
    }

    /// One channel.
    pub async fn channel(
        &self,
        tenant: &str,
        channel_id: &str,
    ) -> Result<Option<ChannelRecord>, StoreError> {
        let key = layout::channel(tenant, channel_id);
        match self.get_one(&key).await? {
            None => Ok(None),
            Some(StoredItem {
                record: Record::Channel(c),
                ..
            }) => Ok(Some(c)),
            Some(other) => Err(unexpected(&other, "expected a channel")),
        }
    }

    /// Creates or replaces a channel; `build` gets the stored one (to keep its creation
    /// time and write-only values) and returns the new one.
    pub async fn put_channel(
        &self,
        tenant: &str,
        channel_id: &str,
        build: impl Fn(Option<&ChannelRecord>) -> ChannelRecord,
    ) -> Result<ChannelRecord, StoreError> {
        let key = layout::channel(tenant, channel_id);
        retry_on_conflict(|| async {
            let (old, condition, version) = match self.get_one(&key).await? {
                None => (None, Condition::NotExists, 0),
                Some(StoredItem {
                    record: Record::Channel(c),
                    version,
                    ..
                }) => (Some(c), Condition::Version(version), version),
                Some(other) => return Err(unexpected(&other, "expected a channel")),
            };
            let new = build(old.as_ref());
            self.backend
                .write(vec![Write {
                    item: item(key.clone(), Record::Channel(new.clone()), version + 1, None),
                    condition,
                }])
                .await?;
            Ok(new)
        })
        .await
    }

    /// Deletes a channel and its state; `false` if it did not exist.
    pub async fn delete_channel(&self, tenant: &str, channel_id: &str) -> Result<bool, StoreError> {
        let existed = self
            .delete_present(&layout::channel(tenant, channel_id))
            .await?;
        self.backend
            .delete(&layout::channel_state(tenant, channel_id))
            .await?;
        Ok(existed)
    }

    /// Deletes an item; whether it existed (for a 404).
    async fn delete_present(&self, key: &ItemKey) -> Result<bool, StoreError> {
        let existed = self.get_one(key).await?.is_some();
        self.backend.delete(key).await?;
        Ok(existed)
    }

    /// Creates or replaces a rule.
    pub async fn put_rule(&self, tenant: &str, rule: &RuleRecord) -> Result<(), StoreError> {
        let key = layout::rule(tenant, &rule.rule_id);
        self.put_one(key, Record::Rule(rule.clone()), None).await
    }

    /// Deletes a rule; `false` if it did not exist.
    pub async fn delete_rule(&self, tenant: &str, rule_id: &str) -> Result<bool, StoreError> {
        self.delete_present(&layout::rule(tenant, rule_id)).await
    }

    /// Stores a new silence.
    pub async fn put_silence(
        &self,
        tenant: &str,
        silence: &SilenceRecord,
    ) -> Result<(), StoreError> {
        let expires = silence
            .ends_at
            .filter(|_| silence.schedule.is_none())
            .and_then(|t| layout::expiry(t, ENDED_SILENCE_TTL_MS));
        let key = layout::silence(tenant, &silence.silence_id);
        self.put_one(key, Record::Silence(silence.clone()), expires)
            .await
    }

    /// Ends a silence now (a maintenance window is removed); `None` if there is none.
    pub async fn end_silence(
        &self,
        tenant: &str,
        silence_id: &str,
        now: Millis,
    ) -> Result<Option<SilenceRecord>, StoreError> {
        let key = layout::silence(tenant, silence_id);
        let mut silence = match self.get_one(&key).await? {
            None => return Ok(None),
            Some(StoredItem {
                record: Record::Silence(s),
                ..
            }) => s,
            Some(other) => return Err(unexpected(&other, "expected a silence")),
        };
        if silence.schedule.is_some() {
            self.backend.delete(&key).await?;
        } else if silence.ends_at.is_none_or(|e| e > now) {
            silence.ends_at = Some(now);
            self.put_silence(tenant, &silence).await?;
        }
        Ok(Some(silence))
    }

    /// Stores a channel's new state and the messages decided with it, all or nothing:
    /// [`StoreError::Conflict`] if the state changed since it was read at `expected`
    /// (another notifier decided first; nothing is written).
    pub async fn commit_plan(
        &self,
        tenant: &str,
        channel_id: &str,
        state: &ChannelState,
        expected: Option<u64>,
        messages: &[NotificationRecord],
    ) -> Result<(), StoreError> {
        let mut writes = vec![state_write(tenant, channel_id, state, expected)];
        writes.extend(messages.iter().map(|m| Write {
            item: notification_item(tenant, m, 1),
            condition: Condition::NotExists,
        }));
        self.backend.write(writes).await
    }

    /// Stores a channel's state if it is still at `expected`.
    pub async fn save_channel_state(
        &self,
        tenant: &str,
        channel_id: &str,
        state: &ChannelState,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        self.backend
            .write(vec![state_write(tenant, channel_id, state, expected)])
            .await
    }

    /// Messages by id, with their versions; absent ones are left out.
    pub async fn notifications(
        &self,
        tenant: &str,
        ids: &[String],
    ) -> Result<Vec<(NotificationRecord, u64)>, StoreError> {
        let keys: Vec<ItemKey> = ids
            .iter()
            .map(|id| layout::notification(tenant, id))
            .collect();
        let mut out = Vec::new();
        for chunk in keys.chunks(100) {
            let found = self.backend.get(chunk).await?;
            let results = found.into_iter().flatten().map(|i| match i.record {
                Record::Notification(n) => Ok((n, i.version)),
                _ => Err(unexpected(&i, "expected a notification")),
            });
            out.extend(skip_unreadable(tenant, results.collect::<Vec<_>>())?);
        }
        Ok(out)
    }

    /// Stores a message if it is still at `expected`.
    pub async fn save_notification(
        &self,
        tenant: &str,
        notification: &NotificationRecord,
        expected: u64,
    ) -> Result<(), StoreError> {
        self.backend
            .write(vec![Write {
                item: notification_item(tenant, notification, expected + 1),
                condition: Condition::Version(expected),
            }])
            .await
    }

    /// The delivery log of one alert: every message that carried it, oldest first. Reads
    /// the tenant's log partition (30 days of messages).
    pub async fn notifications_for_alert(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let items = self
            .backend
            .query(&layout::notifications_partition(tenant), " ", "\u{10ffff}")
            .await?;
        let results = items.into_iter().map(|i| match i.record {
            Record::Notification(n) => Ok(n),
            _ => Err(unexpected(&i, "expected a notification")),
        });
        let mut log: Vec<NotificationRecord> =
            skip_unreadable(tenant, results.collect::<Vec<_>>())?
                .into_iter()
                .filter(|n| n.alerts.iter().any(|a| a.alert_id == alert_id))
                .collect();
        log.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then(a.notification_id.cmp(&b.notification_id))
        });
        Ok(log)
    }

    /// The deployment's secret for acknowledge links, created on first use (whoever
    /// creates it first wins; everyone then reads the same one).
    pub async fn ack_secret(&self) -> Result<Vec<u8>, StoreError> {
        let key = layout::ack_secret();
        retry_on_conflict(|| async {
            if let Some(found) = self.get_one(&key).await? {
                return match &found.record {
                    Record::Secret(s) => {
                        hex::decode(&s.hex).map_err(|_| unexpected(&found, "secret is not hex"))
                    }
                    _ => Err(unexpected(&found, "expected a secret")),
                };
            }
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            self.backend
                .write(vec![Write {
                    item: item(
                        key.clone(),
                        Record::Secret(SecretRecord {
                            hex: hex::encode(bytes),
                        }),
                        1,
                        None,
                    ),
                    condition: Condition::NotExists,
                }])
                .await?;
            Ok(bytes.to_vec())
        })
        .await
    }
}

fn state_write(
    tenant: &str,
    channel_id: &str,
    state: &ChannelState,
    expected: Option<u64>,
) -> Write {
    Write {
        item: item(
            layout::channel_state(tenant, channel_id),
            Record::ChannelState(ChannelStateRecord {
                channel_id: channel_id.to_owned(),
                state: state.clone(),
            }),
            expected.unwrap_or(0) + 1,
            None,
        ),
        condition: expected.map_or(Condition::NotExists, Condition::Version),
    }
}

fn notification_item(tenant: &str, n: &NotificationRecord, version: u64) -> StoredItem {
    item(
        layout::notification(tenant, &n.notification_id),
        Record::Notification(n.clone()),
        version,
        layout::expiry(n.created_at, NOTIFICATION_TTL_MS),
    )
}

impl Store {
    /// Changes a channel's state with `change`, re-reading and retrying on a conflict.
    /// Nothing happens if the channel has no state yet.
    pub async fn update_channel_state(
        &self,
        tenant: &str,
        channel_id: &str,
        change: impl Fn(&mut ChannelState),
    ) -> Result<(), StoreError> {
        let key = layout::channel_state(tenant, channel_id);
        retry_on_conflict(|| async {
            let (mut state, version) = match self.get_one(&key).await? {
                None => return Ok(()),
                Some(StoredItem {
                    record: Record::ChannelState(s),
                    version,
                    ..
                }) => (s.state, version),
                Some(other) => return Err(unexpected(&other, "expected a channel state")),
            };
            change(&mut state);
            self.save_channel_state(tenant, channel_id, &state, Some(version))
                .await
        })
        .await
    }
}
