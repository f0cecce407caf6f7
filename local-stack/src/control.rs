//! The control socket: how `create-key`, `list-keys` and `revoke-key` reach a running
//! local stack. The embedded database admits one process, so while the stack runs the CLI
//! asks it, over a Unix socket in the data directory (mode 0600: whoever may read the
//! database file may manage its keys, nobody else), to do the work on its open store;
//! revocation then also closes the key's live WebSocket connections.
//!
//! Protocol: one JSON request line, one JSON answer line (`{"ok": ...}` or
//! `{"error": "..."}`).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use shared::store::keys::{check_tenant, SCOPES};
use shared::AppState;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The socket's file name inside the data directory.
pub const SOCKET_FILE: &str = "control.sock";

/// What the CLI asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// Create a key; answers the key with its secret.
    CreateKey {
        /// Its tenant.
        tenant: String,
        /// Its scopes.
        scopes: Vec<String>,
        /// Its holder.
        name: String,
    },
    /// List a tenant's keys.
    ListKeys {
        /// The tenant.
        tenant: String,
    },
    /// Revoke a key of a tenant.
    RevokeKey {
        /// The tenant.
        tenant: String,
        /// The key's public id.
        key_id: String,
    },
}

/// The socket's path for a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_FILE)
}

/// Checks what every way of running a key command checks: a valid tenant, known scopes,
/// a valid name.
pub fn check_request(request: &Request) -> Result<(), String> {
    let tenant = match request {
        Request::CreateKey {
            tenant,
            scopes,
            name,
        } => {
            if let Some(bad) = scopes.iter().find(|s| !SCOPES.contains(&s.as_str())) {
                return Err(format!(
                    "unknown scope \"{bad}\"; scopes are read, ingest and admin"
                ));
            }
            if scopes.is_empty() {
                return Err("give at least one scope".to_owned());
            }
            shared::domain::ids::check_name(name).map_err(|m| format!("name {m}"))?;
            tenant
        }
        Request::ListKeys { tenant } | Request::RevokeKey { tenant, .. } => tenant,
    };
    check_tenant(tenant)
}

/// Runs a request on a state: the answer as JSON, or an error for a human.
pub async fn execute(state: &AppState, request: Request) -> Result<serde_json::Value, String> {
    check_request(&request)?;
    let now = state.clock.now_ms();
    let store_err = |e: shared::store::StoreError| e.to_string();
    match request {
        Request::CreateKey {
            tenant,
            scopes,
            name,
        } => {
            let created = state
                .store
                .new_api_key(&tenant, &scopes, &name, now)
                .await
                .map_err(store_err)?;
            Ok(serde_json::json!(created))
        }
        Request::ListKeys { tenant } => Ok(serde_json::json!(state
            .store
            .list_api_keys(&tenant)
            .await
            .map_err(store_err)?)),
        Request::RevokeKey { tenant, key_id } => {
            let info = shared::api::keys::revoke_key(state, &tenant, &key_id)
                .await
                .map_err(|e| e.to_string())?;
            Ok(serde_json::json!(info))
        }
    }
}

/// Serves the control socket of a running stack until the task is aborted. A stale socket
/// file (from a stack that did not stop cleanly) is replaced: the database lock already
/// proved no other stack uses this data directory.
#[cfg(unix)]
pub fn serve(state: AppState, data_dir: &Path) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    let _ = std::fs::remove_file(&path);
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                // One request per connection, at most 64 KiB.
                let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, 64 * 1024));
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let answer = match serde_json::from_str::<Request>(&line) {
                    Ok(request) => match execute(&state, request).await {
                        Ok(value) => serde_json::json!({ "ok": value }),
                        Err(message) => serde_json::json!({ "error": message }),
                    },
                    Err(e) => serde_json::json!({ "error": format!("bad request: {e}") }),
                };
                let _ = write.write_all(format!("{answer}\n").as_bytes()).await;
            });
        }
    }))
}

/// Sends a request to a running stack's control socket. `None` if no stack listens there
/// (no socket, or a stale one); `Some(Err)` if it answered with an error.
#[cfg(unix)]
pub async fn send(data_dir: &Path, request: &Request) -> Option<Result<serde_json::Value, String>> {
    let stream = tokio::net::UnixStream::connect(socket_path(data_dir))
        .await
        .ok()?;
    let (read, mut write) = stream.into_split();
    let text = format!("{}\n", serde_json::to_string(request).ok()?);
    if let Err(e) = write.write_all(text.as_bytes()).await {
        return Some(Err(format!(
            "the running stack did not take the request: {e}"
        )));
    }
    let mut line = String::new();
    if let Err(e) = BufReader::new(read).read_line(&mut line).await {
        return Some(Err(format!("the running stack did not answer: {e}")));
    }
    let answer: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => return Some(Err("the running stack's answer is not JSON".to_owned())),
    };
    Some(match (answer.get("ok"), answer.get("error")) {
        (Some(ok), _) => Ok(ok.clone()),
        (_, Some(e)) => Err(e.as_str().unwrap_or("failed").to_owned()),
        _ => Err("the running stack's answer has neither ok nor error".to_owned()),
    })
}
