//! Password reset end to end: the same answer for every address, the link by mail, one use, every
//! session ended, the new password works and the old does not.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal, spawn_portal_with, TestPortal};

use crate::PW;

const NEW: &str = "a brand new passphrase here";

/// The path of the newest reset link mailed to `to`.
fn reset_path(p: &TestPortal, to: &str) -> String {
    let mail = p.mail_to(to, "/password/reset/").expect("a reset mail");
    let start = mail.find("/password/reset/").unwrap();
    mail[start..].split_whitespace().next().unwrap().to_owned()
}

/// A login attempt's status (without the support helper's assertion of success).
async fn try_login(p: &TestPortal, email: &str, password: &str) -> StatusCode {
    let b = p.browser();
    b.get("/login").await;
    b.post_form("/login", &[("email", email), ("password", password)])
        .await
        .status
}

/// A page's body without its CSRF token (a fresh browser's token is its own).
fn without_token(body: &str) -> String {
    body.lines()
        .filter(|l| !l.contains("csrf"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn ask(p: &TestPortal, email: &str) -> phaze_e2e::Resp {
    let b = p.browser();
    b.get("/password/forgot").await;
    b.post_form("/password/forgot", &[("email", email)]).await
}

#[actix_web::test]
async fn forgot_mail_reset_ends_every_session_and_the_new_password_works() {
    let p = spawn_portal().await;
    let other_device = p.user("forgetful@example.com", PW).await;
    assert_eq!(other_device.get("/account").await.status, StatusCode::OK);

    let r = ask(&p, "Forgetful@Example.com").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("we have sent a link"), "{}", r.body);
    let link = reset_path(&p, "forgetful@example.com");

    let b = p.browser();
    assert_eq!(b.get(&link).await.status, StatusCode::OK);
    let r = b
        .post_form(&link, &[("password", NEW), ("password_confirm", NEW)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), Some("/login"));
    let page = b.get("/login").await;
    assert!(
        page.body.contains("Your password has been reset"),
        "a notice, once"
    );
    assert!(
        p.mail_to("forgetful@example.com", "was reset").is_some(),
        "a notice mail"
    );

    // Every session of the account is gone.
    let r = other_device.get("/account").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the other device is logged out"
    );
    // The new password works, the old one does not, and the link is spent.
    assert_eq!(
        try_login(&p, "forgetful@example.com", PW).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        try_login(&p, "forgetful@example.com", NEW).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(b.get(&link).await.status, StatusCode::BAD_REQUEST);
    let again = b
        .post_form(
            &link,
            &[
                ("password", "another one entirely"),
                ("password_confirm", "another one entirely"),
            ],
        )
        .await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn the_answer_is_the_same_for_every_address_and_only_an_account_gets_mail() {
    let p = spawn_portal().await;
    p.user("known@example.com", PW).await;
    let before = p.mails().len();
    let known = ask(&p, "known@example.com").await;
    let unknown = ask(&p, "unknown@example.com").await;
    let malformed = ask(&p, "not an address").await;
    for (r, email) in [
        (&known, "known@example.com"),
        (&unknown, "unknown@example.com"),
        (&malformed, "not an address"),
    ] {
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            without_token(&r.body.replace(email, "ADDRESS")),
            without_token(&known.body.replace("known@example.com", "ADDRESS")),
            "{email}"
        );
    }
    p.wait_for_mails(before + 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let mails = p.mails();
    assert_eq!(mails.len(), before + 1, "one mail, to the account");
    assert!(
        mails.iter().all(|m| !m.contains("unknown@example.com")),
        "nothing to an address without an account"
    );
}

#[actix_web::test]
async fn reset_requests_are_limited_per_address_and_per_client() {
    let p = spawn_portal_with(|s| s.ratelimit.reset_per_client = 5).await;
    for _ in 0..3 {
        assert_eq!(ask(&p, "target@example.com").await.status, StatusCode::OK);
    }
    let r = ask(&p, "TARGET@example.com").await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per address, any spelling"
    );
    assert!(r.header("retry-after").is_some());
    assert_eq!(ask(&p, "someone@example.com").await.status, StatusCode::OK);
    assert_eq!(
        ask(&p, "else@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per client network: five requests"
    );
}

#[actix_web::test]
async fn a_refused_password_keeps_the_link_and_hostile_links_are_400() {
    let p = spawn_portal().await;
    p.user("careful@example.com", PW).await;
    ask(&p, "careful@example.com").await;
    let link = reset_path(&p, "careful@example.com");
    let b = p.browser();
    b.get(&link).await;
    let r = b
        .post_form(
            &link,
            &[("password", "short"), ("password_confirm", "short")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = b
        .post_form(
            &link,
            &[("password", NEW), ("password_confirm", "something else")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b.get(&link).await.status, StatusCode::OK, "still usable");
    for bad in [
        "/password/reset/x".to_owned(),
        "/password/reset/..%2F..%2Fetc%2Fpasswd".to_owned(),
        format!("/password/reset/{}", "A".repeat(4000)),
        format!("{link}x"),
        p.verification_path("careful@example.com")
            .replace("/verify/", "/password/reset/"),
    ] {
        let r = p.browser().get(&bad).await;
        assert!(
            r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND,
            "{bad:.60}: {}",
            r.status
        );
    }
    assert_eq!(
        try_login(&p, "careful@example.com", PW).await,
        StatusCode::SEE_OTHER,
        "nothing changed"
    );
}

#[actix_web::test]
async fn ten_parallel_uses_of_one_link_set_one_password() {
    let p = spawn_portal().await;
    p.user("racer@example.com", PW).await;
    ask(&p, "racer@example.com").await;
    let link = reset_path(&p, "racer@example.com");
    let browsers: Vec<_> = (0..10).map(|_| p.browser()).collect();
    for b in &browsers {
        b.get(&link).await;
    }
    let statuses = futures_util::future::join_all(browsers.iter().enumerate().map(|(i, b)| {
        let link = link.clone();
        async move {
            let pw = format!("{NEW} {i}");
            b.post_form(&link, &[("password", &pw), ("password_confirm", &pw)])
                .await
                .status
        }
    }))
    .await;
    let won: Vec<usize> = statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == StatusCode::SEE_OTHER)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(won.len(), 1, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::BAD_REQUEST));
    let winner = format!("{NEW} {}", won[0]);
    assert_eq!(
        try_login(&p, "racer@example.com", &winner).await,
        StatusCode::SEE_OTHER
    );
}

/// An operator's template directory replaces a message's text without a rebuild; the link is
/// still the one the portal made.
#[actix_web::test]
async fn an_operators_template_replaces_the_reset_mail() {
    let templates = tempfile::tempdir().unwrap();
    std::fs::write(
        templates.path().join("password_reset.txt"),
        "Subject: Réinitialiser le mot de passe\n\nBonjour,\n\n{{ url }}/password/reset/{{ token }}\n\nValable {{ minutes }} minutes.\n",
    )
    .unwrap();
    let dir = templates.path().to_owned();
    let p = spawn_portal_with(move |s| s.mail.templates_dir = dir).await;
    p.user("french@example.com", PW).await;
    assert_eq!(ask(&p, "french@example.com").await.status, StatusCode::OK);
    let mail = p
        .mail_to("french@example.com", "Valable 60 minutes")
        .expect("the operator's text");
    assert!(mail.contains("Bonjour"), "{mail}");
    let link = reset_path(&p, "french@example.com");
    assert_eq!(
        p.browser().get(&link).await.status,
        StatusCode::OK,
        "a live link"
    );
}

/// The production mail path: a relay configured, the reset mail queued and delivered by the
/// courier over STARTTLS with authentication to a real SMTP server, and its link works.
#[actix_web::test]
async fn with_a_relay_the_reset_mail_arrives_over_smtp() {
    use phaze_testkit::smtp::{certificates, tools, Server};
    let Some(python) = tools() else { return };
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let server = Server::start(
        &python,
        &[
            "--starttls",
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            "--auth",
            "portal:relay-pass",
        ],
    );
    let port = server.port;
    let p = spawn_portal_with(move |s| {
        s.mail.smtp = phaze_smtp::SmtpSettings {
            host: "localhost".into(),
            port,
            security: phaze_smtp::SmtpSecurity::Starttls,
            username: "portal".into(),
            password: "relay-pass".to_owned().into(),
            timeout_secs: 5,
            ca_file: ca,
        };
    })
    .await;
    // The account's own confirmation link went through the relay too.
    let b = p.browser();
    b.get("/register").await;
    b.post_form(
        "/register",
        &[
            ("email", "relayed@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
    )
    .await;
    let confirm = wait_for(&server, 1).await;
    let link = phaze_e2e::link_in(&confirm[0]).expect("a confirmation link");
    assert_eq!(b.get(&link).await.status, StatusCode::SEE_OTHER);

    assert_eq!(ask(&p, "relayed@example.com").await.status, StatusCode::OK);
    let mails = wait_for(&server, 2).await;
    let reset = &mails[1];
    assert!(reset.contains("Subject: Reset your password"), "{reset}");
    assert!(reset.contains("X-Envelope-To: relayed@example.com"));
    let start = reset.find("/password/reset/").unwrap();
    let link = reset[start..].split_whitespace().next().unwrap().to_owned();
    let b = p.browser();
    assert_eq!(b.get(&link).await.status, StatusCode::OK);
    let r = b
        .post_form(&link, &[("password", NEW), ("password_confirm", NEW)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        p.mails().is_empty(),
        "nothing left in the outbox: the relay had it all"
    );
}

/// The server's messages once it has `n`, waiting up to ten seconds.
async fn wait_for(server: &phaze_testkit::smtp::Server, n: usize) -> Vec<String> {
    for _ in 0..100 {
        let got = server.received();
        if got.len() >= n {
            return got;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the relay got {} of {n} messages", server.received().len());
}
