//! How the collector hands a cycle's updates to the broadcaster.
//!
//! In AWS the collector invokes the `broadcaster` function asynchronously (`Invoke` with
//! `InvocationType=Event`) with the tenant's finished messages, so a slow dashboard never
//! delays the next cycle and Lambda retries a failed broadcast. Tenants with no
//! connection cost one index query and no invocation. In the local stack the same
//! [`Broadcaster`](super::broadcaster::Broadcaster) runs in-process.
//!
//! Why not DynamoDB Streams: an update of a large tenant is several megabytes, more than
//! an item (400 KB) holds, and the collector already has it in memory after the cycle.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::collector::TenantReport;
use crate::store::connections::Feed;

#[cfg(feature = "invoke")]
use super::delta::{feed_messages, Deltas};
#[cfg(feature = "invoke")]
use crate::store::connections::Listening;

/// Largest invocation payload sent: asynchronous invocations take 256 KB; a margin keeps
/// the envelope and the tenant id within it.
pub const MAX_PAYLOAD_BYTES: usize = 250_000;

/// The broadcaster function's event: messages to send, in order, to every connection of
/// a tenant.
#[derive(Debug, Serialize, Deserialize)]
pub struct BroadcastRequest {
    /// The tenant.
    pub tenant: String,
    /// The messages, as JSON documents (sent verbatim).
    pub messages: Vec<Box<RawValue>>,
    /// The connections they go to, as the collector listed them for these messages (the
    /// broadcaster then reads no connection item); when empty, every connection of `feed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<String>,
    /// The feed whose connections they go to when `connections` is empty.
    #[serde(default, skip_serializing_if = "Feed::is_full")]
    pub feed: Feed,
}

/// Splits the messages for `connections` (listening alike, on `feed`) into broadcaster
/// events that each fit one invocation with the connection ids.
pub fn requests(
    tenant: &str,
    feed: Feed,
    connections: &[String],
    messages: Vec<String>,
) -> Vec<BroadcastRequest> {
    let ids_bytes: usize = connections.iter().map(|c| c.len() + 3).sum();
    let budget = MAX_PAYLOAD_BYTES.saturating_sub(ids_bytes);
    let mut out: Vec<BroadcastRequest> = Vec::new();
    let mut size = 0;
    for message in messages {
        let Ok(raw) = RawValue::from_string(message) else {
            tracing::error!(tenant, "an update message is not JSON; not sent");
            continue;
        };
        let len = raw.get().len() + 1;
        match out.last_mut() {
            Some(last) if size + len <= budget => last.messages.push(raw),
            _ => {
                size = 0;
                out.push(BroadcastRequest {
                    tenant: tenant.to_owned(),
                    messages: vec![raw],
                    connections: connections.to_vec(),
                    feed,
                });
            }
        }
        size += len;
    }
    out
}

/// Where the collector sends each tenant's update after a cycle.
#[derive(Debug, Clone)]
pub enum Handover {
    /// Broadcast from this process (the local stack).
    #[cfg(feature = "broadcast")]
    Inline(super::broadcaster::Broadcaster),
    /// Invoke the broadcaster function (AWS).
    #[cfg(feature = "invoke")]
    Invoke(Invoker),
}

/// Tenants handed over at once.
const TENANT_CONCURRENCY: usize = 16;

impl Handover {
    /// Hands over every tenant's update of a cycle.
    pub async fn publish_cycle(&self, report: &crate::collector::CycleReport) {
        use futures::stream::{self, StreamExt};
        stream::iter(&report.tenants)
            .for_each_concurrent(TENANT_CONCURRENCY, |t| self.publish(t))
            .await;
    }

    /// Hands over one tenant's update after a cycle. Failures are logged: the next cycle
    /// sends a fresh update anyway.
    pub async fn publish(&self, report: &TenantReport) {
        self.hand_over(report, false).await;
    }

    /// Hands over one tenant's update after events changed its alerts.
    pub async fn publish_event(&self, report: &TenantReport) {
        self.hand_over(report, true).await;
    }

