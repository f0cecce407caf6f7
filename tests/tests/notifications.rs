//! Notifications with real parts: a real HTTP receiver that verifies `X-Health-Signature`,
//! local receivers checking Slack and PagerDuty payloads, a real SMTP server (aiosmtpd),
//! SES v2 and SNS on the test server (moto), on both stores. Timing cases drive the
//! notifier with explicit times on a manual clock (which each claim and send reads); the
//! end-to-end case runs the local stack's collector and notifier on the real clock.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e_tests::{on_both_stores, seed, RequestExt as _};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use shared::config::Config;
use shared::domain::alerts::{AlertRecord, Severity, SourceType};
use shared::domain::notify::{Destination, Matcher, RuleRecord, SilenceRecord};
use shared::notify::token::{AckClaim, SentFor};
use shared::notify::Notifier;
use shared::store::alerts::Acknowledgement;
use shared::store::notify::{DeliveryStatus, NotificationRecord};
use shared::store::Store;
use shared::time::{ManualClock, Millis};
use shared::AppState;

const T0: Millis = 1_800_000_000_000;
const S: Millis = 1000;
const SECRET: &str = "whsec_test";

/// What the receiver does with the next requests.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    Status(u16),
    TooMany { retry_after_s: u64 },
}

/// A real HTTP receiver: verifies the webhook signature (when a secret is given) and keeps
/// every request's parsed body.
#[derive(Clone)]
struct Receiver {
    port: u16,
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    bad_signatures: Arc<AtomicUsize>,
}

impl Receiver {
    /// A receiver on a reserved port; not listening until [`Receiver::listen`].
    async fn reserve() -> Self {
        let (listener, addr) = e2e_tests::listener().await;
        drop(listener);
        let port = addr.port();
        Self {
            port,
            bodies: Arc::default(),
            answers: Arc::default(),
            bad_signatures: Arc::default(),
        }
    }

    async fn start() -> Self {
        let r = Self::reserve().await;
        r.listen().await;
        r
    }

