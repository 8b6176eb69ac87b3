//! `kill -9` in the middle of a burst of writes, on the embedded default (the fs store), then a
//! restart: every record still opens, nothing is half-written or duplicated, and every write the
//! portal acknowledged is there: each device whose addition answered 303, and each session a
//! login that answered 303 started. (A registration's answer promises nothing stored: its work
//! runs after the answer, by design.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::http::StatusCode;
use futures_util::StreamExt;
use phaze_e2e::Browser;
use phaze_testkit::free_port;
use std::cell::RefCell;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const PW: &str = "correct horse battery staple";

fn start(data: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .env("PHAZE__HTTP__PORT", port.to_string())
        .env("PHAZE__STORE__DATA_DIR", data)
        .env("PHAZE__AUTH__ARGON2_M_KIB", "64")
        .env("PHAZE__AUTH__ARGON2_T", "1")
        .env("PHAZE__RATELIMIT__POST_PER_CLIENT", "100000")
        .env("PHAZE__RATELIMIT__LOGIN_PER_CLIENT", "100000")
        .env("PHAZE__RATELIMIT__REGISTER_PER_CLIENT", "100000")
        .env("PHAZE__RATELIMIT__VERIFY_PER_CLIENT", "100000")
        .env(
            "PHAZE__DEVICES__SERVER_PUBLIC_KEY",
            "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
        )
        .env("PHAZE__DEVICES__ENDPOINT", "vpn.example.com:51820")
        .env("PHAZE__DEVICES__PROVISIONER", "memory")
        .env("PHAZE__DEVICES__LIMIT_PER_ACCOUNT", "5000")
        .env("PHAZE__LOG__FILTER", "error")
        .stdout(Stdio::null())
        .spawn()
        .expect("the portal binary starts")
}

/// The device names on the account's page, and their IPv4 addresses.
fn devices(page: &str) -> Vec<(String, String)> {
    page.split("data-label=\"Name\"><span class=\"break-anywhere\">")
        .skip(1)
        .map(|row| {
            let name = row.split('<').next().unwrap_or_default().to_owned();
            let v4 = row
                .split("data-label=\"Addresses\"><span class=\"mono break-word\">")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .unwrap_or_default()
                .to_owned();
            (name, v4)
        })
        .collect()
}

#[actix_web::test]
async fn a_process_killed_during_a_burst_of_writes_loses_nothing_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let portal = start(&data, port);
    phaze_e2e::wait_ready(&base).await;

    let b = Browser::new(&base);
    b.get("/register").await;
    b.post_form(
        "/register",
        &[
            ("email", "crash@example.com"),
            ("password", PW),
            ("password_confirm", PW),
        ],
    )
    .await;
    let link = phaze_e2e::verification_path(&data.join("outbox"), "crash@example.com");
    b.get(&link).await;
    b.login("crash@example.com", PW).await;
    b.get("/account/devices").await;

    // 1,000 writes, eight in flight at any time: device additions (record, owner entry, address
    // slot), registrations (pending tokens, mail files) and logins (session records). The process
    // is killed from inside the burst, with requests in flight, once 300 device additions were
    // acknowledged; what fails after that is expected to.
    let session = b
        .jar
        .borrow()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let csrf = b.csrf.borrow().clone();
    let (register_cookie, register_token) = phaze_e2e::anonymous_token(&base, "/register").await;
    let (login_cookie, login_token) = phaze_e2e::anonymous_token(&base, "/login").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let acknowledged = RefCell::new(Vec::new());
    let logins = RefCell::new(Vec::<String>::new());
    let portal = RefCell::new(Some(portal));
    let writes = futures_util::stream::iter(0..1000).map(|i| {
        let (client, base) = (&client, &base);
        let (session, csrf) = (&session, &csrf);
        let (register_cookie, register_token) = (&register_cookie, &register_token);
        let (login_cookie, login_token) = (&login_cookie, &login_token);
        let (acknowledged, portal, logins) = (&acknowledged, &portal, &logins);
        async move {
            let (cookie, form): (&str, Vec<(&str, String)>) = match i % 4 {
                0 | 1 => (
                    session,
                    vec![
                        ("name", format!("device {i}")),
                        ("csrf_token", csrf.clone()),
                    ],
                ),
                2 => (
                    register_cookie,
                    vec![
                        ("email", format!("burst{i}@example.com")),
                        ("password", PW.to_owned()),
                        ("password_confirm", PW.to_owned()),
                        ("csrf_token", register_token.clone()),
                    ],
                ),
                _ => (
                    login_cookie,
                    vec![
                        ("email", "crash@example.com".to_owned()),
                        ("password", PW.to_owned()),
                        ("csrf_token", login_token.clone()),
                    ],
                ),
            };
            let path = [
                "/account/devices",
                "/account/devices",
                "/register",
                "/login",
            ][i % 4];
            let sent = client
                .post(format!("{base}{path}"))
                .insert_header(("cookie", cookie.to_owned()))
                .send_form(&form)
                .await;
            let Ok(response) = sent else { return };
            let ok = response.status() == StatusCode::SEE_OTHER;
            if ok && i % 4 == 3 {
                // An acknowledged login: its new session must survive the crash.
                let cookie = response
                    .headers()
                    .get_all("set-cookie")
                    .filter_map(|v| v.to_str().ok())
                    .find(|c| c.starts_with("phaze_session="))
                    .and_then(|c| c.split(';').next())
                    .map(str::to_owned);
                if let Some(cookie) = cookie {
                    logins.borrow_mut().push(cookie);
                }
            }
            if ok && i % 4 < 2 {
                let mut acked = acknowledged.borrow_mut();
                acked.push(format!("device {i}"));
                if acked.len() == 300 {
                    if let Some(mut child) = portal.borrow_mut().take() {
                        child.kill().unwrap(); // SIGKILL: no shutdown, no flush
                        child.wait().unwrap();
                    }
                }
            }
        }
    });
    writes.buffer_unordered(8).collect::<Vec<()>>().await;
    if let Some(mut child) = portal.borrow_mut().take() {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("the burst ended before 300 additions were acknowledged");
    }
    let acknowledged = acknowledged.into_inner();

    // Restart on the same directory.
    let mut portal = start(&data, port);
    phaze_e2e::wait_ready(&base).await;
    let b = Browser::new(&base);
    b.login("crash@example.com", PW).await;
    let page = b.get("/account/devices").await;
    assert_eq!(page.status, StatusCode::OK, "every device record opens");
    let listed = devices(&page.body);
    let names: HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    assert!(acknowledged.len() >= 300);
    for name in &acknowledged {
        assert!(
            names.contains(name.as_str()),
            "acknowledged {name} is there"
        );
    }
    // Every session an acknowledged login started still works.
    let logins = logins.into_inner();
    assert!(!logins.is_empty(), "some logins were acknowledged");
    for cookie in &logins {
        let r = client
            .get(format!("{base}/account"))
            .insert_header(("cookie", cookie.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "the session of an acknowledged login survived"
        );
    }
    let addresses: HashSet<&str> = listed.iter().map(|(_, a)| a.as_str()).collect();
    assert_eq!(addresses.len(), listed.len(), "no address twice");
    // And the portal goes on writing: a new device gets an address nobody has.
    b.get("/account/devices").await;
    let r = b
        .post_form("/account/devices", &[("name", "after the crash")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = devices(&b.get("/account/devices").await.body);
    let fresh = after.iter().find(|(n, _)| n == "after the crash").unwrap();
    assert!(!addresses.contains(fresh.1.as_str()));
    portal.kill().unwrap();
    portal.wait().unwrap();
}
