//! Writing alert decisions, shared by the collector's cycle and the evaluation of events
//! as they arrive.
//!
//! Both evaluate the same rules ([`super::rules::evaluate`]) and write through the same
//! reconcile-and-conditional-write loop, so alert identity, hysteresis and the
//! no-duplicates guarantee of overlapping evaluators are one piece of code: raises are
//! conditional on the deterministic id not existing, changes on the version read; a lost
//! race re-reads the alerts and decides again.

use std::collections::{HashMap, HashSet};

use super::rules::{reconcile, AlertKey, Change, Firing};
use crate::domain::alerts::{AlertRecord, Severity, SourceType};
use crate::store::{Store, StoreError, MAX_ATTEMPTS};
use crate::time::Millis;

/// What a pass wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Alerts raised.
    pub raised: usize,
    /// Alerts whose severity changed.
    pub updated: usize,
    /// Alerts resolved.
    pub resolved: usize,
}

impl Tally {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.raised + self.updated + self.resolved > 0
    }
}

/// Which alerts a pass may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every alert of the tenant (the collector's cycle, which sees every source).
    All,
    /// Only the alerts of these sources (an evaluation of the sources some events touched:
    /// it knows nothing of the others, so it must leave their alerts alone).
    Sources(HashSet<(SourceType, String)>),
}

impl Scope {
    fn covers(&self, a: &AlertRecord) -> bool {
        match self {
            Self::All => true,
            Self::Sources(s) => s.contains(&(a.source_type, a.source_id.clone())),
        }
    }
}

/// Makes the stored alerts within `scope` match what `evaluate` finds (given the severity
/// of each active alert, for hysteresis), and returns every alert as stored afterwards.
/// `alerts` is the tenant's alerts as read, with their versions.
pub async fn settle_alerts(
    store: &Store,
    tenant: &str,
    mut alerts: Vec<(AlertRecord, u64)>,
    scope: &Scope,
    evaluate: impl Fn(&HashMap<AlertKey, Severity>) -> Vec<Firing>,
    now: Millis,
) -> Result<(Vec<(AlertRecord, u64)>, Tally), StoreError> {
    let mut tally = Tally::default();
    let mut attempt = 0;
    loop {
        let within: Vec<(AlertRecord, u64)> = alerts
            .iter()
            .filter(|(a, _)| scope.covers(a))
            .cloned()
            .collect();
        let firing = evaluate(&super::rules::active_severities(&within));
        let mut conflict = false;
        for change in reconcile(&within, &firing, now) {
            let (alert, expected) = match &change {
                Change::Raise(a) => (a, None),
                Change::Update(a, v) | Change::Resolve(a, v) => (a, Some(*v)),
            };
            match store.save_alert(tenant, alert, expected).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => {
                    conflict = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let version = expected.unwrap_or(0) + 1;
            match change {
                Change::Raise(a) => {
                    tracing::warn!(tenant, alert_id = %a.alert_id, alert = %a.message, "alert raised");
                    tally.raised += 1;
                    alerts.push((a, version));
                }
                Change::Update(a, _) | Change::Resolve(a, _) => {
                    if a.resolved_at.is_some() {
                        tracing::info!(tenant, alert_id = %a.alert_id, "alert resolved");
                        tally.resolved += 1;
                    } else {
                        tally.updated += 1;
                    }
                    if let Some(slot) = alerts.iter_mut().find(|(s, _)| s.alert_id == a.alert_id)
                    {
                        *slot = (a, version);
                    }
                }
            }
        }
        if !conflict {
            return Ok((alerts, tally));
        }
        attempt += 1;
        if attempt >= MAX_ATTEMPTS {
            // An alert that keeps conflicting (one whose stored item is unreadable, so it is
            // never in the list read) must not stop the rest of the pass.
            tracing::error!(
                tenant,
                "alerts still conflicting after retries; left for the next pass"
            );
            return Ok((alerts, tally));
        }
        alerts = store.all_alerts(tenant).await?;
    }
}
