//! Phaze's session and rate-limit ports over Redis: the store for the cluster deployment, where
//! any number of portal processes share one Redis. [`Redis`] owns a pool of connections
//! (deadpool-redis); [`Redis::sessions`] and [`Redis::rate_limits`] hand out the adapters, which
//! are cheap clones of it.
//!
//! Needs Redis 5 or later (scripts that read `TIME` and then write rely on effects replication;
//! tested with 7.0), reached at one address: a standalone server or a managed primary, not Redis
//! Cluster (a script touches keys it derives from a record, so they cannot be declared up front).
//! `rediss://` uses rustls with the `ring` provider and the webpki roots, or only the CA given to
//! [`Redis::with_tls_ca`].
//!
//! ```text
//! <prefix>session:<session key hex>          hash   user, uh (sha256(user) hex), exp, sup, data
//! <prefix>user-sessions:<sha256(user) hex>   set    session key hexes of one user
//! <prefix>session-expiry                     zset   "<exp>:<session key hex>", every score 0
//! <prefix>ratelimit:<limit key hex>          zset   "<instant>:<n>", every score 0
//! ```
//!
//! `<exp>` is a session's `expires_at` as Unix nanoseconds (an `i128`), offset by 2¹²⁷ and written
//! as 39 zero-padded decimal digits; `<instant>` is a rate-limit instant (`i64` Unix ns) offset by
//! 2⁶³ in 20 digits. Both encodings sort bytewise exactly as the numbers do, so Redis compares them
//! with its lexicographic sorted-set commands (`ZRANGEBYLEX`, `ZLEXCOUNT`, `ZREMRANGEBYLEX`, which
//! compare with `memcmp`): no nanosecond timestamp ever becomes a Lua number (a double, exact only
//! to 2⁵³, while today is about 1.8·10¹⁸ ns) and no Lua string comparison (locale-dependent) is
//! made.
//!
//! **Invariants:**
//! - Every port method is one Redis command or one Lua script, so it is atomic across every process
//!   sharing the Redis: an insert is create-if-absent, an update never resurrects a removed record,
//!   and of N simultaneous rate-limit hits against a limit L exactly L are allowed. Scripts are
//!   sent once and then called by SHA (`EVALSHA`, with a reload if the server lost them).
//! - Every key starts with the configured prefix, so deployments share a Redis without seeing each
//!   other; no prefix may be a prefix of another deployment's. User ids only appear hashed in
//!   key names.
//! - A rate-limit decision is [`phaze_ratelimit::decide`]: the script returns how many instants
//!   are in the window and the oldest of them, recording the hit when allowed, and Rust finishes
//!   the arithmetic. A rate-limit key expires one period after its last recorded hit (`PEXPIRE`),
//!   so idle logs vanish by themselves and `purge_idle` keeps the port's default.
//! - A session record's TTL is `max(expires_at − Redis time, 0)` plus an hour of slack, taken from
//!   the server's `TIME` inside the script, so every portal process agrees on it whatever its own
//!   clock says. The TTL is a safety net, never the expiry rule: the manager judges expiry with
//!   its own `now`, and [`phaze_sessions::SessionStore::purge_expired`] deletes exactly the
//!   records expired at the `now` it is given, using the expiry index. Run it periodically (say
//!   every few minutes): it is also what trims the index of records Redis already dropped.
//! - Commands share connections: a connection is multiplexed (redis-rs), so a command takes it
//!   out of the pool only long enough to clone its handle, and the commands of concurrent requests
//!   go out pipelined, several in one write and one read. Each command still waits for its own
//!   reply, so nothing is read before the request that needs it arrived. A single-threaded
//!   runtime's thread keeps exactly one connection, so all its commands ride it; spread over
//!   several, each write and read would carry fewer of them (measured: a portal page that makes
//!   one lookup, 16–37% more pages per second than with a thread's commands on eight).
//! - Nothing waits forever: the pool's wait, create and recycle steps and every connection's
//!   connect and response have a timeout.
//! - A dead connection is never handed out again: a command that fails marks its connection
//!   broken and the pool drops it at the next checkout; one idle for over a second is checked with
//!   a `PING` first. So the pool recovers by itself within seconds of Redis coming back, and a
//!   busy pool pays no extra round trip per checkout (deadpool-redis's own check is a `PING` every
//!   time, doubling the cost of a one-command operation).
//! - Library code never panics. Driver errors become the ports' `Backend` error; no error or
//!   `Debug` output contains the URL's password.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use phaze_store_redis::{Redis, RedisConfig};
//! use std::sync::Arc;
//! use std::time::Duration;
//! let redis = Redis::new(&RedisConfig {
//!     url: "redis://127.0.0.1:6379".to_owned(),
//!     prefix: "phaze:".to_owned(),
//!     pool_size: 16,
//!     connect_timeout: Duration::from_secs(2),
//!     wait_timeout: Duration::from_secs(2),
//!     response_timeout: Duration::from_secs(1),
//! })?;
//! redis.ping().await?;
//! let sessions: Arc<dyn phaze_sessions::SessionStore> = Arc::new(redis.sessions());
//! let limits: Arc<dyn phaze_ratelimit::RateLimitStore> = Arc::new(redis.rate_limits());
//! # Ok(()) }
//! ```
//!
//! [`Redis::new`] checks the configuration and connects to nothing, so a configuration can be
//! checked without a server:
//!
//! ```
//! use phaze_store_redis::{Redis, RedisConfig, RedisError};
//! use std::time::Duration;
//! let config = |prefix: &str| RedisConfig {
//!     url: "rediss://:s3cret@cache.internal:6380/0".to_owned(),
//!     prefix: prefix.to_owned(),
//!     pool_size: 16,
//!     connect_timeout: Duration::from_secs(2),
//!     wait_timeout: Duration::from_secs(2),
//!     response_timeout: Duration::from_secs(1),
//! };
//! let redis = Redis::new(&config("phaze:"))?;
//! // Neither the configuration nor the store ever shows the password.
//! assert!(!format!("{:?} {redis:?}", config("phaze:")).contains("s3cret"));
//! // A glob character is refused: `SCAN MATCH <prefix>*` must find this deployment's keys only.
//! assert!(matches!(Redis::new(&config("phaze*")), Err(RedisError::InvalidPrefix(_))));
//! # Ok::<(), RedisError>(())
//! ```
#![warn(missing_docs)]

