//! HTTP probes of integrations. The SSRF rule of registration is enforced again at probe
//! time, on the address actually connected to: DNS answers can change after registration
//! (DNS rebinding), so host names resolve through a resolver that drops restricted
//! addresses, IP literals are checked before connecting, and redirects are not followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::address::permitted;
use crate::domain::records::Probe;

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOutcome {
    /// The expected status came back in time.
    pub ok: bool,
    /// Time to the response (or to the failure), ms.
    pub latency_ms: f64,
    /// Why it failed, for the logs.
    pub error: Option<String>,
}

/// Resolves names like the system resolver, minus restricted addresses not explicitly
/// allowed.
#[derive(Debug)]
struct GuardedResolver {
    allowed: Arc<[IpAddr]>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = Arc::clone(&self.allowed);
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| permitted(a.ip(), &allowed))
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

/// Runs probes. Cheap to clone (one connection pool).
#[derive(Debug, Clone)]
pub struct Prober {
    client: reqwest::Client,
    allowed: Arc<[IpAddr]>,
}

impl Prober {
    /// A prober that may reach restricted addresses only if listed in `allowed`.
    pub fn new(allowed: &[IpAddr]) -> Result<Self, reqwest::Error> {
        let allowed: Arc<[IpAddr]> = allowed.into();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                allowed: Arc::clone(&allowed),
            }))
            .user_agent(concat!("agent-health-monitor/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, allowed })
    }

    /// Requests the probe's URL once and compares the status.
    pub async fn probe(&self, probe: &Probe) -> ProbeOutcome {
        let started = Instant::now();
        let result = self.request(probe).await;
        let latency_ms = (started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        match result {
            Ok(status) if status == probe.expected_status => ProbeOutcome {
                ok: true,
                latency_ms,
                error: None,
            },
            Ok(status) => ProbeOutcome {
                ok: false,
                latency_ms,
                error: Some(format!(
                    "answered {status}, expected {}",
                    probe.expected_status
                )),
            },
            Err(error) => ProbeOutcome {
                ok: false,
                latency_ms,
                error: Some(error),
            },
        }
    }

    async fn request(&self, probe: &Probe) -> Result<u16, String> {
        let url = url::Url::parse(&probe.url).map_err(|e| format!("bad URL: {e}"))?;
        self.check_target(&url)?;
        let response = self
            .client
            .get(url)
            .timeout(Duration::from_millis(probe.timeout_ms))
            .send()
            .await
            .map_err(|e| describe(&e, probe.timeout_ms))?;
        Ok(response.status().as_u16())
    }

    /// The client: restricted addresses refused at connect time, no redirects. Notification
    /// deliveries use it too, as their destinations follow the same rule.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Refuses a URL whose host is a restricted IP literal not explicitly allowed (names are
    /// checked by the resolver when connecting).
    pub fn check_target(&self, url: &url::Url) -> Result<(), String> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal.filter(|ip| !permitted(*ip, &self.allowed)) {
            Some(ip) => Err(format!("{ip} is an address probes may not reach")),
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
        let prober = Prober::new(&[]).unwrap_or_else(|e| panic!("{e}"));
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
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            }
        });
        let prober = Prober::new(&[addr.ip()]).unwrap_or_else(|e| panic!("{e}"));
        let out = prober.probe(&probe(&format!("http://{addr}/health"))).await;
        assert!(!out.ok);
        assert_eq!(out.error.as_deref(), Some("answered 503, expected 200"));
        let mut expect_503 = probe(&format!("http://{addr}/health"));
        expect_503.expected_status = 503;
        assert!(prober.probe(&expect_503).await.ok);
    }
}
