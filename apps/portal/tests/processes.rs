//! The real binary, several processes, one data directory: what holds across processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use phaze_testkit::free_port;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery staple";

/// A `phaze-portal serve` process, killed on drop.
struct Portal {
    child: Child,
    base: String,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process that owns `data` alone (the default).
async fn start(data: &Path) -> Portal {
    start_with(data, false).await
}

/// One of several processes sharing `data` (`store.share_data_dir`).
async fn start_shared(data: &Path) -> Portal {
    start_with(data, true).await
}

async fn start_with(data: &Path, shared: bool) -> Portal {
    start_env(data, shared, &[]).await
}

async fn start_env(data: &Path, shared: bool, env: &[(&str, &str)]) -> Portal {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .envs(env.iter().copied())
        .env("PHAZE__HTTP__PORT", port.to_string())
        .env("PHAZE__STORE__DATA_DIR", data)
        .env("PHAZE__STORE__SHARE_DATA_DIR", shared.to_string())
        .env("PHAZE__AUTH__ARGON2_M_KIB", "64")
        .env("PHAZE__AUTH__ARGON2_T", "1")
        .env("PHAZE__LOG__FILTER", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the portal binary starts");
    let portal = Portal {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let client = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(res) = client.get(format!("{}/healthz", portal.base)).send().await {
            if res.status().is_success() {
                return portal;
            }
        }
        assert!(
            Instant::now() < deadline,
            "portal on port {port} did not come up"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Loads `/register` (for the CSRF cookie and token), then posts the form.
async fn register(base: &str, email: &str, password: &str) -> u16 {
    let (cookie, token) = phaze_e2e::anonymous_token(base, "/register").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let form = [
        ("email", email),
        ("password", password),
        ("password_confirm", password),
        ("csrf_token", token.as_str()),
    ];
    let res = client
        .post(format!("{base}/register"))
        .insert_header(("cookie", cookie))
        .send_form(&form)
        .await
        .unwrap();
    res.status().as_u16()
}

/// The confirmation links mailed so far, as paths, oldest mail first.
fn links(outbox: &Path) -> Vec<String> {
    phaze_e2e::outbox_mails(outbox)
        .iter()
        .filter_map(|m| phaze_e2e::link_in(m))
        .collect()
}

/// Registers `email` and opens its confirmation link: the account exists afterwards.
async fn register_confirmed(base: &str, data: &Path, email: &str) {
    assert_eq!(register(base, email, PW).await, 200);
    let link = phaze_e2e::verification_path(&data.join("outbox"), email);
    assert_eq!(open(base, &link).await, 303, "{email}: {link}");
}

/// `GET base+path`, redirects not followed: the status.
async fn open(base: &str, path: &str) -> u16 {
    let client = awc::Client::builder().disable_redirects().finish();
    let res = client.get(format!("{base}{path}")).send().await.unwrap();
    res.status().as_u16()
}

fn mails(outbox: &Path) -> Vec<String> {
    std::fs::read_dir(outbox)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .map(|p| std::fs::read_to_string(p).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

#[actix_web::test]
async fn two_processes_on_one_data_directory_keep_one_live_link_and_make_one_account() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        start_shared(dir.path()).await,
        start_shared(dir.path()).await,
    );
    // Both processes started on an empty directory: they must agree on one set of keys.
    let statuses = futures_util::future::join_all((0..8).map(|i| {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        async move { register(&base, "race@example.com", &format!("{PW} {i}")).await }
    }))
    .await;
    assert_eq!(
        statuses,
        vec![200; 8],
        "identical answers whatever happened"
    );
    // Eight pending registrations, each mailed its link; no account before a link is used.
    let outbox = dir.path().join("outbox");
    phaze_e2e::wait_for_mails(&outbox, 8);
    let links = links(&outbox);
    assert_eq!(links.len(), 8);
    let accounts = || {
        std::fs::read_dir(dir.path().join("accounts/records"))
            .unwrap()
            .count()
    };
    assert_eq!(accounts(), 0, "pending until a link is used");
    // Only the newest link of the address lives, whichever process issued it.
    let mut used = 0;
    for (i, link) in links.iter().enumerate() {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        used += usize::from(open(base, link).await == 303);
    }
    assert_eq!(used, 1, "one link creates the account");
    assert_eq!(accounts(), 1);
    assert!(mails(&outbox).len() == 8, "no other mail");
    let keys: Vec<String> = ["session_key", "csrf_key", "token_pepper"]
        .iter()
        .map(|k| std::fs::read_to_string(dir.path().join("secrets").join(k)).unwrap())
        .collect();
    assert!(
        keys.iter().all(|k| k.trim().len() == 44),
        "three generated keys"
    );
}

#[actix_web::test]
async fn a_bad_configuration_stops_the_process_with_one_line_naming_the_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .env("PHAZE__HTTP__PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("http.port"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .arg("frobnicate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("usage:"));
}

#[actix_web::test]
async fn a_data_directory_in_use_stops_a_second_process_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let owner = start(dir.path()).await;
    register_confirmed(&owner.base, dir.path(), "first@example.com").await;
    let run = |args: &[&str], shared: bool| {
        Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .args(args)
            .env("PHAZE__HTTP__PORT", free_port().to_string())
            .env("PHAZE__STORE__DATA_DIR", dir.path())
            .env("PHAZE__STORE__SHARE_DATA_DIR", shared.to_string())
            .env("PHAZE__SECRETS__DIR", dir.path().join("other-secrets"))
            .env("PHAZE__LOG__FILTER", "warn")
            .output()
            .unwrap()
    };
    // A second server, owning or sharing, and an admin command: all refused while it runs.
    for (args, shared) in [
        (&["serve"][..], false),
        (&["serve"][..], true),
        (&["admin", "grant", "first@example.com"][..], false),
    ] {
        let out = run(args, shared);
        assert!(!out.status.success(), "{args:?} shared={shared}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("store.data_dir"), "{stderr}");
        assert!(stderr.contains("in use"), "{stderr}");
    }
    // The refused processes created nothing, not even keys in a directory of their own.
    assert!(!dir.path().join("other-secrets").exists());
    // The owner was not disturbed.
    assert_eq!(register(&owner.base, "second@example.com", PW).await, 200);
    drop(owner);
    // With the owner gone, the same command with the deployment's own secrets works.
    let out = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .args(["admin", "grant", "first@example.com"])
        .env("PHAZE__STORE__DATA_DIR", dir.path())
        .env("PHAZE__LOG__FILTER", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[actix_web::test]
async fn admin_grant_and_revoke_change_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = start(dir.path()).await;
        register_confirmed(&p.base, dir.path(), "op@example.com").await;
    }
    let admin = |action: &str, email: &str| {
        Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .args(["admin", action, email])
            .env("PHAZE__STORE__DATA_DIR", dir.path())
            .env("PHAZE__LOG__FILTER", "warn")
            .output()
            .unwrap()
    };
    let record = || {
        let entry = std::fs::read_dir(dir.path().join("accounts/records"))
            .unwrap()
            .next()
            .unwrap();
        std::fs::read_to_string(entry.unwrap().path()).unwrap()
    };
    let out = admin("grant", "OP@example.com");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(record().contains("\"is_admin\":true"));
    let out = admin("revoke", "op@example.com");
    assert!(out.status.success());
    assert!(record().contains("\"is_admin\":false"));
    let out = admin("grant", "nobody@example.com");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account"));
}

/// `phaze-portal audit verify` on the chain the admin commands wrote: intact, then each kind of
/// tampering with the files named at the first bad entry, with exit status 1.
#[actix_web::test]
async fn audit_verify_names_an_edited_a_removed_and_a_reordered_entry() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = start(dir.path()).await;
        register_confirmed(&p.base, dir.path(), "op@example.com").await;
    }
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .args(args)
            .env("PHAZE__STORE__DATA_DIR", dir.path())
            .env("PHAZE__LOG__FILTER", "warn")
            .output()
            .unwrap()
    };
    for action in ["grant", "revoke", "grant"] {
        assert!(run(&["admin", action, "op@example.com"]).status.success());
    }
    let verify = || {
        let out = run(&["audit", "verify"]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    assert_eq!(
        verify(),
        (Some(0), "audit log intact: 3 entries\n".to_owned())
    );
    let entries = dir.path().join("audit/entries");
    let file = |n: u64| entries.join(format!("{n:020}.json"));
    let original: Vec<String> = (1..=3)
        .map(|n| std::fs::read_to_string(file(n)).unwrap())
        .collect();
    let restore = || {
        for (i, text) in original.iter().enumerate() {
            std::fs::write(file(i as u64 + 1), text).unwrap();
        }
    };

    // Edited: the second grant made to look like a revoke.
    std::fs::write(file(3), original[2].replace("admin.grant", "admin.revoke")).unwrap();
    let (code, text) = verify();
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("broken at entry 3") && text.contains("changed"),
        "{text}"
    );
    restore();

    // Removed: the revoke is gone.
    std::fs::remove_file(file(2)).unwrap();
    let (code, text) = verify();
    assert_eq!(code, Some(1));
    assert!(
        text.contains("broken at entry 2") && text.contains("missing"),
        "{text}"
    );
    restore();

    // Reordered: entries 1 and 2 swap places.
    std::fs::write(file(1), &original[1]).unwrap();
    std::fs::write(file(2), &original[0]).unwrap();
    let (code, text) = verify();
    assert_eq!(code, Some(1));
    assert!(text.contains("broken at entry 1"), "{text}");
    restore();
    assert_eq!(verify().0, Some(0));
}

#[actix_web::test]
async fn two_processes_on_one_data_directory_share_the_login_budget_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        start_shared(dir.path()).await,
        start_shared(dir.path()).await,
    );
    assert_eq!(register(&a.base, "victim@example.com", PW).await, 200);
    // Both processes share the generated CSRF key, so one anonymous visit serves both.
    let (cookie, token) = phaze_e2e::anonymous_token(&a.base, "/login").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let statuses = futures_util::future::join_all((0..12).map(|i| {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        let form = [
            ("email", "victim@example.com"),
            ("password", "not the password"),
            ("csrf_token", token.as_str()),
        ];
        let req = client
            .post(format!("{base}/login"))
            .insert_header(("cookie", cookie.clone()));
        async move { req.send_form(&form).await.unwrap().status().as_u16() }
    }))
    .await;
    let judged = statuses.iter().filter(|s| **s == 401).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((judged, limited), (5, 7), "{statuses:?}");
}

