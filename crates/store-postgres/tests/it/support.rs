//! Fresh schemas on the test server, and a plain admin connection for what the adapters' API does
//! not do (inspecting `pg_stat_ssl`, terminating backends, editing the migrations table).
//!
//! Every test gets its own schema, `phaze_test_<seconds, 8 hex><random, 16 hex>`, dropped when its
//! guard drops (also on a panic); schemas older than an hour, left by killed runs, are swept once
//! per process. The seconds come from the database's clock, so test code never reads the clock.

use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::harness;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// The pool size tests use: small enough that the concurrency contracts queue for connections.
pub(crate) const POOL_SIZE: usize = 8;

/// A config for the test server, in `schema`.
pub(crate) fn config(schema: Option<&str>) -> PgConfig {
    PgConfig {
        url: phaze_testkit::database_url(),
        schema: schema.map(str::to_owned),
        ca_file: None,
        pool_size: POOL_SIZE,
        connect_timeout: Duration::from_secs(5),
        wait_timeout: Duration::from_secs(20),
        query_timeout: std::time::Duration::from_secs(5),
    }
}

/// Runs `f` to completion on a runtime of its own: what the harness's checks, which run before
/// any test and outside any runtime, use.
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The harness's check of the test server: it answers a connection, within 5 s.
pub(crate) fn reachable() -> Result<(), String> {
    block_on(async {
        let url = phaze_testkit::database_url();
        let connect = tokio_postgres::connect(&url, NoTls);
        match tokio::time::timeout(Duration::from_secs(5), connect).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!(
                "{} (PHAZE_TEST_DATABASE_URL, or the local server)",
                harness::sources(&e)
            )),
            Err(_) => Err("no answer within 5 s".to_owned()),
        }
    })
}

/// A plain connection to the test server (no TLS: the admin side proves nothing about TLS, and the
/// local server accepts plain connections). The harness found the server reachable, so an error
/// fails the test.
pub(crate) async fn admin() -> Client {
    match tokio_postgres::connect(&phaze_testkit::database_url(), NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            sweep_once(&client).await;
            client
        }
        Err(e) => phaze_testkit::server_unavailable("PostgreSQL", &e),
    }
}

static SWEPT: AtomicBool = AtomicBool::new(false);

/// Drops test schemas older than an hour (a killed run's), once per process.
async fn sweep_once(client: &Client) {
    if SWEPT.swap(true, Ordering::SeqCst) {
        return;
    }
    let rows = client
        .query(
            "SELECT nspname FROM pg_namespace \
             WHERE nspname ~ '^phaze_test_[0-9a-f]{24}$' \
             AND ('x' || substr(nspname, 12, 8))::bit(32)::bigint \
                 < extract(epoch FROM now())::bigint - 3600",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .await;
    }
}

/// A new schema name, unique across runs and processes.
pub(crate) async fn schema_name(client: &Client) -> String {
    let secs: i64 = client
        .query_one("SELECT extract(epoch FROM now())::bigint", &[])
        .await
        .unwrap()
        .get(0);
    format!(
        "phaze_test_{:08x}{:016x}",
        secs as u32,
        rand::random::<u64>()
    )
}

/// Drops its schema (and everything in it) when dropped, from a thread of its own so that it works
/// inside or outside a runtime.
pub(crate) struct SchemaGuard(pub(crate) String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let url = phaze_testkit::database_url();
                if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

/// A schema of its own, migrated, and the admin connection.
pub(crate) struct TestDb {
    pub(crate) pg: Postgres,
    pub(crate) admin: Client,
    pub(crate) guard: SchemaGuard,
}

impl TestDb {
    pub(crate) fn schema(&self) -> &str {
        &self.guard.0
    }
}

/// A fresh, unmigrated schema's [`Postgres`] (the schema itself does not exist yet).
pub(crate) async fn unmigrated() -> TestDb {
    let admin = admin().await;
    let schema = schema_name(&admin).await;
    let pg = Postgres::new(&config(Some(&schema))).unwrap();
    TestDb {
        pg,
        admin,
        guard: SchemaGuard(schema),
    }
}

/// A fresh schema, migrated.
pub(crate) async fn fresh() -> TestDb {
    let db = unmigrated().await;
    db.pg.migrate().await.unwrap();
    db
}

/// `(store, guard)` for the contract macros: `pick` chooses the adapter.
pub(crate) async fn contract<S>(pick: impl FnOnce(&Postgres) -> S) -> (S, SchemaGuard) {
    let db = fresh().await;
    (pick(&db.pg), db.guard)
}

/// Every error in `e`'s source chain, Display and Debug, as one string.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{e} | {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    out
}
