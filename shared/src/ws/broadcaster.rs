//! The broadcaster: posts messages to every WebSocket connection of a tenant through the
//! API Gateway Management API (`PostToConnection`), the same client code in Lambda and in
//! the local stack (whose gateway speaks the same API).

use std::time::Duration;

use aws_sdk_apigatewaymanagement::config::http::HttpResponse;
use aws_sdk_apigatewaymanagement::config::retry::RetryConfig;
use aws_sdk_apigatewaymanagement::config::timeout::TimeoutConfig;
use aws_sdk_apigatewaymanagement::error::SdkError;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;
use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::collector::TenantReport;
use crate::store::connections::{Feed, Listening};
use crate::store::{Store, StoreError};

/// Connections posted to at once. High enough to hide the round trips of 10,000
/// connections in about a second, low enough for one Lambda's sockets.
pub const CONCURRENCY: usize = 256;
/// Tries of one post that API Gateway throttled (429) or could not serve (5xx).
pub const MAX_ATTEMPTS: u32 = 6;
/// The first retry waits up to this long, doubling each attempt.
const BACKOFF_BASE_MS: u64 = 25;
/// A post that takes longer than this is abandoned (and retried).
const POST_TIMEOUT: Duration = Duration::from_secs(5);

/// The variable naming the Management API endpoint in Lambda:
/// `https://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
pub const ENDPOINT_VAR: &str = "WEBSOCKET_MANAGEMENT_ENDPOINT";

/// What one broadcast did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BroadcastReport {
    /// Connections of the tenant.
    pub connections: usize,
    /// Connections that received every message.
    pub delivered: usize,
    /// Connections the gateway no longer had (410), now deleted.
    pub gone: usize,
    /// Connections that did not receive every message for another reason (logged).
    pub failed: usize,
    /// Posts retried after a 429 or 5xx.
    pub retries: usize,
}

enum Outcome {
    Delivered,
    Gone,
    Failed,
}

/// Why the broadcaster cannot start.
#[derive(Debug, thiserror::Error)]
#[error("missing environment variable {ENDPOINT_VAR} (the WebSocket API's management endpoint)")]
pub struct MissingEndpoint;

/// Posts messages to a tenant's connections.
#[derive(Debug, Clone)]
pub struct Broadcaster {
    client: Client,
    store: Store,
    concurrency: usize,
    deltas: super::delta::Deltas,
}

impl Broadcaster {
    /// A broadcaster over a Management API client.
    pub fn new(client: Client, store: Store) -> Self {
        Self {
            client,
            store,
            concurrency: CONCURRENCY,
            deltas: super::delta::Deltas::new(),
        }
    }

