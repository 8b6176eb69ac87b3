//! Several processes on one data directory. The test binary re-runs itself: `main` sees the
//! environment variables and runs only [`child_process_entry`] (no harness, no test), which does
//! what they say and reports through a result file.

use phaze_auth::{AccountStore, Email, StoreError as AuthError, TokenStore};
use phaze_ratelimit::{RateLimitStore, Window};
use phaze_sessions::{Rotation, SessionStore, StoreError};
use phaze_store_fs::{DataDir, FsAccounts, FsError, FsRateLimits, FsSessions, FsTokens, Sharing};
use phaze_testkit::accounts::account;
use phaze_testkit::ratelimit::key;
use phaze_testkit::sessions::{record, rotation};
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The directory a child works in: barrier and result files, and the data directory `data/`.
const ENV_DIR: &str = "PHAZE_STORE_FS_CHILD_DIR";
/// What the child does: `register`, `consume`, `insert_session`, `rotate_session`, `hold_lock`,
/// `rate_limit_hit`, `hold_rate_limit_lock`, `own_exclusive` or `own_shared`.
const ENV_ROLE: &str = "PHAZE_STORE_FS_CHILD_ROLE";
/// The limit a `rate_limit_hit` child decides against.
const ENV_LIMIT: &str = "PHAZE_STORE_FS_CHILD_LIMIT";
/// The child's number, naming its `ready-<n>` and `result-<n>` files.
const ENV_INDEX: &str = "PHAZE_STORE_FS_CHILD_INDEX";
/// How many processes race.
const RACERS: usize = 8;
/// The session every `rotate_session` child rotates, each into key byte 0x80 + its index.
const ROTATED_SESSION: u8 = 0x21;
/// The session whose shard the `hold_lock` child locks: key byte 0x3c, so shard `3c`.
const LOCKED_SESSION: u8 = 0x3c;
/// The rate-limit key every `rate_limit_hit` child hits, and whose file `hold_rate_limit_lock`
/// locks.
const RACED_LIMIT_KEY: u8 = 0x77;
/// Hits each `rate_limit_hit` child makes.
const HITS_PER_CHILD: usize = 3;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Entry point of the child processes the tests below start, which `main` calls before the
/// harness: `false` without the environment variables (a normal test run), which does nothing.
pub(crate) fn child_process_entry() -> bool {
    let (Ok(dir), Ok(role), Ok(index)) =
        (env::var(ENV_DIR), env::var(ENV_ROLE), env::var(ENV_INDEX))
    else {
        return false;
    };
    let dir = PathBuf::from(dir);
    let data = dir.join("data");
    let rt = runtime();
    let outcome = match role.as_str() {
        "register" => {
            let store = FsAccounts::open(&data).unwrap();
            let a = account("race@example.com");
            wait_for_go(&dir, &index);
            match rt.block_on(store.insert(&a)) {
                Ok(()) => format!("won {}", a.id),
                Err(AuthError::Duplicate) => "duplicate".to_owned(),
                Err(e) => format!("error {e:?}"),
            }
        }
        "consume" => {
            let store = FsTokens::open(&data).unwrap();
            let t = token(5);
            wait_for_go(&dir, &index);
            match rt.block_on(store.consume(&t.hash, t.purpose, t0())) {
                Ok(Some(got)) if got.hash == t.hash => "got".to_owned(),
                Ok(Some(other)) => format!("error wrong token {other:?}"),
                Ok(None) => "none".to_owned(),
                Err(e) => format!("error {e:?}"),
            }
        }
        "insert_session" => {
            let store = FsSessions::open(&data).unwrap();
            let mut s = record(1, "alice");
            s.sealed = index.as_bytes().to_vec();
            wait_for_go(&dir, &index);
            match rt.block_on(store.insert(&s)) {
                Ok(()) => "won".to_owned(),
                Err(StoreError::Duplicate) => "duplicate".to_owned(),
                Err(e) => format!("error {e:?}"),
            }
        }
        "rotate_session" => {
            let store = FsSessions::open(&data).unwrap();
            let n: u8 = index.parse().unwrap();
            let (retired, successor) = rotation(&record(ROTATED_SESSION, "alice"), 0x80 + n);
            wait_for_go(&dir, &index);
            match rt.block_on(store.rotate(&retired, &successor)) {
                Ok(Rotation::Won) => "won".to_owned(),
                Ok(Rotation::Lost(found)) => match found.successor {
                    Some(next) => format!("lost {}", next.to_hex()),
                    None => format!("error lost to a live record {found:?}"),
                },
                Ok(Rotation::Gone) => "error gone".to_owned(),
                Err(e) => format!("error {e:?}"),
            }
        }
        "hold_lock" => {
            // The store's lock protocol, from outside: the shard file of the record's key.
            let key = record(LOCKED_SESSION, "alice").key.to_hex();
            let path = data
                .join("sessions/locks")
                .join(format!("{}.lock", &key[..2]));
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap();
            file.lock().unwrap();
            fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
            // Hold the lock until the parent kills this process.
            std::thread::sleep(Duration::from_secs(120));
            "not killed".to_owned()
        }
        "rate_limit_hit" => {
            let store = FsRateLimits::open(&data).unwrap();
            let limit: u32 = env::var(ENV_LIMIT).unwrap().parse().unwrap();
            let window = Window::new(limit, time::Duration::minutes(15));
            wait_for_go(&dir, &index);
            let hits: Result<Vec<bool>, _> = (0..HITS_PER_CHILD)
                .map(|_| {
                    rt.block_on(store.hit(&key(RACED_LIMIT_KEY), window, t0()))
                        .map(|d| d.allowed)
                })
                .collect();
            match hits {
                Ok(hits) => format!("allowed {}", hits.iter().filter(|a| **a).count()),
                Err(e) => format!("error {e:?}"),
            }
        }
        "hold_rate_limit_lock" => {
            // The store's lock protocol, from outside: the key's own file.
            let path = data.join("ratelimits").join(key(RACED_LIMIT_KEY).to_hex());
            let file = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap();
            file.lock().unwrap();
            fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
            std::thread::sleep(Duration::from_secs(120));
            "not killed".to_owned()
        }
        "own_exclusive" | "own_shared" => {
            let sharing = if role == "own_exclusive" {
                Sharing::Exclusive
            } else {
                Sharing::Shared
            };
            let owner = DataDir::open(&data, sharing).unwrap();
            fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
            // Hold the directory until the parent kills this process.
            std::thread::sleep(Duration::from_secs(120));
            drop(owner);
            "not killed".to_owned()
        }
        other => panic!("unknown role {other}"),
    };
    fs::write(dir.join(format!("result-{index}")), outcome).unwrap();
    true
}

