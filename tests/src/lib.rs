//! Helpers for the workspace's end-to-end tests and benchmarks: stores on both backends,
//! and the local stack on a free port.

// This library serves only tests and benchmarks: a helper stops at the first error, and
// `expect` says what it was doing (clippy's `allow-expect-in-tests` covers `#[test]`
// functions and `#[cfg(test)]` modules, not a library the tests link).
#![allow(clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use shared::config::Config;
use shared::store::dynamodb::DynamoBackend;
use shared::store::embedded::EmbeddedBackend;
use shared::store::Store;

/// The variable through which the test command passes the DynamoDB-compatible server.
pub const DYNAMODB_ENDPOINT_VAR: &str = "HEALTH_TEST_DYNAMODB_ENDPOINT";

/// A store on a fresh embedded database; keep the directory alive as long as the store.
pub fn embedded_store() -> (Store, tempfile::TempDir) {
    let dir = temp_dir();
    let backend =
        EmbeddedBackend::open(&dir.path().join("health.redb")).expect("opening the embedded store");
    (Store::new(Arc::new(backend)), dir)
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("creating a temp dir")
}

/// Loopback (127.0.0.1), where the tests' servers listen.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A free port on loopback, for a server to bind.
pub const ANY_PORT: SocketAddr = SocketAddr::new(LOOPBACK, 0);

/// The endpoint of the DynamoDB-compatible server the test command started. Missing is a
/// failure, not a skip: a run without it would not test the DynamoDB backend at all.
pub fn dynamodb_endpoint() -> String {
    std::env::var(DYNAMODB_ENDPOINT_VAR).unwrap_or_else(|_| {
        panic!(
            "{DYNAMODB_ENDPOINT_VAR} is not set: run the tests with ./scripts/test, which \
             installs and starts a DynamoDB-compatible server (moto) on 127.0.0.1"
        )
    })
}

/// A DynamoDB backend on a new, uniquely named table of the test server.
pub async fn dynamo_backend() -> DynamoBackend {
    let client = DynamoBackend::client_for_endpoint(&dynamodb_endpoint(), "us-east-1");
    let table = format!("health-test-{:016x}", rand::random::<u64>());
    let backend = DynamoBackend::new(client, table);
    backend
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("cannot create the test table: {e:?}"));
    backend
}

/// A store on a new table of the DynamoDB-compatible server.
pub async fn dynamo_store() -> Store {
    Store::new(Arc::new(dynamo_backend().await))
}

/// The local stack on a free port over a fresh data directory, without the collector
/// (so its cycles cannot change what a test reads; collector tests enable it).
pub async fn spawn_app() -> (local_stack::Running, tempfile::TempDir) {
    spawn_app_with(Config {
        polling_enabled: false,
        ..Config::default()
    })
    .await
}

/// [`spawn_app`] with a given configuration.
pub async fn spawn_app_with(config: Config) -> (local_stack::Running, tempfile::TempDir) {
    spawn_app_limited(config, local_stack::Limits::default()).await
}

/// [`spawn_app_with`] with given server limits.
pub async fn spawn_app_limited(
    config: Config,
    limits: local_stack::Limits,
) -> (local_stack::Running, tempfile::TempDir) {
    let dir = temp_dir();
    let running = start(local_stack::Options {
        config,
        limits,
        ..stack_options(dir.path())
    })
    .await;
    (running, dir)
}

/// The local stack's options in tests: a free loopback port, `data_dir`, the collector off,
/// the system clock, no sidecar, no demo fleet, the default limits. Change what a test
/// needs with struct update syntax.
pub fn stack_options(data_dir: &std::path::Path) -> local_stack::Options {
    local_stack::Options {
        addr: ANY_PORT,
        data_dir: data_dir.to_owned(),
        config: Config {
            polling_enabled: false,
            ..Config::default()
        },
        clock: None,
        sidecar: None,
        demo: false,
        limits: local_stack::Limits::default(),
    }
}

