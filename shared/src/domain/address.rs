//! Which addresses probes may reach: only public ones, so a tenant cannot make the
//! collector reach into the deployment's network (SSRF), unless the deployment allows an
//! address explicitly (`PROBE_ALLOWED_ADDRESSES`). Pure rules; the checks that resolve
//! names (at registration, and again at probe time on the address connected to) use them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// Whether probes may reach `ip`: it is not restricted, or the deployment allows it.
pub fn permitted(ip: IpAddr, allowed: &[IpAddr]) -> bool {
    !is_restricted(ip) || allowed.contains(&ip)
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
}
