//! The local stack: every endpoint of the product in one process on an embedded, durable
//! store, through the same library handlers the Lambda functions run.

pub mod control;
pub mod dashboard;
pub mod demo;
pub mod gateway;
pub mod inbox;
pub mod scenario;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use shared::api::{self, ApiError, MAX_BODY_BYTES};
use shared::config::Config;
use shared::store::embedded::EmbeddedBackend;
use shared::store::{Store, StoreError};
use shared::time::Clock;
use shared::ws::broadcaster::Broadcaster;
use shared::ws::handover::Handover;
use shared::AppState;

/// The tenant of the key the local stack creates for itself.
pub const LOCAL_TENANT: &str = "local";
/// The database file inside the data directory.
pub const DB_FILE: &str = "health.redb";
/// The file inside the data directory that keeps the local stack's own API key, so the
/// key printed at start stays the same across restarts.
pub const KEY_FILE: &str = "local-api-key";

/// Why the local stack cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory or key file cannot be used.
    #[error("data directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    /// The collector cannot be built.
    #[error(transparent)]
    Collector(#[from] shared::collector::CollectorError),
}

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    /// Where the database and the key live.
    pub data_dir: PathBuf,
    /// The contract's configuration.
    pub config: Config,
    /// The clock; `None` is the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Runs the host sidecar in-process for this host, sampling at this interval.
    pub sidecar: Option<std::time::Duration>,
    /// Feeds the demo fleet (agents, integrations, hosts, incidents) into tenant `local`.
    pub demo: bool,
    /// Timeouts and the connection cap of the HTTP server, and the store's cache.
    pub limits: Limits,
}

/// Bounds on what the local stack holds: what the HTTP server allows a client, so slow or
/// idle clients cannot hold it (defaults as common reverse proxies), and the memory the
/// embedded store caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// How long a client may take to send a request's headers, counted from the moment
    /// the server waits for them: on a new connection, and between requests on a
    /// kept-alive one (so it is also the idle keep-alive timeout). Default 30 s.
    pub header_timeout: std::time::Duration,
    /// Most connections open at once (WebSockets included); beyond it the server stops
    /// accepting until one closes. Default 4096.
    pub max_connections: usize,
    /// How long a request's body may take to arrive, counted from the end of its headers;
    /// past it the request is answered 408 and its connection closed. Default 30 s.
    pub body_timeout: std::time::Duration,
    /// Most request bodies being read at once; a request beyond it is answered 503 with
    /// `Retry-After` at once, without reading its body, and its connection closed. Kept
    /// well below `max_connections`, so clients trickling bodies cannot hold every
    /// connection (`/healthz` and the API keep answering). Default 1024.
    pub max_body_reads: usize,
    /// Bytes of messages queued for one WebSocket client before it counts as not reading
    /// and is closed (1013). Default 8 MiB: several whole updates of a large tenant.
    pub ws_send_queue_bytes: usize,
    /// Bytes of database pages the embedded store caches. Default 32 MiB.
    pub cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: std::time::Duration::from_secs(30),
            max_connections: 4096,
            body_timeout: std::time::Duration::from_secs(30),
            max_body_reads: 1024,
            ws_send_queue_bytes: 8 << 20,
            cache_bytes: shared::store::embedded::DEFAULT_CACHE_BYTES,
        }
    }
}

/// Why a request body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Over the route's limit (or the stream broke off).
    TooLarge,
    /// Not all there within [`Limits::body_timeout`].
    TimedOut,
    /// [`Limits::max_body_reads`] bodies are being read already.
    Busy,
}

/// Reads request bodies under the whole-request deadline and the bound on bodies read at
/// once ([`Limits`]).
#[derive(Debug)]
pub struct BodyReader {
    timeout: std::time::Duration,
    slots: Arc<tokio::sync::Semaphore>,
}

impl BodyReader {
    /// A reader with `limits`' deadline and bound.
    pub fn new(limits: &Limits) -> Self {
        Self {
            timeout: limits.body_timeout,
            slots: Arc::new(tokio::sync::Semaphore::new(limits.max_body_reads.max(1))),
        }
    }