/// Starts the local stack with `options`.
pub async fn start(options: local_stack::Options) -> local_stack::Running {
    local_stack::start(options)
        .await
        .expect("starting the local stack")
}

/// A listener on a free loopback port, and its address.
pub async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind(ANY_PORT)
        .await
        .expect("binding a loopback listener");
    let addr = listener
        .local_addr()
        .expect("reading the listener's address");
    (listener, addr)
}

/// Serves `app` on a free loopback port until the test ends; answers its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// A new key of `tenant` with `scopes`, held by `name`, created straight in `store`.
pub async fn new_key(
    store: &Store,
    tenant: &str,
    scopes: &[impl AsRef<str>],
    name: &str,
) -> String {
    let scopes: Vec<String> = scopes.iter().map(|s| s.as_ref().to_owned()).collect();
    store
        .create_api_key(tenant, &scopes, name, 0)
        .await
        .unwrap_or_else(|e| panic!("creating {tenant}'s key {name:?}: {e}"))
}

/// Records a test writes straight to a store, with the values most tests want: change
/// what a test needs with struct update syntax.
pub mod seed {
    use shared::domain::alerts::{AlertRecord, Severity, SourceType};
    use shared::domain::events::{parse_batch, Event};
    use shared::domain::notify::{ChannelRecord, Destination, Matcher, RuleRecord, SilenceRecord};
    use shared::notify::token::{AckClaim, ACK_LINK_TTL_MS};
    use shared::store::ingest::IngestOutcome;
    use shared::store::Store;
    use shared::time::Millis;

    /// `events` (a JSON array of event objects) parsed as one batch received at `now`;
    /// panics, naming the fields, if the batch is invalid.
    pub fn batch(events: serde_json::Value, now: Millis) -> Vec<Event> {
        let body = serde_json::json!({ "events": events }).to_string();
        parse_batch(body.as_bytes(), now).unwrap_or_else(|e| panic!("invalid test batch: {e:?}"))
    }

    /// Ingests `events` (a JSON array of event objects) into `tenant` at `now`, as the
    /// ingestion endpoint would.
    pub async fn ingest(
        store: &Store,
        tenant: &str,
        events: serde_json::Value,
        now: Millis,
    ) -> IngestOutcome {
        store
            .ingest(tenant, &batch(events, now), now)
            .await
            .unwrap_or_else(|e| panic!("ingesting a batch into {tenant}: {e}"))
    }

    /// One event of each kind for agent `a1`, integration `slack` and host `h1`, at the
    /// time of receipt: an execution started and completed, a failed one, a call, a host
    /// sample over the CPU threshold and a gauge.
    pub fn one_event_of_each_kind() -> serde_json::Value {
        serde_json::json!([
            {"event_id": "1", "type": "execution.started", "agent_id": "a1", "execution_id": "x", "operation": "op"},
            {"event_id": "2", "type": "execution.finished", "agent_id": "a1", "execution_id": "x", "outcome": "completed", "confidence": 0.9},
            {"event_id": "3", "type": "integration.call", "integration_id": "slack", "latency_ms": 12.5, "ok": true},
            {"event_id": "4", "type": "host.sample", "host_id": "h1", "cpu_usage": 95, "memory_usage": 40},
            {"event_id": "5", "type": "gauge", "name": "queue_depth", "value": 3},
            {"event_id": "6", "type": "execution.finished", "agent_id": "a1", "execution_id": "y", "outcome": "failed", "duration_ms": 40, "error": "boom"},
        ])
    }

    /// An open, unacknowledged critical alert `id` on host `h1`'s CPU, raised at `raised_at`.
    pub fn alert(id: &str, raised_at: Millis) -> AlertRecord {
        let source = (SourceType::System, "h1");
        let message = "High CPU usage: 95%";
        AlertRecord::open(
            id,
            Severity::Critical,
            message,
            source,
            "cpu_high",
            raised_at,
        )
    }

