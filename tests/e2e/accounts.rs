//! Registration, verification, login: enumeration resistance, open redirects, escaping.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_fs_portal_with, spawn_portal, spawn_portal_with};

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

/// The page, status and headers of a failed login are the same for an unknown and a known
/// address. Equal *work* is proved without a clock, by counting (`auth::it::
/// failed_logins_do_the_same_work_for_unknown_and_known_accounts` and `auth::password::tests::
/// unknown_accounts_cost_one_argon2_computation_like_known_ones`); wall-clock comparisons
/// belong in benchmarks, where a busy machine cannot fail the suite.
#[actix_web::test]
async fn login_failures_are_identical_for_unknown_and_known_accounts() {
    let p = spawn_portal_with(|s| s.ratelimit.challenge_after_failures = 100).await;
    p.user("known@example.com", PW).await;
    let b = p.browser();
    b.get("/login").await;
    let mut answers = Vec::new();
    for email in ["known@example.com", "unknown@example.com"] {
        let r = b
            .post_form(
                "/login",
                &[("email", email), ("password", "wrong password here")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.body.contains("Invalid email or password."));
        let mut headers: Vec<String> = r
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "date" | "content-length"))
            // Cookie values are fresh random tokens on every answer: compare their presence.
            .map(|(name, value)| match name.as_str() {
                "set-cookie" => format!("{name}: {}", value.to_str().unwrap_or("?").split('=').next().unwrap_or("")),
                _ => format!("{name}: {}", value.to_str().unwrap_or("?")),
            })
            .collect();
        headers.sort();
        answers.push((r.body.replace(email, "EMAIL"), headers));
    }
    assert_eq!(answers[0].0, answers[1].0, "identical pages");
    assert_eq!(answers[0].1, answers[1].1, "identical headers");
}

#[actix_web::test]
async fn a_registration_is_pending_until_its_link_is_used() {
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
    let link = p.verification_path("new@example.com");
    // No account before the link is used: the answer is a plain failed login, which tells a
    // guesser nothing about the address.
    b.get("/login").await;
    let r = b
        .post_form("/login", &[("email", "new@example.com"), ("password", PW)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body.contains("Invalid email or password."));
    assert!(b.cookie("phaze_session").is_none());
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

/// Finding 12.3: an attacker who registers a victim's address first, with the attacker's
/// password, gets no account: the victim's own registration kills the attacker's link, and the
/// victim's link makes the victim's password the one that works.
#[actix_web::test]
async fn pre_registering_someone_elses_address_does_not_take_the_account() {
    let p = spawn_portal().await;
    async fn register(b: &phaze_e2e::Browser, password: &str) {
        b.get("/register").await;
        let r = b
            .post_form(
                "/register",
                &[
                    ("email", "victim@example.com"),
                    ("password", password),
                    ("password_confirm", password),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let attacker = p.browser();
    register(&attacker, "attacker chosen passphrase").await;
    let attackers_link = p.verification_path("victim@example.com");
    let victim = p.browser();
    register(&victim, PW).await;
    let victims_link = {
        let mails = p.wait_for_mails(2);
        assert_eq!(mails.len(), 2);
        p.verification_path("victim@example.com")
    };
    assert_ne!(attackers_link, victims_link, "the newest link is the victim's");
    // Whoever clicks the attacker's link now, it is dead.
    assert_eq!(
        victim.get(&attackers_link).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(victim.get(&victims_link).await.status, StatusCode::SEE_OTHER);
    victim.login("victim@example.com", PW).await;
    let b = p.browser();
    b.get("/login").await;
    let r = b
        .post_form(
            "/login",
            &[
                ("email", "victim@example.com"),
                ("password", "attacker chosen passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
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
async fn two_portals_on_one_data_directory_keep_one_live_link_and_make_one_account() {
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
    // Eight pending registrations, each with its link; only the newest link of the address
    // lives, whichever process issued it.
    let mails = a.wait_for_mails(8);
    let links: Vec<String> = mails
        .iter()
        .filter_map(|m| {
            let start = m.find("/verify/")?;
            let token: String = m[start + 8..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            Some(format!("/verify/{token}"))
        })
        .collect();
    assert_eq!(links.len(), 8);
    let mut used = 0;
    for (i, link) in links.iter().enumerate() {
        let portal = if i % 2 == 0 { &a } else { &b };
        used += usize::from(portal.browser().get(link).await.status == StatusCode::SEE_OTHER);
    }
    assert_eq!(used, 1, "exactly one link creates the account");
    // Exactly one of the eight passwords is the account's, on both portals.
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
