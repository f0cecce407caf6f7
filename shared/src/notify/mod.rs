//! Notifications: deciding what each channel must be told (the [`plan`]), recording it in
//! an outbox atomically with that decision, and delivering the outbox with retries.
//!
//! The notifier reconciles stored state rather than reacting to events: every pass reads
//! the tenant's alerts and what each channel was already sent, so a transition is never
//! missed, whoever wrote the alert and whenever a process died. A decision and its messages
//! are one conditional write, so two notifiers never decide the same message twice; a
//! message is claimed (a lease) before each attempt, so two notifiers never send it at the
//! same time; and it keeps its `notification_id` across attempts, so a receiver that got it
//! before a crash can recognise the repeat.

pub mod plan;
pub mod render;
pub mod send;
pub mod token;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use rand::Rng;

use crate::config::Config;
use crate::domain::alerts::{AlertRecord, Severity, SourceType};
use crate::domain::notify::{ChannelRecord, Destination, RuleRecord};
use crate::store::layout::{self, Entity};
use crate::store::notify::{DeliveryStatus, NotificationRecord};
use crate::store::{Record, Store, StoreError};
use crate::time::{Clock, Millis, HOUR_MS, MINUTE_MS};
use plan::{plan, Kind};
use render::{Item, Message};
use send::{SendError, Sender};

/// A channel failing this long raises an alert on its tenant.
pub const CHANNEL_FAILING_AFTER_MS: Millis = 15 * MINUTE_MS;
/// A message not delivered this long after it was decided is given up.
pub const GIVE_UP_AFTER_MS: Millis = 24 * HOUR_MS;
/// How long an attempt holds its message.
const LEASE_MS: Millis = 60_000;
/// Tenants handled at once.
const TENANT_CONCURRENCY: usize = 4;
/// The condition of the alert raised for a failing channel.
pub const CHANNEL_FAILING: &str = "channel_failing";

/// The backoff before attempt `attempts + 1`: 2 s doubling to 5 min, with up to 50 % jitter
/// so channels that failed together do not retry together.
pub fn backoff_ms(attempts: u32) -> Millis {
    let base: Millis = 2000 << attempts.saturating_sub(1).min(8);
    let base = base.min(5 * MINUTE_MS);
    base + rand::rng().random_range(0..=base / 2)
}

/// What one pass over a tenant did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PassReport {
    /// Messages decided.
    pub decided: usize,
    /// Deliveries that succeeded.
    pub delivered: usize,
    /// Attempts that failed (to be retried or given up).
    pub failed_attempts: usize,
    /// Messages still waiting for delivery after the pass (their retry not due yet).
    pub pending: usize,
    /// When something next falls due.
    pub next_due: Option<Millis>,
    /// Each tenant's part of a whole pass ([`Notifier::run_pass`]), for its own figures;
    /// empty in one tenant's report.
    pub tenants: Vec<(String, TenantDeliveries)>,
}

/// One tenant's deliveries in a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TenantDeliveries {
    /// Deliveries that succeeded.
    pub delivered: usize,
    /// Attempts that failed.
    pub failed_attempts: usize,
    /// Messages still waiting after the pass.
    pub pending: usize,
}

impl PassReport {
    fn due(&mut self, at: Millis) {
        self.next_due = Some(self.next_due.map_or(at, |d| d.min(at)));
    }
    fn add(&mut self, other: &PassReport) {
        self.decided += other.decided;
        self.delivered += other.delivered;
        self.failed_attempts += other.failed_attempts;
        self.pending += other.pending;
        if let Some(at) = other.next_due {
            self.due(at);
        }
    }
}

/// The result of a channel test.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TestResult {
    /// The channel.
    pub channel_id: String,
    /// The id the test message carried.
    pub notification_id: String,
    /// Whether the channel accepted it.
    pub delivered: bool,
    /// Why not.
    pub error: Option<String>,
    /// Whether the failure is of a kind that is retried for real messages.
    pub retryable: bool,
}

/// The notifier. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct Notifier {
    store: Store,
    config: Arc<Config>,
    sender: Sender,
    secret: tokio::sync::OnceCell<Vec<u8>>,
    /// Where passes are counted.
    stats: Arc<crate::telemetry::StackStats>,
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill(&mut bytes);
    format!("n_{}", hex::encode(bytes))
}

