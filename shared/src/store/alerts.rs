//! The alerts aggregate: listing active alerts, saving them (the collector), and
//! acknowledging them.

use super::ingest::{corrupt, unexpected};
use super::layout;
use super::tenant::Consistency;
use super::{
    retry_on_conflict, skip_unreadable, Condition, Range, Record, Store, StoreError, StoredItem,
    Write,
};
use crate::domain::alerts::{sort_alerts, AlertRecord, SourceType};
use crate::time::Millis;

/// What acknowledging on a condition found ([`Store::acknowledge_alert_if`]).
#[derive(Debug, Clone, PartialEq)]
pub enum GuardedAck {
    /// The condition held (or the alert is gone or resolved): what acknowledging found.
    Outcome(AckOutcome),
    /// The condition no longer holds for the alert as stored: nothing was changed.
    NoLongerApplies(AlertRecord),
}

/// Who acknowledges an alert, when, and with what notes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acknowledgement<'a> {
    /// The identity recorded as the acknowledger.
    pub by: &'a str,
    /// The acknowledger's notes.
    pub notes: Option<&'a str>,
    /// When.
    pub at: Millis,
}

/// What acknowledging found.
#[derive(Debug, Clone, PartialEq)]
pub enum AckOutcome {
    /// Acknowledged now, or already acknowledged before (not an error).
    Acknowledged(AlertRecord),
    /// No such alert for the tenant.
    NotFound,
    /// The alert resolved before it was acknowledged.
    Resolved(AlertRecord),
}

impl Store {
    /// The alerts (active and recently resolved) of these sources, with their versions:
    /// one range read per source (its ids share a prefix), so evaluating a few sources
    /// costs what their alerts weigh, not what the tenant's do.
    pub async fn alerts_of_sources(
        &self,
        tenant: &str,
        sources: &[(SourceType, String)],
    ) -> Result<Vec<(AlertRecord, u64)>, StoreError> {
        let mut prefixes: Vec<String> = sources
            .iter()
            .map(|(t, id)| crate::domain::alerts::source_prefix(*t, id))
            .collect();
        prefixes.sort();
        prefixes.dedup();
        let ranges: Vec<Range> = prefixes
            .iter()
            .map(|p| Range {
                pk: layout::alerts_partition(tenant),
                from: p.clone(),
                to: format!("{p}~"),
            })
            .collect();
        let mut out = Vec::new();
        for items in self.backend.query_many(&ranges).await? {
            for item in items {
                match item.record {
                    Record::Alert(a)
                        if sources
                            .iter()
                            .any(|(t, id)| *t == a.source_type && *id == a.source_id) =>
                    {
                        out.push((a, item.version));
                    }
                    Record::Alert(_) => {}
                    _ => return Err(unexpected(&item, "expected an alert")),
                }
            }
        }
        Ok(out)
    }

    /// Every alert of the tenant with its version, active or recently resolved, as stored.
    pub async fn all_alerts(&self, tenant: &str) -> Result<Vec<(AlertRecord, u64)>, StoreError> {
        self.all_alerts_with(tenant, Consistency::Strong).await
    }

    /// [`Store::all_alerts`] at the chosen consistency. The cycle reads eventually (half
    /// the price): a stale alert makes its conditional write fail, and the retry reads
    /// strongly.
    pub async fn all_alerts_with(
        &self,
        tenant: &str,
        read: Consistency,
    ) -> Result<Vec<(AlertRecord, u64)>, StoreError> {
        let pk = layout::alerts_partition(tenant);
        let items = match read {
            Consistency::Strong => self.backend.query(&pk, " ", "\u{10ffff}").await?,
            Consistency::Eventual => self.backend.query_eventual(&pk, " ", "\u{10ffff}").await?,
        };
        skip_unreadable(
            tenant,
            items.into_iter().map(|item| match item.record {
                Record::Alert(a) => Ok((a, item.version)),
                _ => Err(unexpected(&item, "expected an alert")),
            }),
        )
    }

