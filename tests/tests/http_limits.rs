//! The local stack's HTTP server against slow, idle and too many clients, over raw TCP
//! (a well-behaved HTTP client cannot send half a request line), and its `/healthz`.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::time::Duration;

use e2e_tests::RequestExt as _;
use shared::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn app(limits: local_stack::Limits) -> (local_stack::Running, tempfile::TempDir) {
    let config = Config {
        polling_enabled: false,
        ..Config::default()
    };
    e2e_tests::spawn_app_limited(config, limits).await
}

/// The default limits, but a second to send a request's headers.
fn one_second_for_headers() -> local_stack::Limits {
    local_stack::Limits {
        header_timeout: Duration::from_secs(1),
        ..local_stack::Limits::default()
    }
}

/// A raw TCP connection to the stack.
async fn connect(app: &local_stack::Running) -> TcpStream {
    TcpStream::connect(app.addr)
        .await
        .expect("connecting to the stack")
}

/// Reads until the server closes the connection or `wait` passes; `Some(bytes read)` if it
/// closed.
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(wait, read_all)
        .await
        .ok()
        .map(|()| seen)
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: local\r\n\r\n";

/// A connection beyond the cap with `GET /healthz` sent on it, checked not to be served for
/// 700 ms: the kernel completes the handshake, but the server does not serve it yet.
async fn healthz_held(app: &local_stack::Running) -> TcpStream {
    let mut waiting = connect(app).await;
    waiting
        .write_all(HEALTHZ)
        .await
        .expect("sending GET /healthz");
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    waiting
}

/// Checks that the request [`healthz_held`] left waiting is answered 200 within 5 s once its
/// slot is free; `freed` says what freed it.
async fn served_once_freed(waiting: &mut TcpStream, freed: &str) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("not served after {freed}"))
        .expect("reading /healthz's answer");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}

#[tokio::test]
async fn half_a_request_line_is_dropped_after_the_header_timeout() {
    let (app, _dir) = app(one_second_for_headers()).await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /api/health/ag")
        .await
        .expect("sending half a request line");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5))
            .await
            .is_some(),
        "a client stalling in its request line is still connected after 5 s"
    );
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let (app, _dir) = app(one_second_for_headers()).await;
    let mut idle = connect(&app).await;
    idle.write_all(HEALTHZ).await.expect("sending GET /healthz");
    let answered = closed_within(&mut idle, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("an idle keep-alive connection is still open after 5 s"));
    let text = String::from_utf8_lossy(&answered);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn beyond_the_connection_cap_a_client_waits_for_a_free_slot() {
    let (app, _dir) = app(local_stack::Limits {
        header_timeout: Duration::from_secs(30),
        max_connections: 2,
        ..local_stack::Limits::default()
    })
    .await;
    let (holder, _other) = (connect(&app).await, connect(&app).await);
    let mut waiting = healthz_held(&app).await;
    drop(holder);
    served_once_freed(&mut waiting, "a slot freed").await;
}

