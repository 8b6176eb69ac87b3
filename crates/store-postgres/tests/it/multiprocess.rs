//! Several processes on one database. The test binary re-runs itself: `main` sees the
//! environment variables and runs only [`child_process_entry`] (no harness, no test), which does
//! what they say and reports through a result file; a `go` file releases all children at once.

use phaze_auth::{AccountStore, StoreError, TokenStore};
use phaze_ratelimit::{RateLimitStore, Window};
use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::accounts::account;
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, config};

/// The directory of the barrier and result files.
const ENV_DIR: &str = "PHAZE_STORE_PG_CHILD_DIR";
/// The schema the children work in.
const ENV_SCHEMA: &str = "PHAZE_STORE_PG_CHILD_SCHEMA";
/// `rate_limit_hit`, `consume` or `register`.
const ENV_ROLE: &str = "PHAZE_STORE_PG_CHILD_ROLE";
/// The limit a `rate_limit_hit` child decides against.
const ENV_LIMIT: &str = "PHAZE_STORE_PG_CHILD_LIMIT";
/// The child's number, naming its `ready-<n>` and `result-<n>` files.
const ENV_INDEX: &str = "PHAZE_STORE_PG_CHILD_INDEX";
/// Hits each `rate_limit_hit` child makes, from as many tasks at once.
const HITS_PER_CHILD: usize = 4;
/// The key every `rate_limit_hit` child hits.
const RACED_KEY: u8 = 0x77;
/// The token every `consume` child tries.
const RACED_TOKEN: u8 = 5;

/// Entry point of the child processes the tests below start, which `main` calls before the
/// harness: `false` without the environment variables (a normal test run), which does nothing.
pub(crate) fn child_process_entry() -> bool {
    let (Ok(dir), Ok(schema), Ok(role), Ok(index)) = (
        env::var(ENV_DIR),
        env::var(ENV_SCHEMA),
        env::var(ENV_ROLE),
        env::var(ENV_INDEX),
    ) else {
        return false;
    };
    let dir = PathBuf::from(dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let pg = Postgres::new(&PgConfig {
            pool_size: HITS_PER_CHILD,
            ..config(Some(&schema))
        })
        .unwrap();
        // Connect before the start signal, so the race is between queries, not connections.
        let warm: Vec<_> = (0..HITS_PER_CHILD).map(|_| pg.ping()).collect();
        for w in futures_util::future::join_all(warm).await {
            w.unwrap();
        }
        wait_for_go(&dir, &index);
        match role.as_str() {
            "rate_limit_hit" => {
                let limit: u32 = env::var(ENV_LIMIT).unwrap().parse().unwrap();
                let window = Window::new(limit, time::Duration::minutes(15));
                let (limits, k) = (pg.rate_limits(), key(RACED_KEY));
                let hits = (0..HITS_PER_CHILD).map(|_| limits.hit(&k, window, t0()));
                let mut allowed = 0;
                for d in futures_util::future::join_all(hits).await {
                    match d {
                        Ok(d) => allowed += usize::from(d.allowed),
                        Err(e) => return format!("error {e:?}"),
                    }
                }
                format!("allowed {allowed}")
            }
            "consume" => {
                let t = token(RACED_TOKEN);
                match pg.tokens().consume(&t.hash, t.purpose, t0()).await {
                    Ok(Some(got)) if got.hash == t.hash => "got".to_owned(),
                    Ok(Some(other)) => format!("error wrong token {other:?}"),
                    Ok(None) => "none".to_owned(),
                    Err(e) => format!("error {e:?}"),
                }
            }
            "register" => {
                let a = account("race@example.com");
                match pg.accounts().insert(&a).await {
                    Ok(()) => format!("won {}", a.id),
                    Err(StoreError::Duplicate) => "duplicate".to_owned(),
                    Err(e) => format!("error {e:?}"),
                }
            }
            other => format!("error unknown role {other}"),
        }
    });
    fs::write(dir.join(format!("result-{index}")), outcome).unwrap();
    true
}

