use super::*;
use proptest::prelude::*;

/// Headers as a list of (name, value) pairs.
struct List(Vec<(String, String)>);

impl Headers for List {
    fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        let name = name.to_owned();
        self.0
            .iter()
            .filter(move |(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn list(pairs: &[(&str, &str)]) -> List {
    List(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn proxies() -> TrustedProxies {
    TrustedProxies::new(vec![
        "10.0.0.0/8".parse().unwrap(),
        "fd00::/8".parse().unwrap(),
    ])
}

fn check(peer: &str, pairs: &[(&str, &str)], ip: &str, https: bool) {
    let got = proxies().client(Some(peer.parse().unwrap()), &list(pairs));
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

#[test]
fn networks_group_ipv6_by_64() {
    let net = |ip: &str| client_network(ip.parse().unwrap(), 32, 64).to_string();
    assert_eq!(net("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
    assert_eq!(net("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
    assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
    assert_eq!(net("192.0.2.7"), "192.0.2.7/32");
    assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7/32");
    assert_eq!(
        client_network("192.0.2.7".parse().unwrap(), 24, 64).to_string(),
        "192.0.2.0/24"
    );
}

fn untrusted_v4() -> impl Strategy<Value = IpAddr> {
    // Anything outside 10.0.0.0/8.
    (11u8..=223, any::<u8>(), any::<u8>(), any::<u8>())
        .prop_map(|(a, b, c, d)| IpAddr::from([a, b, c, d]))
}

fn untrusted_v6() -> impl Strategy<Value = IpAddr> {
    // Global unicast 2000::/3, outside fd00::/8.
    any::<[u16; 8]>().prop_map(|mut s| {
        s[0] = 0x2000 | (s[0] & 0x1fff);
        IpAddr::from(s)
    })
}

fn untrusted() -> impl Strategy<Value = IpAddr> {
    prop_oneof![untrusted_v4(), untrusted_v6()]
}

fn trusted() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|[b, c, d]| IpAddr::from([10, b, c, d])),
        any::<[u16; 7]>()
            .prop_map(|s| IpAddr::from([0xfd00, s[0], s[1], s[2], s[3], s[4], s[5], s[6]])),
    ]
}

fn render(ip: &IpAddr, forwarded: bool) -> String {
    match (ip, forwarded) {
        (IpAddr::V6(v6), true) => format!("for=\"[{v6}]\""),
        (ip, true) => format!("for={ip}"),
        (ip, false) => ip.to_string(),
    }
}

proptest! {
    /// Whatever the client prepends, behind any number of trusted proxies the answer is the
    /// address the first trusted proxy saw.
    #[test]
    fn the_rightmost_untrusted_hop_is_the_client(
        spoofed in proptest::collection::vec(prop_oneof![untrusted(), trusted()], 0..4),
        real in untrusted(),
        chain in proptest::collection::vec(trusted(), 0..4),
        peer in trusted(),
        use_forwarded in any::<bool>(),
        split in any::<bool>(),
    ) {
        let hops: Vec<String> = spoofed.iter().chain([&real]).chain(chain.iter()).map(|ip| render(ip, use_forwarded)).collect();
        let name = if use_forwarded { "forwarded" } else { "x-forwarded-for" };
        let headers = if split {
            List(hops.iter().map(|h| (name.to_owned(), h.clone())).collect())
        } else {
            List(vec![(name.to_owned(), hops.join(", "))])
        };
        prop_assert_eq!(proxies().client(Some(peer), &headers).ip, real);
    }

    /// From an untrusted peer, headers change nothing.
    #[test]
    fn untrusted_peers_cannot_claim_anything(
        peer in untrusted(),
        values in proptest::collection::vec(".*", 0..4),
    ) {
        let mut pairs = Vec::new();
        for v in &values {
            for name in ["x-forwarded-for", "forwarded", "x-forwarded-proto"] {
                pairs.push((name.to_owned(), v.clone()));
            }
        }
        pairs.push(("x-forwarded-proto".to_owned(), "https".to_owned()));
        prop_assert_eq!(proxies().client(Some(peer), &List(pairs)), ClientInfo { ip: peer, https: false });
    }

    /// Arbitrary header text never panics (a panic fails the property) and never turns an
    /// untrusted peer's request into anything but the peer.
    #[test]
    fn garbage_never_fails(peer in trusted(), stranger in untrusted(), xff in ".{0,80}", fwd in ".{0,80}", proto in ".{0,20}") {
        let headers = List(vec![
            ("x-forwarded-for".into(), xff),
            ("forwarded".into(), fwd),
            ("x-forwarded-proto".into(), proto),
        ]);
        let _ = proxies().client(Some(peer), &headers);
        prop_assert_eq!(proxies().client(Some(stranger), &headers).ip, stranger);
    }
}
