//! The tenant's summary (`GET /api/health/summary`), one item the collector's cycle writes
//! and the first paint reads: 1 read unit instead of reading every entity.

use serde::{Deserialize, Serialize};

use super::layout;
use super::{corrupt, Condition, Record, Store, StoreError, StoredItem, Write};
use crate::time::Millis;

/// The stored summary: the JSON the endpoint answers, as the cycle wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    /// When the cycle evaluated it.
    pub at: Millis,
    /// The summary as JSON (see [`crate::domain::summary::Summary`]).
    pub json: String,
}

impl Store {
    /// Writes the tenant's summary evaluated at `at` (1 write unit per KB, about 10 at a
    /// busy tenant). Unconditional: each cycle of a tenant is claimed once, so the newest
    /// cycle writes last.
    pub async fn put_summary(
        &self,
        tenant: &str,
        json: String,
        at: Millis,
    ) -> Result<(), StoreError> {
        let write = Write {
            item: StoredItem {
                key: layout::summary(tenant),
                record: Record::Summary(SummaryRecord { at, json }),
                // The time orders the versions: a later cycle's summary has a higher one.
                version: u64::try_from(at).unwrap_or_default(),
                expires_at: None,
                index: None,
            },
            condition: Condition::None,
        };
        self.backend.write(vec![write]).await
    }

    /// The tenant's latest summary (eventually consistent: half a read unit per 4 KB);
    /// `None` before its first cycle.
    pub async fn summary(&self, tenant: &str) -> Result<Option<SummaryRecord>, StoreError> {
        match self.get_one_with(&layout::summary(tenant), false).await? {
            Some(StoredItem {
                record: Record::Summary(s),
                ..
            }) => Ok(Some(s)),
            Some(item) => Err(corrupt(&item.key, "expected the tenant's summary")),
            None => Ok(None),
        }
    }
}
