//! HTTP probes of integrations, through the guarded client of [`crate::outbound`]: the
//! SSRF rule of registration is enforced again at probe time, on the address actually
//! connected to.

use std::time::{Duration, Instant};

use crate::domain::address::AllowedAddress;
use crate::domain::records::Probe;
use crate::outbound::{describe, GuardedClient};

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

/// Runs probes. Cheap to clone (the connection pools are shared).
#[derive(Debug, Clone)]
pub struct Prober {
    client: GuardedClient,
}

impl Prober {
    /// A prober that may reach restricted addresses only where `allowed` opens them.
    pub fn new(allowed: &[AllowedAddress]) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: GuardedClient::new(allowed)?,
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
        self.client.check_target(&url)?;
        let response = self
            .client
            .client_for(&url)
            .get(url)
            .timeout(Duration::from_millis(probe.timeout_ms))
            .send()
            .await
            .map_err(|e| describe(&e, probe.timeout_ms))?;
        Ok(response.status().as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

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
        let addr = answering(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        let prober =
            Prober::new(&[addr.ip().into()]).expect("building a prober that allows loopback");
        let out = prober.probe(&probe(&format!("http://{addr}/health"))).await;
        assert!(!out.ok);
        assert_eq!(out.error.as_deref(), Some("answered 503, expected 200"));
        let mut expect_503 = probe(&format!("http://{addr}/health"));
        expect_503.expected_status = 503;
        assert!(prober.probe(&expect_503).await.ok);
    }

    /// A listener on loopback answering `response` to anything, and its address.
    async fn answering(response: &'static [u8]) -> SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (listener, addr) = crate::outbound::testing::loopback().await;
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let _ = socket.write_all(response).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_port_restricted_entry_reaches_that_port_and_not_another_on_the_same_address() {
        let no_content = b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n";
        let open = answering(no_content).await;
        let other = answering(no_content).await;
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