impl Notifier {
    /// A notifier over the application's store and configuration.
    pub fn new(state: &crate::AppState) -> Result<Self, reqwest::Error> {
        Ok(Self {
            store: state.store.clone(),
            config: Arc::clone(&state.config),
            sender: Sender::new(Arc::clone(&state.config))?,
            secret: tokio::sync::OnceCell::new(),
            stats: Arc::clone(&state.stats),
        })
    }

    async fn secret(&self) -> Result<&[u8], StoreError> {
        self.secret
            .get_or_try_init(|| self.store.ack_secret())
            .await
            .map(Vec::as_slice)
    }

    /// One pass over every tenant at `now`. A tenant's failure is logged and does not stop
    /// the others.
    pub async fn run_pass(&self, now: Millis) -> Result<PassReport, StoreError> {
        let tenants = self.store.tenants().await?;
        let results: Vec<_> = stream::iter(tenants)
            .map(|tenant| async move {
                let result = self.pass_tenant(&tenant, now).await;
                (tenant, result)
            })
            .buffer_unordered(TENANT_CONCURRENCY)
            .collect()
            .await;
        let mut report = PassReport::default();
        for (tenant, result) in results {
            match result {
                Ok(r) => {
                    report.add(&r);
                    let deliveries = TenantDeliveries {
                        delivered: r.delivered,
                        failed_attempts: r.failed_attempts,
                        pending: r.pending,
                    };
                    report.tenants.push((tenant, deliveries));
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant, error = %e, "notification pass failed");
                    // Try again soon.
                    report.due(now + 5000);
                }
            }
        }
        Ok(report)
    }

    /// One tenant's pass: decide, then deliver what is due.
    pub async fn pass_tenant(&self, tenant: &str, now: Millis) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let config = self.store.notify_config(tenant).await?;
        if config.channels.is_empty() {
            return Ok(report);
        }
        let alerts: Vec<AlertRecord> = if config.rules.is_empty() {
            Vec::new()
        } else {
            self.store
                .all_alerts(tenant)
                .await?
                .into_iter()
                .map(|(a, _)| a)
                .collect()
        };
        for channel in &config.channels {
            let (state, version) = match config.states.get(&channel.channel_id) {
                Some((s, v)) => (s.clone(), Some(*v)),
                None => (plan::ChannelState::default(), None),
            };
            let mut state = state;
            if channel.enabled && !config.rules.is_empty() {
                let rules: Vec<&RuleRecord> = config
                    .rules
                    .iter()
                    .filter(|r| r.channels.contains(&channel.channel_id))
                    .collect();
                let tracks = matches!(channel.destination, Destination::Pagerduty { .. });
                let mut p = plan(&state, &rules, &alerts, &config.silences, tracks, now);
                if let Some(at) = p.next_due {
                    report.due(at);
                }
                let wanted = rules.iter().any(|r| r.weekly_report);
                let (due, week) = plan::report_due(state.report_week, wanted, now);
                p.state.report_week = week;
                if due {
                    p.messages.push(plan::Draft {
                        kind: Kind::Report,
                        alerts: Vec::new(),
                    });
                }
                if wanted {
                    report.due(plan::week_start(plan::week_of(now) + 1));
                }
                if !p.messages.is_empty() || p.state != state {
                    let mut next = p.state;
                    let mut records = Vec::new();
                    for draft in p.messages {
                        let names = self.source_names(tenant, &draft.alerts).await?;
                        let record = NotificationRecord {
                            notification_id: new_id(),
                            channel_id: channel.channel_id.clone(),
                            kind: draft.kind,
                            alerts: draft.alerts,
                            source_names: names,
                            created_at: now,
                            status: DeliveryStatus::Pending,
                            attempts: 0,
                            next_attempt_at: now,
                            lease_until: None,
                            delivered_at: None,
                            last_error: None,
                        };
                        next.outbox.push(record.notification_id.clone());
                        records.push(record);
                    }
                    match self
                        .store
                        .commit_plan(tenant, &channel.channel_id, &next, version, &records)
                        .await
                    {
                        Ok(()) => {
                            for r in &records {
                                tracing::info!(tenant, channel = %channel.channel_id, notification_id = %r.notification_id, kind = r.kind.as_str(), alerts = r.alerts.len(), "notification decided");
                            }
                            report.decided += records.len();
                            state = next;
                        }
                        // Another notifier decided first: its decision stands, and the next
                        // pass sees it.
                        Err(StoreError::Conflict) => {
                            report.due(now + 1000);
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            if !state.outbox.is_empty() {
                let r = self
                    .deliver_channel(tenant, channel, &state.outbox, now)
                    .await?;
                report.add(&r);
            }
        }
        // Only when some channel is failing or was: most passes skip these reads.
        let watch = report.failed_attempts > 0
            || config
                .states
                .values()
                .any(|(s, _)| s.failing_since.is_some())
            || alerts
                .iter()
                .any(|a| a.condition == CHANNEL_FAILING && a.resolved_at.is_none());
        if watch {
            self.channel_alerts(tenant, &config.channels, &alerts, now)
                .await?;
        }
        Ok(report)
    }

    /// Display names of the agents and integrations the alerts are about: one batch read.
    async fn source_names(
        &self,
        tenant: &str,
        alerts: &[AlertRecord],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut keys = Vec::new();
        for a in alerts {
            let entity = match a.source_type {
                SourceType::Agent => Entity::Agent,
                SourceType::Integration => Entity::Integration,
                SourceType::System => continue,
            };
            let key = layout::live(tenant, entity, &a.source_id);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        let mut names = BTreeMap::new();
        for chunk in keys.chunks(100) {
            for item in self.store.backend().get(chunk).await?.into_iter().flatten() {
                match item.record {
                    Record::Agent(l) => {
                        names.insert(l.record.agent_id, l.record.agent_name);
                    }
                    Record::Integration(l) => {
                        names.insert(l.record.integration_id, l.record.integration_name);
                    }
                    _ => {}
                }
            }
        }
        Ok(names)
    }

    /// The message a channel receives for a stored notification.
    async fn message<'a>(
        &self,
        tenant: &'a str,
        channel_id: &str,
        n: &'a NotificationRecord,
    ) -> Result<Message<'a>, StoreError> {
        let base = self.config.public_url.clone();
        let secret = match &base {
            Some(_) => Some(self.secret().await?),
            None => None,
        };
        let items = n
            .alerts
            .iter()
            .map(|a| Item {
                alert: a,
                source_name: n.source_names.get(&a.source_id).map(String::as_str),
                acknowledge_url: match (&base, secret) {
                    (Some(base), Some(secret)) if a.resolved_at.is_none() => Some(format!(
                        "{base}/api/health/ack/{}",
                        token::sign(
                            secret,
                            &token::AckClaim {
                                tenant: tenant.to_owned(),
                                alert_id: a.alert_id.clone(),
                                channel_id: channel_id.to_owned(),
                                expires_at: n.created_at + token::ACK_LINK_TTL_MS,
                            }
                        )
                    )),
                    _ => None,
                },
            })
            .collect();
        // The week before the one the report was decided in, Monday to Sunday: rebuilt
        // on each attempt from stored history, so a retry sends the same figures.
        let report = if n.kind == Kind::Report {
            let end = plan::week_start(plan::week_of(n.created_at)) - 1;
            let inputs = self
                .store
                .report_inputs(tenant, crate::domain::report::PeriodKind::Week, end)
                .await?;
            Some(crate::domain::report::build(&inputs))
        } else {
            None
        };
        Ok(Message {
            notification_id: &n.notification_id,
            tenant,
            kind: n.kind,
            items,
            dashboard_url: base.map(|b| format!("{b}/")),
            report,
        })
    }

    /// Attempts the channel's due messages, oldest first, and records each outcome.
    async fn deliver_channel(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        outbox: &[String],
        now: Millis,
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let mut finished: Vec<String> = Vec::new();
        let mut success = None;
        let mut last_error = None;
        let found = self.store.notifications(tenant, outbox).await?;
        // Ids whose message is gone (expired) leave the outbox.
        for id in outbox {
            if !found.iter().any(|(n, _)| &n.notification_id == id) {
                finished.push(id.clone());
            }
        }
        for (mut n, version) in found {
            if n.status != DeliveryStatus::Pending {
                finished.push(n.notification_id.clone());
                continue;
            }
            let free_at = n.lease_until.unwrap_or(0).max(n.next_attempt_at);
            if free_at > now {
                report.due(free_at);
                report.pending += 1;
                continue;
            }
            // Claim it for this attempt.
            n.attempts += 1;
            n.lease_until = Some(now + LEASE_MS);
            match self.store.save_notification(tenant, &n, version).await {
                Ok(()) => {}
                Err(StoreError::Conflict) => continue,
                Err(e) => return Err(e),
            }
            let result = if channel.enabled {
                let message = self.message(tenant, &channel.channel_id, &n).await?;
                self.sender.send(&channel.destination, &message, now).await
            } else {
                Err(SendError {
                    message: "the channel is disabled".to_owned(),
                    retry: None,
                })
            };
            n.lease_until = None;
            match result {
                Ok(()) => {
                    n.status = DeliveryStatus::Delivered;
                    n.delivered_at = Some(now);
                    n.last_error = None;
                    report.delivered += 1;
                    success = Some(true);
                    tracing::info!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, "notification delivered");
                }
                Err(e) => {
                    report.failed_attempts += 1;
                    success = Some(false);
                    last_error = Some(e.message.clone());
                    n.last_error = Some(e.message.clone());
                    match e.retry {
                        Some(after) if now - n.created_at < GIVE_UP_AFTER_MS => {
                            n.next_attempt_at =
                                now + after.unwrap_or_else(|| backoff_ms(n.attempts));
                            report.due(n.next_attempt_at);
                            tracing::warn!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, error = %e.message, "notification attempt failed; will retry");
                        }
                        _ => {
                            n.status = DeliveryStatus::Failed;
                            tracing::error!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, error = %e.message, "notification failed for good");
                        }
                    }
                }
            }
            self.store
                .save_notification(tenant, &n, version + 1)
                .await?;
            if n.status != DeliveryStatus::Pending {
                finished.push(n.notification_id.clone());
            } else {
                report.pending += 1;
            }
        }
        if !finished.is_empty() || success.is_some() {
            self.store
                .update_channel_state(tenant, &channel.channel_id, |s| {
                    s.outbox.retain(|id| !finished.contains(id));
                    match success {
                        Some(true) => {
                            s.failing_since = None;
                            s.last_error = None;
                        }
                        Some(false) => {
                            s.failing_since = s.failing_since.or(Some(now));
                            s.last_error.clone_from(&last_error);
                        }
                        None => {}
                    }
                })
                .await?;
        }
        Ok(report)
    }

    /// Raises an alert for each channel failing for [`CHANNEL_FAILING_AFTER_MS`], and
    /// resolves it once the channel delivers again (or is deleted).
    async fn channel_alerts(
        &self,
        tenant: &str,
        channels: &[ChannelRecord],
        alerts: &[AlertRecord],
        now: Millis,
    ) -> Result<(), StoreError> {
        let config = self.store.notify_config(tenant).await?;
        let stored = if alerts.is_empty() {
            self.store
                .all_alerts(tenant)
                .await?
                .into_iter()
                .map(|(a, _)| a)
                .collect()
        } else {
            alerts.to_vec()
        };
        for channel in channels {
            let failing = config
                .states
                .get(&channel.channel_id)
                .and_then(|(s, _)| Some((s.failing_since?, s.last_error.clone())))
                .filter(|(since, _)| now - since >= CHANNEL_FAILING_AFTER_MS);
            let active = stored.iter().find(|a| {
                a.condition == CHANNEL_FAILING
                    && a.source_id == channel.channel_id
                    && a.resolved_at.is_none()
            });
            match (failing, active) {
                (Some((since, error)), None) => {
                    let n = stored
                        .iter()
                        .filter(|a| {
                            a.condition == CHANNEL_FAILING && a.source_id == channel.channel_id
                        })
                        .count()
                        + 1;
                    let alert = AlertRecord {
                        alert_id: format!("alert_channel_{}_failing_{n}", channel.channel_id),
                        severity: Severity::Warning,
                        message: format!(
                            "Notification channel {} failing for {} min: {}",
                            channel.name,
                            (now - since) / MINUTE_MS,
                            error.unwrap_or_default()
                        ),
                        source_type: SourceType::System,
                        source_id: channel.channel_id.clone(),
                        condition: CHANNEL_FAILING.to_owned(),
                        raised_at: now,
                        acknowledged_by: None,
                        acknowledged_at: None,
                        notes: None,
                        resolved_at: None,
                    };
                    match self.store.save_alert(tenant, &alert, None).await {
                        Ok(()) | Err(StoreError::Conflict) => {
                            tracing::warn!(tenant, channel = %channel.channel_id, "notification channel failing: alert raised");
                        }
                        Err(e) => return Err(e),
                    }
                }
                (None, Some(a)) => self.resolve_channel_alert(tenant, a, now).await?,
                _ => {}
            }
        }
        // Channels deleted while failing.
        for a in stored.iter().filter(|a| {
            a.condition == CHANNEL_FAILING
                && a.resolved_at.is_none()
                && !channels.iter().any(|c| c.channel_id == a.source_id)
        }) {
            self.resolve_channel_alert(tenant, a, now).await?;
        }
        Ok(())
    }

    async fn resolve_channel_alert(
        &self,
        tenant: &str,
        alert: &AlertRecord,
        now: Millis,
    ) -> Result<(), StoreError> {
        if let Some((mut current, version)) = self.store.alert(tenant, &alert.alert_id).await? {
            if current.resolved_at.is_none() {
                current.resolved_at = Some(now);
                match self.store.save_alert(tenant, &current, Some(version)).await {
                    Ok(()) | Err(StoreError::Conflict) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Sends a test message to a channel now (no outbox, no retries) and reports the result.
    pub async fn test_channel(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        now: Millis,
    ) -> Result<TestResult, StoreError> {
        let alert = AlertRecord {
            alert_id: format!("test_{}", now.div_euclid(1000)),
            severity: Severity::Info,
            message: format!(
                "Test notification to channel {} from the agent health monitor",
                channel.name
            ),
            source_type: SourceType::System,
            source_id: "system".to_owned(),
            condition: "test".to_owned(),
            raised_at: now,
            acknowledged_by: None,
            acknowledged_at: None,
            notes: None,
            resolved_at: None,
        };
        let record = NotificationRecord {
            notification_id: new_id(),
            channel_id: channel.channel_id.clone(),
            kind: Kind::Test,
            alerts: vec![alert],
            source_names: BTreeMap::new(),
            created_at: now,
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: now,
            lease_until: None,
            delivered_at: None,
            last_error: None,
        };
        let mut message = self.message(tenant, &channel.channel_id, &record).await?;
        // A test alert does not exist: nothing to acknowledge.
        for item in &mut message.items {
            item.acknowledge_url = None;
        }
        let result = self.sender.send(&channel.destination, &message, now).await;
        Ok(TestResult {
            channel_id: channel.channel_id.clone(),
            notification_id: record.notification_id.clone(),
            delivered: result.is_ok(),
            retryable: result.as_ref().err().is_some_and(|e| e.retry.is_some()),
            error: result.err().map(|e| e.message),
        })
    }

    /// Runs passes until `until` (forever if `None`): after each pass it sleeps until the
    /// next due time, at most `max_sleep_ms`, or until `wake` is notified (a collector
    /// cycle, an acknowledgement, a configuration change).
    pub async fn run_until(
        &self,
        clock: Arc<dyn Clock>,
        until: Option<Millis>,
        wake: Arc<tokio::sync::Notify>,
        max_sleep_ms: Millis,
    ) {
        loop {
            let now = clock.now_ms();
            if until.is_some_and(|u| now >= u) {
                return;
            }
            let next = match self.run_pass(now).await {
                Ok(r) => {
                    self.stats.record_pass(&r);
                    r.next_due
                }
                Err(e) => {
                    tracing::error!(error = %e, "notification pass failed");
                    None
                }
            };
            let mut wait = next.map_or(max_sleep_ms, |at| {
                (at - clock.now_ms()).clamp(0, max_sleep_ms)
            });
            if let Some(u) = until {
                wait = wait.min((u - clock.now_ms()).max(0));
            }
            let sleep = tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ));
            tokio::select! {
                () = sleep => {}
                () = wake.notified() => {}
            }
        }
    }
}
