//! Session fixation, cookie flags, logout, password change, expiry and rotation, revocation.

use actix_web::http::StatusCode;
use futures_util::future::join_all;
use phaze_e2e::{spawn_portal, spawn_portal_with, Browser};
use time::Duration;

use crate::PW;

fn is_login_redirect(r: &phaze_e2e::Resp) -> bool {
    r.status == StatusCode::SEE_OTHER && r.location().is_some_and(|l| l.starts_with("/login"))
}

#[actix_web::test]
async fn login_regenerates_the_session_id() {
    let p = spawn_portal().await;
    let victim = p.user("victim@example.com", PW).await;
    let first = victim.cookie("phaze_session").unwrap();
    // The attacker fixes a session id in the victim's browser: here the victim's own earlier id,
    // the strongest case (a valid, logged-in id). Logging in again must replace and kill it.
    victim.login("victim@example.com", PW).await;
    let second = victim.cookie("phaze_session").unwrap();
    assert_ne!(first, second);
    let attacker = p.browser();
    attacker.set_cookie("phaze_session", &first);
    assert!(
        is_login_redirect(&attacker.get("/account").await),
        "pre-login id is dead"
    );
    assert_eq!(victim.get("/account").await.status, StatusCode::OK);

    // A planted id that never existed is not adopted either.
    let b = p.browser();
    let planted = "A".repeat(43);
    b.set_cookie("phaze_session", &planted);
    b.login("victim@example.com", PW).await;
    assert_ne!(b.cookie("phaze_session").unwrap(), planted);
}

#[actix_web::test]
async fn session_cookie_flags_over_plain_http() {
    let p = spawn_portal().await;
    let b = p.user("flags@example.com", PW).await;
    let r = b.login("flags@example.com", PW).await;
    let c = r.set_cookie("phaze_session").expect("session cookie");
    assert!(c.contains("HttpOnly"), "{c}");
    assert!(c.contains("SameSite=Lax"), "{c}");
    assert!(c.contains("Path=/"), "{c}");
    assert!(!c.contains("Secure"), "{c}");
    assert!(!c.to_ascii_lowercase().contains("domain"), "{c}");
    let value = b.cookie("phaze_session").unwrap();
    assert!(value.len() >= 22, "at least 128 bits");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(r.header("strict-transport-security").is_none());
}

