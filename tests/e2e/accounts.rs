//! Registration, verification, login: enumeration resistance, open redirects, escaping.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_fs_portal_with, spawn_portal, spawn_portal_with};
use std::time::Instant;

use crate::PW;

#[actix_web::test]
async fn registration_does_not_reveal_existing_accounts() {
    let p = spawn_portal().await;
    p.user("taken@example.com", PW).await;
    let b = p.browser();
    b.get("/register").await;
    let taken = b
        .post_form(
            "/register",
            &[
                ("email", "taken@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    let fresh = b
        .post_form(
            "/register",
            &[
                ("email", "fresh@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(taken.status, StatusCode::OK);
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(
        taken.body.replace("taken@", "X@"),
        fresh.body.replace("fresh@", "X@")
    );
    // The owner of the taken address hears about it; the new address gets its link.
    assert!(p
        .mail_to("taken@example.com", "already have an account")
        .is_some());
    assert!(p.mail_to("fresh@example.com", "/verify/").is_some());
    // Still one account for the taken address: its password is unchanged.
    p.browser().login("taken@example.com", PW).await;
}

#[actix_web::test]
async fn login_failures_are_identical_for_unknown_and_known_accounts() {
    // Twelve failures: keep the challenge (tested in `limits`) out of the way of the timing.
    let p = spawn_portal_with(|s| s.ratelimit.challenge_after_failures = 100).await;
    p.user("known@example.com", PW).await;
    let b = p.browser();
    b.get("/login").await;
    let mut timings = [Vec::new(), Vec::new()];
    let mut bodies = Vec::new();
    for round in 0..6 {
        for (i, email) in ["known@example.com", "unknown@example.com"]
            .iter()
            .enumerate()
        {
            let start = Instant::now();
            let r = b
                .post_form(
                    "/login",
                    &[("email", email), ("password", "wrong password here")],
                )
                .await;
            timings[i].push(start.elapsed());
            assert_eq!(r.status, StatusCode::UNAUTHORIZED);
            assert!(r.body.contains("Invalid email or password."));
            if round == 0 {
                bodies.push(r.body.replace(email, "EMAIL"));
            }
        }
    }
    assert_eq!(bodies[0], bodies[1], "identical pages");
    // Both paths run one argon2id verification; the medians stay within a factor of 3 even on a
    // busy CI machine (an unknown account answering without hashing would be ~100x faster).
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (known, unknown) = (median(&mut timings[0]), median(&mut timings[1]));
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (0.33..3.0).contains(&ratio),
        "known {known:?} vs unknown {unknown:?}"
    );
}

#[actix_web::test]
async fn unverified_accounts_cannot_log_in_until_verified() {
    let p = spawn_portal().await;
    let b = p.browser();
    b.get("/register").await;
    b.post_form(
        "/register",
        &[
            ("email", "new@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
    )
    .await;
    b.get("/login").await;
    let r = b
        .post_form("/login", &[("email", "new@example.com"), ("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("confirm your email"));
    assert!(b.cookie("phaze_session").is_none());
    let link = p.verification_path("new@example.com");
    let r = b.get(&link).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/login"));
    // Single use.
    let again = b.get(&link).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    for bad in [
        "/verify/nonsense",
        "/verify/%00%00",
        &format!("/verify/{}", "A".repeat(500)),
    ] {
        assert_eq!(b.get(bad).await.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    b.login("new@example.com", PW).await;
}

#[actix_web::test]
async fn verification_links_expire() {
    let p = spawn_portal().await;
    let b = p.browser();
    b.get("/register").await;
    b.post_form(
        "/register",
        &[
            ("email", "late@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
    )
    .await;
    p.advance(time::Duration::hours(24) + time::Duration::seconds(1));
    let r = b.get(&p.verification_path("late@example.com")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn weak_or_mismatched_passwords_are_refused_with_a_reason() {
    let p = spawn_portal().await;
    let b = p.browser();
    b.get("/register").await;
    let cases = [
        ("short", "short", "at least 12"),
        ("password1234", "password1234", "too common"),
        (PW, "something else entirely", "do not match"),
    ];
    for (pw, confirm, why) in cases {
        let r = b
            .post_form(
                "/register",
                &[
                    ("email", "weak@example.com"),
                    ("password", pw),
                    ("password_confirm", confirm),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{pw}");
        assert!(r.body.contains(why), "{why}: {}", r.body);
    }
    let r = b
        .post_form(
            "/register",
            &[
                ("email", "not-an-email"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(p.mails().is_empty(), "nothing was registered");
}

#[actix_web::test]
async fn next_redirects_stay_on_the_site() {
    let p = spawn_portal().await;
    p.user("next@example.com", PW).await;
    let cases = [
        ("/account/sessions", "/account/sessions"),
        ("//evil.example", "/account"),
        ("https://evil.example/", "/account"),
        ("/\\evil.example", "/account"),
        ("javascript:alert(1)", "/account"),
        ("/%0d%0aSet-Cookie:x=1", "/%0d%0aSet-Cookie:x=1"),
    ];
    for (next, expected) in cases {
        let b = p.browser();
        b.get("/login").await;
        let r = b
            .post_form(
                "/login",
                &[
                    ("email", "next@example.com"),
                    ("password", PW),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), Some(expected), "next={next}");
        assert!(r.header("set-cookie").is_some());
    }
    // The login page only echoes a safe `next` back into its form.
    let b = p.browser();
    let r = b.get("/login?next=%2F%2Fevil.example").await;
    assert!(!r.body.contains("evil.example"));
    // An anonymous visit to a page sends the visitor to log in and back.
    let r = b.get("/account/sessions").await;
    assert_eq!(r.location(), Some("/login?next=%2Faccount%2Fsessions"));
}

#[actix_web::test]
async fn display_names_with_markup_come_back_escaped() {
    let p = spawn_portal().await;
    let b = p.user("xss@example.com", PW).await;
    for payload in [
        "<script>alert(1)</script>",
        "\"><img src=x onerror=alert(1)>",
        "'; alert(1); //",
        "{{ csrf_token }}",
    ] {
        b.get("/account").await;
        let r = b
            .post_form("/account/profile", &[("display_name", payload)])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{payload}");
        for path in ["/account", "/account/sessions", "/"] {
            let page = b.get(path).await;
            assert!(
                !page.body.contains(payload) || !payload.contains(['<', '"', '\'']),
                "{path}: raw {payload}"
            );
            assert!(!page.body.contains("<script>alert"), "{path}");
            assert!(!page.body.contains("<img src=x"), "{path}");
        }
        let me: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
        assert_eq!(
            me["display_name"], payload,
            "kept as typed, escaped on output"
        );
    }
    let page = b.get("/account").await;
    assert!(
        page.body.contains("{{ csrf_token }}"),
        "template syntax in data is not evaluated"
    );
}

#[actix_web::test]
async fn api_me_reports_the_account() {
    let p = spawn_portal().await;
    let anon = p.browser();
    let r = anon.get("/api/v1/me").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["error"].is_string());
    let b = p.user("me@example.com", PW).await;
    let v: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
    assert_eq!(v["email"], "me@example.com");
    assert_eq!(v["display_name"], "me");
    assert_eq!(v["two_factor"], false);
    assert_eq!(v["subscription"]["status"], "none");
    assert!(v["id"].as_str().unwrap().len() >= 32);
}

#[actix_web::test]
async fn emails_are_case_and_space_insensitive() {
    let p = spawn_portal().await;
    p.user("mixed@example.com", PW).await;
    let b = p.browser();
    b.login("  MIXED@Example.com ", PW).await;
}

#[actix_web::test]
async fn two_portals_on_one_data_directory_register_an_email_once() {
    // Eight password guesses below would otherwise trigger the login challenge.
    let relaxed = |s: &mut phaze_portal::Settings| {
        s.ratelimit.challenge_after_failures = 100;
        s.store.share_data_dir = true;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        spawn_fs_portal_with(dir.path(), relaxed).await,
        spawn_fs_portal_with(dir.path(), relaxed).await,
    );
    let browsers: Vec<_> = (0..8)
        .map(|i| if i % 2 == 0 { a.browser() } else { b.browser() })
        .collect();
    for br in &browsers {
        br.get("/register").await;
    }
    let passwords: Vec<String> = (0..8).map(|i| format!("{PW} number {i}")).collect();
    let results = futures_util::future::join_all(browsers.iter().zip(&passwords).map(
        |(br, pw)| async move {
            br.post_form(
                "/register",
                &[
                    ("email", "race@example.com"),
                    ("password", pw),
                    ("password_confirm", pw),
                ],
            )
            .await
        },
    ))
    .await;
    assert!(results.iter().all(|r| r.status == StatusCode::OK));
    let links = a.mails().iter().filter(|m| m.contains("/verify/")).count();
    assert_eq!(links, 1, "exactly one account was created");
    let notices = a
        .mails()
        .iter()
        .filter(|m| m.contains("already have an account"))
        .count();
    assert_eq!(notices, 7);
    // Both portals see the one account.
    let link = a.verification_path("race@example.com");
    assert_eq!(b.browser().get(&link).await.status, StatusCode::SEE_OTHER);
    // Exactly one of the eight passwords is the account's.
    let mut accepted = 0;
    for pw in &passwords {
        let br = b.browser();
        br.get("/login").await;
        let r = br
            .post_form("/login", &[("email", "race@example.com"), ("password", pw)])
            .await;
        accepted += usize::from(r.status == StatusCode::SEE_OTHER);
    }
    assert_eq!(accepted, 1);
}