    /// Saves `alert` of `tenant` as a new alert.
    pub async fn save_alert(store: &Store, tenant: &str, alert: &AlertRecord) {
        store
            .save_alert(tenant, alert, None)
            .await
            .unwrap_or_else(|e| panic!("saving alert {}: {e}", alert.alert_id));
    }

    /// Puts channel `id` of `tenant`, enabled, named `name`, to `destination`; answers the
    /// stored channel.
    pub async fn channel(
        store: &Store,
        tenant: &str,
        id: &str,
        name: &str,
        destination: Destination,
    ) -> ChannelRecord {
        store
            .put_channel(tenant, id, |_| ChannelRecord {
                channel_id: id.to_owned(),
                name: name.to_owned(),
                enabled: true,
                destination: destination.clone(),
                created_at: 0,
                updated_at: 0,
            })
            .await
            .unwrap_or_else(|e| panic!("putting channel {id}: {e}"))
    }

    /// A rule `id` routing every alert to `channels` at once (no group wait), with 5-minute
    /// group intervals, hourly reminders and resolutions sent, and no weekly report.
    pub fn rule(id: &str, channels: &[&str]) -> RuleRecord {
        RuleRecord {
            rule_id: id.into(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            matcher: Matcher::default(),
            group_wait_s: 0,
            group_interval_s: 300,
            repeat_interval_s: 3600,
            send_resolved: true,
            weekly_report: false,
            updated_at: 0,
        }
    }

    /// Puts `rule` of `tenant`.
    pub async fn put_rule(store: &Store, tenant: &str, rule: &RuleRecord) {
        store
            .put_rule(tenant, rule)
            .await
            .unwrap_or_else(|e| panic!("putting rule {}: {e}", rule.rule_id));
    }

    /// A one-off silence `id` of every alert from `starts_at` for `minutes`, "deploy" by
    /// "ops".
    pub fn silence(id: &str, starts_at: Millis, minutes: i64) -> SilenceRecord {
        SilenceRecord {
            silence_id: id.into(),
            matcher: Matcher::default(),
            starts_at: Some(starts_at),
            ends_at: Some(starts_at + minutes * 60_000),
            schedule: None,
            comment: "deploy".into(),
            created_by: "ops".into(),
            created_at: starts_at,
        }
    }

    /// The key that signs `store`'s acknowledge links (made on first use).
    pub async fn ack_secret(store: &Store) -> Vec<u8> {
        store
            .ack_secret()
            .await
            .expect("reading the acknowledge-link secret")
    }

    /// The claim of an acknowledge link to `alert_id` of `tenant` from channel `channel_id`,
    /// sent at `sent_at` (so valid for the links' lifetime from then), of the older form
    /// that does not say what it was sent for.
    pub fn ack_claim(tenant: &str, alert_id: &str, channel_id: &str, sent_at: Millis) -> AckClaim {
        AckClaim {
            tenant: tenant.into(),
            alert_id: alert_id.into(),
            channel_id: channel_id.into(),
            expires_at: sent_at + ACK_LINK_TTL_MS,
            sent_for: None,
        }
    }

    /// Puts `silence` of `tenant`.
    pub async fn put_silence(store: &Store, tenant: &str, silence: &SilenceRecord) {
        store
            .put_silence(tenant, silence)
            .await
            .unwrap_or_else(|e| panic!("putting silence {}: {e}", silence.silence_id));
    }
}

/// A key of `tenant` with every scope, held by `name`, created straight in `running`'s store.
pub async fn tenant_key(running: &local_stack::Running, tenant: &str, name: &str) -> String {
    new_key(
        &running.state.store,
        tenant,
        &local_stack::all_scopes(),
        name,
    )
    .await
}

/// A query-protocol call to the DynamoDB-compatible test server (moto), as the AWS CLI
/// would make it: moto routes it by the service named in the credential scope and does not
/// check signatures. Answers the XML; panics unless it succeeded.
pub async fn aws_query(service: &str, params: &[(&str, &str)]) -> String {
    let response = reqwest::Client::new()
        .post(dynamodb_endpoint())
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=local/20261130/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .form(params)
        .answer()
        .await;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "{service} {params:?}: {status} {text}");
    text
}

