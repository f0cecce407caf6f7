//! The API keys aggregate. Keys are 192-bit random secrets, stored only as their SHA-256:
//! a fast hash is enough for high-entropy secrets (nothing to brute-force), and it lets a
//! request find its key with one point read.

use rand::RngCore;
use sha2::{Digest, Sha256};

use serde::Serialize;

use super::ingest::unexpected;
use super::layout;
use super::{
    retry_on_conflict, ApiKeyRecord, Condition, Record, Store, StoreError, StoredItem, Write,
};
use crate::time::{Millis, MINUTE_MS};

/// Every scope there is. `admin` implies the others.
pub const SCOPES: [&str; 3] = ["read", "ingest", "admin"];

/// The prefix of every key, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "ahm_";

/// `prefix` and `N` random bytes in hex: a new key, token or id no one can guess.
pub(crate) fn random_hex<const N: usize>(prefix: &str) -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The hex SHA-256 of a key, which is what is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A key's public id (`key_` and 16 hex digits of its hash): what lists show and what
/// revocation names. It reveals nothing usable of the secret.
pub fn key_id_of_hash(hash_hex: &str) -> String {
    format!("key_{}", &hash_hex[..hash_hex.len().min(16)])
}

/// How stale `last_used_at` may be: it is written at most this often per key, so that
/// tracking use costs one write per key per 10 minutes, not one per request.
pub const LAST_USED_PRECISION_MS: Millis = 10 * MINUTE_MS;

/// A stored key as the API lists it: never the secret, nor its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The public id.
    pub key_id: String,
    /// Who holds it.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, to within 10 minutes; `null`: never used.
    pub last_used_at: Option<String>,
    /// RFC 3339; `null`: active.
    pub revoked_at: Option<String>,
}

/// A new key: the only time its secret is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedKey {
    /// The public id.
    pub key_id: String,
    /// The secret, shown once.
    pub key: String,
    /// Who holds it.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// RFC 3339.
    pub created_at: String,
}

/// How long a looked-up key is reused without reading it again: a revocation in this
/// process takes effect at once (it empties the cache), one made by another process (a
/// Lambda instance) within this time.
pub const KEY_CACHE_MS: u64 = 1_000;

/// Recently looked-up keys, by hash.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyCache(
    std::sync::Arc<
        std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, FoundKey)>>,
    >,
);

impl KeyCache {
    fn get(&self, hash: &str) -> Option<FoundKey> {
        let map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(hash)
            .filter(|(at, _)| at.elapsed().as_millis() < u128::from(KEY_CACHE_MS))
            .map(|(_, found)| found.clone())
    }
    fn put(&self, hash: String, found: FoundKey) {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: a flood of unknown keys is never cached, and known keys are few.
        if map.len() >= 10_000 {
            map.clear();
        }
        map.insert(hash, (std::time::Instant::now(), found));
    }
    /// Forgets every key (after any key write).
    pub(crate) fn clear(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

/// A key found by its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct FoundKey {
    /// Its public id.
    pub key_id: String,
    /// What is stored.
    pub record: ApiKeyRecord,
    version: u64,
    indexed: bool,
}

/// What a revocation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now, or already revoked before.
    Revoked(KeyInfo),
    /// The tenant has no such key.
    NotFound,
    /// It is the tenant's last active admin key: revoking it would lock the tenant out.
    LastAdmin,
}

fn info(key_id: String, r: &ApiKeyRecord) -> KeyInfo {
    use crate::time::format_rfc3339;
    KeyInfo {
        key_id,
        name: r.name.clone(),
        scopes: r.scopes.clone(),
        created_at: format_rfc3339(r.created_at),
        last_used_at: r.last_used_at.map(format_rfc3339),
        revoked_at: r.revoked_at.map(format_rfc3339),
    }
}

fn is_admin(r: &ApiKeyRecord) -> bool {
    r.revoked_at.is_none() && r.scopes.iter().any(|s| s == "admin")
}

/// Checks a tenant id: 1 to 64 of `a-z`, `0-9`, `-`, `_`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "tenant \"{tenant}\" must be 1 to 64 characters of a-z, 0-9, - and _"
        ))
    }
}

impl Store {
    /// Creates a key for `tenant` with `scopes` and returns it. This is the only time the key
    /// exists in clear; show it once.
    pub async fn create_api_key(
        &self,
        tenant: &str,
        scopes: &[String],
        name: &str,
        now: Millis,
    ) -> Result<String, StoreError> {
        Ok(self.new_api_key(tenant, scopes, name, now).await?.key)
    }

    /// [`Store::create_api_key`], answering everything the API shows of the new key.
    pub async fn new_api_key(
        &self,
        tenant: &str,
        scopes: &[String],
        name: &str,
        now: Millis,
    ) -> Result<CreatedKey, StoreError> {
        let key = random_hex::<24>(KEY_PREFIX);
        self.insert_api_key(&key, tenant, scopes, name, now).await?;
        Ok(CreatedKey {
            key_id: key_id_of_hash(&hash_key(&key)),
            key,
            name: name.to_owned(),
            scopes: scopes.to_vec(),
            created_at: crate::time::format_rfc3339(now),
        })
    }