mod ratelimit;
mod sessions;

pub use ratelimit::RedisRateLimits;
pub use sessions::RedisSessions;

use deadpool::managed::{self, Metrics, Pool, QueueMode, RecycleResult};
use deadpool::Runtime;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, TlsCertificates};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thread_local::ThreadLocal;

/// The longest key prefix accepted, in bytes.
const MAX_PREFIX_LEN: usize = 64;
/// A pooled connection idle for longer than this is checked with a `PING` before it is handed
/// out; one used more recently is handed out as it is (see [`Manager`]).
const RECHECK_IDLE: Duration = Duration::from_secs(1);

/// How to reach Redis. `Debug` hides the URL's password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS (the server's
    /// certificate is verified against the webpki roots, or the CA given to
    /// [`Redis::with_tls_ca`]).
    pub url: String,
    /// Every key starts with it, e.g. `phaze:`: several deployments share one Redis. Non-empty,
    /// at most 64 bytes of printable ASCII without spaces or glob characters (`*?[]\`).
    pub prefix: String,
    /// The most connections open at once on a multi-threaded runtime (at least 1), whose tasks
    /// share one pool; commands ride the most recently used connection (pipelined), and more are
    /// opened only while it is being (re)connected or checked. Each single-threaded runtime
    /// (an actix-web worker) keeps one connection of its own instead.
    pub pool_size: usize,
    /// Opening a connection (TCP, TLS, `AUTH`/`SELECT`) takes at most this long.
    pub connect_timeout: Duration,
    /// Waiting for a free connection when all are busy takes at most this long.
    pub wait_timeout: Duration,
    /// A command whose reply takes longer fails instead of stalling the request.
    pub response_timeout: Duration,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("wait_timeout", &self.wait_timeout)
            .field("response_timeout", &self.response_timeout)
            .finish()
    }
}