    /// One alert with its version: a point read (1 RCU), for paths that need one alert.
    pub async fn alert(
        &self,
        tenant: &str,
        alert_id: &str,
    ) -> Result<Option<(AlertRecord, u64)>, StoreError> {
        let key = layout::alert(tenant, alert_id);
        match self.get_one(&key).await? {
            None => Ok(None),
            Some(StoredItem {
                record: Record::Alert(a),
                version,
                ..
            }) => Ok(Some((a, version))),
            Some(_) => Err(corrupt(&key, "expected an alert")),
        }
    }

    /// The tenant's active alerts, critical first, then newest first.
    pub async fn active_alerts(&self, tenant: &str) -> Result<Vec<AlertRecord>, StoreError> {
        let mut active: Vec<AlertRecord> = self
            .all_alerts(tenant)
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| a.resolved_at.is_none())
            .collect();
        sort_alerts(&mut active);
        Ok(active)
    }

    /// Saves an alert if its stored version is still `expected` (`None`: it must be new).
    /// Resolved alerts get a TTL. [`StoreError::Conflict`] if someone else changed it.
    pub async fn save_alert(
        &self,
        tenant: &str,
        alert: &AlertRecord,
        expected: Option<u64>,
    ) -> Result<(), StoreError> {
        self.backend
            .write(vec![alert_write(tenant, alert, expected)])
            .await
    }

    /// Marks an alert acknowledged by `by` with optional notes. Acknowledging twice keeps
    /// the first acknowledgement and is not an error.
    pub async fn acknowledge_alert(
        &self,
        tenant: &str,
        alert_id: &str,
        ack: Acknowledgement<'_>,
    ) -> Result<AckOutcome, StoreError> {
        match self
            .acknowledge_alert_if(tenant, alert_id, ack, |_| true)
            .await?
        {
            GuardedAck::Outcome(outcome) => Ok(outcome),
            // Not produced: the condition above always holds.
            GuardedAck::NoLongerApplies(alert) => Ok(AckOutcome::Acknowledged(alert)),
        }
    }

    /// [`Store::acknowledge_alert`] while `applies` holds for the alert as stored (an
    /// acknowledge link: not once the alert escalated after the link was sent). The
    /// condition is checked on the version the write is conditional on, so an escalation
    /// racing the acknowledgement is seen. A resolved or missing alert is reported as such
    /// before the condition is asked; an acknowledged one after it.
    pub async fn acknowledge_alert_if(
        &self,
        tenant: &str,
        alert_id: &str,
        ack: Acknowledgement<'_>,
        applies: impl Fn(&AlertRecord) -> bool + Send + Sync,
    ) -> Result<GuardedAck, StoreError> {
        // A conflict means the collector changed it (escalated or resolved): decide again
        // on the new state.
        retry_on_conflict(|| async {
            let Some((mut alert, version)) = self.alert(tenant, alert_id).await? else {
                return Ok(GuardedAck::Outcome(AckOutcome::NotFound));
            };
            if alert.resolved_at.is_some() {
                return Ok(GuardedAck::Outcome(AckOutcome::Resolved(alert)));
            }
            if !applies(&alert) {
                return Ok(GuardedAck::NoLongerApplies(alert));
            }
            if alert.acknowledged_at.is_some() {
                return Ok(GuardedAck::Outcome(AckOutcome::Acknowledged(alert)));
            }
            alert.acknowledged_at = Some(ack.at);
            alert.acknowledged_by = Some(ack.by.to_owned());
            alert.notes = ack.notes.map(str::to_owned);
            self.save_alert(tenant, &alert, Some(version)).await?;
            Ok(GuardedAck::Outcome(AckOutcome::Acknowledged(alert)))
        })
        .await
    }
}

/// The conditional write of one alert.
pub(crate) fn alert_write(tenant: &str, alert: &AlertRecord, expected: Option<u64>) -> Write {
    Write {
        item: StoredItem {
            key: layout::alert(tenant, &alert.alert_id),
            record: Record::Alert(alert.clone()),
            version: expected.unwrap_or(0) + 1,
            expires_at: alert
                .resolved_at
                .and_then(|t| layout::expiry(t, layout::RESOLVED_ALERT_TTL_MS)),
            index: None,
        },
        condition: expected.map_or(Condition::NotExists, Condition::Version),
    }
}