/// Sending a test's HTTP request: a failure to get an answer panics naming the method and
/// the URL.
pub trait RequestExt {
    /// Sends the request and answers the response, whatever its status.
    fn answer(self) -> impl std::future::Future<Output = reqwest::Response> + Send;
    /// [`RequestExt::answer`]'s body as JSON (`Null` if it is not JSON).
    fn answer_json(self) -> impl std::future::Future<Output = serde_json::Value> + Send;
    /// [`RequestExt::answer`]'s body as text (empty if it cannot be read).
    fn answer_text(self) -> impl std::future::Future<Output = String> + Send;
    /// [`RequestExt::answer`]'s status and JSON body, for endpoints that answer JSON
    /// whatever the status, errors included: panics with the body if it is not JSON.
    fn json_with_status(self) -> impl std::future::Future<Output = (StatusCode, Value)> + Send;
}

impl RequestExt for reqwest::RequestBuilder {
    async fn answer(self) -> reqwest::Response {
        let (client, request) = self.build_split();
        let request = request.expect("building the request");
        let what = format!("{} {}", request.method(), request.url());
        client
            .execute(request)
            .await
            .unwrap_or_else(|e| panic!("sending {what}: {e}"))
    }

    async fn answer_json(self) -> serde_json::Value {
        self.answer().await.json().await.unwrap_or_default()
    }

    async fn answer_text(self) -> String {
        self.answer().await.text().await.unwrap_or_default()
    }

    async fn json_with_status(self) -> (StatusCode, Value) {
        let res = self.answer().await;
        let (status, url) = (res.status(), res.url().clone());
        let text = res.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{url}: not JSON ({status}): {text}"));
        (status, value)
    }
}

/// A response's `Content-Type` (empty if none).
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Instantiates test functions of signature `async fn(Store)` once per backend: in a
/// module `embedded` (a fresh redb file) and a module `dynamodb` (a fresh table on the test
/// server).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    let (store, _dir) = $crate::embedded_store();
                    super::$name(store).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::dynamo_store().await).await;
                }
            )*
        }
    };
}

/// Instantiates test functions of signature `async fn(Backend)` once per backend, as
/// [`on_both_stores`] does: in a module `embedded` and a module `dynamodb`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::Embedded).await;
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::Backend::DynamoDb).await;
                }
            )*
        }
    };
}

/// Which store an end-to-end test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded redb store (through the local stack's own start-up).
    Embedded,
    /// DynamoDB, on the test server.
    DynamoDb,
}

/// The HTTP API on a free port over a chosen store, with its clock fixed at `clock`'s time
/// and a key of tenant `local` (holder `ops`) with every scope.
pub async fn spawn_api(
    backend: Backend,
    clock: Arc<shared::time::ManualClock>,
) -> (local_stack::Running, Option<tempfile::TempDir>) {
    let (store, dir) = match backend {
        Backend::Embedded => {
            let (store, dir) = embedded_store();
            (store, Some(dir))
        }
        Backend::DynamoDb => (dynamo_store().await, None),
    };
    let mut state = shared::AppState::new(store, Config::default());
    state.clock = clock;
    let key = new_key(&state.store, "local", &local_stack::all_scopes(), "ops").await;
    let running = local_stack::serve(state, ANY_PORT, key)
        .await
        .expect("serving the HTTP API");
    (running, dir)
}

/// A client of a running stack's API with one key: a JSON body in, the status and the
/// JSON answer (`Null` if not JSON) out.
pub struct Api {
    /// The HTTP client.
    pub client: reqwest::Client,
    /// The stack's base URL.
    pub base: String,
    /// The bearer key.
    pub key: String,
}