    /// Reads at most `limit` bytes of a request with `headers`, taking one of the reading
    /// slots for the time it takes if the request announces a body (a request without one,
    /// such as `/healthz`, needs none).
    pub async fn read(
        &self,
        headers: &http::HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<bytes::Bytes, BodyError> {
        if !announces_body(headers) {
            return self.read_unslotted(body, limit).await;
        }
        let Ok(_slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            return Err(BodyError::Busy);
        };
        self.read_unslotted(body, limit).await
    }

    /// Reads at most `limit` bytes within the deadline, without taking a slot (for
    /// loopback-only routes, which must not be locked out by other clients' bodies).
    pub async fn read_unslotted(
        &self,
        body: Body,
        limit: usize,
    ) -> Result<bytes::Bytes, BodyError> {
        // One byte over the limit is enough to know the body is too large, without
        // buffering an arbitrarily large upload.
        match tokio::time::timeout(self.timeout, axum::body::to_bytes(body, limit + 1)).await {
            Err(_) => Err(BodyError::TimedOut),
            Ok(Err(_)) => Err(BodyError::TooLarge),
            Ok(Ok(bytes)) if bytes.len() > limit => Err(BodyError::TooLarge),
            Ok(Ok(bytes)) => Ok(bytes),
        }
    }

    /// The API's answer to a body that was not read; the connection closes after it, as
    /// the rest of the body (if any) is never read.
    pub fn refusal(&self, error: BodyError, limit: usize) -> Response {
        let error = match error {
            BodyError::TooLarge => ApiError::PayloadTooLarge { limit },
            BodyError::TimedOut => ApiError::RequestTimeout {
                seconds: self.timeout.as_secs().max(1),
            },
            BodyError::Busy => ApiError::Unavailable(
                "the server is reading too many request bodies at once; retry".to_owned(),
            ),
        };
        closing(error.into_response().map(Body::from))
    }
}

/// `response` with `Connection: close`, for an answer given without reading the request's
/// body: the connection cannot serve another request after it (the server closes it).
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    response
}

/// Whether a request's headers announce a body (HTTP/1.1: a non-zero `Content-Length`, or
/// `Transfer-Encoding`).
fn announces_body(headers: &http::HeaderMap) -> bool {
    let empty = headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() == b"0");
    headers.contains_key(http::header::TRANSFER_ENCODING)
        || (headers.contains_key(http::header::CONTENT_LENGTH) && !empty)
}

/// [`closing`] if the request announced a body (which is left unread); a request without
/// one keeps its connection.
fn closing_if_body(headers: &http::HeaderMap, response: Response) -> Response {
    if announces_body(headers) {
        closing(response)
    } else {
        response
    }
}

/// A running stack.
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// A key of tenant `local` with every scope.
    pub api_key: String,
    /// The application state, for tests that create more keys.
    pub state: AppState,
    /// The WebSocket gateway.
    pub gateway: Arc<gateway::Gateway>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    collector: Option<tokio::task::JoinHandle<()>>,
    evaluator: Option<tokio::task::JoinHandle<()>>,
    notifier: Option<tokio::task::JoinHandle<()>>,
    sidecar: Option<tokio::task::JoinHandle<()>>,
    demo: Option<tokio::task::JoinHandle<()>>,
    /// The control socket's task and path, for the CLI's key commands.
    control: Option<(tokio::task::JoinHandle<()>, PathBuf)>,
}

impl Running {
    /// The base URL, e.g. `http://127.0.0.1:3000`.
    /// Bound to every address (`HOST=0.0.0.0`), it names loopback, which this machine's
    /// own clients (the in-process sidecar, the broadcaster) reach.
    pub fn url(&self) -> String {
        format!("http://{}", self.local_addr())
    }

    fn local_addr(&self) -> SocketAddr {
        loopback_if_unspecified(self.addr)
    }

    /// The dashboard with the local key in the fragment (which never reaches a server).
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/#key={}", self.local_addr(), self.api_key)
    }

    /// Stops accepting, lets requests in flight finish, and waits.
    pub async fn stop(mut self) -> std::io::Result<()> {
        for task in [
            self.collector.take(),
            self.evaluator.take(),
            self.notifier.take(),
            self.sidecar.take(),
            self.demo.take(),
        ]
        .into_iter()
        .flatten()
        {
            task.abort();
        }
        if let Some((task, path)) = self.control.take() {
            task.abort();
            let _ = std::fs::remove_file(path);
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.await.unwrap_or(Ok(()))
    }

    /// Waits until the server ends (after [`Running::stop`] from elsewhere, or an error).
    pub async fn wait(self) -> std::io::Result<()> {
        self.server.await.unwrap_or(Ok(()))
    }
}