    async fn listen(&self) {
        let me = self.clone();
        let app = axum::Router::new().fallback(
            move |uri: http::Uri, headers: http::HeaderMap, body: bytes::Bytes| {
                let me = me.clone();
                async move { me.handle(uri, headers, body) }
            },
        );
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|e| panic!("cannot listen on the reserved port: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
    }

    fn handle(
        &self,
        uri: http::Uri,
        headers: http::HeaderMap,
        body: bytes::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let text = String::from_utf8_lossy(&body).into_owned();
        if uri.path() == "/hook" && !verify(&headers, &text) {
            self.bad_signatures.fetch_add(1, Ordering::SeqCst);
            return (http::StatusCode::UNAUTHORIZED, "bad signature").into_response();
        }
        let answer = {
            let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
            if answers.is_empty() {
                Answer::Ok
            } else {
                answers.remove(0)
            }
        };
        match answer {
            Answer::Ok => {
                let value = serde_json::from_str(&text).unwrap_or(Value::Null);
                self.bodies
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((uri.path().to_owned(), value));
                http::StatusCode::OK.into_response()
            }
            Answer::Status(s) => http::StatusCode::from_u16(s)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
                .into_response(),
            Answer::TooMany { retry_after_s } => (
                http::StatusCode::TOO_MANY_REQUESTS,
                [(http::header::RETRY_AFTER, retry_after_s.to_string())],
                "slow down",
            )
                .into_response(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn then_answer(&self, answers: Vec<Answer>) {
        *self.answers.lock().unwrap_or_else(|e| e.into_inner()) = answers;
    }

    fn received(&self) -> Vec<(String, Value)> {
        self.bodies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Accepted webhook bodies.
    fn webhooks(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|(p, _)| p == "/hook")
            .map(|(_, v)| v)
            .collect()
    }
}

/// Checks `X-Health-Signature: t=<secs>,v1=<hex>` as a receiver would: HMAC-SHA256 of
/// "<t>.<body>" with the shared secret.
fn verify(headers: &http::HeaderMap, body: &str) -> bool {
    let Some(sig) = headers
        .get("x-health-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in sig.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value.to_owned()),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()) else {
        return false;
    };
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&v1).is_ok()
}

fn config() -> Config {
    Config {
        polling_enabled: false,
        probe_allowed_addresses: vec![e2e_tests::LOOPBACK.into()],
        public_url: Some("http://monitor.test".to_owned()),
        ..Config::default()
    }
}

/// A notifier on a manual clock: [`pass`] sets the clock to the pass's time, so the claims
/// and sends of the pass read that time (unless a receiver moves the clock on).
struct Driven {
    notifier: Notifier,
    clock: Arc<ManualClock>,
}

impl std::ops::Deref for Driven {
    type Target = Notifier;
    fn deref(&self) -> &Notifier {
        &self.notifier
    }
}

async fn setup(store: Store, config: Config) -> (AppState, Driven) {
    let clock = Arc::new(ManualClock::new(T0));
    let mut state = AppState::new(store, config);
    state.clock = Arc::clone(&clock) as Arc<dyn shared::time::Clock>;
    e2e_tests::new_key(&state.store, "acme", &["admin"], "ops").await;
    let notifier = Notifier::new(&state).expect("building the notifier");
    (state, Driven { notifier, clock })
}

async fn channel(state: &AppState, id: &str, destination: Destination) {
    seed::channel(
        &state.store,
        "acme",
        id,
        &format!("{id} channel"),
        destination,
    )
    .await;
}

async fn rule(state: &AppState, channels: &[&str], wait: u64, interval: u64, repeat: u64) {
    let rule = RuleRecord {
        group_wait_s: wait,
        group_interval_s: interval,
        repeat_interval_s: repeat,
        ..seed::rule("all", channels)
    };
    seed::put_rule(&state.store, "acme", &rule).await;
}

async fn webhook(state: &AppState, receiver: &Receiver) {
    channel(
        state,
        "hook",
        Destination::Webhook {
            url: receiver.url("/hook"),
            secret: SECRET.to_owned(),
        },
    )
    .await;
}

/// A critical alert on host `id`'s CPU.
fn alert(id: &str, at: Millis) -> AlertRecord {
    AlertRecord {
        message: format!("High CPU usage on {id}: 95%"),
        source_id: id.into(),
        ..seed::alert(id, at)
    }
}

async fn raise(state: &AppState, a: &AlertRecord) {
    seed::save_alert(&state.store, "acme", a).await;
}

/// The delivery log of alert web-1.
async fn delivery_log(state: &AppState) -> Vec<NotificationRecord> {
    state
        .store
        .notifications_for_alert("acme", "web-1")
        .await
        .expect("reading web-1's delivery log")
}

async fn pass(notifier: &Driven, now: Millis) -> shared::notify::PassReport {
    notifier.clock.set(now);
    notifier
        .pass_tenant("acme", now)
        .await
        .unwrap_or_else(|e| panic!("notifier pass at {now}: {e}"))
}

/// Alert ids of each accepted webhook message, with its status and notification id.
fn messages(receiver: &Receiver) -> Vec<(String, String, Vec<String>)> {
    receiver
        .webhooks()
        .iter()
        .map(|b| {
            let ids = b["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["alert_id"].as_str().unwrap_or_default().to_owned())
                .collect();
            (
                b["notification_id"].as_str().unwrap_or_default().to_owned(),
                b["status"].as_str().unwrap_or_default().to_owned(),
                ids,
            )
        })
        .collect()
}

async fn a_receiver_down_for_60_seconds_gets_every_message_exactly_once(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::reserve().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 5, 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    // Down (connection refused) for 60 s; a second alert is raised during the outage.
    let mut t = T0;
    while t < T0 + 60 * S {
        if t == T0 + 30 * S {
            raise(&state, &alert("web-2", t)).await;
        }
        pass(&notifier, t).await;
        t += 5 * S;
    }
    assert!(receiver.received().is_empty());
    receiver.listen().await;
    while t < T0 + 10 * 60 * S {
        pass(&notifier, t).await;
        t += 5 * S;
    }
    let got = messages(&receiver);
    assert_eq!(got.len(), 2, "{got:?}");
    let mut ids: Vec<&String> = got.iter().map(|(n, _, _)| n).collect();
    ids.dedup();
    assert_eq!(ids.len(), 2, "a notification_id arrived twice: {got:?}");
    let mut alerts: Vec<String> = got.iter().flat_map(|(_, _, a)| a.clone()).collect();
    alerts.sort();
    assert_eq!(alerts, ["web-1", "web-2"]);
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0);
    // The delivery log shows the retries.
    let log = delivery_log(&state).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, DeliveryStatus::Delivered);
    assert!(log[0].attempts > 3, "attempts: {}", log[0].attempts);
    assert!(log[0].last_error.is_none());
}

/// A receiver down (connection refused) for seven minutes after an alert: the notifier,
/// passing whenever it says something is next due (as the local stack's loop sleeps), gets
/// the message to it within 30 s of it being back, and only once. (Under the former
/// backoff, 2 s doubling to 5 min, no attempt could fall between 6.4 and 8.5 minutes.)
async fn a_receiver_back_within_ten_minutes_gets_its_message_within_30_seconds(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::reserve().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 300, 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    let back_at = T0 + 7 * 60 * S + 7 * S;
    let mut listening = false;
    let mut t = T0;
    while receiver.webhooks().is_empty() {
        assert!(
            t < T0 + 30 * 60 * S,
            "not delivered within 30 min of the alert; the receiver was back at +{} s",
            (back_at - T0) / S
        );
        let report = pass(&notifier, t).await;
        let next = report.next_due.unwrap_or_else(|| {
            panic!("a pending message but nothing due after the pass at {t}: {report:?}")
        });
        // The receiver comes back between two passes.
        if !listening && next > back_at {
            receiver.listen().await;
            listening = true;
        }
        t = next.max(t + 1);
    }
    let log = delivery_log(&state).await;
    assert_eq!(log.len(), 1, "one message: {log:?}");
    let delivered_at = log[0]
        .delivered_at
        .unwrap_or_else(|| panic!("not delivered: {log:?}"));
    assert!(
        delivered_at - back_at <= 30 * S,
        "delivered {} s after the receiver was back ({} attempts)",
        (delivered_at - back_at) / S,
        log[0].attempts
    );
    assert_eq!(messages(&receiver).len(), 1, "the message arrived once");
}

/// Two channels in one pass; the first one's receiver takes 400 s (the clock moves on
/// while it answers). The second message is signed with the time it is sent, so a
/// receiver allowing 300 s of clock difference accepts it, and its lease counts from its
/// claim, so a second notifier passing meanwhile leaves it alone: it arrives once.
#[tokio::test]
async fn a_slow_send_does_not_age_the_signatures_or_leases_of_later_messages() {
    use axum::response::IntoResponse;
    use shared::notify::send::verify_signature;

    #[derive(Default)]
    struct Slow {
        /// (path, the signature's t=, the receiver's clock then (s), accepted)
        seen: Mutex<Vec<(String, i64, i64, bool)>>,
        b_arrived: tokio::sync::Notify,
        release_b: tokio::sync::Notify,
    }
    let (store, _dir) = e2e_tests::embedded_store();
    let (state, one) = setup(store, config()).await;
    let two = Notifier::new(&state).unwrap_or_else(|e| panic!("a second notifier: {e}"));
    let clock = Arc::clone(&one.clock);
    let slow = Arc::new(Slow::default());
    let app = {
        let (slow, clock) = (Arc::clone(&slow), Arc::clone(&clock));
        axum::Router::new().fallback(
            move |uri: http::Uri, headers: http::HeaderMap, body: String| {
                let (slow, clock) = (Arc::clone(&slow), Arc::clone(&clock));
                async move {
                    let header = headers
                        .get("x-health-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let now = shared::time::Clock::now_ms(&*clock) / 1000;
                    let t = header
                        .split(',')
                        .find_map(|p| p.strip_prefix("t="))
                        .and_then(|t| t.parse().ok())
                        .unwrap_or_default();
                    let accepted = verify_signature(SECRET, header, &body, now, 300).is_ok();
                    let first_b = {
                        let mut seen = slow.seen.lock().unwrap_or_else(|e| e.into_inner());
                        let first = uri.path() == "/b" && !seen.iter().any(|s| s.0 == "/b");
                        seen.push((uri.path().to_owned(), t, now, accepted));
                        first
                    };
                    if first_b {
                        slow.b_arrived.notify_one();
                    }
                    if !accepted {
                        return (http::StatusCode::UNAUTHORIZED, "stale or bad signature")
                            .into_response();
                    }
                    if uri.path() == "/a" {
                        // Answers 400 s later (by the clock: the notifier waits that long).
                        clock.advance(400 * S);
                    }
                    if first_b {
                        // Still sending b while a second notifier passes.
                        slow.release_b.notified().await;
                    }
                    http::StatusCode::OK.into_response()
                }
            },
        )
    };
    let port = e2e_tests::serve(app).await.port();
    for id in ["a", "b"] {
        channel(
            &state,
            id,
            Destination::Webhook {
                url: format!("http://127.0.0.1:{port}/{id}"),
                secret: SECRET.to_owned(),
            },
        )
        .await;
    }
    rule(&state, &["a", "b"], 0, 300, 3600).await;
    raise(&state, &alert("web-1", T0)).await;

    one.clock.set(T0);
    let first = tokio::spawn(async move { one.pass_tenant("acme", T0).await });
    tokio::time::timeout(Duration::from_secs(60), slow.b_arrived.notified())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "channel b's message never arrived: {:?}",
                slow.seen.lock().map(|s| s.clone())
            )
        });
    // b's message is being sent, 400 s after the first pass began: a second notifier
    // passing now must find it held.
    let now = shared::time::Clock::now_ms(&*clock);
    let second = two
        .pass_tenant("acme", now)
        .await
        .unwrap_or_else(|e| panic!("the second notifier's pass: {e}"));
    slow.release_b.notify_one();
    let first = first
        .await
        .unwrap_or_else(|e| panic!("the first pass panicked: {e}"))
        .unwrap_or_else(|e| panic!("the first notifier's pass: {e}"));

