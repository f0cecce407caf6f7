//! HTTP probes of integrations. The SSRF rule of registration is enforced again at probe
//! time, on the address actually connected to: DNS answers can change after registration
//! (DNS rebinding), so host names resolve through a resolver that drops restricted
//! addresses, IP literals are checked before connecting, redirects are not followed, and
//! proxies from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a
//! proxy would resolve the name itself and connect wherever it resolves, past the check.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::address::{permitted, AllowedAddress};
use crate::domain::records::Probe;

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// The expected status came back in time.
    pub ok: bool,
    /// Some HTTP answer came back (any status): the address works.
    pub answered: bool,
    /// Time to the response (or to the failure), ms.
    pub latency_ms: f64,
    /// Why it failed, for the logs.
    pub error: Option<String>,
}

/// Resolves names like the system resolver, minus restricted addresses the allow-list does
/// not open on `port`.
///
/// A resolver is asked for a name only, never the port, so each client's resolver is made
/// for one port: the client of a port named by a port-restricted entry, or the client of
/// every other port (`port: None`), which only entries without a port can open.
#[derive(Debug)]
struct GuardedResolver {
    allowed: Arc<[AllowedAddress]>,
    port: Option<u16>,
}

impl GuardedResolver {
    fn permits(&self, ip: IpAddr) -> bool {
        // For the client of every other port, port 0: no port-restricted entry names it.
        permitted(SocketAddr::new(ip, self.port.unwrap_or(0)), &self.allowed)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = GuardedResolver {
            allowed: Arc::clone(&self.allowed),
            port: self.port,
        };
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| guard.permits(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!(
                    "{} resolves to no address probes may reach (loopback, private, \
                     link-local and metadata addresses are refused)",
                    name.as_str()
                )
                .into());
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// The one way this crate builds a client for tenant-chosen URLs (probes, webhooks, Slack,
/// PagerDuty): the guarded resolver for `port`, no redirects, and no proxy whatever the
/// environment says.
fn guarded_client(
    allowed: &Arc<[AllowedAddress]>,
    port: Option<u16>,
) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver {
            allowed: Arc::clone(allowed),
            port,
        }))
        .user_agent(concat!("agent-health-monitor/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Runs probes. Cheap to clone (the connection pools are shared).
#[derive(Debug, Clone)]
pub struct Prober {
    /// For ports no allow-list entry names.
    client: reqwest::Client,
    /// One client for each port a port-restricted entry names (few: usually none).
    by_port: Arc<BTreeMap<u16, reqwest::Client>>,
    allowed: Arc<[AllowedAddress]>,
}

impl Prober {
    /// A prober that may reach restricted addresses only where `allowed` opens them.
    pub fn new(allowed: &[AllowedAddress]) -> Result<Self, reqwest::Error> {
        let allowed: Arc<[AllowedAddress]> = allowed.into();
        let mut by_port = BTreeMap::new();
        for port in allowed.iter().filter_map(|a| a.port) {
            if let std::collections::btree_map::Entry::Vacant(slot) = by_port.entry(port) {
                slot.insert(guarded_client(&allowed, Some(port))?);
            }
        }
        Ok(Self {
            client: guarded_client(&allowed, None)?,
            by_port: Arc::new(by_port),
            allowed,
        })
    }

    /// Requests the probe's URL once and compares the status.
    pub async fn probe(&self, probe: &Probe) -> ProbeOutcome {
        let started = Instant::now();
        let result = self.request(probe).await;
        let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        match result {
            Ok(status) if status == probe.expected_status => ProbeOutcome {
                ok: true,
                answered: true,
                latency_ms,
                error: None,
            },
            Ok(status) => ProbeOutcome {
                ok: false,
                answered: true,
                latency_ms,
                error: Some(format!(
                    "answered {status}, expected {}",
                    probe.expected_status
                )),
            },
            Err(error) => ProbeOutcome {
                ok: false,
                answered: false,
                latency_ms,
                error: Some(error),
            },
        }
    }

    async fn request(&self, probe: &Probe) -> Result<u16, String> {
        let url = url::Url::parse(&probe.url).map_err(|e| format!("bad URL: {e}"))?;
        self.check_target(&url)?;
        let response = self
            .client_for(&url)
            .get(url)
            .timeout(Duration::from_millis(probe.timeout_ms))
            .send()
            .await
            .map_err(|e| describe(&e, probe.timeout_ms))?;
        Ok(response.status().as_u16())
    }

    /// The client for `url`: restricted addresses refused at connect time (for the URL's
    /// port), no redirects, no proxies. Notification deliveries use it too, as their
    /// destinations follow the same rule. Check the URL with [`Prober::check_target`]
    /// first: an IP literal never reaches the resolver.
    pub fn client_for(&self, url: &url::Url) -> &reqwest::Client {
        url.port_or_known_default()
            .and_then(|port| self.by_port.get(&port))
            .unwrap_or(&self.client)
    }

    /// Refuses a URL whose host is a restricted IP literal that the allow-list does not open
    /// on the URL's port (names are checked by the resolver when connecting).
    pub fn check_target(&self, url: &url::Url) -> Result<(), String> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        let port = url.port_or_known_default().unwrap_or(0);
        match literal.filter(|ip| !permitted(SocketAddr::new(*ip, port), &self.allowed)) {
            Some(ip) => Err(format!(
                "{ip} is an address probes may not reach (on port {port})"
            )),
            None => Ok(()),
        }
    }
}

/// A request error for the logs and the delivery log: the whole chain (refused, the
/// resolver's verdict), or the timeout.
pub fn describe(e: &reqwest::Error, timeout_ms: u64) -> String {
    if e.is_timeout() {
        return format!("no answer within {timeout_ms} ms");
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(url: &str) -> Probe {
        Probe {
            url: url.into(),
            timeout_ms: 2000,
            expected_status: 200,
        }
    }

    #[tokio::test]
    async fn restricted_targets_are_refused_at_probe_time_without_a_connection() {
        let prober = Prober::new(&[]).expect("building a prober that allows nothing");
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:9/",
            "http://localhost:9/",
            "http://[::1]:9/",
        ] {
            let out = prober.probe(&probe(url)).await;
            assert!(!out.ok, "{url}");
            let error = out.error.unwrap_or_default();
            assert!(
                error.contains("may not reach") || error.contains("refused"),
                "{url}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn an_allowed_loopback_target_is_probed_and_its_status_compared() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback listener");
        let addr = listener
            .local_addr()
            .expect("reading the listener's address");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let prober =
            Prober::new(&[addr.ip().into()]).expect("building a prober that allows loopback");
        let out = prober.probe(&probe(&format!("http://{addr}/health"))).await;
        assert!(!out.ok);
        assert_eq!(out.error.as_deref(), Some("answered 503, expected 200"));
        let mut expect_503 = probe(&format!("http://{addr}/health"));
        expect_503.expected_status = 503;
        assert!(prober.probe(&expect_503).await.ok);
    }

    /// A listener on loopback answering 204 to anything, and its address.
    async fn answering() -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding a loopback listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("reading the listener's address: {e}"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_port_restricted_entry_reaches_that_port_and_not_another_on_the_same_address() {
        let open = answering().await;
        let other = answering().await;
        let prober = Prober::new(&[open.into()])
            .unwrap_or_else(|e| panic!("building a prober allowing {open}: {e}"));
        let expect = |url: String| Probe {
            url,
            timeout_ms: 2000,
            expected_status: 204,
        };
        // By address and by name (the resolver's check): the allowed port answers.
        for url in [
            format!("http://{open}/health"),
            format!("http://localhost:{}/health", open.port()),
        ] {
            let out = prober.probe(&expect(url.clone())).await;
            assert!(out.ok, "probing {url}, which the entry allows: {out:?}");
        }
        // The same address on another port is refused before connecting, by either route.
        for url in [
            format!("http://{other}/health"),
            format!("http://localhost:{}/health", other.port()),
        ] {
            let out = prober.probe(&expect(url.clone())).await;
            let error = out.error.clone().unwrap_or_default();
            assert!(
                !out.ok && (error.contains("may not reach") || error.contains("no address")),
                "probing {url}, a port the entry does not allow: {out:?}"
            );
        }
    }
}
