//! The API keys aggregate. Keys are 192-bit random secrets, stored only as their SHA-256:
//! a fast hash is enough for high-entropy secrets (nothing to brute-force), and it lets a
//! request find its key with one point read.

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::ingest::corrupt;
use super::layout;
use super::{ApiKeyRecord, Condition, Record, Store, StoreError, StoredItem, Write};
use crate::time::Millis;

/// Every scope there is. `admin` implies the others.
pub const SCOPES: [&str; 3] = ["read", "ingest", "admin"];

/// The prefix of every key, so leaked keys are easy to recognise and scan for.
pub const KEY_PREFIX: &str = "ahm_";

/// The hex SHA-256 of a key, which is what is stored.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
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
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let key = format!("{KEY_PREFIX}{}", hex::encode(secret));
        self.insert_api_key(&key, tenant, scopes, name, now).await?;
        Ok(key)
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
        let record = ApiKeyRecord {
            tenant: tenant.to_owned(),
            scopes: scopes.to_vec(),
            name: name.to_owned(),
            created_at: now,
        };
        self.backend
            .write(vec![Write {
                item: StoredItem {
                    key: layout::api_key(&hash_key(key)),
                    record: Record::ApiKey(record),
                    version: 1,
                    expires_at: None,
                    index: None,
                },
                condition: Condition::NotExists,
            }])
            .await
    }

    /// The record of a key presented by a client; `None` if no such key is stored.
    pub async fn find_api_key(&self, key: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let item_key = layout::api_key(&hash_key(key));
        match self.get_one(&item_key).await? {
            None => Ok(None),
            Some(StoredItem {
                record: Record::ApiKey(k),
                ..
            }) => Ok(Some(k)),
            Some(_) => Err(corrupt(&item_key, "expected an API key")),
        }
    }
}
