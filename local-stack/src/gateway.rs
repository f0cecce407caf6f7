//! The local WebSocket gateway: what API Gateway's WebSocket API does in AWS, on loopback.
//!
//! - `GET /ws?token=<api key>` runs the same `$connect` code as the `ws-connect` function
//!   (a bad key is refused with its 401/403 before anything is stored), then upgrades.
//!   Closing runs the `$disconnect` code. Like API Gateway, a connection is closed after
//!   two hours. A text message runs the `watch` route's code (`ws-watch`: what the
//!   connection shows); like API Gateway without a route response, nothing is answered.
//! - The Management API (`POST`, `GET`, `DELETE` on `/@connections/{id}`, also under a
//!   stage prefix `/{stage}/@connections/{id}`) answers like API Gateway's: 410
//!   `GoneException` for an unknown or closed connection (and for one just closed as a
//!   slow consumer, below), 413 over 128 KiB. The broadcaster's real SDK client posts here.
//!   It only answers callers on loopback, as it needs no credentials, and refuses others
//!   before reading their body.
//! - A dashboard sends only watches, so a client message over
//!   [`MAX_INBOUND_BYTES`] closes its socket (1009; a frame over
//!   [`MAX_INBOUND_FRAME_BYTES`] drops the connection unread). A client that stops reading while
//!   messages for it pile up past its send queue ([`crate::Limits::ws_send_queue_bytes`]) is
//!   closed (1013) rather than held in memory; posts to it then answer 410.
//! - Connections count against the tenant's and the key's WebSocket quotas, checked by the
//!   shared `$connect` code one handshake at a time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, Uri};
use rand::distr::{Alphanumeric, SampleString};
use shared::api::ApiError;
use shared::time::format_rfc3339;
use shared::ws::MAX_CONNECTION_MS;
use shared::AppState;
use tokio::sync::{mpsc, Notify};

/// Largest message the Management API accepts, as API Gateway's (128 KiB).
pub const MAX_POST_BYTES: usize = 128 * 1024;
/// Largest message a client may send: a watch (the `watch` route), as API Gateway's
/// largest frame.
pub const MAX_INBOUND_BYTES: usize = shared::ws::MAX_CLIENT_MESSAGE_BYTES;
/// Largest frame read: a frame up to this is read whole, so a message over
/// [`MAX_INBOUND_BYTES`] in it gets a clean close (1009); a larger frame is refused from its
/// header without reading it, and its connection dropped.
pub const MAX_INBOUND_FRAME_BYTES: usize = 64 * 1024;
/// What a queued message costs beyond its payload, so a flood of empty messages is
/// bounded too.
const MESSAGE_OVERHEAD: usize = 64;
/// How long the close frame of a slow consumer may take to go out before the connection
/// is dropped without it.
const SLOW_CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The reason given to a slow consumer with close code 1013.
pub const SLOW_CONSUMER_REASON: &str = "the client is not reading its messages fast enough";

/// One open (or opening) connection.
#[derive(Debug)]
struct Connection {
    tx: mpsc::UnboundedSender<Message>,
    /// Bytes of messages queued and not yet written to the socket.
    queued: AtomicUsize,
    /// Tells the socket task its client fell too far behind.
    slow: Notify,
    connected_at: i64,
    last_active_at: AtomicI64,
    source_ip: String,
    user_agent: Option<String>,
}

impl Connection {
    /// Queues a message whatever the queue holds (close frames must get through).
    fn push(&self, message: Message) -> bool {
        self.queued.fetch_add(cost(&message), Ordering::Relaxed);
        self.tx.send(message).is_ok()
    }
}

/// What a message costs in a connection's send queue.
fn cost(message: &Message) -> usize {
    let payload = match message {
        Message::Text(t) => t.len(),
        Message::Binary(b) => b.len(),
        _ => 0,
    };
    payload + MESSAGE_OVERHEAD
}

/// The connections this process holds.
#[derive(Debug)]
pub struct Gateway {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// Bytes of unsent messages a connection may have before it is closed as too slow.
    send_queue_bytes: usize,
    /// One `$connect` at a time, so two handshakes cannot both pass the last quota slot.
    connecting: tokio::sync::Mutex<()>,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new(crate::Limits::default().ws_send_queue_bytes)
    }
}

