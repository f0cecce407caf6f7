//! The collector: every `HEALTH_POLLING_INTERVAL` seconds, per tenant, probe the
//! integrations that are due, recompute agent, integration and system health, and raise,
//! update and resolve alerts. Between cycles it makes the recovery attempts of failed
//! integrations on their backoff.
//!
//! Cycles are numbered `time / interval` ("slots") and aligned to them, so a 30-second
//! interval runs at :00 and :30 whoever runs it. Each tenant's slot is claimed with a
//! conditional write before the cycle runs, so overlapping collector runs (a slow cycle and
//! the next Lambda invocation, or two local processes) evaluate each cycle once. Every write
//! a cycle makes is conditional as well (alerts, probe results), so even without the claim
//! nothing is raised twice or lost; a cycle that fails half-way leaves each item either
//! written or not, and the next cycle re-evaluates from what is stored.

pub mod alerting;
pub mod backoff;
pub mod probe;
pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::stream::{self, StreamExt};

use crate::config::Config;
use crate::domain::alerts::{sort_alerts, AlertRecord};
use crate::domain::health::{agent_health, agent_status, AgentHealth, IntegrationHealth};
use crate::domain::records::{ConnectionState, ProbeResult};
use crate::domain::system::{system_health, SystemHealth, SystemInputs};
use crate::store::{Store, StoreError};
use crate::time::{Clock, Millis};
use probe::Prober;
use rules::{evaluate, Thresholds};

/// Probes of one tenant in flight at once: a tenant with many slow probes waits on its
/// own probes, never on a shared pool.
pub const PROBE_CONCURRENCY: usize = 16;
/// Tenants evaluated at once. Each has its own time budget ([`Collector::tenant_budget`]),
/// so a slow tenant holds one of these places for at most that long.
const TENANT_CONCURRENCY: usize = 16;

/// What one tenant's cycle computed and changed. The health objects are the read
/// endpoints' shapes, ready for a `health:update`.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantReport {
    /// The tenant.
    pub tenant: String,
    /// When the cycle evaluated it.
    pub at: Millis,
    /// Every agent's health, by id.
    pub agents: Vec<AgentHealth>,
    /// Every integration's health, by id.
    pub integrations: Vec<IntegrationHealth>,
    /// The system object.
    pub system: SystemHealth,
    /// Active alerts after the cycle, critical first, then newest first.
    pub alerts: Vec<AlertRecord>,
    /// Probes whose results were recorded.
    pub probes: usize,
    /// Alerts raised.
    pub raised: usize,
    /// Alerts whose severity changed.
    pub updated: usize,
    /// Alerts resolved.
    pub resolved: usize,
    /// Ids of active alerts a silence or maintenance window holds now.
    pub silenced: Vec<String>,
    /// Ids of alerts resolved in the last [`RECENTLY_RESOLVED_MS`]: a delta names them as
    /// resolved even when no earlier delta named them as raised (an event raised them
    /// between cycles, and clients heard of them from `health:alerts`).
    pub recently_resolved: Vec<String>,
}

/// How long a resolved alert is named in deltas' `resolved` lists: a few cycles.
pub const RECENTLY_RESOLVED_MS: Millis = 5 * 60 * 1000;

impl TenantReport {
    /// The active alerts as clients see them, marked silenced as the tenant's silences say.
    pub fn alert_views(&self) -> Vec<crate::domain::alerts::AlertView> {
        self.alerts
            .iter()
            .map(|a| crate::domain::alerts::AlertView {
                silenced: self.silenced.contains(&a.alert_id),
                ..a.view()
            })
            .collect()
    }

    /// The summary of the tenant's health as this report holds it.
    pub fn summary(&self) -> crate::domain::summary::Summary {
        use crate::domain::summary::{summarize, SummaryInputs};
        let alerts = self.alert_views();
        summarize(
            SummaryInputs {
                agents: &self.agents,
                integrations: &self.integrations,
                alerts: &alerts,
                system: &self.system,
            },
            self.at,
        )
    }
}

