//! The state the product keeps per entity, and how one event changes it.
//!
//! Every type here is plain data with pure transitions, so both storage backends share one
//! definition of what an event does, and the rules are unit-tested without I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::events::Outcome;
use crate::time::Millis;

/// The kinds of entity the product watches, each with its live item and buckets. Alerts
/// name their source by the alerts' `SourceType` instead, where a host is `system`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Entity {
    /// An agent.
    Agent,
    /// An integration.
    Integration,
    /// A host.
    Host,
}

/// Most executions remembered as running per agent. Beyond this the oldest is forgotten as
/// running (it still counts in the hour's totals), so an agent that never reports finishes
/// cannot grow its record without bound.
pub const MAX_RUNNING_PER_AGENT: usize = 100;

/// An execution in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningExecution {
    /// What it is doing.
    pub operation: String,
    /// When it started.
    pub started_at: Millis,
}

/// An agent's latest state. Fields at their default are not stored: every byte of the live
/// item is read by each collector cycle, 10,000 times over at the reference workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The agent's id.
    pub agent_id: String,
    /// Display name (defaults to the id).
    pub agent_name: String,
    /// Paused by an operator.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// Latest confidence reported, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// When `confidence` was reported.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub confidence_at: Millis,
    /// Newest event from the agent.
    pub last_active: Option<Millis>,
    /// When the agent's current run of reports began: its first event after a silence
    /// longer than the silence threshold (see [`AgentRecord::observe_run`]). A silent
    /// alert holds until the run has lasted longer than the threshold, so an agent that
    /// reports less often than that keeps one alert instead of one per report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_since: Option<Millis>,
    /// When the latest finished execution finished.
    pub last_finished_at: Option<Millis>,
    /// How the latest finished execution ended.
    pub last_outcome: Option<Outcome>,
    /// Executions in progress, by execution id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub running: BTreeMap<String, RunningExecution>,
    /// When the agent was first seen.
    pub created_at: Millis,
    /// Every execution finished since the agent was first seen (since tokens and totals
    /// were counted, for older agents): the monotonic counters `/metrics` exposes.
    #[serde(rename = "tot", default, skip_serializing_if = "is_default")]
    pub totals: Totals,
}

fn is_zero(x: &Millis) -> bool {
    *x == 0
}

fn is_default<T: Default + PartialEq>(x: &T) -> bool {
    *x == T::default()
}

/// Monotonic totals since an entity was first seen: finished executions (agents) or calls
/// and probes (integrations), how many failed, and model tokens. Stored as one short row
/// (`[n, failed]`, with `, input, output` only when tokens were counted): every live item
/// carries it, and the collector reads every live item each cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Finished executions, or calls and probes.
    pub count: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Model input tokens.
    pub input_tokens: u64,
    /// Model output tokens.
    pub output_tokens: u64,
}

impl Totals {
    /// Counts one more, failed or not.
    pub fn add(&mut self, failed: bool) {
        self.count = self.count.saturating_add(1);
        if failed {
            self.failed = self.failed.saturating_add(1);
        }
    }

    /// Adds model tokens.
    pub fn add_tokens(&mut self, tokens: crate::domain::events::Tokens) {
        self.input_tokens = self.input_tokens.saturating_add(tokens.input);
        self.output_tokens = self.output_tokens.saturating_add(tokens.output);
    }
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.input_tokens == 0 && self.output_tokens == 0 {
            [self.count, self.failed].serialize(s)
        } else {
            [
                self.count,
                self.failed,
                self.input_tokens,
                self.output_tokens,
            ]
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for Totals {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let row = Vec::<u64>::deserialize(d)?;
        match row.as_slice() {
            [count, failed] => Ok(Self {
                count: *count,
                failed: *failed,
                ..Self::default()
            }),
            [count, failed, input_tokens, output_tokens] => Ok(Self {
                count: *count,
                failed: *failed,
                input_tokens: *input_tokens,
                output_tokens: *output_tokens,
            }),
            _ => Err(serde::de::Error::custom("totals: 2 or 4 numbers")),
        }
    }
}

impl AgentRecord {
    /// A newly registered agent whose name is its id.
    pub fn new(agent_id: &str, now: Millis) -> Self {
        Self {
            agent_id: agent_id.to_owned(),
            agent_name: agent_id.to_owned(),
            paused: false,
            confidence: None,
            confidence_at: 0,
            last_active: None,
            reporting_since: None,
            last_finished_at: None,
            last_outcome: None,
            running: BTreeMap::new(),
            created_at: now,
            totals: Totals::default(),
        }
    }

