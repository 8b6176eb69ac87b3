//! Rate limits end to end: exact under parallel load, keyed by the real client network.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal_with, Browser, Resp, TestPortal};
use phaze_ratelimit::RateLimitPolicy;

use crate::PW;

async fn limited_portal(trust_local_proxy: bool) -> TestPortal {
    spawn_portal_with(move |s| {
        s.ratelimit = RateLimitPolicy::default();
        if trust_local_proxy {
            s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        }
    })
    .await
}

/// Registers and verifies an account without logging in (a login would spend budget).
async fn account(p: &TestPortal, email: &str) {
    let b = p.browser();
    b.get("/register").await;
    let r = b
        .post_form(
            "/register",
            &[("email", email), ("password", PW), ("password_confirm", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        b.get(&p.verification_path(email)).await.status,
        StatusCode::SEE_OTHER
    );
}

/// One login attempt with `email` and `password`, no challenge answer.
async fn try_login(b: &Browser, email: &str, password: &str) -> Resp {
    b.post_form("/login", &[("email", email), ("password", password)])
        .await
}

async fn wrong_login(b: &Browser, headers: &[(&str, &str)]) -> Resp {
    b.post_form_with(
        "/login",
        &[
            ("email", "victim@example.com"),
            ("password", "not the password"),
        ],
        headers,
    )
    .await
}

fn assert_limited(r: &Resp) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-limit"), Some("5"));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert!(r.header("ratelimit-reset").is_some());
    assert!(r.body.contains("Too many requests"));
}

#[actix_web::test]
async fn forty_parallel_wrong_logins_from_one_client_judge_exactly_five() {
    let p = limited_portal(false).await;
    account(&p, "victim@example.com").await;
    let b = p.browser();
    b.get("/login").await;
    let results = futures_util::future::join_all((0..40).map(|_| wrong_login(&b, &[]))).await;
    let judged = results
        .iter()
        .filter(|r| r.status == StatusCode::UNAUTHORIZED)
        .count();
    let limited: Vec<&Resp> = results
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!((judged, limited.len()), (5, 35));
    limited.iter().for_each(|r| assert_limited(r));
    // The right password does not get through either while the budget is spent.
    let r = try_login(&b, "victim@example.com", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(b.cookie("phaze_session").is_none());
    // A window later the client may try again; the five failures still ask for a challenge.
    p.advance(time::Duration::minutes(15));
    let r = try_login(&b, "victim@example.com", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let answer = solved(&r);
    let f = [
        ("email", "victim@example.com"),
        ("password", PW),
        ("challenge", answer.as_str()),
    ];
    assert_eq!(
        b.post_form("/login", &f).await.status,
        StatusCode::SEE_OTHER
    );
}

#[actix_web::test]
async fn spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let p = limited_portal(false).await;
    account(&p, "victim@example.com").await;
    let b = p.browser();
    b.get("/login").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let spoof = format!("198.51.100.{i}");
        let r = wrong_login(
            &b,
            &[
                ("x-forwarded-for", &spoof),
                ("forwarded", &format!("for={spoof}")),
            ],
        )
        .await;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
}

#[actix_web::test]
async fn behind_a_trusted_proxy_clients_are_their_networks() {
    let p = limited_portal(true).await;
    account(&p, "victim@example.com").await;
    let b = p.browser();
    b.get("/login").await;
    let from = |client: &str| vec![("x-forwarded-for".to_owned(), format!("6.6.6.6, {client}"))];
    async fn tries(b: &Browser, headers: Vec<(String, String)>, n: usize) -> Vec<u16> {
        let h: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(wrong_login(b, &h).await.status.as_u16());
        }
        out
    }
    // Two IPv4 clients: separate budgets; the spoofed left-most hop is ignored.
    assert_eq!(
        tries(&b, from("198.51.100.1"), 6).await,
        [401, 401, 401, 401, 401, 429]
    );
    assert_eq!(tries(&b, from("198.51.100.2"), 1).await, [401]);
    // Two addresses in one IPv6 /64 share a budget; the next /64 has its own.
    assert_eq!(tries(&b, from("2001:db8:1:2::1"), 3).await, [401, 401, 401]);
    assert_eq!(
        tries(&b, from("2001:db8:1:2:ffff:ffff:ffff:fffe"), 3).await,
        [401, 401, 429]
    );
    assert_eq!(tries(&b, from("2001:db8:1:3::1"), 1).await, [401]);
}

#[actix_web::test]
async fn verification_password_change_and_profile_api_have_budgets() {
    let p = limited_portal(false).await;
    account(&p, "victim@example.com").await;
    // Guessing verification tokens: 20 per hour per client network (the account's own
    // verification above, from the same address, was the first).
    let guesser = p.browser();
    for i in 0..19 {
        assert_eq!(
            guesser.get(&format!("/verify/guess{i}")).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    let r = guesser.get("/verify/guess20").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());

    let b = p.browser();
    b.login("victim@example.com", PW).await;
    b.get("/account").await;
    // Password change: 5 attempts per account per 15 minutes, right or wrong.
    for _ in 0..5 {
        let r = b
            .post_form(
                "/account/password",
                &[
                    ("current_password", "a wrong guess here"),
                    ("new_password", "another fine passphrase"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = b
        .post_form(
            "/account/password",
            &[
                ("current_password", PW),
                ("new_password", "another fine passphrase"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Profile API: 30 calls per account per minute; the 31st is a JSON 429 with the headers.
    for i in 0..30 {
        let r = b
            .post_json(
                "/api/v1/profile",
                &format!(r#"{{"display_name":"Name {i}"}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{i}");
    }
    let r = b
        .post_json("/api/v1/profile", r#"{"display_name":"One too many"}"#)
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(r.header("ratelimit-limit"), Some("30"));
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(v["error"].is_string());
    // The budgets are the account's: the display name kept the last allowed value.
    let me: serde_json::Value = serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap();
    assert_eq!(me["display_name"], "Name 29");
}

fn challenge_of(r: &Resp) -> Option<String> {
    let start = r.body.find("data-challenge=\"")? + 16;
    Some(r.body[start..start + r.body[start..].find('"')?].to_owned())
}

fn solved(r: &Resp) -> String {
    let token = challenge_of(r).expect("a challenge in the page");
    let start = r.body.find("data-challenge-bits=\"").unwrap() + 21;
    let difficulty = r.body[start..start + r.body[start..].find('"').unwrap()]
        .parse()
        .unwrap();
    phaze_ratelimit::solve(&phaze_ratelimit::Challenge { token, difficulty })
}

#[actix_web::test]
async fn a_challenge_is_required_after_three_failures_and_accepted_once_solved() {
    let p = phaze_e2e::spawn_portal().await; // client budgets out of the way; challenge after 3
    account(&p, "victim@example.com").await;
    let b = p.browser();
    b.get("/login").await;
    for _ in 0..2 {
        let r = wrong_login(&b, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(challenge_of(&r).is_none());
    }
    let third = wrong_login(&b, &[]).await;
    assert!(
        challenge_of(&third).is_some(),
        "the third failure's page carries a challenge"
    );
    // The right password without the work is refused, and no session is made.
    let login = |challenge: &str| {
        vec![
            ("email", "victim@example.com"),
            ("password", PW),
            ("challenge", challenge),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.to_owned()))
        .collect::<Vec<_>>()
    };
    let send = |fields: Vec<(&'static str, String)>| {
        let b = &b;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            b.post_form("/login", &f).await
        }
    };
    let refused = send(login("")).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(refused.body.contains("Too many failed attempts"));
    assert!(b.cookie("phaze_session").is_none());
    // A forged or lazy answer is refused too. Lazy: a counter below the first that does the
    // work (`solve` returns the smallest), so not an answer by construction; counter 0 does the
    // work for one challenge in 2^bits, and then the next page's challenge is used instead.
    let mut page = refused;
    let lazy = loop {
        let token = challenge_of(&page).unwrap();
        if solved(&page) != format!("{token}.0") {
            break format!("{token}.0");
        }
        page = send(login("")).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    };
    assert_eq!(send(login(&lazy)).await.status, StatusCode::UNAUTHORIZED);
    let other = send(login("AAAA.1")).await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    // Solved: accepted.
    let answer = solved(&other);
    let ok = send(login(&answer)).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert!(b.cookie("phaze_session").is_some());

    // Single use: after three new failures the same answer does not work again.
    let c = p.browser();
    c.get("/login").await;
    for _ in 0..3 {
        wrong_login(&c, &[]).await;
    }
    let f: Vec<(&str, &str)> = vec![
        ("email", "victim@example.com"),
        ("password", PW),
        ("challenge", &answer),
    ];
    let replay = c.post_form("/login", &f).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    assert!(c.cookie("phaze_session").is_none());
}

#[actix_web::test]
async fn unknown_identifiers_get_the_same_challenge() {
    let p = phaze_e2e::spawn_portal().await;
    account(&p, "victim@example.com").await;
    let mut pages = Vec::new();
    for email in ["victim@example.com", "nobody@example.com"] {
        let b = p.browser();
        b.get("/login").await;
        let mut last = None;
        for _ in 0..4 {
            last = Some(
                b.post_form(
                    "/login",
                    &[("email", email), ("password", "not the password")],
                )
                .await,
            );
        }
        let r = last.unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let token = challenge_of(&r).expect("challenge");
        let csrf = b.csrf.borrow().clone();
        pages.push(
            r.body
                .replace(&token, "TOKEN")
                .replace(email, "EMAIL")
                .replace(&csrf, "CSRF"),
        );
    }
    assert_eq!(pages[0], pages[1]);
}

/// One failed login, solving the challenge the previous page carried (if any); returns the page.
async fn fail_once(b: &Browser, email: &str, previous: Option<&Resp>) -> Resp {
    let answer = previous
        .filter(|r| challenge_of(r).is_some())
        .map(solved)
        .unwrap_or_default();
    let f = [
        ("email", email),
        ("password", "not the password"),
        ("challenge", answer.as_str()),
    ];
    b.post_form("/login", &f).await
}

/// Ten failures with challenges solved: what it takes to lock an identifier.
async fn lock(b: &Browser, email: &str) -> Resp {
    b.get("/login").await;
    let mut last: Option<Resp> = None;
    for i in 0..10 {
        let r = fail_once(b, email, last.as_ref()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "failure {i}");
        last = Some(r);
    }
    last.unwrap()
}

#[actix_web::test]
async fn ten_failures_lock_an_identifier_for_everyone_alike() {
    let p = phaze_e2e::spawn_portal().await;
    account(&p, "victim@example.com").await;
    let mut answers = Vec::new();
    for email in ["victim@example.com", "nobody@example.com"] {
        let attacker = p.browser();
        let last = lock(&attacker, email).await;
        // Even the right password (with a solved challenge, if the page asked for one) is
        // refused while locked.
        let answer = challenge_of(&last)
            .map(|_| solved(&last))
            .unwrap_or_default();
        let f = [
            ("email", email),
            ("password", PW),
            ("challenge", answer.as_str()),
        ];
        let r = attacker.post_form("/login", &f).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{email}");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((880..=900).contains(&retry), "{retry}");
        answers.push((r.status, retry, r.body.replace(email, "EMAIL")));
    }
    assert_eq!(answers[0].0, answers[1].0);
    assert_eq!(
        answers[0].2, answers[1].2,
        "identical for an unknown identifier"
    );
    // Still locked a second before the end; fifteen minutes on, the owner starts afresh.
    p.advance(time::Duration::minutes(15) - time::Duration::seconds(1));
    let b = p.browser();
    b.get("/login").await;
    let r = try_login(&b, "victim@example.com", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    p.advance(time::Duration::seconds(1));
    b.login("victim@example.com", PW).await;
}

#[actix_web::test]
async fn a_device_that_logged_in_before_is_not_locked_out() {
    let p = phaze_e2e::spawn_portal().await;
    account(&p, "victim@example.com").await;
    let owner = p.browser();
    let r = owner.login("victim@example.com", PW).await;
    let device = r.set_cookie("phaze_device").expect("device cookie");
    assert!(
        device.contains("HttpOnly") && device.contains("Max-Age="),
        "{device}"
    );
    owner.post_form("/logout", &[]).await;

    lock(&p.browser(), "victim@example.com").await;
    // The owner's browser: no challenge, no lock.
    owner.login("victim@example.com", PW).await;
    owner.post_form("/logout", &[]).await;
    // A device cookie for another identifier, or a forged one, does not help.
    let stranger = p.browser();
    stranger.set_cookie("phaze_device", &owner.cookie("phaze_device").unwrap());
    stranger.get("/login").await;
    let r = try_login(&stranger, "nobody@example.com", PW).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let forged = p.browser();
    forged.set_cookie(
        "phaze_device",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    forged.get("/login").await;
    let r = try_login(&forged, "victim@example.com", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // The device's own budget: 5 failures lock that device too.
    owner.get("/login").await;
    for _ in 0..5 {
        let r = try_login(&owner, "victim@example.com", "wrong guess here").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = try_login(&owner, "victim@example.com", PW).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[actix_web::test]
async fn forty_parallel_guesses_at_one_identifier_from_forty_clients_judge_exactly_ten() {
    // Every guess from its own network (behind a trusted proxy), the challenge out of the way:
    // only the per-identifier count stands between the attacker and the password.
    let p = phaze_e2e::spawn_portal_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        s.ratelimit.challenge_after_failures = 100;
    })
    .await;
    account(&p, "victim@example.com").await;
    let b = p.browser();
    b.get("/login").await;
    let clients: Vec<String> = (0..40).map(|i| format!("198.51.{i}.7")).collect();
    let results = futures_util::future::join_all(
        clients
            .iter()
            .map(|ip| async { wrong_login(&b, &[("x-forwarded-for", ip.as_str())]).await }),
    )
    .await;
    let judged = results
        .iter()
        .filter(|r| r.body.contains("Invalid email or password."))
        .count();
    let locked = results
        .iter()
        .filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((judged, locked), (10, 30));
    // And the identifier is locked now, for a new client too.
    let r = wrong_login(&b, &[("x-forwarded-for", "203.0.113.99")]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[actix_web::test]
async fn registrations_and_unsafe_requests_have_client_budgets() {
    let p = spawn_portal_with(|s| {
        s.ratelimit = RateLimitPolicy {
            post_per_client: 12,
            ..RateLimitPolicy::default()
        };
    })
    .await;
    // Registrations: 10 per hour per client network; the 11th is refused before any work.
    let b = p.browser();
    b.get("/register").await;
    for i in 0..10 {
        let email = format!("new{i}@example.com");
        let r = b
            .post_form(
                "/register",
                &[
                    ("email", &email),
                    ("password", PW),
                    ("password_confirm", PW),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{i}");
    }
    p.wait_for_mails(10);
    let r = b
        .post_form(
            "/register",
            &[
                ("email", "eleventh@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.header("ratelimit-limit"), Some("10"));
    // Every unsafe request spends the network's POST budget (12 here): the 11 registrations
    // did, one more passes, the next is refused whatever its route.
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = b.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header("ratelimit-limit"), Some("12"));
    // Refused before the handler, so no registration job exists that could still mail.
    assert!(
        p.mails()
            .iter()
            .all(|m| !m.contains("eleventh@example.com")),
        "the refused registration mailed nothing"
    );
}