/// What one cycle did across tenants.
#[derive(Debug, Default)]
pub struct CycleReport {
    /// The tenants this run evaluated.
    pub tenants: Vec<TenantReport>,
    /// Tenants whose cycle another run had already claimed.
    pub skipped: usize,
    /// Tenants whose cycle failed, with the error; the next cycle retries them.
    pub failed: Vec<(String, StoreError)>,
    /// How long each evaluated or failed tenant's part of the cycle took (its own figure on
    /// the local stack's `/metrics`).
    pub took: HashMap<String, std::time::Duration>,
}

impl CycleReport {
    /// Each evaluated or failed tenant's part, as the process's figures count it.
    pub fn outcomes(&self) -> Vec<crate::telemetry::CycleOutcome> {
        let evaluated = self.tenants.iter().map(|t| (&t.tenant, false));
        let failed = self.failed.iter().map(|(t, _)| (t, true));
        evaluated
            .chain(failed)
            .map(|(tenant, failed)| crate::telemetry::CycleOutcome {
                tenant: tenant.clone(),
                failed,
                took: self.took.get(tenant).copied(),
            })
            .collect()
    }
}

/// Why the collector cannot start.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the probe HTTP client: {0}")]
pub struct CollectorError(#[from] reqwest::Error);

/// The collector. Cheap to share behind an [`Arc`].
#[derive(Debug)]
pub struct Collector {
    store: Store,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    prober: Prober,
    /// Failed, probed integrations by (tenant, id), with their next recovery attempt.
    recoveries: Mutex<HashMap<(String, String), Millis>>,
    /// Addresses that keep failing, probed less often.
    backoff: backoff::AddressBackoff,
    /// Successful probes of steady integrations not written yet, by tenant and then
    /// integration id: each is written with the integration's next probe (one write for
    /// two), or by [`Collector::flush_probes`].
    held: Mutex<HashMap<String, HashMap<String, ProbeResult>>>,
    /// Where cycles are counted.
    stats: Arc<crate::telemetry::StackStats>,
}

impl Collector {
    /// A collector over the application's store, configuration and clock.
    pub fn new(state: &crate::AppState) -> Result<Self, CollectorError> {
        Ok(Self {
            store: state.store.clone(),
            config: Arc::clone(&state.config),
            clock: Arc::clone(&state.clock),
            prober: Prober::new(&state.config.probe_allowed_addresses)?,
            recoveries: Mutex::new(HashMap::new()),
            backoff: backoff::AddressBackoff::default(),
            held: Mutex::new(HashMap::new()),
            stats: Arc::clone(&state.stats),
        })
    }

    /// What this collector's cycles counted.
    pub fn stats(&self) -> &crate::telemetry::StackStats {
        &self.stats
    }

    fn interval_ms(&self) -> Millis {
        i64::try_from(self.config.polling_interval_secs.max(1) * 1000).unwrap_or(30_000)
    }

    /// How long one tenant's cycle may take: the interval less a second (at least a
    /// second), so every tenant's cycle ends before the next slot whatever another tenant
    /// does. Its probes get the first half ([`Collector::run_probes`]).
    pub fn tenant_budget(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.config.polling_interval_secs.saturating_sub(1).max(1))
    }

    /// Runs the cycle that `now` falls in, for every tenant whose cycle no other run has
    /// claimed. A tenant's failure is reported and does not stop the others.
    pub async fn run_cycle(&self, now: Millis) -> Result<CycleReport, StoreError> {
        self.run_cycle_with(now, |r| async move { r }).await
    }

    /// [`Collector::run_cycle`], handing each tenant's report to `on_tenant` as soon as
    /// that tenant's cycle ends (its live update leaves then, not after the slowest
    /// tenant's). A tenant's cycle that outlasts [`Collector::tenant_budget`] is stopped
    /// and reported failed; what it wrote stays written (every write is conditional and
    /// complete in itself), and the next cycle starts from what is stored.
    pub async fn run_cycle_with<F, Fut>(
        &self,
        now: Millis,
        on_tenant: F,
    ) -> Result<CycleReport, StoreError>
    where
        F: Fn(TenantReport) -> Fut,
        Fut: std::future::Future<Output = TenantReport>,
    {
        let tenants = self.store.tenants().await?;
        let budget = self.tenant_budget();
        let on_tenant = &on_tenant;
        let results: Vec<_> = stream::iter(tenants)
            .map(|tenant| async move {
                let started = std::time::Instant::now();
                let result =
                    match tokio::time::timeout(budget, self.cycle_tenant(&tenant, now)).await {
                        Ok(r) => r,
                        Err(_) => Err(StoreError::Backend(
                            format!(
                                "the tenant's cycle took longer than its budget of {} s",
                                budget.as_secs()
                            )
                            .into(),
                        )),
                    };
                let took = started.elapsed();
                let result = match result {
                    Ok(Some(r)) => Ok(Some(on_tenant(r).await)),
                    other => other,
                };
                (tenant, result, took)
            })
            .buffer_unordered(TENANT_CONCURRENCY)
            .collect()
            .await;
        let mut report = CycleReport::default();
        for (tenant, result, took) in results {
            if !matches!(result, Ok(None)) {
                report.took.insert(tenant.clone(), took);
            }
            match result {
                Ok(Some(r)) => report.tenants.push(r),
                Ok(None) => report.skipped += 1,
                Err(e) => {
                    tracing::error!(tenant = %tenant, error = %e, "collector cycle failed");
                    report.failed.push((tenant, e));
                }
            }
        }
        report.tenants.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        Ok(report)
    }

    /// The agents' stuck executions at `now`. Only an execution past the floor can be
    /// stuck, so only its agent's 7-day durations are read (its hour buckets, one Query,
    /// with the hour window the live item holds).
    async fn stuck(
        &self,
        tenant: &str,
        agents: &[crate::store::live::AgentData],
        t: &Thresholds,
        now: Millis,
    ) -> Result<Vec<rules::Firing>, StoreError> {
        let mut out = Vec::new();
        for a in agents {
            if rules::stuck(&a.record, t.stuck_min_ms, now).is_none() {
                continue;
            }
            let mut week = crate::domain::latency::Histogram::default();
            let hours = self
                .store
                .hours_between(
                    tenant,
                    crate::store::layout::Entity::Agent,
                    &a.record.agent_id,
                    now - 7 * crate::time::DAY_MS,
                    now,
                )
                .await?;
            for (_, h) in &hours {
                week.merge(&h.latency);
            }
            for (_, h) in &a.latency {
                week.merge(h);
            }
            let after = rules::stuck_after_ms(t.stuck_min_ms, week.quantile(0.99));
            out.extend(rules::stuck(&a.record, after, now));
        }
        Ok(out)
    }

    /// The tenant's SLOs burning their budget at `now`: one alert per source, at the
    /// severity of its worst SLO. Each SLO costs its source's live item and one Query of
    /// its last 3 days of hour buckets.
    async fn slo_burns(
        &self,
        tenant: &str,
        data: &crate::store::tenant::TenantData,
        now: Millis,
    ) -> Result<Vec<rules::Firing>, StoreError> {
        use crate::domain::slo::{burn_alert, SloSource};
        let mut worst: std::collections::BTreeMap<(SloSource, String), rules::Firing> =
            Default::default();
        for slo in self.store.slos(tenant).await? {
            let Some(slo_data) = self.cycle_slo_data(tenant, data, &slo, now).await? else {
                continue;
            };
            let Some((severity, rate)) = burn_alert(&slo, &slo_data, now) else {
                continue;
            };
            let firing = burn_firing(data, &slo, severity, rate);
            let slot = worst.entry((slo.source_type, slo.source_id.clone()));
            match slot {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(firing);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    // Severities order most urgent first.
                    if firing.severity < o.get().severity {
                        o.insert(firing);
                    }
                }
            }
        }
        Ok(worst.into_values().collect())
    }

    /// What an SLO's burn rates are computed from, over the longest burn window; `None` if
    /// its source is gone. The source's live item is in the cycle's data already: only its
    /// hour buckets are read.
    async fn cycle_slo_data(
        &self,
        tenant: &str,
        data: &crate::store::tenant::TenantData,
        slo: &crate::domain::slo::SloRecord,
        now: Millis,
    ) -> Result<Option<crate::domain::slo::SloData>, StoreError> {
        use crate::domain::slo::SloSource;
        let span = 3 * crate::time::DAY_MS + crate::time::HOUR_MS;
        let agent = || {
            data.agents
                .iter()
                .find(|a| a.record.agent_id == slo.source_id)
        };
        let integration = || {
            data.integrations
                .iter()
                .find(|i| i.record.integration_id == slo.source_id)
        };
        let entity = match slo.source_type {
            SloSource::Agent if agent().is_some() => crate::store::layout::Entity::Agent,
            SloSource::Integration if integration().is_some() => {
                crate::store::layout::Entity::Integration
            }
            _ => return Ok(None),
        };
        let stored = self
            .store
            .hours_between(tenant, entity, &slo.source_id, now - span, now)
            .await?;
        Ok(match slo.source_type {
            SloSource::Agent => agent().map(|a| a.slo_data(stored)),
            SloSource::Integration => integration().map(|i| i.slo_data(stored)),
        })
    }

    /// One tenant's cycle at `now`; `None` if another run claimed it.
    pub async fn cycle_tenant(
        &self,
        tenant: &str,
        now: Millis,
    ) -> Result<Option<TenantReport>, StoreError> {
        let interval = self.interval_ms();
        let slot = now.div_euclid(interval);
        let cycle_start = slot * interval;
        if !self.store.claim_cycle(tenant, slot, now).await? {
            return Ok(None);
        }
        let mut data = self.store.tenant_data(tenant).await?;

        let probes = self.run_probes(tenant, &mut data, now, cycle_start).await?;
        self.schedule_recoveries(tenant, &data.integrations);

        let (agents, integrations) = healths(&data, now, self.config.latency_threshold_ms);
        let (alerts, tally) = self
            .settle_cycle_alerts(tenant, &mut data, &integrations, now)
            .await?;
        let report = report(
            &self.store,
            tenant,
            &data,
            agents,
            integrations,
            alerts,
            now,
        )
        .await?;
        // The first paint's one read. Derived from what was just written, so a failure
        // loses nothing: the cycle goes on and the next one writes it again.
        match serde_json::to_string(&report.summary()) {
            Ok(json) => {
                if let Err(e) = self.store.put_summary(tenant, json, now).await {
                    tracing::warn!(tenant, error = %e, "the summary was not written");
                }
            }
            Err(e) => tracing::warn!(tenant, error = %e, "the summary did not serialize"),
        }
        Ok(Some(TenantReport {
            probes,
            raised: tally.raised,
            updated: tally.updated,
            resolved: tally.resolved,
            ..report
        }))
    }

    /// Evaluates every rule over the cycle's data (the alerts taken out of it) and writes
    /// the decisions.
    async fn settle_cycle_alerts(
        &self,
        tenant: &str,
        data: &mut crate::store::tenant::TenantData,
        integrations: &[IntegrationHealth],
        now: Millis,
    ) -> Result<(Vec<(AlertRecord, u64)>, alerting::Tally), StoreError> {
        let thresholds = Thresholds::from(self.config.as_ref());
        let mut timed = self.stuck(tenant, &data.agents, &thresholds, now).await?;
        timed.extend(self.slo_burns(tenant, data, now).await?);
        // Alerts: reconcile, and on a conflict (an acknowledgement, or an overlapping run)
        // re-read and reconcile again; what was written stays written.
        let records: Vec<_> = data
            .integrations
            .iter()
            .zip(integrations)
            .map(|(d, h)| (&d.record, h.latency_ms))
            .collect();
        let alerts = std::mem::take(&mut data.alerts);
        alerting::settle_alerts(
            &self.store,
            tenant,
            alerts,
            &alerting::Scope::All,
            |active| {
                let mut firing = evaluate(
                    &data.agents,
                    &records,
                    &data.hosts,
                    &data.system,
                    active,
                    &thresholds,
                    now,
                );
                firing.extend(timed.iter().cloned());
                firing
            },
            now,
            self.config.alert_history,
        )
        .await
    }

    /// Probes the tenant's integrations that are due this cycle, concurrently, records each
    /// result (dropped if an overlapping run recorded first) and puts the updated
    /// integrations into `data`. Returns how many were recorded.
    async fn run_probes(
        &self,
        tenant: &str,
        data: &mut crate::store::tenant::TenantData,
        now: Millis,
        cycle_start: Millis,
    ) -> Result<usize, StoreError> {
        let due: Vec<(usize, crate::domain::records::Probe)> = data
            .integrations
            .iter()
            .enumerate()
            .filter(|(_, d)| d.record.probe_due(now, Some(cycle_start)))
            .filter_map(|(i, d)| Some((i, d.record.probe.clone()?)))
            .collect();
        // Probes get the first half of the tenant's budget; one still waiting then counts as
        // failed (so a black-holed address moves to `failed` and its recovery backoff
        // instead of holding every cycle), and the cycle goes on with what it has.
        let window = self.tenant_budget() / 2;
        let deadline = tokio::time::Instant::now() + window;
        let outcomes: Vec<_> = stream::iter(due)
            .map(|(i, p)| async move { (i, self.probe_until(tenant, &p, deadline, window).await) })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        // Held results of integrations not probed this cycle (no longer due, or gone).
        let probed: std::collections::HashSet<&str> = outcomes
            .iter()
            .map(|(i, _)| data.integrations[*i].record.integration_id.as_str())
            .collect();
        let left = self.take_held(tenant, |id| !probed.contains(id));
        for (id, result) in left {
            self.store.record_probes(tenant, &id, &[result]).await?;
        }
        let mut probes = 0;
        for (i, outcome) in outcomes {
            let record = &data.integrations[i].record;
            let id = record.integration_id.clone();
            if let Some(error) = &outcome.error {
                tracing::info!(tenant, integration = %id, %error, "probe failed");
            }
            let mut result = ProbeResult {
                ok: outcome.ok,
                latency_ms: outcome.latency_ms,
                error: outcome.error,
                at: now,
                cycle_start: Some(cycle_start),
                held: false,
            };
            let earlier = self.take_held_one(tenant, &id);
            // A success that changes no state waits for the next probe: two probes a
            // write (each write of a probed integration is 2 units at the reference
            // workload). Its figures show a cycle later.
            if earlier.is_none() && result.ok && record.steady_if_ok() {
                result.held = true;
                self.hold(tenant, &id, result);
                probes += 1;
                continue;
            }
            let results: Vec<ProbeResult> = earlier.into_iter().chain([result]).collect();
            match self.store.record_probes(tenant, &id, &results).await {
                Ok(Some(updated)) => {
                    data.integrations[i] = updated;
                    probes += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    // The held success waits for the next attempt rather than being lost.
                    if let Some(first) = results.into_iter().find(|r| r.held) {
                        self.hold(tenant, &id, first);
                    }
                    return Err(e);
                }
            }
        }
        Ok(probes)
    }

    /// Holds back a probe result of `tenant`'s integration `id`.
    fn hold(&self, tenant: &str, id: &str, result: ProbeResult) {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant.to_owned())
            .or_default()
            .insert(id.to_owned(), result);
    }

    /// Takes the held result of `tenant`'s integration `id`.
    fn take_held_one(&self, tenant: &str, id: &str) -> Option<ProbeResult> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let of_tenant = held.get_mut(tenant)?;
        let taken = of_tenant.remove(id);
        if of_tenant.is_empty() {
            held.remove(tenant);
        }
        taken
    }

    /// Takes the held results of `tenant`'s integrations whose ids `which` picks, with
    /// their ids.
    fn take_held(&self, tenant: &str, which: impl Fn(&str) -> bool) -> Vec<(String, ProbeResult)> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(of_tenant) = held.get_mut(tenant) else {
            return Vec::new();
        };
        let picked: Vec<String> = of_tenant.keys().filter(|id| which(id)).cloned().collect();
        let taken = picked
            .into_iter()
            .filter_map(|id| of_tenant.remove_entry(&id))
            .collect();
        if of_tenant.is_empty() {
            held.remove(tenant);
        }
        taken
    }

    /// Writes every held probe result, [`PROBE_CONCURRENCY`] at a time (before a Lambda
    /// invocation ends, whose process may not run again). Returns how many were written;
    /// a failed write is logged and its result dropped.
    pub async fn flush_probes(&self) -> usize {
        let held: Vec<(String, String, ProbeResult)> = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain()
            .flat_map(|(tenant, of)| of.into_iter().map(move |(id, r)| (tenant.clone(), id, r)))
            .collect();
        stream::iter(held)
            .map(|(tenant, id, result)| async move {
                match self.store.record_probes(&tenant, &id, &[result]).await {
                    Ok(_) => 1,
                    Err(e) => {
                        tracing::error!(tenant, integration = %id, error = %e, "writing a held probe failed");
                        0
                    }
                }
            })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect::<Vec<usize>>()
            .await
            .into_iter()
            .sum()
    }

    /// One probe, given up at `deadline` (`window` after the probes began) if it has not
    /// answered by then; an address that keeps failing is not connected to while it is
    /// backed off ([`backoff::AddressBackoff`]).
    async fn probe_until(
        &self,
        tenant: &str,
        probe: &crate::domain::records::Probe,
        deadline: tokio::time::Instant,
        window: std::time::Duration,
    ) -> probe::ProbeOutcome {
        let now = self.clock.now_ms();
        let address = backoff::address_of(&probe.url);
        if let Some((failures, until)) = self.backoff.blocked(tenant, &address, now) {
            return probe::ProbeOutcome {
                ok: false,
                answered: false,
                latency_ms: 0.0,
                error: Some(format!(
                    "not probed: {address} failed {failures} probes in a row; next try after {}",
                    crate::time::format_rfc3339(until)
                )),
            };
        }
        let started = std::time::Instant::now();
        let outcome = match tokio::time::timeout_at(deadline, self.prober.probe(probe)).await {
            Ok(outcome) => outcome,
            Err(_) => probe::ProbeOutcome {
                ok: false,
                answered: false,
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                error: Some(format!(
                    "no answer within the cycle's probe window of {} ms",
                    window.as_millis()
                )),
            },
        };
        self.backoff
            .record(tenant, &address, outcome.answered, self.clock.now_ms());
        outcome
    }

    /// Remembers a tenant's failed, probed integrations and when each is next due.
    fn schedule_recoveries(
        &self,
        tenant: &str,
        integrations: &[crate::store::live::IntegrationData],
    ) {
        let mut map = self
            .recoveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|(t, _), _| t != tenant);
        for d in integrations {
            let r = &d.record;
            if r.probe.is_some() && r.state == ConnectionState::Failed {
                let due = r.next_attempt_at.unwrap_or(0);
                map.insert((tenant.to_owned(), r.integration_id.clone()), due);
            }
        }
    }

    /// When the next recovery attempt is due, if any.
    pub fn next_recovery_at(&self) -> Option<Millis> {
        self.recoveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .min()
            .copied()
    }

    /// Makes the recovery attempts due at `now` (failed integrations on their backoff) and
    /// returns how many were recorded.
    pub async fn run_recoveries(&self, now: Millis) -> Result<usize, StoreError> {
        let due: Vec<(String, String)> = self
            .recoveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let attempts: Vec<_> = stream::iter(due)
            .map(|(tenant, id)| async move {
                let result = self.recover(&tenant, &id, now).await;
                ((tenant, id), result)
            })
            .buffer_unordered(PROBE_CONCURRENCY)
            .collect()
            .await;
        let mut recorded = 0;
        let mut map = self
            .recoveries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (key, result) in attempts {
            match result? {
                Some(record) => {
                    recorded += 1;
                    match record.next_attempt_at {
                        Some(at) if record.state == ConnectionState::Failed => {
                            map.insert(key, at);
                        }
                        _ => {
                            map.remove(&key);
                        }
                    }
                }
                // Gone, recovered through a call, or attempted by another run: the next
                // cycle reschedules it if it is still failed.
                None => {
                    map.remove(&key);
                }
            }
        }
        Ok(recorded)
    }

    async fn recover(
        &self,
        tenant: &str,
        id: &str,
        now: Millis,
    ) -> Result<Option<crate::domain::records::IntegrationRecord>, StoreError> {
        let Some(record) = self.store.integration_record(tenant, id).await? else {
            return Ok(None);
        };
        let Some(probe) = record.probe.clone().filter(|_| record.probe_due(now, None)) else {
            return Ok(None);
        };
        // Recovery attempts run between cycles in the same loop: bounded like a cycle's
        // probes, so a black-holed address cannot hold the next cycle back.
        let window =
            std::time::Duration::from_millis(probe.timeout_ms).min(self.tenant_budget() / 2);
        let deadline = tokio::time::Instant::now() + window;
        let outcome = self.probe_until(tenant, &probe, deadline, window).await;
        if let Some(error) = &outcome.error {
            tracing::info!(tenant, integration = %id, %error, "recovery attempt failed");
        }
        let result = ProbeResult {
            ok: outcome.ok,
            latency_ms: outcome.latency_ms,
            error: outcome.error,
            at: now,
            cycle_start: None,
            held: false,
        };
        Ok(self
            .store
            .record_probes(tenant, id, &[result])
            .await?
            .map(|d| d.record))
    }

    /// Runs cycles on their slots, and recovery attempts between them, until `until`
    /// (forever if `None`). Each cycle's report goes to `on_cycle`, which is awaited before
    /// going on (the hand-over to the broadcaster; in Lambda it must finish within the
    /// invocation). Storage errors are logged and retried on the next cycle.
    pub async fn run_until<T, TFut, F, Fut>(
        &self,
        until: Option<Millis>,
        on_tenant: T,
        mut on_cycle: F,
    ) where
        T: Fn(TenantReport) -> TFut,
        TFut: std::future::Future<Output = TenantReport>,
        F: FnMut(CycleReport) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut next_cycle = self.clock.now_ms();
        loop {
            let now = self.clock.now_ms();
            if until.is_some_and(|u| now >= u) {
                return;
            }
            next_cycle = self
                .run_due(now, next_cycle, &on_tenant, &mut on_cycle)
                .await;
            let mut wake = self.next_due(next_cycle);
            if let Some(u) = until {
                wake = wake.min(u);
            }
            let wait = (wake - self.clock.now_ms()).max(0);
            tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ))
            .await;
        }
    }

    /// Runs what is due at `now`: the cycle, if the slot `next_cycle` starts by then, and
    /// the recovery attempts due. Returns the start of the next cycle's slot (`next_cycle`
    /// itself if no cycle ran). See [`Collector::run_until`] for `on_tenant` and
    /// `on_cycle`.
    pub async fn run_due<T, TFut, F, Fut>(
        &self,
        now: Millis,
        next_cycle: Millis,
        on_tenant: &T,
        on_cycle: &mut F,
    ) -> Millis
    where
        T: Fn(TenantReport) -> TFut,
        TFut: std::future::Future<Output = TenantReport>,
        F: FnMut(CycleReport) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let interval = self.interval_ms();
        let mut next = next_cycle;
        if now >= next_cycle {
            let started = std::time::Instant::now();
            let result = self.run_cycle_with(now, on_tenant).await;
            let outcomes = result.as_ref().ok().map(CycleReport::outcomes);
            self.stats
                .record_cycle(started.elapsed(), outcomes.as_deref());
            match result {
                Ok(report) => on_cycle(report).await,
                Err(e) => tracing::error!(error = %e, "collector cycle failed"),
            }
            next = (now.div_euclid(interval) + 1) * interval;
        }
        if let Err(e) = self.run_recoveries(self.clock.now_ms()).await {
            tracing::error!(error = %e, "recovery attempts failed");
        }
        next
    }

    /// When something is next due, the next cycle's slot starting at `next_cycle`: that
    /// slot or a recovery attempt, whichever is first.
    pub fn next_due(&self, next_cycle: Millis) -> Millis {
        self.next_recovery_at()
            .map_or(next_cycle, |at| at.min(next_cycle))
    }
}