/// The address this machine's own clients reach a listener on: loopback for one bound to
/// every address.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// How long the local notifier sleeps when nothing is due and nothing wakes it.
const NOTIFIER_IDLE_MS: i64 = 5000;

/// Opens the embedded store in `data_dir`, creating the directory.
pub fn open_store(data_dir: &Path) -> Result<Store, StartError> {
    open_store_with(data_dir, shared::store::embedded::DEFAULT_CACHE_BYTES)
}

/// [`open_store`] with a page cache of `cache_bytes`.
///
/// The database holds secrets (the acknowledge-link key, webhook secrets, PagerDuty routing
/// keys), so a new data directory is created readable by its owner only (0700) and the
/// file is kept at 0600, also when an older version created it with the default umask.
pub fn open_store_with(data_dir: &Path, cache_bytes: usize) -> Result<Store, StartError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| StartError::Io { path, source }
    };
    create_private_dir(data_dir).map_err(io(data_dir))?;
    let file = data_dir.join(DB_FILE);
    ensure_private_file(&file).map_err(io(&file))?;
    let backend = EmbeddedBackend::open_with_cache(&file, cache_bytes)?;
    Ok(Store::new(Arc::new(backend)))
}

/// Creates `dir` (and missing parents) with mode 0700; an existing directory keeps its
/// mode (it may be shared on purpose), with a warning if others may read it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        if let Ok(meta) = std::fs::metadata(dir) {
            if meta.is_dir() && meta.permissions().mode() & 0o077 != 0 {
                // On stderr: stdout's first line is the banner scripts read.
                eprintln!(
                    "warning: the data directory {} is open to other users; its files are kept 0600",
                    dir.display()
                );
            }
        }
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `path` empty with mode 0600 if it does not exist (before the store opens it
/// with the default umask), and narrows an existing file to 0600.
fn ensure_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    drop(file);
    Ok(())
}

/// The local key: read from the key file, or created and written there (mode 0600).
/// Either way it is (re-)registered in the store, so a fresh database accepts it.
async fn local_key(store: &Store, data_dir: &Path, now: i64) -> Result<String, StartError> {
    let path = data_dir.join(KEY_FILE);
    let io = |source| StartError::Io {
        path: path.clone(),
        source,
    };
    let key = match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => text.trim().to_owned(),
        Ok(_) | Err(_) => {
            let key = store
                .create_api_key(LOCAL_TENANT, &all_scopes(), "local-stack", now)
                .await?;
            let mut file = open_private(&path).map_err(io)?;
            writeln!(file, "{key}").map_err(io)?;
            return Ok(key);
        }
    };
    match store
        .insert_api_key(&key, LOCAL_TENANT, &all_scopes(), "local-stack", now)
        .await
    {
        Ok(()) | Err(StoreError::Conflict) => Ok(key),
        Err(e) => Err(e.into()),
    }
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Forgets the WebSocket connections a previous run stored: their sockets died with it,
/// and left stored they would count against the WebSocket quotas until a broadcast met them.
async fn forget_connections(store: &Store) -> Result<(), StoreError> {
    for tenant in store.tenants().await? {
        for id in store.connections(&tenant).await? {
            store.remove_connection(&id).await?;
        }
    }
    Ok(())
}