impl Api {
    /// A client of `running` with its all-scopes key.
    pub fn of(running: &local_stack::Running) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: running.url(),
            key: running.api_key.clone(),
        }
    }

    /// The same client with another key.
    pub fn with_key(&self, key: &str) -> Self {
        Self {
            client: self.client.clone(),
            base: self.base.clone(),
            key: key.to_owned(),
        }
    }

    /// A request to `path` with the key, for a test to add headers or a body to and send
    /// with [`RequestExt::answer`].
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// [`Api::request`] with `body`, if any, as JSON.
    fn request_with(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::RequestBuilder {
        let request = self.request(method, path);
        match body {
            Some(b) => request.json(&b),
            None => request,
        }
    }

    /// Sends a request; panics only if the server cannot be reached.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self.call_text(method, path, body).await;
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// [`Api::call`], answering the body as text.
    pub async fn call_text(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String) {
        let res = self.request_with(method, path, body).answer().await;
        let status = res.status();
        (status, res.text().await.unwrap_or_default())
    }

    /// GETs `path`; the answer must be JSON, errors included.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.strict(Method::GET, path, None).await
    }

    /// POSTs `body` to `path`; the answer must be JSON, errors included.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.strict(Method::POST, path, Some(body)).await
    }

    /// PUTs `body` to `path`; the answer must be JSON, errors included.
    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.strict(Method::PUT, path, Some(body)).await
    }

    /// DELETEs `path`; the answer must be JSON, errors included.
    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.strict(Method::DELETE, path, None).await
    }

    /// Sends a request whose answer must be JSON ([`RequestExt::json_with_status`]).
    async fn strict(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.request_with(method, path, body)
            .json_with_status()
            .await
    }
}

/// RFC 3339 for "now minus `secs` seconds".
pub fn ago(secs: i64) -> String {
    shared::time::format_rfc3339(chrono::Utc::now().timestamp_millis() - secs * 1000)
}

/// A local HTTP server for probes: answers every request with the status held in
/// `status` and counts requests in `hits`.
#[derive(Debug, Clone)]
pub struct ProbeTarget {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The status it answers with; change it to make the target fail or recover.
    pub status: Arc<std::sync::atomic::AtomicU16>,
    /// Requests received.
    pub hits: Arc<std::sync::atomic::AtomicUsize>,
}