    let seen = slow.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let b: Vec<_> = seen.iter().filter(|s| s.0 == "/b").collect();
    assert_eq!(b.len(), 1, "channel b's message arrived once: {seen:?}");
    assert_eq!(
        b[0].1,
        (T0 + 400 * S) / 1000,
        "signed when sent, not when the pass began: {seen:?}"
    );
    assert!(
        seen.iter().all(|s| s.3),
        "every signature accepted: {seen:?}"
    );
    assert_eq!(
        first.delivered, 2,
        "the first pass delivered a and b: {first:?}"
    );
    assert_eq!(
        (second.delivered, second.failed_attempts),
        (0, 0),
        "the second notifier sent nothing: {second:?}"
    );
}

async fn too_many_requests_waits_for_retry_after(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    receiver.then_answer(vec![Answer::TooMany { retry_after_s: 30 }]);
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 5, 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    let first = pass(&notifier, T0).await;
    assert_eq!(first.failed_attempts, 1);
    assert_eq!(first.next_due, Some(T0 + 30 * S));
    // Not before the receiver asked.
    let early = pass(&notifier, T0 + 29 * S).await;
    assert_eq!((early.delivered, early.failed_attempts), (0, 0));
    let due = pass(&notifier, T0 + 30 * S).await;
    assert_eq!(due.delivered, 1);
    assert_eq!(messages(&receiver).len(), 1);
}

async fn a_final_refusal_is_not_retried_and_is_logged(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    receiver.then_answer(vec![Answer::Status(410)]);
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 5, 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    pass(&notifier, T0).await;
    let later = pass(&notifier, T0 + 3600 * S).await;
    assert_eq!(later.failed_attempts, 0, "a 410 must not be retried");
    let log = delivery_log(&state).await;
    assert_eq!(log[0].status, DeliveryStatus::Failed);
    assert_eq!(log[0].attempts, 1);
    assert!(log[0]
        .last_error
        .as_deref()
        .is_some_and(|e| e.contains("410")));
}

async fn fifty_alerts_raised_together_go_out_in_one_message(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 10, 300, 3600).await;
    for i in 0..50 {
        raise(&state, &alert(&format!("host-{i:02}"), T0)).await;
    }
    let waiting = pass(&notifier, T0).await;
    assert_eq!(waiting.decided, 0);
    assert_eq!(waiting.next_due, Some(T0 + 10 * S));
    pass(&notifier, T0 + 10 * S).await;
    let got = messages(&receiver);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "firing");
    assert_eq!(got[0].2.len(), 50);
}

async fn reminders_stop_when_the_alert_is_acknowledged(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 60, 600).await;
    raise(&state, &alert("web-1", T0)).await;
    pass(&notifier, T0).await;
    pass(&notifier, T0 + 600 * S).await;
    let statuses: Vec<String> = messages(&receiver).into_iter().map(|m| m.1).collect();
    assert_eq!(statuses, ["firing", "reminder"]);
    state
        .store
        .acknowledge_alert("acme", "web-1", by_ops(T0 + 700 * S))
        .await
        .expect("acknowledging web-1");
    for k in 2..6 {
        pass(&notifier, T0 + k * 600 * S).await;
    }
    assert_eq!(
        messages(&receiver).len(),
        2,
        "a reminder after acknowledgement"
    );
}

async fn a_silence_holds_notifications_and_its_end_sends_what_still_fires(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 60, 3600).await;
    let silence = SilenceRecord {
        matcher: Matcher {
            source_id: Some("web-*".into()),
            ..Matcher::default()
        },
        ..seed::silence("s_1", T0, 5)
    };
    seed::put_silence(&state.store, "acme", &silence).await;
    raise(&state, &alert("web-1", T0 + S)).await;
    raise(&state, &alert("db-1", T0 + S)).await;
    for k in 1..30 {
        pass(&notifier, T0 + k * 10 * S).await;
    }
    // Only the unsilenced alert went out.
    let got = messages(&receiver);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].2, ["db-1"]);
    // The silence ends while web-1 still fires: it is notified then.
    pass(&notifier, T0 + 300 * S).await;
    let got = messages(&receiver);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].2, ["web-1"]);
}

