//! The process's own figures: what its collector, notifier and WebSocket gateway did, in
//! total and per tenant. Fed with plain figures ([`CycleOutcome`], [`Deliveries`]) so this
//! room depends on none of the services it counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::exposition::Exposition;

/// One tenant's part of a collector cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct CycleOutcome {
    /// The tenant.
    pub tenant: String,
    /// Whether its cycle failed.
    pub failed: bool,
    /// How long its part took, when measured.
    pub took: Option<std::time::Duration>,
}

/// Deliveries of a notifier pass (of one tenant, or of all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deliveries {
    /// Deliveries that succeeded.
    pub delivered: usize,
    /// Attempts that failed (to be retried or given up).
    pub failed_attempts: usize,
    /// Messages still waiting after the pass.
    pub pending: usize,
}

/// One tenant's share of what the collector, the notifier and the WebSocket gateway did,
/// or the process's total.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Collector cycles that evaluated the tenant (or ran, for the process).
    pub cycles: u64,
    /// Of those, the ones that failed for it.
    pub failed_cycles: u64,
    /// How long the last cycle's part for it took, in seconds.
    pub last_cycle_seconds: f64,
    /// Notifications delivered.
    pub delivered: u64,
    /// Notification attempts that failed (retried, or given up).
    pub failed_attempts: u64,
    /// Notifications waiting for a retry after the last pass.
    pub pending: u64,
    /// WebSocket connections open now.
    pub connections: i64,
}

/// What this process's collector, notifier and WebSocket gateway did: in total (what the
/// collector's CloudWatch figures report in Lambda) and per tenant (what the local stack's
/// `/metrics` shows a tenant: its own figures, never another tenant's or the process's).
/// One per process, in [`crate::AppState`]; a tenant's entry lives as long as the process,
/// so the map is bounded by the number of tenants, not by traffic.
#[derive(Debug, Default)]
pub struct StackStats {
    exposed: AtomicBool,
    figures: Mutex<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    process: Figures,
    tenants: HashMap<String, Figures>,
}

impl StackStats {
    /// Exposes the tenant's figures on `/metrics` (the local stack, which runs every part;
    /// in Lambda each function is its own process and reports through [`emf`] instead).
    pub fn enable(&self) {
        self.exposed.store(true, Ordering::Relaxed);
    }

    fn update(&self, f: impl FnOnce(&mut StatsInner)) {
        let mut inner = self
            .figures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut inner);
    }

    /// Counts a collector cycle that took `took`: `None` if it failed as a whole (no
    /// tenant was evaluated), else each tenant it evaluated or failed.
    pub fn record_cycle(&self, took: std::time::Duration, tenants: Option<&[CycleOutcome]>) {
        self.update(|s| {
            s.process.cycles += 1;
            s.process.last_cycle_seconds = took.as_secs_f64();
            let Some(tenants) = tenants else {
                s.process.failed_cycles += 1;
                return;
            };
            if tenants.iter().any(|t| t.failed) {
                s.process.failed_cycles += 1;
            }
            for outcome in tenants {
                let t = s.tenants.entry(outcome.tenant.clone()).or_default();
                t.cycles += 1;
                t.failed_cycles += u64::from(outcome.failed);
                if let Some(took) = outcome.took {
                    t.last_cycle_seconds = took.as_secs_f64();
                }
            }
        });
    }

    /// The process's figures.
    pub fn process(&self) -> Figures {
        let mut out = Figures::default();
        self.update(|s| out = s.process);
        out
    }

    /// A tenant's figures (zeros for a tenant never seen).
    pub fn tenant(&self, tenant: &str) -> Figures {
        let mut out = Figures::default();
        self.update(|s| out = s.tenants.get(tenant).copied().unwrap_or_default());
        out
    }

    /// Counts a notifier pass's deliveries and what still waits, per tenant.
    pub fn record_pass(&self, total: Deliveries, tenants: &[(String, Deliveries)]) {
        self.update(|s| {
            s.process.delivered += total.delivered as u64;
            s.process.failed_attempts += total.failed_attempts as u64;
            s.process.pending = total.pending as u64;
            for (tenant, d) in tenants {
                let t = s.tenants.entry(tenant.clone()).or_default();
                t.delivered += d.delivered as u64;
                t.failed_attempts += d.failed_attempts as u64;
                t.pending = d.pending as u64;
            }
        });
    }

    /// A WebSocket connection of `tenant` opened (`+1`) or closed (`-1`).
    pub fn connection(&self, tenant: &str, change: i64) {
        self.update(|s| {
            s.process.connections += change;
            let t = s.tenants.entry(tenant.to_owned()).or_default();
            t.connections += change;
        });
    }

    /// Writes `tenant`'s figures as `agenthealth_stack_*` families, if exposed.
    pub fn families(&self, tenant: &str, out: &mut Exposition) {
        use super::exposition::Type::{Counter, Gauge};
        if !self.exposed.load(Ordering::Relaxed) {
            return;
        }
        let f = self.tenant(tenant);
        let families = [
            (
                "agenthealth_stack_collector_cycles",
                Counter,
                "Collector cycles that evaluated this tenant.",
                f.cycles as f64,
            ),
            (
                "agenthealth_stack_collector_failed_cycles",
                Counter,
                "Collector cycles that failed for this tenant.",
                f.failed_cycles as f64,
            ),
            (
                "agenthealth_stack_collector_last_cycle_seconds",
                Gauge,
                "How long the last collector cycle took for this tenant.",
                f.last_cycle_seconds,
            ),
            (
                "agenthealth_stack_notifications_delivered",
                Counter,
                "This tenant's notifications delivered.",
                f.delivered as f64,
            ),
            (
                "agenthealth_stack_notification_attempts_failed",
                Counter,
                "This tenant's notification attempts that failed (retried, or given up).",
                f.failed_attempts as f64,
            ),
            (
                "agenthealth_stack_notifications_pending",
                Gauge,
                "This tenant's notifications waiting in the outbox for their next attempt, after the last pass.",
                f.pending as f64,
            ),
            (
                "agenthealth_stack_websocket_connections",
                Gauge,
                "This tenant's open WebSocket connections.",
                f.connections.max(0) as f64,
            ),
        ];
        for (name, kind, help, value) in families {
            out.family(name, kind, help, &[(Vec::new(), value)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tenant_sees_its_own_figures_and_the_process_keeps_the_total() {
        let stats = StackStats::default();
        stats.enable();
        stats.connection("acme", 1);
        stats.connection("acme", 1);
        stats.connection("beta", 1);
        stats.connection("acme", -1);
        let five = Deliveries {
            delivered: 5,
            ..Default::default()
        };
        stats.record_pass(five, &[("acme".to_owned(), five)]);
        assert_eq!(
            (
                stats.tenant("acme").connections,
                stats.tenant("acme").delivered
            ),
            (1, 5)
        );
        assert_eq!(
            (
                stats.tenant("beta").connections,
                stats.tenant("beta").delivered
            ),
            (1, 0)
        );
        assert_eq!(
            (stats.process().connections, stats.process().delivered),
            (2, 5)
        );
        let mut out = Exposition::new(true);
        stats.families("beta", &mut out);
        let text = out.finish();
        assert!(
            text.contains("agenthealth_stack_notifications_delivered_total 0\n"),
            "{text}"
        );
        assert!(
            text.contains("agenthealth_stack_websocket_connections 1\n"),
            "{text}"
        );
    }
}