    /// Stores a given key (for keys kept outside the store, like the local stack's own).
    /// [`StoreError::Conflict`] if the key is already stored.
    pub async fn insert_api_key(
        &self,
        key: &str,
        tenant: &str,
        scopes: &[String],
        name: &str,
        now: Millis,
    ) -> Result<(), StoreError> {
        // Listed first: a key whose tenant the collector does not know would ingest data
        // nobody evaluates.
        self.register_tenant(tenant, now).await?;
        let hash = hash_key(key);
        let record = ApiKeyRecord {
            tenant: tenant.to_owned(),
            scopes: scopes.to_vec(),
            name: name.to_owned(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
        };
        self.key_cache.clear();
        self.backend
            .write(vec![Write {
                item: StoredItem {
                    key: layout::api_key(&hash),
                    record: Record::ApiKey(record),
                    version: 1,
                    expires_at: None,
                    index: Some(layout::key_index(tenant, &key_id_of_hash(&hash))),
                },
                condition: Condition::NotExists,
            }])
            .await
    }

    /// The record of a key presented by a client, revoked or not; `None` if no such key
    /// is stored.
    pub async fn find_api_key(&self, key: &str) -> Result<Option<FoundKey>, StoreError> {
        let hash = hash_key(key);
        if let Some(found) = self.key_cache.get(&hash) {
            return Ok(Some(found));
        }
        match self.get_one(&layout::api_key(&hash)).await? {
            None => Ok(None),
            Some(StoredItem {
                record: Record::ApiKey(record),
                version,
                index,
                ..
            }) => {
                let found = FoundKey {
                    key_id: key_id_of_hash(&hash),
                    record,
                    version,
                    indexed: index.is_some(),
                };
                self.key_cache.put(hash, found.clone());
                Ok(Some(found))
            }
            Some(item) => Err(unexpected(&item, "expected an API key")),
        }
    }

    /// Notes that a key was used at `now`, at most once per [`LAST_USED_PRECISION_MS`]. A
    /// key stored before keys were listed gets its index entry here. Losing a race to
    /// another request's note (or a revocation) is fine: nothing is written then.
    pub async fn touch_api_key(
        &self,
        key: &str,
        found: &FoundKey,
        now: Millis,
    ) -> Result<(), StoreError> {
        let fresh = found
            .record
            .last_used_at
            .is_some_and(|t| now - t < LAST_USED_PRECISION_MS);
        if fresh && found.indexed {
            return Ok(());
        }
        let mut record = found.record.clone();
        record.last_used_at = Some(now);
        let write = Write {
            item: StoredItem {
                key: layout::api_key(&hash_key(key)),
                index: Some(layout::key_index(&record.tenant, &found.key_id)),
                record: Record::ApiKey(record),
                version: found.version + 1,
                expires_at: None,
            },
            condition: Condition::Version(found.version),
        };
        self.key_cache.clear();
        match self.backend.write(vec![write]).await {
            Ok(()) | Err(StoreError::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The tenant's keys, active and revoked, oldest first.
    pub async fn list_api_keys(&self, tenant: &str) -> Result<Vec<KeyInfo>, StoreError> {
        let mut keys = self.tenant_keys(tenant).await?;
        keys.sort_by(|(a_id, a, ..), (b_id, b, ..)| {
            (a.created_at, a_id).cmp(&(b.created_at, b_id))
        });
        Ok(keys
            .into_iter()
            .map(|(key_id, record, _, _)| info(key_id, &record))
            .collect())
    }

    /// Revokes the tenant's key `key_id` at `now`. Revoking a revoked key changes nothing
    /// and answers as revoked; the tenant's last active admin key is kept.
    pub async fn revoke_api_key(
        &self,
        tenant: &str,
        key_id: &str,
        now: Millis,
    ) -> Result<Revocation, StoreError> {
        retry_on_conflict(|| async {
            let keys = self.tenant_keys(tenant).await?;
            let Some((_, record, item_key, version)) =
                keys.iter().find(|(id, ..)| id == key_id).cloned()
            else {
                return Ok(Revocation::NotFound);
            };
            if record.revoked_at.is_some() {
                return Ok(Revocation::Revoked(info(key_id.to_owned(), &record)));
            }
            let other_admins = keys
                .iter()
                .filter(|(id, r, ..)| id != key_id && is_admin(r))
                .count();
            if is_admin(&record) && other_admins == 0 {
                return Ok(Revocation::LastAdmin);
            }
            let mut revoked = record;
            revoked.revoked_at = Some(now);
            let shown = info(key_id.to_owned(), &revoked);
            self.key_cache.clear();
            self.backend
                .write(vec![Write {
                    item: StoredItem {
                        key: item_key,
                        record: Record::ApiKey(revoked),
                        version: version + 1,
                        expires_at: None,
                        index: Some(layout::key_index(tenant, key_id)),
                    },
                    condition: Condition::Version(version),
                }])
                .await?;
            // Again after the write: a lookup between the first clear and the write may
            // have cached the key as it was.
            self.key_cache.clear();
            Ok(Revocation::Revoked(shown))
        })
        .await
    }

    /// Every listed key of a tenant: id, record, item key and version.
    async fn tenant_keys(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, ApiKeyRecord, super::ItemKey, u64)>, StoreError> {
        let partition = layout::keys_partition(tenant);
        self.read_listed(tenant, &partition, |item| match item.record {
            Record::ApiKey(r) if r.tenant == tenant => {
                let hash = item.key.pk.strip_prefix("KEY#").unwrap_or_default();
                Ok((key_id_of_hash(hash), r, item.key, item.version))
            }
            _ => Err(unexpected(&item, "expected an API key of this tenant")),
        })
        .await
    }
}