    async fn hand_over(&self, report: &TenantReport, event: bool) {
        match self {
            #[cfg(feature = "broadcast")]
            Self::Inline(b) => {
                let sent = if event {
                    b.broadcast_event_report(report).await
                } else {
                    b.broadcast_report(report).await
                };
                if let Err(e) = sent {
                    tracing::error!(tenant = %report.tenant, error = %e, "broadcast failed");
                }
            }
            #[cfg(feature = "invoke")]
            Self::Invoke(i) => i.publish(report, event).await,
            // A build with neither feature has no way to hand over.
            #[allow(unreachable_patterns)]
            _ => {
                let _ = (report, event);
            }
        }
    }
}

/// Invokes the broadcaster function.
#[cfg(feature = "invoke")]
#[derive(Debug, Clone)]
pub struct Invoker {
    client: aws_sdk_lambda::Client,
    function: String,
    store: crate::store::Store,
    deltas: Deltas,
}

/// The variable naming the broadcaster function for the collector.
#[cfg(feature = "invoke")]
pub const FUNCTION_VAR: &str = "BROADCASTER_FUNCTION";

#[cfg(feature = "invoke")]
impl Invoker {
    /// An invoker of `function` through `client`.
    pub fn new(
        client: aws_sdk_lambda::Client,
        function: String,
        store: crate::store::Store,
    ) -> Self {
        Self {
            client,
            function,
            store,
            deltas: Deltas::new(),
        }
    }

    /// The invoker configured by [`FUNCTION_VAR`]; `None` when it is unset (no live
    /// updates). `AWS_ENDPOINT_URL_LAMBDA` points the client elsewhere (the emulator).
    pub async fn from_env(store: crate::store::Store) -> Option<Self> {
        let function = std::env::var(FUNCTION_VAR).ok().filter(|f| !f.is_empty())?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Some(Self::new(
            aws_sdk_lambda::Client::new(&config),
            function,
            store,
        ))
    }

    async fn publish(&self, report: &TenantReport, event: bool) {
        use aws_sdk_lambda::primitives::Blob;
        use aws_sdk_lambda::types::InvocationType;
        let connections = match self.store.connection_feeds(&report.tenant).await {
            Ok(c) if c.is_empty() => return,
            Ok(c) => c,
            Err(e) => {
                tracing::error!(tenant = %report.tenant, error = %e, "cannot list connections");
                return;
            }
        };
        let listening: Vec<Listening> = connections.iter().map(|(_, l)| l.clone()).collect();
        let mut ids_of: std::collections::HashMap<&Listening, Vec<String>> = Default::default();
        for (id, l) in &connections {
            ids_of.entry(l).or_default().push(id.clone());
        }
        // Each request names its connections, so the broadcaster neither lists them again
        // nor misses one whose watch changed in between.
        let requests = feed_messages(report, &self.deltas, &listening, event)
            .into_iter()
            .flat_map(|(l, messages)| {
                let ids = ids_of.get(&l).map(Vec::as_slice).unwrap_or_default();
                requests(&report.tenant, l.feed, ids, messages)
            });
        for request in requests {
            let payload = match serde_json::to_vec(&request) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(tenant = %report.tenant, error = %e, "cannot encode the event");
                    continue;
                }
            };
            let result = self
                .client
                .invoke()
                .function_name(&self.function)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload))
                .send()
                .await;
            if let Err(e) = result {
                tracing::error!(tenant = %report.tenant, function = %self.function,
                    error = %aws_sdk_lambda::error::DisplayErrorContext(&e),
                    "cannot invoke the broadcaster");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_grouped_into_invocations_that_fit() {
        let part = |n: usize| format!(r#"{{"type":"health:update","pad":"{}"}}"#, "x".repeat(n));
        let messages = vec![part(100_000), part(100_000), part(100_000), part(10)];
        let requests = requests("acme", Feed::Full, &[], messages.clone());
        assert_eq!(requests.len(), 2);
        let sizes: Vec<usize> = requests.iter().map(|r| r.messages.len()).collect();
        assert_eq!(sizes, vec![2, 2]);
        for r in &requests {
            let encoded = serde_json::to_vec(r).unwrap_or_default();
            assert!(encoded.len() <= 256 * 1024, "{}", encoded.len());
            assert_eq!(r.tenant, "acme");
        }
        let flat: Vec<String> = requests
            .iter()
            .flat_map(|r| r.messages.iter().map(|m| m.get().to_owned()))
            .collect();
        assert_eq!(flat, messages);
    }
}
