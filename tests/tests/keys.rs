//! Key management over real HTTP and a real WebSocket client on the local stack: create
//! (secret once), list (never secrets), revoke (refused at once on REST and WebSocket, open
//! sockets closed), and the guard on the tenant's last admin key.

use std::time::Duration;

use e2e_tests::ws;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_keys_and_revocation_is_immediate() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let api = Api {
        client: reqwest::Client::new(),
        base: app.url(),
    };
    let admin = app.api_key.clone();
    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/api/health/keys",
            &admin,
            Some(json!({"name": "ops laptop", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let key = created["key"].as_str().unwrap_or_default().to_owned();
    let key_id = created["key_id"].as_str().unwrap_or_default().to_owned();
    assert!(
        key.starts_with("ahm_") && key_id.starts_with("key_"),
        "{created}"
    );
    assert_eq!(created["scopes"], json!(["read"]));

    // The new key works, for its scope only.
    let (status, _) = api
        .call(reqwest::Method::GET, "/api/health/agents", &key, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .call(reqwest::Method::GET, "/api/health/keys", &key, None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Listed without its secret, with its first use noted.
    let (status, listed) = api
        .call(reqwest::Method::GET, "/api/health/keys", &admin, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = listed.to_string();
    assert!(!text.contains(&key), "a listing shows a secret: {text}");
    let mine = listed
        .as_array()
        .and_then(|l| l.iter().find(|k| k["key_id"] == key_id.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("{key_id} not listed: {listed}"));
    assert_eq!(mine["name"], "ops laptop");
    assert!(mine["last_used_at"].is_string(), "{mine}");
    assert!(mine["revoked_at"].is_null(), "{mine}");

    // A dashboard connected with the key.
    let mut socket = ws::connect(&ws::url(app.addr, &key)).await;
    e2e_tests::eventually(
        "the connection is stored",
        Duration::from_secs(5),
        async || {
            !app.state
                .store
                .connections("local")
                .await
                .unwrap_or_default()
                .is_empty()
        },
    )
    .await;

    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/health/keys/{key_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api
        .call(reqwest::Method::GET, "/api/health/agents", &key, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the API key was revoked");
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .unwrap_or_else(|_| panic!("the revoked key's socket is still open after 5 s"));
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
            assert_eq!(frame.reason.as_str(), "the API key was revoked");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    let (status, _) = ws::refusal(&ws::url(app.addr, &key)).await;
    assert_eq!(status, 401);
    assert!(app
        .state
        .store
        .connections("local")
        .await
        .unwrap_or_default()
        .is_empty());

    // Listed as revoked; revoking again changes nothing.
    let (_, listed) = api
        .call(reqwest::Method::GET, "/api/health/keys", &admin, None)
        .await;
    assert!(
        listed.as_array().is_some_and(|l| l
            .iter()
            .any(|k| k["key_id"] == key_id.as_str() && k["revoked_at"].is_string())),
        "{listed}"
    );
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/health/keys/{key_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_last_admin_key_is_kept_and_other_tenants_keys_are_unknown() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let api = Api {
        client: reqwest::Client::new(),
        base: app.url(),
    };
    let admin = app.api_key.clone();
    let (_, listed) = api
        .call(reqwest::Method::GET, "/api/health/keys", &admin, None)
        .await;
    let own_id = listed[0]["key_id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/health/keys/{own_id}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "last_admin_key");

    let other = app
        .state
        .store
        .new_api_key("acme", &["admin".to_owned()], "acme admin", 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/api/health/keys/{}", other.key_id),
            &admin,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            "/api/health/keys",
            &admin,
            Some(json!({"name": "x", "scopes": ["root"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("scopes:")));
}