impl Gateway {
    /// A gateway closing connections whose unsent messages exceed `send_queue_bytes` (at
    /// least one message of [`MAX_POST_BYTES`]).
    pub fn new(send_queue_bytes: usize) -> Self {
        Self {
            connections: Mutex::default(),
            send_queue_bytes: send_queue_bytes.max(MAX_POST_BYTES + MESSAGE_OVERHEAD),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// Open connections (including ones completing their handshake).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Connection>>> {
        self.connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Option<Arc<Connection>> {
        self.lock().get(id).cloned()
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

#[async_trait::async_trait]
impl shared::state::ConnectionCloser for Gateway {
    async fn close(&self, connection_id: &str, reason: &str) -> Result<(), String> {
        let Some(c) = self.get(connection_id) else {
            return Ok(());
        };
        let frame = Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: reason.to_owned().into(),
        }));
        // A closed queue means it is gone already.
        let _ = c.push(frame);
        Ok(())
    }
}

/// What the gateway's handlers share.
#[derive(Debug, Clone)]
pub struct Local {
    /// The application.
    pub app: AppState,
    /// The connections.
    pub gateway: Arc<Gateway>,
    /// How request bodies are read (deadline, bodies at once).
    pub bodies: Arc<crate::BodyReader>,
}

/// A connection id shaped like API Gateway's (`L0SM9cOFvHcCIhw=`): the trailing `=`
/// makes clients encode it in paths, as they must in AWS.
fn new_connection_id() -> String {
    format!("{}=", Alphanumeric.sample_string(&mut rand::rng(), 15))
}

/// `GET /ws?token=<api key>`.
pub async fn connect(
    State(local): State<Local>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(_) => {
            return to_axum(
                ApiError::bad_request(
                    "websocket_required",
                    "this is the WebSocket endpoint: connect with a WebSocket client to \
                     ws://<host>/ws?token=<api key>",
                )
                .into_response(),
            )
        }
    };
    let id = new_connection_id();
    let (tx, rx) = mpsc::unbounded_channel();
    let connection = Arc::new(new_connection(&local, tx, peer, &headers));
    let token = shared::ws::token_of(uri.query());
    let feed = match shared::ws::feed_of(uri.query()) {
        Ok(f) => f,
        Err(e) => return to_axum(e.into_response()),
    };
    let principal = match register(&local, &id, &connection, token.as_deref(), feed).await {
        Ok(p) => p,
        Err(e) => return to_axum(e.into_response()),
    };
    let failed = local.clone();
    let failed_id = id.clone();
    upgrade
        // Inbound messages are bounded before they are buffered: tungstenite refuses a frame
        // whose header announces more than the frame limit without reading its payload,
        // and a message over the message limit once its (small) frame is read.
        .max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_FRAME_BYTES)
        .on_failed_upgrade(move |error| {
            tracing::info!(%error, "websocket handshake failed");
            tokio::spawn(async move { close(&failed, &failed_id).await });
        })
        .on_upgrade(move |socket| serve_socket(local, id, principal.tenant, connection, socket, rx))
}

/// A connection opening now from `peer`, its messages queued on `tx`.
fn new_connection(
    local: &Local,
    tx: mpsc::UnboundedSender<Message>,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> Connection {
    let now = local.app.clock.now_ms();
    Connection {
        tx,
        queued: AtomicUsize::new(0),
        slow: Notify::new(),
        connected_at: now,
        last_active_at: AtomicI64::new(now),
        source_ip: peer.ip().to_string(),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// Checks the token and stores the connection, as API Gateway's `$connect` route does; on
/// a refusal the connection is forgotten.
async fn register(
    local: &Local,
    id: &str,
    connection: &Arc<Connection>,
    token: Option<&str>,
    feed: shared::store::connections::Feed,
) -> Result<shared::api::auth::Principal, ApiError> {
    // The quotas count stored connections: one handshake at a time, so the last slot
    // goes to one of two racing clients, not both.
    let _turn = local.gateway.connecting.lock().await;
    // Known before it is stored, so a broadcast racing the handshake queues its message
    // instead of getting 410 and deleting a connection that is about to open.
    local
        .gateway
        .lock()
        .insert(id.to_owned(), Arc::clone(connection));
    shared::ws::connect(&local.app, token, feed, id)
        .await
        .inspect_err(|_| local.gateway.remove(id))
}

/// Why a socket's loop ended.
enum End {
    /// Closed, or the client went away: nothing more to send.
    Done,
    /// The client sent a message over [`MAX_INBOUND_BYTES`].
    TooBig,
    /// The client fell too far behind.
    Slow,
}

/// Pumps queued messages out and watches for the client closing.
async fn serve_socket(
    local: Local,
    id: String,
    tenant: String,
    connection: Arc<Connection>,
    mut socket: WebSocket,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    local.app.stats.connection(&tenant, 1);
    let max = Duration::from_millis(u64::try_from(MAX_CONNECTION_MS).unwrap_or(u64::MAX));
    let deadline = tokio::time::sleep(max);
    tokio::pin!(deadline);
    let end = loop {
        let end = tokio::select! {
            incoming = socket.recv() => received(&local, &id, &connection, &mut socket, incoming).await,
            outgoing = rx.recv() => match outgoing {
                Some(message) => send_queued(&connection, &mut socket, message).await,
                None => Some(End::Done),
            },
            () = connection.slow.notified() => Some(End::Slow),
            () = &mut deadline => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::AWAY,
                        reason: "connection reached its two-hour limit".into(),
                    })))
                    .await;
                Some(End::Done)
            }
        };
        if let Some(end) = end {
            break end;
        }
    };
    if let Some(frame) = end.farewell() {
        // Forgotten first: what is still queued is dropped with the queue, and posts
        // answer 410 from now on.
        local.gateway.remove(&id);
        drop(rx);
        // It goes out once the client reads what the kernel already holds for it; a client
        // that never does loses the connection without it.
        let _ = tokio::time::timeout(SLOW_CLOSE_GRACE, async {
            socket.send(Message::Close(Some(frame))).await?;
            futures::SinkExt::close(&mut socket).await
        })
        .await;
    }
    local.app.stats.connection(&tenant, -1);
    close(&local, &id).await;
}