    /// Notes a report at `at` as [`AgentRecord::observe`] does, and starts a new run of
    /// reports when it follows the newest one by more than `silence_ms` (or is the
    /// first). An older report than the newest changes nothing.
    pub fn observe_run(&mut self, at: Millis, silence_ms: Millis) {
        if starts_run(self.last_active, at, silence_ms) {
            self.reporting_since = Some(at);
        }
        self.observe(at);
    }

    /// Whether the current run of reports has lasted more than `silence_ms`: reports
    /// newer than the run's first by more than the threshold, none of them further apart.
    /// Agents stored before runs were kept count as having reported long enough.
    pub fn reported_through(&self, silence_ms: Millis) -> bool {
        self.last_active
            .is_none_or(|last| run_lasted(self.reporting_since, last, silence_ms))
    }

    /// Notes that the agent reported something at `at`.
    pub fn observe(&mut self, at: Millis) {
        self.last_active = Some(self.last_active.map_or(at, |t| t.max(at)));
    }

    /// Records a confidence reading unless a newer one is already known.
    pub fn report_confidence(&mut self, confidence: f64, at: Millis) {
        if self.confidence.is_none() || at >= self.confidence_at {
            self.confidence = Some(confidence);
            self.confidence_at = at;
        }
    }

    /// Marks an execution as running.
    pub fn start(&mut self, execution_id: &str, operation: &str, at: Millis) {
        self.running.insert(
            execution_id.to_owned(),
            RunningExecution {
                operation: operation.to_owned(),
                started_at: at,
            },
        );
        while self.running.len() > MAX_RUNNING_PER_AGENT {
            let oldest = self
                .running
                .iter()
                .min_by_key(|(_, r)| r.started_at)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(id) => self.running.remove(&id),
                None => break,
            };
        }
    }

    /// Marks an execution as finished at `at` with `outcome`.
    pub fn finish(&mut self, execution_id: &str, outcome: Outcome, at: Millis) {
        self.running.remove(execution_id);
        if self.last_finished_at.is_none_or(|t| at >= t) {
            self.last_finished_at = Some(at);
            self.last_outcome = Some(outcome);
        }
    }

    /// The operation of the most recently started running execution.
    pub fn current_operation(&self) -> Option<&str> {
        self.running
            .values()
            .max_by_key(|r| r.started_at)
            .map(|r| r.operation.as_str())
    }
}

/// Adds two sums and saturates at the largest finite value. A non-finite sum would be
/// stored as JSON `null` and make its bucket unreadable; inputs are bounded at ingestion, so
/// this only guards against what the bounds miss.
pub fn finite_sum(a: f64, b: f64) -> f64 {
    let sum = a + b;
    if sum.is_finite() {
        sum
    } else if sum.is_nan() {
        0.0
    } else {
        f64::MAX.copysign(sum)
    }
}

/// Execution counters of one agent over one time bucket (a minute or a UTC day), keyed by
/// the time the executions started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentCounters {
    /// Executions started.
    pub started: u64,
    /// Of those, completed.
    pub completed: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Finished executions whose duration is known.
    pub timed: u64,
    /// Sum of those durations.
    pub duration_sum_ms: f64,
    /// Model input tokens of the finished executions.
    #[serde(default)]
    pub input_tokens: u64,
    /// Model output tokens of the finished executions.
    #[serde(default)]
    pub output_tokens: u64,
}

impl AgentCounters {
    /// Adds an execution's model tokens.
    pub fn add_tokens(&mut self, tokens: crate::domain::events::Tokens) {
        self.input_tokens = self.input_tokens.saturating_add(tokens.input);
        self.output_tokens = self.output_tokens.saturating_add(tokens.output);
    }

    /// Adds a finished execution.
    pub fn add_finish(&mut self, outcome: Outcome, duration_ms: Option<f64>) {
        match outcome {
            Outcome::Completed => self.completed = self.completed.saturating_add(1),
            Outcome::Failed => self.failed = self.failed.saturating_add(1),
        }
        if let Some(d) = duration_ms {
            self.timed = self.timed.saturating_add(1);
            self.duration_sum_ms = finite_sum(self.duration_sum_ms, d);
        }
    }