#[actix_web::test]
async fn https_via_trusted_proxy_gets_host_prefixed_secure_cookies() {
    let p =
        spawn_portal_with(|s| s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let b = p.browser();
    b.extra
        .borrow_mut()
        .push(("x-forwarded-proto".into(), "https".into()));
    b.extra
        .borrow_mut()
        .push(("x-forwarded-for".into(), "198.51.100.20".into()));
    let plain = p.user("proxied@example.com", PW).await; // registers over plain HTTP
    drop(plain);
    let page = b.get("/login").await;
    assert!(page.header("strict-transport-security").is_some());
    let csrf = page
        .set_cookie("__Host-phaze_csrf")
        .expect("prefixed csrf cookie");
    assert!(csrf.contains("Secure"));
    let r = b
        .post_form(
            "/login",
            &[("email", "proxied@example.com"), ("password", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let c = r
        .set_cookie("__Host-phaze_session")
        .expect("prefixed session cookie");
    for flag in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(c.contains(flag), "{flag} in {c}");
    }
    assert!(!c.to_ascii_lowercase().contains("domain"));
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    // The sessions page shows the client address the proxy reported, not the proxy's.
    let list = b.get("/account/sessions").await;
    assert!(list.body.contains("198.51.100.20"), "{}", list.body);
    // Over HTTPS, a cookie under the plain name (planted over HTTP) is not read at all.
    let planted = p.browser();
    planted
        .extra
        .borrow_mut()
        .push(("x-forwarded-proto".into(), "https".into()));
    planted.set_cookie("phaze_session", &b.cookie("__Host-phaze_session").unwrap());
    assert!(is_login_redirect(&planted.get("/account").await));
}

#[actix_web::test]
async fn forwarded_proto_from_an_untrusted_peer_is_ignored() {
    let p = spawn_portal().await;
    let b = p.browser();
    let r = b
        .get_with(
            "/login",
            &[("x-forwarded-proto", "https"), ("forwarded", "proto=https")],
        )
        .await;
    assert!(r.header("strict-transport-security").is_none());
    assert!(r.set_cookie("phaze_csrf").is_some());
    assert!(r.set_cookie("__Host-phaze_csrf").is_none());
}

#[actix_web::test]
async fn logout_deletes_the_session_server_side() {
    let p = spawn_portal().await;
    let b = p.user("bye@example.com", PW).await;
    let id = b.cookie("phaze_session").unwrap();
    b.get("/account").await;
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/"));
    assert!(r.set_cookie("phaze_session").unwrap().contains("Max-Age=0"));
    let replay = p.browser();
    replay.set_cookie("phaze_session", &id);
    assert!(is_login_redirect(&replay.get("/account").await));
}

#[actix_web::test]
async fn password_change_ends_every_other_session() {
    let p = spawn_portal().await;
    let a = p.user("change@example.com", PW).await;
    let b = p.browser();
    b.login("change@example.com", PW).await;
    let old_a = a.cookie("phaze_session").unwrap();
    a.get("/account").await;
    let new_pw = "a completely different passphrase";
    let r = a
        .post_form(
            "/account/password",
            &[("current_password", PW), ("new_password", new_pw)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_ne!(
        a.cookie("phaze_session").unwrap(),
        old_a,
        "this session got a new id"
    );
    assert_eq!(a.get("/account").await.status, StatusCode::OK);
    assert!(
        is_login_redirect(&b.get("/account").await),
        "the other session is over"
    );
    let stale = p.browser();
    stale.set_cookie("phaze_session", &old_a);
    assert!(is_login_redirect(&stale.get("/account").await));
    // The owner was told.
    assert!(p
        .mail_to(
            "change@example.com",
            "password of your Phaze account was changed"
        )
        .is_some());
    // The new password works, the old one does not.
    let c = p.browser();
    c.get("/login").await;
    let r = c
        .post_form(
            "/login",
            &[("email", "change@example.com"), ("password", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    c.login("change@example.com", new_pw).await;
}

#[actix_web::test]
async fn wrong_current_password_changes_nothing() {
    let p = spawn_portal().await;
    let a = p.user("keep@example.com", PW).await;
    a.get("/account").await;
    let r = a
        .post_form(
            "/account/password",
            &[
                ("current_password", "not my password at all"),
                ("new_password", "another fine passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("current password is not correct"));
    let r = a
        .post_form(
            "/account/password",
            &[("current_password", PW), ("new_password", "password1234")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("too common"), "{}", r.body);
    p.browser().login("keep@example.com", PW).await;
}

#[actix_web::test]
async fn idle_timeout_ends_the_session() {
    let p = spawn_portal().await;
    let b = p.user("idle@example.com", PW).await;
    p.advance(Duration::minutes(29));
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "29 min idle is fine"
    );
    p.advance(Duration::minutes(29));
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "activity reset the idle timer"
    );
    p.advance(Duration::minutes(31));
    let r = b.get("/account").await;
    assert!(is_login_redirect(&r), "31 min idle ends it");
    assert!(r.set_cookie("phaze_session").unwrap().contains("Max-Age=0"));
}

#[actix_web::test]
async fn absolute_lifetime_ends_an_active_session() {
    let p = spawn_portal().await;
    let b = p.user("busy@example.com", PW).await;
    for _ in 0..(7 * 3 + 2) {
        p.advance(Duration::minutes(20));
        assert_eq!(b.get("/account").await.status, StatusCode::OK);
    }
    // 7 h 40 min so far; 20 more minutes passes 8 h.
    p.advance(Duration::minutes(21));
    assert!(is_login_redirect(&b.get("/account").await));
}

#[actix_web::test]
async fn rotation_issues_a_new_id_with_a_short_grace() {
    let p = spawn_portal().await;
    let b = p.user("rotate@example.com", PW).await;
    let old = b.cookie("phaze_session").unwrap();
    p.advance(Duration::minutes(16));
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::OK);
    let new = b.cookie("phaze_session").unwrap();
    assert_ne!(old, new, "rotated after 15 min");
    assert!(r.set_cookie("phaze_session").unwrap().contains("HttpOnly"));
    // A request in flight with the old id still works within the grace period...
    let in_flight = p.browser();
    in_flight.set_cookie("phaze_session", &old);
    assert_eq!(in_flight.get("/account").await.status, StatusCode::OK);
    // ...and not after it.
    p.advance(Duration::seconds(11));
    let late = p.browser();
    late.set_cookie("phaze_session", &old);
    assert!(is_login_redirect(&late.get("/account").await));
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "the new id lives on"
    );
}

#[actix_web::test]
async fn parallel_requests_at_rotation_share_one_new_id_and_logout_ends_both() {
    let p = spawn_portal().await;
    let b = p.user("fork@example.com", PW).await;
    let old = b.cookie("phaze_session").unwrap();
    p.advance(Duration::minutes(16));
    // Three tabs of one browser reload at once, each with the id that is now due for rotation.
    let tabs: Vec<Browser> = (0..3)
        .map(|_| {
            let tab = p.browser();
            tab.set_cookie("phaze_session", &old);
            tab
        })
        .collect();
    let pages = join_all(tabs.iter().map(|tab| tab.get("/account"))).await;
    for page in &pages {
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.set_cookie("phaze_session").is_some(),
            "each is told the new id"
        );
    }
    let new: Vec<String> = tabs
        .iter()
        .map(|t| t.cookie("phaze_session").unwrap())
        .collect();
    assert!(
        new.iter().all(|n| *n == new[0]),
        "one new id, not three: {new:?}"
    );
    assert_ne!(new[0], old);

    // Logging out with the new id ends the old one at once, well inside its grace period.
    let r = tabs[0].post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for (what, id) in [("old id", &old), ("new id", &new[0])] {
        let replay = p.browser();
        replay.set_cookie("phaze_session", id);
        assert!(is_login_redirect(&replay.get("/account").await), "{what}");
    }

    // The other way round: a logout that still carries the old id ends the new one too.
    let b = p.browser();
    b.login("fork@example.com", PW).await;
    let old = b.cookie("phaze_session").unwrap();
    p.advance(Duration::minutes(16));
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    let new = b.cookie("phaze_session").unwrap();
    assert_ne!(new, old);
    b.set_cookie("phaze_session", &old);
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for (what, id) in [("old id", &old), ("new id", &new)] {
        let replay = p.browser();
        replay.set_cookie("phaze_session", id);
        assert!(is_login_redirect(&replay.get("/account").await), "{what}");
    }
}

#[actix_web::test]
async fn sessions_can_be_listed_and_revoked() {
    let p = spawn_portal().await;
    let a = p.user("many@example.com", PW).await;
    let b = p.browser();
    b.login("many@example.com", PW).await;
    let c = p.browser();
    c.login("many@example.com", PW).await;
    let list = a.get("/account/sessions").await;
    assert_eq!(list.status, StatusCode::OK);
    let handles = revoke_handles(&list.body);
    assert_eq!(
        handles.len(),
        2,
        "two other sessions have a revoke button: {}",
        list.body
    );

    // Someone else's session handle is a 404 and changes nothing.
    let eve = p.user("eve@example.com", PW).await;
    eve.get("/account").await;
    let r = eve
        .post_form(&format!("/account/sessions/{}/revoke", handles[0]), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for bad in ["zz", "../../etc", &"0".repeat(64)] {
        let r = eve
            .post_form(&format!("/account/sessions/{bad}/revoke"), &[])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
    assert_eq!(b.get("/account").await.status, StatusCode::OK);
    assert_eq!(c.get("/account").await.status, StatusCode::OK);

    let r = a
        .post_form(&format!("/account/sessions/{}/revoke", handles[0]), &[])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let alive = [
        b.get("/account").await.status,
        c.get("/account").await.status,
    ];
    assert_eq!(
        alive.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "exactly one revoked"
    );

    a.get("/account/sessions").await;
    let r = a.post_form("/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(is_login_redirect(&b.get("/account").await));
    assert!(is_login_redirect(&c.get("/account").await));
    assert_eq!(a.get("/account").await.status, StatusCode::OK);
    assert_eq!(
        revoke_handles(&a.get("/account/sessions").await.body).len(),
        0
    );
}

fn revoke_handles(body: &str) -> Vec<String> {
    body.match_indices("/account/sessions/")
        .filter_map(|(i, _)| {
            let rest = &body[i + 18..];
            let h: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
            (h.len() == 64).then_some(h)
        })
        .collect()
}
