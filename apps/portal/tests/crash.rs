//! `kill -9` in the middle of a burst of writes, on the embedded default (the fs store), then a
//! restart: every record still opens, nothing is half-written or duplicated, and every write the
//! portal acknowledged is there.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::http::StatusCode;
use phaze_e2e::Browser;
use phaze_testkit::free_port;
use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

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

/// The same cookies and CSRF token in a browser of its own.
fn same_browser(b: &Browser, base: &str) -> Browser {
    let other = Browser::new(base);
    *other.jar.borrow_mut() = b.jar.borrow().clone();
    *other.csrf.borrow_mut() = b.csrf.borrow().clone();
    other
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
    let mut portal = start(&data, port);
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

    // 1,000 writes, eight at a time: device additions (record, owner entry, address slot),
    // registrations (pending tokens, mail files) and logins (session records). The process is
    // killed once 300 device additions were acknowledged.
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut killed = false;
    for chunk in 0..125 {
        let batch = (0..8).map(|k| {
            let i = chunk * 8 + k;
            let (b, acknowledged, done) =
                (same_browser(&b, &base), acknowledged.clone(), done.clone());
            let base = base.clone();
            async move {
                let status = match i % 4 {
                    0 | 1 => {
                        let name = format!("device {i}");
                        let r = b.post_form("/account/devices", &[("name", &name)]).await;
                        if r.status == StatusCode::SEE_OTHER {
                            acknowledged.lock().unwrap().push(name);
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        r.status
                    }
                    2 => {
                        let other = Browser::new(&base);
                        other.get("/register").await;
                        let email = format!("burst{i}@example.com");
                        other
                            .post_form(
                                "/register",
                                &[
                                    ("email", &email),
                                    ("password", PW),
                                    ("password_confirm", PW),
                                ],
                            )
                            .await
                            .status
                    }
                    _ => {
                        let other = Browser::new(&base);
                        other.get("/login").await;
                        other
                            .post_form(
                                "/login",
                                &[("email", "crash@example.com"), ("password", PW)],
                            )
                            .await
                            .status
                    }
                };
                status
            }
        });
        futures_util::future::join_all(batch).await;
        if done.load(Ordering::SeqCst) >= 300 {
            portal.kill().unwrap(); // SIGKILL: no shutdown, no flush
            portal.wait().unwrap();
            killed = true;
            break;
        }
    }
    assert!(killed, "the burst reached 300 acknowledged additions");

    // Restart on the same directory.
    let mut portal = start(&data, port);
    phaze_e2e::wait_ready(&base).await;
    let b = Browser::new(&base);
    b.login("crash@example.com", PW).await;
    let page = b.get("/account/devices").await;
    assert_eq!(page.status, StatusCode::OK, "every device record opens");
    let listed = devices(&page.body);
    let names: HashSet<&str> = listed.iter().map(|(n, _)| n.as_str()).collect();
    for name in acknowledged.lock().unwrap().iter() {
        assert!(
            names.contains(name.as_str()),
            "acknowledged {name} is there"
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