async fn slack_and_pagerduty_get_their_documented_payloads(store: Store) {
    let receiver = Receiver::start().await;
    let (state, notifier) = setup(
        store,
        Config {
            pagerduty_events_url: receiver.url("/v2/enqueue"),
            ..config()
        },
    )
    .await;
    channel(
        &state,
        "slack",
        Destination::Slack {
            url: receiver.url("/services/T0/B0/xyz"),
        },
    )
    .await;
    channel(
        &state,
        "pd",
        Destination::Pagerduty {
            routing_key: "R0UT1NGKEY".into(),
        },
    )
    .await;
    rule(&state, &["slack", "pd"], 0, 0, 3600).await;
    // An agent alert: Slack names the agent.
    state
        .store
        .put_agent(
            "acme",
            "sales",
            &shared::store::agents::AgentUpdate {
                agent_name: Some("Sales Assistant".into()),
                ..Default::default()
            },
            T0,
        )
        .await
        .expect("putting agent sales");
    let mut a = alert("alert_agent_sales_error_rate_1", T0);
    a.source_type = SourceType::Agent;
    a.source_id = "sales".into();
    a.severity = Severity::Warning;
    a.message = "Agent Sales Assistant has high error rate: 65.0%".into();
    raise(&state, &a).await;
    pass(&notifier, T0).await;
    let slack: Vec<Value> = receiver
        .received()
        .into_iter()
        .filter(|(p, _)| p.starts_with("/services/"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(slack.len(), 1);
    // Slack's incoming-webhook format: text fallback, blocks inside a coloured attachment.
    let s = &slack[0];
    assert!(s["text"].as_str().is_some_and(|t| t.contains("firing")));
    let attachment = &s["attachments"][0];
    assert_eq!(attachment["color"], "#ecb22e");
    let blocks = attachment["blocks"].as_array().cloned().unwrap_or_default();
    assert!(blocks.len() <= 50);
    assert_eq!(blocks[0]["type"], "header");
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    let section = &blocks[1];
    assert_eq!(section["type"], "section");
    assert_eq!(section["text"]["type"], "mrkdwn");
    let text = section["text"]["text"].as_str().unwrap_or_default();
    assert!(text.contains("agent Sales Assistant (sales)"), "{text}");
    assert_eq!(section["accessory"]["type"], "button");
    let ack = section["accessory"]["url"].as_str().unwrap_or_default();
    assert!(
        ack.starts_with("http://monitor.test/api/health/ack/"),
        "{ack}"
    );
    assert!(blocks.last().is_some_and(|b| b["type"] == "context"));
    // PagerDuty Events API v2: one trigger per alert, deduplicated on the alert id.
    let pd: Vec<Value> = receiver
        .received()
        .into_iter()
        .filter(|(p, _)| p == "/v2/enqueue")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(pd.len(), 1);
    let e = &pd[0];
    assert_eq!(e["routing_key"], "R0UT1NGKEY");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], "alert_agent_sales_error_rate_1");
    assert!(e["payload"]["summary"]
        .as_str()
        .is_some_and(|s| !s.is_empty() && s.len() <= 1024));
    assert_eq!(e["payload"]["source"], "sales");
    assert_eq!(e["payload"]["severity"], "warning");
    // Acknowledged here: PagerDuty hears it; resolved: it hears that too.
    state
        .store
        .acknowledge_alert("acme", &a.alert_id, by_ops(T0 + S))
        .await
        .expect("acknowledging the agent's alert");
    pass(&notifier, T0 + S).await;
    let (mut resolved, version) = state
        .store
        .all_alerts("acme")
        .await
        .expect("reading acme's alerts")
        .into_iter()
        .find(|(x, _)| x.alert_id == a.alert_id)
        .unwrap_or_else(|| panic!("the agent's alert is gone"));
    resolved.resolved_at = Some(T0 + 2 * S);
    state
        .store
        .save_alert("acme", &resolved, Some(version))
        .await
        .expect("resolving the agent's alert");
    pass(&notifier, T0 + 2 * S).await;
    let actions: Vec<String> = receiver
        .received()
        .into_iter()
        .filter(|(p, _)| p == "/v2/enqueue")
        .map(|(_, v)| v["event_action"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
}

async fn a_channel_failing_for_15_minutes_raises_an_alert_the_other_channels_get(store: Store) {
    let (state, notifier) = setup(store, config()).await;
    let broken = Receiver::start().await;
    broken.then_answer(vec![Answer::Status(503); 1000]);
    let healthy = Receiver::start().await;
    for (id, r) in [("broken", &broken), ("healthy", &healthy)] {
        channel(
            &state,
            id,
            Destination::Webhook {
                url: r.url("/hook"),
                secret: SECRET.to_owned(),
            },
        )
        .await;
    }
    rule(&state, &["broken", "healthy"], 0, 60, 24 * 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    let mut t = T0;
    while t <= T0 + 20 * 60 * S {
        pass(&notifier, t).await;
        t += 30 * S;
    }
    let failing: Vec<Value> = healthy
        .webhooks()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["source_id"] == "broken")
        .collect();
    assert_eq!(failing.len(), 1, "{:?}", healthy.webhooks());
    let message = failing[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Notification channel broken channel failing for 15 min: "),
        "{message}"
    );
    assert!(message.contains("503"), "{message}");
    // The channel recovers: its message goes out and the alert resolves.
    broken.then_answer(Vec::new());
    while t <= T0 + 40 * 60 * S {
        pass(&notifier, t).await;
        t += 30 * S;
    }
    // Its held-back message about web-1 arrives, once (its own failing alert and that
    // alert's resolution follow, as the rule routes every alert to it too).
    let web1 = messages(&broken)
        .into_iter()
        .filter(|(_, _, ids)| ids.iter().any(|i| i == "web-1"))
        .count();
    assert_eq!(web1, 1, "{:?}", messages(&broken));
    let active = state
        .store
        .active_alerts("acme")
        .await
        .expect("reading the active alerts");
    assert!(
        active.iter().all(|a| a.condition != "channel_failing"),
        "{active:?}"
    );
    let resolved = healthy
        .webhooks()
        .iter()
        .any(|b| b["status"] == "resolved" && b["alerts"][0]["source_id"] == "broken");
    assert!(resolved, "{:?}", healthy.webhooks());
}

async fn a_maintenance_window_across_midnight_in_berlin_holds_and_then_releases(store: Store) {
    use shared::domain::notify::{Schedule, Weekday};
    let at = |t: &str| {
        shared::time::parse_rfc3339(t).unwrap_or_else(|| panic!("not an RFC 3339 time: {t}"))
    };
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 0, 24 * 3600).await;
    // Saturdays 23:00 Berlin for two hours: in winter (UTC+1) Sat 22:00Z to Sun 00:00Z.
    let window = SilenceRecord {
        starts_at: None,
        ends_at: None,
        schedule: Some(Schedule {
            timezone: "Europe/Berlin".into(),
            days: vec![Weekday::Sat],
            start: "23:00".into(),
            duration_minutes: 120,
        }),
        comment: "weekly maintenance".into(),
        created_at: 0,
        ..seed::silence("s_weekly", 0, 0)
    };
    seed::put_silence(&state.store, "acme", &window).await;
    // Before the window: notified at once.
    raise(&state, &alert("before", at("2027-01-16T21:59:00Z"))).await;
    pass(&notifier, at("2027-01-16T21:59:00Z")).await;
    assert_eq!(messages(&receiver).len(), 1);
    // Sunday 00:30 local, past midnight: still Saturday's window.
    raise(&state, &alert("during", at("2027-01-16T23:30:00Z"))).await;
    pass(&notifier, at("2027-01-16T23:30:00Z")).await;
    pass(&notifier, at("2027-01-16T23:59:59Z")).await;
    assert_eq!(messages(&receiver).len(), 1, "{:?}", messages(&receiver));
    // The window ends at 01:00 local; the alert still fires, so it goes out then.
    pass(&notifier, at("2027-01-17T00:00:00Z")).await;
    let got = messages(&receiver);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].2, ["during"]);
}

