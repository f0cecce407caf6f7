//! Time as the product stores it: milliseconds since the Unix epoch, UTC.
//!
//! One integer type keeps arithmetic on windows and buckets exact; conversion to RFC 3339
//! happens only at the API boundary.

use chrono::{DateTime, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// One minute in milliseconds.
pub const MINUTE_MS: Millis = 60_000;
/// One hour in milliseconds.
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
/// One UTC day in milliseconds.
pub const DAY_MS: Millis = 24 * HOUR_MS;

/// A source of the current time, injected so tests can drive time explicitly.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now_ms(&self) -> Millis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> Millis {
        Utc::now().timestamp_millis()
    }
}

/// A clock that only moves when told to; for tests and benchmarks.
#[derive(Debug)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: Millis) -> Self {
        Self(std::sync::atomic::AtomicI64::new(now))
    }
    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
    /// Sets the clock to `now`.
    pub fn set(&self, now: Millis) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Formats a time as the contract wants it: RFC 3339, UTC, whole seconds, ending in `Z`.
pub fn format_rfc3339(ms: Millis) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 time with any offset; `None` if it is not one.
pub fn parse_rfc3339(text: &str) -> Option<Millis> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// The index of the minute that contains `ms` (minutes since the epoch).
pub fn minute_of(ms: Millis) -> i64 {
    ms.div_euclid(MINUTE_MS)
}

/// The UTC day that minute `minute` (minutes since the epoch) falls in.
pub fn day_of_minute(minute: i64) -> i64 {
    day_of(minute * MINUTE_MS)
}

/// The index of the UTC day that contains `ms` (days since the epoch).
pub fn day_of(ms: Millis) -> i64 {
    ms.div_euclid(DAY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_in_utc_with_z() {
        let ms = parse_rfc3339("2026-02-02T14:00:00.750+01:00").unwrap_or_default();
        assert_eq!(format_rfc3339(ms), "2026-02-02T13:00:00Z");
    }

    #[test]
    fn buckets_negative_times_downwards() {
        assert_eq!(minute_of(-1), -1);
        assert_eq!(day_of(DAY_MS), 1);
        assert_eq!(day_of(DAY_MS - 1), 0);
    }
}