/// Says this child is ready, then waits for the parent's `go` file, so all children act at once.
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

fn spawn(dir: &Path, role: &str, count: usize) -> Children {
    spawn_with(dir, role, count, &[])
}

/// [`spawn`], with extra environment variables.
fn spawn_with(dir: &Path, role: &str, count: usize, vars: &[(&str, String)]) -> Children {
    let exe = env::current_exe().unwrap();
    Children(
        (0..count)
            .map(|i| {
                Command::new(&exe)
                    .env(ENV_DIR, dir)
                    .env(ENV_ROLE, role)
                    .env(ENV_INDEX, i.to_string())
                    .envs(vars.iter().map(|(k, v)| (k, v)))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect(),
    )
}

/// Waits until every child has written `ready-<n>`, failing fast if one died.
fn wait_ready(dir: &Path, children: &mut Children) {
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..children.0.len() {
        while !dir.join(format!("ready-{i}")).exists() {
            assert!(Instant::now() < deadline, "child {i} never got ready");
            if let Some(status) = children.0[i].try_wait().unwrap() {
                panic!("child {i} exited early: {status}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Starts `RACERS` children in `role`, releases them together, and returns their reports.
fn race(dir: &Path, role: &str) -> Vec<String> {
    race_with(dir, role, RACERS, &[])
}

/// [`race`] with `count` children and extra environment variables.
fn race_with(dir: &Path, role: &str, count: usize, vars: &[(&str, String)]) -> Vec<String> {
    let mut children = spawn_with(dir, role, count, vars);
    wait_ready(dir, &mut children);
    fs::write(dir.join("go"), b"").unwrap();
    let mut results = Vec::new();
    for (i, child) in std::mem::take(&mut children.0).into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "child {i} failed: {stderr}");
        let result = fs::read_to_string(dir.join(format!("result-{i}"))).unwrap_or_else(|e| {
            panic!("child {i} wrote no result ({e}); did main run child_process_entry?")
        });
        assert!(!result.starts_with("error"), "child {i}: {result}");
        results.push(result);
    }
    results
}

pub(crate) fn processes_registering_one_email_admit_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsAccounts::open(&data).unwrap();
    let results = race(dir.path(), "register");
    let winners: Vec<&str> = results
        .iter()
        .filter_map(|r| r.strip_prefix("won "))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert_eq!(
        results.iter().filter(|r| *r == "duplicate").count(),
        RACERS - 1
    );
    let email = Email::parse("race@example.com").unwrap();
    let found = runtime().block_on(store.by_email(&email)).unwrap().unwrap();
    assert_eq!(found.id.to_string(), winners[0]);
    // Every loser removed the record it wrote before trying the email.
    assert_eq!(
        fs::read_dir(data.join("accounts/records")).unwrap().count(),
        1
    );
    assert_eq!(
        fs::read_dir(data.join("accounts/emails")).unwrap().count(),
        1
    );
}

pub(crate) fn processes_consuming_one_token_admit_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsTokens::open(&data).unwrap();
    runtime().block_on(store.issue(&token(5))).unwrap();
    let results = race(dir.path(), "consume");
    assert_eq!(
        results.iter().filter(|r| *r == "got").count(),
        1,
        "{results:?}"
    );
    assert_eq!(results.iter().filter(|r| *r == "none").count(), RACERS - 1);
    let files = fs::read_dir(data.join("tokens"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count();
    assert_eq!(files, 0, "no claimed copy is left");
}

pub(crate) fn processes_inserting_one_session_key_admit_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsSessions::open(&data).unwrap();
    let results = race(dir.path(), "insert_session");
    let winners: Vec<usize> = (0..RACERS).filter(|&i| results[i] == "won").collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let rt = runtime();
    let stored = rt
        .block_on(store.get(&record(1, "alice").key))
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.sealed,
        winners[0].to_string().into_bytes(),
        "the winner's record, whole"
    );
    assert_eq!(rt.block_on(store.list_user("alice")).unwrap(), vec![stored]);
}

pub(crate) fn processes_rotating_one_session_agree_on_one_successor() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = FsSessions::open(&data).unwrap();
    let rt = runtime();
    let old = record(ROTATED_SESSION, "alice");
    rt.block_on(store.insert(&old)).unwrap();
    let results = race(dir.path(), "rotate_session");
    let winners: Vec<usize> = (0..RACERS).filter(|&i| results[i] == "won").collect();
    assert_eq!(winners.len(), 1, "one successor per session: {results:?}");
    let (retired, successor) = rotation(&old, 0x80 + u8::try_from(winners[0]).unwrap());
    let lost = format!("lost {}", successor.key.to_hex());
    assert!(
        results.iter().all(|r| *r == "won" || *r == lost),
        "every loser is given the winner's successor: {results:?}"
    );
    assert_eq!(rt.block_on(store.get(&old.key)).unwrap(), Some(retired));
    assert_eq!(
        rt.block_on(store.list_user("alice")).unwrap().len(),
        2,
        "the retired record and one successor; the losers wrote nothing"
    );
    // A logout with the old id ends the successor too.
    assert!(rt.block_on(store.remove(&old.key)).unwrap());
    assert!(rt.block_on(store.list_user("alice")).unwrap().is_empty());
}

pub(crate) fn a_killed_lock_holder_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsSessions::open(dir.path().join("data")).unwrap();
    let s = record(LOCKED_SESSION, "alice");
    let rt = runtime();
    rt.block_on(store.insert(&s)).unwrap();
    let mut children = spawn(dir.path(), "hold_lock", 1);
    wait_ready(dir.path(), &mut children);
    let mut updated = s.clone();
    updated.sealed = vec![1; 8];
    rt.block_on(async {
        let writer = store.clone();
        let mut update = tokio::spawn(async move { writer.update(&updated).await });
        // The child's lock is the one the store takes: the update waits for it.
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut update).await;
        assert!(
            waited.is_err(),
            "the update must wait while another process holds the shard"
        );
        // SIGKILL on Unix: the process gets no chance to unlock; the kernel releases its lock.
        children.0[0].kill().unwrap();
        children.0[0].wait().unwrap();
        let done = tokio::time::timeout(Duration::from_secs(1), update).await;
        assert!(done
            .expect("the update finished within a second of the kill")
            .unwrap()
            .unwrap());
    });
    assert_eq!(
        rt.block_on(store.get(&s.key)).unwrap().unwrap().sealed,
        vec![1; 8]
    );
    assert!(
        !dir.path().join("result-0").exists(),
        "the child was killed, not finished"
    );
}

