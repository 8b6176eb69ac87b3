//! Operations, on the real binary: each security event the review names, triggered over HTTP,
//! is one line of the JSON log and one increment in `/metrics`; `/metrics` is the 404 of an
//! unknown path to anyone not allowed; the shipped fail2ban filter matches the failed-login line
//! the portal really wrote, and nothing in a log without failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use awc::http::StatusCode;
use phaze_e2e::Browser;
use phaze_testkit::free_port;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery staple";
const TOKEN: &str = "metrics-token-0123456789abcdef0123";

/// A `phaze-portal serve` process writing JSON logs to a file, killed on drop.
struct Portal {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Portal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(data: &Path, metrics_networks: &str) -> Portal {
    let port = free_port();
    let log = data.join("portal.log");
    let child = Command::new(env!("CARGO_BIN_EXE_phaze-portal"))
        .env("PHAZE__HTTP__PORT", port.to_string())
        .env("PHAZE__STORE__DATA_DIR", data)
        .env("PHAZE__AUTH__ARGON2_M_KIB", "64")
        .env("PHAZE__AUTH__ARGON2_T", "1")
        .env("PHAZE__LOG__FORMAT", "json")
        .env("PHAZE__LOG__FILTER", "info")
        .env("PHAZE__METRICS__ALLOW_NETWORKS", metrics_networks)
        .env("PHAZE__METRICS__BEARER_TOKEN", TOKEN)
        .env("PHAZE__RATELIMIT__RESET_PER_CLIENT", "1")
        .env(
            "PHAZE__PAYMENTS__WEBHOOK_SECRETS",
            "whsec_operations_test_0123456789",
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(File::create(&log).unwrap()))
        .spawn()
        .expect("the portal binary starts");
    let portal = Portal {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let client = awc::Client::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(res) = client.get(format!("{}/healthz", portal.base)).send().await {
            if res.status().is_success() {
                return portal;
            }
        }
        assert!(Instant::now() < deadline, "portal did not come up");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Portal {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Log lines of security event `kind`.
    fn events(&self, kind: &str) -> Vec<String> {
        let needle = format!("\"fields\":{{\"event\":\"{kind}\"");
        self.log_text()
            .lines()
            .filter(|l| l.contains(&needle) && l.contains("\"target\":\"security\""))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the log holds `n` lines of `kind` (stdout is written as the events happen,
    /// but the file is read by another process).
    async fn wait_events(&self, kind: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.events(kind);
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn metrics(&self) -> String {
        let b = Browser::new(&self.base);
        let r = b.get("/metrics").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r.body
    }
}

fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn kind(metrics: &str, kind: &str) -> f64 {
    series(
        metrics,
        &format!("phaze_security_events_total{{kind=\"{kind}\"}}"),
    )
    .unwrap()
}

/// Registers and confirms `email`, then logs in: a browser with a session.
async fn user(p: &Portal, data: &Path, email: &str) -> Browser {
    let b = Browser::new(&p.base);
    b.get("/register").await;
    let r = b
        .post_form(
            "/register",
            &[("email", email), ("password", PW), ("password_confirm", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let link = phaze_e2e::verification_path(&data.join("outbox"), email);
    assert_eq!(b.get(&link).await.status, StatusCode::SEE_OTHER);
    b.login(email, PW).await;
    b
}

fn fail2ban_regex(log: &Path) -> Option<(usize, String)> {
    let regex = ["/usr/bin/fail2ban-regex", "/usr/local/bin/fail2ban-regex"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(regex) = regex else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "fail2ban-regex is missing under CI (.ci/run installs the fail2ban package)"
        );
        eprintln!("skipped: fail2ban-regex is not installed (apt-get install fail2ban)");
        return None;
    };
    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../ops/fail2ban/filter.d/phaze.conf");
    let out = Command::new(regex)
        .arg(log)
        .arg(filter.canonicalize().unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let matched = text
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix("Lines: ")?;
            let (_, after) = rest.split_once(" ignored, ")?;
            after.split(' ').next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("no summary in:\n{text}"));
    Some((matched, text))
}

#[actix_web::test]
async fn each_event_of_the_review_is_one_log_line_and_one_count_and_fail2ban_reads_the_real_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = start(dir.path(), "127.0.0.1/32").await;
    let alice = user(&p, dir.path(), "alice@example.com").await;
    let before = p.metrics().await;
    for k in [
        "login_failure",
        "rate_limited",
        "csrf_failure",
        "webhook_signature_failure",
        "lock_timeout",
    ] {
        assert_eq!(kind(&before, k), 0.0, "{k} before");
    }
    // A log of normal use: a registration, a confirmation, a login, pages. fail2ban finds nothing.
    let clean = dir.path().join("clean.log");
    std::fs::copy(&p.log, &clean).unwrap();
    assert_eq!(p.events("login_success").len(), 1);

    // 1. A failed login.
    let mallory = Browser::new(&p.base);
    mallory.get("/login").await;
    let r = mallory
        .post_form(
            "/login",
            &[
                ("email", "alice@example.com"),
                ("password", "wrong password!!"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let lines = p.wait_events("login_failure", 1).await;
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("\"client\":\"127.0.0.1\""),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("\"span\":{") && lines[0].contains("\"id\":\""),
        "request id: {}",
        lines[0]
    );
    assert!(
        !lines[0].contains("alice") && !lines[0].contains("wrong password"),
        "{}",
        lines[0]
    );

    // 2. A rate-limit hit: one reset request per client allowed, the second refused.
    let m = Browser::new(&p.base);
    m.get("/password/forgot").await;
    let r = m
        .post_form("/password/forgot", &[("email", "a@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = m
        .post_form("/password/forgot", &[("email", "b@example.com")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);

    // 3. A CSRF failure: a form without its token.
    let r = m
        .post_form(
            "/login",
            &[
                ("email", "x@example.com"),
                ("password", "x"),
                ("csrf_token", ""),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // 4. A webhook with a bad signature.
    let r = m
        .post_raw(
            "/webhooks/stripe",
            "application/json",
            br#"{"id":"evt_1","type":"invoice.paid"}"#.to_vec(),
            &[("stripe-signature", "t=1,v1=00")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    // 5. A file-lock timeout: another process holds every account lock shard while Alice changes
    // her display name; after the bounded wait the request is a 503.
    let locks = dir.path().join("accounts/locks");
    let held: Vec<File> = (0..=255u8)
        .map(|i| {
            let f = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(locks.join(format!("{i:02x}.lock")))
                .unwrap();
            f.lock().unwrap();
            f
        })
        .collect();
    alice.get("/account").await;
    let r = alice
        .post_form("/account/profile", &[("display_name", "Alice")])
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    drop(held);

    // Each once in the log and once in the metrics.
    for k in [
        "rate_limited",
        "csrf_failure",
        "webhook_signature_failure",
        "lock_timeout",
    ] {
        let lines = p.wait_events(k, 1).await;
        assert_eq!(lines.len(), 1, "{k}: {lines:?}");
    }
    let lock_line = &p.events("lock_timeout")[0];
    assert!(
        lock_line.contains("accounts/locks/") && lock_line.contains("\"count\":5000"),
        "{lock_line}"
    );
    let after = p.metrics().await;
    for k in [
        "login_failure",
        "rate_limited",
        "csrf_failure",
        "webhook_signature_failure",
        "lock_timeout",
    ] {
        assert_eq!(kind(&after, k), 1.0, "{k}");
    }
    assert_eq!(
        series(
            &after,
            "phaze_login_failures_by_client_total{client=\"127.0.0.1\"}"
        ),
        Some(1.0)
    );
    assert!(
        series(
            &after,
            "phaze_http_request_duration_seconds_count{method=\"POST\",route=\"/login\",status=\"4xx\"}"
        ) == Some(2.0),
        "{after}"
    );

    // fail2ban: the one real failure line, and nothing in the clean log.
    if let Some((matched, text)) = fail2ban_regex(&p.log) {
        assert_eq!(matched, 1, "{text}");
        assert!(text.contains("127.0.0.1"), "{text}");
        let (clean_matched, text) = fail2ban_regex(&clean).unwrap();
        assert_eq!(clean_matched, 0, "{text}");
    }
}

#[actix_web::test]
async fn metrics_are_the_unknown_path_404_to_anyone_not_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Only another network is allowed: this client needs the token.
    let p = start(dir.path(), "10.0.0.0/8").await;
    let unknown = Browser::new(&p.base).get("/no-such-page").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(&*format!("Bearer {TOKEN}x")),
        Some(&*format!("Basic {TOKEN}")),
    ] {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
        // A new browser each time, as the unknown path had: the same cookies are set.
        let r = Browser::new(&p.base).get_with("/metrics", &headers).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{auth:?}");
        assert_eq!(r.body, unknown.body, "{auth:?}: the same page");
        let names = |h: &awc::http::header::HeaderMap| {
            let mut v: Vec<String> = h.keys().map(|k| k.to_string()).collect();
            v.sort();
            v
        };
        assert_eq!(
            names(&r.headers),
            names(&unknown.headers),
            "{auth:?}: the same headers"
        );
    }
    let bearer = format!("Bearer {TOKEN}");
    let r = Browser::new(&p.base)
        .get_with("/metrics", &[("authorization", &bearer)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.body.contains("# TYPE phaze_security_events counter"),
        "{}",
        r.body
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
}