impl End {
    /// The close frame the client is sent, if the server ends the connection.
    fn farewell(self) -> Option<CloseFrame> {
        match self {
            End::Done => None,
            End::TooBig => Some(CloseFrame {
                code: close_code::SIZE,
                reason: format!("messages to this server are at most {MAX_INBOUND_BYTES} bytes")
                    .into(),
            }),
            End::Slow => Some(CloseFrame {
                code: close_code::AGAIN,
                reason: SLOW_CONSUMER_REASON.into(),
            }),
        }
    }
}

/// Handles what the client sent; `Some` when the connection ends.
async fn received(
    local: &Local,
    id: &str,
    connection: &Connection,
    socket: &mut WebSocket,
    incoming: Option<Result<Message, axum::Error>>,
) -> Option<End> {
    match incoming {
        Some(Ok(Message::Close(_))) => {
            // The reply to the client's close frame is queued, not yet sent: closing
            // flushes it, so the client sees a clean close rather than 1006.
            let _ = futures::SinkExt::close(socket).await;
            Some(End::Done)
        }
        Some(Err(e)) if too_big(&e) => Some(End::TooBig),
        None | Some(Err(_)) => Some(End::Done),
        Some(Ok(Message::Text(text))) => {
            connection
                .last_active_at
                .store(local.app.clock.now_ms(), Ordering::Relaxed);
            if let Err(e) = shared::ws::on_message(&local.app, id, text.as_str()).await {
                tracing::info!(connection_id = id, error = %e, "client message refused");
            }
            None
        }
        Some(Ok(_)) => {
            connection
                .last_active_at
                .store(local.app.clock.now_ms(), Ordering::Relaxed);
            None
        }
    }
}

/// Sends a queued message; `Some` when the connection ends.
async fn send_queued(
    connection: &Connection,
    socket: &mut WebSocket,
    message: Message,
) -> Option<End> {
    let (size, closing) = (cost(&message), matches!(message, Message::Close(_)));
    // A client that stops reading stalls this send once the kernel's
    // buffers are full: the slow signal must still end it.
    let sent = tokio::select! {
        sent = socket.send(message) => Some(sent.is_ok()),
        () = connection.slow.notified() => None,
    };
    connection.queued.fetch_sub(size, Ordering::Relaxed);
    match sent {
        None => Some(End::Slow),
        Some(false) => Some(End::Done),
        Some(true) if closing => Some(End::Done),
        Some(true) => None,
    }
}