#[actix_web::test]
async fn ten_uses_of_one_reset_link_over_three_processes_set_one_password() {
    let dir = tempfile::tempdir().unwrap();
    let p = [
        start_shared(dir.path()).await,
        start_shared(dir.path()).await,
        start_shared(dir.path()).await,
    ];
    register_confirmed(&p[0].base, dir.path(), "racer@example.com").await;
    let bases: Vec<&str> = p.iter().map(|p| p.base.as_str()).collect();
    phaze_e2e::one_reset_link_used_at_once_through(
        &bases,
        &dir.path().join("outbox"),
        "racer@example.com",
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Stripe webhooks across processes sharing one data directory.

use phaze_e2e::stripe::{
    checkout_completed, deliver, deliver_everywhere_until_acknowledged, payment_failed,
    random_user, retried_until_taken_over, unix_now,
};

/// The payment settings of these tests: the e2e webhook secret, a 5-second claim lease.
const PAYMENTS: [(&str, &str); 2] = [
    (
        "PHAZE__PAYMENTS__WEBHOOK_SECRETS",
        phaze_e2e::stripe::WEBHOOK_SECRET,
    ),
    ("PHAZE__PAYMENTS__CLAIM_LEASE_SECS", "5"),
];

/// The account's subscription record as the fs store keeps it: (version, status).
fn record(data: &Path, user: &str) -> Option<(u64, String)> {
    use sha2::Digest;
    let name = hex::encode(sha2::Sha256::digest(user.as_bytes()));
    let bytes = std::fs::read(data.join("payments/subscriptions").join(name)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    Some((
        v["version"].as_u64().unwrap(),
        v["record"]["status"].as_str().unwrap().to_owned(),
    ))
}

#[actix_web::test]
async fn twenty_deliveries_of_one_event_over_three_processes_take_effect_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let portals = [
        start_env(&data, true, &PAYMENTS).await,
        start_env(&data, true, &PAYMENTS).await,
        start_env(&data, true, &PAYMENTS).await,
    ];
    let user = random_user();
    let t = unix_now();
    let checkout = checkout_completed("evt_mp_checkout", t - 60, &user);
    let bases: Vec<&str> = portals.iter().map(|p| p.base.as_str()).collect();
    deliver_everywhere_until_acknowledged(&bases, &vec![checkout.clone(); 20]).await;
    assert_eq!(
        record(&data, &user),
        Some((1, "active".to_owned())),
        "one effect"
    );

    // A newer event through one process, then the older one again through the others.
    let failed = payment_failed("evt_mp_failed", t);
    assert_eq!(deliver(&portals[1].base, &failed).await, 200);
    assert_eq!(record(&data, &user), Some((2, "past_due".to_owned())));
    for p in &portals {
        assert_eq!(deliver(&p.base, &checkout).await, 200);
    }
    assert_eq!(
        record(&data, &user),
        Some((2, "past_due".to_owned())),
        "no rollback"
    );
}

#[actix_web::test]
async fn a_process_killed_while_it_holds_a_claim_leaves_it_to_the_retry_which_applies_it_once() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut holder = start_env(&data, true, &PAYMENTS).await;
    let other = start_env(&data, true, &PAYMENTS).await;
    let user = random_user();
    let body = checkout_completed("evt_mp_killed", unix_now(), &user);

    // Hold the shard lock of the account's record, so the holder's write waits on it.
    let record_name = hex::encode(sha2::Sha256::digest(user.as_bytes()));
    let lock = data.join(format!("payments/locks/{}.lock", &record_name[..2]));
    // `-o`: the lock stays with flock itself, not with its command, so killing flock releases
    // it; the command (`cat`) ends when its stdin closes.
    let mut flock = Command::new("flock")
        .arg("-o")
        .arg(&lock)
        .arg("cat")
        .stdin(Stdio::piped())
        .spawn()
        .expect("flock(1) from util-linux");
    let event_file = data
        .join("payments/events")
        .join(hex::encode(sha2::Sha256::digest(b"evt_mp_killed")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !lock.exists()
        || Command::new("flock")
            .args(["-n"])
            .arg(&lock)
            .arg("true")
            .status()
            .unwrap()
            .success()
    {
        assert!(Instant::now() < deadline, "flock never took the lock");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let base = holder.base.clone();
    let body2 = body.clone();
    let in_flight = actix_web::rt::spawn(async move {
        let signature = phaze_e2e::stripe::sign(&body2, unix_now());
        awc::Client::default()
            .post(format!("{base}/webhooks/stripe"))
            .insert_header(("stripe-signature", signature))
            .send_body(body2)
            .await
            .map(|r| r.status().as_u16())
    });
    // The holder has claimed the event and waits for the lock: kill -9 it there.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&event_file).is_ok_and(|s| s.contains("claimed")) {
        assert!(
            Instant::now() < deadline,
            "the holder never claimed the event"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    holder.child.kill().unwrap(); // SIGKILL
    holder.child.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the holder died mid-delivery"
    );
    flock.kill().unwrap();
    flock.wait().unwrap();
    drop(flock.stdin.take());
    assert_eq!(record(&data, &user), None, "nothing was applied");

    // Stripe retries: held while the dead holder's lease runs, then taken over and applied once.
    retried_until_taken_over(&other.base, &body).await;
    assert_eq!(record(&data, &user), Some((1, "active".to_owned())));
    assert_eq!(deliver(&other.base, &body).await, 200, "a duplicate now");
    assert_eq!(record(&data, &user), Some((1, "active".to_owned())));
}

/// Logs `email` in with [`PW`] from a new anonymous visit: the status (303 on success).
async fn login(base: &str, email: &str) -> u16 {
    let (cookie, token) = phaze_e2e::anonymous_token(base, "/login").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let form = [
        ("email", email),
        ("password", PW),
        ("csrf_token", token.as_str()),
    ];
    let res = client
        .post(format!("{base}/login"))
        .insert_header(("cookie", cookie))
        .send_form(&form)
        .await
        .unwrap();
    res.status().as_u16()
}

/// A key rotation as docs/operations.md describes it, on the real binary: with the new key second
/// on a serving process, `keys rotate` with the new key first re-seals every account, the
/// process still serves them, and then the old key can go. A key list that opens nothing is
/// refused with exit 1 and changes nothing. A process started with a newer first key re-seals
/// by itself, in the background.
#[actix_web::test]
async fn keys_rotate_reseals_every_account_while_a_portal_serves_and_the_old_key_can_go() {
    const OLD: &str = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=";
    const NEW: &str = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=";
    const OTHER: &str = "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzM=";
    const KEYS: &str = "PHAZE__SECRETS__SESSION_KEYS";
    // More logins from one client than the default budget allows.
    const LOGINS: &str = "PHAZE__RATELIMIT__LOGIN_PER_CLIENT";
    let dir = tempfile::tempdir().unwrap();
    {
        let p = start_env(dir.path(), true, &[(LOGINS, "100"), (KEYS, OLD)]).await;
        register_confirmed(&p.base, dir.path(), "ada@example.com").await;
        register_confirmed(&p.base, dir.path(), "bob@example.com").await;
    }
    let both = format!("{NEW},{OLD}");
    let rotate = |keys: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
            .args(["keys", "rotate"])
            .env("PHAZE__STORE__DATA_DIR", dir.path())
            .env("PHAZE__STORE__SHARE_DATA_DIR", "true")
            .env(KEYS, keys)
            .env("PHAZE__LOG__FILTER", "off")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    {
        let p = start_env(
            dir.path(),
            true,
            &[(LOGINS, "100"), (KEYS, &format!("{OLD},{NEW}"))],
        )
        .await;
        assert_eq!(login(&p.base, "ada@example.com").await, 303);
        let (code, out, err) = rotate(&both);
        assert_eq!(code, Some(0), "{out}{err}");
        assert_eq!(
            out,
            "accounts: 2 looked at, 2 sealed again under the newest key\n"
        );
        let (code, out, _) = rotate(&both);
        assert_eq!(
            (code, out.as_str()),
            (
                Some(0),
                "accounts: 2 looked at, 0 sealed again under the newest key\n"
            )
        );
        assert_eq!(
            login(&p.base, "bob@example.com").await,
            303,
            "still serving"
        );
    }
    let p = start_env(dir.path(), true, &[(LOGINS, "100"), (KEYS, NEW)]).await;
    for email in ["ada@example.com", "bob@example.com"] {
        assert_eq!(
            login(&p.base, email).await,
            303,
            "{email} without the old key"
        );
    }
    let (code, out, err) = rotate(OTHER);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("2 records hold data no configured key opens"),
        "{err}"
    );
    assert_eq!(
        login(&p.base, "ada@example.com").await,
        303,
        "nothing changed"
    );
    drop(p);

    // Started with a newer first key, a process re-seals by itself: soon the newest key alone
    // opens everything.
    let p = start_env(
        dir.path(),
        true,
        &[(LOGINS, "100"), (KEYS, &format!("{OTHER},{NEW}"))],
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, out, err) = rotate(OTHER);
        if code == Some(0) {
            assert_eq!(
                out,
                "accounts: 2 looked at, 0 sealed again under the newest key\n"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not re-sealed in 20 s: {out}{err}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(login(&p.base, "bob@example.com").await, 303);
}

/// A process whose token pepper (and so email index key) is not the one the accounts were
/// indexed with would find nobody and let an address register twice: it stops at start with
/// one line naming the key, and the right pepper still finds the account.
#[actix_web::test]
async fn another_token_pepper_stops_the_process_instead_of_losing_every_account() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = start(dir.path()).await;
        register_confirmed(&p.base, dir.path(), "ada@example.com").await;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .env("PHAZE__HTTP__PORT", free_port().to_string())
        .env("PHAZE__STORE__DATA_DIR", dir.path())
        .env(
            "PHAZE__SECRETS__TOKEN_PEPPER",
            "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk=",
        )
        .env("PHAZE__LOG__FILTER", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A process that starts anyway would serve forever: give it 20 s to stop by itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            child.kill().unwrap();
            panic!("the process started with another token pepper");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("secrets.token_pepper") && stderr.contains("index key"),
        "{stderr}"
    );
    let p = start(dir.path()).await;
    assert_eq!(login(&p.base, "ada@example.com").await, 303);
}
