//! Storage: one item-level [`Backend`] trait with two implementations (embedded redb and
//! DynamoDB), and the aggregate repositories (ingestion, agents, integrations, API keys)
//! written once on top of it as methods of [`Store`].
//!
//! Why one item-level trait rather than one trait per aggregate per backend: every rule
//! (idempotent ingestion, optimistic concurrency, bucket layout) then exists once, and the
//! conformance suite that runs against both backends tests the same code paths that serve
//! requests. The layout is a single-table design; see `docs/data-model.md`.
//!
//! What a [`Store`] can do, by aggregate (each a module of `impl Store` blocks; the
//! conformance suite, `tests/tests/store_conformance.rs`, runs each against both backends):
//!
//! | aggregate | module | what it does |
//! |---|---|---|
//! | events | [`ingest`], [`live`] | idempotent batches into live items, marks and failures |
//! | agents | [`agents`] | health of one, of all (by page), registration |
//! | integrations | [`integrations`], [`system`] | health of one, of all (by page), registration with a probe |
//! | hosts and the tenant | [`system`] | system health, hour and day history |
//! | a tenant's whole state | [`tenant`] | registration, the cycle claim, live items, the data a cycle reads, probe results |
//! | alerts | [`alerts`] | active and resolved alerts, saving, acknowledging (guarded for links) |
//! | failures | [`failures`] | the newest failures and pages of them |
//! | keys | [`keys`] | API keys: creation, lookup by hash, listing, revocation |
//! | badges | [`badges`] | status badges by token |
//! | notifications | [`notify`] | channels, rules, silences, channel state, the notification log, ack secrets |
//! | SLOs | [`slo`] | definitions and their minute summaries and statuses |
//! | reports | [`report`] | hour buckets and the inputs of a report |
//! | WebSocket connections | [`connections`] | connections by tenant and by key |
//! | quotas | [`quota`] | counted creations and leases (exports) |

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::live::{LiveAgent, LiveHost, LiveIntegration};
use crate::domain::records::{AgentCounters, HostCounters, IntegrationCounters, SystemRecord};

pub mod agents;
pub mod alerts;
pub mod badges;
pub mod connections;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "embedded")]
pub mod embedded;
pub mod failures;
pub mod ingest;
pub mod integrations;
pub mod keys;
pub mod layout;
pub mod live;
pub mod notify;
pub mod quota;
pub mod report;
pub mod slo;
pub mod summary;
pub mod system;
pub mod tenant;

/// The primary key of an item: partition key and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    /// Partition key.
    pub pk: String,
    /// Sort key.
    pub sk: String,
}

/// The key of an item in the secondary index, which lists tenants, a tenant's API keys or
/// its WebSocket connections without touching their data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexKey {
    /// The list, e.g. `T#acme#KEYS`.
    pub pk: String,
    /// The listed item's id, which orders the list.
    pub sk: String,
}

/// Everything the product stores, one variant per item type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Record {
    Agent(LiveAgent),
    AgentCounters(AgentCounters),
    Integration(LiveIntegration),
    IntegrationCounters(IntegrationCounters),
    Host(LiveHost),
    HostCounters(HostCounters),
    System(SystemRecord),
    Marks(MarkBucket),
    Hour(crate::domain::latency::HourSummary),
    ApiKey(ApiKeyRecord),
    Alert(crate::domain::alerts::AlertRecord),
    Tenant(TenantRecord),
    Cycle(CycleRecord),
    Connection(connections::ConnectionRecord),
    Channel(crate::domain::notify::ChannelRecord),
    Rule(crate::domain::notify::RuleRecord),
    Silence(crate::domain::notify::SilenceRecord),
    ChannelState(notify::ChannelStateRecord),
    Notification(notify::NotificationRecord),
    Secret(notify::SecretRecord),
    Slo(crate::domain::slo::SloRecord),
    Failure(crate::domain::failures::FailureRecord),
    Badge(badges::BadgeRecord),
    Counts(quota::CountsRecord),
    Leases(quota::LeasesRecord),
    Summary(summary::SummaryRecord),
    /// An item whose content could not be parsed (damaged, or written by a newer version),
    /// with the reason. Backends return it instead of failing the whole read, so one such
    /// item degrades only its own entity; it is never written.
    #[serde(skip)]
    Unreadable(String),
}

