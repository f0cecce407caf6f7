//! Acknowledge links: a signed, expiring token naming one alert of one tenant, the channel
//! that carried it, and what the alert was when the message was sent, so a message can
//! offer "Acknowledge" without an API key, and an old message cannot acknowledge what the
//! alert became since.
//!
//! Token: `base64url(tenant \n alert_id \n channel_id \n expiry_secs \n severity \n
//! raised_at_ms)` `.` `base64url(HMAC-SHA256(secret, that first part))`. The secret is per
//! deployment; a token is refused when any byte is altered, after its expiry, or for another
//! tenant's alert (the tenant is inside the signed part, so it cannot be swapped).
//!
//! Binding: an escalation moves the alert's `raised_at` and clears its acknowledgement
//! (the alert lifecycle), so a link whose signed `raised_at` is older than the alert's no
//! longer applies: it was sent for a less urgent state, and acknowledging with it would
//! undo what the escalation cleared. A de-escalation keeps `raised_at`, so the link of the
//! more urgent message still works. Links signed before this binding (four fields, out for
//! at most [`ACK_LINK_TTL_MS`] after the upgrade) still verify; for them the message's time
//! stands in for `raised_at` (expiry minus the link's lifetime): an alert raised or
//! escalated after that second has changed since the link was sent. The one escalation
//! they miss is one in the same second as the message was decided.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::alerts::{AlertRecord, Severity};
use crate::notify::render::severity_word;
use crate::time::{Millis, DAY_MS};

/// How long an acknowledge link works.
pub const ACK_LINK_TTL_MS: Millis = 7 * DAY_MS;

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckClaim {
    /// The tenant.
    pub tenant: String,
    /// The one alert it may acknowledge.
    pub alert_id: String,
    /// The channel whose message carried it ("via <channel>").
    pub channel_id: String,
    /// When it stops working (ms).
    pub expires_at: Millis,
    /// What the alert was in the message that carried the link; `None` for links signed
    /// before links were bound (see the module notes).
    pub sent_for: Option<SentFor>,
}

/// The state of the alert a link was sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentFor {
    /// Its severity then (for the page that explains why the link no longer applies).
    pub severity: Severity,
    /// Its `raised_at` then (ms): raised or last escalated.
    pub raised_at: Millis,
}

impl AckClaim {
    /// Whether the link still applies to `alert` as stored now: `false` once the alert
    /// escalated after the link was sent.
    pub fn applies_to(&self, alert: &AlertRecord) -> bool {
        match self.sent_for {
            Some(sent) => alert.raised_at <= sent.raised_at,
            // The message was decided within the second before expiry minus the lifetime
            // (expiries are signed in whole seconds); its alert was raised by then.
            None => alert.raised_at < self.expires_at - ACK_LINK_TTL_MS + 1000,
        }
    }
}

/// Why a token is refused; all answer 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token, or its signature does not match.
    #[error("this acknowledge link is not valid (it may have been altered)")]
    Invalid,
    /// Past its expiry.
    #[error("this acknowledge link has expired; acknowledge the alert on the dashboard")]
    Expired,
}

fn mac(secret: &[u8], data: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length; the error arm cannot happen.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    m.update(data);
    m
}

