//! The port contracts, run against the PostgreSQL adapters, each test in a fresh schema of its
//! own; and what only this store has to prove: migrations and the schema check, exactness across
//! processes, hostile input as plain data, TLS, and a pool that survives dead connections.
//!
//! Needs PostgreSQL at `PHAZE_TEST_DATABASE_URL` (default: the local server); without it every
//! test prints SKIPPED and passes, except under `CI=true`, where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod account_cache;
mod concurrency;
mod hostile;
mod multiprocess;
mod pool;
mod pools;
mod purge;
mod schema;
mod support;
mod tls;

phaze_testkit::session_store_contract!({
    match support::contract(phaze_store_postgres::Postgres::sessions).await {
        Some(x) => x,
        None => return,
    }
});
phaze_testkit::account_store_contract!({
    match support::contract(phaze_store_postgres::Postgres::accounts).await {
        Some(x) => x,
        None => return,
    }
});
phaze_testkit::token_store_contract!({
    match support::contract(phaze_store_postgres::Postgres::tokens).await {
        Some(x) => x,
        None => return,
    }
});
phaze_testkit::rate_limit_store_contract!({
    match support::contract(phaze_store_postgres::Postgres::rate_limits).await {
        Some(x) => x,
        None => return,
    }
});

/// The account contract again, through the cache, with its watcher listening.
mod cached {
    phaze_testkit::account_store_contract!({
        match crate::account_cache::cached().await {
            Some((store, _, guard)) => (store, guard),
            None => return,
        }
    });
}
