//! Live updates over WebSocket: the `$connect` / `$disconnect` logic, the `health:update`
//! message, the broadcaster that posts it to every connection of a tenant, and how the
//! collector hands a cycle's updates over to it.

#[cfg(feature = "broadcast")]
pub mod broadcaster;
pub mod delta;
pub mod handover;
pub mod update;

use crate::api::auth::{self, Principal, Scope};
use crate::api::ApiError;
use crate::store::connections::{check_connection_id, ConnectionRecord, Feed, Watch, MAX_WATCHED};
use crate::time::{Millis, HOUR_MS};
use crate::AppState;

/// API Gateway closes every WebSocket connection after two hours; the local gateway does
/// the same, so dashboards reconnect in both places.
pub const MAX_CONNECTION_MS: Millis = 2 * HOUR_MS;

/// The `token` query parameter of a connect request (browsers cannot set headers on a
/// WebSocket, so the key comes in the URL).
pub fn token_of(query: Option<&str>) -> Option<String> {
    crate::api::query_param(query, "token").filter(|t| !t.is_empty())
}

/// The feed a connect request's query asks for (`mode`, `scope`), or 400 `invalid_feed`.
pub fn feed_of(query: Option<&str>) -> Result<Feed, ApiError> {
    let mode = crate::api::query_param(query, "mode");
    let scope = crate::api::query_param(query, "scope");
    Feed::parse(mode.as_deref(), scope.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_feed", m))
}

/// A connection id as the store takes it, or 400 `invalid_connection`.
fn valid_id(connection_id: &str) -> Result<(), ApiError> {
    check_connection_id(connection_id).map_err(|m| ApiError::bad_request("invalid_connection", m))
}

/// `$connect`: checks the key (it needs the `read` scope) and the tenant's WebSocket quotas
/// (`websockets_per_tenant`, `websockets_per_key`), then stores the connection with its
/// tenant. A bad key is refused (401, or 403 without the scope), and a connection past a
/// quota (429 `quota_exceeded` naming it), before anything is stored.
pub async fn connect(
    state: &AppState,
    token: Option<&str>,
    feed: Feed,
    connection_id: &str,
) -> Result<Principal, ApiError> {
    valid_id(connection_id)?;
    let token = token.ok_or_else(|| {
        ApiError::Unauthorized("connect with ?token=<api key> in the URL".to_owned())
    })?;
    let principal = auth::authorize(state, Some(token), Scope::Read).await?;
    check_quotas(state, &principal).await?;
    let now = state.clock.now_ms();
    let record = ConnectionRecord {
        tenant: principal.tenant.clone(),
        name: principal.name.clone(),
        connected_at: now,
        key_id: Some(principal.key_id.clone()),
        feed,
        watch: None,
    };
    state.store.put_connection(connection_id, record).await?;
    tracing::info!(tenant = %principal.tenant, connection_id, "websocket connected");
    Ok(principal)
}

/// Refuses a connection past the tenant's or the key's quota of open connections, counted
/// from the stored connections: one index query of the tenant's connections, and only when
/// the tenant holds as many as a key may, a read of those items to count the key's. A
/// connection whose `$disconnect` never came counts until a broadcast finds it gone (410)
/// or its item expires.
async fn check_quotas(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    let quotas = &state.config.quotas;
    let open = state.store.connections(&principal.tenant).await?.len() as u64;
    if open >= quotas.websockets_per_tenant {
        return Err(ApiError::quota(
            "websockets_per_tenant",
            quotas.websockets_per_tenant,
            "another WebSocket connection",
        ));
    }
    if open >= quotas.websockets_per_key {
        let of_key = state
            .store
            .key_connections(&principal.tenant, &principal.key_id)
            .await?
            .len() as u64;
        if of_key >= quotas.websockets_per_key {
            return Err(ApiError::quota(
                "websockets_per_key",
                quotas.websockets_per_key,
                "another WebSocket connection with this key",
            ));
        }
    }
    Ok(())
}

/// Times a watch is retried when another watch of its connection was stored meanwhile.
const WATCH_ATTEMPTS: usize = 5;

/// Largest message a client may send (a watch of [`MAX_WATCHED`] ids of 100 characters),
/// as API Gateway's largest frame.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 32 * 1024;

/// What a client message asks for: `{"action": "watch", "agents": [...], "integrations":
/// [...]}` (each list optional, at most [`MAX_WATCHED`] ids together; both empty watches
/// nothing), or `{"action": "watch", "all": true}` to receive every change again.
pub fn parse_watch(body: &str) -> Result<Option<Watch>, String> {
    use serde_json::Value;
    if body.len() > MAX_CLIENT_MESSAGE_BYTES {
        return Err(format!(
            "a message is at most {MAX_CLIENT_MESSAGE_BYTES} bytes"
        ));
    }
    let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(body) else {
        return Err("a message is a JSON object".to_owned());
    };
    if fields.get("action").and_then(Value::as_str) != Some("watch") {
        return Err(r#"action: must be "watch""#.to_owned());
    }
    let mut lists: [Vec<String>; 2] = [Vec::new(), Vec::new()];
    for (name, value) in &fields {
        let slot = match name.as_str() {
            "action" => continue,
            "all" if value == &Value::Bool(true) => return Ok(None),
            "all" => return Err("all: must be true (or left out)".to_owned()),
            "agents" => 0,
            "integrations" => 1,
            other => {
                return Err(format!(
                    "{other}: not a field of a watch; expected agents, integrations or all"
                ))
            }
        };
        let Some(ids) = value.as_array() else {
            return Err(format!("{name}: must be an array of ids"));
        };
        for id in ids {
            let id = id
                .as_str()
                .filter(|i| crate::domain::ids::check_id(i).is_ok())
                .ok_or_else(|| format!("{name}: every item must be an id (1 to 128 characters)"))?;
            lists[slot].push(id.to_owned());
        }
    }
    if lists[0].len() + lists[1].len() > MAX_WATCHED {
        return Err(format!("at most {MAX_WATCHED} ids may be watched"));
    }
    let [agents, integrations] = lists;
    Ok(Some(Watch::new(agents, integrations)))
}

/// A client message (API Gateway's `watch` route, the local gateway's text messages): sets
/// what the connection watches, so its delta feed carries only those entities' changes.
/// 400 `invalid_message` naming what is wrong, 409 `not_a_delta_feed` on a connection of
/// whole updates, 404 for a connection not stored (it closed).
pub async fn on_message(state: &AppState, connection_id: &str, body: &str) -> Result<(), ApiError> {
    valid_id(connection_id)?;
    let watch = parse_watch(body).map_err(|m| ApiError::bad_request("invalid_message", m))?;
    // Two watches of one connection may race (API Gateway runs them concurrently): the
    // one that loses the write reads the item again, so the last one sent is kept. A few
    // attempts: each loss means another watch was just stored.
    let stored = crate::store::retry_on_conflict_up_to(WATCH_ATTEMPTS, || async {
        let Some(stored) = state.store.connection(connection_id).await? else {
            return Ok(Err(ApiError::NotFound(format!(
                "no open connection {connection_id}"
            ))));
        };
        if stored.0.feed.is_full() {
            return Ok(Err(ApiError::Conflict {
                code: "not_a_delta_feed",
                message: "a watch goes with ?mode=delta: this connection receives whole updates"
                    .to_owned(),
            }));
        }
        state
            .store
            .set_watch(connection_id, stored, watch.clone())
            .await
            .map(Ok)
    })
    .await;
    match stored {
        Ok(answer) => answer,
        Err(crate::store::StoreError::Conflict) => Err(ApiError::Conflict {
            code: "watch_conflict",
            message: "other watches of this connection kept changing it; send the watch again"
                .to_owned(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// `$disconnect`: forgets the connection. Unknown ids are fine (a repeated event, or one
/// the broadcaster already removed after a 410).
pub async fn disconnect(state: &AppState, connection_id: &str) -> Result<(), ApiError> {
    valid_id(connection_id)?;
    state.store.remove_connection(connection_id).await?;
    tracing::info!(connection_id, "websocket disconnected");
    Ok(())
}

#[cfg(all(test, feature = "embedded"))]
mod tests {
    use super::*;
    use crate::state::testing::{connections, key, state, state_with_reader};

    #[tokio::test]
    async fn connect_stores_the_connection_under_the_keys_tenant_and_disconnect_forgets_it() {
        let (state, _dir, key) = state_with_reader().await;
        let who = connect(&state, Some(&key), Feed::Full, "abc=")
            .await
            .expect("connecting with a stored key");
        assert_eq!((who.tenant.as_str(), who.name.as_str()), ("acme", "oncall"));
        let listed = connections(&state, "acme").await;
        assert_eq!(listed, vec!["abc=".to_owned()]);
        assert!(connections(&state, "other").await.is_empty());
        disconnect(&state, "abc=").await.expect("disconnecting");
        assert!(connections(&state, "acme").await.is_empty());
        // Twice is fine.
        assert!(disconnect(&state, "abc=").await.is_ok());
    }

    /// Why connecting `id` with `token` is refused; the test fails if it is accepted.
    async fn refused(state: &AppState, token: Option<&str>, id: &str) -> ApiError {
        connect(state, token, Feed::Full, id)
            .await
            .err()
            .unwrap_or_else(|| panic!("connection {id} with key {token:?} was accepted"))
    }

    #[tokio::test]
    async fn a_bad_or_missing_key_is_refused_and_nothing_is_stored() {
        let (state, _dir) = state();
        let ingest_only = key(&state, "acme", &["ingest"], "agent").await;
        for (token, status) in [
            (None, 401),
            (Some("ahm_wrong"), 401),
            (Some(ingest_only.as_str()), 403),
        ] {
            let err = refused(&state, token, "abc=").await;
            assert_eq!(err.status().as_u16(), status, "{token:?}: {err}");
        }
        assert!(connections(&state, "acme").await.is_empty());
        let bad_id = connect(&state, Some(&ingest_only), Feed::Full, "a\nb")
            .await
            .err();
        assert_eq!(bad_id.map(|e| e.status().as_u16()), Some(400));
    }

    #[tokio::test]
    async fn connections_past_the_key_or_tenant_quota_are_refused_naming_it() {
        let (mut state, _dir) = state();
        let mut config = (*state.config).clone();
        config.quotas.websockets_per_key = 2;
        config.quotas.websockets_per_tenant = 3;
        state.config = std::sync::Arc::new(config);
        let first = key(&state, "acme", &["read"], "wall").await;
        let second = key(&state, "acme", &["read"], "laptop").await;
        for id in ["a1=", "a2="] {
            connect(&state, Some(&first), Feed::Full, id)
                .await
                .unwrap_or_else(|e| panic!("connection {id} within the quotas: {e}"));
        }
        // A third connection of a key with a quota of 2.
        let err = refused(&state, Some(&first), "a3=").await;
        assert_eq!(err.status().as_u16(), 429, "{err}");
        let body = err.into_response().into_body();
        assert!(body.contains("\"quota\":\"websockets_per_key\""), "{body}");
        // Another key of the tenant still has room, up to the tenant's quota.
        connect(&state, Some(&second), Feed::Full, "b1=")
            .await
            .unwrap_or_else(|e| panic!("the tenant's third connection: {e}"));
        // A fourth connection of a tenant with a quota of 3.
        let err = refused(&state, Some(&second), "b2=").await;
        let body = err.into_response().into_body();
        assert!(
            body.contains("\"quota\":\"websockets_per_tenant\""),
            "{body}"
        );
        assert!(body.contains("\"limit\":3"), "{body}");
        assert_eq!(connections(&state, "acme").await.len(), 3);
        // A closed connection frees its slot.
        disconnect(&state, "a1=")
            .await
            .unwrap_or_else(|e| panic!("disconnecting a1=: {e}"));
        connect(&state, Some(&first), Feed::Full, "a3=")
            .await
            .unwrap_or_else(|e| panic!("a connection after one closed: {e}"));
    }

    #[test]
    fn a_watch_names_what_is_wrong_with_it() {
        let err = |body: &str| parse_watch(body).err().unwrap_or_default();
        assert_eq!(
            parse_watch(r#"{"action":"watch","agents":["b","a","b"]}"#),
            Ok(Some(Watch::new(vec!["a".into(), "b".into()], Vec::new())))
        );
        assert_eq!(parse_watch(r#"{"action":"watch","all":true}"#), Ok(None));
        assert_eq!(err("[]"), "a message is a JSON object");
        assert_eq!(err(r#"{"action":"hello"}"#), r#"action: must be "watch""#);
        assert_eq!(
            err(r#"{"action":"watch","agents":"a"}"#),
            "agents: must be an array of ids"
        );
        assert_eq!(
            err(r#"{"action":"watch","hosts":[]}"#),
            "hosts: not a field of a watch; expected agents, integrations or all"
        );
        assert_eq!(
            err(r#"{"action":"watch","integrations":[""]}"#),
            "integrations: every item must be an id (1 to 128 characters)"
        );
        let many: Vec<String> = (0..=MAX_WATCHED).map(|i| format!("a{i}")).collect();
        let body = serde_json::json!({"action": "watch", "agents": many}).to_string();
        assert_eq!(err(&body), "at most 300 ids may be watched");
        let long = format!(
            r#"{{"action":"watch","agents":["{}"]}}"#,
            "a".repeat(33 * 1024)
        );
        assert_eq!(err(&long), "a message is at most 32768 bytes");
    }

    #[tokio::test]
    async fn a_watch_is_stored_on_a_delta_connection_and_refused_on_a_full_one() {
        let (state, _dir) = state();
        let key = key(&state, "acme", &["read"], "wall").await;
        connect(&state, Some(&key), Feed::Delta, "d=")
            .await
            .expect("a delta connection");
        connect(&state, Some(&key), Feed::Full, "f=")
            .await
            .expect("a full connection");
        let body = r#"{"action":"watch","agents":["a1"]}"#;
        on_message(&state, "d=", body)
            .await
            .expect("watching on a delta feed");
        let feeds = state.store.connection_feeds("acme").await.expect("listing");
        let watched: Vec<_> = feeds
            .iter()
            .filter_map(|(id, l)| Some((id.as_str(), l.watch.clone()?)))
            .collect();
        assert_eq!(watched, [("d=", Watch::new(vec!["a1".into()], Vec::new()))]);
        let status = |r: Result<(), ApiError>| r.err().map(|e| e.status().as_u16());
        assert_eq!(status(on_message(&state, "f=", body).await), Some(409));
        assert_eq!(status(on_message(&state, "gone=", body).await), Some(404));
        assert_eq!(status(on_message(&state, "d=", "{}").await), Some(400));
    }

    #[test]
    fn the_token_comes_from_the_query_string() {
        assert_eq!(
            token_of(Some("token=ahm_x%2By")),
            Some("ahm_x+y".to_owned())
        );
        assert_eq!(token_of(Some("token=")), None);
        assert_eq!(token_of(None), None);
    }
}
