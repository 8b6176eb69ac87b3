//! The cluster shape with real binaries: three portal processes on one PostgreSQL and one Redis.
//! Whatever a security property needs to share, they share; any request may reach any process.
//!
//! Needs PostgreSQL and Redis (`PHAZE_TEST_DATABASE_URL`, `PHAZE_TEST_REDIS_URL`); each test gets
//! its own schema and key prefix, so runs never collide. The servers (and `redis-server`, for the
//! outage test) are checked once before any test runs: outside CI the tests that need a missing
//! one are reported as ignored, with the reason; under `CI=true` they fail
//! (`phaze_testkit::harness`). A test is an `async fn` listed in `main`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::http::StatusCode;
use base64::Engine as _;
use phaze_e2e::Browser;
use phaze_testkit::free_port;
use phaze_testkit::harness::{self, Need, Test};
use rand::RngCore;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
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

/// One deployment: a schema, a key prefix, shared secrets, one outbox; processes added by
/// [`Cluster::start`]. The schema is dropped at the end.
struct Cluster {
    env: Vec<(String, String)>,
    dir: tempfile::TempDir,
    schema: String,
    redis: String,
    prefix: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Best effort: a leftover schema only costs space, and its name says it is a test's.
        let _ = Command::new("psql")
            .arg(phaze_testkit::database_url())
            .args([
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Sessions would otherwise linger for their lifetime plus an hour.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-cli -u "$1" --scan --pattern "$2*" | xargs -r redis-cli -u "$1" del"#)
            .args(["sh", &self.redis, &self.prefix])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn key() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn reachable(url: &str, default_port: u16) -> Result<(), String> {
    let host_port = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', '?']).next())
        .map(|hp| hp.rsplit('@').next().unwrap_or(hp).to_owned())
        .ok_or_else(|| format!("cannot read {url}"))?;
    let addr = if host_port.contains(':') {
        host_port
    } else {
        format!("{host_port}:{default_port}")
    };
    std::net::TcpStream::connect(&addr)
        .map(drop)
        .map_err(|e| format!("{addr}: {e}"))
}

impl Cluster {
    /// A migrated deployment (the harness checked that PostgreSQL and Redis answer).
    fn new() -> Self {
        Self::with_redis(&phaze_testkit::redis_url())
    }

    fn with_redis(redis_url: &str) -> Self {
        let db = phaze_testkit::database_url();
        if let Err(e) = reachable(&db, 5432) {
            phaze_testkit::server_unavailable("PostgreSQL", &e);
        }
        if let Err(e) = reachable(redis_url, 6379) {
            phaze_testkit::server_unavailable("Redis", &e);
        }
        let schema = format!("phaze_cluster_{}", random_hex(6));
        let prefix = format!("phaze-test:{}:", random_hex(6));
        let dir = tempfile::tempdir().unwrap();
        let env = [
            ("PHAZE__STORE__KIND", "postgres".to_owned()),
            ("PHAZE__STORE__POSTGRES__URL", db),
            ("PHAZE__STORE__POSTGRES__SCHEMA", schema.clone()),
            ("PHAZE__STORE__REDIS__URL", redis_url.to_owned()),
            ("PHAZE__STORE__REDIS__PREFIX", prefix.clone()),
            ("PHAZE__SECRETS__SESSION_KEYS", key()),
            ("PHAZE__SECRETS__CSRF_KEY", key()),
            ("PHAZE__SECRETS__TOKEN_PEPPER", key()),
            (
                "PHAZE__MAIL__OUTBOX_DIR",
                dir.path().join("outbox").display().to_string(),
            ),
            ("PHAZE__AUTH__ARGON2_M_KIB", "64".to_owned()),
            ("PHAZE__AUTH__ARGON2_T", "1".to_owned()),
            ("PHAZE__HTTP__WORKERS", "2".to_owned()),
            ("PHAZE__LOG__FILTER", "warn".to_owned()),
            (
                "PHAZE__DEVICES__SERVER_PUBLIC_KEY",
                "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_owned(),
            ),
            (
                "PHAZE__DEVICES__ENDPOINT",
                "vpn.example.com:51820".to_owned(),
            ),
            ("PHAZE__DEVICES__PROVISIONER", "memory".to_owned()),
            ("PHAZE__DEVICES__LIMIT_PER_ACCOUNT", "10".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let cluster = Self {
            env,
            dir,
            schema,
            redis: redis_url.to_owned(),
            prefix,
        };
        let out = cluster.command().arg("migrate").output().unwrap();
        assert!(
            out.status.success(),
            "migrate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_phaze-portal"));
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("PHAZE__STORE__DATA_DIR", self.dir.path().join("data"));
        cmd
    }

    /// Three processes on the cluster, one after the other.
    async fn start_three(&self) -> [Portal; 3] {
        [self.start().await, self.start().await, self.start().await]
    }

    /// Starts one more process and waits until it answers.
    async fn start(&self) -> Portal {
        let port = free_port();
        let child = self
            .command()
            .env("PHAZE__HTTP__PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("the portal binary starts");
        let portal = Portal {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        phaze_e2e::wait_ready(&portal.base).await;
        portal
    }
}

/// The same cookies, sent to another process.
fn same_browser_on(b: &Browser, base: &str) -> Browser {
    let other = Browser::new(base);
    *other.jar.borrow_mut() = b.jar.borrow().clone();
    *other.csrf.borrow_mut() = b.csrf.borrow().clone();
    other
}

/// Registers through `base`, verifies, logs in; returns the logged-in browser.
async fn user(cluster: &Cluster, base: &str, email: &str) -> Browser {
    let b = verified(cluster, base, email).await;
    b.login(email, PW).await;
    b
}

/// Registers through `base` and verifies (no login: that would spend the client's login budget).
async fn verified(cluster: &Cluster, base: &str, email: &str) -> Browser {
    let b = Browser::new(base);
    b.get("/register").await;
    let r = b
        .post_form(
            "/register",
            &[("email", email), ("password", PW), ("password_confirm", PW)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = b
        .get(&phaze_e2e::verification_path(&cluster.outbox(), email))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    b
}

async fn a_session_from_one_process_works_on_all_and_its_logout_ends_it_everywhere() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    let on0 = user(&cluster, &p[0].base, "roam@example.com").await;
    let id = on0.cookie("phaze_session").unwrap();
    for portal in &p {
        let b = same_browser_on(&on0, &portal.base);
        let r = b.get("/account").await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", portal.base, r.body);
        assert!(r.body.contains("roam@example.com"));
    }
    let on1 = same_browser_on(&on0, &p[1].base);
    on1.get("/account").await;
    let r = on1.post_form("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for portal in &p {
        let replay = Browser::new(&portal.base);
        replay.set_cookie("phaze_session", &id);
        let r = replay.get("/account").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", portal.base);
        assert!(r.location().unwrap().starts_with("/login"));
    }
}

/// Every process caches the accounts it shows (`store.postgres.account_cache_size`): a profile
/// change made through one process must show on the others at once, not after a minute.
async fn a_profile_change_through_one_process_shows_on_every_other() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    let on0 = user(&cluster, &p[0].base, "profile@example.com").await;
    // Each process shows (and caches) the account once.
    for portal in &p {
        let r = same_browser_on(&on0, &portal.base).get("/account").await;
        assert_eq!(r.status, StatusCode::OK, "{}: {}", portal.base, r.body);
        assert!(!r.body.contains("Grace Hopper"));
    }
    on0.get("/account").await;
    let r = on0
        .post_form("/account/profile", &[("display_name", "Grace Hopper")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    for portal in &p {
        let b = same_browser_on(&on0, &portal.base);
        let start = Instant::now();
        loop {
            let r = b.get("/account").await;
            assert_eq!(r.status, StatusCode::OK, "{}", portal.base);
            if r.body.contains("Grace Hopper") {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{}: the old name is still shown after 2 s",
                portal.base
            );
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "{}: new name shown after {:?}",
            portal.base,
            start.elapsed()
        );
    }
}

async fn sixty_parallel_wrong_logins_over_three_processes_are_judged_exactly_five_times() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    verified(&cluster, &p[0].base, "victim@example.com").await;
    // The CSRF key is shared, so one anonymous visit's cookie and token serve every process.
    let first = Browser::new(&p[0].base);
    first.get("/login").await;
    let statuses = futures_util::future::join_all((0..60).map(|i| {
        let b = same_browser_on(&first, &p[i % 3].base);
        async move {
            b.post_form(
                "/login",
                &[
                    ("email", "victim@example.com"),
                    ("password", "not the password"),
                ],
            )
            .await
            .status
        }
    }))
    .await;
    let judged = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((judged, limited), (5, 55), "{statuses:?}");
}

async fn one_email_registered_in_parallel_through_three_processes_makes_one_account() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    let statuses = futures_util::future::join_all((0..9).map(|i| {
        let b = Browser::new(&p[i % 3].base);
        async move {
            b.get("/register").await;
            let pw = format!("{PW} {i}");
            b.post_form(
                "/register",
                &[
                    ("email", "race@example.com"),
                    ("password", &pw),
                    ("password_confirm", &pw),
                ],
            )
            .await
            .status
        }
    }))
    .await;
    assert_eq!(statuses, vec![StatusCode::OK; 9], "identical answers");
    // Nine pending registrations, each mailed its link; PostgreSQL keeps one of them alive.
    let mails = phaze_e2e::wait_for_mails(&cluster.outbox(), 9);
    let links: Vec<String> = mails.iter().filter_map(|m| phaze_e2e::link_in(m)).collect();
    assert_eq!(links.len(), 9);
    let mut used = 0;
    for (i, link) in links.iter().enumerate() {
        let status = Browser::new(&p[i % 3].base).get(link).await.status;
        used += usize::from(status == StatusCode::SEE_OTHER);
    }
    assert_eq!(used, 1, "one link creates the one account");
}

async fn a_schema_this_build_does_not_know_stops_the_process_with_a_clear_line() {
    let cluster = Cluster::new();
    let out = cluster
        .command()
        .env(
            "PHAZE__STORE__POSTGRES__SCHEMA",
            format!("{}_empty", cluster.schema),
        )
        .env("PHAZE__HTTP__PORT", free_port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("phaze-portal migrate"), "{stderr}");
}

/// A private `redis-server` on a free port, for outages: killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => phaze_testkit::server_unavailable("redis-server (binary)", &e),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn status(b: &Browser, path: &str) -> StatusCode {
    b.get(path).await.status
}

/// Asks for `path` until it answers `want`, failing with `what` after `limit`; how long it took.
async fn answers_within(
    b: &Browser,
    path: &str,
    want: StatusCode,
    limit: Duration,
    what: &str,
) -> Duration {
    let start = Instant::now();
    while status(b, path).await != want {
        assert!(start.elapsed() < limit, "{what}");
        actix_web::rt::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

async fn redis_down_means_503_never_allow_and_service_returns_within_five_seconds() {
    let port = free_port();
    let redis = PrivateRedis::start(port);
    let cluster = Cluster::with_redis(&format!("redis://127.0.0.1:{}", redis.port));
    let mut portal = cluster.start().await;
    let b = user(&cluster, &portal.base, "outage@example.com").await;
    assert_eq!(status(&b, "/account").await, StatusCode::OK);

    let load = background_load(&portal.base, &b);
    drop(redis);
    // Load while Redis is down: sessions, the limiter and readiness fail closed; liveness holds.
    let anon = Browser::new(&portal.base);
    anon.get("/login").await;
    for _ in 0..20 {
        assert_eq!(
            status(&b, "/account").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let r = anon
            .post_form(
                "/login",
                &[("email", "outage@example.com"), ("password", PW)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "never allow");
        assert!(!r.body.contains("redis") && !r.body.contains("Redis"));
    }
    assert_eq!(
        status(&anon, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status(&anon, "/healthz").await, StatusCode::OK);
    assert!(portal.child.try_wait().unwrap().is_none(), "still running");

    let _redis = PrivateRedis::start(port);
    let back = Instant::now();
    let limit = Duration::from_secs(5);
    answers_within(
        &anon,
        "/readyz",
        StatusCode::OK,
        limit,
        "not back within 5 s",
    )
    .await;
    // The restarted Redis kept nothing: the session is gone, and logging in works again.
    let r = b.get("/account").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    b.login("outage@example.com", PW).await;
    assert_eq!(status(&b, "/account").await, StatusCode::OK);
    println!("service back {:?} after Redis restarted", back.elapsed());
    load.check(&[
        StatusCode::OK,
        StatusCode::SEE_OTHER,
        StatusCode::SERVICE_UNAVAILABLE,
    ])
    .await;
    assert!(portal.child.try_wait().unwrap().is_none(), "still running");
}

/// Eight clients requesting `/account` with `b`'s cookies in a loop until [`Load::check`].
struct Load {
    stop: std::rc::Rc<std::cell::Cell<bool>>,
    tasks: Vec<actix_web::rt::task::JoinHandle<Vec<StatusCode>>>,
}

fn background_load(base: &str, b: &Browser) -> Load {
    let stop = std::rc::Rc::new(std::cell::Cell::new(false));
    let tasks = (0..8)
        .map(|_| {
            let client = same_browser_on(b, base);
            let stop = stop.clone();
            actix_web::rt::spawn(async move {
                let mut seen = Vec::new();
                while !stop.get() {
                    // Only the session cookie: a rotation answered by one request must not
                    // change what the next one sends.
                    let r = client.get("/account").await;
                    seen.push(r.status);
                }
                seen
            })
        })
        .collect();
    Load { stop, tasks }
}

impl Load {
    /// Stops the clients; every answer they got was one of `allowed` (no 500, no reset).
    async fn check(self, allowed: &[StatusCode]) {
        self.stop.set(true);
        let mut total = 0;
        for task in self.tasks {
            let seen = task.await.unwrap();
            total += seen.len();
            for status in seen {
                assert!(allowed.contains(&status), "unexpected {status} under load");
            }
        }
        assert!(total > 0);
        println!("{total} requests under load, all answered");
    }
}

/// A TCP relay to PostgreSQL that the test can cut and restore: a database outage for one
/// deployment without stopping the shared server.
struct Relay {
    port: u16,
    upstream: String,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Relay {
    fn start(upstream: &str) -> Self {
        let relay = Self {
            port: free_port(),
            upstream: upstream.to_owned(),
            down: Default::default(),
            conns: Default::default(),
        };
        relay.listen();
        relay
    }

    fn listen(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).unwrap();
        let (upstream, down, conns) =
            (self.upstream.clone(), self.down.clone(), self.conns.clone());
        down.store(false, std::sync::atomic::Ordering::SeqCst);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if down.load(std::sync::atomic::Ordering::SeqCst) {
                    break; // the listener closes: connections are refused
                }
                let Ok(client) = client else { continue };
                let Ok(server) = std::net::TcpStream::connect(&upstream) else {
                    continue;
                };
                let mut all = conns.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                all.extend([client, server]);
            }
        });
    }

    /// Closes every relayed connection and refuses new ones.
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port)); // wakes the acceptor
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.listen();
    }
}

async fn postgres_down_means_503_and_service_returns_within_five_seconds() {
    let cluster = Cluster::new();
    let db = phaze_testkit::database_url();
    let host_port = db
        .split('@')
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap();
    let relay = Relay::start(host_port);
    let via_relay = db.replacen(host_port, &format!("127.0.0.1:{}", relay.port), 1);
    let mut cluster = cluster;
    for (k, v) in cluster.env.iter_mut() {
        if k == "PHAZE__STORE__POSTGRES__URL" {
            *v = format!("{via_relay}?sslmode=disable");
        }
    }
    let mut portal = cluster.start().await;
    let b = user(&cluster, &portal.base, "pgdown@example.com").await;
    assert_eq!(status(&b, "/account").await, StatusCode::OK);

    let load = background_load(&portal.base, &b);
    relay.cut();
    // The page's account may come from the account cache until the process notices its
    // listening connection is gone (store-postgres `account_cache`): at once when the connection
    // closes, as here, but a request can still overtake that by a few milliseconds.
    let after = answers_within(
        &b,
        "/account",
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(2),
        "cached account pages beyond the listener's loss",
    )
    .await;
    println!("account pages 503 {after:?} after the cut");
    let anon = Browser::new(&portal.base);
    anon.get("/login").await;
    for _ in 0..10 {
        assert_eq!(
            status(&b, "/account").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    // The right password, twice (a third failed attempt would ask for a challenge first: an
    // attempt the store could not judge still counts against the address).
    for _ in 0..2 {
        let r = anon
            .post_form(
                "/login",
                &[("email", "pgdown@example.com"), ("password", PW)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "never allow");
        assert!(r.set_cookie("phaze_session").is_none());
    }
    assert_eq!(
        status(&anon, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(status(&anon, "/healthz").await, StatusCode::OK);
    assert!(portal.child.try_wait().unwrap().is_none(), "still running");

    relay.restore();
    let limit = Duration::from_secs(5);
    let back = answers_within(&b, "/account", StatusCode::OK, limit, "not back within 5 s").await;
    assert_eq!(status(&anon, "/readyz").await, StatusCode::OK);
    println!("service back {back:?} after PostgreSQL returned");
    load.check(&[StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE])
        .await;
    assert!(portal.child.try_wait().unwrap().is_none(), "still running");
}

/// A test on actix's runtime: what `#[actix_web::test]` does.
fn actix<F: std::future::Future<Output = ()> + 'static>(name: &str, test: fn() -> F) -> Test {
    Test::new(name, move || actix_web::rt::System::new().block_on(test()))
}

fn main() -> ExitCode {
    let postgres = Need::check("PostgreSQL", || {
        reachable(&phaze_testkit::database_url(), 5432)
    });
    let redis = Need::check("Redis", || reachable(&phaze_testkit::redis_url(), 6379));
    let redis_server = Need::check("redis-server (the program)", || {
        match Command::new("redis-server").arg("--version").output() {
            Ok(out) if out.status.success() => Ok(()),
            Ok(out) => Err(format!(
                "`redis-server --version` exited with {}",
                out.status
            )),
            Err(e) => Err(e.to_string()),
        }
    });
    let mut tests = redis.gate(postgres.gate(phaze_testkit::tests!(
        |name, test| actix(name, test);
        {
            a_session_from_one_process_works_on_all_and_its_logout_ends_it_everywhere,
            a_profile_change_through_one_process_shows_on_every_other,
            sixty_parallel_wrong_logins_over_three_processes_are_judged_exactly_five_times,
            one_email_registered_in_parallel_through_three_processes_makes_one_account,
            a_schema_this_build_does_not_know_stops_the_process_with_a_clear_line,
            postgres_down_means_503_and_service_returns_within_five_seconds,
            twenty_deliveries_of_one_event_over_three_processes_take_effect_once,
            a_process_killed_while_it_holds_a_claim_leaves_it_to_the_retry_which_applies_it_once,
            ten_uses_of_one_reset_link_over_three_processes_set_one_password,
            one_totp_code_sent_at_once_through_three_processes_logs_in_once,
            fifty_device_additions_over_three_processes_keep_the_limit_and_unique_addresses,
            a_deletion_leaves_no_trace_in_postgres_redis_or_the_outbox,
        }
    )));
    tests.extend(redis_server.gate(postgres.gate(phaze_testkit::tests!(
        |name, test| actix(name, test);
        { redis_down_means_503_never_allow_and_service_returns_within_five_seconds }
    ))));
    harness::run(tests)
}

async fn ten_uses_of_one_reset_link_over_three_processes_set_one_password() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    verified(&cluster, &p[0].base, "racer@example.com").await;
    let bases: Vec<&str> = p.iter().map(|p| p.base.as_str()).collect();
    phaze_e2e::one_reset_link_used_at_once_through(&bases, &cluster.outbox(), "racer@example.com")
        .await;
}

/// A TOTP code is accepted once per time step across processes: the step ledger lives in the
/// shared rate-limit store (Redis here). Four logins with one fresh code at once, over three
/// processes (the client's login budget is five, and the first login spent one): one gets in.
async fn one_totp_code_sent_at_once_through_three_processes_logs_in_once() {
    const EMAIL: &str = "twofa@example.com";
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    let b = user(&cluster, &p[0].base, EMAIL).await;
    let app = phaze_e2e::totp_key_on(&b.get("/account/2fa").await.body);
    // The processes read the system clock; so does the "app".
    let now = phaze_portal::clock::Clock::now(&phaze_portal::clock::SystemClock);
    let r = b
        .post_form(
            "/account/2fa/enable",
            &[("code", &app.code_at(now).unwrap())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The next step's code: within the skew allowed, and not used yet.
    let code = app.code_at(now + time::Duration::seconds(30)).unwrap();
    let (cookie, token) = phaze_e2e::anonymous_token(&p[1].base, "/login").await;
    let client = awc::Client::builder().disable_redirects().finish();
    let statuses = futures_util::future::join_all((0..4).map(|i| {
        let req = client
            .post(format!("{}/login", p[i % 3].base))
            .insert_header(("cookie", cookie.clone()));
        let (token, code) = (token.clone(), code.clone());
        async move {
            let form = [
                ("email", EMAIL),
                ("password", PW),
                ("totp", code.as_str()),
                ("csrf_token", token.as_str()),
            ];
            req.send_form(&form).await.unwrap().status().as_u16()
        }
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 401),
        "{statuses:?}"
    );
}

/// Fifty device additions at once for two accounts (25 each, limit 10), spread over three
/// processes sharing PostgreSQL: exactly 10 per account, and 20 distinct tunnel addresses.
async fn fifty_device_additions_over_three_processes_keep_the_limit_and_unique_addresses() {
    let cluster = Cluster::new();
    let p = cluster.start_three().await;
    let mut users = Vec::new();
    for email in ["dev-a@example.com", "dev-b@example.com"] {
        let b = user(&cluster, &p[0].base, email).await;
        b.get("/account/devices").await;
        users.push(b);
    }
    let browsers: Vec<Browser> = (0..50)
        .map(|i| same_browser_on(&users[i % 2], &p[i % 3].base))
        .collect();
    let statuses =
        futures_util::future::join_all(browsers.iter().enumerate().map(|(i, b)| async move {
            b.post_form("/account/devices", &[("name", &format!("device {i}"))])
                .await
                .status
                .as_u16()
        }))
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        20,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 422),
        "{statuses:?}"
    );
    let mut addresses = Vec::new();
    for b in &users {
        let page = b.get("/account/devices").await.body;
        let found: Vec<String> = page
            .split("10.66.0.")
            .skip(1)
            .map(|s| s.split(',').next().unwrap_or_default().to_owned())
            .collect();
        assert_eq!(found.len(), 10, "the limit is exact");
        addresses.extend(found);
    }
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "no address handed out twice");
}

// ---------------------------------------------------------------------------------------------
// Stripe webhooks on the cluster: claims and records in PostgreSQL, shared by every process.

use phaze_e2e::stripe::{
    checkout_completed, deliver, deliver_everywhere_until_acknowledged, payment_failed,
    random_user, retried_until_taken_over, unix_now, WEBHOOK_SECRET,
};

impl Cluster {
    /// This deployment with the payment settings of these tests (a 5-second claim lease).
    fn with_payments() -> Self {
        let mut cluster = Self::new();
        cluster.env.extend([
            (
                "PHAZE__PAYMENTS__WEBHOOK_SECRETS".to_owned(),
                WEBHOOK_SECRET.to_owned(),
            ),
            (
                "PHAZE__PAYMENTS__CLAIM_LEASE_SECS".to_owned(),
                "5".to_owned(),
            ),
        ]);
        cluster
    }

    /// `sql` in this deployment's schema, through psql: the rows, `|`-separated.
    fn sql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .arg(phaze_testkit::database_url())
            .env("PGOPTIONS", format!("-c search_path={}", self.schema))
            .args(["-tAc", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The account's subscription record: `version|status`, or empty.
    fn record(&self, user: &str) -> String {
        self.sql(&format!(
            "SELECT version, status FROM subscriptions WHERE user_id = '{user}'"
        ))
    }
}

async fn twenty_deliveries_of_one_event_over_three_processes_take_effect_once() {
    let cluster = Cluster::with_payments();
    let p = cluster.start_three().await;
    let bases: Vec<&str> = p.iter().map(|p| p.base.as_str()).collect();
    let user = random_user();
    let t = unix_now();
    let checkout = checkout_completed("evt_cl_checkout", t - 60, &user);
    deliver_everywhere_until_acknowledged(&bases, &vec![checkout.clone(); 20]).await;
    assert_eq!(cluster.record(&user), "1|active", "one effect");
    assert_eq!(
        cluster.sql("SELECT count(*) FROM payment_events WHERE applied_at IS NOT NULL"),
        "1"
    );
    // A newer event through one process, the older one again through every process.
    assert_eq!(
        deliver(bases[2], &payment_failed("evt_cl_failed", t)).await,
        200
    );
    for base in &bases {
        assert_eq!(deliver(base, &checkout).await, 200);
    }
    assert_eq!(cluster.record(&user), "2|past_due", "no rollback");
}

async fn a_process_killed_while_it_holds_a_claim_leaves_it_to_the_retry_which_applies_it_once() {
    use std::io::Write;
    let cluster = Cluster::with_payments();
    let mut holder = cluster.start().await;
    let other = cluster.start().await;
    let user = random_user();
    let body = checkout_completed("evt_cl_killed", unix_now(), &user);
    // An open transaction holding the account's row, so the holder's insert waits on it.
    let mut blocker = Command::new("psql")
        .arg(phaze_testkit::database_url())
        .args(["-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stdin = blocker.stdin.as_mut().unwrap();
    writeln!(
        stdin,
        "SET search_path TO {}; BEGIN; INSERT INTO subscriptions (user_id, version, status) \
         VALUES ('{user}', 99, 'none');",
        cluster.schema
    )
    .unwrap();
    stdin.flush().unwrap();
    // Wait until the blocker holds it (its row is invisible to others: watch the lock instead).
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'subscriptions' AND l.mode = 'RowExclusiveLock' AND l.granted") == "0" {
        assert!(Instant::now() < deadline, "the blocker never took its lock");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let base = holder.base.clone();
    let in_flight = {
        let body = body.clone();
        actix_web::rt::spawn(async move { deliver_raw(&base, &body).await })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while cluster.sql("SELECT count(*) FROM payment_events WHERE id = 'evt_cl_killed' AND claim_token IS NOT NULL") != "1" {
        assert!(Instant::now() < deadline, "the holder never claimed the event");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    holder.child.kill().unwrap(); // SIGKILL, mid-delivery
    holder.child.wait().unwrap();
    assert!(
        in_flight.await.unwrap().is_err(),
        "the holder died mid-delivery"
    );
    writeln!(blocker.stdin.as_mut().unwrap(), "ROLLBACK;").unwrap();
    drop(blocker.stdin.take());
    blocker.wait().unwrap();
    // The dead holder's statement may still finish in its server backend (PostgreSQL runs it to
    // the end once the row is free): then the effect is there but the event is not marked
    // applied. Either way, the retry must leave exactly one effect.
    let before = cluster.record(&user);
    assert!(before.is_empty() || before == "1|active", "{before}");

    // Stripe retries: held while the dead holder's lease runs, then taken over, applied once.
    retried_until_taken_over(&other.base, &body).await;
    assert_eq!(cluster.record(&user), "1|active");
    assert_eq!(deliver(&other.base, &body).await, 200, "a duplicate now");
    assert_eq!(cluster.record(&user), "1|active");
}

/// A delivery whose answer may never come (the process is killed): the error, not a panic.
async fn deliver_raw(base: &str, body: &str) -> Result<u16, String> {
    let signature = phaze_e2e::stripe::sign(body, unix_now());
    awc::Client::default()
        .post(format!("{base}/webhooks/stripe"))
        .insert_header(("stripe-signature", signature))
        .send_body(body.to_owned())
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// Each of `traces` found in a PostgreSQL table or a Redis key or value of the deployment, with
/// where.
fn traces_in_stores(cluster: &Cluster, traces: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let tables = cluster.sql(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    );
    for table in tables.lines() {
        let rows = cluster.sql(&format!(
            "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{table}\" t"
        ));
        found.extend(
            traces
                .iter()
                .filter(|t| rows.contains(**t))
                .map(|t| format!("{t} in table {table}")),
        );
    }
    let redis = Command::new("sh")
        .arg("-c")
        .arg(r#"redis-cli -u "$1" --scan --pattern "$2*" | while read -r k; do echo "$k"; redis-cli -u "$1" --no-raw dump "$k"; done"#)
        .args(["sh", &cluster.redis, &cluster.prefix])
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&redis.stdout);
    assert!(
        dump.contains(&cluster.prefix),
        "the scan saw the deployment's keys: {dump}"
    );
    found.extend(
        traces
            .iter()
            .filter(|t| dump.contains(**t))
            .map(|t| format!("{t} in Redis")),
    );
    found
}

/// A deletion through one process on the cluster shape: no PostgreSQL table, Redis key or value,
/// or outbox file holds the address, the name or the device afterwards, and every process has
/// forgotten the account.
async fn a_deletion_leaves_no_trace_in_postgres_redis_or_the_outbox() {
    let cluster = Cluster::new();
    let (a, b) = (cluster.start().await, cluster.start().await);
    let ada = user(&cluster, &a.base, "ada@example.com").await;
    ada.get("/account").await;
    let r = ada
        .post_form("/account/profile", &[("display_name", "Zyxwv Qutsr")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    ada.get("/account/devices").await;
    let r = ada
        .post_form("/account/devices", &[("name", "Qlaptopq")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // While she exists, neither her address nor her name is in any table or Redis value.
    let found = traces_in_stores(&cluster, &["ada@example.com", "Zyxwv Qutsr"]);
    assert!(found.is_empty(), "{found:?}");
    let on_b = same_browser_on(&ada, &b.base);
    on_b.get("/account").await;
    let r = on_b.post_form("/account/delete", &[("password", PW)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        ada.get("/account").await.status,
        StatusCode::SEE_OTHER,
        "logged out on a too"
    );
    let fresh = Browser::new(&a.base);
    fresh.get("/login").await;
    let r = fresh
        .post_form("/login", &[("email", "ada@example.com"), ("password", PW)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a's cache forgot the account"
    );

    let found = traces_in_stores(&cluster, &["ada@example.com", "Zyxwv Qutsr", "Qlaptopq"]);
    assert!(found.is_empty(), "{found:?}");
    for mail in phaze_e2e::outbox_mails(&cluster.outbox()) {
        assert!(
            !mail.contains("ada@example.com"),
            "mail to her left in the outbox"
        );
    }
    assert_eq!(
        cluster.sql("SELECT count(*) FROM audit_log WHERE action = 'account.deleted'"),
        "1"
    );
    // The address registers again.
    user(&cluster, &b.base, "ada@example.com").await;
}
