//! Failed executions and calls, one item each under the entity's partition.

use super::layout::{self, Entity};
use super::{End, Range, Record, Store, StoreError};
use crate::domain::failures::FailureRecord;
use crate::time::Millis;

impl Store {
    /// The last `limit` failures of an entity, newest first: one eventually consistent
    /// Query that reads (and bills) only those items.
    pub async fn recent_failures(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        limit: usize,
    ) -> Result<Vec<FailureRecord>, StoreError> {
        let items = self
            .backend
            .query_end(
                &Range::new(
                    layout::partition(tenant, entity, id),
                    layout::failure_sk_prefix(0),
                    layout::failure_sk_prefix(Millis::MAX / 2),
                ),
                End::Last(limit),
            )
            .await?;
        Ok(failures_of(items).map(|(_, f)| f).collect())
    }

    /// A page of an entity's failures at `from..to` (times), oldest first, at most
    /// `limit`, starting after the sort key `after` if given; with each its sort key, to
    /// continue after the last.
    pub async fn failures_page(
        &self,
        tenant: &str,
        entity: Entity,
        id: &str,
        (from, to): (Millis, Millis),
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, FailureRecord)>, StoreError> {
        // The least sort key past `after`: the range is inclusive, and ids hold no control
        // characters, so nothing sorts between the two.
        let start = match after {
            Some(sk) => format!("{sk}\u{1}"),
            None => layout::failure_sk_prefix(from),
        };
        let items = self
            .backend
            .query_end(
                &Range::new(
                    layout::partition(tenant, entity, id),
                    start,
                    layout::failure_sk_prefix(to.saturating_add(1)),
                ),
                End::First(limit),
            )
            .await?;
        Ok(failures_of(items).filter(|(_, f)| f.at <= to).collect())
    }
}

fn failures_of(items: Vec<super::StoredItem>) -> impl Iterator<Item = (String, FailureRecord)> {
    items.into_iter().filter_map(|item| match item.record {
        Record::Failure(f) => Some((item.key.sk, f)),
        _ => None,
    })
}
