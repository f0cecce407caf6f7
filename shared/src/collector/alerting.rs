//! Writing alert decisions, shared by the collector's cycle and the evaluation of events
//! as they arrive.
//!
//! Both evaluate the same rules ([`super::rules::evaluate`]) and write through the same
//! reconcile-and-conditional-write loop, so alert identity, hysteresis and the
//! no-duplicates guarantee of overlapping evaluators are one piece of code: raises are
//! conditional on the deterministic id not existing, changes on the version read; a lost
//! race re-reads the alerts and decides again.

use std::collections::{HashMap, HashSet};

use super::rules::{evaluate, reconcile, Change, Firing, Thresholds};
use crate::config::Config;
use crate::domain::alerts::{occurrence, AlertKey, AlertRecord, Severity, SourceType};
use crate::store::live::Touched;
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
/// `alerts` is the tenant's alerts as read, with their versions. Of each condition on each
/// source, only the newest `history` occurrences are kept (see [`prune_history`]).
pub async fn settle_alerts(
    store: &Store,
    tenant: &str,
    alerts: Vec<(AlertRecord, u64)>,
    scope: &Scope,
    evaluate: impl Fn(&HashMap<AlertKey, Severity>) -> Vec<Firing>,
    now: Millis,
    history: u64,
) -> Result<(Vec<(AlertRecord, u64)>, Tally), StoreError> {
    let (mut alerts, tally) = settle(store, tenant, alerts, scope, evaluate, now).await?;
    prune_history(store, tenant, &mut alerts, history).await?;
    Ok((alerts, tally))
}

/// Most resolved occurrences one pass deletes, so a store holding a long history from
/// before the bound is thinned over a few passes rather than in one long one.
const PRUNE_PER_PASS: usize = 1000;

/// Deletes the resolved occurrences of each condition on each source older than its newest
/// `history` (at least 1) from the store and from `alerts`. Why: a condition that comes and
/// goes (an agent reporting less often than the silence threshold) raises a new occurrence
/// each time, kept 30 days, and every cycle reads them all: the collector's memory and
/// reads grew with every event. Kept this way, a tenant holds at most `history`
/// occurrences per source and condition, and the newest one, which numbers the next, is
/// never deleted. Returns how many were deleted.
pub async fn prune_history(
    store: &Store,
    tenant: &str,
    alerts: &mut Vec<(AlertRecord, u64)>,
    history: u64,
) -> Result<usize, StoreError> {
    let mut newest: HashMap<String, u64> = HashMap::new();
    for (a, _) in alerts.iter() {
        if let Some((prefix, n)) = occurrence(&a.alert_id) {
            let max = newest.entry(prefix.to_owned()).or_insert(0);
            *max = (*max).max(n);
        }
    }
    let keep = history.max(1);
    let stale: HashSet<String> = alerts
        .iter()
        .filter(|(a, _)| a.resolved_at.is_some())
        .filter(|(a, _)| {
            occurrence(&a.alert_id).is_some_and(|(prefix, n)| {
                newest
                    .get(prefix)
                    .is_some_and(|&max| n.saturating_add(keep) <= max)
            })
        })
        .map(|(a, _)| a.alert_id.clone())
        .take(PRUNE_PER_PASS)
        .collect();
    if !stale.is_empty() {
        let keys: Vec<_> = stale
            .iter()
            .map(|id| crate::store::layout::alert(tenant, id))
            .collect();
        store.backend().delete_many(&keys).await?;
    }
    alerts.retain(|(a, _)| !stale.contains(&a.alert_id));
    Ok(stale.len())
}

async fn settle(
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
        let changes = reconcile(&within, &firing, now);
        let conflict = write_changes(store, tenant, changes, &mut alerts, &mut tally).await?;
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
        alerts = match scope {
            Scope::All => store.all_alerts(tenant).await?,
            Scope::Sources(sources) => {
                let sources: Vec<_> = sources.iter().cloned().collect();
                store.alerts_of_sources(tenant, &sources).await?
            }
        };
    }
}

