//! Phaze's account, token, session and rate-limit ports over PostgreSQL: the cluster shape, where
//! any number of portal processes share one database. [`Postgres`] owns a connection pool and
//! hands out one adapter per port ([`PgAccounts`], [`PgTokens`], [`PgSessions`],
//! [`PgRateLimits`]); the schema is the top-level `migrations/` folder, embedded in the binary and
//! applied by [`Postgres::migrate`] (`phaze-portal migrate`).
//!
//! ```no_run
//! use phaze_store_postgres::{PgConfig, Postgres};
//! use std::sync::Arc;
//! use std::time::Duration;
//! # async fn run() -> Result<(), phaze_store_postgres::PgError> {
//! let pg = Postgres::new(&PgConfig {
//!     url: "postgres://phaze@db.internal/phaze?sslmode=require".into(),
//!     schema: None,
//!     ca_file: None,
//!     pool_size: 16,
//!     connect_timeout: Duration::from_secs(3),
//!     wait_timeout: Duration::from_secs(2),
//!     query_timeout: std::time::Duration::from_secs(5),
//! })?;
//! pg.check_schema().await?; // refuses a database this build does not know
//! let sessions: Arc<dyn phaze_sessions::SessionStore> = Arc::new(pg.sessions());
//! # Ok(()) }
//! ```
//!
//! Building a [`Postgres`] validates the configuration and opens no connection, so a
//! configuration can be checked without a server:
//!
//! ```
//! use phaze_store_postgres::{PgConfig, PgError, Postgres};
//! use std::time::Duration;
//! let config = |schema: &str| PgConfig {
//!     url: "postgres://phaze:s3cret@db.internal/phaze?sslmode=require".into(),
//!     schema: Some(schema.into()),
//!     ca_file: None,
//!     pool_size: 16,
//!     connect_timeout: Duration::from_secs(3),
//!     wait_timeout: Duration::from_secs(2),
//!     query_timeout: Duration::from_secs(5),
//! };
//! let pg = Postgres::new(&config("tenant_a"))?;
//! // Neither the configuration nor the store ever shows the password.
//! assert!(!format!("{:?} {pg:?}", config("tenant_a")).contains("s3cret"));
//! // The schema is the one name spliced into SQL: a plain lower-case identifier or nothing.
//! let refused = Postgres::new(&config("public; DROP TABLE phaze_accounts"));
//! assert!(matches!(refused, Err(PgError::InvalidSchema { .. })));
//! # Ok::<(), PgError>(())
//! ```
//!
//! **Why diesel-async on deadpool, not diesel on r2d2 and a blocking pool.** The portal is async
//! (actix-web on tokio) and every request that reaches a store awaits it. With r2d2 each query
//! holds one of tokio's blocking threads for its whole round trip and `get` parks a thread while
//! it waits for a connection, so a slow or restarting database becomes blocking-pool exhaustion
//! that stalls unrelated work (argon2 runs on that pool too). diesel-async speaks the protocol
//! through tokio-postgres on the portal's own runtime: a request waiting for the database is a
//! parked future, not a parked thread, and every wait has a deadpool bound (`wait` for a free
//! connection, `create` for a new one, `recycle` for the checkout check), all set from
//! [`PgConfig`], none infinite. deadpool rather than bb8 because the Redis adapter
//! (deadpool-redis) uses it too: one pool model and one set of knobs for both stores. A checkout
//! drops a connection the server has closed (a restart ends every session, and the connection's
//! driver task sees that at once) and pings one that has been idle for a second or more, so after
//! a restart the pool serves fresh connections as soon as the server accepts them. A busy
//! connection skips the ping, which would otherwise double the latency of every operation (a
//! session lookup took about 0.1 ms here, 0.23 ms with a ping on every checkout). tokio-postgres
//! is pure Rust: no libpq to install, TLS through rustls and *ring*.
//!
//! **Invariants:**
//! - Every value reaches SQL as a bound parameter; the only text ever spliced into SQL is the
//!   schema name, and [`PgConfig`] validation admits nothing but `[a-z_][a-z0-9_]*` there.
//! - Queries never read the database's clock: every instant is the `now` the port receives.
//! - Each port method is one statement, or one transaction where a decision needs a row lock (a
//!   rate-limit hit): uniqueness, single use and exact limits hold across every process.
//! - Errors never carry the URL's password; this crate logs nothing.
//! - Library code never panics; driver errors become the port's `Backend` (or `Duplicate`).
//!
//! Instants are stored to the microsecond, PostgreSQL's precision: a sub-microsecond part is cut
//! off (expiry becomes at most a microsecond earlier, never later).
#![warn(missing_docs)]

