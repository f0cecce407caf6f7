//! The embedded backend: a redb file, durable (every write transaction is fsynced) and
//! the local stack's default, so `cargo run` needs no server and data survives restarts.
//!
//! Items live in one table keyed `pk \x1f sk` (ids never contain control characters, so
//! the separator keeps each partition contiguous and sorted by sort key), and the entity
//! index in a second table. redb calls block, so each runs on the blocking thread pool.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{
    Backend, Condition, End, IndexKey, ItemKey, Range, Record, StoreError, StoredItem, Write,
};

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");
const INDEX: TableDefinition<&str, &str> = TableDefinition::new("index");
const SEP: char = '\u{1f}';
/// The page cache [`EmbeddedBackend::open`] gives the database: 32 MiB.
pub const DEFAULT_CACHE_BYTES: usize = 32 << 20;

/// The embedded backend. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EmbeddedBackend {
    db: Arc<Database>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    record: Record,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<IndexKey>,
}

fn backend_err(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn joined(pk: &str, sk: &str) -> String {
    format!("{pk}{SEP}{sk}")
}

fn split(joined: &str) -> Option<ItemKey> {
    let (pk, sk) = joined.split_once(SEP)?;
    Some(ItemKey {
        pk: pk.to_owned(),
        sk: sk.to_owned(),
    })
}

/// An item's bookkeeping without its record, to keep what can be kept of an item whose
/// record does not parse.
#[derive(Deserialize)]
struct Meta {
    version: u64,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    index: Option<IndexKey>,
}

/// Decodes an item. A record that does not parse becomes [`Record::Unreadable`] (version 0
/// if even the bookkeeping is lost), so the read that met it serves everything else.
fn decode(key: ItemKey, bytes: &[u8]) -> StoredItem {
    match serde_json::from_slice::<Body>(bytes) {
        Ok(body) => StoredItem {
            key,
            record: body.record,
            version: body.version,
            expires_at: body.expires_at,
            index: body.index,
        },
        Err(e) => {
            let meta = serde_json::from_slice::<Meta>(bytes).ok();
            StoredItem {
                key,
                record: Record::Unreadable(e.to_string()),
                version: meta.as_ref().map_or(0, |m| m.version),
                expires_at: meta.as_ref().and_then(|m| m.expires_at),
                index: meta.and_then(|m| m.index),
            }
        }
    }
}

fn read_range(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    lo: &str,
    hi: &str,
) -> Result<Vec<StoredItem>, StoreError> {
    read_range_with(table, lo, hi, usize::MAX, false)
}

/// The first `limit` items of a range, from its end if `from_end`.
fn read_range_with(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    lo: &str,
    hi: &str,
    limit: usize,
    from_end: bool,
) -> Result<Vec<StoredItem>, StoreError> {
    let range = table.range(lo..=hi).map_err(backend_err)?;
    let entries: Box<dyn Iterator<Item = _>> = if from_end {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut out = Vec::new();
    for entry in entries.take(limit) {
        let (k, v) = entry.map_err(backend_err)?;
        let key = split(k.value()).ok_or_else(|| StoreError::Corrupt {
            pk: k.value().to_owned(),
            sk: String::new(),
            reason: "key without separator".to_owned(),
        })?;
        out.push(decode(key, v.value()));
    }
    Ok(out)
}

impl EmbeddedBackend {
    /// Opens (or creates) the database file at `path`; its directory must exist.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// [`EmbeddedBackend::open`] with a page cache of at most `cache_bytes` (redb's own
    /// default is 1 GiB, which a busy local stack fills).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(backend_err)?;
        let txn = db.begin_write().map_err(backend_err)?;
        txn.open_table(ITEMS).map_err(backend_err)?;
        txn.open_table(INDEX).map_err(backend_err)?;
        txn.commit().map_err(backend_err)?;
        Ok(Self { db: Arc::new(db) })
    }

    /// The first `limit` items of a partition's range, from its end if `from_end`, in one
    /// read transaction.
    fn read_range(
        &self,
        pk: &str,
        from: &str,
        to: &str,
        limit: usize,
        from_end: bool,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let (lo, hi) = (joined(pk, from), joined(pk, to));
        let txn = self.db.begin_read().map_err(backend_err)?;
        let table = txn.open_table(ITEMS).map_err(backend_err)?;
        read_range_with(&table, &lo, &hi, limit, from_end)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(backend_err)?
    }
}

/// Point reads of at most this many keys run on the calling task (see `get`).
const INLINE_GETS: usize = 4;

#[async_trait]
impl Backend for EmbeddedBackend {
    async fn get(&self, keys: &[ItemKey]) -> Result<Vec<Option<StoredItem>>, StoreError> {
        let read = |db: &Database, keys: Vec<ItemKey>| -> Result<_, StoreError> {
            let txn = db.begin_read().map_err(backend_err)?;
            let table = txn.open_table(ITEMS).map_err(backend_err)?;
            keys.into_iter()
                .map(|key| {
                    match table
                        .get(joined(&key.pk, &key.sk).as_str())
                        .map_err(backend_err)?
                    {
                        Some(v) => Ok(Some(decode(key, v.value()))),
                        None => Ok(None),
                    }
                })
                .collect()
        };
        // A few point reads from the page cache take microseconds: run them here rather
        // than pay a hand-off to the blocking pool, which costs more than the read.
        if keys.len() <= INLINE_GETS {
            return read(&self.db, keys.to_vec());
        }
        let keys = keys.to_vec();
        self.blocking(move |db| read(db, keys)).await
    }

    async fn query(&self, pk: &str, from: &str, to: &str) -> Result<Vec<StoredItem>, StoreError> {
        // On the calling task, as point reads: a range of a partition is read from the page
        // cache in microseconds per item (a 10,000-agent list in milliseconds), less than
        // the hand-off to the blocking pool costs for the small ranges most reads are.
        self.read_range(pk, from, to, usize::MAX, false)
    }

    async fn query_end(&self, range: &Range, end: End) -> Result<Vec<StoredItem>, StoreError> {
        let (limit, newest_first) = match end {
            End::First(n) => (n, false),
            End::Last(n) => (n, true),
        };
        self.read_range(&range.pk, &range.from, &range.to, limit, newest_first)
    }

    async fn query_many(&self, ranges: &[Range]) -> Result<Vec<Vec<StoredItem>>, StoreError> {
        // One blocking task and one read transaction for all: per-range tasks would cost a
        // thread hand-off each, which dominates when listing thousands of entities.
        let ranges: Vec<(String, String)> = ranges
            .iter()
            .map(|r| (joined(&r.pk, &r.from), joined(&r.pk, &r.to)))
            .collect();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend_err)?;
            let table = txn.open_table(ITEMS).map_err(backend_err)?;
            ranges
                .iter()
                .map(|(lo, hi)| read_range(&table, lo, hi))
                .collect()
        })
        .await
    }

    async fn list_index(&self, index_pk: &str) -> Result<Vec<ItemKey>, StoreError> {
        // Every index sort key of the partition: from `pk \x1f` up to (excluding) `pk \x20`.
        let lo = format!("{index_pk}{SEP}");
        let hi = format!("{index_pk}\u{20}");
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(backend_err)?;
            let table = txn.open_table(INDEX).map_err(backend_err)?;
            let mut out = Vec::new();
            for entry in table.range(lo.as_str()..hi.as_str()).map_err(backend_err)? {
                let (_, v) = entry.map_err(backend_err)?;
                out.push(split(v.value()).ok_or_else(|| StoreError::Corrupt {
                    pk: v.value().to_owned(),
                    sk: String::new(),
                    reason: "index entry without separator".to_owned(),
                })?);
            }
            Ok(out)
        })
        .await
    }

    async fn write(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend_err)?;
            {
                let mut items = txn.open_table(ITEMS).map_err(backend_err)?;
                let mut index = txn.open_table(INDEX).map_err(backend_err)?;
                for w in &writes {
                    let key = joined(&w.item.key.pk, &w.item.key.sk);
                    let current = items
                        .get(key.as_str())
                        .map_err(backend_err)?
                        .map(|v| decode(w.item.key.clone(), v.value()).version);
                    let holds = match w.condition {
                        Condition::None => true,
                        Condition::NotExists => current.is_none(),
                        Condition::Version(v) => current == Some(v),
                    };
                    if !holds {
                        // Dropping the transaction without commit discards every write.
                        return Err(StoreError::Conflict);
                    }
                    let body = Body {
                        record: w.item.record.clone(),
                        version: w.item.version,
                        expires_at: w.item.expires_at,
                        index: w.item.index.clone(),
                    };
                    let bytes = serde_json::to_vec(&body).map_err(backend_err)?;
                    items
                        .insert(key.as_str(), bytes.as_slice())
                        .map_err(backend_err)?;
                    if let Some(ix) = &w.item.index {
                        index
                            .insert(joined(&ix.pk, &ix.sk).as_str(), key.as_str())
                            .map_err(backend_err)?;
                    }
                }
            }
            txn.commit().map_err(backend_err)
        })
        .await
    }

    async fn delete(&self, key: &ItemKey) -> Result<(), StoreError> {
        self.delete_many(std::slice::from_ref(key)).await
    }

    async fn delete_many(&self, keys: &[ItemKey]) -> Result<(), StoreError> {
        let keys = keys.to_vec();
        // One transaction, so one sync to disk, however many.
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(backend_err)?;
            {
                let mut items = txn.open_table(ITEMS).map_err(backend_err)?;
                let mut index = txn.open_table(INDEX).map_err(backend_err)?;
                for key in keys {
                    let joined_key = joined(&key.pk, &key.sk);
                    let removed = items.remove(joined_key.as_str()).map_err(backend_err)?;
                    // The index entry goes with the item, or a list would name a deleted
                    // item.
                    let entry = match removed {
                        Some(v) => decode(key.clone(), v.value()).index,
                        None => None,
                    };
                    if let Some(ix) = entry {
                        index
                            .remove(joined(&ix.pk, &ix.sk).as_str())
                            .map_err(backend_err)?;
                    }
                }
            }
            txn.commit().map_err(backend_err)
        })
        .await
    }

    fn single_writer(&self) -> bool {
        true
    }

    fn max_writes(&self) -> usize {
        // One redb transaction holds a whole batch; one fsync per batch is what makes
        // embedded ingestion fast.
        100_000
    }
}
