//! Which addresses probes may reach: only public ones, so a tenant cannot make the
//! collector reach into the deployment's network (SSRF), unless the deployment allows an
//! address explicitly (`PROBE_ALLOWED_ADDRESSES`, on every port or on one). Pure rules; the
//! checks that resolve names (at registration, and again at probe time on the address and
//! port connected to) use them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// Whether an address is one probes must not reach: loopback, private, carrier-grade NAT,
/// benchmarking, link-local (which holds cloud metadata services), unspecified, broadcast,
/// multicast, documentation; IPv6 unique-local and link-local; and every IPv6 form that
/// carries an IPv4 address some networks translate to it (v4-mapped, v4-compatible,
/// SIIT-translated, NAT64, 6to4) when the IPv4 address is restricted.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_restricted_v4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let first = s[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, incl. AWS fd00:ec2::254
                || (first & 0xffc0) == 0xfe80 // link-local
                // Local-use NAT64 (RFC 8215): a site's own translator, never a public target.
                || s[..3] == [0x64, 0xff9b, 1]
                || embedded_v4(v6).is_some_and(is_restricted_v4)
        }
    }
}

/// The IPv4 address an IPv6 address carries where some network may translate it to that
/// IPv4 address: `::ffff:a.b.c.d` (mapped), `::a.b.c.d` (compatible), `::ffff:0:a.b.c.d`
/// (SIIT), `64:ff9b::a.b.c.d` (well-known NAT64 prefix) and `2002:aabb:ccdd::/48` (6to4).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo]
        | [0, 0, 0, 0, 0, 0, hi, lo]
        | [0, 0, 0, 0, 0xffff, 0, hi, lo]
        | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

fn is_restricted_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, routed inside some networks
        || a >= 240 // reserved
}

/// One entry of `PROBE_ALLOWED_ADDRESSES`: an address probes and notifications may reach
/// although it is restricted, on every port (`127.0.0.1`, `::1`) or on one
/// (`127.0.0.1:8025`, `[::1]:8025`). A port narrows what the entry opens: the local stack's
/// demo allows its own inbox's address and port, not every service on loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AllowedAddress {
    /// The address.
    pub ip: IpAddr,
    /// The one port allowed; `None`: every port.
    pub port: Option<u16>,
}

impl AllowedAddress {
    /// Whether this entry opens `target`.
    pub fn allows(&self, target: SocketAddr) -> bool {
        self.ip == target.ip() && self.port.is_none_or(|p| p == target.port())
    }
}

impl From<IpAddr> for AllowedAddress {
    fn from(ip: IpAddr) -> Self {
        Self { ip, port: None }
    }
}

impl From<SocketAddr> for AllowedAddress {
    fn from(addr: SocketAddr) -> Self {
        Self {
            ip: addr.ip(),
            port: Some(addr.port()),
        }
    }
}

/// Why an allow-list entry does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not an IP address (127.0.0.1, ::1) or an address with a port \
     (127.0.0.1:8025, [::1]:8025; port 1 to 65535)"
)]
pub struct AllowedAddressError(String);

impl FromStr for AllowedAddress {
    type Err = AllowedAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(ip.into());
        }
        // `[::1]` alone: the bracketed form of a bare IPv6 address.
        if let Some(ip) = text
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<Ipv6Addr>().ok())
        {
            return Ok(IpAddr::V6(ip).into());
        }
        match text.parse::<SocketAddr>() {
            // Port 0 names no port a URL can use: a mistake, not "every port".
            Ok(addr) if addr.port() != 0 => Ok(addr.into()),
            _ => Err(AllowedAddressError(text.to_owned())),
        }
    }
}

impl std::fmt::Display for AllowedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            None => write!(f, "{}", self.ip),
            Some(port) => write!(f, "{}", SocketAddr::new(self.ip, port)),
        }
    }
}

/// Whether probes and notifications may reach `target` (the address and the port
/// connected to): its address is not restricted, or an entry of the deployment's allow-list
/// opens it.
pub fn permitted(target: SocketAddr, allowed: &[AllowedAddress]) -> bool {
    !is_restricted(target.ip()) || allowed.iter().any(|a| a.allows(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_restricted_and_public_ones_not() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "198.18.0.1",
            "198.19.255.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1.1.1.1",
            "::10.0.0.1",
            "::127.0.0.1",
            "::ffff:0:192.168.0.1",
            "::ffff:0:169.254.169.254",
            "2002:a00:1::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(
                is_restricted(ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                "{ip}"
            );
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "1.1.1.1",
            "64:ff9b::1.1.1.1",
            "2002:101:101::1",
            "198.20.0.1",
        ] {
            assert!(
                !is_restricted(ip.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))),
                "{ip}"
            );
        }
    }

    fn entry(text: &str) -> AllowedAddress {
        text.parse()
            .unwrap_or_else(|e| panic!("parsing the allow-list entry {text}: {e}"))
    }

    fn target(text: &str) -> SocketAddr {
        text.parse()
            .unwrap_or_else(|e| panic!("parsing the target {text}: {e}"))
    }

    #[test]
    fn allow_list_entries_name_an_address_with_or_without_a_port() {
        for (text, port) in [
            ("127.0.0.1", None),
            (" ::1 ", None),
            ("[::1]", None),
            ("127.0.0.1:8025", Some(8025)),
            ("[::1]:8025", Some(8025)),
        ] {
            assert_eq!(entry(text).port, port, "the port of {text:?}");
        }
        assert_eq!(
            entry("[::1]:8025").ip,
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            "the address of [::1]:8025"
        );
        for bad in [
            "",
            "localhost",
            "127.0.0.1:",
            "127.0.0.1:0",
            "::1:8025x",
            "1.2.3.4:70000",
        ] {
            assert!(bad.parse::<AllowedAddress>().is_err(), "{bad:?} parsed");
        }
        for text in ["127.0.0.1", "::1", "127.0.0.1:8025", "[::1]:8025"] {
            assert_eq!(entry(text).to_string(), text, "shown as written");
        }
    }

    #[test]
    fn a_port_restricted_entry_allows_that_port_and_refuses_another_on_the_same_address() {
        let ports = [entry("127.0.0.1:8025"), entry("[::1]:9000")];
        // A bare address still opens every port; public addresses need no entry.
        let every_port = [entry("10.0.0.5")];
        for (to, allowed, expected) in [
            ("127.0.0.1:8025", &ports[..], true),
            ("127.0.0.1:8026", &ports[..], false),
            ("127.0.0.1:9000", &ports[..], false), // another entry's port
            ("[::1]:9000", &ports[..], true),
            ("[::1]:8025", &ports[..], false),
            ("10.0.0.5:1", &every_port[..], true),
            ("10.0.0.5:65535", &every_port[..], true),
            ("10.0.0.6:80", &every_port[..], false),
            ("1.1.1.1:22", &[][..], true),
        ] {
            assert_eq!(
                permitted(target(to), allowed),
                expected,
                "reaching {to} with the allow-list {allowed:?}"
            );
        }
    }
}
