//! The host sidecar's delivery logic: samples become `host.sample` events with ids fixed at
//! sampling time, wait in a bounded buffer, and go to the ingestion endpoint in batches.
//! 2xx delivers them; 429, 5xx and unreachable keep them for a retry on exponential backoff
//! with jitter; any other 4xx is logged and dropped (retrying cannot fix it). Because an
//! event keeps its id and timestamp however often it is sent, a retry after a lost answer
//! counts once.
//!
//! How samples are taken (sysinfo) lives in the `health-sidecar` crate; this module only
//! needs a [`HostSample`] now and then.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use shared::time::{format_rfc3339, Millis};

/// One reading of a host, as the `host.sample` event carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSample {
    /// CPU usage, percent.
    pub cpu_usage: f64,
    /// Memory usage, percent.
    pub memory_usage: f64,
    /// Disk usage, percent (of the root file system, or of all disks).
    pub disk_usage: Option<f64>,
    /// 1, 5 and 15 minute load averages.
    pub load_average: Option<[f64; 3]>,
    /// Seconds since boot.
    pub uptime_seconds: Option<u64>,
}

/// A sample as an ingestion event. The id is the host and the sample's time, so every
/// retry of it carries the same id; a host id too long for an event id (128 characters
/// with the time) is replaced there by a hash of it.
pub fn sample_event(host_id: &str, sample: &HostSample, at: Millis) -> serde_json::Value {
    let mut event_id = format!("{host_id}:{at}");
    if event_id.chars().count() > shared::domain::ids::MAX_ID_CHARS {
        use sha2::{Digest, Sha256};
        event_id = format!("{}:{at}", &hex::encode(Sha256::digest(host_id))[..32]);
    }
    let mut event = serde_json::json!({
        "event_id": event_id,
        "type": "host.sample",
        "host_id": host_id,
        "cpu_usage": round2(sample.cpu_usage),
        "memory_usage": round2(sample.memory_usage),
        "timestamp": format_rfc3339(at),
    });
    if let Some(d) = sample.disk_usage {
        event["disk_usage"] = serde_json::json!(round2(d));
    }
    if let Some(l) = sample.load_average {
        event["load_average"] = serde_json::json!(l.map(round2));
    }
    if let Some(u) = sample.uptime_seconds {
        event["uptime_seconds"] = serde_json::json!(u);
    }
    event
}

/// Two decimals, and never negative (sysinfo can report -0.0 or a tiny negative).
fn round2(x: f64) -> f64 {
    shared::domain::round::round2(x.max(0.0))
}

/// Samples waiting to be delivered, oldest first, at most `capacity`: when full, the
/// oldest is dropped, so an outage longer than the buffer loses its oldest samples and
/// keeps the newest.
#[derive(Debug)]
pub struct Buffer {
    events: VecDeque<serde_json::Value>,
    capacity: usize,
    dropped: u64,
}

impl Buffer {
    /// An empty buffer for `capacity` samples (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            events: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Adds an event; returns whether an older one had to be dropped.
    pub fn push(&mut self, event: serde_json::Value) -> bool {
        let full = self.events.len() >= self.capacity;
        if full {
            self.events.pop_front();
            self.dropped += 1;
        }
        self.events.push_back(event);
        full
    }

    /// The oldest `n` events (fewer if there are fewer).
    pub fn oldest(&self, n: usize) -> Vec<serde_json::Value> {
        self.events.iter().take(n).cloned().collect()
    }

    /// Forgets the oldest `n` events (delivered, or refused for good).
    pub fn remove_oldest(&mut self, n: usize) {
        let n = n.min(self.events.len());
        self.events.drain(..n);
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Events dropped because the buffer was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What an answer from the ingestion endpoint means for the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored (or recognised as already stored).
    Delivered,
    /// Try again later: throttled, server error, or no answer.
    Retry,
    /// Refused for good (bad key, bad data): retrying cannot help.
    Rejected,
}

/// Classifies an HTTP status (`None`: no answer at all).
pub fn classify(status: Option<u16>) -> Delivery {
    match status {
        Some(200..=299) => Delivery::Delivered,
        Some(429) | Some(500..=599) | None => Delivery::Retry,
        Some(_) => Delivery::Rejected,
    }
}

/// Exponential backoff with jitter between delivery attempts: 1 s, 2 s, 4 s, ... at most
/// `max`, each drawn uniformly from its upper half so that many sidecars that lost the API
/// at once do not come back in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    max: Duration,
}

impl Backoff {
    /// A backoff that waits at most `max`.
    pub fn new(max: Duration) -> Self {
        Self { attempt: 0, max }
    }