/// A rule that asks for the weekly report: the first pass of each week (Monday, UTC)
/// sends last week's report to its webhook, signed like every message, and only once.
async fn the_weekly_report_reaches_a_webhook_once_a_week(store: Store) {
    use shared::notify::plan::{week_of, week_start};
    let (state, notifier) = setup(store, config()).await;
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    let weekly = RuleRecord {
        matcher: Matcher {
            severity: Some(vec![Severity::Critical]),
            ..Matcher::default()
        },
        weekly_report: true,
        ..seed::rule("weekly", &["hook"])
    };
    seed::put_rule(&state.store, "acme", &weekly).await;
    // Friday: ten executions, two failed.
    let events: Vec<Value> = (0..10)
        .map(|i| json!({"event_id": format!("e{i}"), "type": "execution.finished", "agent_id": "sales", "execution_id": format!("x{i}"), "outcome": if i < 2 { "failed" } else { "completed" }, "duration_ms": 500, "timestamp": shared::time::format_rfc3339(T0)}))
        .collect();
    seed::ingest(&state.store, "acme", json!(events), T0).await;
    pass(&notifier, T0 + S).await;
    assert!(
        receiver.webhooks().is_empty(),
        "a rule asking mid-week waits for Monday"
    );

    let monday = week_start(week_of(T0) + 1);
    pass(&notifier, monday + 60 * S).await;
    let got = receiver.webhooks();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0];
    assert_eq!(body["status"], "report");
    assert_eq!(body["alerts"], json!([]));
    let report = &body["report"];
    assert_eq!(report["tenant"], "acme");
    assert_eq!(report["period"], "week");
    assert_eq!(
        report["from"],
        shared::time::format_rfc3339(week_start(week_of(T0))),
        "last Monday"
    );
    assert_eq!(
        report["to"],
        shared::time::format_rfc3339(monday - 1000),
        "to Sunday night"
    );
    assert_eq!(report["summary"]["executions"], 10);
    assert_eq!(report["summary"]["failed_executions"], 2);
    assert_eq!(report["top_failing_agents"][0]["agent_id"], "sales");
    assert_eq!(receiver.bad_signatures.load(Ordering::SeqCst), 0, "signed");

    pass(&notifier, monday + 120 * S).await;
    pass(&notifier, monday + 6 * 24 * 3600 * S).await;
    assert_eq!(receiver.webhooks().len(), 1, "once a week");
    pass(&notifier, monday + 7 * 24 * 3600 * S + S).await;
    assert_eq!(receiver.webhooks().len(), 2, "and again the next Monday");
}

on_both_stores!(
    the_weekly_report_reaches_a_webhook_once_a_week,
    a_maintenance_window_across_midnight_in_berlin_holds_and_then_releases,
    a_channel_failing_for_15_minutes_raises_an_alert_the_other_channels_get,
    a_receiver_down_for_60_seconds_gets_every_message_exactly_once,
    a_receiver_back_within_ten_minutes_gets_its_message_within_30_seconds,
    too_many_requests_waits_for_retry_after,
    a_final_refusal_is_not_retried_and_is_logged,
    fifty_alerts_raised_together_go_out_in_one_message,
    reminders_stop_when_the_alert_is_acknowledged,
    a_silence_holds_notifications_and_its_end_sends_what_still_fires,
    slack_and_pagerduty_get_their_documented_payloads,
);

/// Two notifiers passing over the same tenant at the same moments decide and send each
/// message once (conditional decisions and leases). Embedded only: moto cannot referee
/// concurrent DynamoDB transactions.
#[tokio::test]
async fn two_notifiers_at_once_send_each_message_once() {
    let (store, _dir) = e2e_tests::embedded_store();
    let (state, one) = setup(store, config()).await;
    let two = Notifier::new(&state).expect("building a second notifier");
    let receiver = Receiver::start().await;
    webhook(&state, &receiver).await;
    rule(&state, &["hook"], 0, 0, 60).await;
    for i in 0..5 {
        raise(&state, &alert(&format!("h{i}"), T0)).await;
    }
    for k in 0..5 {
        let now = T0 + k * 60 * S;
        one.clock.set(now);
        let (a, b) = tokio::join!(one.pass_tenant("acme", now), two.pass_tenant("acme", now));
        a.unwrap_or_else(|e| panic!("the first notifier's pass at {now}: {e}"));
        b.unwrap_or_else(|e| panic!("the second notifier's pass at {now}: {e}"));
    }
    let got = messages(&receiver);
    let statuses: Vec<&str> = got.iter().map(|m| m.1.as_str()).collect();
    assert_eq!(
        statuses,
        ["firing", "reminder", "reminder", "reminder", "reminder"]
    );
}

