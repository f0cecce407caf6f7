//! Backing off from an address that keeps failing: a tenant that points hundreds of
//! probes at an address that never answers must not make this deployment knock on it every
//! cycle (a reflector), nor spend its cycles waiting on it.
//!
//! Kept per tenant and address (`host:port`), so one tenant's probes can never keep
//! another tenant's from running, and only failures without an HTTP answer count (an
//! unexpected status says the address works). In memory, per process: a best effort that
//! needs no writes; the integrations' own state machine, which is stored, still decides
//! their health.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::Millis;

/// Failures in a row after which an address is backed off.
pub const FAILURES_BEFORE_BACKOFF: u32 = 3;
/// The first back-off; it doubles with every further failure.
pub const FIRST_BACKOFF_MS: Millis = 30_000;
/// The longest back-off.
pub const MAX_BACKOFF_MS: Millis = 600_000;
/// Addresses remembered at most (the oldest entries are forgotten first), so memory stays
/// bounded whatever tenants register.
pub const MAX_ADDRESSES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    until: Millis,
    last: Millis,
}

/// Failing addresses per tenant, with when each may be tried again.
#[derive(Debug, Default)]
pub struct AddressBackoff {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

/// The `host:port` a probe URL connects to (the URL itself if it does not parse).
pub fn address_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or_default(),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_owned(),
    }
}

/// How long an address is backed off after `failures` in a row.
pub fn backoff_ms(failures: u32) -> Millis {
    if failures < FAILURES_BEFORE_BACKOFF {
        return 0;
    }
    let doublings = (failures - FAILURES_BEFORE_BACKOFF).min(16);
    (FIRST_BACKOFF_MS << doublings).min(MAX_BACKOFF_MS)
}

impl AddressBackoff {
    /// If `tenant`'s `address` is backed off at `now`: its failures in a row and until when.
    pub fn blocked(&self, tenant: &str, address: &str, now: Millis) -> Option<(u32, Millis)> {
        let map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&(tenant.to_owned(), address.to_owned()))
            .filter(|e| e.until > now)
            .map(|e| (e.failures, e.until))
    }

    /// Records a probe of `tenant`'s `address` at `now`: `reached` whether it answered at
    /// all (any HTTP status).
    pub fn record(&self, tenant: &str, address: &str, reached: bool, now: Millis) {
        let mut map = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (tenant.to_owned(), address.to_owned());
        if reached {
            map.remove(&key);
            return;
        }
        if !map.contains_key(&key) && map.len() >= MAX_ADDRESSES {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, e)| e.last)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let entry = map.entry(key).or_insert(Entry {
            failures: 0,
            until: 0,
            last: now,
        });
        entry.failures = entry.failures.saturating_add(1);
        entry.last = now;
        entry.until = now + backoff_ms(entry.failures);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_backed_off_after_three_failures_doubling_to_ten_minutes() {
        assert_eq!(backoff_ms(2), 0);
        assert_eq!(backoff_ms(3), 30_000);
        assert_eq!(backoff_ms(4), 60_000);
        assert_eq!(backoff_ms(8), 600_000);
        assert_eq!(backoff_ms(u32::MAX), 600_000);
        let b = AddressBackoff::default();
        for t in 0..3 {
            assert_eq!(
                b.blocked("a", "10.0.0.1:80", t),
                None,
                "failure {t} is not enough"
            );
            b.record("a", "10.0.0.1:80", false, t);
        }
        assert_eq!(b.blocked("a", "10.0.0.1:80", 3), Some((3, 30_002)));
        assert_eq!(
            b.blocked("b", "10.0.0.1:80", 3),
            None,
            "another tenant's probes go on"
        );
        assert_eq!(
            b.blocked("a", "10.0.0.1:80", 30_002),
            None,
            "one try after the back-off"
        );
        b.record("a", "10.0.0.1:80", true, 30_002);
        assert_eq!(
            b.blocked("a", "10.0.0.1:80", 30_003),
            None,
            "an answer forgets it"
        );
    }

    #[test]
    fn memory_stays_bounded_whatever_is_registered() {
        let b = AddressBackoff::default();
        for i in 0..(MAX_ADDRESSES + 50) {
            b.record("t", &format!("h{i}:80"), false, i as Millis);
        }
        let len = b.entries.lock().map(|m| m.len()).unwrap_or(0);
        assert_eq!(len, MAX_ADDRESSES);
        assert_eq!(
            address_of("https://api.example.com/x"),
            "api.example.com:443"
        );
        assert_eq!(address_of("http://10.0.0.1:8080/"), "10.0.0.1:8080");
    }
}
