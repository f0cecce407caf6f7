//! Key management over real HTTP and a real WebSocket client on the local stack: create
//! (secret once), list (never secrets), revoke (refused at once on REST and WebSocket, open
//! sockets closed), and the guard on the tenant's last admin key.

use std::time::Duration;

use e2e_tests::{ws, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn an_admin_creates_lists_and_revokes_keys_and_revocation_is_immediate() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let admin = Api::of(&app);
    let (status, created) = admin
        .post(
            "/api/health/keys",
            json!({"name": "ops laptop", "scopes": ["read"]}),
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
    let holder = admin.with_key(&key);

    // The new key works, for its scope only.
    let (status, _) = holder.call(Method::GET, "/api/health/agents", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = holder.call(Method::GET, "/api/health/keys", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Listed without its secret, with its first use noted.
    let (status, listed) = admin.call(Method::GET, "/api/health/keys", None).await;
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

    let (status, _) = admin
        .call(Method::DELETE, &format!("/api/health/keys/{key_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = holder.call(Method::GET, "/api/health/agents", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["message"], "the API key was revoked");
    let frame = ws::close_frame(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(u16::from(frame.code), 1008, "{frame:?}");
    assert_eq!(frame.reason.as_str(), "the API key was revoked");
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
    let (_, listed) = admin.call(Method::GET, "/api/health/keys", None).await;
    assert!(
        listed.as_array().is_some_and(|l| l
            .iter()
            .any(|k| k["key_id"] == key_id.as_str() && k["revoked_at"].is_string())),
        "{listed}"
    );
    let (status, _) = admin
        .call(Method::DELETE, &format!("/api/health/keys/{key_id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_last_admin_key_is_kept_and_other_tenants_keys_are_unknown() {
    let (app, _dir) = e2e_tests::spawn_app().await;
    let admin = Api::of(&app);
    let (_, listed) = admin.call(Method::GET, "/api/health/keys", None).await;
    let own_id = listed[0]["key_id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = admin
        .call(Method::DELETE, &format!("/api/health/keys/{own_id}"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "last_admin_key");

    let other = app
        .state
        .store
        .new_api_key("acme", &["admin".to_owned()], "acme admin", 0)
        .await
        .expect("creating acme's admin key");
    let (status, _) = admin
        .call(
            Method::DELETE,
            &format!("/api/health/keys/{}", other.key_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = admin
        .post("/api/health/keys", json!({"name": "x", "scopes": ["root"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("scopes:")));
}