#[tokio::test]
async fn healthz_answers_without_a_key() {
    let (app, _dir) = app(local_stack::Limits::default()).await;
    let client = reqwest::Client::new();
    let res = client.get(format!("{}/healthz", app.url())).answer().await;
    assert_eq!(res.status(), reqwest::StatusCode::OK);
    let body: serde_json::Value = res.json().await.expect("reading /healthz's answer as JSON");
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let res = client.post(format!("{}/healthz", app.url())).answer().await;
    assert_eq!(res.status(), reqwest::StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn open_websockets_count_against_the_connection_cap() {
    let (app, _dir) = app(local_stack::Limits {
        max_connections: 2,
        ..local_stack::Limits::default()
    })
    .await;
    let url = e2e_tests::ws::url(app.addr, &app.api_key);
    let mut first = e2e_tests::ws::connect(&url).await;
    let _second = e2e_tests::ws::connect(&url).await;
    let mut waiting = healthz_held(&app).await;
    first
        .close(None)
        .await
        .expect("closing the first WebSocket");
    drop(first);
    served_once_freed(&mut waiting, "a WebSocket closed").await;
}

/// The head of a POST with `key` announcing a body of `length` bytes.
fn post_head(path: &str, key: &str, content_type: &str, length: usize) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: local\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// The head of a POST of events announcing a 1000-byte body, the start of a slow client.
fn events_head(key: &str) -> Vec<u8> {
    post_head("/api/health/events", key, "application/json", 1000)
}

#[tokio::test]
async fn a_body_trickling_in_past_the_deadline_is_answered_408_and_closed() {
    let (app, _dir) = app(local_stack::Limits {
        body_timeout: Duration::from_secs(1),
        ..local_stack::Limits::default()
    })
    .await;
    let stream = connect(&app).await;
    let (mut read, mut write) = stream.into_split();
    write
        .write_all(&events_head(&app.api_key))
        .await
        .unwrap_or_else(|e| panic!("sending the request head: {e}"));
    // One byte every 200 ms: never idle for long, never done.
    let trickle = tokio::spawn(async move {
        for _ in 0..1000 {
            if write.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut seen = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut seen)).await;
    trickle.abort();
    assert!(
        answered.is_ok(),
        "a body trickling in is still being read after 10 s (deadline 1 s)"
    );
    let text = String::from_utf8_lossy(&seen);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
}

#[tokio::test]
async fn healthz_answers_while_slow_bodies_hold_every_connection_slot() {
    let (app, _dir) = app(local_stack::Limits {
        max_connections: 64,
        max_body_reads: 16,
        ..local_stack::Limits::default()
    })
    .await;
    // As many clients as the server takes connections, each stalling in its body.
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect(app.addr)
            .await
            .unwrap_or_else(|e| panic!("connecting a slow client: {e}"));
        s.write_all(&events_head(&app.api_key))
            .await
            .unwrap_or_else(|e| panic!("sending a slow client's head: {e}"));
        s.write_all(b"{")
            .await
            .unwrap_or_else(|e| panic!("sending a slow client's first byte: {e}"));
        slow.push(s);
    }
    let mut probe = TcpStream::connect(app.addr)
        .await
        .unwrap_or_else(|e| panic!("connecting for /healthz: {e}"));
    probe
        .write_all(HEALTHZ)
        .await
        .unwrap_or_else(|e| panic!("asking /healthz: {e}"));
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), probe.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("/healthz did not answer while 64 slow bodies were open"))
        .unwrap_or_else(|e| panic!("reading /healthz's answer: {e}"));
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // The slow clients beyond the bound on bodies read at once were told to come back.
    let answers = futures::future::join_all(
        slow.iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(3))),
    )
    .await;
    let mut refused = 0;
    for seen in answers.into_iter().flatten() {
        let text = String::from_utf8_lossy(&seen).into_owned();
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("retry-after: 1"),
            "{text}"
        );
        refused += 1;
    }
    assert_eq!(refused, 64 - 16, "slow clients answered 503");
}

#[tokio::test]
async fn an_unknown_key_is_refused_before_its_large_body_is_read() {
    let (app, _dir) = app(local_stack::Limits::default()).await;
    for (path, content_type, length) in [
        ("/v1/traces", "application/x-protobuf", 4_000_000),
        ("/api/health/events", "application/json", 1_000_000),
    ] {
        let mut s = TcpStream::connect(app.addr)
            .await
            .unwrap_or_else(|e| panic!("connecting for {path}: {e}"));
        // The head and a few bytes: the rest of the body never comes.
        s.write_all(&post_head(path, "ahm_not_a_key", content_type, length))
            .await
            .unwrap_or_else(|e| panic!("sending the head for {path}: {e}"));
        s.write_all(b"0123456789")
            .await
            .unwrap_or_else(|e| panic!("sending a few bytes for {path}: {e}"));
        let seen = closed_within(&mut s, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| {
                panic!("{path}: an unknown key is still waiting for its body after 10 s")
            });
        let text = String::from_utf8_lossy(&seen);
        assert!(text.starts_with("HTTP/1.1 401"), "{path}: {text}");
    }
}
