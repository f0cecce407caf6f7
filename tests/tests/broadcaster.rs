//! The broadcaster's answers to each kind of Management API reply, on both stores: the
//! real SDK client against an HTTP server that answers like API Gateway would for
//! throttled, vanished, forbidden and briefly failing connections.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use bytes::Bytes;
use http::StatusCode;
use shared::store::Store;
use shared::ws::broadcaster::{BroadcastReport, Broadcaster};

/// Scripted answers per connection (consumed in order, then 200), and every request seen.
#[derive(Debug, Default)]
struct Script {
    answers: HashMap<String, Vec<u16>>,
    seen: Vec<(String, u16, String)>,
}

async fn post(
    State(script): State<Arc<Mutex<Script>>>,
    Path((_stage, id)): Path<(String, String)>,
    body: Bytes,
) -> axum::response::Response {
    let mut script = script.lock().unwrap_or_else(|e| e.into_inner());
    let status = match script.answers.get_mut(&id) {
        Some(list) if !list.is_empty() => list.remove(0),
        _ => 200,
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    script.seen.push((id, status, text));
    let kind = match status {
        410 => "GoneException",
        429 => "LimitExceededException",
        403 => "ForbiddenException",
        _ => "InternalServerErrorException",
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_success() {
        return status.into_response();
    }
    (
        status,
        [("x-amzn-errortype", kind)],
        format!(r#"{{"message":"{kind}"}}"#),
    )
        .into_response()
}

async fn start(script: Arc<Mutex<Script>>) -> SocketAddr {
    let app = axum::Router::new()
        .route("/{stage}/@connections/{id}", axum::routing::post(post))
        .with_state(script);
    e2e_tests::serve(app).await
}

async fn each_reply_is_handled_as_api_gateway_means_it(store: Store) {
    let ids = ["ok=", "throttled=", "gone=", "forbidden=", "flaky="];
    for id in ids {
        store
            .add_connection("acme", id, "ops", 0)
            .await
            .unwrap_or_else(|e| panic!("storing connection {id}: {e}"));
    }
    store
        .add_connection("other", "other=", "ops", 0)
        .await
        .expect("storing the other tenant's connection");
    let script = Arc::new(Mutex::new(Script {
        answers: HashMap::from([
            ("throttled=".to_owned(), vec![429, 429]),
            ("gone=".to_owned(), vec![410]),
            ("forbidden=".to_owned(), vec![403]),
            ("flaky=".to_owned(), vec![500]),
        ]),
        seen: Vec::new(),
    }));
    let addr = start(Arc::clone(&script)).await;
    let client = Broadcaster::client_for_endpoint(&format!("http://{addr}/prod"));
    let broadcaster = Broadcaster::new(client, store.clone());
    let messages = [r#"{"part":1}"#, r#"{"part":2}"#];

    let report = broadcaster
        .broadcast("acme", &messages)
        .await
        .expect("broadcasting to acme");
    assert_eq!(
        report,
        BroadcastReport {
            connections: 5,
            delivered: 3,
            gone: 1,
            failed: 1,
            retries: 3,
        }
    );
    let seen = script
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .clone();
    let to = |id: &str| -> Vec<(u16, String)> {
        seen.iter()
            .filter(|(i, _, _)| i == id)
            .map(|(_, s, t)| (*s, t.clone()))
            .collect()
    };
    let both = |before: &[u16]| -> Vec<(u16, String)> {
        let mut out: Vec<(u16, String)> = before
            .iter()
            .map(|s| (*s, messages[0].to_owned()))
            .collect();
        out.push((200, messages[0].to_owned()));
        out.push((200, messages[1].to_owned()));
        out
    };
    assert_eq!(to("ok="), both(&[]));
    assert_eq!(to("throttled="), both(&[429, 429]));
    assert_eq!(to("flaky="), both(&[500]));
    // 410 and 403 are final: one request each, nothing retried, no second part.
    assert_eq!(to("gone="), vec![(410, messages[0].to_owned())]);
    assert_eq!(to("forbidden="), vec![(403, messages[0].to_owned())]);
    assert!(
        to("other=").is_empty(),
        "another tenant's connection was posted to"
    );

    let mut left = store.connections("acme").await.unwrap_or_default();
    left.sort();
    assert_eq!(left, vec!["flaky=", "forbidden=", "ok=", "throttled="]);
    assert_eq!(
        store.connections("other").await.unwrap_or_default(),
        vec!["other="]
    );

    // A tenant without connections costs one listing and no post.
    let none = broadcaster
        .broadcast("nobody", &messages)
        .await
        .expect("broadcasting to a tenant without connections");
    assert_eq!(none, BroadcastReport::default());
}

e2e_tests::on_both_stores!(each_reply_is_handled_as_api_gateway_means_it);