impl ProbeTarget {
    /// Starts one on a free loopback port, answering 200.
    pub async fn start() -> Self {
        use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
        let status = Arc::new(AtomicU16::new(200));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (Arc::clone(&status), Arc::clone(&hits));
        let app = axum::Router::new().fallback(move || {
            let (s, h) = (Arc::clone(&s), Arc::clone(&h));
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                http::StatusCode::from_u16(s.load(Ordering::SeqCst))
                    .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
            }
        });
        let addr = serve(app).await;
        Self { addr, status, hits }
    }

    /// The URL to register as the probe.
    pub fn url(&self) -> String {
        format!("http://{}/health", self.addr)
    }

    /// Requests received so far.
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the status it answers with.
    pub fn answer(&self, status: u16) {
        self.status
            .store(status, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A real WebSocket client for the live-update tests and benchmark.
pub mod ws {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use futures::StreamExt;
    use serde_json::Value;
    use tokio_tungstenite::tungstenite::Message;

    /// An open client connection.
    pub type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// The local stack's WebSocket URL for a key.
    pub fn url(addr: std::net::SocketAddr, key: &str) -> String {
        format!("ws://{addr}/ws?token={key}")
    }

    /// Connects; panics with the gateway's answer if it refuses.
    pub async fn connect(url: &str) -> Socket {
        match tokio_tungstenite::connect_async(url).await {
            Ok((socket, _)) => socket,
            Err(e) => panic!("cannot connect to {url}: {e}"),
        }
    }

    /// The close frame the server sends next; panics if anything else comes first, or
    /// nothing within `within`.
    pub async fn close_frame(
        socket: &mut Socket,
        within: Duration,
    ) -> tokio_tungstenite::tungstenite::protocol::CloseFrame {
        let next = tokio::time::timeout(within, socket.next())
            .await
            .unwrap_or_else(|_| panic!("no close frame within {within:?}"));
        match next {
            Some(Ok(Message::Close(Some(frame)))) => frame,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// The status and body a refused handshake got; panics if it was accepted.
    pub async fn refusal(url: &str) -> (u16, Value) {
        match tokio_tungstenite::connect_async(url).await {
            Ok(_) => panic!("{url} was accepted"),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                (
                    response.status().as_u16(),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                )
            }
            Err(e) => panic!("{url}: not an HTTP refusal: {e}"),
        }
    }

    /// The next message of type `kind` (others are skipped), as JSON; panics after
    /// `timeout`. Every message must be at most 128 KB.
    pub async fn next_of(socket: &mut Socket, kind: &str, timeout: Duration) -> Value {
        let read = async {
            loop {
                let text = match socket.next().await {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(frame))) => panic!("closed by the server: {frame:?}"),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => panic!("socket failed: {e}"),
                    None => panic!("socket closed"),
                };
                assert!(text.len() <= 128_000, "a message of {} bytes", text.len());
                let message: Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
                if message["type"] == kind {
                    return message;
                }
            }
        };
        tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| panic!("no {kind} message within {timeout:?}"))
    }

    /// The next whole `health:update` (parts reassembled) and how many messages carried
    /// it; panics after `timeout`. Every message must be at most 128 KB.
    pub async fn next_update(socket: &mut Socket, timeout: Duration) -> (Value, usize) {
        tokio::time::timeout(timeout, read_update(socket))
            .await
            .unwrap_or_else(|_| panic!("no health:update within {timeout:?}"))
    }

    async fn read_update(socket: &mut Socket) -> (Value, usize) {
        // Parts by timestamp, then part number.
        let mut pending: BTreeMap<String, BTreeMap<u64, Value>> = BTreeMap::new();
        loop {
            let message = match socket.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => panic!("socket failed: {e}"),
                None => panic!("socket closed"),
            };
            let text = match message {
                Message::Text(t) => t,
                Message::Close(frame) => panic!("closed by the server: {frame:?}"),
                _ => continue,
            };
            assert!(text.len() <= 128_000, "a message of {} bytes", text.len());
            let message: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
            assert_eq!(message["type"], "health:update", "{message}");
            let Some(parts) = message["parts"].as_u64() else {
                return (message["data"].clone(), 1);
            };
            let stamp = message["data"]["timestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let part = message["part"].as_u64().unwrap_or(0);
            let got = pending.entry(stamp.clone()).or_default();
            got.insert(part, message["data"].clone());
            if got.len() as u64 == parts {
                let got = pending.remove(&stamp).unwrap_or_default();
                return (reassemble(got.into_values()), parts as usize);
            }
        }
    }

    /// Concatenates the arrays of an update's parts (in part order).
    fn reassemble(parts: impl Iterator<Item = Value>) -> Value {
        let mut whole: Option<Value> = None;
        for data in parts {
            let Some(w) = whole.as_mut() else {
                whole = Some(data);
                continue;
            };
            for (outer, inner) in [
                ("agents", None),
                ("integrations", None),
                ("alerts", None),
                ("system", Some("hosts")),
            ] {
                let (dst, src) = match inner {
                    None => (&mut w[outer], &data[outer]),
                    Some(i) => (&mut w[outer][i], &data[outer][i]),
                };
                if let (Some(d), Some(s)) = (dst.as_array_mut(), src.as_array()) {
                    d.extend(s.iter().cloned());
                }
            }
        }
        whole.unwrap_or(Value::Null)
    }
}

/// Posts `events` (JSON event objects) to a running stack's ingestion endpoint with `key`;
/// panics unless they are accepted.
pub async fn ingest_events(app: &local_stack::Running, key: &str, events: serde_json::Value) {
    let res = reqwest::Client::new()
        .post(format!("{}/api/health/events", app.url()))
        .bearer_auth(key)
        .json(&serde_json::json!({ "events": events }))
        .answer()
        .await;
    let status = res.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        res.text().await.unwrap_or_default()
    );
}