    /// Adds the counters of another bucket.
    pub fn merge(&mut self, other: &Self) {
        self.started = self.started.saturating_add(other.started);
        self.completed = self.completed.saturating_add(other.completed);
        self.failed = self.failed.saturating_add(other.failed);
        self.timed = self.timed.saturating_add(other.timed);
        self.duration_sum_ms = finite_sum(self.duration_sum_ms, other.duration_sum_ms);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

/// Where an integration's connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    /// Never called nor probed.
    Uninitialized,
    /// Being set up; the first probe or call has not answered.
    Initializing,
    /// Working.
    Active,
    /// Failing sometimes (fewer than 3 consecutive failures).
    Degraded,
    /// 3 or more consecutive failures.
    Failed,
}

/// Consecutive failures that make an integration `failed`.
pub const FAILED_AFTER: u32 = 3;

/// The first wait before a recovery attempt of a failed integration; it doubles after every
/// failed attempt up to [`MAX_RECOVERY_BACKOFF_MS`].
pub const FIRST_RECOVERY_BACKOFF_MS: Millis = 1_000;
/// The longest wait between two recovery attempts.
pub const MAX_RECOVERY_BACKOFF_MS: Millis = 30_000;

/// The wait before the recovery attempt that follows `failures` consecutive failures
/// (at least [`FAILED_AFTER`]): 1 s, 2 s, 4 s, ... at most 30 s.
pub fn recovery_backoff_ms(failures: u32) -> Millis {
    let doublings = failures.saturating_sub(FAILED_AFTER).min(16);
    (FIRST_RECOVERY_BACKOFF_MS << doublings).min(MAX_RECOVERY_BACKOFF_MS)
}

/// An HTTP check the collector runs against an integration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Probe {
    /// What to request.
    pub url: String,
    /// How long to wait.
    pub timeout_ms: u64,
    /// The status that means healthy.
    pub expected_status: u16,
}

/// The result of one probe, to be recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    /// Whether it answered as expected.
    pub ok: bool,
    /// How long it took, ms.
    pub latency_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
    /// When it ran.
    pub at: Millis,
    /// The start of the cycle it ran in, as [`IntegrationRecord::probe_due`] takes it
    /// (`None` for a recovery attempt).
    pub cycle_start: Option<Millis>,
    /// Whether it was held back to be written later (then it moves the state machine
    /// only if nothing newer did: see `LiveIntegration::apply_probe`).
    pub held: bool,
}

/// An integration's latest state, including its connection state machine. Empty options
/// are left out of the stored item (every call rewrites it, and its bytes decide the write
/// units); the other fields stay, under the names every earlier version reads, so a
/// rollback still reads what this version wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntegrationRecord {
    /// The integration's id.
    pub integration_id: String,
    /// Display name (defaults to the id).
    pub integration_name: String,
    /// Newest call or probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<Millis>,
    /// Connection state.
    pub state: ConnectionState,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Probes performed.
    pub health_checks_performed: u64,
    /// Recovery attempts made while failed.
    pub recovery_attempts: u64,
    /// Recovery attempts (or calls) that brought it back from failed.
    pub successful_recoveries: u64,
    /// When it last became active after being down or new; `None` while not up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up_since: Option<Millis>,
    /// The HTTP check, if registered with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// When it was first seen.
    pub created_at: Millis,
    /// Every call and probe since it was first seen (or since totals were counted): the
    /// monotonic counters `/metrics` exposes.
    #[serde(rename = "tot", default, skip_serializing_if = "is_default")]
    pub totals: Totals,
    /// While failed: when the next recovery attempt is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Millis>,
    /// When the latest probe ran (the collector probes once per cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_probe_at: Option<Millis>,
}

impl IntegrationRecord {
    /// A newly registered integration whose name is its id.
    pub fn new(integration_id: &str, now: Millis) -> Self {
        Self {
            integration_id: integration_id.to_owned(),
            integration_name: integration_id.to_owned(),
            last_used: None,
            state: ConnectionState::Uninitialized,
            consecutive_failures: 0,
            health_checks_performed: 0,
            recovery_attempts: 0,
            successful_recoveries: 0,
            up_since: None,
            probe: None,
            created_at: now,
            next_attempt_at: None,
            last_probe_at: None,
            totals: Totals::default(),
        }
    }

