//! What every handler borrows: the store, the configuration and the clock, built once per
//! process (per Lambda cold start).

use std::sync::Arc;

use crate::config::Config;
use crate::store::Store;
use crate::time::{Clock, SystemClock};

/// Where ingestion queues the sources it changed, by tenant, for the evaluator.
pub type EvaluationQueue = tokio::sync::mpsc::Sender<(String, crate::store::live::Touched)>;

/// Shared application state. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Storage.
    pub store: Store,
    /// Configuration.
    pub config: Arc<Config>,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// What closes live WebSocket connections (of a revoked key); `None` where nothing can
    /// (their records are still forgotten).
    pub closer: Option<Arc<dyn ConnectionCloser>>,
    /// Wakes this process's notifier (after a collector cycle, an acknowledgement or a
    /// configuration change) so notifications leave at once; where no notifier runs in
    /// the process (Lambda), nobody waits on it.
    pub notifier_wake: Arc<tokio::sync::Notify>,
    /// Where ingestion queues the sources it changed for evaluation within seconds
    /// (the collector's `alerting::run_evaluator`); `None` where events are evaluated
    /// elsewhere (in AWS, by the evaluator function on the table's stream) or only by the
    /// cycle.
    pub evaluator: Option<EvaluationQueue>,
    /// What this process's collector, notifier and WebSocket gateway did, in total and
    /// per tenant.
    pub stats: Arc<crate::telemetry::StackStats>,
}

/// Closes live WebSocket connections: the local gateway's sockets, or API Gateway's
/// through its Management API. Revoking a key closes what the key opened.
#[async_trait::async_trait]
pub trait ConnectionCloser: Send + Sync + std::fmt::Debug {
    /// Closes one connection, telling the client `reason`. A connection that is already
    /// gone is not an error.
    async fn close(&self, connection_id: &str, reason: &str) -> Result<(), String>;
}

/// Why the application cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration variable is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A required variable is missing.
    #[error("missing environment variable {0}")]
    Missing(&'static str),
}

impl AppState {
    /// Closes (where a closer is configured) and forgets the tenant's connections opened with
    /// key `key_id`; returns how many there were. A failure to close one is logged: the
    /// connection is forgotten anyway, so it receives no more updates.
    pub async fn close_key_connections(
        &self,
        tenant: &str,
        key_id: &str,
    ) -> Result<usize, crate::store::StoreError> {
        let ids = self.store.key_connections(tenant, key_id).await?;
        for id in &ids {
            if let Some(closer) = &self.closer {
                if let Err(e) = closer.close(id, "the API key was revoked").await {
                    tracing::warn!(connection_id = %id, error = %e, "cannot close the connection of a revoked key");
                }
            }
            self.store.remove_connection(id).await?;
        }
        Ok(ids.len())
    }

    /// State over `store` with the real clock.
    pub fn new(store: Store, config: Config) -> Self {
        Self {
            store: store
                .with_quotas(config.quotas)
                .with_silence(config.silent_after_ms()),
            config: Arc::new(config),
            clock: Arc::new(SystemClock),
            closer: None,
            notifier_wake: Arc::new(tokio::sync::Notify::new()),
            evaluator: None,
            stats: Arc::default(),
        }
    }

    /// State for a Lambda function: configuration from the environment and the DynamoDB
    /// table named by `HEALTH_TABLE`.
    #[cfg(feature = "dynamodb")]
    pub async fn from_env() -> Result<Self, StartupError> {
        use crate::store::dynamodb::DynamoBackend;
        let config = Config::from_env()?;
        let table =
            std::env::var("HEALTH_TABLE").map_err(|_| StartupError::Missing("HEALTH_TABLE"))?;
        let client = DynamoBackend::client_from_env().await;
        let store = Store::new(Arc::new(DynamoBackend::new(client, table)));
        Ok(Self::new(store, config))
    }
}

/// Unit-test helpers shared across modules.
#[cfg(all(test, feature = "embedded"))]
pub(crate) mod testing {
    use std::sync::Arc;

    use super::AppState;
    use crate::config::Config;
    use crate::store::embedded::EmbeddedBackend;
    use crate::store::Store;

    /// State over a fresh embedded store; keep the directory as long as the state.
    pub(crate) fn state() -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("creating a temp dir: {e}"));
        let backend = EmbeddedBackend::open(&dir.path().join("t.redb"))
            .unwrap_or_else(|e| panic!("opening the embedded store: {e}"));
        (
            AppState::new(Store::new(Arc::new(backend)), Config::default()),
            dir,
        )
    }

    /// The connection ids stored for `tenant` (empty if the read fails).
    pub(crate) async fn connections(state: &AppState, tenant: &str) -> Vec<String> {
        state.store.connections(tenant).await.unwrap_or_default()
    }

    /// A new key of `tenant` with `scopes`, held by `name`.
    pub(crate) async fn key(state: &AppState, tenant: &str, scopes: &[&str], name: &str) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        state
            .store
            .create_api_key(tenant, &scopes, name, 0)
            .await
            .unwrap_or_else(|e| panic!("creating {tenant}'s key {name:?}: {e}"))
    }

    /// A fresh [`state`] with one read key of `acme`, held by `oncall`: the state, its
    /// directory and the key.
    pub(crate) async fn state_with_reader() -> (AppState, tempfile::TempDir, String) {
        let (state, dir) = state();
        let key = key(&state, "acme", &["read"], "oncall").await;
        (state, dir, key)
    }
}