/// Writes the changes, each conditional, and notes those written in `alerts` and `tally`.
/// Returns whether any conflicted.
async fn write_changes(
    store: &Store,
    tenant: &str,
    changes: Vec<Change>,
    alerts: &mut Vec<(AlertRecord, u64)>,
    tally: &mut Tally,
) -> Result<bool, StoreError> {
    let mut conflict = false;
    if store.backend().single_writer() && changes.len() > 1 {
        // The embedded store syncs every write transaction to disk: one for the pass's
        // changes rather than one per alert (at a 1 s cycle, agents flapping in and out
        // of silence made these syncs the bound on ingestion). All or nothing: a
        // conflict writes none of them, and the pass rereads and decides again.
        let writes = changes
            .iter()
            .map(|change| {
                let (alert, expected) = change.target();
                crate::store::alerts::alert_write(tenant, alert, expected)
            })
            .collect();
        match store.backend().write(writes).await {
            Ok(()) => {
                for change in changes {
                    apply(tenant, change, alerts, tally);
                }
            }
            Err(StoreError::Conflict) => conflict = true,
            Err(e) => return Err(e),
        }
    } else {
        for change in changes {
            let (alert, expected) = change.target();
            match store.save_alert(tenant, alert, expected).await {
                Ok(()) => apply(tenant, change, alerts, tally),
                Err(StoreError::Conflict) => conflict = true,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(conflict)
}

/// Notes a written change in the alerts as stored and in the tally.
fn apply(tenant: &str, change: Change, alerts: &mut Vec<(AlertRecord, u64)>, tally: &mut Tally) {
    let version = change.target().1.unwrap_or(0) + 1;
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
            if let Some(slot) = alerts.iter_mut().find(|(s, _)| s.alert_id == a.alert_id) {
                *slot = (a, version);
            }
        }
    }
}

/// The alerts the touched sources can change: theirs, and the queue-depth alert when a
/// gauge was reported.
fn scope_of(touched: &Touched) -> Scope {
    let mut sources = HashSet::new();
    for a in &touched.agents {
        sources.insert((SourceType::Agent, a.record.agent_id.clone()));
    }
    for i in &touched.integrations {
        sources.insert((SourceType::Integration, i.record.integration_id.clone()));
    }
    for h in &touched.hosts {
        sources.insert((SourceType::System, h.host_id.clone()));
    }
    if touched.system.is_some() {
        sources.insert((SourceType::System, "system".to_owned()));
    }
    Scope::Sources(sources)
}

/// Evaluates, as events arrive, the conditions their sources decide (a host sample over a
/// threshold, an agent's error rate or failures with this finish, an integration's failures
/// in a row or latency, a gauge), from the sources' state as ingestion wrote it: one read
/// of the tenant's alerts, and writes only for alerts that change. Conditions only time
/// decides (silence, a window sliding past old data, probes) stay with the cycle.
pub async fn evaluate_touched(
    store: &Store,
    config: &Config,
    tenant: &str,
    touched: &Touched,
    now: Millis,
) -> Result<Tally, StoreError> {
    if touched.is_empty() {
        return Ok(Tally::default());
    }
    let scope = scope_of(touched);
    let Scope::Sources(sources) = &scope else {
        return Ok(Tally::default());
    };
    let sources: Vec<_> = sources.iter().cloned().collect();
    let alerts = store.alerts_of_sources(tenant, &sources).await?;
    let thresholds = Thresholds::from(config);
    let (_, tally) = settle_alerts(
        store,
        tenant,
        alerts,
        &scope,
        |active| evaluate_events(touched, active, config, &thresholds, now),
        now,
        config.alert_history,
    )
    .await?;
    Ok(tally)
}

/// The conditions that hold on the touched sources, as an event may decide them.
fn evaluate_events(
    touched: &Touched,
    active: &HashMap<AlertKey, Severity>,
    config: &Config,
    thresholds: &Thresholds,
    now: Millis,
) -> Vec<Firing> {
    let latencies: Vec<f64> = touched
        .integrations
        .iter()
        .map(|d| d.health(now, config.latency_threshold_ms).latency_ms)
        .collect();
    let records: Vec<_> = touched
        .integrations
        .iter()
        .zip(&latencies)
        .map(|(d, l)| (&d.record, *l))
        .collect();
    let system = touched.system.clone().unwrap_or_default();
    let mut firing = evaluate(
        &touched.agents,
        &records,
        &touched.hosts,
        &system,
        active,
        thresholds,
        now,
    );
    // Silence is time's to decide: an event (even one with an old timestamp) may end a
    // silence, never start one.
    firing.retain(|f| {
        f.key.condition != super::rules::condition::SILENT || active.contains_key(&f.key)
    });
    // A stuck execution is the cycle's to find (it reads 7 days of durations); an event
    // keeps the alert while the execution still runs past the floor, and ends it when the
    // execution finishes.
    firing.extend(touched.agents.iter().filter_map(|a| {
        super::rules::stuck(&a.record, thresholds.stuck_min_ms, now)
            .filter(|f| active.contains_key(&f.key))
    }));
    // Burn rates are the cycle's too (they read the SLO's hours): an event keeps the
    // alert as it is (its message is only written when raised or on a severity change).
    firing.extend(
        active
            .iter()
            .filter(|(k, _)| k.condition == super::rules::condition::SLO_BURN)
            .map(|(key, severity)| Firing {
                key: key.clone(),
                severity: *severity,
                message: String::new(),
            }),
    );
    firing
}

/// The touched sources on which some condition could hold at `now` even if every alert
/// were open (so judged at its clear level, the most lenient), silence and SLO burn
/// aside: on any other source an event can neither raise an alert nor keep one open.
/// With the state before the events (what the previous evaluation judged), this tells
/// which sources' alerts an evaluation must read; the rest cost nothing. An alert that
/// only time could have kept open (a silence among them) is the cycle's to resolve.
pub fn sources_that_may_alert(
    touched: &Touched,
    config: &Config,
    now: Millis,
) -> HashSet<(SourceType, String)> {
    let Scope::Sources(sources) = scope_of(touched) else {
        return HashSet::new();
    };
    let all_open: HashMap<AlertKey, Severity> = sources
        .iter()
        .flat_map(|(source_type, id)| {
            // Not the burn alerts: an event keeps them whatever holds, and only the cycle
            // changes them. Nor silence: most sources' state before an event is a while
            // old, so it would pass nearly every source; the cycle ends a silence instead.
            super::rules::condition::ALL
                .iter()
                .filter(|c| {
                    **c != super::rules::condition::SLO_BURN
                        && **c != super::rules::condition::SILENT
                })
                .map(|c| (AlertKey::new(*source_type, id, c), Severity::Critical))
        })
        .collect();
    let thresholds = Thresholds::from(config);
    evaluate_events(touched, &all_open, config, &thresholds, now)
        .into_iter()
        .map(|f| (f.key.source_type, f.key.source_id))
        .collect()
}

/// Batches queued for the evaluator before ingestion stops queuing (the cycle then catches
/// up what was not queued).
pub const QUEUE: usize = 1024;

/// Least time between two live updates of one tenant sent for events.
pub const UPDATE_EVERY_MS: u64 = 1_000;

/// Evaluates queued batches as they come (the batches queued meanwhile are merged per
/// tenant first), wakes the notifier when an alert changed, and hands a snapshot of each
/// tenant whose alerts changed to `publish`, at most once per [`UPDATE_EVERY_MS`] per
/// tenant. Runs until the queue closes.
pub async fn run_evaluator<F, Fut>(
    state: crate::AppState,
    mut queue: tokio::sync::mpsc::Receiver<(String, Touched)>,
    publish: F,
) where
    F: Fn(super::TenantReport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use tokio::time::{Duration, Instant};
    let every = Duration::from_millis(UPDATE_EVERY_MS);
    let mut last_sent: HashMap<String, Instant> = HashMap::new();
    let mut dirty: HashSet<String> = HashSet::new();
    loop {
        let due = dirty
            .iter()
            .filter_map(|t| last_sent.get(t).map(|at| *at + every))
            .min();
        let Some(pending) = next_batches(&mut queue, due).await else {
            return;
        };
        let now = state.clock.now_ms();
        let changed = |tenant: &str, tally: Option<Tally>| {
            if tally.is_some_and(|t| t.changed()) {
                state.notifier_wake.notify_one();
                dirty.insert(tenant.to_owned());
            }
            // Sent below, at most once per `every`.
            false
        };
        evaluate_tenants(
            &state,
            pending,
            now,
            "event evaluation failed",
            changed,
            &publish,
        )
        .await;
        let ready: Vec<String> = dirty
            .iter()
            .filter(|t| last_sent.get(*t).is_none_or(|at| at.elapsed() >= every))
            .cloned()
            .collect();
        for tenant in ready {
            dirty.remove(&tenant);
            last_sent.insert(tenant.clone(), Instant::now());
            let now = state.clock.now_ms();
            publish_live_update(&state, &tenant, now, &publish).await;
        }
    }
}

/// The next queued batches, merged per tenant: waits for one (until `due`, when a live
/// update falls due: then none), then takes those queued meanwhile. `None` once the queue
/// closes.
async fn next_batches(
    queue: &mut tokio::sync::mpsc::Receiver<(String, Touched)>,
    due: Option<tokio::time::Instant>,
) -> Option<std::collections::BTreeMap<String, Touched>> {
    let first = match due {
        Some(at) => tokio::select! {
            m = queue.recv() => Some(m?),
            () = tokio::time::sleep_until(at) => None,
        },
        None => Some(queue.recv().await?),
    };
    let mut pending: std::collections::BTreeMap<String, Touched> = Default::default();
    let mut next = first;
    while let Some((tenant, touched)) = next.take() {
        pending.entry(tenant).or_default().merge(touched);
        next = queue.try_recv().ok();
    }
    Some(pending)
}

/// The one driver of event evaluation, for the local evaluator and the stream's function:
/// evaluates each tenant's touched sources at `now`, one tenant after another. `tallied`
/// hears each outcome (`None` for a failure, logged as `failure`) and says whether the
/// tenant's live update goes now, through `publish`.
pub async fn evaluate_tenants<F, Fut>(
    state: &crate::AppState,
    tenants: impl IntoIterator<Item = (String, Touched)>,
    now: Millis,
    failure: &str,
    mut tallied: impl FnMut(&str, Option<Tally>) -> bool,
    publish: &F,
) where
    F: Fn(super::TenantReport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for (tenant, touched) in tenants {
        let tally =
            match evaluate_touched(&state.store, &state.config, &tenant, &touched, now).await {
                Ok(tally) => Some(tally),
                Err(e) => {
                    tracing::error!(tenant, error = %e, "{failure}");
                    None
                }
            };
        if tallied(&tenant, tally) {
            publish_live_update(state, &tenant, now, publish).await;
        }
    }
}

/// Hands the tenant's live update at `now` to `publish`; a failure to read it is logged.
pub async fn publish_live_update<F, Fut>(
    state: &crate::AppState,
    tenant: &str,
    now: Millis,
    publish: &F,
) where
    F: Fn(super::TenantReport) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    match super::snapshot(&state.store, &state.config, tenant, now).await {
        Ok(report) => publish(report).await,
        Err(e) => tracing::error!(tenant, error = %e, "live update failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::records::{AgentRecord, HostRecord};
    use crate::store::live::AgentData;

    const NOW: Millis = 1_780_000_000_000;

    fn host(id: &str, cpu: f64) -> HostRecord {
        HostRecord {
            host_id: id.into(),
            cpu_usage: cpu,
            memory_usage: 40.0,
            disk_usage: None,
            load_average: None,
            uptime_seconds: None,
            last_seen: NOW,
            reporting_since: None,
        }
    }

    #[test]
    fn only_sources_on_which_a_condition_could_hold_need_their_alerts_read() {
        let mut quiet = AgentRecord::new("quiet", 0);
        // Silent for an hour: the cycle's to judge, not a reason to read alerts.
        quiet.last_active = Some(NOW - 3_600_000);
        let touched = Touched {
            agents: vec![AgentData {
                record: quiet,
                minutes: Vec::new(),
                days: Vec::new(),
                latency: Vec::new(),
                hours_through: None,
            }],
            integrations: Vec::new(),
            // 77 % is under the 80 % warning but over its 75 % clear level: an open
            // alert would stay open, so its alerts must be read; 50 % is nothing.
            hosts: vec![host("calm", 50.0), host("warm", 77.0), host("hot", 95.0)],
            system: None,
        };
        let may = sources_that_may_alert(&touched, &Config::default(), NOW);
        let mut ids: Vec<_> = may.into_iter().map(|(_, id)| id).collect();
        ids.sort();
        assert_eq!(ids, ["hot", "warm"]);
    }

    #[tokio::test]
    async fn a_condition_that_comes_and_goes_keeps_only_its_newest_occurrences() {
        let (state, _dir) = crate::state::testing::state();
        let store = &state.store;
        let silent = Firing {
            key: AlertKey::new(SourceType::Agent, "flaky", "silent"),
            severity: Severity::Warning,
            message: "Agent flaky has not reported".into(),
        };
        let history = 3;
        let mut newest = String::new();
        for round in 0..15 {
            let now = NOW + round * 10_000;
            for firing in [vec![silent.clone()], Vec::new()] {
                let alerts = store
                    .all_alerts("acme")
                    .await
                    .unwrap_or_else(|e| panic!("reading the alerts in round {round}: {e}"));
                let (after, _) = settle_alerts(
                    store,
                    "acme",
                    alerts,
                    &Scope::All,
                    |_| firing.clone(),
                    now,
                    history,
                )
                .await
                .unwrap_or_else(|e| panic!("settling round {round}: {e}"));
                if let Some((a, _)) = after.iter().find(|(a, _)| a.resolved_at.is_none()) {
                    newest = a.alert_id.clone();
                }
            }
            let stored = store
                .all_alerts("acme")
                .await
                .unwrap_or_else(|e| panic!("reading the alerts after round {round}: {e}"));
            assert!(
                stored.len() <= history as usize,
                "round {round}: {} occurrences stored",
                stored.len()
            );
        }
        // Numbering goes on from the newest kept occurrence: no id is reused.
        assert!(newest.ends_with("_15"), "{newest}");
        let mut kept: Vec<String> = store
            .all_alerts("acme")
            .await
            .unwrap_or_else(|e| panic!("reading the alerts: {e}"))
            .into_iter()
            .map(|(a, _)| a.alert_id)
            .collect();
        kept.sort();
        let suffixes: Vec<&str> = kept.iter().filter_map(|id| id.rsplit('_').next()).collect();
        assert_eq!(suffixes, ["13", "14", "15"]);
    }
}
