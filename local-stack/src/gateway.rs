//! The local WebSocket gateway: what API Gateway's WebSocket API does in AWS, on loopback.
//!
//! - `GET /ws?token=<api key>` runs the same `$connect` code as the `ws-connect` function
//!   (a bad key is refused with its 401/403 before anything is stored), then upgrades.
//!   Closing runs the `$disconnect` code. Like API Gateway, a connection is closed after
//!   two hours; messages a client sends are ignored (the API has no client routes).
//! - The Management API (`POST`, `GET`, `DELETE` on `/@connections/{id}`, also under a
//!   stage prefix `/{stage}/@connections/{id}`) answers like API Gateway's: 410
//!   `GoneException` for an unknown or closed connection, 413 over 128 KiB, 429 when a
//!   connection's outgoing queue is full. The broadcaster's real SDK client posts here.
//!   It only answers callers on loopback, as it needs no credentials.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
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
use tokio::sync::mpsc;

/// Largest message the Management API accepts, as API Gateway's (128 KiB).
pub const MAX_POST_BYTES: usize = 128 * 1024;
/// Messages queued for one connection before posts are throttled (429).
const QUEUE: usize = 256;

/// One open (or opening) connection.
#[derive(Debug)]
struct Connection {
    tx: mpsc::Sender<Message>,
    connected_at: i64,
    last_active_at: AtomicI64,
    source_ip: String,
    user_agent: Option<String>,
}

/// The connections this process holds.
#[derive(Debug, Default)]
pub struct Gateway {
    connections: Mutex<HashMap<String, Arc<Connection>>>,
}

impl Gateway {
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
impl shared::ws::ConnectionCloser for Gateway {
    async fn close(&self, connection_id: &str, reason: &str) -> Result<(), String> {
        let Some(c) = self.get(connection_id) else {
            return Ok(());
        };
        let frame = Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: reason.to_owned().into(),
        }));
        // A full queue belongs to a client that stopped reading: the close still ends it
        // when the socket task next runs; a closed queue means it is gone already.
        let _ = c.tx.try_send(frame);
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
    let (tx, rx) = mpsc::channel(QUEUE);
    let now = local.app.clock.now_ms();
    // Known before it is stored, so a broadcast racing the handshake queues its message
    // instead of getting 410 and deleting a connection that is about to open.
    local.gateway.lock().insert(
        id.clone(),
        Arc::new(Connection {
            tx,
            connected_at: now,
            last_active_at: AtomicI64::new(now),
            source_ip: peer.ip().to_string(),
            user_agent: headers
                .get(http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }),
    );
    let token = shared::ws::token_of(uri.query());
    if let Err(e) = shared::ws::connect(&local.app, token.as_deref(), &id).await {
        local.gateway.remove(&id);
        return to_axum(e.into_response());
    }
    let failed = local.clone();
    let failed_id = id.clone();
    upgrade
        .on_failed_upgrade(move |error| {
            tracing::info!(%error, "websocket handshake failed");
            tokio::spawn(async move { close(&failed, &failed_id).await });
        })
        .on_upgrade(move |socket| serve_socket(local, id, socket, rx))
}

/// Pumps queued messages out and watches for the client closing.
async fn serve_socket(
    local: Local,
    id: String,
    mut socket: WebSocket,
    mut rx: mpsc::Receiver<Message>,
) {
    shared::telemetry::stats().connection(1);
    let max = Duration::from_millis(u64::try_from(MAX_CONNECTION_MS).unwrap_or(u64::MAX));
    let deadline = tokio::time::sleep(max);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) => {
                    // The reply to the client's close frame is queued, not yet sent: closing
                    // flushes it, so the client sees a clean close rather than 1006.
                    let _ = futures::SinkExt::close(&mut socket).await;
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(_)) => {
                    if let Some(c) = local.gateway.get(&id) {
                        c.last_active_at.store(local.app.clock.now_ms(), Ordering::Relaxed);
                    }
                }
            },
            outgoing = rx.recv() => match outgoing {
                Some(message) => {
                    let closing = matches!(message, Message::Close(_));
                    if socket.send(message).await.is_err() || closing {
                        break;
                    }
                }
                None => break,
            },
            () = &mut deadline => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: close_code::AWAY,
                        reason: "connection reached its two-hour limit".into(),
                    })))
                    .await;
                break;
            }
        }
    }
    shared::telemetry::stats().connection(-1);
    close(&local, &id).await;
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
async fn post(local: &Local, peer: SocketAddr, id: &str, body: Bytes) -> Response {
    if let Some(r) = refuse_remote(peer) {
        return r;
    }
    if body.len() > MAX_POST_BYTES {
        return management_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            &format!("the message is over {MAX_POST_BYTES} bytes"),
        );
    }
    let Some(connection) = local.gateway.get(id) else {
        return gone(id);
    };
    // Text frames for UTF-8 (what dashboards read), binary otherwise; no copy either way.
    let message = match axum::extract::ws::Utf8Bytes::try_from(body.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(body),
    };
    match connection.tx.try_send(message) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(mpsc::error::TrySendError::Full(_)) => management_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "the connection is not reading its messages fast enough",
        ),
        Err(mpsc::error::TrySendError::Closed(_)) => gone(id),
    }
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
    if c.tx.send(frame).await.is_err() {
        return gone(id);
    }
    StatusCode::NO_CONTENT.into_response()
}

/// The Management API's routes, with and without a stage prefix.
pub fn routes() -> axum::Router<Local> {
    use axum::routing::get;
    async fn post_plain(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(id): Path<String>,
        body: Bytes,
    ) -> Response {
        post(&l, p, &id, body).await
    }
    async fn post_staged(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path((_, id)): Path<(String, String)>,
        body: Bytes,
    ) -> Response {
        post(&l, p, &id, body).await
    }
    async fn get_plain(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(id): Path<String>,
    ) -> Response {
        describe(&l, p, &id)
    }
    async fn get_staged(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path((_, id)): Path<(String, String)>,
    ) -> Response {
        describe(&l, p, &id)
    }
    async fn delete_plain(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path(id): Path<String>,
    ) -> Response {
        delete(&l, p, &id).await
    }
    async fn delete_staged(
        State(l): State<Local>,
        ConnectInfo(p): ConnectInfo<SocketAddr>,
        Path((_, id)): Path<(String, String)>,
    ) -> Response {
        delete(&l, p, &id).await
    }
    axum::Router::new()
        .route("/ws", get(connect))
        .route(
            "/@connections/{id}",
            get(get_plain).post(post_plain).delete(delete_plain),
        )
        .route(
            "/{stage}/@connections/{id}",
            get(get_staged).post(post_staged).delete(delete_staged),
        )
}
