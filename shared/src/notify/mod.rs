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

use crate::domain::alerts::{AlertRecord, Severity, SourceType};
use crate::domain::notify::{ChannelRecord, Destination, RuleRecord};
use crate::domain::notify::{ChannelState, Kind};
use crate::store::layout;
use crate::store::notify::{DeliveryStatus, NotificationRecord, NotifyConfig};
use crate::store::{Record, Store, StoreError};
use crate::telemetry::Deliveries;
use crate::time::{Clock, Millis, HOUR_MS, MINUTE_MS};
use plan::plan;
use render::{Item, Message};
use send::{SendError, Sender};

/// A channel failing this long raises an alert on its tenant.
pub const CHANNEL_FAILING_AFTER_MS: Millis = 15 * MINUTE_MS;
/// A message not delivered this long after it was decided is given up.
pub const GIVE_UP_AFTER_MS: Millis = 24 * HOUR_MS;
/// For this long after a message was decided, retries come quickly: a receiver back from a
/// short outage (a deploy, a restart) within it gets its messages within
/// [`FAST_RETRY_GAP_MS`] of recovering.
pub const FAST_RETRY_FOR_MS: Millis = 10 * MINUTE_MS;
/// The most time from the start of one attempt to the start of the next while retries are
/// quick: an attempt that takes the whole [`send::SEND_TIMEOUT_MS`] (10 s: a receiver that
/// times out rather than refuses), a wait of at most [`FAST_RETRY_MAX_WAIT_MS`] (18 s),
/// and the Lambda notifier's tick (`NOTIFIER_TICK_MS`, 2 s; the local stack wakes when
/// the retry is due).
pub const FAST_RETRY_GAP_MS: Millis = 30_000;
/// The longest wait between quick retries.
pub const FAST_RETRY_MAX_WAIT_MS: Millis = 18_000;
/// How long an attempt holds its message.
const LEASE_MS: Millis = 60_000;
/// Tenants handled at once.
const TENANT_CONCURRENCY: usize = 4;
/// Longest one tenant's notification pass may run before it is cut off (its leased
/// messages are retried when their lease ends).
pub const TENANT_PASS_BUDGET_MS: Millis = 60_000;
/// Least time between the end of a tenant's pass and the start of its next (a wake-up
/// aside).
pub const MIN_PASS_GAP_MS: Millis = 250;
/// The condition of the alert raised for a failing channel.
pub const CHANNEL_FAILING: &str = "channel_failing";

/// The wait before attempt `attempts + 1` of a message decided `age_ms` ago. Jittered so
/// channels that failed together do not retry together.
///
/// - For the first [`FAST_RETRY_FOR_MS`]: 2 s doubling, capped at 18 s, each wait drawn
///   from its upper half (9 to 18 s once capped), so a receiver that recovers within ten
///   minutes sees an attempt within [`FAST_RETRY_GAP_MS`] of recovering, even when each
///   failed attempt took the whole send timeout. An attempt that started inside the ten
///   minutes but failed just after them (a timeout) is still followed quickly.
/// - After: 2 s doubling to 5 min (by then at the cap), plus up to 50 %: a receiver that
///   is down for longer is not hammered.
pub fn backoff_ms(attempts: u32, age_ms: Millis) -> Millis {
    let base: Millis = 2000 << attempts.saturating_sub(1).min(8);
    if age_ms < FAST_RETRY_FOR_MS + FAST_RETRY_GAP_MS {
        let base = base.min(FAST_RETRY_MAX_WAIT_MS);
        return base / 2 + rand::rng().random_range(0..=base / 2);
    }
    let base = base.min(5 * MINUTE_MS);
    base + rand::rng().random_range(0..=base / 2)
}

/// When to try a message decided at `created_at` again after attempt `attempts` failed at
/// `failed_at`, or `None` to give up. `retry_after` is the receiver's own `Retry-After`
/// (honoured instead of the backoff). No attempt is scheduled past [`GIVE_UP_AFTER_MS`]
/// after the decision: the last one falls at that limit, and a failure there is final.
pub fn retry_at(
    created_at: Millis,
    attempts: u32,
    failed_at: Millis,
    retry_after: Option<Millis>,
) -> Option<Millis> {
    let give_up_at = created_at + GIVE_UP_AFTER_MS;
    if failed_at >= give_up_at {
        return None;
    }
    let wait = retry_after.unwrap_or_else(|| backoff_ms(attempts, failed_at - created_at));
    Some((failed_at + wait).min(give_up_at))
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
    pub tenants: Vec<(String, Deliveries)>,
}

