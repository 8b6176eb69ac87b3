//! Helpers shared by the test modules: stores on a fresh key prefix of the test Redis (deleted
//! afterwards), a raw connection for looking at what the store wrote, and private `redis-server`
//! processes for outage and TLS tests.

use phaze_store_redis::{Redis, RedisConfig, RedisRateLimits, RedisSessions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The pool and timeouts the suites use against the shared Redis.
pub(crate) fn config(url: &str, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_owned(),
        prefix: prefix.to_owned(),
        pool_size: 8,
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(2),
    }
}

/// A prefix no other test (or run) uses.
pub(crate) fn random_prefix() -> String {
    format!("phaze-test:{:016x}:", rand::random::<u64>())
}

/// Deletes every key under its prefix when dropped, so test runs leave nothing behind.
pub(crate) struct Cleanup {
    url: String,
    prefix: String,
}

impl Cleanup {
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        // A blocking connection on its own thread: drop may run inside a tokio worker.
        let done = std::thread::spawn(move || delete_prefix(&url, &prefix)).join();
        if let Ok(Err(e)) = done {
            eprintln!("could not delete test keys under {}: {e}", self.prefix);
        }
    }
}

fn delete_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query::<()>(&mut conn)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The harness's check of the test Redis: it answers `PING` within 2 s.
pub(crate) fn reachable() -> Result<(), String> {
    let url = phaze_testkit::redis_url();
    redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
        .map(drop)
        .map_err(|e| format!("{e} (PHAZE_TEST_REDIS_URL, or the local server)"))
}

/// The harness's check for the outage and TLS tests: `program arg` (a version query) runs.
pub(crate) fn runs(program: &str, arg: &str) -> Result<(), String> {
    match Command::new(program).arg(arg).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`{program} {arg}` exited with {}", out.status)),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// A store on a fresh prefix of the test Redis. The harness found it answering, so an error
/// fails the test.
pub(crate) async fn redis() -> (Redis, Cleanup) {
    let url = phaze_testkit::redis_url();
    let prefix = random_prefix();
    let redis = Redis::new(&config(&url, &prefix)).unwrap();
    if let Err(e) = redis.ping().await {
        phaze_testkit::server_unavailable("Redis", &e);
    }
    (redis, Cleanup { url, prefix })
}

pub(crate) async fn sessions() -> (RedisSessions, Cleanup) {
    let (r, c) = redis().await;
    (r.sessions(), c)
}

pub(crate) async fn rate_limits() -> (RedisRateLimits, Cleanup) {
    let (r, c) = redis().await;
    (r.rate_limits(), c)
}

/// A connection of its own to the test Redis, to look at keys directly.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    redis::Client::open(phaze_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Every key under `prefix`, sorted.
pub(crate) async fn keys(prefix: &str) -> Vec<String> {
    let mut conn = raw().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// The Redis server's clock, in Unix seconds.
pub(crate) async fn server_time() -> i64 {
    let (secs, _micros): (i64, i64) = redis::cmd("TIME")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    secs
}

/// A private `redis-server` (no persistence) on a fixed port, killed when dropped.
pub(crate) struct Server {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    log: PathBuf,
}

impl Server {
    /// Starts `redis-server` on `port` with extra `args` and waits until its port accepts
    /// connections; `Err` (with the server's log) if it does not within 10 s, or if there is no
    /// `redis-server`.
    pub(crate) fn start(port: u16, args: &[String], dir: &Path) -> Result<Self, String> {
        let mut server = Self {
            child: None,
            port,
            args: args.to_vec(),
            log: dir.join(format!("redis-{port}.log")),
        };
        server.restart()?;
        Ok(server)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Starts the server again (after [`Server::kill`]) on the same port.
    pub(crate) fn restart(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--logfile", self.log.to_str().unwrap()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                self.child = None;
                return Err(format!("redis-server exited ({status}): {log}"));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err("redis-server did not listen within 10 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the server gets no chance to close its connections.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal by name (`STOP`, `CONT`) to the server.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A stopped process cannot die of SIGKILL until it is continued on some systems.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(self.pid().to_string())
                .status();
        }
        self.kill();
    }
}

/// Runs `f` until it returns `true` or `limit` passes; returns how long it took, or `None`.
pub(crate) async fn within<F, Fut>(limit: Duration, mut f: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if f().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}
