//! Who is on the other end: the client's address and whether the request came over HTTPS.
//!
//! The socket peer is the answer unless it is a configured trusted proxy. Then the header family
//! the operator says the proxies set ([`ForwardedHeaders`]) is walked from the right, skipping
//! trusted proxies, and the first untrusted address is the client: a value the client wrote itself
//! at the left is never believed on its own. The other family is never read, for the address or
//! the scheme: proxies append to the family they set but pass the other one through from the
//! client untouched, so reading it would let a client name its own address or scheme. Malformed
//! headers never fail the request: the walk stops and the nearest trusted answer stands.

use ipnet::IpNet;
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Read access to request headers, so this crate needs no HTTP framework.
pub trait Headers {
    /// Every value of the header `name` (lower case), in order; values that are not text are
    /// left out.
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str>;
}

/// Which header family the trusted proxies set; the other family is ignored entirely.
///
/// There is no "both" and no fallback from one to the other on purpose: whichever family the
/// proxies do not set arrives exactly as the client wrote it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ForwardedHeaders {
    /// `X-Forwarded-For` for the address and `X-Forwarded-Proto` for the scheme: what nginx,
    /// HAProxy's `option forwardfor` and most cloud load balancers set, hence the default.
    #[default]
    #[serde(rename = "x-forwarded-for", alias = "x_forwarded_for")]
    XForwardedFor,
    /// RFC 7239 `Forwarded`: `for=` for the address and `proto=` for the scheme.
    #[serde(rename = "forwarded")]
    Forwarded,
}

/// What the portal believes about the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address.
    pub ip: IpAddr,
    /// Whether the client's connection is HTTPS.
    pub https: bool,
}

/// The configured trusted proxies and the header family they set.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    headers: ForwardedHeaders,
}

impl TrustedProxies {
    /// Trusts exactly these networks, and only the `headers` family from them: the family is
    /// part of the trust, so it is given here and not guessed per request.
    pub fn new(nets: Vec<IpNet>, headers: ForwardedHeaders) -> Self {
        Self { nets, headers }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
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
        let hops = match self.headers {
            ForwardedHeaders::XForwardedFor => x_forwarded_for(headers),
            ForwardedHeaders::Forwarded => forwarded_for(headers),
        };
        for hop in hops.iter().rev() {
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
        let https = match self.headers {
            ForwardedHeaders::XForwardedFor => x_forwarded_proto_https(headers),
            ForwardedHeaders::Forwarded => forwarded_proto_https(headers),
        };
        ClientInfo { ip: client, https }
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

/// The `for=` hops of `Forwarded`, left to right; `None` for an element without one or with a
/// node that is not an IP address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &impl Headers) -> Vec<Option<IpAddr>> {
    headers
        .values("forwarded")
        .flat_map(|v| v.split(','))
        .map(|element| parse_node(forwarded_param(element, "for")?))
        .collect()
}

/// The hops of `X-Forwarded-For`, left to right; `None` for a hop that is not an IP address.
fn x_forwarded_for(headers: &impl Headers) -> Vec<Option<IpAddr>> {
    headers
        .values("x-forwarded-for")
        .flat_map(|v| v.split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// The value of parameter `name` in one `Forwarded` element (`for=a;proto=b`), unquoted.
fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().trim_matches('"'))
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

/// The rightmost value of header `name`, split on commas: what the nearest trusted proxy wrote.
fn last_value<'a>(headers: &'a impl Headers, name: &str) -> Option<&'a str> {
    headers
        .values(name)
        .flat_map(|v| v.split(','))
        .last()
        .map(str::trim)
}

/// Whether the rightmost `X-Forwarded-Proto` value is `https`.
fn x_forwarded_proto_https(headers: &impl Headers) -> bool {
    last_value(headers, "x-forwarded-proto")
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// Whether the rightmost `Forwarded` element says `proto=https`.
fn forwarded_proto_https(headers: &impl Headers) -> bool {
    last_value(headers, "forwarded")
        .and_then(|element| forwarded_param(element, "proto"))
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests;