/// The whole path on the local stack: a host sample over the threshold, the collector
/// raises the alert, the notifier sends a signed webhook with an acknowledge link, the
/// link shows a page (GET acknowledges nothing) and acknowledges on POST, once.
#[tokio::test]
async fn an_alert_from_the_collector_reaches_a_webhook_and_its_link_acknowledges_it() {
    let receiver = Receiver::start().await;
    let (app, _dir) = e2e_tests::spawn_app_with(Config {
        polling_interval_secs: 1,
        polling_enabled: true,
        public_url: None,
        ..config()
    })
    .await;
    let http = reqwest::Client::new();
    let base = app.url();
    let auth = format!("Bearer {}", app.api_key);
    let put = |path: &str, body: Value| {
        http.put(format!("{base}{path}"))
            .header("authorization", &auth)
            .json(&body)
            .answer()
    };
    let r = put(
        "/api/health/channels/ops-hook",
        json!({"type": "webhook", "url": receiver.url("/hook"), "secret": SECRET, "name": "Ops webhook"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let listed: Value = r.json().await.unwrap_or_default();
    assert_eq!(listed["secret"], "***");
    let r = put(
        "/api/health/notification-rules/critical",
        json!({"channels": ["ops-hook"], "match": {"severity": ["critical"]}, "group_wait_s": 0}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/api/health/events"))
        .header("authorization", &auth)
        .json(
            &json!({"events": [{"event_id": "s1", "type": "host.sample", "host_id": "web-1",
            "cpu_usage": 97.0, "memory_usage": 40.0, "timestamp": e2e_tests::ago(1)}]}),
        )
        .answer()
        .await;
    assert_eq!(r.status(), 202);
    e2e_tests::eventually("the webhook arrives", Duration::from_secs(20), async || {
        !receiver.webhooks().is_empty()
    })
    .await;
    let body = &receiver.webhooks()[0];
    assert_eq!(body["status"], "firing");
    assert_eq!(body["tenant"], "local");
    let a = &body["alerts"][0];
    assert_eq!(a["severity"], "critical");
    assert_eq!(a["source_id"], "web-1");
    assert_eq!(a["silenced"], false);
    let alert_id = a["alert_id"].as_str().unwrap_or_default().to_owned();
    let link = a["acknowledge_url"].as_str().unwrap_or_default().to_owned();
    assert!(
        link.starts_with(&format!("{base}/api/health/ack/")),
        "{link}"
    );

    // GET shows a page and acknowledges nothing.
    let page = http.get(&link).answer().await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap_or_default();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    let alerts: Value = http
        .get(format!("{base}/api/health/alerts"))
        .header("authorization", &auth)
        .answer_json()
        .await;
    assert_eq!(alerts[0]["acknowledged"], false);

    // Altered: refused.
    let mut tampered = link.clone().into_bytes();
    let i = tampered.len() - 60;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap_or_default();
    let refused = http.post(&tampered).answer().await;
    assert_eq!(refused.status(), 403);

    // A silence on the host from now on: the acknowledgement's answer says so.
    let silence = http
        .post(format!("{base}/api/health/silences"))
        .header("authorization", &auth)
        .json(&json!({"match": {"source_id": "web-1"}, "ends_at": shared::time::format_rfc3339(chrono::Utc::now().timestamp_millis() + 3_600_000)}))
        .answer().await;
    assert_eq!(silence.status(), 201);

    // POST acknowledges as "via <channel>", once.
    let first: Value = http
        .post(&link)
        .header("accept", "application/json")
        .answer_json()
        .await;
    assert_eq!(first["acknowledged"], true);
    assert_eq!(first["acknowledged_by"], "via Ops webhook");
    assert_eq!(first["silenced"], true, "{first}");
    let second: Value = http
        .post(&link)
        .header("accept", "application/json")
        .answer_json()
        .await;
    assert_eq!(second["acknowledged_at"], first["acknowledged_at"]);

    // The delivery log.
    let log: Value = http
        .get(format!("{base}/api/health/alerts/{alert_id}/notifications"))
        .header("authorization", &auth)
        .answer_json()
        .await;
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["channel_id"], "ops-hook");
    assert_eq!(log[0]["notification_id"], body["notification_id"]);
    app.stop().await.expect("stopping the local stack");
}

/// An expired link is refused; so is one whose tenant was swapped.
#[tokio::test]
async fn expired_and_foreign_links_are_refused() {
    let clock = Arc::new(shared::time::ManualClock::new(T0));
    let (app, _dir) = e2e_tests::spawn_api(e2e_tests::Backend::Embedded, Arc::clone(&clock)).await;
    let state = &app.state;
    e2e_tests::new_key(&state.store, "other", &["admin"], "x").await;
    let a = alert("web-1", T0);
    seed::save_alert(&state.store, "local", &a).await;
    let secret = seed::ack_secret(&state.store).await;
    let sign = |tenant: &str| {
        let claim = AckClaim {
            sent_for: Some(SentFor {
                severity: Severity::Critical,
                raised_at: T0,
            }),
            ..seed::ack_claim(tenant, "web-1", "hook", T0)
        };
        shared::notify::token::sign(&secret, &claim)
    };
    let http = reqwest::Client::new();
    let url = |token: &str| format!("{}/api/health/ack/{token}", app.url());
    // Another tenant's link does not reach this tenant's alert.
    let foreign = http
        .post(url(&sign("other")))
        .header("accept", "application/json")
        .answer()
        .await;
    assert_eq!(foreign.status(), 404);
    // Swapping the tenant inside a valid token breaks its signature.
    let token = sign("local");
    let (_, tag) = token.split_once('.').unwrap_or_default();
    use base64::Engine;
    let swapped = format!(
        "{}.{tag}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "other\nweb-1\nhook\n{}",
            (T0 + shared::notify::token::ACK_LINK_TTL_MS) / 1000
        ))
    );
    let r = http.post(url(&swapped)).answer().await;
    assert_eq!(r.status(), 403);
    // Seven days later the real link has expired.
    clock.set(T0 + shared::notify::token::ACK_LINK_TTL_MS);
    let r = http.get(url(&token)).answer().await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap_or_default().contains("expired"));
    app.stop().await.expect("stopping the local stack");
}

/// A link from the warning's message, used after the alert escalated to critical (which
/// cleared nothing yet, as nobody had acknowledged, but must need a new acknowledgement):
/// the page says the link no longer applies and offers no button, and posting changes
/// nothing; the critical message's link acknowledges. A link of the older form, without
/// what it was sent for, is judged by when its message was sent.
#[tokio::test]
async fn an_acknowledge_link_sent_before_an_escalation_no_longer_acknowledges() {
    let clock = Arc::new(ManualClock::new(T0));
    let (app, _dir) = e2e_tests::spawn_api(e2e_tests::Backend::Embedded, Arc::clone(&clock)).await;
    // The notifier of the same deployment (same store, same clock), for tenant acme.
    let mut notifier_state = AppState::new(app.state.store.clone(), config());
    notifier_state.clock = Arc::clone(&clock) as Arc<dyn shared::time::Clock>;
    let notifier = Driven {
        notifier: Notifier::new(&notifier_state).unwrap_or_else(|e| panic!("notifier: {e}")),
        clock: Arc::clone(&clock),
    };
    let key = e2e_tests::new_key(&app.state.store, "acme", &["admin"], "ops").await;
    let receiver = Receiver::start().await;
    webhook(&notifier_state, &receiver).await;
    rule(&notifier_state, &["hook"], 0, 300, 3600).await;
    let mut warning = alert("web-1", T0);
    warning.severity = Severity::Warning;
    warning.message = "High CPU usage on web-1: 85%".into();
    raise(&notifier_state, &warning).await;
    let mut steady = alert("web-2", T0);
    steady.severity = Severity::Warning;
    raise(&notifier_state, &steady).await;
    pass(&notifier, T0).await;

    // Escalated a minute later, as the collector does: severity, raised_at, no acknowledgement.
    let (mut critical, version) = app
        .state
        .store
        .alert("acme", "web-1")
        .await
        .unwrap_or_else(|e| panic!("reading the alert: {e}"))
        .unwrap_or_else(|| panic!("the alert is gone"));
    critical.severity = Severity::Critical;
    critical.message = "High CPU usage on web-1: 97%".into();
    critical.raised_at = T0 + 60 * S;
    app.state
        .store
        .save_alert("acme", &critical, Some(version))
        .await
        .unwrap_or_else(|e| panic!("escalating: {e}"));
    pass(&notifier, T0 + 60 * S).await;

    // The link of web-1 in each message, by the severity it was sent for.
    let link = |severity: &str| {
        receiver
            .webhooks()
            .iter()
            .flat_map(|m| m["alerts"].as_array().cloned().unwrap_or_default())
            .find(|a| a["alert_id"] == "web-1" && a["severity"] == severity)
            .and_then(|a| a["acknowledge_url"].as_str().map(str::to_owned))
            .and_then(|u| {
                u.rsplit('/')
                    .next()
                    .map(|t| format!("{}/api/health/ack/{t}", app.url()))
            })
            .unwrap_or_else(|| panic!("no {severity} link for web-1: {:?}", receiver.webhooks()))
    };
    let (old, new) = (link("warning"), link("critical"));
    let http = reqwest::Client::new();
    let acknowledged = |id: &'static str| {
        let (http, base, key) = (http.clone(), app.url(), key.clone());
        async move {
            let alerts: Value = http
                .get(format!("{base}/api/health/alerts"))
                .bearer_auth(&key)
                .answer()
                .await
                .json()
                .await
                .unwrap_or_else(|e| panic!("reading the alert list: {e}"));
            alerts
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["alert_id"] == id)
                .map(|a| a["acknowledged"] == true)
                .unwrap_or_else(|| panic!("{id} not listed: {alerts}"))
        }
    };

    let page = http.get(&old).answer().await;
    assert_eq!(page.status(), 200, "opening the warning's link");
    let page = page.text().await.unwrap_or_default();
    assert!(
        page.contains("no longer applies"),
        "the warning's link page: {page}"
    );
    assert!(
        page.contains("escalated to critical"),
        "the warning's link page: {page}"
    );
    assert!(
        page.contains("newer message"),
        "the warning's link page: {page}"
    );
    assert!(!page.contains("<form"), "no acknowledge button: {page}");

    let refused = http
        .post(&old)
        .header("accept", "application/json")
        .answer()
        .await;
    assert_eq!(refused.status(), 409, "posting the warning's link for JSON");
    let body: Value = refused.json().await.unwrap_or_default();
    assert_eq!(
        body["error"]["code"], "alert_escalated",
        "the refusal: {body}"
    );
    let refused_page = http.post(&old).answer().await;
    assert_eq!(
        refused_page.status(),
        409,
        "posting the warning's link from a browser"
    );
    assert!(
        !acknowledged("web-1").await,
        "the old link acknowledged the critical alert"
    );

    // A link of the older form (no severity or raised_at signed), from the first message.
    let secret = seed::ack_secret(&app.state.store).await;
    let unbound = |alert_id: &str| {
        let claim = seed::ack_claim("acme", alert_id, "hook", T0);
        let token = shared::notify::token::sign(&secret, &claim);
        format!("{}/api/health/ack/{token}", app.url())
    };
    let post_for_json = |url: String| http.post(url).header("accept", "application/json").answer();
    let old_form = post_for_json(unbound("web-1")).await;
    assert_eq!(
        old_form.status(),
        409,
        "an older-form link to web-1, escalated after its message"
    );
    assert!(
        !acknowledged("web-1").await,
        "an older-form link acknowledged the critical alert"
    );
    let old_form = post_for_json(unbound("web-2")).await;
    assert_eq!(
        old_form.status(),
        200,
        "web-2 did not change since its message"
    );
    assert!(
        acknowledged("web-2").await,
        "the older-form link to the unchanged web-2"
    );

    // The critical message's link acknowledges.
    let done: Value = http
        .post(&new)
        .header("accept", "application/json")
        .answer()
        .await
        .json()
        .await
        .unwrap_or_else(|e| panic!("reading the acknowledged alert: {e}"));
    assert_eq!(
        done["acknowledged_by"], "via hook channel",
        "the critical's link: {done}"
    );
    assert!(
        acknowledged("web-1").await,
        "listed acknowledged after the critical's link"
    );
    app.stop().await.unwrap_or_else(|e| panic!("stopping: {e}"));
}

