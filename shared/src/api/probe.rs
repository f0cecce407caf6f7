//! Probe targets at registration: an HTTP(S) URL whose host resolves only to addresses the
//! policy permits ([`crate::domain::address`]). The collector checks the address it
//! connects to again at probe time, since DNS answers can change.

use std::net::{IpAddr, SocketAddr};

use crate::domain::address::{permitted, AllowedAddress};

/// Checks a probe URL; the error names what is wrong.
pub async fn check_url(url: &str, allowed: &[AllowedAddress]) -> Result<url::Url, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("must be an http or https URL".to_owned());
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<IpAddr> = match parsed.host() {
        Some(url::Host::Ipv4(ip)) => vec![IpAddr::V4(ip)],
        Some(url::Host::Ipv6(ip)) => vec![IpAddr::V6(ip)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| format!("host {name} does not resolve"))?
            .map(|sa| sa.ip())
            .collect(),
        None => return Err("must name a host".to_owned()),
    };
    if addrs.is_empty() {
        return Err("host does not resolve".to_owned());
    }
    if let Some(bad) = addrs
        .iter()
        .map(|ip| SocketAddr::new(*ip, port))
        .find(|target| !permitted(*target, allowed))
    {
        return Err(format!(
            "resolves to {}, a loopback, private, link-local or metadata address, which \
             probes may not reach unless PROBE_ALLOWED_ADDRESSES allows it (on port {port})",
            bad.ip()
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An allow-list of the one `entry`.
    fn allow(entry: &str) -> [AllowedAddress; 1] {
        [entry
            .parse()
            .unwrap_or_else(|e| panic!("parsing an allow-list entry: {e}"))]
    }

    #[tokio::test]
    async fn metadata_and_loopback_urls_are_refused_unless_allowed() {
        assert!(check_url("http://169.254.169.254/latest/meta-data", &[])
            .await
            .is_err());
        assert!(check_url("http://localhost:8080/health", &[])
            .await
            .is_err());
        assert!(check_url("ftp://example.com/", &[]).await.is_err());
        let allowed = allow("127.0.0.1");
        assert!(check_url("http://127.0.0.1:8080/health", &allowed)
            .await
            .is_ok());
        assert!(check_url("http://1.1.1.1/", &[]).await.is_ok());
    }

    #[tokio::test]
    async fn a_port_restricted_entry_allows_urls_on_that_port_only() {
        let allowed = allow("127.0.0.1:8025");
        assert!(check_url("http://127.0.0.1:8025/hook", &allowed)
            .await
            .is_ok());
        let refused = check_url("http://127.0.0.1:8026/hook", &allowed).await;
        assert!(
            refused.as_ref().is_err_and(|e| e.contains("port 8026")),
            "another port on the same address: {refused:?}"
        );
        // The scheme's port counts when the URL names none.
        assert!(check_url("http://127.0.0.1/hook", &allowed).await.is_err());
        assert!(check_url("http://localhost:8026/hook", &allowed)
            .await
            .is_err());
    }
}