    /// Drives the state machine with the result of one call or probe at `at`.
    pub fn record_result(&mut self, ok: bool, at: Millis) {
        self.last_used = Some(self.last_used.map_or(at, |t| t.max(at)));
        if ok {
            if self.state == ConnectionState::Failed {
                self.successful_recoveries += 1;
            }
            if !matches!(
                self.state,
                ConnectionState::Active | ConnectionState::Degraded
            ) {
                self.up_since = Some(at);
            }
            self.state = ConnectionState::Active;
            self.consecutive_failures = 0;
            self.next_attempt_at = None;
        } else {
            self.consecutive_failures += 1;
            if self.consecutive_failures >= FAILED_AFTER {
                self.state = ConnectionState::Failed;
                self.up_since = None;
                self.next_attempt_at = Some(at + recovery_backoff_ms(self.consecutive_failures));
            } else {
                self.state = ConnectionState::Degraded;
            }
        }
    }

    /// Whether a probe is due at `now`: a failed integration on its recovery backoff,
    /// any other probed one once per cycle (`cycle_start` is the start of the current
    /// cycle).
    pub fn probe_due(&self, now: Millis, cycle_start: Option<Millis>) -> bool {
        if self.probe.is_none() {
            return false;
        }
        if self.state == ConnectionState::Failed {
            return self.next_attempt_at.is_none_or(|t| now >= t);
        }
        cycle_start.is_some_and(|start| self.last_probe_at.is_none_or(|t| t < start))
    }

    /// Whether a successful probe would leave its connection state as it is: the
    /// integration was probed before and is active with no failure in a row. Such a
    /// result can wait to be written with the next probe.
    pub fn steady_if_ok(&self) -> bool {
        self.probe.is_some()
            && self.last_probe_at.is_some()
            && self.state == ConnectionState::Active
            && self.consecutive_failures == 0
    }

    /// Counts a probe that ran at `at` as a check, without moving the state machine.
    pub fn count_probe(&mut self, at: Millis) {
        self.health_checks_performed += 1;
        self.last_probe_at = Some(self.last_probe_at.map_or(at, |t| t.max(at)));
    }

    /// Records the result of a probe that ran at `at`: counts the check (and the recovery
    /// attempt, if it was failed) and drives the state machine. The caller counts the
    /// result with the calls.
    pub fn record_probe(&mut self, ok: bool, at: Millis) {
        self.health_checks_performed += 1;
        if self.state == ConnectionState::Failed {
            self.recovery_attempts += 1;
        }
        self.last_probe_at = Some(self.last_probe_at.map_or(at, |t| t.max(at)));
        self.record_result(ok, at);
    }

    /// Seconds it has been up at `now`; 0 while failed or never up.
    pub fn uptime_seconds(&self, now: Millis) -> u64 {
        self.up_since
            .map_or(0, |t| u64::try_from((now - t).max(0) / 1000).unwrap_or(0))
    }
}

/// Call counters of one integration over one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IntegrationCounters {
    /// Calls and probes.
    pub calls: u64,
    /// Of those, failed.
    pub failures: u64,
    /// Sum of their latencies.
    pub latency_sum_ms: f64,
}

impl IntegrationCounters {
    /// Adds one call.
    pub fn add(&mut self, ok: bool, latency_ms: f64) {
        self.calls = self.calls.saturating_add(1);
        if !ok {
            self.failures = self.failures.saturating_add(1);
        }
        self.latency_sum_ms = finite_sum(self.latency_sum_ms, latency_ms);
    }
    /// Adds the counters of another bucket.
    pub fn merge(&mut self, other: &Self) {
        self.calls = self.calls.saturating_add(other.calls);
        self.failures = self.failures.saturating_add(other.failures);
        self.latency_sum_ms = finite_sum(self.latency_sum_ms, other.latency_sum_ms);
    }
}

/// A host's latest sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's id.
    pub host_id: String,
    /// CPU usage, percent.
    pub cpu_usage: f64,
    /// Memory usage, percent.
    pub memory_usage: f64,
    /// Disk usage, percent.
    pub disk_usage: Option<f64>,
    /// Load averages.
    pub load_average: Option<[f64; 3]>,
    /// Seconds since boot.
    pub uptime_seconds: Option<u64>,
    /// When the latest sample was taken.
    pub last_seen: Millis,
    /// When the host's current run of samples began (as an agent's runs of reports:
    /// [`AgentRecord::reporting_since`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_since: Option<Millis>,
}

impl HostRecord {
    /// Notes a sample taken at `at` for the silence rule, as
    /// [`AgentRecord::observe_run`] does (before the sample becomes the reading).
    pub fn observe_run(&mut self, at: Millis, silence_ms: Millis) {
        // A new host's reading is older than any sample (`Millis::MIN`): none yet.
        let last = (self.last_seen != Millis::MIN).then_some(self.last_seen);
        if starts_run(last, at, silence_ms) {
            self.reporting_since = Some(at);
        }
    }

