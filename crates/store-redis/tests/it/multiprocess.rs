//! Several processes, each with many tasks, hitting one key: exactly the limit passes in total.
//! The test binary re-runs itself: `main` sees the environment variables and runs only
//! [`child_process_entry`] (no harness, no test), which reports through a result file.

use phaze_ratelimit::{RateLimitStore, Window};
use phaze_store_redis::Redis;
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use std::env;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{config, redis};

/// The directory for the barrier (`ready-<n>`, `go`) and result (`result-<n>`) files.
const ENV_DIR: &str = "PHAZE_STORE_REDIS_CHILD_DIR";
/// The Redis URL and key prefix the children share with the parent.
const ENV_URL: &str = "PHAZE_STORE_REDIS_CHILD_URL";
const ENV_PREFIX: &str = "PHAZE_STORE_REDIS_CHILD_PREFIX";
/// The limit the children decide against.
const ENV_LIMIT: &str = "PHAZE_STORE_REDIS_CHILD_LIMIT";
/// The child's number, naming its files.
const ENV_INDEX: &str = "PHAZE_STORE_REDIS_CHILD_INDEX";
/// Tasks per child, and hits per task.
const TASKS: usize = 12;
const HITS_PER_TASK: usize = 3;
const RACED_KEY: u8 = 0x77;

/// Entry point of the child processes the test below starts, which `main` calls before the
/// harness: `false` without the environment variables (a normal test run), which does nothing.
pub(crate) fn child_process_entry() -> bool {
    let (Ok(dir), Ok(url), Ok(prefix), Ok(limit), Ok(index)) = (
        env::var(ENV_DIR),
        env::var(ENV_URL),
        env::var(ENV_PREFIX),
        env::var(ENV_LIMIT),
        env::var(ENV_INDEX),
    ) else {
        return false;
    };
    let dir = Path::new(&dir);
    let window = Window::new(limit.parse().unwrap(), time::Duration::minutes(15));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcome = rt.block_on(async {
        let mut cfg = config(&url, &prefix);
        cfg.pool_size = TASKS;
        let redis = Redis::new(&cfg).unwrap();
        // Connect every pooled connection before the start, so the race is between hits.
        let warm: Vec<_> = (0..TASKS).map(|_| redis.ping()).collect();
        for r in futures_util::future::join_all(warm).await {
            r.unwrap();
        }
        let store = redis.rate_limits();
        fs::write(dir.join(format!("ready-{index}")), b"").unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dir.join("go").exists() {
            assert!(Instant::now() < deadline, "no go signal");
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut allowed = 0usize;
                    for _ in 0..HITS_PER_TASK {
                        if store.hit(&key(RACED_KEY), window, t0()).await?.allowed {
                            allowed += 1;
                        }
                    }
                    Ok::<_, phaze_ratelimit::StoreError>(allowed)
                })
            })
            .collect();
        let mut allowed = 0;
        for t in futures_util::future::join_all(tasks).await {
            match t.unwrap() {
                Ok(n) => allowed += n,
                Err(e) => return format!("error {e:?}"),
            }
        }
        format!("allowed {allowed}")
    });
    fs::write(dir.join(format!("result-{index}")), outcome).unwrap();
    true
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

pub(crate) async fn processes_hitting_one_key_admit_exactly_the_limit() {
    for (processes, limit) in [(6usize, 5u32), (4, 1), (5, 40), (3, 100), (4, 143)] {
        let (redis, cleanup) = redis().await;
        let dir = tempfile::tempdir().unwrap();
        let exe = env::current_exe().unwrap();
        let mut children = Children(
            (0..processes)
                .map(|i| {
                    Command::new(&exe)
                        .env(ENV_DIR, dir.path())
                        .env(ENV_URL, phaze_testkit::redis_url())
                        .env(ENV_PREFIX, cleanup.prefix())
                        .env(ENV_LIMIT, limit.to_string())
                        .env(ENV_INDEX, i.to_string())
                        .stdout(Stdio::null())
                        .stderr(Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect(),
        );
        let deadline = Instant::now() + Duration::from_secs(60);
        for i in 0..processes {
            while !dir.path().join(format!("ready-{i}")).exists() {
                assert!(Instant::now() < deadline, "child {i} never got ready");
                if let Some(status) = children.0[i].try_wait().unwrap() {
                    panic!("child {i} exited early: {status}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        fs::write(dir.path().join("go"), b"").unwrap();
        let mut allowed = 0usize;
        for (i, child) in std::mem::take(&mut children.0).into_iter().enumerate() {
            let out = tokio::task::spawn_blocking(move || child.wait_with_output())
                .await
                .unwrap()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "child {i} failed: {stderr}");
            let result = fs::read_to_string(dir.path().join(format!("result-{i}"))).unwrap();
            allowed += result
                .strip_prefix("allowed ")
                .unwrap_or_else(|| panic!("child {i}: {result}"))
                .parse::<usize>()
                .unwrap();
        }
        let attempts = processes * TASKS * HITS_PER_TASK;
        assert_eq!(
            allowed,
            attempts.min(limit as usize),
            "P={processes} L={limit}"
        );
        // The log holds exactly the allowed hits: a peek agrees.
        let window = Window::new(limit, time::Duration::minutes(15));
        let d = redis
            .rate_limits()
            .peek(&key(RACED_KEY), window, t0())
            .await
            .unwrap();
        assert_eq!(
            d.remaining as usize,
            limit as usize - allowed.min(limit as usize)
        );
    }
}