    /// Posts to this many connections at once instead of [`CONCURRENCY`].
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// A client for a Management API endpoint reached without AWS credentials (the local
    /// stack's gateway). The SDK's own retries are off: [`Broadcaster`] retries itself, so
    /// a 410 is never retried and a 429 backs off with jitter.
    pub fn client_for_endpoint(endpoint: &str) -> Client {
        let config = aws_sdk_apigatewaymanagement::Config::builder()
            .behavior_version(aws_sdk_apigatewaymanagement::config::BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(aws_sdk_apigatewaymanagement::config::Region::new(
                "us-east-1",
            ))
            .credentials_provider(aws_sdk_apigatewaymanagement::config::Credentials::new(
                "local", "local", None, None, "static",
            ));
        Client::from_conf(own_retries(config).build())
    }

    /// The client in Lambda: credentials and region from the environment, the endpoint
    /// from [`ENDPOINT_VAR`].
    pub async fn client_from_env() -> Result<Client, MissingEndpoint> {
        let endpoint = std::env::var(ENDPOINT_VAR).map_err(|_| MissingEndpoint)?;
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let config =
            aws_sdk_apigatewaymanagement::config::Builder::from(&shared).endpoint_url(endpoint);
        Ok(Client::from_conf(own_retries(config).build()))
    }

    /// Sends a cycle's update of one tenant to its connections, to each in the form its
    /// feed asks for (`health:update`, or `health:delta`).
    pub async fn broadcast_report(
        &self,
        report: &TenantReport,
    ) -> Result<BroadcastReport, StoreError> {
        self.publish(report, false).await
    }

    /// Sends the update of an event that changed the tenant's alerts: `health:update` to
    /// full feeds, `health:alerts` to delta feeds.
    pub async fn broadcast_event_report(
        &self,
        report: &TenantReport,
    ) -> Result<BroadcastReport, StoreError> {
        self.publish(report, true).await
    }

    async fn publish(
        &self,
        report: &TenantReport,
        event: bool,
    ) -> Result<BroadcastReport, StoreError> {
        let connections = self.store.connection_feeds(&report.tenant).await?;
        let listening: Vec<Listening> = connections.iter().map(|(_, l)| l.clone()).collect();
        let messages = super::delta::feed_messages(report, &self.deltas, &listening, event);
        let groups: Vec<&[String]> = messages.iter().map(|(_, m)| m.as_slice()).collect();
        let group_of: std::collections::HashMap<&Listening, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, (l, _))| (l, i))
            .collect();
        let targets = connections
            .iter()
            .filter_map(|(id, l)| Some((id.clone(), *group_of.get(l)?)))
            .collect();
        self.send(&report.tenant, targets, &groups).await
    }

    /// Sends `messages`, in order, to the connections `ids` of `tenant` (listed by the
    /// caller).
    pub async fn broadcast_to<M: AsRef<str> + Sync>(
        &self,
        tenant: &str,
        ids: Vec<String>,
        messages: &[M],
    ) -> Result<BroadcastReport, StoreError> {
        let targets = ids.into_iter().map(|id| (id, 0)).collect();
        self.send(tenant, targets, &[messages]).await
    }

    /// Sends `messages`, in order, to every connection of `tenant` that listens so.
    pub async fn broadcast_feed<M: AsRef<str> + Sync>(
        &self,
        tenant: &str,
        listening: &Listening,
        messages: &[M],
    ) -> Result<BroadcastReport, StoreError> {
        let connections = self.store.connection_feeds(tenant).await?;
        let targets = connections
            .into_iter()
            .filter(|(_, l)| l == listening)
            .map(|(id, _)| (id, 0))
            .collect();
        self.send(tenant, targets, &[messages]).await
    }

    /// Sends `messages`, in order, to every connection of `tenant` that receives whole
    /// updates (the default feed).
    pub async fn broadcast<M: AsRef<str> + Sync>(
        &self,
        tenant: &str,
        messages: &[M],
    ) -> Result<BroadcastReport, StoreError> {
        self.broadcast_feed(tenant, &Feed::Full.into(), messages)
            .await
    }

    /// Sends each connection (an id and which of `groups` it receives) its messages,
    /// [`CONCURRENCY`] connections at a time. A connection the gateway answers 410 for is
    /// deleted at once and not retried; a 429 or 5xx is retried with jittered exponential
    /// backoff.
    async fn send<M: AsRef<str> + Sync>(
        &self,
        tenant: &str,
        targets: Vec<(String, usize)>,
        groups: &[&[M]],
    ) -> Result<BroadcastReport, StoreError> {
        let mut report = BroadcastReport {
            connections: targets.len(),
            ..BroadcastReport::default()
        };
        let targets: Vec<_> = targets
            .into_iter()
            .filter(|(_, g)| groups.get(*g).is_some_and(|m| !m.is_empty()))
            .collect();
        if targets.is_empty() {
            return Ok(report);
        }
        let results: Vec<(Outcome, usize)> = stream::iter(targets)
            .map(|(id, g)| async move { self.send_all(tenant, &id, groups[g]).await })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        for (outcome, retries) in results {
            report.retries += retries;
            match outcome {
                Outcome::Delivered => report.delivered += 1,
                Outcome::Gone => report.gone += 1,
                Outcome::Failed => report.failed += 1,
            }
        }
        tracing::info!(
            tenant,
            connections = report.connections,
            delivered = report.delivered,
            gone = report.gone,
            failed = report.failed,
            retries = report.retries,
            "broadcast"
        );
        Ok(report)
    }

    /// Posts every message to one connection; returns the outcome and the retries made.
    async fn send_all<M: AsRef<str>>(
        &self,
        tenant: &str,
        id: &str,
        messages: &[M],
    ) -> (Outcome, usize) {
        let mut retries = 0;
        for message in messages {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let result = self
                    .client
                    .post_to_connection()
                    .connection_id(id)
                    .data(Blob::new(message.as_ref().as_bytes()))
                    .send()
                    .await;
                let error = match result {
                    Ok(_) => break,
                    Err(e) => e,
                };
                if is_gone(&error) {
                    // The dashboard went away without a $disconnect reaching us.
                    if let Err(e) = self.store.remove_connection(id).await {
                        tracing::warn!(tenant, connection_id = id, error = %e,
                            "cannot delete a gone connection; the next broadcast retries");
                    }
                    return (Outcome::Gone, retries);
                }
                if !is_transient(&error) || attempt >= MAX_ATTEMPTS {
                    tracing::warn!(tenant, connection_id = id, attempt,
                        error = %aws_sdk_apigatewaymanagement::error::DisplayErrorContext(&error),
                        "post to connection failed");
                    return (Outcome::Failed, retries);
                }
                retries += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
        }
        (Outcome::Delivered, retries)
    }
}