pub mod account_cache;
mod accounts;
mod audit;
mod config;
mod connect;
mod devices;
mod migrations;
mod payments;
mod ratelimit;
mod schema;
mod sessions;
mod tokens;

pub use account_cache::{AccountWatcher, WatchEvent};
pub use accounts::PgAccounts;
pub use audit::PgAudit;
pub use config::PgConfig;
pub use devices::{PgAddressPool, PgDevices};
pub use payments::{PgProcessedEvents, PgSubscriptions};
pub use ratelimit::PgRateLimits;
pub use sessions::PgSessions;
pub use tokens::PgTokens;

use diesel::sql_types::Integer;
use diesel::IntoSql;
use diesel_async::pooled_connection::deadpool::{Hook, HookError, Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, PoolError, RecyclingMethod,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use thread_local::ThreadLocal;

use crate::connect::Connector;

/// A boxed error from the driver, the pool or the TLS stack.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of building, probing and migrating a [`Postgres`]. The ports' methods use the ports' own
/// error types. No variant's message contains the URL or its password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The URL does not parse (the message names the offending option, never its value).
    #[error("invalid PostgreSQL URL")]
    InvalidUrl(#[source] BoxError),
    /// The configured schema is not a plain lower-case identifier.
    #[error("invalid schema name {name:?}: {reason}")]
    InvalidSchema {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Another setting is out of range.
    #[error("invalid PostgreSQL setting: {0}")]
    InvalidSetting(&'static str),
    /// The CA file cannot be read or holds no certificate.
    #[error("cannot use CA file {}", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// The database could not be reached or a query failed.
    #[error("PostgreSQL unavailable")]
    Unavailable(#[source] BoxError),
    /// Applying a migration failed; its transaction was rolled back.
    #[error("migrating PostgreSQL failed")]
    Migration(#[source] BoxError),
    /// The database lacks migrations this build has.
    #[error(
        "database schema is behind this build (missing {}): run `phaze-portal migrate`",
        .missing.join(", ")
    )]
    SchemaBehind {
        /// Embedded migrations not applied, by name (`<version>_<name>`).
        missing: Vec<String>,
    },
    /// The database has migrations this build does not know: a newer build migrated it.
    #[error(
        "database schema is newer than this build (unknown {}): deploy the build that migrated it",
        .unknown.join(", ")
    )]
    SchemaAhead {
        /// Applied versions this build does not embed.
        unknown: Vec<String>,
    },
}

/// Connection pools to one database (and schema), and the adapters over them. Cloning is cheap
/// and shares the pools.
#[derive(Clone)]
pub struct Postgres {
    pool: Pools,
    connector: Arc<Connector>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut size, mut available) = (0, 0);
        for pool in self.pool.per_thread.iter().chain([&self.pool.shared]) {
            let status = pool.status();
            size += status.size;
            available += status.available;
        }
        f.debug_struct("Postgres")
            .field("schema", &self.connector.schema)
            .field("max_size_per_thread", &self.pool.thread_size)
            .field("size", &size)
            .field("available", &available)
            .finish_non_exhaustive()
    }
}