impl PassReport {
    /// The pass's deliveries, as the process's figures count them.
    pub fn deliveries(&self) -> Deliveries {
        Deliveries {
            delivered: self.delivered,
            failed_attempts: self.failed_attempts,
            pending: self.pending,
        }
    }

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

/// The longest a channel test waits for the channel before answering that it did not
/// answer in time. The test is answered synchronously, through the HTTP API in AWS, which
/// gives up after 30 s (its integration limit) and answers 503 while the function goes
/// on; a PagerDuty test is two posts of up to [`send::SEND_TIMEOUT_MS`] each, and SMTP,
/// SES and SNS have no overall limit of their own. 20 s leaves the function time to
/// answer first.
pub const TEST_SEND_DEADLINE_MS: u64 = 20_000;

/// The notifier. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct Notifier {
    store: Store,
    /// Read at each claim and each send: a pass's start time ages while earlier sends are
    /// slow, and a lease or signature made from it could be stale when used.
    clock: Arc<dyn Clock>,
    sender: Sender,
    secret: tokio::sync::OnceCell<Vec<u8>>,
    /// The base of links in messages (`HEALTH_PUBLIC_URL` unless overridden).
    public_url: Option<String>,
    /// See [`TEST_SEND_DEADLINE_MS`].
    test_deadline: std::time::Duration,
    /// Where passes are counted.
    stats: Arc<crate::telemetry::StackStats>,
}

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill(&mut bytes);
    format!("n_{}", hex::encode(bytes))
}

/// What a channel's attempts in one pass mean for its stored state.
#[derive(Default)]
struct Outcome {
    /// Notifications that leave the outbox.
    finished: Vec<String>,
    /// Whether the last attempt succeeded, if there was one.
    success: Option<bool>,
    last_error: Option<String>,
    first_failure: Option<Millis>,
}

/// Records a failed attempt: the notification is retried when the error allows and the
/// retry comes within the limit, and fails for good otherwise.
fn failed_attempt(
    tenant: &str,
    channel: &ChannelRecord,
    n: &mut NotificationRecord,
    e: &SendError,
    now: Millis,
    report: &mut PassReport,
    outcome: &mut Outcome,
) {
    report.failed_attempts += 1;
    outcome.success = Some(false);
    outcome.first_failure.get_or_insert(now);
    outcome.last_error = Some(e.message.clone());
    n.last_error = Some(e.message.clone());
    match e
        .retry
        .and_then(|after| retry_at(n.created_at, n.attempts, now, after))
    {
        Some(at) => {
            n.next_attempt_at = at;
            report.due(at);
            tracing::warn!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, error = %e.message, "notification attempt failed; will retry");
        }
        None => {
            n.status = DeliveryStatus::Failed;
            tracing::error!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, error = %e.message, "notification failed for good");
        }
    }
}

/// The link that acknowledges `alert` as notification `n` shows it.
fn acknowledge_url(
    base: &str,
    secret: &[u8],
    tenant: &str,
    channel_id: &str,
    n: &NotificationRecord,
    alert: &AlertRecord,
) -> String {
    let claim = token::AckClaim {
        tenant: tenant.to_owned(),
        alert_id: alert.alert_id.clone(),
        channel_id: channel_id.to_owned(),
        expires_at: n.created_at + token::ACK_LINK_TTL_MS,
        // The alert as this message shows it: a later escalation needs a new message's link.
        sent_for: Some(token::SentFor {
            severity: alert.severity,
            raised_at: alert.raised_at,
        }),
    };
    format!("{base}/api/health/ack/{}", token::sign(secret, &claim))
}

/// The alert for a channel failing since `since`: numbered after the channel's earlier
/// ones, so each failure is an alert of its own.
fn channel_failing_alert(
    channel: &ChannelRecord,
    stored: &[AlertRecord],
    since: Millis,
    error: Option<String>,
    now: Millis,
) -> AlertRecord {
    let n = stored
        .iter()
        .filter(|a| a.condition == CHANNEL_FAILING && a.source_id == channel.channel_id)
        .count()
        + 1;
    system_alert(
        format!("alert_channel_{}_failing_{n}", channel.channel_id),
        Severity::Warning,
        format!(
            "Notification channel {} failing for {} min: {}",
            channel.name,
            (now - since) / MINUTE_MS,
            error.unwrap_or_default()
        ),
        channel.channel_id.clone(),
        CHANNEL_FAILING,
        now,
    )
}