pub(crate) fn processes_hitting_one_key_admit_exactly_the_limit() {
    for (processes, limit) in [(8usize, 5u32), (8, 1), (6, 3), (4, 12), (3, 20)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = FsRateLimits::open(&data).unwrap();
        let results = race_with(
            dir.path(),
            "rate_limit_hit",
            processes,
            &[(ENV_LIMIT, limit.to_string())],
        );
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
        // The file holds exactly the allowed hits: a peek agrees.
        let window = Window::new(limit, time::Duration::minutes(15));
        let d = runtime()
            .block_on(store.peek(&key(RACED_LIMIT_KEY), window, t0()))
            .unwrap();
        assert_eq!(
            d.remaining as usize,
            limit as usize - allowed.min(limit as usize)
        );
    }
}

pub(crate) fn a_killed_rate_limit_lock_holder_does_not_block_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsRateLimits::open(dir.path().join("data")).unwrap();
    let window = Window::new(5, time::Duration::minutes(15));
    let mut children = spawn(dir.path(), "hold_rate_limit_lock", 1);
    wait_ready(dir.path(), &mut children);
    let rt = runtime();
    rt.block_on(async {
        let hitter = store.clone();
        let mut hit =
            tokio::spawn(async move { hitter.hit(&key(RACED_LIMIT_KEY), window, t0()).await });
        // The child's lock is the one the store takes: the hit waits for it.
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut hit).await;
        assert!(
            waited.is_err(),
            "the hit must wait while another process holds the key's file"
        );
        // SIGKILL on Unix: the process gets no chance to unlock; the kernel releases its lock.
        children.0[0].kill().unwrap();
        children.0[0].wait().unwrap();
        let done = tokio::time::timeout(Duration::from_secs(1), hit).await;
        let d = done
            .expect("the hit finished within a second of the kill")
            .unwrap()
            .unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 4);
    });
    assert!(
        !dir.path().join("result-0").exists(),
        "the child was killed, not finished"
    );
}