/// Whether a socket error is a client message over the inbound limit.
fn too_big(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Forgets a connection here and in the store (the `$disconnect` route).
async fn close(local: &Local, id: &str) {
    local.gateway.remove(id);
    if let Err(e) = shared::ws::disconnect(&local.app, id).await {
        tracing::warn!(connection_id = id, error = %e, "cannot forget the connection; the next broadcast will");
    }
}

fn to_axum(response: http::Response<String>) -> Response {
    response.map(Body::from)
}

/// An error of the Management API, shaped as API Gateway's (the SDK reads the type from
/// `x-amzn-ErrorType`).
fn management_error(status: StatusCode, kind: &'static str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

fn gone(id: &str) -> Response {
    management_error(
        StatusCode::GONE,
        "GoneException",
        &format!("connection {id} is not open"),
    )
}

/// The refusal of a caller that is not on this machine; `None` for a local one.
fn refuse_remote(peer: SocketAddr) -> Option<Response> {
    (!peer.ip().is_loopback()).then(|| {
        management_error(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            "the management API answers on loopback only",
        )
    })
}

/// `POST /@connections/{id}`: sends the body to the connection.
async fn post(local: &Local, peer: SocketAddr, id: &str, body: Body) -> Response {
    if let Some(r) = refuse_remote(peer) {
        return r;
    }
    // Callers are this machine's broadcasters: the deadline holds, the bound on bodies read
    // at once (which remote clients may fill) does not.
    let body: Bytes = match local.bodies.read_unslotted(body, MAX_POST_BYTES).await {
        Ok(body) => body,
        Err(crate::BodyError::TimedOut) => {
            return management_error(
                StatusCode::REQUEST_TIMEOUT,
                "BadRequestException",
                "the message did not arrive in time",
            )
        }
        Err(_) => {
            return management_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLargeException",
                &format!("the message is over {MAX_POST_BYTES} bytes"),
            )
        }
    };
    let Some(connection) = local.gateway.get(id) else {
        return gone(id);
    };
    // Text frames for UTF-8 (what dashboards read), binary otherwise; no copy either way.
    let message = match axum::extract::ws::Utf8Bytes::try_from(body.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(body),
    };
    let size = cost(&message);
    let queued = connection.queued.fetch_add(size, Ordering::Relaxed) + size;
    if queued > local.gateway.send_queue_bytes {
        connection.queued.fetch_sub(size, Ordering::Relaxed);
        // Holding more for a client that is not reading only grows this process: close it
        // (1013, so it reconnects and reloads), and tell the caller it is gone.
        connection.slow.notify_one();
        local.gateway.remove(id);
        tracing::info!(
            connection_id = id,
            queued,
            "closing a websocket client that is not reading its messages"
        );
        return gone(id);
    }
    if connection.tx.send(message).is_err() {
        connection.queued.fetch_sub(size, Ordering::Relaxed);
        return gone(id);
    }
    StatusCode::OK.into_response()
}

/// `GET /@connections/{id}`: when it connected, from where, last activity.
fn describe(local: &Local, peer: SocketAddr, id: &str) -> Response {
    if let Some(r) = refuse_remote(peer) {
        return r;
    }
    let Some(c) = local.gateway.get(id).filter(|c| !c.tx.is_closed()) else {
        return gone(id);
    };
    // API Gateway's wire names (camelCase, ISO 8601 times), which the SDK parses.
    let mut identity = serde_json::json!({ "sourceIp": c.source_ip });
    if let Some(ua) = &c.user_agent {
        identity["userAgent"] = ua.clone().into();
    }
    axum::Json(serde_json::json!({
        "connectedAt": format_rfc3339(c.connected_at),
        "identity": identity,
        "lastActiveAt": format_rfc3339(c.last_active_at.load(Ordering::Relaxed)),
    }))
    .into_response()
}

/// `DELETE /@connections/{id}`: closes the connection.
async fn delete(local: &Local, peer: SocketAddr, id: &str) -> Response {
    if let Some(r) = refuse_remote(peer) {
        return r;
    }
    let Some(c) = local.gateway.get(id) else {
        return gone(id);
    };
    let frame = Message::Close(Some(CloseFrame {
        code: close_code::NORMAL,
        reason: "closed by the server".into(),
    }));
    if !c.push(frame) {
        return gone(id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The Management API's routes, with and without a stage prefix.
pub fn routes() -> axum::Router<Local> {
    use axum::routing::get;
    /// The connection named in either path; a stage, if any, is ignored.
    #[derive(serde::Deserialize)]
    struct Connection {
        id: String,
    }
    async fn post_to(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(c): Path<Connection>,
        body: Body,
    ) -> Response {
        post(&l, p, &c.id, body).await
    }
    async fn get_of(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(c): Path<Connection>,
    ) -> Response {
        describe(&l, p, &c.id)
    }
    async fn delete_of(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(c): Path<Connection>,
    ) -> Response {
        delete(&l, p, &c.id).await
    }
    axum::Router::new()
        .route("/ws", get(connect))
        .route(
            "/@connections/{id}",
            get(get_of).post(post_to).delete(delete_of),
        )
        .route(
            "/{stage}/@connections/{id}",
            get(get_of).post(post_to).delete(delete_of),
        )
}
