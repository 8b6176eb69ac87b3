//! Hostile input: oversize bodies, invalid UTF-8, NUL bytes, JSON type confusion, unknown fields.
//! Each gets a generic 4xx, changes nothing, and leaks nothing.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal, Browser, Resp};

use crate::PW;

fn assert_generic(r: &Resp, status: StatusCode, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    for leak in [
        "serde",
        "actix",
        "panicked",
        "src/",
        ".rs",
        "Error {",
        "at line",
        "expected",
        "invalid type",
    ] {
        assert!(
            !r.body.contains(leak),
            "{what}: body leaks {leak:?}: {}",
            r.body
        );
    }
}

async fn name(b: &Browser) -> String {
    let v: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
    v["display_name"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn hostile_form_input_gets_a_generic_4xx_and_changes_nothing() {
    let p = spawn_portal().await;
    let b = p.user("hostile@example.com", PW).await;
    b.get("/account").await;
    let token = b.csrf.borrow().clone();
    let before = name(&b).await;

    let huge = format!("csrf_token={token}&display_name={}", "A".repeat(100_000));
    let r = b
        .post_raw(
            "/account/profile",
            "application/x-www-form-urlencoded",
            huge.into_bytes(),
            &[],
        )
        .await;
    assert_generic(&r, StatusCode::PAYLOAD_TOO_LARGE, "oversize form");

    let mut invalid_utf8 = format!("csrf_token={token}&display_name=").into_bytes();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    let r = b
        .post_raw(
            "/account/profile",
            "application/x-www-form-urlencoded",
            invalid_utf8,
            &[],
        )
        .await;
    assert!(r.status.is_client_error(), "invalid utf-8: {}", r.status);
    assert_generic(&r, r.status, "invalid utf-8");

    let r = b
        .post_form("/account/profile", &[("display_name", "evil\0name")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "NUL byte");
    let r = b
        .post_form("/account/profile", &[("display_name", "bidi\u{202e}txt")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "bidi override");
    let r = b
        .post_form("/account/profile", &[("display_name", &"x".repeat(65))])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "65 characters");
    let r = b
        .post_form("/account/profile", &[("display_name", "   ")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "blank");
    let r = b.post_form("/account/profile", &[("nickname", "x")]).await;
    assert_generic(&r, StatusCode::BAD_REQUEST, "missing field");
    let r = b
        .post_raw(
            "/account/profile",
            "text/plain",
            format!("csrf_token={token}&display_name=x").into_bytes(),
            &[("x-csrf-token", &token)],
        )
        .await;
    assert!(r.status.is_client_error());
    assert_generic(&r, r.status, "wrong content type");

    assert_eq!(name(&b).await, before, "nothing changed");
    // 64 characters of any script is fine.
    let r = b
        .post_form("/account/profile", &[("display_name", &"é".repeat(64))])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn hostile_json_gets_422_and_changes_nothing() {
    let p = spawn_portal().await;
    let b = p.user("json@example.com", PW).await;
    b.get("/account").await;
    let before = name(&b).await;
    let cases = [
        (r#"{"display_name": {"$ne": null}}"#, "object for a string"),
        (r#"{"display_name": 42}"#, "number for a string"),
        (r#"{"display_name": ["a"]}"#, "array for a string"),
        (r#"{"display_name": null}"#, "null"),
        (
            r#"{"display_name": "ok", "is_admin": true}"#,
            "unknown field",
        ),
        (r#"["display_name", "x"]"#, "array body"),
        (r#"{}"#, "missing field"),
        (
            r#"{"display_name": "a\u0000b"}"#,
            "NUL in a valid JSON string",
        ),
        (r#"{"display_name": ""}"#, "empty"),
    ];
    for (json, what) in cases {
        let r = b.post_json("/api/v1/profile", json).await;
        assert_generic(&r, StatusCode::UNPROCESSABLE_ENTITY, what);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("json error body");
        assert!(v["error"].is_string(), "{what}");
    }
    let r = b.post_json("/api/v1/profile", "{not json").await;
    assert!(r.status.is_client_error());
    assert_generic(&r, r.status, "malformed json");
    let big = format!(r#"{{"display_name": "{}"}}"#, "a".repeat(100_000));
    let r = b.post_json("/api/v1/profile", &big).await;
    assert_generic(&r, StatusCode::PAYLOAD_TOO_LARGE, "oversize json");
    assert_eq!(name(&b).await, before);
    let me: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
    assert_eq!(me["email"], "json@example.com");
}

#[actix_web::test]
async fn hostile_registration_input_registers_nothing() {
    let p = spawn_portal().await;
    let b = p.browser();
    b.get("/register").await;
    let long_pw = "x".repeat(129);
    let cases: Vec<Vec<(&str, &str)>> = vec![
        vec![
            ("email", "a@b.c\0d"),
            ("password", PW),
            ("password_confirm", PW),
        ],
        vec![
            ("email", "<script>@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
        vec![
            ("email", "a@example.com\r\nBcc: victim@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
        vec![
            ("email", "x@example.com"),
            ("password", &long_pw),
            ("password_confirm", &long_pw),
        ],
    ];
    for fields in cases {
        let r = b.post_form("/register", &fields).await;
        assert_generic(&r, StatusCode::UNPROCESSABLE_ENTITY, &format!("{fields:?}"));
    }
    let r = b
        .post_form("/register", &[("email", "only@example.com")])
        .await;
    assert_generic(&r, StatusCode::BAD_REQUEST, "missing fields");
    assert!(p.mails().is_empty(), "no mail, no account");
}