/// GETs `path` of a running stack with `key`; panics unless the answer is a success.
pub async fn get_ok(app: &local_stack::Running, key: &str, path: &str) -> reqwest::Response {
    let res = reqwest::Client::new()
        .get(format!("{}{path}", app.url()))
        .bearer_auth(key)
        .answer()
        .await;
    assert!(res.status().is_success(), "{path}: {}", res.status());
    res
}

/// GETs `path` of a running stack with `key` and returns the JSON; panics unless 2xx.
pub async fn get_json(app: &local_stack::Running, key: &str, path: &str) -> serde_json::Value {
    get_ok(app, key, path)
        .await
        .json()
        .await
        .unwrap_or_else(|e| panic!("reading {path}'s answer as JSON: {e}"))
}

/// Runs one collector cycle at `now` and checks that no tenant's part of it failed.
pub async fn cycle(
    collector: &shared::collector::Collector,
    now: shared::time::Millis,
) -> shared::collector::CycleReport {
    let report = collector
        .run_cycle(now)
        .await
        .unwrap_or_else(|e| panic!("running a collector cycle at {now}: {e}"));
    assert!(
        report.failed.is_empty(),
        "cycle failed: {:?}",
        report.failed
    );
    report
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `limit`.
pub async fn eventually(
    what: &str,
    limit: std::time::Duration,
    mut check: impl AsyncFnMut() -> bool,
) {
    eventually_some(what, limit, async || check().await.then_some(())).await;
}

/// Polls `find` every 50 ms until it finds something, and answers that; panics naming
/// `what` after `limit`.
pub async fn eventually_some<T>(
    what: &str,
    limit: std::time::Duration,
    mut find: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(found) = find().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The `field` of each object in the JSON array `list`, where it is a string (none if
/// `list` is not an array).
pub fn strings<'a>(list: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x[field].as_str())
        .collect()
}

/// One request a [`Sink`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived, epoch ms.
    pub at: i64,
    /// Its `X-Health-Signature` header, if any (empty otherwise).
    pub signature: String,
    /// Its body as JSON (`Null` if it was not JSON).
    pub body: serde_json::Value,
}

/// A local HTTP server that answers 200 to everything and keeps each request: a webhook
/// receiver or an SNS HTTP subscriber for the notification tests and benchmarks.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    received: Arc<std::sync::Mutex<Vec<Received>>>,
}

impl Sink {
    /// Starts one on a free loopback port.
    pub async fn start() -> Self {
        let received: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
        let keep = Arc::clone(&received);
        let app = axum::Router::new().fallback(move |headers: http::HeaderMap, body: String| {
            let keep = Arc::clone(&keep);
            async move {
                let signature = headers
                    .get("x-health-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                keep.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Received {
                        at: chrono::Utc::now().timestamp_millis(),
                        signature,
                        body: serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
                    });
                http::StatusCode::OK
            }
        });
        let addr = serve(app).await;
        Self { addr, received }
    }

    /// The URL of `path` on it.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What it received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A template as `sam deploy` hands it to CloudFormation, and what is wrong with its
/// deploy graph: the output of `tests/support/deploy_graph.py`, which transforms it with
/// aws-sam-translator (the library `sam deploy` runs) and checks it.
#[derive(Debug)]
pub struct DeployGraph {
    /// The translator's version.
    pub translator: String,
    /// One sentence per problem: dependency cycles, dangling references, unknown
    /// attributes, functions API Gateway may not invoke. Empty when sound.
    pub findings: Vec<String>,
    /// The transformed template (empty when the translator refused the template).
    pub template: serde_json::Value,
}