fn in_use(result: Result<DataDir, FsError>) -> bool {
    matches!(result, Err(FsError::InUse { .. }))
}

pub(crate) fn a_directory_owned_by_one_process_is_refused_to_every_other() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut children = spawn(dir.path(), "own_exclusive", 1);
    wait_ready(dir.path(), &mut children);
    assert!(in_use(DataDir::open(&data, Sharing::Exclusive)));
    assert!(in_use(DataDir::open(&data, Sharing::Shared)));
    assert!(
        FsSessions::open(&data).is_err(),
        "a store's own open is shared, and refused too"
    );
    // SIGKILL on Unix: the kernel releases the owner's lock.
    children.0[0].kill().unwrap();
    children.0[0].wait().unwrap();
    let owner = DataDir::open(&data, Sharing::Exclusive).unwrap();
    assert_eq!(owner.sharing(), Sharing::Exclusive);
}

pub(crate) fn processes_sharing_a_directory_keep_an_exclusive_owner_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut children = spawn(dir.path(), "own_shared", 2);
    wait_ready(dir.path(), &mut children);
    assert!(in_use(DataDir::open(&data, Sharing::Exclusive)));
    let shared = DataDir::open(&data, Sharing::Shared).unwrap();
    drop(shared);
    drop(children);
    DataDir::open(&data, Sharing::Exclusive).unwrap();
}
