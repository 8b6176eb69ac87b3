//! The account cache across processes: a change made through one `Postgres` (another process's
//! pool) or by hand reaches the cache of another through `LISTEN`/`NOTIFY`; the cache serves
//! nothing while its watcher is not listening; and it comes back by itself.

use phaze_auth::{Account, AccountStore, DisplayName};
use phaze_store_postgres::{PgAccounts, PgConfig, Postgres, WatchEvent};
use phaze_testkit::accounts::{account, sealer};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use crate::pool::{backends, end_backends, url_named};
use crate::support::{self, config, SchemaGuard};

/// Aborts the watcher's task when the test ends.
pub(crate) struct Watching(tokio::task::JoinHandle<()>);

impl Drop for Watching {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A cached account store on a fresh schema whose connections are named after it, its watcher
/// running, and the watcher's reports; returns once it listens.
async fn watched(pg: &Postgres) -> (PgAccounts, Watching, mpsc::UnboundedReceiver<&'static str>) {
    let (accounts, watcher) = pg.cached_accounts(100);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(watcher.run(move |event| {
        let _ = tx.send(match event {
            WatchEvent::Listening => "listening",
            WatchEvent::Lost(_) => "lost",
        });
    }));
    assert_eq!(next_event(&mut rx).await, "listening");
    (accounts, Watching(task), rx)
}

async fn next_event(rx: &mut mpsc::UnboundedReceiver<&'static str>) -> &'static str {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the watcher reported within 10 s")
        .expect("the watcher runs")
}

/// For the contract: a cached store with its watcher listening.
pub(crate) async fn cached() -> (PgAccounts, Watching, SchemaGuard) {
    let db = support::fresh().await;
    let (accounts, watching, _events) = watched(&db.pg).await;
    (accounts, watching, db.guard)
}

/// Sets the display name behind the adapters' back, with triggers off (as a restore with
/// `session_replication_role = replica` would): only the cache's own rules can notice.
async fn rename_silently(admin: &tokio_postgres::Client, schema: &str, a: &Account, name: &str) {
    let mut renamed = a.clone();
    renamed.display_name = DisplayName::parse(name).unwrap();
    let sealed: String = sealer()
        .seal(&renamed)
        .sealed_name
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    admin
        .batch_execute(&format!(
            "BEGIN; SET LOCAL session_replication_role = replica; \
             UPDATE \"{schema}\".accounts SET name_sealed = '\\x{sealed}' WHERE id = '{}'; \
             COMMIT",
            a.id.as_uuid()
        ))
        .await
        .unwrap();
}

async fn name_of(store: &PgAccounts, a: &Account) -> String {
    let record = store
        .by_id(&a.id)
        .await
        .unwrap()
        .expect("the account exists");
    sealer()
        .open(record)
        .unwrap()
        .display_name
        .as_str()
        .to_owned()
}

async fn insert(store: &PgAccounts, a: &Account) {
    store.insert(&sealer().seal(a)).await.unwrap();
}

async fn update(store: &PgAccounts, a: &Account) {
    store.update(&sealer().seal(a)).await.unwrap();
}

/// Polls until `store` shows `want` for `a`, up to 5 s; how long it took.
async fn until_named(store: &PgAccounts, a: &Account, want: &str) -> Duration {
    let start = Instant::now();
    while name_of(store, a).await != want {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{want:?} did not show within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// Polls until `store` no longer finds `a`, up to 5 s.
async fn until_gone(store: &PgAccounts, a: &Account, after: &str) {
    let start = Instant::now();
    while store.by_id(&a.id).await.unwrap().is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still served 5 s after {after}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) async fn a_change_anywhere_reaches_every_cache() {
    let db = support::fresh().await;
    // Two processes' pools on one schema: `here` caches, `there` writes.
    let (here, _watching, _events) = watched(&db.pg).await;
    let there = Postgres::new(&config(Some(db.schema())))
        .unwrap()
        .accounts();
    let mut a = account("cache@example.com");
    insert(&there, &a).await;
    assert_eq!(name_of(&here, &a).await, "Ada");

    // Served from the cache: a change no trigger announces is not seen...
    rename_silently(&db.admin, db.schema(), &a, "Silent").await;
    assert_eq!(name_of(&here, &a).await, "Ada");

    // ...while one made through another process is, as soon as its notification arrives.
    a.display_name = DisplayName::parse("Grace").unwrap();
    update(&there, &a).await;
    let took = until_named(&here, &a, "Grace").await;
    println!("another process's change reached the cache in {took:?}");

    // This process's own change shows at once, without waiting for the echo.
    a.display_name = DisplayName::parse("Hopper").unwrap();
    update(&here, &a).await;
    assert_eq!(name_of(&here, &a).await, "Hopper");

    // A deleted account is gone from the cache too.
    db.admin
        .batch_execute(&format!(
            "DELETE FROM \"{}\".accounts WHERE id = '{}'",
            db.schema(),
            a.id.as_uuid()
        ))
        .await
        .unwrap();
    until_gone(&here, &a, "a delete").await;

    // A TRUNCATE empties every cache.
    let b = account("truncate@example.com");
    insert(&there, &b).await;
    assert_eq!(name_of(&here, &b).await, "Ada");
    db.admin
        .batch_execute(&format!("TRUNCATE \"{}\".accounts", db.schema()))
        .await
        .unwrap();
    until_gone(&here, &b, "a truncate").await;
}

pub(crate) async fn without_a_listening_watcher_nothing_is_served_from_the_cache() {
    let db = support::fresh().await;
    let app = db.schema().to_owned();
    let pg = Postgres::new(&PgConfig {
        url: url_named(&app),
        ..config(Some(db.schema()))
    })
    .unwrap();

    // No watcher at all: every lookup reads the table.
    let (unwatched, _watcher) = pg.cached_accounts(100);
    let a = account("unwatched@example.com");
    insert(&unwatched, &a).await;
    assert_eq!(name_of(&unwatched, &a).await, "Ada");
    rename_silently(&db.admin, db.schema(), &a, "Read").await;
    assert_eq!(name_of(&unwatched, &a).await, "Read");

    // Watched, then the server ends every connection of this pool, the watcher's among them (a
    // restart, a failover): the cache empties and stays off until the watcher listens again.
    let (here, _watching, mut events) = watched(&pg).await;
    assert_eq!(name_of(&here, &a).await, "Read");
    rename_silently(&db.admin, db.schema(), &a, "Cached").await;
    assert_eq!(name_of(&here, &a).await, "Read", "served from the cache");
    end_backends(&db.admin, &app).await;
    assert_eq!(next_event(&mut events).await, "lost");
    assert_eq!(name_of(&here, &a).await, "Cached", "read from the table");
    assert_eq!(next_event(&mut events).await, "listening");
    assert!(!backends(&db.admin, &app).await.is_empty());
    // Listening again: cached again.
    assert_eq!(name_of(&here, &a).await, "Cached");
    rename_silently(&db.admin, db.schema(), &a, "Later").await;
    assert_eq!(
        name_of(&here, &a).await,
        "Cached",
        "served from the cache again"
    );
}