/// Transforms and checks `template` (a path relative to the repository root) with
/// `tests/support/deploy_graph.py`, run by the `python3` first on PATH (the test command
/// puts its `.tools/venv` there, which holds the pinned aws-sam-translator).
pub fn deploy_graph(template: &str) -> DeployGraph {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let output = std::process::Command::new("python3")
        .arg(format!("{root}/tests/support/deploy_graph.py"))
        .arg(format!("{root}/{template}"))
        .output()
        .unwrap_or_else(|e| panic!("running python3 tests/support/deploy_graph.py: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "transforming {template} with aws-sam-translator failed (is the test command's \
         .tools/venv, with scripts/requirements-test.txt installed, first on PATH?): {stderr}"
    );
    let mut answer: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("reading deploy_graph.py's answer for {template}: {e}"));
    let findings = answer["findings"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    DeployGraph {
        translator: answer["translator"].as_str().unwrap_or_default().to_owned(),
        findings,
        template: answer["template"].take(),
    }
}

/// The `HEALTH_FUNCTION` each Lambda function of a transformed template runs, by logical
/// name (functions without one are left out).
pub fn deployed_handlers(template: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = template["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::Lambda::Function")
        .filter_map(|(name, r)| {
            r["Properties"]["Environment"]["Variables"]["HEALTH_FUNCTION"]
                .as_str()
                .map(|h| (name.clone(), h.to_owned()))
        })
        .collect();
    out.sort();
    out
}

/// The smallest OTLP requests that decode into the most objects, gzip-compressed, for the
/// receivers' bounds (tests) and their benchmark.
pub mod otlp_bombs {
    use std::io::Write as _;

    /// `bytes` compressed with gzip.
    pub fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(bytes).expect("compressing a bomb");
        gz.finish().expect("compressing a bomb")
    }

    /// A length-delimited protobuf field: tag byte, length, bytes.
    fn field(tag: u8, bytes: Vec<u8>) -> Vec<u8> {
        let mut out = vec![tag];
        prost::encoding::encode_varint(bytes.len() as u64, &mut out);
        out.extend(bytes);
        out
    }

    /// One ResourceSpans, one ScopeSpans and `spans` empty spans (`12 00` repeated) as an
    /// `ExportTraceServiceRequest`, gzipped: 16 million make 32 MB and about 31 KB.
    pub fn protobuf(spans: usize) -> Vec<u8> {
        let scope = field(0x12, [0x12u8, 0x00].repeat(spans));
        gzip(&field(0x0a, scope))
    }

    /// Its OTLP JSON twin: `spans` `{}` spans, gzipped.
    pub fn json(spans: usize) -> Vec<u8> {
        let mut body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":["#.to_vec();
        body.extend_from_slice(&b"{},".repeat(spans.saturating_sub(1)));
        body.extend_from_slice(b"{}]}]}]}");
        gzip(&body)
    }
}

/// The dashboard's screenshots the README shows: the browser test takes them again when the
/// dashboard's sources changed since they were taken, and the docs test fails while they
/// show another version of the dashboard.
pub mod screenshots {
    use sha2::{Digest as _, Sha256};

    /// The screenshots, relative to the repository root: the overview and an agent's
    /// drill-down page, 1280 px wide.
    pub const FILES: [&str; 2] = ["docs/img/dashboard.png", "docs/img/drilldown.png"];

    /// The file that records [`dashboard_digest`] as it was when they were taken.
    pub const DIGEST_FILE: &str = "docs/img/dashboard-sources.sha256";

    /// The repository root.
    pub fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// SHA-256 (hex) over every file of `dashboard/`: each relative path and its bytes, in
    /// path order.
    pub fn dashboard_digest() -> String {
        let dir = root().join("dashboard");
        let mut files = Vec::new();
        let mut pending = vec![dir.clone()];
        while let Some(d) = pending.pop() {
            for entry in std::fs::read_dir(&d)
                .unwrap_or_else(|e| panic!("listing {}: {e}", d.display()))
                .flatten()
            {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let mut named: Vec<(String, std::path::PathBuf)> = files
            .into_iter()
            .map(|p| {
                let relative = p
                    .strip_prefix(&dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                (relative, p)
            })
            .collect();
        named.sort();
        let mut hash = Sha256::new();
        for (relative, path) in named {
            let bytes =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            hash.update(relative.as_bytes());
            hash.update([0]);
            hash.update(&bytes);
            hash.update([0]);
        }
        hex::encode(hash.finalize())
    }
}
