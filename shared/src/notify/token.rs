//! Acknowledge links: a signed, expiring token naming one alert of one tenant and the
//! channel that carried it, so a message can offer "Acknowledge" without an API key.
//!
//! Token: `base64url(tenant \n alert_id \n channel_id \n expiry_secs)` `.`
//! `base64url(HMAC-SHA256(secret, that first part))`. The secret is per deployment; a token
//! is refused when any byte is altered, after its expiry, or for another tenant's alert
//! (the tenant is inside the signed part, so it cannot be swapped).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

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

/// Signs a claim.
pub fn sign(secret: &[u8], claim: &AckClaim) -> String {
    let body = format!(
        "{}\n{}\n{}\n{}",
        claim.tenant,
        claim.alert_id,
        claim.channel_id,
        claim.expires_at.div_euclid(1000)
    );
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
    let [tenant, alert_id, channel_id, expiry] = parts.as_slice() else {
        return Err(TokenError::Invalid);
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
        }
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
