//! Behind a trusted proxy: only the configured header family (`http.forwarded_headers`) says who
//! the client is and whether it came over HTTPS. The proxies append to their own family but pass
//! the other one through from the client untouched, so believing it would let a client pick its
//! own address (a fresh login budget per request) or its own scheme.

use phaze_e2e::{spawn_portal_with, Browser, TestPortal};
use phaze_ratelimit::ForwardedHeaders;
use phaze_ratelimit::RateLimitPolicy;

use crate::PW;

/// The portal behind a proxy on 127.0.0.1 with the real login budgets (5 per client).
async fn behind_local_proxy(tweak: impl FnOnce(&mut phaze_portal::Settings)) -> TestPortal {
    spawn_portal_with(|s| {
        s.ratelimit = RateLimitPolicy::default();
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        tweak(s);
    })
    .await
}

/// One wrong password at a new identifier (`{tag}{n}@example.com`) with each set of headers
/// (password spraying), so only the per-client budget can stop it; the status of each attempt.
async fn spray(b: &Browser, tag: &str, attempts: &[Vec<(&str, String)>]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for (n, headers) in attempts.iter().enumerate() {
        let email = format!("{tag}{n}@example.com");
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = b
            .post_form_with(
                "/login",
                &[("email", email.as_str()), ("password", "Winter2026!spray")],
                &headers,
            )
            .await;
        statuses.push(r.status.as_u16());
    }
    statuses
}

/// Logs in through the proxy with `headers` on every request and names the session cookie the
/// portal set: `__Host-phaze_session` means it believed the connection was HTTPS.
async fn session_cookie(p: &TestPortal, email: &str, headers: &[(&str, &str)]) -> String {
    drop(p.user(email, PW).await); // registers over plain HTTP
    let b = p.browser();
    b.extra.borrow_mut().extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let r = b.login(email, PW).await;
    r.set_cookies()
        .iter()
        .filter_map(|c| c.split('=').next())
        .find(|name| name.ends_with("phaze_session"))
        .expect("a session cookie")
        .to_owned()
}

#[actix_web::test]
async fn a_forwarded_header_the_client_wrote_buys_no_login_budget() {
    // The default family is X-Forwarded-For: the proxy appended 203.0.113.10 there and passed the
    // client's own `Forwarded` through untouched, with a new address on every attempt.
    let p = behind_local_proxy(|_| {}).await;
    let b = p.browser();
    b.get("/login").await;
    let attempts: Vec<_> = (0..8)
        .map(|n| {
            vec![
                ("x-forwarded-for", "203.0.113.10".to_owned()),
                ("forwarded", format!("for=198.18.{n}.1")),
            ]
        })
        .collect();
    assert_eq!(
        spray(&b, "sprayed", &attempts).await,
        [401, 401, 401, 401, 401, 429, 429, 429]
    );
    // X-Forwarded-For is what is believed: another client there has its own budget.
    let other = vec![vec![("x-forwarded-for", "203.0.113.11".to_owned())]];
    assert_eq!(spray(&b, "other", &other).await, [401]);
}

#[actix_web::test]
async fn with_the_forwarded_family_x_forwarded_for_buys_no_login_budget() {
    // The reverse configuration: the proxy sets RFC 7239 `Forwarded`, and the client's own
    // X-Forwarded-For, new on every attempt, is ignored.
    let p = behind_local_proxy(|s| s.http.forwarded_headers = ForwardedHeaders::Forwarded).await;
    let b = p.browser();
    b.get("/login").await;
    let attempts: Vec<_> = (0..8)
        .map(|n| {
            vec![
                ("x-forwarded-for", format!("198.18.{n}.1")),
                ("forwarded", "for=203.0.113.10".to_owned()),
            ]
        })
        .collect();
    assert_eq!(
        spray(&b, "sprayed", &attempts).await,
        [401, 401, 401, 401, 401, 429, 429, 429]
    );
    // `Forwarded` is what is believed: another client there has its own budget.
    let other = vec![vec![("forwarded", "for=\"[2001:db8::11]\"".to_owned())]];
    assert_eq!(spray(&b, "other", &other).await, [401]);
}

#[actix_web::test]
async fn the_scheme_comes_from_x_forwarded_proto_only_by_default() {
    let p = behind_local_proxy(|s| s.ratelimit.login_per_client = 100).await;
    let forwarded_says_https = [
        ("x-forwarded-for", "198.51.100.20"),
        ("forwarded", "for=198.51.100.20;proto=https"),
    ];
    assert_eq!(
        session_cookie(&p, "plain@example.com", &forwarded_says_https).await,
        "phaze_session"
    );
    let xfp_says_https = [
        ("x-forwarded-for", "198.51.100.21"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=198.51.100.21;proto=http"),
    ];
    assert_eq!(
        session_cookie(&p, "secure@example.com", &xfp_says_https).await,
        "__Host-phaze_session"
    );
}

#[actix_web::test]
async fn the_scheme_comes_from_forwarded_proto_only_with_the_forwarded_family() {
    let p = behind_local_proxy(|s| {
        s.ratelimit.login_per_client = 100;
        s.http.forwarded_headers = ForwardedHeaders::Forwarded;
    })
    .await;
    let xfp_says_https = [
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=198.51.100.20;proto=http"),
    ];
    assert_eq!(
        session_cookie(&p, "plain@example.com", &xfp_says_https).await,
        "phaze_session"
    );
    let forwarded_says_https = [
        ("x-forwarded-proto", "http"),
        ("forwarded", "for=198.51.100.21;proto=https"),
    ];
    assert_eq!(
        session_cookie(&p, "secure@example.com", &forwarded_says_https).await,
        "__Host-phaze_session"
    );
}
