//! The demo inbox: in demo mode (`cargo run -- --demo`) a webhook channel delivers here,
//! so a newcomer sees notifications arrive (and can acknowledge from them) without
//! configuring anything. It is a real receiver: it checks `X-Health-Signature` like any
//! webhook receiver should (the HMAC compared in constant time, and `t=` within
//! [`SIGNATURE_TOLERANCE_S`] of its clock, so a captured message cannot be replayed later),
//! and keeps the last [`KEEP`] messages in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;
use shared::notify::send::{verify_signature, SIGNATURE_TOLERANCE_S};
use shared::render::escape;
use shared::time::Clock;

/// Messages kept.
pub const KEEP: usize = 200;
/// Where the inbox receives and shows messages.
pub const PATH: &str = "/demo/inbox";
/// The id of the demo's channel and rule.
pub const CHANNEL_ID: &str = "demo-inbox";

/// Received messages, newest last, the channel secret that signs them, and the clock
/// signatures' times are checked against (the stack's: the notifier signs with it).
#[derive(Debug)]
pub struct Inbox {
    secret: String,
    clock: Arc<dyn Clock>,
    messages: Mutex<VecDeque<(i64, Value)>>,
}

impl Inbox {
    /// An empty inbox with a fresh signing secret, on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            secret: format!("whsec_{:032x}", rand::random::<u128>()),
            clock,
            messages: Mutex::new(VecDeque::new()),
        }
    }

    /// The secret the demo channel signs with.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    fn list(&self) -> Vec<(i64, Value)> {
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

