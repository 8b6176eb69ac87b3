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

const XFF: ForwardedHeaders = ForwardedHeaders::XForwardedFor;
const RFC: ForwardedHeaders = ForwardedHeaders::Forwarded;

fn proxies(headers: ForwardedHeaders) -> TrustedProxies {
    TrustedProxies::new(
        vec!["10.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
        headers,
    )
}

fn check(headers: ForwardedHeaders, peer: &str, pairs: &[(&str, &str)], ip: &str, https: bool) {
    let got = proxies(headers).client(Some(peer.parse().unwrap()), &list(pairs));
    assert_eq!(
        got,
        ClientInfo {
            ip: ip.parse().unwrap(),
            https
        },
        "{headers:?} {peer} {pairs:?}"
    );
}

#[test]
fn untrusted_peer_headers_are_ignored() {
    for family in [XFF, RFC] {
        check(
            family,
            "203.0.113.9",
            &[
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-proto", "https"),
            ],
            "203.0.113.9",
            false,
        );
        check(
            family,
            "203.0.113.9",
            &[("forwarded", "for=1.2.3.4;proto=https")],
            "203.0.113.9",
            false,
        );
    }
}

#[test]
fn trusted_proxy_walks_from_the_right() {
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "198.51.100.7")],
        "198.51.100.7",
        false,
    );
    // The client wrote "6.6.6.6" itself; the proxy appended the real address.
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.7")],
        "198.51.100.7",
        false,
    );
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")],
        "198.51.100.7",
        false,
    );
    check(
        XFF,
        "10.0.0.1",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ],
        "198.51.100.7",
        false,
    );
    check(
        XFF,
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
        RFC,
        "10.0.0.1",
        &[("forwarded", "for=6.6.6.6, for=198.51.100.7;proto=https")],
        "198.51.100.7",
        true,
    );
    check(
        RFC,
        "10.0.0.1",
        &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=http")],
        "2001:db8::7",
        false,
    );
    check(
        RFC,
        "10.0.0.1",
        &[("forwarded", "For=192.0.2.60;Proto=HTTPS;by=203.0.113.43")],
        "192.0.2.60",
        true,
    );
}

#[test]
fn malformed_headers_fall_back_to_nearest_trusted() {
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "garbage")],
        "10.0.0.1",
        false,
    );
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "198.51.100.7, garbage, 10.0.0.2")],
        "10.0.0.2",
        false,
    );
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-for", "")],
        "10.0.0.1",
        false,
    );
    check(
        RFC,
        "10.0.0.1",
        &[("forwarded", "for=unknown")],
        "10.0.0.1",
        false,
    );
    check(
        RFC,
        "10.0.0.1",
        &[("forwarded", ";;==,,")],
        "10.0.0.1",
        false,
    );
    check(
        XFF,
        "10.0.0.1",
        &[("x-forwarded-proto", "https, http")],
        "10.0.0.1",
        false,
    );
}

#[test]
fn ipv4_mapped_addresses_are_canonical() {
    check(
        XFF,
        "::ffff:10.0.0.1",
        &[("x-forwarded-for", "::ffff:198.51.100.7")],
        "198.51.100.7",
        false,
    );
    check(
        XFF,
        "fd00::1",
        &[("x-forwarded-for", "2001:db8::1")],
        "2001:db8::1",
        false,
    );
}

#[test]
fn the_family_not_configured_is_ignored_for_the_address() {
    // Issue 12.1: proxies append to X-Forwarded-For and pass the client's own `Forwarded`
    // through, so the client names any address there; it must not win.
    let both = [
        ("x-forwarded-for", "203.0.113.10"),
        ("forwarded", "for=198.18.1.1"),
    ];
    check(XFF, "10.0.0.1", &both, "203.0.113.10", false);
    check(RFC, "10.0.0.1", &both, "198.18.1.1", false);
    // Only the other family present: the client is the proxy itself, as if no header came.
    check(
        XFF,
        "10.0.0.1",
        &[("forwarded", "for=198.18.1.1")],
        "10.0.0.1",
        false,
    );
    check(
        RFC,
        "10.0.0.1",
        &[("x-forwarded-for", "203.0.113.10")],
        "10.0.0.1",
        false,
    );
}