/// The SDK's retries off (the broadcaster decides what to retry) and a bound on each post.
fn own_retries(
    config: aws_sdk_apigatewaymanagement::config::Builder,
) -> aws_sdk_apigatewaymanagement::config::Builder {
    config.retry_config(RetryConfig::disabled()).timeout_config(
        TimeoutConfig::builder()
            .operation_attempt_timeout(POST_TIMEOUT)
            .build(),
    )
}

/// Closes API Gateway WebSocket connections through the Management API's
/// `DeleteConnection` (what revoking a key does in AWS).
#[derive(Debug, Clone)]
pub struct ManagementCloser {
    client: Client,
}

impl ManagementCloser {
    /// A closer over a Management API client (see [`Broadcaster::client_from_env`]).
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait::async_trait]
impl crate::state::ConnectionCloser for ManagementCloser {
    async fn close(&self, connection_id: &str, _reason: &str) -> Result<(), String> {
        use aws_sdk_apigatewaymanagement::operation::delete_connection::DeleteConnectionError;
        match self
            .client
            .delete_connection()
            .connection_id(connection_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteConnectionError::GoneException(_)) =>
            {
                Ok(())
            }
            Err(e) => Err(aws_sdk_apigatewaymanagement::error::DisplayErrorContext(e).to_string()),
        }
    }
}

fn is_gone(error: &SdkError<PostToConnectionError, HttpResponse>) -> bool {
    matches!(error, SdkError::ServiceError(e) if matches!(e.err(), PostToConnectionError::GoneException(_)))
}

/// 429 (throttled), 5xx, timeouts and connection failures are worth another try; other
/// answers (403, 413, 400) are not.
fn is_transient(error: &SdkError<PostToConnectionError, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(e) => {
            matches!(e.err(), PostToConnectionError::LimitExceededException(_))
                || e.raw().status().as_u16() == 429
                || e.raw().status().is_server_error()
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => false,
    }
}

/// A random wait between half and all of `BACKOFF_BASE_MS * 2^(attempt-1)` (at most a
/// second), so many throttled posts do not come back at the same moment.
fn backoff(attempt: u32) -> Duration {
    use rand::Rng;
    let cap = (BACKOFF_BASE_MS << attempt.saturating_sub(1).min(6)).min(1_000);
    Duration::from_millis(rand::rng().random_range(cap / 2..=cap))
}