/// `POST`/`GET /demo/inbox` and `GET /demo/inbox.json`.
pub fn routes<S: Clone + Send + Sync + 'static>(inbox: Arc<Inbox>) -> axum::Router<S> {
    axum::Router::new()
        .route(PATH, get(page).post(receive))
        .route(&format!("{PATH}.json"), get(json))
        .with_state(inbox)
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: String) -> Response {
    let given = headers
        .get("x-health-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = inbox.clock.now_ms();
    if let Err(e) = verify_signature(
        &inbox.secret,
        given,
        &body,
        now.div_euclid(1000),
        SIGNATURE_TOLERANCE_S,
    ) {
        return (StatusCode::UNAUTHORIZED, format!("bad signature: {e}")).into_response();
    }
    let Ok(message) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let mut messages = inbox
        .messages
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A retried message (same notification_id) is shown once, as receivers should do.
    if !messages
        .iter()
        .any(|(_, m)| m["notification_id"] == message["notification_id"])
    {
        messages.push_back((now, message));
        while messages.len() > KEEP {
            messages.pop_front();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn json(State(inbox): State<Arc<Inbox>>) -> Response {
    let messages = inbox.list();
    let list: Vec<&Value> = messages.iter().map(|(_, m)| m).collect();
    axum::Json(list).into_response()
}

async fn page(State(inbox): State<Arc<Inbox>>) -> Response {
    let mut items = String::new();
    for (at, m) in inbox.list().iter().rev() {
        let mut alerts = String::new();
        for a in m["alerts"].as_array().into_iter().flatten() {
            let ack = a["acknowledge_url"]
                .as_str()
                .map(|u| format!(r#" <a href="{}">Acknowledge…</a>"#, escape(u)))
                .unwrap_or_default();
            alerts.push_str(&format!(
                "<li><b class=\"{sev}\">{sev}</b> {msg} <small>{st} {sid}</small>{ack}</li>",
                sev = escape(a["severity"].as_str().unwrap_or_default()),
                msg = escape(a["message"].as_str().unwrap_or_default()),
                st = escape(a["source_type"].as_str().unwrap_or_default()),
                sid = escape(a["source_id"].as_str().unwrap_or_default()),
            ));
        }
        items.push_str(&format!(
            "<article><h2>{status} <small>{when} · {id}</small></h2><ul>{alerts}</ul></article>",
            status = escape(m["status"].as_str().unwrap_or_default()),
            when = shared::time::format_rfc3339(*at),
            id = escape(m["notification_id"].as_str().unwrap_or_default()),
        ));
    }
    if items.is_empty() {
        items = "<p>No notifications yet. When the demo raises an alert, the demo's rule \
                 sends it here (after a 5 s group wait).</p>"
            .to_owned();
    }
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>Demo inbox</title>\
         <style>body{{font:15px system-ui,sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem}}\
         article{{border-top:1px solid #ddd;padding:.5rem 0}}h2{{font-size:1rem;margin:.2rem 0}}\
         small{{color:#666;font-weight:normal}}.critical{{color:#b3261e}}.warning{{color:#9a6200}}\
         .info{{color:#2457a6}}ul{{margin:.2rem 0;padding-left:1.2rem}}</style></head>\
         <body><h1>Demo inbox</h1><p>What the demo's webhook channel received, newest first \
         (refreshes every 5 s). <a href=\"/\">Dashboard</a></p>{items}</body></html>"
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::notify::send::signature;
    use shared::time::ManualClock;
    use tower::ServiceExt;

    const T0: i64 = 1_800_000_000_000;
    const BODY: &str = r#"{"notification_id":"n_1","status":"firing","alerts":[]}"#;

    /// Posts `BODY` with `signature` to an inbox whose clock reads `T0`; the status and
    /// how many messages the inbox then shows.
    async fn post(inbox: &Arc<Inbox>, signature: &str) -> (StatusCode, usize) {
        let request = http::Request::post(PATH)
            .header("x-health-signature", signature)
            .body(axum::body::Body::from(BODY))
            .unwrap_or_else(|e| panic!("building the inbox request: {e}"));
        let response = routes::<()>(Arc::clone(inbox))
            .oneshot(request)
            .await
            .unwrap_or_else(|e| panic!("posting to the inbox: {e}"));
        (response.status(), inbox.list().len())
    }

    /// Posts `BODY` with `signature`, which the inbox must refuse (401, nothing kept):
    /// `what` is the message posted.
    async fn assert_refused(inbox: &Arc<Inbox>, signature: &str, what: &str) {
        let answer = post(inbox, signature).await;
        assert_eq!(answer, (StatusCode::UNAUTHORIZED, 0), "posting {what}");
    }

    fn inbox() -> Arc<Inbox> {
        Arc::new(Inbox::new(Arc::new(ManualClock::new(T0))))
    }

    #[tokio::test]
    async fn a_fresh_signature_is_accepted() {
        let inbox = inbox();
        let signed = signature(inbox.secret(), T0 / 1000 - 10, BODY);
        assert_eq!(
            post(&inbox, &signed).await,
            (StatusCode::NO_CONTENT, 1),
            "posting a message signed 10 s ago"
        );
    }

    #[tokio::test]
    async fn a_signature_older_than_five_minutes_is_refused_as_a_replay() {
        let inbox = inbox();
        // Correctly signed, but 301 s before the inbox's clock: a captured message replayed.
        let stale = signature(inbox.secret(), T0 / 1000 - 301, BODY);
        assert_refused(&inbox, &stale, "a message signed 301 s ago").await;
        let future = signature(inbox.secret(), T0 / 1000 + 301, BODY);
        assert_refused(&inbox, &future, "a message signed 301 s ahead").await;
    }

    #[tokio::test]
    async fn a_wrong_signature_is_refused() {
        let inbox = inbox();
        let other_secret = signature("whsec_not_this_inbox", T0 / 1000, BODY);
        assert_refused(
            &inbox,
            &other_secret,
            "a message signed with another secret",
        )
        .await;
        let other_body = signature(inbox.secret(), T0 / 1000, "{}");
        assert_refused(&inbox, &other_body, "a body other than the one signed").await;
        assert_refused(&inbox, "", "without a signature").await;
    }
}