/// Demo mode opens the inbox's own address and port to channels and probes, not every
/// port on loopback.
#[tokio::test]
async fn demo_mode_opens_only_the_inbox_address_and_port() {
    let dir = e2e_tests::temp_dir();
    let app = e2e_tests::start(local_stack::Options {
        demo: true,
        ..e2e_tests::stack_options(dir.path())
    })
    .await;
    let other = Receiver::reserve().await;
    let http = reqwest::Client::new();
    let put = |id: &str, url: String| {
        http.put(format!("{}/api/health/channels/{id}", app.url()))
            .bearer_auth(&app.api_key)
            .json(&json!({"type": "webhook", "url": url, "secret": SECRET}))
            .answer()
    };
    let inbox = put("inbox-copy", format!("{}/demo/inbox", app.url())).await;
    assert_eq!(inbox.status(), 200, "the inbox's own address and port");
    let refused = put("elsewhere", other.url("/hook")).await;
    assert_eq!(refused.status(), 400, "another port on loopback");
    let probe = http
        .put(format!("{}/api/health/integrations/local-db", app.url()))
        .bearer_auth(&app.api_key)
        .json(&json!({"integration_name": "Local DB", "probe": {"url": other.url("/health")}}))
        .answer()
        .await;
    assert_eq!(probe.status(), 400, "probes follow the same list");
    app.stop().await.unwrap_or_else(|e| panic!("stopping: {e}"));
}