    /// Whether the current run of samples has lasted more than `silence_ms` (as
    /// [`AgentRecord::reported_through`]).
    pub fn reported_through(&self, silence_ms: Millis) -> bool {
        run_lasted(self.reporting_since, self.last_seen, silence_ms)
    }
}

/// Whether a report at `at` starts a new run of reports after the newest one, `last`: it
/// is the first, or follows it by more than `silence_ms` (an older one never does).
fn starts_run(last: Option<Millis>, at: Millis, silence_ms: Millis) -> bool {
    last.is_none_or(|last| at.saturating_sub(last) > silence_ms)
}

/// Whether a run of reports that began at `since` and whose newest is `last` has lasted
/// more than `silence_ms`; a source stored before runs were kept (`since` unknown) counts
/// as having reported long enough.
fn run_lasted(since: Option<Millis>, last: Millis, silence_ms: Millis) -> bool {
    since.is_none_or(|since| last.saturating_sub(since) > silence_ms)
}

/// Sample aggregates of one host over one time bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostCounters {
    /// Samples taken.
    pub samples: u64,
    /// Sum of CPU usage.
    pub cpu_sum: f64,
    /// Highest CPU usage.
    pub cpu_max: f64,
    /// Sum of memory usage.
    pub memory_sum: f64,
    /// Highest memory usage.
    pub memory_max: f64,
}

impl HostCounters {
    /// Adds one sample.
    pub fn add(&mut self, cpu: f64, memory: f64) {
        self.samples = self.samples.saturating_add(1);
        self.cpu_sum = finite_sum(self.cpu_sum, cpu);
        self.cpu_max = self.cpu_max.max(cpu);
        self.memory_sum = finite_sum(self.memory_sum, memory);
        self.memory_max = self.memory_max.max(memory);
    }

    /// Adds the counters of another bucket (another host's, or another minute's).
    pub fn merge(&mut self, other: &Self) {
        self.samples = self.samples.saturating_add(other.samples);
        self.cpu_sum = finite_sum(self.cpu_sum, other.cpu_sum);
        self.cpu_max = self.cpu_max.max(other.cpu_max);
        self.memory_sum = finite_sum(self.memory_sum, other.memory_sum);
        self.memory_max = self.memory_max.max(other.memory_max);
    }
}

/// A gauge reading and when it was taken.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GaugeReading {
    /// The value.
    pub value: u64,
    /// When it was reported.
    pub at: Millis,
}

/// Tenant-wide readings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SystemRecord {
    /// Latest queue depth.
    pub queue_depth: Option<GaugeReading>,
    /// Latest count of active operations, as reported.
    pub active_operations: Option<GaugeReading>,
    /// Marks of the gauge events counted.
    #[serde(default)]
    pub seen: crate::domain::marks::Seen,
}

