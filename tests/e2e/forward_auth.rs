//! Forward authentication (`GET /auth/verify`), as a gateway calls it: the client's cookies in,
//! `200` with who it is or `401` with nothing out. The session rules are the pages' own (expiry,
//! rotation, IP binding, logout); a real nginx in front is `apps/portal/tests/gateway.rs`.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal, spawn_portal_with, Browser, Resp, TestPortal};
use time::Duration;

use crate::PW;

const VERIFY: &str = "/auth/verify";
const IDENTITY: [&str; 3] = ["x-phaze-user-id", "x-phaze-user-role", "x-phaze-2fa"];

/// A refusal: 401, no body, none of the identity headers, not cacheable.
fn assert_refused(r: &Resp, what: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {}", r.body);
    assert_eq!(r.body, "", "{what}: a refusal has no body");
    for name in IDENTITY {
        assert!(r.header(name).is_none(), "{what}: {name} on a refusal");
    }
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

/// An admission: 200, no body, the user's id, role and 2FA state, not cacheable.
fn assert_admitted(r: &Resp, id: &str, role: &str, what: &str) {
    assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.body);
    assert_eq!(r.body, "", "{what}");
    assert_eq!(r.header("x-phaze-user-id"), Some(id), "{what}");
    assert_eq!(r.header("x-phaze-user-role"), Some(role), "{what}");
    assert_eq!(r.header("x-phaze-2fa"), Some("off"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

/// The user id, as `/api/v1/me` reports it.
async fn user_id(b: &Browser) -> String {
    let v: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// A browser holding only `cookie` as its session cookie.
fn holding(p: &TestPortal, cookie: &str) -> Browser {
    let b = p.browser();
    b.set_cookie("phaze_session", cookie);
    b
}

#[actix_web::test]
async fn anonymous_is_refused_without_identity_headers() {
    let p = spawn_portal().await;
    let b = p.browser();
    assert_refused(&b.get(VERIFY).await, "no cookie");
    assert_refused(&b.head(VERIFY).await, "HEAD, no cookie");
    // Identity headers the client wrote itself are not an identity.
    let r = b
        .get_with(
            VERIFY,
            &[
                ("x-phaze-user-id", "00000000-0000-4000-8000-000000000000"),
                ("x-phaze-user-role", "admin"),
            ],
        )
        .await;
    assert_refused(&r, "client-written identity headers");
}

#[actix_web::test]
async fn a_live_session_is_admitted_with_its_id_and_role() {
    let p = spawn_portal().await;
    let b = p.user("gate@example.com", PW).await;
    let id = user_id(&b).await;
    assert_admitted(&b.get(VERIFY).await, &id, "customer", "GET");
    let head = b.head(VERIFY).await;
    assert_admitted(&head, &id, "customer", "HEAD");
    // Envoy appends the client's path to its `path_prefix`; Traefik sends a GET that names the
    // client's method and URI in headers. Neither changes the answer.
    let r = b.get(&format!("{VERIFY}/app/reports?year=2026")).await;
    assert_admitted(&r, &id, "customer", "Envoy-style path");
    let r = b
        .get_with(
            VERIFY,
            &[
                ("x-forwarded-method", "POST"),
                ("x-forwarded-uri", "/app/delete"),
            ],
        )
        .await;
    assert_admitted(&r, &id, "customer", "Traefik-style headers");
    // Another user's session names another user.
    let other = p.user("other@example.com", PW).await;
    let other_id = user_id(&other).await;
    assert_ne!(other_id, id);
    assert_admitted(&other.get(VERIFY).await, &other_id, "customer", "other");
}

#[actix_web::test]
async fn an_admin_session_says_admin() {
    let p = phaze_e2e::spawn_portal().await;
    let state = p.state.clone();

    let b = p.user("boss@example.com", PW).await;
    let id = user_id(&b).await;
    assert_admitted(&b.get(VERIFY).await, &id, "customer", "before the grant");
    // What `phaze-portal admin grant` does: the flag, then the end of the user's sessions.
    let boss = state
        .auth
        .set_admin("boss@example.com", true)
        .await
        .unwrap();
    assert_eq!(boss.id.to_string(), id);
    state.sessions.revoke_all(&boss.id, None).await.unwrap();
    assert_refused(&b.get(VERIFY).await, "a session from before the grant");
    b.login("boss@example.com", PW).await;
    assert_admitted(&b.get(VERIFY).await, &id, "admin", "after the grant");
}

#[actix_web::test]
async fn logout_refuses_the_session_at_once() {
    let p = spawn_portal().await;
    let b = p.user("leaving@example.com", PW).await;
    let id = user_id(&b).await;
    let cookie = b.cookie("phaze_session").unwrap();
    assert_admitted(&b.get(VERIFY).await, &id, "customer", "before logout");
    b.get("/account").await;
    assert_eq!(
        b.post_form("/logout", &[]).await.status,
        StatusCode::SEE_OTHER
    );
    assert_refused(&holding(&p, &cookie).get(VERIFY).await, "after logout");
}

#[actix_web::test]
async fn idle_and_absolute_expiry_refuse() {
    let p = spawn_portal().await;
    let b = p.user("idle-gate@example.com", PW).await;
    let id = user_id(&b).await;
    p.advance(Duration::minutes(29));
    assert_admitted(&b.get(VERIFY).await, &id, "customer", "29 min idle");
    p.advance(Duration::minutes(31));
    let r = b.get(VERIFY).await;
    assert_refused(&r, "31 min idle");
    assert!(
        r.set_cookie("phaze_session").unwrap().contains("Max-Age=0"),
        "the dead cookie is cleared"
    );

    // A check is activity like any page: it keeps the session alive, up to its 8 h.
    let b = p.browser();
    b.login("idle-gate@example.com", PW).await;
    for _ in 0..(7 * 3 + 2) {
        p.advance(Duration::minutes(20));
        assert_admitted(&b.get(VERIFY).await, &id, "customer", "active");
    }
    p.advance(Duration::minutes(21));
    assert_refused(&b.get(VERIFY).await, "past the absolute lifetime");
}

#[actix_web::test]
async fn rotation_hands_out_the_new_id_which_keeps_working() {
    let p = spawn_portal().await;
    let b = p.user("rotating-gate@example.com", PW).await;
    let id = user_id(&b).await;
    let old = b.cookie("phaze_session").unwrap();
    p.advance(Duration::minutes(16));
    let r = b.get(VERIFY).await;
    assert_admitted(&r, &id, "customer", "the check that rotates");
    let set = r
        .set_cookie("phaze_session")
        .expect("the new id as a cookie");
    for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set.contains(flag), "{flag} in {set}");
    }
    let new = b.cookie("phaze_session").unwrap();
    assert_ne!(new, old);
    assert_admitted(
        &holding(&p, &new).get(VERIFY).await,
        &id,
        "customer",
        "new id",
    );
    // The old id within its grace is given the new one again; after it, it is refused.
    let in_flight = holding(&p, &old).get(VERIFY).await;
    assert_admitted(&in_flight, &id, "customer", "old id in its grace");
    assert!(in_flight
        .set_cookie("phaze_session")
        .is_some_and(|c| c.contains(&new)));
    p.advance(Duration::seconds(11));
    assert_refused(&holding(&p, &old).get(VERIFY).await, "old id after grace");
    assert_admitted(&b.get(VERIFY).await, &id, "customer", "new id lives on");
}

#[actix_web::test]
async fn forged_garbage_and_huge_cookies_are_refused() {
    let p = spawn_portal().await;
    let b = p.user("forge-gate@example.com", PW).await;
    let real = b.cookie("phaze_session").unwrap();
    let mut flipped = real.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let cases = [
        ("well-formed, never issued", "A".repeat(43)),
        ("the real id with one character changed", flipped),
        ("the real id, truncated", real[..real.len() - 1].to_owned()),
        ("the real id, extended", format!("{real}A")),
        ("garbage", "<script>%00'\"\\".to_owned()),
        ("not ASCII", "ünïcödé-ßëßßïön".to_owned()),
        ("empty", String::new()),
        ("huge", "A".repeat(8 * 1024)),
    ];
    for (what, value) in cases {
        let r = holding(&p, &value).get(VERIFY).await;
        assert_refused(&r, what);
    }
    // The real id under the HTTPS name, over plain HTTP, is not read.
    let b = p.browser();
    b.set_cookie("__Host-phaze_session", &real);
    assert_refused(&b.get(VERIFY).await, "prefixed name over HTTP");
    // Far past any sane size: refused before it reaches a store, and still says nothing.
    let r = holding(&p, &"A".repeat(64 * 1024)).get(VERIFY).await;
    assert!(r.status.is_client_error(), "{}", r.status);
    for name in IDENTITY {
        assert!(r.header(name).is_none(), "{name} on a 64 KiB cookie");
    }
}

#[actix_web::test]
async fn with_ip_binding_another_network_is_refused() {
    let p = spawn_portal_with(|s| {
        s.session.ip_binding = true;
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    drop(p.user("bound@example.com", PW).await); // registers
    let b = p.browser();
    b.extra
        .borrow_mut()
        .push(("x-forwarded-for".into(), "198.51.100.20".into()));
    b.login("bound@example.com", PW).await;
    let id = user_id(&b).await;
    let cookie = b.cookie("phaze_session").unwrap();
    let from = |ip: &str| {
        let c = holding(&p, &cookie);
        c.extra
            .borrow_mut()
            .push(("x-forwarded-for".into(), ip.to_owned()));
        c
    };
    let r = from("198.51.100.77").get(VERIFY).await;
    assert_admitted(&r, &id, "customer", "same /24");
    assert_refused(&from("203.0.113.5").get(VERIFY).await, "another network");
    // Breaking the binding ends the session, as on any page.
    assert_refused(&from("198.51.100.20").get(VERIFY).await, "back home");
}

#[actix_web::test]
async fn checks_are_not_unsafe_requests() {
    let p = spawn_portal_with(|s| s.ratelimit.post_per_client = 3).await;
    let b = p.user("budget@example.com", PW).await; // two POSTs: register, login
    let id = user_id(&b).await;
    for _ in 0..20 {
        assert_admitted(&b.get(VERIFY).await, &id, "customer", "many checks");
    }
    // Envoy's ext_authz checks with the client's own method, without the portal's CSRF token
    // (the request is for another service) and with that service's origin: each is a check,
    // answered like a GET.
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let path = format!("{VERIFY}/app/orders");
        let r = b
            .request(method, &path, &[("origin", "https://elsewhere.example")])
            .await;
        assert_admitted(&r, &id, "customer", method);
        let anonymous = p.browser().request(method, &path, &[]).await;
        assert_refused(&anonymous, method);
    }
    // No check spent the POST budget: one POST is left.
    b.get("/account").await;
    let r = b
        .post_form("/account/profile", &[("display_name", "Budget")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The read-only layer covers the checks only: a POST anywhere else still meets CSRF.
    let r = b
        .post_raw(
            "/logout",
            "application/x-www-form-urlencoded",
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
}

#[actix_web::test]
async fn only_the_check_path_is_a_check() {
    let p = spawn_portal().await;
    let b = p.user("paths@example.com", PW).await;
    let id = user_id(&b).await;
    for path in ["/auth/verify", "/auth/verify/", "/auth/verify/a/b?c=d"] {
        assert_admitted(&b.get(path).await, &id, "customer", path);
    }
    for path in ["/auth/verifyx", "/auth/verif", "/auth"] {
        let r = b.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        for name in IDENTITY {
            assert!(r.header(name).is_none(), "{name} on {path}");
        }
    }
}