/// A tenant, listed so the collector knows whom to evaluate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// When the tenant's first key was created.
    pub created_at: i64,
}

/// The latest collector cycle that claimed a tenant, so overlapping collector runs evaluate
/// each cycle once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleRecord {
    /// The cycle: time divided by the polling interval.
    pub slot: i64,
    /// When it was claimed.
    pub claimed_at: i64,
}

/// The marks of one hour's events of one entity that moved out of its live item, so a
/// retry of an older event still counts once (see [`crate::domain::live::Seen`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MarkBucket {
    /// The marks.
    #[serde(with = "crate::domain::live::packed_marks")]
    pub marks: Vec<u64>,
}

/// An API key, stored by the SHA-256 of the key; the key itself is never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// The tenant the key belongs to.
    pub tenant: String,
    /// Granted scopes (`read`, `ingest`, `admin`).
    pub scopes: Vec<String>,
    /// Who holds the key, shown as the acknowledger of alerts.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// When it was last used, to within [`keys::LAST_USED_PRECISION_MS`]; `None`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
    /// When it was revoked; a revoked key is refused and kept only to be listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// One stored item with its bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredItem {
    /// Its key.
    pub key: ItemKey,
    /// Its content.
    pub record: Record,
    /// Incremented by every write; conditions compare it.
    pub version: u64,
    /// Expiry in epoch seconds (DynamoDB TTL semantics: deletion may lag).
    pub expires_at: Option<i64>,
    /// Its entry in the secondary index, if it is listed there.
    pub index: Option<IndexKey>,
}

/// A range of sort keys in one partition, for [`Backend::query_many`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Partition key.
    pub pk: String,
    /// First sort key (inclusive).
    pub from: String,
    /// Last sort key (inclusive).
    pub to: String,
}

/// Which end of a range [`Backend::query_end`] reads, and how many items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The first items, lowest sort key first.
    First(usize),
    /// The last items, highest sort key first, eventually consistent.
    Last(usize),
}

impl Range {
    /// The range `from..=to` of partition `pk`.
    pub fn new(pk: impl Into<String>, from: impl Into<String>, to: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            from: from.into(),
            to: to.into(),
        }
    }
}

/// What must hold for a write to happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Nothing.
    None,
    /// The item does not exist yet.
    NotExists,
    /// The stored item has this version.
    Version(u64),
}

/// A conditional put.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The full new item.
    pub item: StoredItem,
    /// Its precondition.
    pub condition: Condition,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write lost a race; nothing of that write was applied.
    #[error("a concurrent write changed the data; retry")]
    Conflict,
    /// An item could not be read back; it is reported, never skipped.
    #[error("stored item {pk}/{sk} is corrupt: {reason}")]
    Corrupt {
        /// Partition key.
        pk: String,
        /// Sort key.
        sk: String,
        /// What is wrong.
        reason: String,
    },
    /// A creation would pass a per-tenant quota; nothing was written.
    #[error("this tenant's {quota} quota of {limit} is used up")]
    Quota {
        /// The quota's name.
        quota: &'static str,
        /// Its limit.
        limit: u64,
    },
    /// The backend failed; the cause is kept for the logs.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Item-level access to a key-value store with sorted keys, conditional atomic writes and