impl SystemRecord {
    /// Keeps the newer of the stored and the given reading.
    pub fn report(slot: &mut Option<GaugeReading>, reading: GaugeReading) {
        if slot.is_none_or(|r| reading.at >= r.at) {
            *slot = Some(reading);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The integration record as the version before empty options were left out declared
    /// it: what a rollback to that version reads.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct PreviousIntegrationRecord {
        integration_id: String,
        integration_name: String,
        last_used: Option<Millis>,
        state: ConnectionState,
        consecutive_failures: u32,
        health_checks_performed: u64,
        recovery_attempts: u64,
        successful_recoveries: u64,
        up_since: Option<Millis>,
        probe: Option<Probe>,
        created_at: Millis,
        #[serde(default)]
        next_attempt_at: Option<Millis>,
        #[serde(default)]
        last_probe_at: Option<Millis>,
    }

    #[test]
    fn the_version_before_reads_an_integration_record_this_one_writes() {
        let new = IntegrationRecord::new("crm", 1_000);
        let mut probed = new.clone();
        probed.probe = Some(Probe {
            url: "https://crm.example/health".into(),
            timeout_ms: 2_000,
            expected_status: 200,
        });
        probed.last_used = Some(5_000);
        probed.consecutive_failures = 2;
        for record in [new, probed] {
            let stored = serde_json::to_string(&record).expect("the record serializes");
            assert!(!stored.contains("null"), "empty options left out: {stored}");
            let read: PreviousIntegrationRecord = serde_json::from_str(&stored)
                .unwrap_or_else(|e| panic!("the version before cannot read {stored}: {e}"));
            assert_eq!(
                (
                    read.integration_id.as_str(),
                    read.consecutive_failures,
                    read.last_used
                ),
                (
                    record.integration_id.as_str(),
                    record.consecutive_failures,
                    record.last_used
                ),
                "{stored}"
            );
        }
    }

    #[test]
    fn sums_saturate_instead_of_becoming_infinite() {
        let mut c = AgentCounters::default();
        c.add_finish(Outcome::Completed, Some(f64::MAX));
        c.add_finish(Outcome::Completed, Some(f64::MAX));
        assert_eq!(c.duration_sum_ms, f64::MAX);
        let mut merged = c.clone();
        merged.merge(&c);
        assert!(merged.duration_sum_ms.is_finite());
        assert_eq!(merged.completed, 4);
        let mut i = IntegrationCounters {
            calls: u64::MAX,
            ..IntegrationCounters::default()
        };
        i.add(false, f64::MAX);
        i.add(false, f64::MAX);
        assert_eq!((i.calls, i.latency_sum_ms), (u64::MAX, f64::MAX));
        assert!(serde_json::to_string(&i).is_ok_and(|j| !j.contains("null")));
    }

    #[test]
    fn three_consecutive_failures_fail_an_integration_and_a_success_recovers_it() {
        let mut i = IntegrationRecord::new("slack", 0);
        i.record_result(true, 1_000);
        assert_eq!(i.state, ConnectionState::Active);
        i.record_result(false, 2_000);
        assert_eq!(
            (i.state, i.consecutive_failures),
            (ConnectionState::Degraded, 1)
        );
        i.record_result(false, 3_000);
        i.record_result(false, 4_000);
        assert_eq!(
            (i.state, i.uptime_seconds(10_000)),
            (ConnectionState::Failed, 0)
        );
        i.record_result(true, 5_000);
        assert_eq!(i.state, ConnectionState::Active);
        assert_eq!((i.consecutive_failures, i.successful_recoveries), (0, 1));
        assert_eq!(i.uptime_seconds(65_000), 60);
    }

    #[test]
    fn recovery_attempts_back_off_1_2_4_seconds_up_to_30() {
        let waits: Vec<Millis> = (3..=10).map(recovery_backoff_ms).collect();
        assert_eq!(
            waits,
            [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]
        );
    }

    #[test]
    fn a_failed_probe_target_is_retried_on_backoff_and_counted_when_it_recovers() {
        let mut i = IntegrationRecord::new("api", 0);
        i.probe = Some(Probe {
            url: "http://127.0.0.1/".into(),
            timeout_ms: 1000,
            expected_status: 200,
        });
        assert!(i.probe_due(0, Some(0)));
        for at in [0, 30_000, 60_000] {
            i.record_probe(false, at);
        }
        assert_eq!(i.state, ConnectionState::Failed);
        assert_eq!(i.next_attempt_at, Some(61_000));
        // Not due before the backoff ends, even at a cycle start.
        assert!(!i.probe_due(60_500, Some(60_000)));
        assert!(i.probe_due(61_000, None));
        i.record_probe(false, 61_000);
        assert_eq!(i.next_attempt_at, Some(63_000));
        i.record_probe(true, 63_000);
        assert_eq!(i.state, ConnectionState::Active);
        assert_eq!(
            (
                i.health_checks_performed,
                i.recovery_attempts,
                i.successful_recoveries,
                i.next_attempt_at
            ),
            (5, 2, 1, None)
        );
        // Once per cycle while not failed.
        assert!(!i.probe_due(64_000, Some(60_000)));
        assert!(i.probe_due(90_000, Some(90_000)));
    }

    #[test]
    fn the_newest_finish_decides_the_last_outcome_even_out_of_order() {
        let mut a = AgentRecord::new("a", 0);
        a.finish("x1", Outcome::Failed, 2_000);
        a.finish("x2", Outcome::Completed, 1_000);
        assert_eq!(a.last_outcome, Some(Outcome::Failed));
    }

    #[test]
    fn running_executions_are_capped_by_dropping_the_oldest() {
        let mut a = AgentRecord::new("a", 0);
        for i in 0..=MAX_RUNNING_PER_AGENT {
            a.start(
                &format!("x{i}"),
                &format!("op{i}"),
                i64::try_from(i).unwrap_or(0),
            );
        }
        assert_eq!(a.running.len(), MAX_RUNNING_PER_AGENT);
        assert!(!a.running.contains_key("x0"));
        assert_eq!(a.current_operation(), Some("op100"));
    }
}
