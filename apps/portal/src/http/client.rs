//! Who is on the other end: the client's address and whether the request came over HTTPS.
//!
//! The socket peer is the answer unless it is a configured trusted proxy. Then `Forwarded`
//! (RFC 7239) or `X-Forwarded-For` is walked from the right, skipping trusted proxies, and the
//! first untrusted address is the client: a value the client wrote itself at the left is never
//! believed on its own. Malformed headers never fail the request: the walk stops and the last
//! trusted answer stands. The same trust decides `X-Forwarded-Proto` / `Forwarded: proto=`.

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

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
    pub fn client(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> ClientInfo {
        let peer_ip = peer.map_or(IpAddr::from([0, 0, 0, 0]), |p| p.ip().to_canonical());
        if !self.trusts(peer_ip) {
            return ClientInfo {
                ip: peer_ip,
                https: false,
            };
        }
        let hops = forwarded_for(headers);
        let mut client = peer_ip;
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
        ClientInfo {
            ip: client,
            https: forwarded_https(headers),
        }
    }
}

/// The hops of `Forwarded` if present, else of `X-Forwarded-For`, left to right; `None` for a hop
/// that is not an IP address (`unknown`, an obfuscated name, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .filter_map(|v| v.to_str().ok())
        .collect();
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
        .get_all("x-forwarded-for")
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(|hop| parse_node(hop.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:443`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sock) = node.parse::<SocketAddr>() {
        return Some(sock.ip().to_canonical());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The protocol the nearest trusted proxy saw: the rightmost `X-Forwarded-Proto` value, or the
/// `proto=` of the rightmost `Forwarded` element.
fn forwarded_https(headers: &HeaderMap) -> bool {
    let last_value = |name: &str| {
        headers
            .get_all(name)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .map(str::trim)
            .map(str::to_owned)
    };
    if let Some(proto) = last_value("x-forwarded-proto") {
        return proto.eq_ignore_ascii_case("https");
    }
    last_value("forwarded").is_some_and(|element| {
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
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn proxies() -> TrustedProxies {
        TrustedProxies::new(vec![
            "10.0.0.0/8".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ])
    }

    fn check(peer: &str, pairs: &[(&str, &str)], ip: &str, https: bool) {
        let peer = SocketAddr::new(peer.parse::<IpAddr>().unwrap(), 5000);
        let got = proxies().client(Some(peer), &headers(pairs));
        assert_eq!(
            got,
            ClientInfo {
                ip: ip.parse().unwrap(),
                https
            },
            "{peer} {pairs:?}"
        );
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        check(
            "203.0.113.9",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
            ],
            "203.0.113.9",
            false,
        );
        check(
            "203.0.113.9",
            &[("forwarded", "for=1.2.3.4;proto=https")],
            "203.0.113.9",
            false,
        );
    }

    #[test]
    fn trusted_proxy_walks_from_the_right() {
        check(
            "10.0.0.1",
            &[("x-forwarded-for", "198.51.100.7")],
            "198.51.100.7",
            false,
        );
        // The client wrote "6.6.6.6" itself; the proxy appended the real address.
        check(
            "10.0.0.1",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
            "198.51.100.7",
            false,
        );
        // Two trusted hops before the client.
        check(
            "10.0.0.1",
            &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")],
            "198.51.100.7",
            false,
        );
        check(
            "10.0.0.1",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            "198.51.100.7",
            false,
        );
        check(
            "10.0.0.1",
            &[
                ("x-forwarded-proto", "https"),
                ("x-forwarded-for", "198.51.100.7"),
            ],
            "198.51.100.7",
            true,
        );
    }

    #[test]
    fn rfc7239_forwarded_is_understood() {
        check(
            "10.0.0.1",
            &[("forwarded", "for=6.6.6.6, for=198.51.100.7;proto=https")],
            "198.51.100.7",
            true,
        );
        check(
            "10.0.0.1",
            &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=http")],
            "2001:db8::7",
            false,
        );
        check(
            "10.0.0.1",
            &[("forwarded", "For=192.0.2.60;Proto=HTTPS;by=203.0.113.43")],
            "192.0.2.60",
            true,
        );
    }

    #[test]
    fn malformed_headers_fall_back_to_nearest_trusted() {
        check(
            "10.0.0.1",
            &[("x-forwarded-for", "garbage")],
            "10.0.0.1",
            false,
        );
        check(
            "10.0.0.1",
            &[("x-forwarded-for", "198.51.100.7, garbage, 10.0.0.2")],
            "10.0.0.2",
            false,
        );
        check("10.0.0.1", &[("x-forwarded-for", "")], "10.0.0.1", false);
        check(
            "10.0.0.1",
            &[("forwarded", "for=unknown")],
            "10.0.0.1",
            false,
        );
        check("10.0.0.1", &[("forwarded", ";;==,,")], "10.0.0.1", false);
        check(
            "10.0.0.1",
            &[("x-forwarded-proto", "https, http")],
            "10.0.0.1",
            false,
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_canonical() {
        check(
            "::ffff:10.0.0.1",
            &[("x-forwarded-for", "::ffff:198.51.100.7")],
            "198.51.100.7",
            false,
        );
        check(
            "fd00::1",
            &[("x-forwarded-for", "2001:db8::1")],
            "2001:db8::1",
            false,
        );
    }
}