/// The connection pools. A connection's I/O runs as a task on the runtime that opened it. A server
/// with one single-threaded runtime per worker thread (actix-web) gets a pool per thread, so a
/// query never wakes another thread; a multi-threaded runtime, whose tasks move between threads
/// anyway, shares one pool.
#[derive(Clone)]
pub(crate) struct Pools {
    shared: Pool<AsyncPgConnection>,
    per_thread: Arc<ThreadLocal<Pool<AsyncPgConnection>>>,
    connector: Arc<Connector>,
    /// Connections per thread: the configured size split over the machine's threads.
    thread_size: usize,
}

impl Pools {
    fn new(connector: Arc<Connector>, size: usize) -> Result<Self, BoxError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            shared: build_pool(&connector, size)?,
            per_thread: Arc::new(ThreadLocal::new()),
            connector,
            thread_size: size.div_ceil(threads),
        })
    }

    /// This thread's pool (the shared one on a multi-threaded runtime).
    fn pool(&self) -> Result<&Pool<AsyncPgConnection>, BoxError> {
        let single = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread);
        if single {
            self.per_thread
                .get_or_try(|| build_pool(&self.connector, self.thread_size))
        } else {
            Ok(&self.shared)
        }
    }
}

/// A pool of at most `size` connections made by `connector`.
fn build_pool(
    connector: &Arc<Connector>,
    size: usize,
) -> Result<Pool<AsyncPgConnection>, BoxError> {
    let setup = connector.clone();
    let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
    // Every checkout drops a connection that is closed (the server ended it: a restart, a
    // terminated backend) or left in a broken transaction; idle ones are also pinged, below.
    manager_config.recycling_method = RecyclingMethod::Fast;
    manager_config.custom_setup = Box::new(move |_url| {
        let connector = setup.clone();
        Box::pin(async move { connector.connect().await })
    });
    // The manager never sees the URL: connections are made from the parsed configuration.
    let manager = AsyncDieselConnectionManager::new_with_config("", manager_config);
    let timeouts = connector.timeouts;
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(timeouts.wait))
        .create_timeout(Some(timeouts.create))
        .recycle_timeout(Some(timeouts.recycle))
        .post_recycle(Hook::async_fn(move |conn, metrics| {
            Box::pin(check_if_idle(conn, metrics.last_used(), timeouts.recycle))
        }))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Box::new(e) as BoxError)
}

impl Postgres {
    /// Validates `config` and builds the pools. Opens no connection (the first use does); reads
    /// `ca_file` if one is set, so a bad path fails here rather than on the first request.
    pub fn new(config: &PgConfig) -> Result<Self, PgError> {
        let settings = config.validate()?;
        let connector = Arc::new(Connector::new(settings)?);
        let pool = Pools::new(connector.clone(), config.pool_size).map_err(PgError::Unavailable)?;
        Ok(Self { pool, connector })
    }