/// A new alert the system raises about itself.
fn system_alert(
    alert_id: String,
    severity: Severity,
    message: String,
    source_id: String,
    condition: &str,
    now: Millis,
) -> AlertRecord {
    AlertRecord::open(
        alert_id,
        severity,
        message,
        (SourceType::System, &source_id),
        condition,
        now,
    )
}

/// The message a channel test sends: one made-up alert, stored nowhere.
fn test_notification(channel: &ChannelRecord, now: Millis) -> NotificationRecord {
    let alert = system_alert(
        format!("test_{}", now.div_euclid(1000)),
        Severity::Info,
        format!(
            "Test notification to channel {} from the agent health monitor",
            channel.name
        ),
        "system".to_owned(),
        "test",
        now,
    );
    NotificationRecord {
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
    }
}

/// Plans one enabled channel at `now`, its weekly report included, and notes in `report`
/// when it next falls due.
fn plan_channel(
    channel: &ChannelRecord,
    config: &NotifyConfig,
    alerts: &[AlertRecord],
    state: &ChannelState,
    now: Millis,
    report: &mut PassReport,
) -> plan::Plan {
    let rules: Vec<&RuleRecord> = config
        .rules
        .iter()
        .filter(|r| r.channels.contains(&channel.channel_id))
        .collect();
    let tracks = matches!(channel.destination, Destination::Pagerduty { .. });
    let mut p = plan(state, &rules, alerts, &config.silences, tracks, now);
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
    p
}

impl Notifier {
    /// A notifier over the application's store and configuration.
    pub fn new(state: &crate::AppState) -> Result<Self, reqwest::Error> {
        Ok(Self {
            store: state.store.clone(),
            clock: Arc::clone(&state.clock),
            sender: Sender::new(Arc::clone(&state.config))?,
            secret: tokio::sync::OnceCell::new(),
            public_url: state.config.public_url.clone(),
            test_deadline: std::time::Duration::from_millis(TEST_SEND_DEADLINE_MS),
            stats: Arc::clone(&state.stats),
        })
    }

    /// The notifier with `base` as the base of links in its messages: where the caller of
    /// a channel test reached this deployment, when `HEALTH_PUBLIC_URL` does not say.
    /// `None` keeps what the configuration gives.
    pub fn with_public_url(mut self, base: Option<String>) -> Self {
        if base.is_some() {
            self.public_url = base;
        }
        self
    }

