//! The SSRF guard: which addresses the `http` kind may connect to.
//!
//! A job's URL comes from whoever holds the API token, and the dyno can reach things the outside
//! world cannot (Redis on a private network, cloud metadata services, the app itself on
//! loopback). So every address a request would connect to is checked: IP-literal hosts here
//! before sending and at every redirect, and resolved names in [`super::resolver`] before
//! connecting, which is what defeats DNS rebinding. `HTTP_ALLOW_NETWORKS` lifts the guard for
//! chosen networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::Url;

/// Why an address was refused: it names the address, so the job's error says what to allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "blocked address {address} ({range}){}: the SSRF guard refuses it unless HTTP_ALLOW_NETWORKS allows it",
    host.as_ref().map(|h| format!(" for host {h}")).unwrap_or_default()
)]
pub(crate) struct Blocked {
    /// The refused address.
    pub(crate) address: IpAddr,
    /// The kind of range it is in.
    pub(crate) range: &'static str,
    /// The name it was resolved from, when it was not a literal.
    pub(crate) host: Option<String>,
}

/// The addresses the guard allows: anything public, plus the networks `HTTP_ALLOW_NETWORKS` lists.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    allow: Vec<IpNet>,
}

const fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), len)
}

const fn v6(segments: [u16; 8], len: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), len)
}

/// IPv4 ranges that are not the public internet (RFC 6890 and its updates), first match wins.
const BLOCKED_V4: [(Ipv4Net, &str); 16] = [
    (v4(0, 0, 0, 0, 8), "unspecified"),
    (v4(10, 0, 0, 0, 8), "private"),
    (v4(100, 64, 0, 0, 10), "carrier-grade NAT"),
    (v4(127, 0, 0, 0, 8), "loopback"),
    (v4(169, 254, 0, 0, 16), "link-local, cloud metadata"),
    (v4(172, 16, 0, 0, 12), "private"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignments"),
    (v4(192, 0, 2, 0, 24), "documentation"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast"),
    (v4(192, 168, 0, 0, 16), "private"),
    (v4(198, 18, 0, 0, 15), "benchmarking"),
    (v4(198, 51, 100, 0, 24), "documentation"),
    (v4(203, 0, 113, 0, 24), "documentation"),
    (v4(224, 0, 0, 0, 4), "multicast"),
    (v4(255, 255, 255, 255, 32), "broadcast"),
    (v4(240, 0, 0, 0, 4), "reserved"),
];

/// IPv6 ranges refused outright (those embedding an IPv4 address are judged by that address).
const BLOCKED_V6: [(Ipv6Net, &str); 12] = [
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 96), "IPv4-compatible"),
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), "local-use NAT64"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only"),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), "documentation"),
    (
        v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23),
        "IETF protocol assignments",
    ),
    (v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20), "documentation"),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), "unique-local"),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast"),
];

/// The only IPv6 space allocated for global unicast; anything else is reserved.
const GLOBAL_UNICAST_V6: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// The IPv4 address an IPv6 address stands for, when it is one of the forms that reach IPv4:
/// IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`
/// and 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    let prefix96 = bits >> 32;
    match prefix96 {
        0xffff | 0xffff_0000 => Some(low),
        0x0064_ff9b_0000_0000_0000_0000 => Some(low),
        _ if bits >> 112 == 0x2002 => Some(Ipv4Addr::from((bits >> 80) as u32)),
        _ => None,
    }
}

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    BLOCKED_V4
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, range)| *range)
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let listed = BLOCKED_V6
        .iter()
        .find(|(net, _)| net.contains(&ip))
        .map(|(_, range)| *range);
    match listed {
        Some(range) => Some(range),
        None if !GLOBAL_UNICAST_V6.contains(&ip) => Some("reserved"),
        None => None,
    }
}

impl Guard {
    /// A guard that also allows `allow` (from `HTTP_ALLOW_NETWORKS`).
    pub(crate) fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|net| net.contains(&ip))
    }

    /// Whether a connection to `ip` may be made; `host` is the name it came from, for the error.
    pub(crate) fn check(&self, ip: IpAddr, host: Option<&str>) -> Result<(), Blocked> {
        if self.allowed(ip) {
            return Ok(());
        }
        let range = match ip {
            IpAddr::V4(ip) => blocked_v4(ip),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(inner) if self.allowed(IpAddr::V4(inner)) => None,
                Some(inner) => blocked_v4(inner),
                None => blocked_v6(v6),
            },
        };
        match range {
            None => Ok(()),
            Some(range) => Err(Blocked {
                address: ip,
                range,
                host: host.map(str::to_string),
            }),
        }
    }

    /// Checks a URL whose host is an IP literal (reqwest connects to those without asking the
    /// resolver). A name passes here; the resolver checks what it resolves to.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), Blocked> {
        match literal_ip(url) {
            Some(ip) => self.check(ip, None),
            None => Ok(()),
        }
    }
}

/// The URL's host as an address, when it is a literal. The `url` crate has already turned odd
/// IPv4 spellings (`2130706433`, `0x7f.1`, `017700000001`) into dotted quads.
pub(crate) fn literal_ip(url: &Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
#[path = "guard_tests.rs"]
mod tests;