/// Errors of building or reaching a [`Redis`]. None of them shows the URL or its password.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL cannot be used; the message says why without quoting it.
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// The key prefix breaks a rule of [`RedisConfig::prefix`].
    #[error("invalid Redis key prefix: {0}")]
    InvalidPrefix(&'static str),
    /// A pool size or timeout is zero.
    #[error("invalid Redis configuration: {0}")]
    InvalidConfig(&'static str),
    /// The CA certificate given for `rediss://` is not usable PEM.
    #[error("invalid Redis TLS CA certificate: {0}")]
    InvalidCa(String),
    /// Redis could not be reached, timed out or failed a command.
    #[error("Redis unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Redis answered with something this crate never writes (a foreign or damaged key).
    #[error("unexpected data in Redis: {0}")]
    Malformed(&'static str),
}

impl RedisError {
    fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

/// Pools of connections to one Redis, and the key prefix of this deployment. Cloning is cheap and
/// shares the pools.
///
/// A connection's I/O runs as a task on the runtime that opened it. A server with one
/// single-threaded runtime per worker thread (actix-web) gets one connection per thread, so a
/// command never wakes another thread and the commands of one thread's requests are pipelined on
/// it; a multi-threaded runtime, whose tasks move between threads anyway, shares one pool of
/// [`RedisConfig::pool_size`].
#[derive(Clone)]
pub struct Redis {
    shared: Pool<Manager>,
    per_thread: Arc<ThreadLocal<Pool<Manager>>>,
    recipe: Arc<PoolRecipe>,
    prefix: Arc<str>,
}

/// What the pools are built from.
struct PoolRecipe {
    info: redis::ConnectionInfo,
    connection: AsyncConnectionConfig,
    /// The configured size, for the shared pool.
    size: usize,
    wait: Duration,
    create: Duration,
    recycle: Duration,
}

impl PoolRecipe {
    fn build(&self, size: usize) -> Result<Pool<Manager>, RedisError> {
        let manager = Manager(
            deadpool_redis::Manager::new_with_config(self.info.clone(), self.connection.clone())
                .map_err(|e| RedisError::InvalidUrl(describe(&e)))?,
        );
        Pool::builder(manager)
            .max_size(size)
            // The connection returned last is handed out first, so commands keep riding one
            // connection (pipelined) and the others idle, instead of taking turns on all of them.
            .queue_mode(QueueMode::Lifo)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(self.wait))
            .create_timeout(Some(self.create))
            .recycle_timeout(Some(self.recycle))
            .build()
            .map_err(|_| RedisError::InvalidConfig("the connection pool cannot be built"))
    }
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut size, mut available) = (0, 0);
        for pool in self.per_thread.iter().chain([&self.shared]) {
            let status = pool.status();
            size += status.size;
            available += status.available;
        }
        f.debug_struct("Redis")
            .field("prefix", &self.prefix)
            .field("pool_size", &size)
            .field("pool_available", &available)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Builds the pool without connecting (connections are made on first use, inside a tokio
    /// runtime). Fails on a bad URL, prefix, size or timeout, never on an unreachable server: see
    /// [`Redis::ping`].
    pub fn new(config: &RedisConfig) -> Result<Self, RedisError> {
        Self::build(config, None)
    }

    /// [`Redis::new`] for a `rediss://` URL whose server certificate is signed by a private CA:
    /// only the CA certificates in `ca_pem` (PEM, one or more) are trusted, the public roots are
    /// not. The caller reads the file; this crate never touches the filesystem.
    pub fn with_tls_ca(config: &RedisConfig, ca_pem: &[u8]) -> Result<Self, RedisError> {
        Self::build(config, Some(ca_pem))
    }

    fn build(config: &RedisConfig, ca_pem: Option<&[u8]>) -> Result<Self, RedisError> {
        validate_prefix(&config.prefix)?;
        if config.pool_size == 0 {
            return Err(RedisError::InvalidConfig("pool_size must be at least 1"));
        }
        for (timeout, what) in [
            (config.connect_timeout, "connect_timeout must not be zero"),
            (config.wait_timeout, "wait_timeout must not be zero"),
            (config.response_timeout, "response_timeout must not be zero"),
        ] {
            if timeout.is_zero() {
                return Err(RedisError::InvalidConfig(what));
            }
        }
        let tls = match config.url.split_once("://") {
            Some(("redis", _)) => false,
            Some(("rediss", _)) => true,
            _ => {
                return Err(RedisError::InvalidUrl(
                    "the scheme must be redis:// or rediss://".to_owned(),
                ))
            }
        };
        if ca_pem.is_some() && !tls {
            return Err(RedisError::InvalidUrl(
                "a TLS CA certificate needs a rediss:// URL".to_owned(),
            ));
        }
        if tls {
            // rustls picks the process-wide crypto provider; this crate is built with `ring` only
            // (no aws-lc-rs). If the application installed a provider already, it stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| RedisError::InvalidUrl(describe(&e)))?;
        if let Some(pem) = ca_pem {
            check_ca(pem)?;
            info = Client::build_with_tls(
                info,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            )
            .map_err(|e| RedisError::InvalidCa(describe(&e)))?
            .get_connection_info()
            .clone();
        }
        let recipe = PoolRecipe {
            info,
            connection: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.connect_timeout))
                .set_response_timeout(Some(config.response_timeout)),
            size: config.pool_size,
            wait: config.wait_timeout,
            // Connecting is a TCP (and TLS) handshake plus a few setup commands.
            create: config.connect_timeout + config.response_timeout,
            // Recycling a connection is one `PING`.
            recycle: config.response_timeout,
        };
        Ok(Self {
            // Built here, so that a configuration the pool refuses fails now, not on first use.
            shared: recipe.build(recipe.size)?,
            per_thread: Arc::new(ThreadLocal::new()),
            recipe: Arc::new(recipe),
            prefix: Arc::from(config.prefix.as_str()),
        })
    }

    /// One `PING` through the pool: whether Redis answers within the timeouts (for `/readyz`).
    pub async fn ping(&self) -> Result<(), RedisError> {
        let pong: String = self.query(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(RedisError::Malformed("PING was not answered with PONG"))
        }
    }

    /// The session store of this deployment.
    pub fn sessions(&self) -> RedisSessions {
        RedisSessions::new(self.clone())
    }

    /// The rate-limit store of this deployment.
    pub fn rate_limits(&self) -> RedisRateLimits {
        RedisRateLimits::new(self.clone())
    }

    /// Runs a script on a pooled connection.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &redis::ScriptInvocation<'_>,
    ) -> Result<T, RedisError> {
        let mut conn = self.conn().await?;
        let result = script.invoke_async(&mut conn.handle).await;
        conn.check(result)
    }

    /// Runs a command on a pooled connection.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let mut conn = self.conn().await?;
        let result = cmd.query_async(&mut conn.handle).await;
        conn.check(result)
    }

    /// A handle on this thread's connection (a connection of the shared pool on a multi-threaded
    /// runtime), within the wait, create and recycle timeouts. The connection goes back to the
    /// pool at once, so the next command, of this request or another, shares it. A thread's pool
    /// holds one connection: while it is being (re)connected or checked, the thread's other
    /// commands wait for it (within the wait timeout) rather than open more.
    async fn conn(&self) -> Result<Shared, RedisError> {
        let pool = if on_current_thread_runtime() {
            self.per_thread.get_or_try(|| self.recipe.build(1))?
        } else {
            &self.shared
        };
        let pooled = pool.get().await.map_err(RedisError::unavailable)?;
        Ok(Shared::clone(&pooled))
    }

    /// The deployment's key prefix.
    fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Whether the calling task runs on a single-threaded tokio runtime (then it never leaves this
/// thread, and neither do connections opened here).
fn on_current_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread)
}

