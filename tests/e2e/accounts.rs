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
                "set-cookie" => format!(
                    "{name}: {}",
                    value
                        .to_str()
                        .unwrap_or("?")
                        .split('=')
                        .next()
                        .unwrap_or("")
                ),
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
    assert_ne!(
        attackers_link, victims_link,
        "the newest link is the victim's"
    );
    // Whoever clicks the attacker's link now, it is dead.
    assert_eq!(
        victim.get(&attackers_link).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        victim.get(&victims_link).await.status,
        StatusCode::SEE_OTHER
    );
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
        for path in ["/account", "/account/sessions", "/billing", "/"] {
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

/// Registers `email` with [`PW`] in `b` and returns its verification link, unused.
async fn registered_link(p: &phaze_e2e::TestPortal, b: &phaze_e2e::Browser, email: &str) -> String {
    b.get("/register").await;
    let r = b
        .post_form(
            "/register",
            &[("email", email), ("password", PW), ("password_confirm", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    p.verification_path(email)
}

/// The notice box (`role="status"`), not to be confused with the error box (`role="alert"`).
const NOTICE_BOX: &str = r#"role="status" id="page-notice""#;

#[actix_web::test]
async fn the_login_page_confirms_a_used_verification_link_once() {
    let p = spawn_portal().await;
    let b = p.browser();
    let link = registered_link(&p, &b, "notice@example.com").await;
    let r = b.get(&link).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/login"));
    // Only a code from a fixed list travels, in a short-lived cookie only the server reads.
    let cookie = r.set_cookie("phaze_notice").expect("a notice cookie");
    assert!(
        cookie.starts_with("phaze_notice=email-confirmed;"),
        "{cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=60"] {
        assert!(cookie.contains(attribute), "{attribute}: {cookie}");
    }
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let page = b.get("/login").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(NOTICE_BOX), "{}", page.body);
    assert!(page.body.contains(
        "Your email address is confirmed and your account is created. You can log in now."
    ));
    assert!(!page.body.contains("page-error"));
    let cleared = page
        .set_cookie("phaze_notice")
        .expect("the notice is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(b.cookie("phaze_notice").is_none());
    let again = b.get("/login").await;
    assert!(!again.body.contains("page-notice"), "shown once");
    assert!(again.set_cookie("phaze_notice").is_none());
    b.login("notice@example.com", PW).await;
}

#[actix_web::test]
async fn the_account_page_confirms_a_password_change_once() {
    let p = spawn_portal().await;
    let b = p.user("changer@example.com", PW).await;
    b.get("/account").await;
    let new = "a different passphrase entirely";
    let r = b
        .post_form(
            "/account/password",
            &[("current_password", PW), ("new_password", new)],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), Some("/account"));
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(NOTICE_BOX), "{}", page.body);
    assert!(page.body.contains("Your password has been changed."));
    assert!(page.body.contains("Every other session was logged out"));
    assert!(page
        .set_cookie("phaze_notice")
        .is_some_and(|c| c.contains("Max-Age=0")));
    let again = b.get("/account").await;
    assert_eq!(again.status, StatusCode::OK);
    assert!(!again.body.contains("page-notice"), "shown once");
    // A failed change leaves no notice behind.
    let r = b
        .post_form(
            "/account/password",
            &[
                ("current_password", "not the password at all"),
                ("new_password", PW),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.set_cookie("phaze_notice").is_none());
    assert!(!b.get("/account").await.body.contains("page-notice"));
}

#[actix_web::test]
async fn profile_and_session_changes_are_confirmed_once() {
    let p = spawn_portal().await;
    let b = p.user("tidy@example.com", PW).await;
    let other = p.browser();
    other.login("tidy@example.com", PW).await;
    let third = p.browser();
    third.login("tidy@example.com", PW).await;
    b.get("/account").await;
    let r = b
        .post_form("/account/profile", &[("display_name", "Tidy")])
        .await;
    assert_eq!(r.location(), Some("/account"));
    let page = b.get("/account").await;
    assert!(page.body.contains("Your display name has been saved."));
    assert!(!b.get("/account").await.body.contains("page-notice"));

    let page = b.get("/account/sessions").await;
    let handle = page
        .body
        .split("action=\"/account/sessions/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("another session to revoke")
        .to_owned();
    let r = b
        .post_form(&format!("/account/sessions/{handle}/revoke"), &[])
        .await;
    assert_eq!(r.location(), Some("/account/sessions"));
    let page = b.get("/account/sessions").await;
    assert!(page.body.contains(NOTICE_BOX));
    assert!(page.body.contains("The session was logged out."));
    let r = b.post_form("/account/sessions/revoke-others", &[]).await;
    assert_eq!(r.location(), Some("/account/sessions"));
    let page = b.get("/account/sessions").await;
    assert!(page.body.contains("Every other session was logged out."));
    assert!(!b
        .get("/account/sessions")
        .await
        .body
        .contains("page-notice"));
}

#[actix_web::test]
async fn unknown_notice_codes_are_ignored_and_cleared() {
    let p = spawn_portal().await;
    let b = p.browser();
    for planted in ["bogus", "%3Cb%3EYou%20won%3C%2Fb%3E", "Email-Confirmed"] {
        b.set_cookie("phaze_notice", planted);
        let page = b.get("/login").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.body.contains("page-notice"), "{planted}");
        assert!(!page.body.contains("You won"), "{planted}");
        assert!(page
            .set_cookie("phaze_notice")
            .is_some_and(|c| c.contains("Max-Age=0")));
    }
    // A HEAD shows nothing, so it leaves a real notice for the GET.
    b.set_cookie("phaze_notice", "email-confirmed");
    let head = b.head("/login").await;
    assert!(head.set_cookie("phaze_notice").is_none());
    assert!(b.get("/login").await.body.contains(NOTICE_BOX));
}

#[actix_web::test]
async fn a_dead_verification_link_says_what_happened_and_what_to_do() {
    let p = spawn_portal().await;
    let b = p.browser();
    let used = registered_link(&p, &b, "used@example.com").await;
    assert_eq!(b.get(&used).await.status, StatusCode::SEE_OTHER);
    let expired = registered_link(&p, &b, "expired@example.com").await;
    p.advance(time::Duration::hours(24) + time::Duration::seconds(1));
    let long = format!("/verify/{}", "A".repeat(500));
    for link in [used.as_str(), expired.as_str(), "/verify/nonsense", &long] {
        let r = b.get(link).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{link}");
        assert!(
            r.body
                .contains("This confirmation link has expired or has already been used"),
            "{link}: {}",
            r.body
        );
        assert!(r.body.contains("only the newest link"), "{link}");
        assert!(r.body.contains(r#"href="/register""#), "{link}");
        assert!(r.body.contains(r#"href="/login""#), "{link}");
        assert!(!r.body.contains("Bad request"), "{link}");
        assert!(r.set_cookie("phaze_notice").is_none(), "{link}");
    }
    // Other routes keep the generic 400.
    b.get("/login").await;
    let r = b
        .post_raw(
            "/login",
            "application/x-www-form-urlencoded",
            b"email=%FF".to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("Bad request"));
    assert!(!r.body.contains("confirmation link"));
}

/// Every input on the account page is labelled, a hidden form field, or (the username for password
/// managers) hidden from everyone by `hidden` and `aria-hidden`, which the stylesheet never
/// overrides.
#[actix_web::test]
async fn the_account_page_has_no_visible_unlabelled_input() {
    let p = spawn_portal().await;
    let b = p.user("labels@example.com", PW).await;
    let page = b.get("/account").await;
    let mut username_fields = 0;
    for tag in page.body.split("<input").skip(1) {
        let tag = &tag[..tag.find('>').expect("a closed tag")];
        let attr = |name: &str| {
            tag.split(&format!(" {name}=\""))
                .nth(1)
                .and_then(|rest| rest.split('"').next())
        };
        if attr("type") == Some("hidden") {
            continue;
        }
        if attr("autocomplete") == Some("username") {
            username_fields += 1;
            assert!(tag.contains(" hidden"), "{tag}");
            assert!(tag.contains(r#"aria-hidden="true""#), "{tag}");
            assert_eq!(attr("name"), None, "not submitted: {tag}");
            continue;
        }
        let id = attr("id").unwrap_or_else(|| panic!("an id: {tag}"));
        assert!(
            page.body.contains(&format!("<label for=\"{id}\">")),
            "a label for {id}"
        );
    }
    assert_eq!(username_fields, 1);
    let css = b.get("/static/app.css").await.body;
    assert!(css.contains("[hidden] { display: none !important; }"));
}

#[actix_web::test]
async fn the_landing_page_promises_only_what_works() {
    let p = spawn_portal().await;
    let body = p.browser().get("/").await.body.to_lowercase();
    let main = body.split("<main").nth(1).expect("a main element");
    let page = main.split("</main>").next().expect("closed");
    for promise in [
        "device",
        "download",
        "export",
        "two-factor",
        "2fa",
        "delete your data",
    ] {
        assert!(!page.contains(promise), "{promise}");
    }
    for feature in ["confirm", "argon2id", "breached", "session", "locked"] {
        assert!(page.contains(feature), "{feature}");
    }
}
