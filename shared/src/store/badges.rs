//! Badge tokens: unguessable (256-bit) secrets that let anyone fetch one entity's badge
//! without a key. Stored as keys are, by their SHA-256 (one point read finds a badge),
//! with an index entry under the tenant for listing; revoking deletes the item, so the
//! token stops working at once.

use serde::{Deserialize, Serialize};

use super::ingest::unexpected;
use super::keys::{hash_key, random_hex};
use super::{Condition, IndexKey, ItemKey, Record, Store, StoreError, StoredItem, Write};
use crate::time::{format_rfc3339, Millis};

/// What a badge token shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadgeRecord {
    /// The tenant.
    pub tenant: String,
    /// `agent` or `integration`.
    pub source_type: String,
    /// The entity's id.
    pub source_id: String,
    /// When it was created.
    pub created_at: Millis,
}

/// A badge as the API lists it: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadgeInfo {
    /// The public id (`badge_` and 16 hex digits of the token's hash).
    pub badge_id: String,
    /// `agent` or `integration`.
    pub source_type: String,
    /// The entity's id.
    pub source_id: String,
    /// RFC 3339.
    pub created_at: String,
}

/// A new badge: the only time its token is seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedBadge {
    /// What lists show.
    #[serde(flatten)]
    pub info: BadgeInfo,
    /// The token, shown once: the badge's URL carries it.
    pub token: String,
}

/// The prefix of badge tokens, so they are recognisable.
pub const BADGE_PREFIX: &str = "ahb_";

fn badge_id_of_hash(hash: &str) -> String {
    format!("badge_{}", &hash[..hash.len().min(16)])
}

fn item_key(hash: &str) -> ItemKey {
    ItemKey {
        pk: format!("BADGE#{hash}"),
        sk: "BADGE".to_owned(),
    }
}

fn partition(tenant: &str) -> String {
    format!("T#{tenant}#BADGES")
}

fn info(badge_id: String, r: &BadgeRecord) -> BadgeInfo {
    BadgeInfo {
        badge_id,
        source_type: r.source_type.clone(),
        source_id: r.source_id.clone(),
        created_at: format_rfc3339(r.created_at),
    }
}

impl Store {
    /// Creates a badge token for one entity of `tenant`.
    pub async fn create_badge(
        &self,
        tenant: &str,
        source_type: &str,
        source_id: &str,
        now: Millis,
    ) -> Result<CreatedBadge, StoreError> {
        let token = random_hex::<32>(BADGE_PREFIX);
        let hash = hash_key(&token);
        let badge_id = badge_id_of_hash(&hash);
        let record = BadgeRecord {
            tenant: tenant.to_owned(),
            source_type: source_type.to_owned(),
            source_id: source_id.to_owned(),
            created_at: now,
        };
        self.backend
            .write(vec![Write {
                item: StoredItem {
                    key: item_key(&hash),
                    record: Record::Badge(record.clone()),
                    version: 1,
                    expires_at: None,
                    index: Some(IndexKey {
                        pk: partition(tenant),
                        sk: badge_id.clone(),
                    }),
                },
                condition: Condition::NotExists,
            }])
            .await?;
        Ok(CreatedBadge {
            info: info(badge_id, &record),
            token,
        })
    }

    /// The badge a token names; `None` if there is none (never created, or revoked).
    pub async fn find_badge(&self, token: &str) -> Result<Option<BadgeRecord>, StoreError> {
        match self.get_one(&item_key(&hash_key(token))).await? {
            None => Ok(None),
            Some(StoredItem {
                record: Record::Badge(r),
                ..
            }) => Ok(Some(r)),
            Some(item) => Err(unexpected(&item, "expected a badge")),
        }
    }

    /// The tenant's badges, oldest first.
    pub async fn list_badges(&self, tenant: &str) -> Result<Vec<BadgeInfo>, StoreError> {
        let mut out = self.tenant_badges(tenant).await?;
        out.sort_by(|(a, ar, _), (b, br, _)| (ar.created_at, a).cmp(&(br.created_at, b)));
        Ok(out.into_iter().map(|(id, r, _)| info(id, &r)).collect())
    }

    /// Revokes (deletes) the tenant's badge `badge_id`; `false` if it has none such.
    pub async fn revoke_badge(&self, tenant: &str, badge_id: &str) -> Result<bool, StoreError> {
        let found = self
            .tenant_badges(tenant)
            .await?
            .into_iter()
            .find(|(id, ..)| id == badge_id);
        match found {
            Some((_, _, key)) => {
                self.backend.delete(&key).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn tenant_badges(
        &self,
        tenant: &str,
    ) -> Result<Vec<(String, BadgeRecord, ItemKey)>, StoreError> {
        self.read_listed(tenant, &partition(tenant), |item| match item.record {
            Record::Badge(r) if r.tenant == tenant => {
                let hash = item.key.pk.strip_prefix("BADGE#").unwrap_or_default();
                Ok((badge_id_of_hash(hash), r, item.key))
            }
            _ => Err(unexpected(&item, "expected a badge of this tenant")),
        })
        .await
    }
}
