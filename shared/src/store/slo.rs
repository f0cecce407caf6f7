//! SLOs: their definitions (one partition per tenant) and the hour buckets and live item
//! their figures are computed from.

use super::layout::{self, Entity};
use super::{Record, Store, StoreError};
use crate::domain::latency::{Histogram, HourSummary};
use crate::domain::live::{Counters, Live};
use crate::domain::slo::{SloData, SloRecord, SloSource, SloStatus};
use crate::time::{Millis, DAY_MS};

/// The hour buckets and minutes of a live item, as an SLO reads them: every hour once
/// (the stored buckets, then what the item holds that has not moved), and the item's
/// minutes for the short windows.
pub fn slo_data<R, C: Counters>(live: &Live<R, C>, stored: Vec<(i64, HourSummary)>) -> SloData {
    let mut hours = stored;
    hours.extend(live.window.unmoved_hours());
    SloData {
        hours,
        minutes: minute_summaries(&live.window.minutes, &live.window.latency),
    }
}

/// The item's minutes as summaries.
pub fn minute_summaries<C: Counters>(
    minutes: &[(i64, C)],
    latency: &[(i64, Histogram)],
) -> Vec<(i64, HourSummary)> {
    let mut out: std::collections::BTreeMap<i64, HourSummary> = Default::default();
    for (m, c) in minutes {
        let (total, failed) = c.outcomes();
        let s = out.entry(*m).or_default();
        s.total = s.total.saturating_add(total);
        s.failed = s.failed.saturating_add(failed);
    }
    for (m, h) in latency {
        out.entry(*m).or_default().latency.merge(h);
    }
    out.into_iter().collect()
}

impl Store {
    /// Creates or replaces an SLO.
    pub async fn put_slo(&self, tenant: &str, slo: &SloRecord) -> Result<(), StoreError> {
        let key = layout::slo(tenant, &slo.slo_id);
        self.put_one(key, Record::Slo(slo.clone()), None).await
    }

    /// The tenant's SLOs by id: one Query.
    pub async fn slos(&self, tenant: &str) -> Result<Vec<SloRecord>, StoreError> {
        let items = self
            .backend
            .query(&layout::slo_partition(tenant), " ", "\u{10ffff}")
            .await?;
        Ok(items
            .into_iter()
            .filter_map(|i| match i.record {
                Record::Slo(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    /// Deletes an SLO; `false` if there was none.
    pub async fn delete_slo(&self, tenant: &str, slo_id: &str) -> Result<bool, StoreError> {
        let key = layout::slo(tenant, slo_id);
        let existed = self.get_one(&key).await?.is_some();
        self.backend.delete(&key).await?;
        Ok(existed)
    }

    /// What an SLO over `span` before `now` is computed from: its source's live item and
    /// one Query of its hour buckets. `None` when the source does not exist (yet).
    pub async fn slo_data(
        &self,
        tenant: &str,
        slo: &SloRecord,
        span: Millis,
        now: Millis,
    ) -> Result<Option<SloData>, StoreError> {
        let entity = match slo.source_type {
            SloSource::Agent => Entity::Agent,
            SloSource::Integration => Entity::Integration,
        };
        let Some(item) = self
            .get_one(&layout::live(tenant, entity, &slo.source_id))
            .await?
        else {
            return Ok(None);
        };
        let stored = self
            .hours_between(tenant, entity, &slo.source_id, now - span, now)
            .await?;
        Ok(match &item.record {
            Record::Agent(live) => Some(slo_data(live, stored)),
            Record::Integration(live) => Some(slo_data(live, stored)),
            // A damaged item degrades only its own SLO, as everywhere.
            _ => {
                tracing::error!(
                    tenant,
                    pk = item.key.pk,
                    sk = item.key.sk,
                    "unreadable item skipped"
                );
                None
            }
        })
    }

    /// Every SLO of the tenant with its figures at `now` (an SLO whose source has not
    /// reported yet shows no events).
    pub async fn slo_statuses(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Vec<SloStatus>, StoreError> {
        let mut out = Vec::new();
        for slo in self.slos(tenant).await? {
            let span = i64::from(slo.window_days) * DAY_MS;
            let data = self
                .slo_data(tenant, &slo, span, now)
                .await?
                .unwrap_or_default();
            out.push(crate::domain::slo::status(&slo, &data, now));
        }
        Ok(out)
    }
}