    /// `SELECT 1` on a pooled connection: whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), PgError> {
        let mut conn = self.conn().await.map_err(PgError::Unavailable)?;
        diesel::select(1.into_sql::<Integer>())
            .get_result::<i32>(&mut conn)
            .await
            .map(drop)
            .map_err(|e| PgError::Unavailable(Box::new(e)))
    }

    /// Applies the embedded migrations the database lacks, each in its own transaction, and
    /// returns the names (`<version>_<name>`) of those applied, oldest first; empty if the
    /// database was up to date. Creates the configured schema first if it does not exist. Runs
    /// on a connection of its own, under an advisory lock, so processes migrating at once apply
    /// each migration once.
    pub async fn migrate(&self) -> Result<Vec<String>, PgError> {
        migrations::migrate(&self.connector).await
    }

    /// `Ok` only if the database has exactly the embedded migrations applied; otherwise
    /// [`PgError::SchemaBehind`] (run `phaze-portal migrate`) or [`PgError::SchemaAhead`] (this
    /// build is older than the database). Writes nothing.
    pub async fn check_schema(&self) -> Result<(), PgError> {
        let mut conn = self.conn().await.map_err(PgError::Unavailable)?;
        migrations::check(&mut conn).await
    }

    /// The [`phaze_auth::AccountStore`] over this pool.
    pub fn accounts(&self) -> PgAccounts {
        PgAccounts::new(self.pool.clone(), None)
    }

    /// The [`phaze_auth::AccountStore`] over this pool, with a cache of up to `capacity` (at
    /// least 1) accounts by id, and the watcher that keeps it in step with the table: spawn
    /// [`AccountWatcher::run`], or the cache never serves (see [`account_cache`]).
    pub fn cached_accounts(&self, capacity: usize) -> (PgAccounts, AccountWatcher) {
        let cache = Arc::new(account_cache::AccountCache::new(capacity.max(1)));
        (
            PgAccounts::new(self.pool.clone(), Some(cache.clone())),
            AccountWatcher::new(self.connector.clone(), cache),
        )
    }

    /// The [`phaze_auth::TokenStore`] over this pool.
    pub fn tokens(&self) -> PgTokens {
        PgTokens::new(self.pool.clone())
    }

    /// The device store.
    pub fn devices(&self) -> PgDevices {
        PgDevices::new(self.pool.clone())
    }

    /// The tunnel address pool.
    pub fn address_pool(&self) -> PgAddressPool {
        PgAddressPool::new(self.pool.clone())
    }

    /// The audit log.
    pub fn audit(&self) -> PgAudit {
        PgAudit::new(self.pool.clone())
    }

    /// The [`phaze_sessions::SessionStore`] over this pool.
    pub fn sessions(&self) -> PgSessions {
        PgSessions::new(self.pool.clone())
    }

    /// The [`phaze_ratelimit::RateLimitStore`] over this pool.
    pub fn rate_limits(&self) -> PgRateLimits {
        PgRateLimits::new(self.pool.clone())
    }

    /// The [`phaze_payments::ProcessedEvents`] over this pool.
    pub fn processed_events(&self) -> PgProcessedEvents {
        PgProcessedEvents::new(self.pool.clone())
    }

    /// The [`phaze_payments::Subscriptions`] over this pool.
    pub fn subscriptions(&self) -> PgSubscriptions {
        PgSubscriptions::new(self.pool.clone())
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, BoxError> {
        checkout(&self.pool).await
    }
}

/// A connection unused for this long is pinged before it is handed out: idle connections are the
/// ones that die unnoticed (a firewall forgetting the flow, a failover). A busy connection skips
/// the round trip: if the server closes it, its driver task sees that at once and the checkout's
/// `is_broken` check drops it.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The pool's `post_recycle` hook: `SELECT 1` on a connection idle for `IDLE_CHECK` or more,
/// within `limit`; an error discards the connection and the checkout moves on to another (or a
/// new) one.
async fn check_if_idle(
    conn: &mut AsyncPgConnection,
    idle: std::time::Duration,
    limit: std::time::Duration,
) -> Result<(), HookError> {
    if idle < IDLE_CHECK {
        return Ok(());
    }
    let ping = diesel::select(1.into_sql::<Integer>()).get_result::<i32>(conn);
    match tokio::time::timeout(limit, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(HookError::Backend(PoolError::QueryError(e))),
        Err(_) => Err(HookError::message("idle connection did not answer")),
    }
}

/// A connection from this thread's pool; the error is the pool's (timeout, or why a connection
/// could not be made).
async fn checkout(pools: &Pools) -> Result<Object<AsyncPgConnection>, BoxError> {
    pools
        .pool()?
        .get()
        .await
        .map_err(|e| Box::new(e) as BoxError)
}

/// A row this crate did not write: a column out of its domain (e.g. a 31-byte key).
#[derive(Debug, thiserror::Error)]
#[error("corrupt {0} row")]
struct Corrupt(&'static str);

/// The 32 bytes of a `bytea` column that a CHECK constraint keeps at 32 bytes.
fn bytes32(bytes: Vec<u8>, table: &'static str) -> Result<[u8; 32], Corrupt> {
    <[u8; 32]>::try_from(bytes).map_err(|_| Corrupt(table))
}