/// Signs a claim (a claim without [`SentFor`] gives a link of the older, unbound form).
pub fn sign(secret: &[u8], claim: &AckClaim) -> String {
    let mut body = format!(
        "{}\n{}\n{}\n{}",
        claim.tenant,
        claim.alert_id,
        claim.channel_id,
        claim.expires_at.div_euclid(1000)
    );
    if let Some(sent) = claim.sent_for {
        body.push_str(&format!(
            "\n{}\n{}",
            severity_word(sent.severity),
            sent.raised_at
        ));
    }
    let payload = URL_SAFE_NO_PAD.encode(body.as_bytes());
    let tag = mac(secret, payload.as_bytes()).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks a token at `now` and returns its claim.
pub fn verify(secret: &[u8], token: &str, now: Millis) -> Result<AckClaim, TokenError> {
    let (payload, tag) = token.split_once('.').ok_or(TokenError::Invalid)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Invalid)?;
    // Constant-time comparison.
    mac(secret, payload.as_bytes())
        .verify_slice(&tag)
        .map_err(|_| TokenError::Invalid)?;
    let body = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(TokenError::Invalid)?;
    let parts: Vec<&str> = body.split('\n').collect();
    let (tenant, alert_id, channel_id, expiry, sent_for) = match parts.as_slice() {
        [tenant, alert_id, channel_id, expiry] => (tenant, alert_id, channel_id, expiry, None),
        [tenant, alert_id, channel_id, expiry, severity, raised_at] => (
            tenant,
            alert_id,
            channel_id,
            expiry,
            Some(SentFor {
                severity: Severity::parse(severity).ok_or(TokenError::Invalid)?,
                raised_at: raised_at.parse().map_err(|_| TokenError::Invalid)?,
            }),
        ),
        _ => return Err(TokenError::Invalid),
    };
    let expires_at = expiry
        .parse::<i64>()
        .map_err(|_| TokenError::Invalid)?
        .saturating_mul(1000);
    if now >= expires_at {
        return Err(TokenError::Expired);
    }
    Ok(AckClaim {
        tenant: (*tenant).to_owned(),
        alert_id: (*alert_id).to_owned(),
        channel_id: (*channel_id).to_owned(),
        expires_at,
        sent_for,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> AckClaim {
        AckClaim {
            tenant: "acme".into(),
            alert_id: "alert_cpu_h1_1".into(),
            channel_id: "ops".into(),
            expires_at: 1_800_000_000_000,
            sent_for: Some(SentFor {
                severity: Severity::Warning,
                raised_at: 1_799_000_000_123,
            }),
        }
    }

    fn alert(severity: Severity, raised_at: Millis) -> AlertRecord {
        let source = (crate::domain::alerts::SourceType::System, "h1");
        AlertRecord::open(
            "alert_cpu_h1_1",
            severity,
            "High CPU usage: 95%",
            source,
            "cpu_high",
            raised_at,
        )
    }

    /// Whether `claim` applies to the alert raised with each severity at each time, as
    /// each case says (and why).
    fn assert_applies(claim: &AckClaim, cases: &[(Severity, Millis, bool, &str)]) {
        for &(severity, raised_at, applies, why) in cases {
            let alert = alert(severity, raised_at);
            assert_eq!(claim.applies_to(&alert), applies, "{why}");
        }
    }

    #[test]
    fn a_link_applies_until_the_alert_escalates_after_it_was_sent() {
        let token = sign(b"secret", &claim());
        let claim = verify(b"secret", &token, 1_700_000_000_000)
            .unwrap_or_else(|e| panic!("verifying a fresh link: {e}"));
        assert_eq!(
            claim.sent_for.map(|s| (s.severity, s.raised_at)),
            Some((Severity::Warning, 1_799_000_000_123)),
            "what it was sent for survives signing, to the millisecond"
        );
        assert_applies(
            &claim,
            &[
                (
                    Severity::Warning,
                    1_799_000_000_123,
                    true,
                    "the alert as it was sent",
                ),
                (
                    Severity::Info,
                    1_799_000_000_123,
                    true,
                    "a de-escalation keeps raised_at: the more urgent message's link still works",
                ),
                (
                    Severity::Critical,
                    1_799_000_000_124,
                    false,
                    "escalated a millisecond after: raised_at moved",
                ),
            ],
        );
    }

    #[test]
    fn an_older_unbound_link_stops_applying_once_the_alert_escalated_after_its_message() {
        // Decided at 1_799_000_000_500: the expiry is signed in whole seconds.
        let old = AckClaim {
            sent_for: None,
            expires_at: (1_799_000_000_500 + ACK_LINK_TTL_MS) / 1000 * 1000,
            ..claim()
        };
        let token = sign(b"secret", &old);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap_or_default())
                .map(|b| b.iter().filter(|c| **c == b'\n').count())
                .ok(),
            Some(3),
            "four fields, as links were signed before"
        );
        let verified = verify(b"secret", &token, 1_799_000_001_000)
            .unwrap_or_else(|e| panic!("verifying an old-format link: {e}"));
        assert_eq!(verified.sent_for, None, "nothing bound in the older form");
        assert_applies(
            &verified,
            &[
                (
                    Severity::Warning,
                    1_798_000_000_000,
                    true,
                    "raised long before its message",
                ),
                (
                    Severity::Warning,
                    1_799_000_000_400,
                    true,
                    "raised in the second its message was decided",
                ),
                (
                    Severity::Critical,
                    1_799_000_060_000,
                    false,
                    "escalated a minute after its message",
                ),
            ],
        );
    }

    #[test]
    fn a_signed_token_verifies_until_it_expires() {
        let token = sign(b"secret", &claim());
        assert_eq!(verify(b"secret", &token, 1_700_000_000_000), Ok(claim()));
        assert_eq!(
            verify(b"secret", &token, 1_800_000_000_000),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn altered_tokens_and_other_secrets_are_refused() {
        let token = sign(b"secret", &claim());
        assert_eq!(
            verify(b"other", &token, 0),
            Err(TokenError::Invalid),
            "another deployment's secret"
        );
        // Swap the tenant inside the payload, keep the signature.
        let (_, tag) = token.split_once('.').unwrap_or_default();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode("globex\nalert_cpu_h1_1\nops\n1800000000")
        );
        assert_eq!(verify(b"secret", &forged, 0), Err(TokenError::Invalid));
        let mut flipped = token.clone().into_bytes();
        flipped[3] ^= 1;
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert_eq!(verify(b"secret", &flipped, 0), Err(TokenError::Invalid));
        assert_eq!(verify(b"secret", "nonsense", 0), Err(TokenError::Invalid));
    }
}
