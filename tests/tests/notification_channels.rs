//! Email and AWS channels against real servers: mail to a real SMTP server (aiosmtpd,
//! started here from the test command's Python tools), SES v2 and SNS on the test server
//! (moto), whose SNS delivers to a real HTTP subscriber. Its own test binary, because the
//! AWS endpoints are set in the process environment, as a deployment sets them.

// Helpers here are not `#[test]` functions, which clippy's allow-expect-in-tests covers:
// they too stop a test with `expect`, saying what they were doing.
#![allow(clippy::expect_used)]

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e_tests::seed;
use shared::config::Config;
use shared::domain::alerts::AlertRecord;
use shared::domain::notify::{ChannelRecord, Destination, RuleRecord};
use shared::notify::{Notifier, TestResult};
use shared::AppState;

const T0: i64 = 1_800_000_000_000;

fn alert() -> AlertRecord {
    AlertRecord {
        message: "High CPU usage: 97%".into(),
        source_id: "web-1".into(),
        ..seed::alert("alert_cpu_web-1_1", T0)
    }
}

async fn state_with(
    config: Config,
    id: &str,
    destination: Destination,
) -> (AppState, ChannelRecord) {
    let (store, dir) = e2e_tests::embedded_store();
    // The directory lives as long as the test process; each test has its own.
    std::mem::forget(dir);
    let mut state = AppState::new(store, config);
    // Passes run at T0, and each claim and send reads the clock: the same time.
    state.clock = std::sync::Arc::new(shared::time::ManualClock::new(T0));
    e2e_tests::new_key(&state.store, "acme", &["admin"], "ops").await;
    let channel = seed::channel(&state.store, "acme", id, id, destination).await;
    (state, channel)
}

fn new_notifier(state: &AppState) -> Notifier {
    Notifier::new(state).expect("building the notifier")
}

/// Sends `channel`'s test message.
async fn test_channel(notifier: &Notifier, channel: &ChannelRecord) -> TestResult {
    notifier
        .test_channel("acme", channel, T0)
        .await
        .expect("testing the channel")
}

fn aws_env() {
    let endpoint = e2e_tests::dynamodb_endpoint();
    // Set before any client is built; every test of this binary wants the same values.
    std::env::set_var("AWS_ENDPOINT_URL_SESV2", &endpoint);
    std::env::set_var("AWS_ENDPOINT_URL_SNS", &endpoint);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "local");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "local");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    text.split_once(open)
        .and_then(|(_, rest)| rest.split_once(close))
        .map(|(inside, _)| inside)
        .unwrap_or_default()
}