    /// The wait before the next attempt after a failure.
    pub fn next_delay(&mut self) -> Duration {
        use rand::Rng;
        let ceiling = Duration::from_secs(1u64 << self.attempt.min(16)).min(self.max);
        self.attempt += 1;
        let half = ceiling / 2;
        half + half.mul_f64(rand::rng().random_range(0.0..=1.0))
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Most events in one request (the API's limit).
pub const MAX_BATCH: usize = 1000;

/// Sends buffered events to the ingestion endpoint.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    api_url: String,
    events_url: String,
    api_key: String,
    /// Whether the last attempt delivered, so that the start (and the end) of working
    /// delivery is logged once rather than every batch.
    delivering: bool,
}

/// The `error.message` of an API error body, else the start of the body as text.
fn reason_of(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect())
}

impl Sender {
    /// A sender to `api_url` (e.g. `http://127.0.0.1:3000`) with an `ingest` key.
    pub fn new(api_url: &str, api_key: &str) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            api_url: api_url.trim_end_matches('/').to_owned(),
            events_url: format!("{}/api/health/events", api_url.trim_end_matches('/')),
            api_key: api_key.to_owned(),
            delivering: false,
        })
    }

    /// Asks the API's `/healthz` whether it is up, and logs the answer: a wrong URL shows at
    /// start, not after the first interval. Never fatal: samples are buffered meanwhile.
    pub async fn check_api(&self) -> bool {
        let url = format!("{}/healthz", self.api_url);
        match self.client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(api = %self.api_url, "the API answers");
                true
            }
            Ok(r) => {
                let status = r.status().as_u16();
                let reason = reason_of(&r.text().await.unwrap_or_default());
                tracing::warn!(api = %self.api_url, status, reason, "the API's health check failed; samples are kept until it answers");
                false
            }
            Err(e) => {
                tracing::warn!(api = %self.api_url, error = %e, "cannot reach the API; samples are kept until it answers");
                false
            }
        }
    }

    /// Sends the buffer's events, oldest first, batch by batch, until it is empty or a
    /// batch must be retried. Returns [`Delivery::Retry`] if events remain to retry.
    pub async fn flush(&mut self, buffer: &mut Buffer) -> Delivery {
        while !buffer.is_empty() {
            let batch = buffer.oldest(MAX_BATCH);
            let n = batch.len();
            let response = self
                .client
                .post(&self.events_url)
                .bearer_auth(&self.api_key)
                .json(&serde_json::json!({ "events": batch }))
                .send()
                .await;
            let (status, reason) = match response {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let reason = if r.status().is_success() {
                        String::new()
                    } else {
                        reason_of(&r.text().await.unwrap_or_default())
                    };
                    (Some(status), reason)
                }
                Err(e) => (None, e.to_string()),
            };
            let outcome = classify(status);
            let code = status.map_or_else(|| "none".to_owned(), |s| s.to_string());
            match outcome {
                Delivery::Delivered => {
                    if !self.delivering {
                        tracing::info!(api = %self.api_url, "delivering samples");
                    }
                    buffer.remove_oldest(n);
                }
                Delivery::Retry => {
                    tracing::warn!(
                        status = %code,
                        reason,
                        waiting = buffer.len(),
                        "delivery failed; will retry"
                    );
                }
                Delivery::Rejected => {
                    tracing::error!(
                        status = %code,
                        reason,
                        events = n,
                        "the API refused the samples; dropping them"
                    );
                    buffer.remove_oldest(n);
                }
            }
            self.delivering = outcome == Delivery::Delivered;
            if outcome == Delivery::Retry {
                return Delivery::Retry;
            }
        }
        Delivery::Delivered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> HostSample {
        HostSample {
            cpu_usage: 12.345,
            memory_usage: 50.0,
            disk_usage: Some(70.126),
            load_average: Some([0.5, 0.25, 0.125]),
            uptime_seconds: Some(3600),
        }
    }

    #[test]
    fn a_sample_is_a_valid_host_sample_event_with_a_stable_id() {
        let at = 1_800_000_000_000;
        let event = sample_event("web-1", &sample(), at);
        assert_eq!(event["event_id"], "web-1:1800000000000");
        // The longest valid host id still makes a valid, stable event id.
        let long = "h".repeat(shared::domain::ids::MAX_ID_CHARS);
        let first = sample_event(&long, &sample(), at);
        assert_eq!(
            first["event_id"],
            sample_event(&long, &sample(), at)["event_id"]
        );
        assert_eq!(first["host_id"], long.as_str());
        let body = serde_json::json!({ "events": [first] }).to_string();
        let parsed = shared::domain::events::parse_batch(body.as_bytes(), at);
        assert!(parsed.is_ok(), "{parsed:?}");
        assert_eq!(event["cpu_usage"], 12.35);
        assert_eq!(event["disk_usage"], 70.13);
        let body = serde_json::json!({ "events": [event] }).to_string();
        let parsed = shared::domain::events::parse_batch(body.as_bytes(), at);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn a_full_buffer_drops_the_oldest() {
        let mut b = Buffer::new(2);
        assert!(!b.push(serde_json::json!(1)));
        assert!(!b.push(serde_json::json!(2)));
        assert!(b.push(serde_json::json!(3)));
        assert_eq!(b.oldest(10), [serde_json::json!(2), serde_json::json!(3)]);
        assert_eq!(b.dropped(), 1);
        b.remove_oldest(1);
        assert_eq!(b.oldest(10), [serde_json::json!(3)]);
    }

    #[test]
    fn throttling_and_server_errors_retry_other_client_errors_do_not() {
        assert_eq!(classify(Some(202)), Delivery::Delivered);
        assert_eq!(classify(Some(429)), Delivery::Retry);
        assert_eq!(classify(Some(503)), Delivery::Retry);
        assert_eq!(classify(None), Delivery::Retry);
        assert_eq!(classify(Some(400)), Delivery::Rejected);
        assert_eq!(classify(Some(401)), Delivery::Rejected);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(8));
        let delays: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (d, ceiling) in delays.iter().zip([1, 2, 4, 8, 8, 8]) {
            let ceiling = Duration::from_secs(ceiling);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "{d:?} vs {ceiling:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
    }
}