/// Every scope, as a key record lists them.
pub fn all_scopes() -> Vec<String> {
    shared::store::keys::SCOPES
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// Starts the stack on the embedded store and returns once it is listening.
pub async fn start(options: Options) -> Result<Running, StartError> {
    let store = open_store_with(&options.data_dir, options.limits.cache_bytes)?;
    // Bound first, so links in notifications can name the address (when HEALTH_PUBLIC_URL
    // does not).
    let (listener, own) = bind(options.addr).await?;
    let clock: Arc<dyn Clock> = options
        .clock
        .unwrap_or_else(|| Arc::new(shared::time::SystemClock));
    let inbox = options
        .demo
        .then(|| Arc::new(inbox::Inbox::new(Arc::clone(&clock))));
    let config = local_config(options.config, own, inbox.is_some());
    let (state, queued) = app_state(store, config, clock);
    let now = state.clock.now_ms();
    let api_key = local_key(&state.store, &options.data_dir, now).await?;
    // Data directories from before tenants were listed have keys but no tenant entry.
    state.store.register_tenant(LOCAL_TENANT, now).await?;
    forget_connections(&state.store).await?;
    let collector = state
        .config
        .polling_enabled
        .then(|| shared::collector::Collector::new(&state))
        .transpose()?;
    let notifier =
        shared::notify::Notifier::new(&state).map_err(shared::collector::CollectorError::from)?;
    let mut running = serve_inner(listener, state, api_key, options.limits, inbox.clone())?;
    if let Some(inbox) = &inbox {
        demo_channel(&running, inbox).await?;
    }
    spawn_notifier(&mut running, notifier);
    spawn_evaluator(&mut running, queued);
    if let Some(collector) = collector {
        spawn_collector(&mut running, collector);
    }
    #[cfg(unix)]
    {
        let io = |source| StartError::Io {
            path: control::socket_path(&options.data_dir),
            source,
        };
        let task = control::serve(running.state.clone(), &options.data_dir).map_err(io)?;
        running.control = Some((task, control::socket_path(&options.data_dir)));
    }
    if options.demo {
        let state = running.state.clone();
        running.demo = Some(tokio::spawn(demo::run(state, LOCAL_TENANT)));
    }
    if let Some(interval) = options.sidecar {
        spawn_sidecar(&mut running, interval);
    }
    Ok(running)
}

/// Binds the listener, and the address this process reaches itself at.
async fn bind(addr: SocketAddr) -> Result<(tokio::net::TcpListener, SocketAddr), StartError> {
    let io = |source| StartError::Io {
        path: PathBuf::from(addr.to_string()),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    let own = loopback_if_unspecified(listener.local_addr().map_err(io)?);
    Ok((listener, own))
}

/// The configuration as this process at `own` runs it: links name it unless
/// `HEALTH_PUBLIC_URL` says otherwise, and the demo's inbox on it may be probed.
fn local_config(mut config: Config, own: SocketAddr, inbox: bool) -> Config {
    if config.public_url.is_none() {
        config.public_url = Some(format!("http://{own}"));
    }
    // The demo's channel delivers to this process's own inbox page, on loopback: that
    // address and port are opened, not loopback as a whole (any tenant's channels and
    // probes could reach every local service through it).
    if inbox && !shared::domain::address::permitted(own, &config.probe_allowed_addresses) {
        config.probe_allowed_addresses.push(own.into());
    }
    config
}

/// The events the API queued for the evaluator, by tenant.
type Queued = tokio::sync::mpsc::Receiver<(String, shared::store::live::Touched)>;

/// The application's state for a process that runs every part, and the queue of events
/// its evaluator reads.
fn app_state(store: Store, config: Config, clock: Arc<dyn Clock>) -> (AppState, Queued) {
    let mut state = AppState::new(store, config);
    // This process runs every part: each tenant's share of its figures belongs on the
    // tenant's `/metrics`.
    state.stats.enable();
    state.clock = clock;
    // Events are evaluated as they arrive; the cycle keeps what only time decides.
    let (queue, queued) = tokio::sync::mpsc::channel(shared::collector::alerting::QUEUE);
    state.evaluator = Some(queue);
    (state, queued)
}

fn spawn_notifier(running: &mut Running, notifier: shared::notify::Notifier) {
    let state = running.state.clone();
    running.notifier = Some(tokio::spawn(async move {
        notifier
            .run_until(
                std::sync::Arc::clone(&state.clock),
                None,
                std::sync::Arc::clone(&state.notifier_wake),
                NOTIFIER_IDLE_MS,
                |_, _| {},
            )
            .await;
    }));
}

/// The handover of updates to the WebSocket clients: the broadcaster posts to this
/// process's own gateway through the Management API, as it posts to API Gateway in AWS.
fn handover(running: &Running) -> Handover {
    let client = Broadcaster::client_for_endpoint(&running.url());
    Handover::Inline(Broadcaster::new(client, running.state.store.clone()))
}

fn spawn_evaluator(running: &mut Running, queued: Queued) {
    let handover = handover(running);
    let state = running.state.clone();
    running.evaluator = Some(tokio::spawn(async move {
        let handover = &handover;
        shared::collector::alerting::run_evaluator(state, queued, move |report| async move {
            handover.publish_event(&report).await;
        })
        .await;
    }));
}

fn spawn_collector(running: &mut Running, collector: shared::collector::Collector) {
    let wake = std::sync::Arc::clone(&running.state.notifier_wake);
    let handover = handover(running);
    running.collector = Some(tokio::spawn(async move {
        let handover = &handover;
        let wake = &wake;
        collector
            .run_until(
                None,
                move |report| async move {
                    // Alerts this cycle raised or resolved leave now, not on the next
                    // tick; each tenant's update as soon as its own cycle ends.
                    wake.notify_one();
                    handover.publish(&report).await;
                    report
                },
                |_| async {},
            )
            .await;
    }));
}

/// Runs a sidecar in this process, reporting this host every `interval`.
fn spawn_sidecar(running: &mut Running, interval: std::time::Duration) {
    let sidecar = health_sidecar::Options {
        api_url: running.url(),
        api_key: running.api_key.clone(),
        host_id: health_sidecar::host_name(),
        interval,
        buffer: health_sidecar::Options::hour_of_samples(interval),
        check_api: false,
    };
    running.sidecar = Some(tokio::spawn(async move {
        let stats = Arc::new(health_sidecar::Stats::default());
        if let Err(e) = health_sidecar::run(sidecar, stats, std::future::pending()).await {
            tracing::error!(error = %e, "the in-process sidecar stopped");
        }
    }));
}

/// Registers the demo's webhook channel to the inbox page and a rule sending every alert
/// there (replacing earlier ones: the inbox's secret is new each start).
async fn demo_channel(running: &Running, inbox: &inbox::Inbox) -> Result<(), StartError> {
    use shared::domain::notify::{ChannelRecord, Destination, Matcher, RuleRecord};
    let now = running.state.clock.now_ms();
    let destination = Destination::Webhook {
        url: format!("{}{}", running.url(), inbox::PATH),
        secret: inbox.secret().to_owned(),
    };
    running
        .state
        .store
        .put_channel(LOCAL_TENANT, inbox::CHANNEL_ID, |old| ChannelRecord {
            channel_id: inbox::CHANNEL_ID.to_owned(),
            name: "Demo inbox".to_owned(),
            enabled: true,
            destination: destination.clone(),
            created_at: old.map_or(now, |o| o.created_at),
            updated_at: now,
        })
        .await?;
    running
        .state
        .store
        .put_rule(
            LOCAL_TENANT,
            &RuleRecord {
                rule_id: inbox::CHANNEL_ID.to_owned(),
                channels: vec![inbox::CHANNEL_ID.to_owned()],
                matcher: Matcher::default(),
                group_wait_s: 5,
                group_interval_s: 60,
                repeat_interval_s: 3600,
                send_resolved: true,
                weekly_report: true,
                updated_at: now,
            },
        )
        .await?;
    Ok(())
}

/// Serves any application state (any store) on `addr` with the default [`Limits`]; the
/// local stack and tests that run the HTTP API over the DynamoDB backend both use it.
pub async fn serve(
    state: AppState,
    addr: SocketAddr,
    api_key: String,
) -> Result<Running, StartError> {
    serve_with(state, addr, api_key, Limits::default()).await
}

/// [`serve`] with given limits.
pub async fn serve_with(
    state: AppState,
    addr: SocketAddr,
    api_key: String,
    limits: Limits,
) -> Result<Running, StartError> {
    let io = |source| StartError::Io {
        path: PathBuf::from(addr.to_string()),
        source,
    };
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(io)?;
    serve_on(listener, state, api_key, limits)
}

/// [`serve_with`] on a bound listener.
pub fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
    api_key: String,
    limits: Limits,
) -> Result<Running, StartError> {
    serve_inner(listener, state, api_key, limits, None)
}

fn serve_inner(
    listener: tokio::net::TcpListener,
    state: AppState,
    api_key: String,
    limits: Limits,
    inbox: Option<Arc<inbox::Inbox>>,
) -> Result<Running, StartError> {
    let io = |source| StartError::Io {
        path: PathBuf::from("listener"),
        source,
    };
    let addr = listener.local_addr().map_err(io)?;
    let gateway = Arc::new(gateway::Gateway::new(limits.ws_send_queue_bytes));
    let mut state = state;
    // Revoking a key closes the sockets it opened here.
    state.closer = Some(Arc::clone(&gateway) as Arc<dyn shared::state::ConnectionCloser>);
    let bodies = Arc::new(BodyReader::new(&limits));
    let app = router(state.clone(), Arc::clone(&gateway), bodies, inbox);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(accept_loop(listener, app, limits, rx));
    Ok(Running {
        addr,
        api_key,
        state,
        gateway,
        shutdown: Some(tx),
        server,
        collector: None,
        evaluator: None,
        notifier: None,
        sidecar: None,
        demo: None,
        control: None,
    })
}

/// A TCP stream holding one of the server's connection slots until it is dropped.
struct Slotted {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Slotted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Slotted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Accepts connections while fewer than `max_connections` are open, serves each with the
/// header timeout, and on shutdown stops accepting and lets requests in flight finish.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), req.map(Body::new))
            });
        // The slot travels with the socket, so a connection upgraded to a WebSocket (which
        // outlives this HTTP connection) keeps holding it until the socket closes.
        let stream = Slotted {
            stream,
            _slot: slot,
        };
        let conn = http
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // A timed-out or reset connection is the client's business, not an error here.
            let _ = conn.await;
        });
    }
    drop(listener);
    // Requests in flight get a little time to finish; a client stalling its body does not
    // hold the shutdown.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), graceful.shutdown()).await;
    Ok(())
}