#[tokio::test]
async fn mail_reaches_a_real_smtp_server_with_text_and_html_parts() {
    let dir = tempfile::tempdir().expect("creating a temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/smtp_sink.py");
    let mut server = Command::new("python3")
        .args([script, &dir.path().to_string_lossy(), &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the SMTP server (python3 with aiosmtpd from the test command's .tools/venv): {e}"));
    let mut ready = String::new();
    if let Some(out) = server.stdout.take() {
        std::io::BufReader::new(out)
            .read_line(&mut ready)
            .expect("reading the SMTP server's first line");
    }
    assert_eq!(ready.trim(), "ready", "the SMTP server did not start");

    let (state, _) = state_with(
        Config {
            email_transport: Some(format!("smtp://127.0.0.1:{port}")),
            email_from: "Health Monitor <alerts@example.com>".into(),
            public_url: Some("http://monitor.test".into()),
            ..Config::default()
        },
        "mail",
        Destination::Email {
            to: vec!["ops@example.com".into(), "oncall@example.com".into()],
        },
    )
    .await;
    let rule = RuleRecord {
        group_interval_s: 0,
        ..seed::rule("all", &["mail"])
    };
    seed::put_rule(&state.store, "acme", &rule).await;
    seed::save_alert(&state.store, "acme", &alert()).await;
    let notifier = new_notifier(&state);
    let report = notifier
        .pass_tenant("acme", T0)
        .await
        .expect("running the notifier pass");
    assert_eq!(report.delivered, 1, "{report:?}");

    let eml = std::fs::read_to_string(dir.path().join("0001.eml")).unwrap_or_default();
    let rcpt = std::fs::read_to_string(dir.path().join("0001.rcpt")).unwrap_or_default();
    drop(server.stdin.take());
    let _ = server.wait();
    assert_eq!(rcpt, "ops@example.com\noncall@example.com");
    assert!(
        eml.contains("Subject: [critical] 1 alert firing (acme): High CPU usage: 97%"),
        "{eml}"
    );
    assert!(
        eml.contains("From: \"Health Monitor\" <alerts@example.com>")
            || eml.contains("From: Health Monitor <alerts@example.com>"),
        "{eml}"
    );
    assert!(eml.contains("multipart/alternative"), "{eml}");
    assert!(eml.contains("Content-Type: text/plain"), "{eml}");
    assert!(eml.contains("Content-Type: text/html"), "{eml}");
    // Quoted-printable soft line breaks joined: the acknowledge link is in the text.
    let joined = eml.replace("=\r\n", "").replace("=\n", "");
    assert!(
        joined.contains("http://monitor.test/api/health/ack/"),
        "{eml}"
    );
}

#[tokio::test]
async fn ses_sends_from_a_verified_identity_and_names_the_problem_otherwise() {
    aws_env();
    // A fresh sender each run: the test server keeps verified identities across runs.
    let sender = format!("alerts-{:08x}@example.com", rand::random::<u32>());
    let (state, channel) = state_with(
        Config {
            email_transport: Some("ses".into()),
            email_from: sender.clone(),
            ..Config::default()
        },
        "ses-mail",
        Destination::Email {
            to: vec!["ops@example.com".into()],
        },
    )
    .await;
    let notifier = new_notifier(&state);
    // Not verified yet: SES refuses, and the result says why; not retried.
    let refused = test_channel(&notifier, &channel).await;
    assert!(!refused.delivered);
    assert!(!refused.retryable);
    let error = refused.error.clone().unwrap_or_default();
    assert!(error.contains("not verified"), "{refused:?}");
    let before = e2e_tests::aws_query(
        "ses",
        &[("Action", "GetSendQuota"), ("Version", "2010-12-01")],
    )
    .await;
    e2e_tests::aws_query(
        "ses",
        &[
            ("Action", "VerifyEmailIdentity"),
            ("EmailAddress", &sender),
            ("Version", "2010-12-01"),
        ],
    )
    .await;
    let sent = test_channel(&notifier, &channel).await;
    assert!(sent.delivered, "{sent:?}");
    let after = e2e_tests::aws_query(
        "ses",
        &[("Action", "GetSendQuota"), ("Version", "2010-12-01")],
    )
    .await;
    let count = |xml: &str| {
        between(xml, "<SentLast24Hours>", "</SentLast24Hours>")
            .parse::<f64>()
            .unwrap_or(-1.0)
    };
    assert_eq!(count(&after), count(&before) + 1.0, "{before}\n{after}");
}

#[tokio::test]
async fn sns_publishes_to_the_topic_and_its_http_subscriber_gets_the_message() {
    aws_env();
    // A real HTTP subscriber of the topic.
    let subscriber = e2e_tests::Sink::start().await;
    // A fresh topic each run: the test server keeps topics (and subscribers) across runs.
    let name = format!("health-alerts-{:08x}", rand::random::<u32>());
    let created = e2e_tests::aws_query(
        "sns",
        &[
            ("Action", "CreateTopic"),
            ("Name", &name),
            ("Version", "2010-03-31"),
        ],
    )
    .await;
    let topic = between(&created, "<TopicArn>", "</TopicArn>").to_owned();
    assert!(topic.starts_with("arn:aws:sns:"), "{created}");
    let endpoint = subscriber.url("/sns");
    e2e_tests::aws_query(
        "sns",
        &[
            ("Action", "Subscribe"),
            ("TopicArn", &topic),
            ("Protocol", "http"),
            ("Endpoint", &endpoint),
            ("Version", "2010-03-31"),
        ],
    )
    .await;
    let (state, channel) = state_with(
        Config::default(),
        "sns",
        Destination::Sns {
            topic_arn: topic.clone(),
        },
    )
    .await;
    let notifier = new_notifier(&state);
    let result = test_channel(&notifier, &channel).await;
    assert!(result.delivered, "{result:?}");
    let notification = e2e_tests::eventually_some(
        "the subscriber gets the notification",
        Duration::from_secs(10),
        async || {
            subscriber
                .received()
                .into_iter()
                .map(|r| r.body)
                .find(|v| v["Type"] == "Notification")
        },
    )
    .await;
    assert_eq!(notification["TopicArn"], topic.as_str());
    assert!(notification["Subject"]
        .as_str()
        .is_some_and(|s| s.starts_with("[info] 1 alert test (acme)") && s.len() <= 100));
    assert!(notification["Message"]
        .as_str()
        .is_some_and(|m| m.contains("Test notification to channel sns")));
    // A topic that does not exist: a final error naming it.
    let (state, missing) = state_with(
        Config::default(),
        "gone",
        Destination::Sns {
            topic_arn: "arn:aws:sns:us-east-1:123456789012:health-alerts-gone".into(),
        },
    )
    .await;
    let notifier = new_notifier(&state);
    let result = test_channel(&notifier, &missing).await;
    assert!(!result.delivered);
    assert!(!result.retryable, "{result:?}");
}