#[test]
fn the_family_not_configured_is_ignored_for_the_scheme() {
    let fwd_https = [
        ("x-forwarded-for", "203.0.113.10"),
        ("forwarded", "for=203.0.113.10;proto=https"),
    ];
    check(XFF, "10.0.0.1", &fwd_https, "203.0.113.10", false);
    check(RFC, "10.0.0.1", &fwd_https, "203.0.113.10", true);
    let xfp_https = [
        ("x-forwarded-for", "203.0.113.10"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=203.0.113.10;proto=http"),
    ];
    check(XFF, "10.0.0.1", &xfp_https, "203.0.113.10", true);
    check(RFC, "10.0.0.1", &xfp_https, "203.0.113.10", false);
    // The rightmost element is the nearest proxy's: without `proto=` it did not say HTTPS.
    check(
        RFC,
        "10.0.0.1",
        &[("forwarded", "for=203.0.113.10;proto=https, for=10.0.0.2")],
        "203.0.113.10",
        false,
    );
}

#[test]
fn the_family_is_configured_by_name_and_defaults_to_x_forwarded_for() {
    use serde::de::{value, IntoDeserializer};
    let parse = |name: &str| {
        ForwardedHeaders::deserialize(IntoDeserializer::<value::Error>::into_deserializer(name))
    };
    assert_eq!(ForwardedHeaders::default(), XFF);
    assert_eq!(parse("x-forwarded-for").unwrap(), XFF);
    assert_eq!(parse("x_forwarded_for").unwrap(), XFF);
    assert_eq!(parse("forwarded").unwrap(), RFC);
    for bad in ["both", "X-Forwarded-For", "xff", ""] {
        assert!(parse(bad).is_err(), "{bad}");
    }
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

fn family() -> impl Strategy<Value = ForwardedHeaders> {
    prop_oneof![Just(XFF), Just(RFC)]
}

/// The header names of the family that is not configured.
fn other_family(headers: ForwardedHeaders) -> &'static [&'static str] {
    match headers {
        ForwardedHeaders::XForwardedFor => &["forwarded"],
        ForwardedHeaders::Forwarded => &["x-forwarded-for", "x-forwarded-proto"],
    }
}

/// What a client writes to claim an address and HTTPS, in any family, or junk.
fn claim() -> impl Strategy<Value = String> {
    prop_oneof![
        untrusted().prop_map(|ip| ip.to_string()),
        untrusted().prop_map(|ip| format!("for={};proto=https", render(&ip, true))),
        Just("https".to_owned()),
        ".{0,40}",
    ]
}

proptest! {
    /// Whatever the client prepends, behind any number of trusted proxies the answer is the
    /// address the first trusted proxy saw, in the configured family; whatever the client puts in
    /// the other family changes nothing.
    #[test]
    fn the_rightmost_untrusted_hop_is_the_client(
        spoofed in proptest::collection::vec(prop_oneof![untrusted(), trusted()], 0..4),
        real in untrusted(),
        chain in proptest::collection::vec(trusted(), 0..4),
        peer in trusted(),
        use_forwarded in any::<bool>(),
        split in any::<bool>(),
        noise in proptest::collection::vec(untrusted(), 0..3),
    ) {
        let hops: Vec<String> = spoofed.iter().chain([&real]).chain(chain.iter()).map(|ip| render(ip, use_forwarded)).collect();
        let (family, name, other) = if use_forwarded {
            (RFC, "forwarded", "x-forwarded-for")
        } else {
            (XFF, "x-forwarded-for", "forwarded")
        };
        let mut headers = if split {
            List(hops.iter().map(|h| (name.to_owned(), h.clone())).collect())
        } else {
            List(vec![(name.to_owned(), hops.join(", "))])
        };
        headers.0.extend(noise.iter().map(|ip| (other.to_owned(), render(ip, !use_forwarded))));
        prop_assert_eq!(proxies(family).client(Some(peer), &headers).ip, real);
    }

    /// Adding any value of the family that is not configured, for the address or the scheme,
    /// never changes the answer.
    #[test]
    fn the_other_family_never_changes_the_answer(
        family in family(),
        peer in prop_oneof![trusted(), untrusted()],
        xff in proptest::collection::vec(claim(), 0..3),
        fwd in proptest::collection::vec(claim(), 0..3),
        proto in proptest::collection::vec(claim(), 0..2),
        injected in proptest::collection::vec((any::<proptest::sample::Index>(), claim()), 1..4),
    ) {
        let mut pairs: Vec<(String, String)> = Vec::new();
        pairs.extend(xff.into_iter().map(|v| ("x-forwarded-for".to_owned(), v)));
        pairs.extend(fwd.into_iter().map(|v| ("forwarded".to_owned(), v)));
        pairs.extend(proto.into_iter().map(|v| ("x-forwarded-proto".to_owned(), v)));
        let other = other_family(family);
        pairs.retain(|(k, _)| !other.contains(&k.as_str()));
        let before = proxies(family).client(Some(peer), &List(pairs.clone()));
        for (which, value) in injected {
            pairs.push((other[which.index(other.len())].to_owned(), value));
        }
        prop_assert_eq!(proxies(family).client(Some(peer), &List(pairs)), before);
    }

    /// From an untrusted peer, headers change nothing.
    #[test]
    fn untrusted_peers_cannot_claim_anything(
        family in family(),
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
        pairs.push(("forwarded".to_owned(), "proto=https".to_owned()));
        prop_assert_eq!(proxies(family).client(Some(peer), &List(pairs)), ClientInfo { ip: peer, https: false });
    }

    /// Arbitrary header text never panics (a panic fails the property) and never turns an
    /// untrusted peer's request into anything but the peer.
    #[test]
    fn garbage_never_fails(family in family(), peer in trusted(), stranger in untrusted(), xff in ".{0,80}", fwd in ".{0,80}", proto in ".{0,20}") {
        let headers = List(vec![
            ("x-forwarded-for".into(), xff),
            ("forwarded".into(), fwd),
            ("x-forwarded-proto".into(), proto),
        ]);
        let _ = proxies(family).client(Some(peer), &headers);
        prop_assert_eq!(proxies(family).client(Some(stranger), &headers).ip, stranger);
    }
}
