//! The port contracts, run against the Redis adapters, and what only a shared Redis store has to
//! prove: the key layout and TTLs, exact purging, decisions equal to `decide`, exactness across
//! processes, isolation between prefixes, recovery from an outage and TLS.
//!
//! Every test uses its own random key prefix on the Redis at `PHAZE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and deletes its keys afterwards; if that Redis does not answer, each
//! test says so and passes, except under `CI=true`, where it fails. Outage and TLS tests start
//! private `redis-server` processes on free ports.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod multiprocess;
mod outage;
mod pools;
mod ratelimit;
mod sessions;
mod support;
mod tls;

phaze_testkit::session_store_contract!({
    match crate::support::sessions().await {
        Some(store) => store,
        None => return,
    }
});
phaze_testkit::rate_limit_store_contract!({
    match crate::support::rate_limits().await {
        Some(store) => store,
        None => return,
    }
});