/// deadpool-redis's manager with a cheaper recycle check. Its own check (`UNWATCH` + `PING`) costs
/// a round trip per checkout, as much as the command the connection is taken for. Here a
/// connection on which a command failed is marked broken ([`Shared::check`]) and dropped at its
/// next checkout, so one that is not marked last worked; only one idle for more than
/// [`RECHECK_IDLE`] (which Redis or a proxy may have closed meanwhile) is pinged first.
struct Manager(deadpool_redis::Manager);

impl managed::Manager for Manager {
    type Type = Shared;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Shared, redis::RedisError> {
        Ok(Shared {
            handle: self.0.create().await?,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn recycle(
        &self,
        conn: &mut Shared,
        metrics: &Metrics,
    ) -> RecycleResult<redis::RedisError> {
        if conn.broken.load(Ordering::Relaxed) {
            Err(managed::RecycleError::message("a command on it failed"))
        } else if metrics.last_used() < RECHECK_IDLE {
            Ok(())
        } else {
            self.0.recycle(&mut conn.handle, metrics).await
        }
    }
}

/// A handle on a pooled multiplexed connection, shared by every command that cloned it.
#[derive(Clone)]
struct Shared {
    handle: MultiplexedConnection,
    /// Set when a command on the connection failed; the pool then drops it.
    broken: Arc<AtomicBool>,
}

impl Shared {
    /// The result of a command on this connection. On any error the connection is marked broken,
    /// so the pool drops it instead of handing it out again: after an I/O error or a timeout it is
    /// dead or suspect, and the rare other errors are not worth telling apart for the price of one
    /// reconnect. Commands already sent on it finish or fail by themselves.
    fn check<T>(self, result: redis::RedisResult<T>) -> Result<T, RedisError> {
        result.map_err(|e| {
            self.broken.store(true, Ordering::Relaxed);
            RedisError::unavailable(e)
        })
    }
}

/// Checks the rules of [`RedisConfig::prefix`].
fn validate_prefix(prefix: &str) -> Result<(), RedisError> {
    if prefix.is_empty() {
        return Err(RedisError::InvalidPrefix("it must not be empty"));
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(RedisError::InvalidPrefix("it must be at most 64 bytes"));
    }
    if !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(RedisError::InvalidPrefix(
            "it must be printable ASCII without spaces",
        ));
    }
    // Operators find a deployment's keys with `SCAN MATCH <prefix>*`; a glob character in the
    // prefix would make that match other deployments' keys.
    if prefix
        .bytes()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b']' | b'\\'))
    {
        return Err(RedisError::InvalidPrefix(
            "it must not contain glob characters (*?[]\\)",
        ));
    }
    Ok(())
}

