//! Outbound HTTP to tenant-chosen URLs (probes, webhooks, Slack, PagerDuty), and how its
//! errors are told. The SSRF rule of registration is enforced again when connecting, on
//! the address actually connected to: DNS answers can change after registration (DNS
//! rebinding), so host names resolve through a resolver that drops restricted addresses,
//! IP literals are checked before connecting, redirects are not followed, and proxies from
//! the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored: a proxy would
//! resolve the name itself and connect wherever it resolves, past the check.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::address::{permitted, AllowedAddress};

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

/// Clients for tenant-chosen URLs. Cheap to clone (the connection pools are shared).
#[derive(Debug, Clone)]
pub struct GuardedClient {
    /// For ports no allow-list entry names.
    client: reqwest::Client,
    /// One client for each port a port-restricted entry names (few: usually none).
    by_port: Arc<BTreeMap<u16, reqwest::Client>>,
    allowed: Arc<[AllowedAddress]>,
}

impl GuardedClient {
    /// Clients that may reach restricted addresses only where `allowed` opens them.
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

    /// The client for `url`: restricted addresses refused at connect time (for the URL's
    /// port), no redirects, no proxies. Check the URL with [`GuardedClient::check_target`]
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
    describe_chain(e)
}

/// Any error with its sources, `: `-separated (the AWS SDK's errors put the cause in them).
pub fn describe_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

/// What tests of outbound calls share: a receiver to call.
#[cfg(test)]
pub(crate) mod testing {
    /// A listener on a free loopback port, and its address.
    pub(crate) async fn loopback() -> (tokio::net::TcpListener, std::net::SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("binding a loopback listener: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("reading the listener's address: {e}"));
        (listener, addr)
    }
}