/// The HTTP routes: the WebSocket gateway and its Management API, the OpenAPI document,
/// and everything else to the library router.
pub fn router(
    state: AppState,
    gateway: Arc<gateway::Gateway>,
    bodies: Arc<BodyReader>,
    inbox: Option<Arc<inbox::Inbox>>,
) -> axum::Router {
    let mut routes = gateway::routes().merge(dashboard::routes());
    if let Some(inbox) = inbox {
        routes = routes.merge(inbox::routes(inbox));
    }
    routes
        .route("/api/openapi.json", axum::routing::get(openapi))
        .fallback(serve_api)
        .with_state(gateway::Local {
            app: state,
            gateway,
            bodies,
        })
}

async fn openapi() -> Response {
    let mut response = Response::new(Body::from(api::OPENAPI_JSON));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

async fn serve_api(State(local): State<gateway::Local>, req: Request) -> Response {
    let state = &local.app;
    let (mut parts, body) = req.into_parts();
    let endpoint = match api::route(&parts.method, parts.uri.path()) {
        Ok(r) => r.endpoint,
        // Unknown route or method: answered without waiting for a body.
        Err(e) => return closing_if_body(&parts.headers, e.into_response().map(Body::from)),
    };
    // The key first, from the headers: a caller without a valid one is refused at once,
    // before its body (up to 4 MiB for OTLP) is read or waited for.
    match api::authorize_head(state, endpoint, &parts.headers).await {
        Ok(Some(principal)) => {
            parts.extensions.insert(principal);
        }
        Ok(None) => {}
        Err(_) => {
            // The handler's own refusal (its format: OTLP answers in the request's
            // encoding), given an empty body it does not read.
            let headers = parts.headers.clone();
            let refused = http::Request::from_parts(parts, bytes::Bytes::new());
            let answer = api::handle_bytes(state, refused, None).await;
            return closing_if_body(&headers, answer.map(Body::from));
        }
    }
    // OTLP batches may be larger than the API's other bodies; the receiver checks.
    let limit = match endpoint {
        api::Endpoint::IngestTraces | api::Endpoint::IngestMetrics => {
            api::otlp::MAX_OTLP_BODY_BYTES
        }
        _ => MAX_BODY_BYTES,
    };
    let bytes = match local.bodies.read(&parts.headers, body, limit).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) if limit == api::otlp::MAX_OTLP_BODY_BYTES => {
            return closing(api::otlp::too_large(&parts.headers).map(Body::from));
        }
        Err(e) => return local.bodies.refusal(e, limit),
    };
    let req = http::Request::from_parts(parts, bytes);
    match endpoint {
        // Streamed as produced: an export may be larger than memory should hold.
        api::Endpoint::Export => api::export::serve(state, req).await.map(Body::from_stream),
        _ => api::handle_bytes(state, req, None).await.map(Body::from),
    }
}