/// one secondary index. Implemented by the embedded and the DynamoDB backend.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Reads items by key; the result has one entry per key, in order, `None` if absent.
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError>;
    /// [`Backend::get`], eventually consistent where the backend distinguishes (DynamoDB:
    /// half the read units; a write of the last second may be missing). For reads whose
    /// staleness a conditional write will catch.
    async fn get_eventual(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        self.get(keys).await
    }
    /// Reads the items of partition `pk` whose sort key is within `from..=to`, ascending.
    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError>;
    /// [`Backend::query`], eventually consistent where the backend distinguishes (DynamoDB:
    /// half the read units; a write of the last second may be missing).
    async fn query_eventual(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<StoredItem>, StoreError> {
        self.query(pk, from, to).await
    }
    /// At most `end`'s count of items from one end of [`Backend::query`] over `range`: the
    /// first, a page of a list; or the last, highest sort key first and eventually
    /// consistent, the recent end of a time-keyed range. On DynamoDB it reads (and bills)
    /// only those items.
    async fn query_end(&self, range: &Range, end: End) -> Result<Vec<StoredItem>, StoreError> {
        let mut items = self.query(&range.pk, &range.from, &range.to).await?;
        match end {
            End::Last(limit) => {
                let keep = items.len().saturating_sub(limit);
                items.drain(..keep);
                items.reverse();
            }
            End::First(limit) => items.truncate(limit),
        }
        Ok(items)
    }
    /// Runs many [`Backend::query`] calls; the result has one entry per range, in order.
    /// Backends override it to share one read transaction or to run the queries
    /// concurrently; the default runs them one after another.
    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        let mut out = Vec::with_capacity(ranges.len());
        for r in ranges {
            out.push(self.query(&r.pk, &r.from, &r.to).await?);
        }
        Ok(out)
    }
    /// Lists the keys of items indexed under `index_pk`, by ascending index sort key.
    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError>;
    /// Applies all writes or none; [`StoreError::Conflict`] if any condition fails.
    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError>;
    /// Deletes an item and its index entry. Deleting an absent item is not an error, so a
    /// retried delete is harmless.
    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError>;
    /// Deletes several items, as [`Backend::delete`] each (the default, one by one); a
    /// backend that syncs every write transaction to disk deletes them in one.
    async fn delete_many(&self, keys: &[ItemKey]) -> Result<(), StoreError> {
        for key in keys {
            self.delete(key).await?;
        }
        Ok(())
    }
    /// Most writes one [`Backend::write`] call accepts.
    fn max_writes(&self) -> usize;
    /// Whether the backend commits one write at a time anyway (an embedded database):
    /// then the [`Store`] applies ingestion chunks (where many clients meet on hot items)
    /// one at a time too, so they never conflict with each other or fail for contention.
    fn single_writer(&self) -> bool {
        false
    }
}

/// The product's storage: aggregate operations over one backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    /// Held around each ingestion chunk on a single-writer backend (see
    /// [`Backend::single_writer`]).
    writer: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Keys looked up in the last [`keys::KEY_CACHE_MS`], by hash, so a burst of
    /// requests with one key reads it once; emptied by every key write of this process.
    pub(crate) key_cache: keys::KeyCache,
    /// The quotas creations are checked against (entities and probed integrations).
    pub(crate) quotas: crate::config::Quotas,
    /// The silence threshold, ms: an agent's or host's report after a longer gap starts a
    /// new run of reports (see [`crate::domain::records::AgentRecord::observe_run`]).
    pub(crate) silent_after_ms: crate::time::Millis,
}