/// The alert for an SLO burning its error budget at `rate` times the sustainable rate.
fn burn_firing(
    data: &crate::store::tenant::TenantData,
    slo: &crate::domain::slo::SloRecord,
    severity: crate::domain::alerts::Severity,
    rate: impl std::fmt::Display,
) -> rules::Firing {
    use crate::domain::slo::SloSource;
    let (source_type, name) = match slo.source_type {
        SloSource::Agent => (
            crate::domain::alerts::SourceType::Agent,
            data.agents
                .iter()
                .find(|a| a.record.agent_id == slo.source_id)
                .map_or(slo.source_id.as_str(), |a| a.record.agent_name.as_str()),
        ),
        SloSource::Integration => (
            crate::domain::alerts::SourceType::Integration,
            data.integrations
                .iter()
                .find(|i| i.record.integration_id == slo.source_id)
                .map_or(slo.source_id.as_str(), |i| {
                    i.record.integration_name.as_str()
                }),
        ),
    };
    let what = match slo.source_type {
        SloSource::Agent => "Agent",
        SloSource::Integration => "Integration",
    };
    rules::Firing {
        key: crate::domain::alerts::AlertKey::new(
            source_type,
            &slo.source_id,
            rules::condition::SLO_BURN,
        ),
        severity,
        message: format!(
            "{what} {name} is burning the error budget of SLO {} at {rate}× the sustainable rate",
            slo.slo_id
        ),
    }
}

