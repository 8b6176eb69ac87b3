//! Every CSRF case of the contract: token missing or wrong, cross-site fetch metadata, foreign
//! Origin, the pre-login token dying at login, and the header form for scripts.

use actix_web::http::StatusCode;
use phaze_e2e::spawn_portal;

use crate::PW;

async fn display_name(b: &phaze_e2e::Browser) -> String {
    let me = b.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    v["display_name"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn unsafe_requests_without_a_valid_token_are_refused_and_change_nothing() {
    let p = spawn_portal().await;
    let b = p.user("csrf@example.com", PW).await;
    b.get("/account").await;
    let before = display_name(&b).await;
    let good = b.csrf.borrow().clone();
    type Fields<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(&str, Fields, Fields)> = vec![
        (
            "no token",
            vec![("display_name", "Mallory"), ("csrf_token", "")],
            vec![],
        ),
        (
            "wrong token",
            vec![
                ("display_name", "Mallory"),
                ("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ],
            vec![],
        ),
        (
            "truncated token",
            vec![("display_name", "Mallory"), ("csrf_token", &good[..10])],
            vec![],
        ),
        (
            "cross-site",
            vec![("display_name", "Mallory")],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            "foreign origin",
            vec![("display_name", "Mallory")],
            vec![("origin", "http://evil.example")],
        ),
        (
            "null origin",
            vec![("display_name", "Mallory")],
            vec![("origin", "null")],
        ),
        (
            "origin on another port",
            vec![("display_name", "Mallory")],
            vec![("origin", "http://127.0.0.1:1")],
        ),
        (
            // Finding 12.8: an origin is checked against `http.public_url` only, never
            // against one built from the request's own `Host` header.
            "origin matching a forged host",
            vec![("display_name", "Mallory")],
            vec![("host", "evil.example"), ("origin", "http://evil.example")],
        ),
    ];
    for (what, fields, headers) in cases {
        let r = b
            .post_form_with("/account/profile", &fields, &headers)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{what}");
        assert!(r.body.contains("Forbidden"), "{what}: generic page");
    }
    // A form without the field at all.
    let r = b
        .post_raw(
            "/account/profile",
            "application/x-www-form-urlencoded",
            b"display_name=Mallory".to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Logout and revoke-others are forms too.
    let r = b
        .post_raw(
            "/logout",
            "application/x-www-form-urlencoded",
            Vec::new(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(display_name(&b).await, before, "nothing changed");
    assert_eq!(
        b.get("/account").await.status,
        StatusCode::OK,
        "still logged in"
    );

    // The same request with the token and same-origin metadata goes through.
    let own = p.base.clone();
    let r = b
        .post_form_with(
            "/account/profile",
            &[("display_name", "Alice")],
            &[("sec-fetch-site", "same-origin"), ("origin", &own)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(display_name(&b).await, "Alice");
}

#[actix_web::test]
async fn scripts_send_the_token_as_a_header() {
    let p = spawn_portal().await;
    let b = p.user("api@example.com", PW).await;
    b.get("/account").await;
    let r = b
        .post_raw(
            "/api/v1/profile",
            "application/json",
            br#"{"display_name":"Scripted"}"#.to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no header");
    let r = b
        .post_raw(
            "/api/v1/profile",
            "application/json",
            br#"{"display_name":"Scripted"}"#.to_vec(),
            &[("x-csrf-token", "bogus")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post_json("/api/v1/profile", r#"{"display_name":"Scripted"}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(display_name(&b).await, "Scripted");
}

#[actix_web::test]
async fn the_token_changes_at_login() {
    let p = spawn_portal().await;
    p.user("rotate-token@example.com", PW).await;
    let b = p.browser();
    b.get("/login").await;
    let before_login = b.csrf.borrow().clone();
    b.post_form(
        "/login",
        &[("email", "rotate-token@example.com"), ("password", PW)],
    )
    .await;
    let r = b
        .post_form(
            "/account/profile",
            &[("display_name", "Mallory"), ("csrf_token", &before_login)],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the pre-login token is dead"
    );
    b.get("/account").await;
    assert_ne!(*b.csrf.borrow(), before_login);
    assert_eq!(display_name(&b).await, "rotate-token");
}

#[actix_web::test]
async fn anonymous_forms_need_the_token_too() {
    let p = spawn_portal().await;
    let b = p.browser();
    // No page loaded: no cookie, no token.
    let r = b
        .post_form(
            "/login",
            &[
                ("email", "x@example.com"),
                ("password", PW),
                ("csrf_token", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = b
        .post_form(
            "/register",
            &[
                ("email", "x@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A token from another visitor does not fit this visitor's cookie.
    let other = p.browser();
    other.get("/login").await;
    b.get("/login").await;
    let stolen = other.csrf.borrow().clone();
    let r = b
        .post_form(
            "/register",
            &[
                ("email", "x@example.com"),
                ("password", PW),
                ("password_confirm", PW),
                ("csrf_token", &stolen),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(p.mails().is_empty(), "no registration happened");
}

#[actix_web::test]
async fn every_form_and_page_carries_the_token() {
    let p = spawn_portal().await;
    let b = p.user("forms@example.com", PW).await;
    for path in ["/", "/account", "/account/sessions", "/billing"] {
        let r = b.get(path).await;
        let token = b.csrf.borrow().clone();
        assert!(
            r.body
                .contains(&format!("<meta name=\"csrf-token\" content=\"{token}\">")),
            "{path}"
        );
        let forms =
            r.body.matches("method=\"post\"").count() + r.body.matches("method=\"POST\"").count();
        let hidden = r.body.matches("name=\"csrf_token\"").count();
        assert_eq!(
            forms, hidden,
            "{path}: every POST form has a hidden csrf_token"
        );
    }
    let anon = p.browser();
    for path in ["/login", "/register"] {
        let r = anon.get(path).await;
        assert!(r.body.contains("name=\"csrf_token\""), "{path}");
    }
}