/// Says this child is ready, then waits for the parent's `go` file.
fn wait_for_go(dir: &Path, index: &str) {
    fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("go").exists() {
        assert!(Instant::now() < deadline, "no go signal");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Children that are killed if the test fails before it waits for them.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `count` children in `role` on `schema`, releases them together, and returns their
/// reports.
fn race(schema: &str, role: &str, count: usize, vars: &[(&str, String)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let exe = env::current_exe().unwrap();
    let mut children = Children(
        (0..count)
            .map(|i| {
                Command::new(&exe)
                    .env(ENV_DIR, dir.path())
                    .env(ENV_SCHEMA, schema)
                    .env(ENV_ROLE, role)
                    .env(ENV_INDEX, i.to_string())
                    .envs(vars.iter().map(|(k, v)| (k, v)))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..count {
        while !dir.path().join(format!("ready-{i}")).exists() {
            assert!(Instant::now() < deadline, "child {i} never got ready");
            if let Some(status) = children.0[i].try_wait().unwrap() {
                panic!("child {i} exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    fs::write(dir.path().join("go"), b"").unwrap();
    let mut results = Vec::new();
    for (i, child) in std::mem::take(&mut children.0).into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child {i} failed: {stderr}");
        let result =
            fs::read_to_string(dir.path().join(format!("result-{i}"))).unwrap_or_else(|e| {
                panic!("child {i} wrote no result ({e}); did main run child_process_entry?")
            });
        assert!(!result.starts_with("error"), "child {i}: {result}");
        results.push(result);
    }
    results
}

pub(crate) async fn processes_hitting_one_key_admit_exactly_the_limit() {
    for (processes, limit) in [(6usize, 5u32), (6, 1), (4, 13), (3, 30)] {
        let db = support::fresh().await;
        let schema = db.schema().to_owned();
        let results = tokio::task::spawn_blocking(move || {
            race(
                &schema,
                "rate_limit_hit",
                processes,
                &[(ENV_LIMIT, limit.to_string())],
            )
        })
        .await
        .unwrap();
        let allowed: usize = results
            .iter()
            .map(|r| {
                r.strip_prefix("allowed ")
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
            .sum();
        let attempts = processes * HITS_PER_CHILD;
        assert_eq!(
            allowed,
            attempts.min(limit as usize),
            "N={processes} L={limit}: {results:?}"
        );
        let window = Window::new(limit, time::Duration::minutes(15));
        let d = db
            .pg
            .rate_limits()
            .peek(&key(RACED_KEY), window, t0())
            .await
            .unwrap();
        assert_eq!(d.remaining as usize, limit as usize - allowed);
    }
}

pub(crate) async fn processes_consuming_one_token_admit_exactly_one() {
    let db = support::fresh().await;
    db.pg.tokens().issue(&token(RACED_TOKEN)).await.unwrap();
    let schema = db.schema().to_owned();
    let results = tokio::task::spawn_blocking(move || race(&schema, "consume", 6, &[]))
        .await
        .unwrap();
    assert_eq!(
        results.iter().filter(|r| *r == "got").count(),
        1,
        "{results:?}"
    );
    assert_eq!(results.iter().filter(|r| *r == "none").count(), 5);
}

pub(crate) async fn processes_registering_one_email_admit_exactly_one() {
    let db = support::fresh().await;
    let schema = db.schema().to_owned();
    let results = tokio::task::spawn_blocking(move || race(&schema, "register", 6, &[]))
        .await
        .unwrap();
    let winners: Vec<&str> = results
        .iter()
        .filter_map(|r| r.strip_prefix("won "))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let email = phaze_auth::Email::parse("race@example.com").unwrap();
    let found = db.pg.accounts().by_email(&email).await.unwrap().unwrap();
    assert_eq!(found.id.to_string(), winners[0]);
}