impl Store {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        let writer = backend
            .single_writer()
            .then(|| Arc::new(tokio::sync::Mutex::new(())));
        Self {
            backend,
            writer,
            key_cache: keys::KeyCache::default(),
            quotas: crate::config::Quotas::default(),
            silent_after_ms: crate::config::Config::default().silent_after_ms(),
        }
    }

    /// The same store, starting sources' runs of reports after silences longer than
    /// `silent_after_ms` (the application state sets the configured one).
    pub fn with_silence(mut self, silent_after_ms: crate::time::Millis) -> Self {
        self.silent_after_ms = silent_after_ms;
        self
    }

    /// The same store, checking creations against `quotas` (the application state sets the
    /// configured ones).
    pub fn with_quotas(mut self, quotas: crate::config::Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Takes this store's writer turn on a single-writer backend; `None` (no waiting) on
    /// one where concurrent writers are resolved by conditional writes.
    pub(crate) async fn writer_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.writer {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// The backend, for tests and benchmarks that inspect items.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// One read of a key that never exists: whether the backend answers at all, for
    /// health checks. Costs 1 read unit on DynamoDB.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let key = ItemKey {
            pk: "HEALTHZ".to_owned(),
            sk: "HEALTHZ".to_owned(),
        };
        self.get_one(&key).await.map(|_| ())
    }

    /// Reads one item.
    pub(crate) async fn get_one(&self, key: &ItemKey) -> Result<Option<StoredItem>, StoreError> {
        self.get_one_with(key, true).await
    }

    /// Reads one item, eventually consistent unless `consistent`.
    pub(crate) async fn get_one_with(
        &self,
        key: &ItemKey,
        consistent: bool,
    ) -> Result<Option<StoredItem>, StoreError> {
        let keys = std::slice::from_ref(key);
        let found = if consistent {
            self.backend.get(keys).await?
        } else {
            self.backend.get_eventual(keys).await?
        };
        Ok(found.into_iter().next().flatten())
    }

    /// Creates or replaces the item at `key` whatever is stored there (as version 1, no
    /// condition): for what a tenant sets whole, where the last write wins.
    pub(crate) async fn put_one(
        &self,
        key: ItemKey,
        record: Record,
        expires_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let item = StoredItem {
            key,
            record,
            version: 1,
            expires_at,
            index: None,
        };
        self.backend
            .write(vec![Write {
                item,
                condition: Condition::None,
            }])
            .await
    }

    /// The tenant's items listed under index partition `partition`, read strongly and each
    /// passed through `read`; unreadable ones are logged and skipped ([`skip_unreadable`]).
    pub(crate) async fn read_listed<T>(
        &self,
        tenant: &str,
        partition: &str,
        read: impl FnMut(StoredItem) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        let entries = self.backend.list_index(partition).await?;
        let items = self.backend.get(&entries).await?;
        skip_unreadable(tenant, items.into_iter().flatten().map(read))
    }
}

/// Keeps the readable results and logs each unreadable one ([`StoreError::Corrupt`]) by
/// tenant and item, so one damaged entity does not hide the rest of its tenant. Any other
/// error ends the read.
pub(crate) fn skip_unreadable<T>(
    tenant: &str,
    results: impl IntoIterator<Item = Result<T, StoreError>>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    for result in results {
        match result {
            Ok(value) => out.push(value),
            Err(StoreError::Corrupt { pk, sk, reason }) => {
                tracing::error!(tenant, pk, sk, reason, "unreadable item skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Retries of a write that lost a race before giving up with [`StoreError::Conflict`].
pub(crate) const MAX_ATTEMPTS: usize = 8;
/// Retries of an ingestion chunk: ingestion is where many clients meet on a few hot items
/// (a shared integration, the tenant's gauges), so it waits longer before a 503.
pub(crate) const MAX_INGEST_ATTEMPTS: usize = 14;

/// Waits a little before retrying a conflicting write, more each attempt, with jitter so two
/// writers that collided do not collide again.
pub(crate) async fn backoff(attempt: usize) {
    use rand::Rng;
    // 4 ms doubling to 256 ms, plus up to as much again.
    let base = 2u64 << attempt.min(7);
    let jitter = rand::rng().random_range(0..=base);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// Runs one read-modify-conditional-write: again, after a [`backoff`], each time it loses a
/// race ([`StoreError::Conflict`]), at most [`MAX_ATTEMPTS`] times in all. `attempt` must
/// re-read what it writes, so each run decides on the current state.
pub(crate) async fn retry_on_conflict<T, Fut>(attempt: impl FnMut() -> Fut) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    retry_on_conflict_up_to(MAX_ATTEMPTS, attempt).await
}

/// [`retry_on_conflict`] with another number of attempts.
pub(crate) async fn retry_on_conflict_up_to<T, Fut>(
    attempts: usize,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, StoreError>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(StoreError::Conflict) if tries < attempts => {
                backoff(tries).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// The error for an item that is not what its key promises. An item the backend could not
/// parse ([`Record::Unreadable`]) reports its own reason instead of `reason`.
pub(crate) fn unexpected(item: &StoredItem, reason: &str) -> StoreError {
    match &item.record {
        Record::Unreadable(why) => corrupt(&item.key, why),
        _ => corrupt(&item.key, reason),
    }
}

/// A [`StoreError::Corrupt`] naming the item and why.
pub(crate) fn corrupt(key: &ItemKey, reason: &str) -> StoreError {
    StoreError::Corrupt {
        pk: key.pk.clone(),
        sk: key.sk.clone(),
        reason: reason.to_owned(),
    }
}