    /// The notifier with another deadline for channel tests than
    /// [`TEST_SEND_DEADLINE_MS`] (tests of the deadline itself).
    pub fn with_test_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.test_deadline = deadline;
        self
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
                    report.tenants.push((tenant, r.deliveries()));
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
            self.stored_alerts(tenant).await?
        };
        for channel in &config.channels {
            let Some(state) = self
                .decide_channel(tenant, channel, &config, &alerts, now, &mut report)
                .await?
            else {
                continue;
            };
            if !state.outbox.is_empty() {
                let r = self.deliver_channel(tenant, channel, &state.outbox).await?;
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

    /// Every stored alert of the tenant, active and recently resolved.
    async fn stored_alerts(&self, tenant: &str) -> Result<Vec<AlertRecord>, StoreError> {
        Ok(self
            .store
            .all_alerts(tenant)
            .await?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }

    /// Decides what the channel must be sent and stores the decision with the channel's
    /// new state. The state to deliver from, or `None` when another notifier decided
    /// first (its decision stands, and the next pass sees it).
    async fn decide_channel(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        config: &NotifyConfig,
        alerts: &[AlertRecord],
        now: Millis,
        report: &mut PassReport,
    ) -> Result<Option<ChannelState>, StoreError> {
        let (state, version) = match config.states.get(&channel.channel_id) {
            Some((s, v)) => (s.clone(), Some(*v)),
            None => (ChannelState::default(), None),
        };
        if !channel.enabled || config.rules.is_empty() {
            return Ok(Some(state));
        }
        let p = plan_channel(channel, config, alerts, &state, now, report);
        if p.messages.is_empty() && p.state == state {
            return Ok(Some(state));
        }
        let (next, records) = self.queue_messages(tenant, channel, p, now).await?;
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
                Ok(Some(next))
            }
            Err(StoreError::Conflict) => {
                report.due(now + 1000);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The plan's messages as notifications to store, and the channel's state with them in
    /// its outbox.
    async fn queue_messages(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        p: plan::Plan,
        now: Millis,
    ) -> Result<(ChannelState, Vec<NotificationRecord>), StoreError> {
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
        Ok((next, records))
    }

    /// Display names of the agents and integrations the alerts are about: one batch read.
    async fn source_names(
        &self,
        tenant: &str,
        alerts: &[AlertRecord],
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let mut keys = Vec::new();
        for a in alerts {
            let Some(entity) = a.source_type.entity() else {
                continue;
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
        let base = self.public_url.clone();
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
                    (Some(base), Some(secret)) if a.resolved_at.is_none() => {
                        Some(acknowledge_url(base, secret, tenant, channel_id, n, a))
                    }
                    _ => None,
                },
            })
            .collect();
        let report = if n.kind == Kind::Report {
            Some(self.weekly_report(tenant, n).await?)
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

    /// The week before the one the report was decided in, Monday to Sunday: rebuilt on each
    /// attempt from stored history, so a retry sends the same figures.
    async fn weekly_report(
        &self,
        tenant: &str,
        n: &NotificationRecord,
    ) -> Result<crate::domain::report::Report, StoreError> {
        let end = plan::week_start(plan::week_of(n.created_at)) - 1;
        let inputs = self
            .store
            .report_inputs(tenant, crate::domain::report::PeriodKind::Week, end)
            .await?;
        Ok(crate::domain::report::build(&inputs))
    }

    /// Attempts the channel's due messages, oldest first, and records each outcome. Each
    /// claim and each send reads the clock: earlier sends in this pass may have been slow.
    async fn deliver_channel(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        outbox: &[String],
    ) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        let mut outcome = Outcome::default();
        let found = self.store.notifications(tenant, outbox).await?;
        // Ids whose message is gone (expired) leave the outbox.
        for id in outbox {
            if !found.iter().any(|(n, _)| &n.notification_id == id) {
                outcome.finished.push(id.clone());
            }
        }
        for (n, version) in found {
            if n.status != DeliveryStatus::Pending {
                outcome.finished.push(n.notification_id.clone());
                continue;
            }
            self.attempt(tenant, channel, n, version, &mut report, &mut outcome)
                .await?;
        }
        if !outcome.finished.is_empty() || outcome.success.is_some() {
            self.store
                .update_channel_state(tenant, &channel.channel_id, |s| {
                    s.outbox.retain(|id| !outcome.finished.contains(id));
                    match outcome.success {
                        Some(true) => {
                            s.failing_since = None;
                            s.last_error = None;
                        }
                        Some(false) => {
                            s.failing_since = s.failing_since.or(outcome.first_failure);
                            s.last_error.clone_from(&outcome.last_error);
                        }
                        None => {}
                    }
                })
                .await?;
        }
        Ok(report)
    }

    /// Sends a stored notification to its channel; a disabled channel fails it for good.
    async fn send_stored(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        n: &NotificationRecord,
    ) -> Result<Result<(), SendError>, StoreError> {
        if !channel.enabled {
            return Ok(Err(SendError {
                message: "the channel is disabled".to_owned(),
                retry: None,
            }));
        }
        let message = self.message(tenant, &channel.channel_id, n).await?;
        // The signature's time is the send's, as receivers check it against theirs.
        let sent_at = self.clock.now_ms();
        Ok(self
            .sender
            .send(&channel.destination, &message, sent_at)
            .await)
    }

    /// One attempt at a pending notification, if it is due and this notifier claims it
    /// first; its outcome is stored with the notification.
    async fn attempt(
        &self,
        tenant: &str,
        channel: &ChannelRecord,
        mut n: NotificationRecord,
        version: u64,
        report: &mut PassReport,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError> {
        let claimed_at = self.clock.now_ms();
        let free_at = n.lease_until.unwrap_or(0).max(n.next_attempt_at);
        if free_at > claimed_at {
            report.due(free_at);
            report.pending += 1;
            return Ok(());
        }
        // Claim it for this attempt.
        n.attempts += 1;
        n.lease_until = Some(claimed_at + LEASE_MS);
        match self.store.save_notification(tenant, &n, version).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => return Ok(()),
            Err(e) => return Err(e),
        }
        let result = self.send_stored(tenant, channel, &n).await?;
        let now = self.clock.now_ms();
        n.lease_until = None;
        match result {
            Ok(()) => {
                n.status = DeliveryStatus::Delivered;
                n.delivered_at = Some(now);
                n.last_error = None;
                report.delivered += 1;
                outcome.success = Some(true);
                tracing::info!(tenant, channel = %channel.channel_id, notification_id = %n.notification_id, attempts = n.attempts, "notification delivered");
            }
            Err(e) => failed_attempt(tenant, channel, &mut n, &e, now, report, outcome),
        }
        self.store
            .save_notification(tenant, &n, version + 1)
            .await?;
        if n.status != DeliveryStatus::Pending {
            outcome.finished.push(n.notification_id.clone());
        } else {
            report.pending += 1;
        }
        Ok(())
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
            self.stored_alerts(tenant).await?
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
                    let alert = channel_failing_alert(channel, &stored, since, error, now);
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
        let record = test_notification(channel, now);
        let mut message = self.message(tenant, &channel.channel_id, &record).await?;
        // A test alert does not exist: nothing to acknowledge.
        for item in &mut message.items {
            item.acknowledge_url = None;
        }
        // Answer within the deadline whatever the channel does: the caller waits.
        let result = tokio::time::timeout(
            self.test_deadline,
            self.sender.send(&channel.destination, &message, now),
        )
        .await
        .unwrap_or_else(|_| {
            Err(send::SendError {
                message: format!(
                    "the channel did not answer within {} ms (the test's deadline); \
                     real messages are retried",
                    self.test_deadline.as_millis()
                ),
                retry: Some(None),
            })
        });
        Ok(TestResult {
            channel_id: channel.channel_id.clone(),
            notification_id: record.notification_id.clone(),
            delivered: result.is_ok(),
            retryable: result.as_ref().err().is_some_and(|e| e.retry.is_some()),
            error: result.err().map(|e| e.message),
        })
    }

    /// Reads the tenant list into the schedule; on failure the schedule keeps the last.
    async fn list_tenants(&self, schedule: &mut TenantSchedule, now: Millis) {
        match self.store.tenants().await {
            Ok(t) => {
                schedule.tenants = t;
                schedule.listed_at = Some(now);
            }
            Err(e) => {
                tracing::error!(error = %e, "listing tenants for notifications failed")
            }
        }
    }

    /// Runs each tenant's passes on its own schedule until `until` (forever if `None`):
    /// a tenant's pass starts when something of it falls due (at most `max_sleep_ms`
    /// after its last), or when `wake` is notified (a collector cycle, an
    /// acknowledgement, a configuration change), unless its previous pass is still
    /// running; then it runs again as soon as that one ends. A tenant whose channel is slow
    /// therefore delays only its own messages, never another tenant's, and one pass is cut
    /// off after [`TENANT_PASS_BUDGET_MS`] (its leased messages are retried once the lease
    /// ends). Each finished pass is recorded in the process's figures, then goes to
    /// `on_pass`. Passes running at `until` are awaited.
    pub async fn run_until(
        &self,
        clock: Arc<dyn Clock>,
        until: Option<Millis>,
        wake: Arc<tokio::sync::Notify>,
        max_sleep_ms: Millis,
        mut on_pass: impl FnMut(&str, &PassReport),
    ) {
        let mut on_pass = |tenant: &str, r: &PassReport| {
            let deliveries = r.deliveries();
            self.stats
                .record_pass(deliveries, &[(tenant.to_owned(), deliveries)]);
            on_pass(tenant, r);
        };
        let budget = std::time::Duration::from_millis(
            u64::try_from(TENANT_PASS_BUDGET_MS).unwrap_or(60_000),
        );
        let mut running = futures::stream::FuturesUnordered::new();
        let mut schedule = TenantSchedule::default();
        let mut woken = true;
        loop {
            let now = clock.now_ms();
            if until.is_some_and(|u| now >= u) {
                break;
            }
            // The tenant list is one Query: read again on a wake or every few seconds.
            if woken
                || schedule
                    .listed_at
                    .is_none_or(|at| now - at >= max_sleep_ms.max(1000))
            {
                self.list_tenants(&mut schedule, now).await;
            }
            for tenant in schedule.start(woken, now) {
                running.push(async move {
                    let result = tokio::time::timeout(budget, self.pass_tenant(&tenant, now)).await;
                    (tenant, result)
                });
            }
            woken = false;
            let wait = schedule.wait_ms(clock.now_ms(), until, max_sleep_ms);
            let sleep = tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ));
            tokio::select! {
                Some((tenant, result)) = running.next(), if !running.is_empty() => {
                    let now = clock.now_ms();
                    let next = pass_ended(&tenant, result, &mut on_pass, now, max_sleep_ms);
                    schedule.finished(tenant, next, now);
                }
                () = sleep => {}
                () = wake.notified() => { woken = true; }
            }
        }
        while let Some((tenant, result)) = running.next().await {
            pass_ended(&tenant, result, &mut on_pass, clock.now_ms(), max_sleep_ms);
        }
    }
}

/// A tenant's pass as it ended, within its budget or not.
type PassResult = Result<Result<PassReport, StoreError>, tokio::time::error::Elapsed>;

/// Hands a finished pass to `on_pass` or logs why it failed, and says when the tenant's
/// next pass is due.
fn pass_ended(
    tenant: &str,
    result: PassResult,
    on_pass: &mut impl FnMut(&str, &PassReport),
    now: Millis,
    max_sleep_ms: Millis,
) -> Millis {
    match result {
        Ok(Ok(report)) => {
            on_pass(tenant, &report);
            report.next_due.unwrap_or(now + max_sleep_ms)
        }
        Ok(Err(e)) => {
            tracing::error!(tenant = %tenant, error = %e, "notification pass failed");
            now + 5000
        }
        Err(_) => {
            tracing::warn!(tenant = %tenant, budget_ms = TENANT_PASS_BUDGET_MS, "notification pass cut off at its budget");
            now
        }
    }
}

/// When each tenant's next notification pass is due, and which are running.
#[derive(Default)]
struct TenantSchedule {
    tenants: Vec<String>,
    listed_at: Option<Millis>,
    due: std::collections::HashMap<String, Millis>,
    in_flight: std::collections::HashSet<String>,
    /// Tenants woken while their pass ran: they go again once it ends.
    missed: std::collections::HashSet<String>,
}

impl TenantSchedule {
    /// The tenants whose pass starts now (all, when `woken`, but those still running),
    /// counted as running.
    fn start(&mut self, woken: bool, now: Millis) -> Vec<String> {
        let mut starting = Vec::new();
        for tenant in &self.tenants {
            let is_due = woken || self.due.get(tenant).is_none_or(|at| *at <= now);
            if !is_due {
                continue;
            }
            if self.in_flight.contains(tenant) {
                self.missed.insert(tenant.clone());
                continue;
            }
            self.in_flight.insert(tenant.clone());
            starting.push(tenant.clone());
        }
        starting
    }

    /// How long to sleep before the next idle tenant falls due.
    fn wait_ms(&self, now: Millis, until: Option<Millis>, max_sleep_ms: Millis) -> Millis {
        let next = self
            .tenants
            .iter()
            .filter(|t| !self.in_flight.contains(*t))
            .filter_map(|t| self.due.get(t))
            .min()
            .copied();
        let mut wait = next.map_or(max_sleep_ms, |at| (at - now).clamp(0, max_sleep_ms));
        if let Some(u) = until {
            wait = wait.min((u - now).max(0));
        }
        wait
    }

    /// Notes that the tenant's pass ended, wanting the next at `next`.
    fn finished(&mut self, tenant: String, next: Millis, now: Millis) {
        self.in_flight.remove(&tenant);
        let next = if self.missed.remove(&tenant) {
            now
        } else {
            next
        };
        // However soon its report says something falls due, a tenant's next pass waits a
        // moment: a due time that stays in the past (a lease held elsewhere, a clock behind
        // the store's) must not become a loop of passes that starves the process.
        self.due.insert(tenant, next.max(now + MIN_PASS_GAP_MS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Millis = 1_800_000_000_000;

    /// When each attempt of a message decided at `T0` starts (ms after `T0`), every attempt
    /// failing `attempt_ms` after it starts and the notifier passing exactly when due, until
    /// the message is given up.
    fn attempt_starts(attempt_ms: Millis) -> Vec<Millis> {
        let mut starts = Vec::new();
        let mut start = T0;
        for attempts in 1.. {
            starts.push(start - T0);
            match retry_at(T0, attempts, start + attempt_ms, None) {
                Some(at) => start = at,
                None => break,
            }
            assert!(attempts < 10_000, "never gives up: {starts:?}");
        }
        starts
    }

    #[test]
    fn retries_come_at_most_30_s_apart_for_ten_minutes_then_back_off_until_24_hours() {
        // Refused at once, or timing out after the send timeout; many draws of the jitter.
        for attempt_ms in [0, 1000, send::SEND_TIMEOUT_MS as Millis] {
            for _ in 0..50 {
                let starts = attempt_starts(attempt_ms);
                for pair in starts.windows(2) {
                    if pair[0] < FAST_RETRY_FOR_MS {
                        assert!(
                            pair[1] - pair[0] + NOTIFIER_TICK_ALLOWANCE <= FAST_RETRY_GAP_MS,
                            "a gap of {} ms after the attempt at {} ms (attempts taking {attempt_ms} ms): {starts:?}",
                            pair[1] - pair[0],
                            pair[0]
                        );
                    } else if pair[0] >= FAST_RETRY_FOR_MS + FAST_RETRY_GAP_MS
                        && pair[1] < GIVE_UP_AFTER_MS
                    {
                        assert!(
                            pair[1] - pair[0] >= 5 * MINUTE_MS,
                            "past ten minutes (and the attempt then under way), at least 5 min apart: {} ms after {} ms",
                            pair[1] - pair[0],
                            pair[0]
                        );
                    }
                }
                let last = starts.last().copied().unwrap_or_default();
                assert!(
                    last <= GIVE_UP_AFTER_MS && last > GIVE_UP_AFTER_MS - 8 * MINUTE_MS,
                    "retried until the 24 h limit and not after it: last at {last} ms"
                );
                assert!(
                    starts.len() < 400,
                    "{} attempts in 24 h: too many",
                    starts.len()
                );
            }
        }
    }

    /// The Lambda notifier passes every 2 s (`lambda::NOTIFIER_TICK_MS`, behind a feature):
    /// a retry falls due up to that much before a pass sees it.
    const NOTIFIER_TICK_ALLOWANCE: Millis = 2000;

    #[test]
    fn a_receivers_retry_after_is_honoured_up_to_the_24_hour_limit() {
        assert_eq!(
            retry_at(T0, 1, T0 + 1000, Some(30_000)),
            Some(T0 + 31_000),
            "its own wait, not the backoff"
        );
        assert_eq!(
            retry_at(T0, 9, T0 + GIVE_UP_AFTER_MS - 1000, Some(3_600_000)),
            Some(T0 + GIVE_UP_AFTER_MS),
            "not past the limit"
        );
        assert_eq!(
            retry_at(T0, 10, T0 + GIVE_UP_AFTER_MS, Some(1000)),
            None,
            "a failure at the limit is final"
        );
    }
}

#[cfg(all(test, feature = "embedded"))]
mod channel_test_tests {
    use super::*;

    /// A channel that accepts the connection and never answers: the test answers within
    /// its deadline, as a failed (retryable) delivery saying so, instead of waiting for the
    /// HTTP API's 30 s limit to answer 503 for it.
    #[tokio::test]
    async fn a_channel_test_answers_at_its_deadline_when_the_channel_does_not() {
        let (listener, addr) = crate::outbound::testing::loopback().await;
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let (mut state, _dir) = crate::state::testing::state();
        state.config = Arc::new(crate::config::Config {
            probe_allowed_addresses: vec![addr.ip().into()],
            ..crate::config::Config::default()
        });
        let channel = ChannelRecord {
            channel_id: "slow".into(),
            name: "Slow hook".into(),
            enabled: true,
            destination: Destination::Webhook {
                url: format!("http://{addr}/hook"),
                secret: "s3cret".into(),
            },
            created_at: 0,
            updated_at: 0,
        };
        let notifier = Notifier::new(&state)
            .unwrap_or_else(|e| panic!("building the notifier: {e}"))
            .with_test_deadline(std::time::Duration::from_millis(300));
        let result = notifier
            .test_channel("acme", &channel, 0)
            .await
            .unwrap_or_else(|e| panic!("testing the silent channel: {e}"));
        silent.abort();
        assert!(!result.delivered, "{result:?}");
        assert!(result.retryable, "{result:?}");
        assert!(
            result
                .error
                .as_deref()
                .is_some_and(|e| e.contains("did not answer within 300 ms")),
            "{result:?}"
        );
    }
}