/// The health objects of a tenant's agents and integrations at `now`, by the read
/// endpoints' functions.
fn healths(
    data: &crate::store::tenant::TenantData,
    now: Millis,
    latency_threshold_ms: f64,
) -> (Vec<AgentHealth>, Vec<IntegrationHealth>) {
    let agents = data
        .agents
        .iter()
        .map(|d| agent_health(&d.record, &d.minutes, &d.days, &d.latency, now))
        .collect();
    let integrations = data
        .integrations
        .iter()
        .map(|d| d.health(now, latency_threshold_ms))
        .collect();
    (agents, integrations)
}

/// A tenant's report from its data, health objects and alerts as stored: the active alerts
/// in the contract's order, the system object, and which alerts are silenced (one small
/// Query of the notification configuration).
async fn report(
    store: &Store,
    tenant: &str,
    data: &crate::store::tenant::TenantData,
    agents: Vec<AgentHealth>,
    integrations: Vec<IntegrationHealth>,
    alerts: Vec<(AlertRecord, u64)>,
    now: Millis,
) -> Result<TenantReport, StoreError> {
    let recently_resolved = alerts
        .iter()
        .filter(|(a, _)| {
            a.resolved_at
                .is_some_and(|at| now - at <= RECENTLY_RESOLVED_MS)
        })
        .map(|(a, _)| a.alert_id.clone())
        .collect();
    let mut active: Vec<AlertRecord> = alerts
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a.resolved_at.is_none())
        .collect();
    sort_alerts(&mut active);
    let silences = store.notify_config(tenant).await?.silences;
    let silenced = active
        .iter()
        .filter(|a| crate::domain::notify::is_silenced(&silences, a, now))
        .map(|a| a.alert_id.clone())
        .collect();
    let statuses: Vec<_> = data
        .agents
        .iter()
        .map(|d| (agent_status(&d.record), d.record.running.len() as u64))
        .collect();
    let system = system_health(
        SystemInputs {
            agents: &statuses,
            integrations: &integrations,
            hosts: &data.hosts,
            system: &data.system,
            alerts: &active,
        },
        now,
    );
    Ok(TenantReport {
        tenant: tenant.to_owned(),
        at: now,
        agents,
        integrations,
        system,
        alerts: active,
        probes: 0,
        raised: 0,
        updated: 0,
        resolved: 0,
        silenced,
        recently_resolved,
    })
}

/// The tenant as it stands at `now`, for a live update between cycles: one read of the
/// tenant (as a cycle reads it), no probes, no alert changes.
pub async fn snapshot(
    store: &Store,
    config: &Config,
    tenant: &str,
    now: Millis,
) -> Result<TenantReport, StoreError> {
    let data = store.tenant_data(tenant).await?;
    let (agents, integrations) = healths(&data, now, config.latency_threshold_ms);
    let alerts = data.alerts.clone();
    report(store, tenant, &data, agents, integrations, alerts, now).await
}
