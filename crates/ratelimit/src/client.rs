//! Who is on the other end: the client's address and whether the request came over HTTPS.
//!
//! The socket peer is the answer unless it is a configured trusted proxy. Then `Forwarded`
//! (RFC 7239) or, without it, `X-Forwarded-For` is walked from the right, skipping trusted
//! proxies, and the first untrusted address is the client: a value the client wrote itself at the
//! left is never believed on its own. Malformed headers never fail the request: the walk stops and
//! the nearest trusted answer stands. The same trust decides `X-Forwarded-Proto` /
//! `Forwarded: proto=`.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Read access to request headers, so this crate needs no HTTP framework.
pub trait Headers {
    /// Every value of the header `name` (lower case), in order; values that are not text are
    /// left out.
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str>;
}

/// What the portal believes about the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether the client's connection is HTTPS.
    pub https: bool,
}

/// The configured trusted proxies.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts exactly these networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Decides the client from the socket peer and the request headers.
    pub fn client(&self, peer: Option<IpAddr>, headers: &impl Headers) -> ClientInfo {
        let peer_ip = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.to_canonical());
        if !self.trusts(peer_ip) {
            return ClientInfo {
                ip: peer_ip,
                https: false,
            };
        }
        let mut client = peer_ip;
        for hop in forwarded_for(headers).iter().rev() {
            match hop {
                Some(ip) => {
                    client = *ip;
                    if !self.trusts(*ip) {
                        break;
                    }
                }
                // A hop we cannot parse ends the walk; the nearest trusted answer stands.
                None => break,
            }
        }
        ClientInfo {
            ip: client,
            https: forwarded_https(headers),
        }
    }
}

/// The network a client is keyed by: its IPv4 /`v4_prefix` or IPv6 /`v6_prefix` (IPv4-mapped
/// IPv6 counts as IPv4), so rotating addresses inside one allocation does not buy a new budget.
pub fn client_network(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpNet {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpNet::new(IpAddr::V4(v4), v4_prefix.min(32)),
        IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), v6_prefix.min(128)),
    }
    .map(|net| net.trunc())
    .unwrap_or_else(|_| IpNet::from(IpAddr::V6(Ipv6Addr::UNSPECIFIED)))
}

/// The hops of `Forwarded` if present, else of `X-Forwarded-For`, left to right; `None` for a hop
/// that is not an IP address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &impl Headers) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.values("forwarded").collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .values("x-forwarded-for")
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = node.parse::<std::net::SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The protocol the nearest trusted proxy saw: the rightmost `X-Forwarded-Proto` value, or the
/// `proto=` of the rightmost `Forwarded` element.
fn forwarded_https(headers: &impl Headers) -> bool {
    let last = |name: &str| {
        headers
            .values(name)
            .flat_map(|v| v.split(','))
            .last()
            .map(str::trim)
    };
    if let Some(proto) = last("x-forwarded-proto") {
        return proto.eq_ignore_ascii_case("https");
    }
    last("forwarded").is_some_and(|element| {
        element
            .split(';')
            .filter_map(|p| p.split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("proto")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
            })
    })
}

#[cfg(test)]
mod tests;
