//! Two-factor authentication end to end: enrol from the page's QR code and key, log in with a
//! code, a replayed code refused, a recovery code once, failures counted by the lockout, sudo
//! mode before new recovery codes, and turning it off with the password and a code.

use actix_web::http::StatusCode;
use phaze_auth::totp::TotpSecret;
use phaze_e2e::{
    recovery_codes_on as codes_on, spawn_portal, totp_key_on as key_on, Browser, TestPortal,
};
use phaze_portal::clock::Clock;
use time::Duration;

use crate::PW;

const EMAIL: &str = "ada@example.com";

fn code(p: &TestPortal, app: &TotpSecret) -> String {
    app.code_at(p.clock.now()).unwrap()
}

/// A login attempt with a second factor, from a fresh browser.
async fn log_in(p: &TestPortal, totp: Option<&str>) -> (Browser, phaze_e2e::Resp) {
    let b = p.browser();
    b.get("/login").await;
    let mut fields = vec![("email", EMAIL), ("password", PW)];
    if let Some(t) = totp {
        fields.push(("totp", t));
    }
    let r = b.post_form("/login", &fields).await;
    (b, r)
}

/// A logged-in browser for an account with 2FA on, its app, and its recovery codes.
async fn enrolled(p: &TestPortal) -> (Browser, TotpSecret, Vec<String>) {
    let b = p.user(EMAIL, PW).await;
    let page = b.get("/account/2fa").await;
    let app = key_on(&page.body);
    let r = b
        .post_form("/account/2fa/enable", &[("code", &code(p, &app))])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let codes = codes_on(&r.body);
    (b, app, codes)
}

#[actix_web::test]
async fn enrol_log_in_with_a_code_replay_refused_recovery_once_and_turn_off() {
    let p = spawn_portal().await;
    let b = p.user(EMAIL, PW).await;
    let (other, _) = log_in(&p, None).await;

    let account = b.get("/account").await;
    assert!(account
        .body
        .contains("href=\"/account/2fa\">Set up two-factor"));

    // The enrolment: an inline SVG QR code and the key as text, under the usual CSP.
    let page = b.get("/account/2fa").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<svg"), "an inline QR code");
    assert!(!page.body.contains("<?xml") && !page.body.contains("<img"));
    let csp = page.header("content-security-policy").unwrap().to_owned();
    assert!(!csp.contains("unsafe-inline") || !csp.contains("script-src 'unsafe-inline'"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let app = key_on(&page.body);
    // Reloading shows the same key until a code turns it on.
    let again = b.get("/account/2fa").await;
    assert_eq!(key_on(&again.body).expose_bytes(), app.expose_bytes());

    // A wrong code: 422, still off.
    let r = b
        .post_form("/account/2fa/enable", &[("code", "000000")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("That code is not right"), "{}", r.body);
    let me = b.get("/api/v1/me").await;
    assert!(me.body.contains("\"two_factor\":false"), "{}", me.body);

    // The right one: on, ten codes shown once, every other session ended, a notice mailed.
    let enable_code = code(&p, &app);
    let r = b
        .post_form("/account/2fa/enable", &[("code", &enable_code)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let codes = codes_on(&r.body);
    assert_eq!(codes.len(), 10);
    assert_eq!(other.get("/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "this one stays"
    );
    assert!(p
        .mail_to(EMAIL, "Two-factor authentication was turned on")
        .is_some());
    assert!(p.mails().iter().all(|m| !m.contains(&codes[0])));
    let me = b.get("/api/v1/me").await;
    assert!(me.body.contains("\"two_factor\":true"), "{}", me.body);
    let verified = b.get("/auth/verify").await;
    assert_eq!(verified.header("x-phaze-2fa"), Some("on"));
    let page = b.get("/account/2fa").await;
    assert!(page.body.contains("10 of 10") && !page.body.contains("<svg"));
    let account = b.get("/account").await;
    assert!(account
        .body
        .contains("href=\"/account/2fa\">Manage two-factor"));

    // Login: the password alone, or the code the enrolment used (same step), is refused exactly
    // like a wrong password. (Two failures: the third would call for the challenge, below.)
    for totp in [None, Some(enable_code.as_str())] {
        let (_, r) = log_in(&p, totp).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{totp:?}");
        assert!(r.body.contains("Invalid email or password."));
    }
    p.advance(Duration::seconds(30));
    let fresh = code(&p, &app);
    let (c, r) = log_in(&p, Some(&fresh)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(c.get("/account").await.status, StatusCode::OK);
    let (_, replay) = log_in(&p, Some(&fresh)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "a replayed code");

    // A recovery code, as typed from paper: once.
    let typed = codes[0].to_uppercase();
    let (_, r) = log_in(&p, Some(&typed)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let (_, r) = log_in(&p, Some(&codes[0])).await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a recovery code works once"
    );
    assert!(p.mail_to(EMAIL, "9 are left").is_some());

    // Off: the password and a code, else 422 and still on.
    p.advance(Duration::seconds(30));
    let r = b
        .post_form(
            "/account/2fa/disable",
            &[("password", "not the password"), ("code", &code(&p, &app))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post_form(
            "/account/2fa/disable",
            &[("password", PW), ("code", "000000")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    p.advance(Duration::seconds(30));
    let r = b
        .post_form(
            "/account/2fa/disable",
            &[("password", PW), ("code", &code(&p, &app))],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/account/2fa"));
    assert_eq!(
        c.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "others ended"
    );
    assert!(p
        .mail_to(EMAIL, "Two-factor authentication was turned off")
        .is_some());
    let (_, r) = log_in(&p, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the password alone again");
    let (_, r) = log_in(&p, Some(&codes[1])).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "a code field is ignored when off"
    );
}

#[actix_web::test]
async fn wrong_codes_count_toward_the_lockout_of_the_address() {
    let p = spawn_portal().await;
    let _ = enrolled(&p).await;
    p.advance(Duration::seconds(30));
    // Three failures for the address (right password, wrong codes) and the fourth attempt needs
    // the proof-of-work challenge, exactly as after three wrong passwords.
    for _ in 0..3 {
        let (_, r) = log_in(&p, Some("000000")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let (_, r) = log_in(&p, Some("000000")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body.contains("data-challenge="),
        "a challenge is now required"
    );
}

#[actix_web::test]
async fn new_recovery_codes_need_a_recent_login() {
    let p = spawn_portal().await;
    let (b, app, old) = enrolled(&p).await;
    // Right after the enrolment (a fresh session): allowed.
    let r = b.post_form("/account/2fa/recovery-codes", &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let second = codes_on(&r.body);
    assert_eq!(second.len(), 10);
    assert!(second.iter().all(|c| !old.contains(c)));

    // Eleven minutes on: the password (and a code) first.
    p.advance(Duration::minutes(11));
    let r = b.post_form("/account/2fa/recovery-codes", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let confirm = r.location().unwrap().to_owned();
    assert_eq!(confirm, "/account/confirm?next=%2Faccount%2F2fa");
    let page = b.get(&confirm).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Confirm it") && page.body.contains("readonly"));
    assert!(page.body.contains("please confirm your password"));
    let r = b
        .post_form(
            "/login",
            &[
                ("email", EMAIL),
                ("password", PW),
                ("totp", &code(&p, &app)),
                ("next", "/account/2fa"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/account/2fa"));
    b.get("/account/2fa").await;
    let r = b.post_form("/account/2fa/recovery-codes", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    let third = codes_on(&r.body);
    // Only the newest set works.
    let (_, r) = log_in(&p, Some(&second[0])).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let (_, r) = log_in(&p, Some(&third[0])).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}