/// Demo mode delivers to the built-in inbox page with nothing configured: a newcomer sees
/// the notification arrive and can acknowledge from it.
#[tokio::test]
async fn demo_mode_delivers_to_the_built_in_inbox() {
    let dir = e2e_tests::temp_dir();
    let app = e2e_tests::start(local_stack::Options {
        config: Config {
            polling_interval_secs: 1,
            ..Config::default()
        },
        demo: true,
        ..e2e_tests::stack_options(dir.path())
    })
    .await;
    let http = reqwest::Client::new();
    let base = app.url();
    let r = http
        .post(format!("{base}/api/health/events"))
        .bearer_auth(&app.api_key)
        .json(&json!({"events": [{"event_id": "inbox-1", "type": "host.sample", "host_id": "inbox-test-host",
            "cpu_usage": 99.0, "memory_usage": 10.0, "timestamp": e2e_tests::ago(1)}]}))
        .answer().await;
    assert_eq!(r.status(), 202);
    let alert = e2e_tests::eventually_some(
        "the alert on inbox-test-host is in the demo inbox",
        Duration::from_secs(30),
        async || {
            let inbox = http
                .get(format!("{base}/demo/inbox.json"))
                .answer_json()
                .await;
            inbox
                .as_array()
                .into_iter()
                .flatten()
                .filter(|m| m["status"] == "firing")
                .flat_map(|m| m["alerts"].as_array().cloned().unwrap_or_default())
                .find(|a| a["source_id"] == "inbox-test-host")
        },
    )
    .await;
    let page = http.get(format!("{base}/demo/inbox")).answer_text().await;
    assert!(page.contains("inbox-test-host"), "{page}");
    // A message without the channel's signature is refused, as a receiver should.
    let forged = http
        .post(format!("{base}/demo/inbox"))
        .body(r#"{"notification_id":"forged","status":"firing","alerts":[]}"#)
        .answer()
        .await;
    assert_eq!(forged.status(), 401);
    let link = alert["acknowledge_url"].as_str().unwrap_or_default();
    let acked: Value = http
        .post(link)
        .header("accept", "application/json")
        .answer_json()
        .await;
    assert_eq!(acked["acknowledged_by"], "via Demo inbox", "{acked}");
    app.stop().await.expect("stopping the local stack");
}

/// A failed delivery says what failed without the secret part of the URL (a Slack
/// webhook's path is its credential): not in the test result, not in the delivery log.
#[tokio::test]
async fn delivery_errors_never_carry_the_secret_path() {
    let (store, _dir) = e2e_tests::embedded_store();
    let (state, notifier) = setup(store, config()).await;
    let down = Receiver::reserve().await;
    channel(
        &state,
        "slack",
        Destination::Slack {
            url: down.url("/services/T0/B0/SECRETPATH"),
        },
    )
    .await;
    let stored = state
        .store
        .channel("acme", "slack")
        .await
        .expect("reading channel slack")
        .unwrap_or_else(|| panic!("channel slack is not stored"));
    let result = notifier
        .test_channel("acme", &stored, T0)
        .await
        .expect("testing channel slack");
    assert!(!result.delivered);
    assert!(
        result.retryable,
        "connection refused is retried: {result:?}"
    );
    let error = result.error.unwrap_or_default();
    assert!(error.contains("127.0.0.1"), "{error}");
    assert!(!error.contains("SECRETPATH"), "{error}");
    rule(&state, &["slack"], 0, 0, 3600).await;
    raise(&state, &alert("web-1", T0)).await;
    pass(&notifier, T0).await;
    let log = delivery_log(&state).await;
    let last = log[0].last_error.clone().unwrap_or_default();
    assert!(!last.is_empty() && !last.contains("SECRETPATH"), "{last}");
    // Listed, the channel shows no more than scheme, host and port either.
    let listed = stored.view().to_string();
    assert!(!listed.contains("SECRETPATH"), "{listed}");
}

/// An acknowledgement by `ops`, without notes.
fn by_ops(at: Millis) -> Acknowledgement<'static> {
    Acknowledgement {
        by: "ops",
        notes: None,
        at,
    }
}