/// Accepts PEM holding at least one certificate and nothing unparsable: an empty trust store
/// would only show up later, as every connection failing verification.
fn check_ca(pem: &[u8]) -> Result<(), RedisError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut count = 0usize;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| RedisError::InvalidCa(e.to_string()))?;
        count += 1;
    }
    if count == 0 {
        return Err(RedisError::InvalidCa(
            "no CERTIFICATE block in the PEM".to_owned(),
        ));
    }
    Ok(())
}

/// A driver error as text. The driver's configuration errors are fixed sentences that never quote
/// the URL; should one ever carry something URL-like, only a generic sentence is kept.
fn describe(e: &redis::RedisError) -> String {
    let text = e.to_string();
    if text.contains('@') || text.contains("://") {
        "the driver rejected it".to_owned()
    } else {
        text
    }
}

/// The URL with any password replaced, for `Debug`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(user, _)| user);
            format!("{scheme}://{user}:<redacted>@{host}{}", redact_query(tail))
        }
        None => format!("{scheme}://{authority}{}", redact_query(tail)),
    }
}

/// The path of a URL without its query, which may carry `?pass=…`.
fn redact_query(tail: &str) -> String {
    match tail.split_once('?') {
        Some((path, _)) => format!("{path}?<redacted>"),
        None => tail.to_owned(),
    }
}

#[cfg(test)]
mod tests;
