//! Delivering one rendered message to one channel, and classifying failures: timeouts,
//! connection failures, 429 and 5xx are retried (429's `Retry-After` honoured); any other
//! 4xx or a refused destination is final.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::OnceCell;

use super::render::Message;
use crate::config::Config;
use crate::domain::notify::Destination;
use crate::outbound::{describe, GuardedClient};
use crate::time::Millis;

/// How long one HTTP delivery may take.
pub const SEND_TIMEOUT_MS: u64 = 10_000;

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// For the delivery log (never contains a secret).
    pub message: String,
    /// Retry: `Some(None)` on the usual backoff, `Some(Some(ms))` after the receiver's
    /// `Retry-After`; `None` when it is final.
    pub retry: Option<Option<Millis>>,
}

impl SendError {
    fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: Some(None),
        }
    }
    fn fatal(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retry: None,
        }
    }
}

/// The `X-Health-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, unix_secs: i64, body: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(format!("{unix_secs}.{body}").as_bytes());
    format!(
        "t={unix_secs},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// How far a signature's `t=` may be from the receiver's clock, either way, before the
/// receiver should refuse it as a replay (the documented advice, and the demo inbox's rule).
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Why a receiver refuses an `X-Health-Signature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Missing, or not `t=<unix seconds>,v1=<hex>`.
    #[error("the signature header is missing or malformed")]
    Malformed,
    /// `t=` is further than the tolerance from now: a replay, or a clock far off.
    #[error("the signature's time is too far from now")]
    Stale,
    /// No `v1=` matches the body and the secret.
    #[error("the signature does not match")]
    Mismatch,
}

/// Checks an `X-Health-Signature` value as a receiver should: its `t=` within
/// `tolerance_s` of `now_secs`, and a `v1=` equal to the HMAC of `"<t>.<body>"`, compared in
/// constant time (a comparison that stops at the first differing byte tells an attacker
/// how much of a forged signature is right). Several `v1=` are accepted, any matching.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &str,
    now_secs: i64,
    tolerance_s: i64,
) -> Result<(), SignatureError> {
    let mut t = None;
    let mut tags = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => {
                tags.push(hex::decode(value).map_err(|_| SignatureError::Malformed)?)
            }
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if tags.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now_secs.abs_diff(t) > tolerance_s.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    mac.update(format!("{t}.{body}").as_bytes());
    if tags.iter().any(|tag| mac.clone().verify_slice(tag).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Sends messages. Holds one HTTP client (destinations follow the probe address rules)
/// and the mail and AWS clients, built on first use.
#[derive(Debug)]
pub struct Sender {
    http: GuardedClient,
    config: std::sync::Arc<Config>,
    smtp: OnceCell<Result<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>, String>>,
    #[cfg(feature = "notify-aws")]
    ses: OnceCell<aws_sdk_sesv2::Client>,
    #[cfg(feature = "notify-aws")]
    sns: OnceCell<aws_sdk_sns::Client>,
}

impl Sender {
    /// A sender with the deployment's configuration.
    pub fn new(config: std::sync::Arc<Config>) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: GuardedClient::new(&config.probe_allowed_addresses)?,
            config,
            smtp: OnceCell::new(),
            #[cfg(feature = "notify-aws")]
            ses: OnceCell::new(),
            #[cfg(feature = "notify-aws")]
            sns: OnceCell::new(),
        })
    }

    /// Delivers `message` to `destination` at `now`.
    pub async fn send(
        &self,
        destination: &Destination,
        message: &Message<'_>,
        now: Millis,
    ) -> Result<(), SendError> {
        match destination {
            Destination::Webhook { url, secret } => {
                let body = message.webhook().to_string();
                let sig = signature(secret, now.div_euclid(1000), &body);
                self.post(url, body, Some(sig)).await
            }
            Destination::Slack { url } => self.post(url, message.slack().to_string(), None).await,
            Destination::Pagerduty { routing_key } => {
                let url = self.config.pagerduty_events_url.clone();
                for event in message.pagerduty(routing_key) {
                    self.post(&url, event.to_string(), None).await?;
                }
                Ok(())
            }
            Destination::Email { to } => self.email(to, message).await,
            Destination::Sns { topic_arn } => self.sns(topic_arn, message).await,
        }
    }

    async fn post(&self, url: &str, body: String, sig: Option<String>) -> Result<(), SendError> {
        let parsed = url::Url::parse(url).map_err(|e| SendError::fatal(format!("bad URL: {e}")))?;
        let host = crate::domain::notify::hide_url(url);
        self.http
            .check_target(&parsed)
            .map_err(|e| SendError::fatal(format!("{host}: {e}")))?;
        let mut request = self
            .http
            .client_for(&parsed)
            .post(parsed)
            .timeout(Duration::from_millis(SEND_TIMEOUT_MS))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(sig) = sig {
            request = request.header("X-Health-Signature", sig);
        }
        let response = request.send().await.map_err(|e| {
            // Without the URL: a webhook's path or query can be its secret (Slack's is).
            let text = describe(&e.without_url(), SEND_TIMEOUT_MS);
            // The resolver's refusal of a restricted address is final; anything else about
            // the connection may pass.
            if text.contains("resolves to no address") {
                SendError::fatal(format!("{host}: {text}"))
            } else {
                SendError::retry(format!("{host}: {text}"))
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| s.clamp(0, 3600) * 1000);
        let text: String = response
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(200)
            .collect();
        let message = format!("{host} answered {status}: {text}");
        if status.as_u16() == 429 {
            Err(SendError {
                message,
                retry: Some(retry_after),
            })
        } else if status.is_server_error() {
            Err(SendError::retry(message))
        } else {
            Err(SendError::fatal(message))
        }
    }

    async fn email(&self, to: &[String], message: &Message<'_>) -> Result<(), SendError> {
        let transport = self.config.email_transport.as_deref().ok_or_else(|| {
            SendError::fatal("email is not configured on this deployment (HEALTH_EMAIL_TRANSPORT)")
        })?;
        if transport == "ses" {
            return self.ses(to, message).await;
        }
        use lettre::AsyncTransport;
        let smtp = self
            .smtp
            .get_or_init(|| async {
                lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(transport)
                    .map(|b| {
                        b.timeout(Some(Duration::from_millis(SEND_TIMEOUT_MS)))
                            .build()
                    })
                    .map_err(|e| format!("HEALTH_EMAIL_TRANSPORT: {e}"))
            })
            .await
            .as_ref()
            .map_err(|e| SendError::fatal(e.clone()))?;
        let from: lettre::message::Mailbox = self
            .config
            .email_from
            .parse()
            .map_err(|e| SendError::fatal(format!("HEALTH_EMAIL_FROM: {e}")))?;
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(message.subject())
            .message_id(Some(format!(
                "<{}@agent-health-monitor>",
                message.notification_id
            )));
        for address in to {
            let mailbox = address
                .parse()
                .map_err(|e| SendError::fatal(format!("recipient {address}: {e}")))?;
            builder = builder.to(mailbox);
        }
        let mail = builder
            .multipart(lettre::message::MultiPart::alternative_plain_html(
                message.text(),
                message.html(),
            ))
            .map_err(|e| SendError::fatal(format!("cannot build the mail: {e}")))?;
        match smtp.send(mail).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(SendError::fatal(format!("SMTP: {e}"))),
            Err(e) => Err(SendError::retry(format!("SMTP: {e}"))),
        }
    }

    #[cfg(feature = "notify-aws")]
    async fn aws_config() -> aws_config::SdkConfig {
        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
    }

    #[cfg(feature = "notify-aws")]
    async fn ses(&self, to: &[String], message: &Message<'_>) -> Result<(), SendError> {
        use aws_sdk_sesv2::types::{
            Body, Content, Destination as To, EmailContent, Message as Mail,
        };
        let client = self
            .ses
            .get_or_init(|| async { aws_sdk_sesv2::Client::new(&Self::aws_config().await) })
            .await;
        let content = |text: String| Content::builder().data(text).charset("UTF-8").build();
        let mail = Mail::builder()
            .subject(content(message.subject()).map_err(|e| SendError::fatal(e.to_string()))?)
            .body(
                Body::builder()
                    .text(content(message.text()).map_err(|e| SendError::fatal(e.to_string()))?)
                    .html(content(message.html()).map_err(|e| SendError::fatal(e.to_string()))?)
                    .build(),
            )
            .build();
        client
            .send_email()
            .from_email_address(&self.config.email_from)
            .destination(To::builder().set_to_addresses(Some(to.to_vec())).build())
            .content(EmailContent::builder().simple(mail).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("SES", e))
    }

    #[cfg(not(feature = "notify-aws"))]
    async fn ses(&self, _to: &[String], _message: &Message<'_>) -> Result<(), SendError> {
        Err(SendError::fatal("this build has no SES support"))
    }

    #[cfg(feature = "notify-aws")]
    async fn sns(&self, topic_arn: &str, message: &Message<'_>) -> Result<(), SendError> {
        let client = self
            .sns
            .get_or_init(|| async { aws_sdk_sns::Client::new(&Self::aws_config().await) })
            .await;
        // SNS subjects: at most 100 printable ASCII characters.
        let subject: String = message
            .subject()
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .take(100)
            .collect();
        client
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message.text())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("SNS", e))
    }

    #[cfg(not(feature = "notify-aws"))]
    async fn sns(&self, _topic_arn: &str, _message: &Message<'_>) -> Result<(), SendError> {
        Err(SendError::fatal("this build has no SNS support"))
    }
}

/// An AWS SDK error: throttling, server faults and transport failures are retried; the
/// caller's faults (unverified identity, missing topic, access denied) are final.
#[cfg(feature = "notify-aws")]
fn aws_error<E, R>(service: &str, e: aws_sdk_sns::error::SdkError<E, R>) -> SendError
where
    E: std::error::Error + aws_sdk_sns::error::ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_sns::error::SdkError;
    let text = match &e {
        SdkError::ServiceError(s) if s.err().code().is_some() => format!(
            "{service}: {}: {}",
            s.err().code().unwrap_or("error"),
            s.err().message().unwrap_or_default()
        ),
        SdkError::ServiceError(s) => format!("{service}: unrecognised answer: {:?}", s.raw()),
        other => format!("{service}: {}", crate::outbound::describe_chain(other)),
    };
    let retry = match &e {
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("TooManyRequests")
                || code.contains("ServiceUnavailable")
                || code.contains("InternalError")
        }
        _ => true,
    };
    if retry {
        SendError::retry(text)
    } else {
        SendError::fatal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_of_time_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            signature("s3cret", 1_700_000_000, r#"{"a":1}"#),
            "t=1700000000,v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

    #[test]
    fn a_signature_verifies_within_the_tolerance_and_not_outside_it() {
        let body = r#"{"a":1}"#;
        let header = signature("s3cret", 1_700_000_000, body);
        let check = |now: i64| verify_signature("s3cret", &header, body, now, 300);
        assert_eq!(
            check(1_700_000_000),
            Ok(()),
            "checked the second it was signed"
        );
        assert_eq!(check(1_700_000_300), Ok(()), "300 s late: at the limit");
        assert_eq!(check(1_699_999_700), Ok(()), "300 s early: at the limit");
        assert_eq!(
            check(1_700_000_301),
            Err(SignatureError::Stale),
            "301 s late"
        );
        assert_eq!(
            check(1_699_999_699),
            Err(SignatureError::Stale),
            "301 s early"
        );
    }

    #[test]
    fn a_wrong_or_malformed_signature_is_refused() {
        let body = r#"{"a":1}"#;
        let now = 1_700_000_000;
        let header = signature("s3cret", now, body);
        assert_eq!(
            verify_signature("other", &header, body, now, 300),
            Err(SignatureError::Mismatch),
            "another secret"
        );
        assert_eq!(
            verify_signature("s3cret", &header, r#"{"a":2}"#, now, 300),
            Err(SignatureError::Mismatch),
            "another body"
        );
        // The time is signed: moving it breaks the signature.
        let moved = header.replace("t=1700000000", "t=1700000001");
        assert_eq!(
            verify_signature("s3cret", &moved, body, now, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "",
            "t=1700000000",
            "v1=00",
            "t=soon,v1=00",
            "t=1700000000,v1=zz",
        ] {
            assert_eq!(
                verify_signature("s3cret", bad, body, now, 300),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }
}
