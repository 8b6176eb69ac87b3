//! Contract tests for Phaze's ports. Each rule is one `async fn` taking a store; a macro per port
//! turns every rule into a `#[tokio::test]` for an adapter:
//!
//! ```text
//! phaze_testkit::session_store_contract!((MemorySessions::default(), ()));
//! ```
//!
//! The macro argument is an expression giving `(store, guard)`: the guard (a temporary directory, a
//! schema) lives as long as the test. An adapter is done when every contract it implements passes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![allow(unreachable_pub)] // items are used by the adapters' test binaries through the macros

pub mod accounts;
pub mod ratelimit;
pub mod sessions;
pub mod tokens;

use time::OffsetDateTime;

/// A fixed instant for tests (2026-01-01T00:00:00Z): contracts never read the clock.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// Generates one `#[tokio::test]` per rule of a contract module.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:ident, $make:expr, [$($rule:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $rule() {
                let (store, _guard) = $make;
                $crate::$module::$rule(::std::sync::Arc::new(store)).await;
            }
        )*
    };
}

/// PostgreSQL for the cluster adapters' suites: `PHAZE_TEST_DATABASE_URL`, or the local server.
pub fn database_url() -> String {
    std::env::var("PHAZE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Redis for the cluster adapters' suites: `PHAZE_TEST_REDIS_URL`, or the local server.
pub fn redis_url() -> String {
    std::env::var("PHAZE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A suite's server could not be reached. Under `CI=true` that fails the test (CI must never
/// pass by skipping); elsewhere the caller skips, and this prints why.
pub fn server_unavailable(what: &str, error: &dyn std::fmt::Display) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is unreachable under CI=true: {error}");
    }
    eprintln!("SKIPPED: {what} is unreachable ({error}); start it or set its PHAZE_TEST_* URL");
}

/// A loopback port for a server a test starts, free a moment ago and never handed out before in
/// this test process. The kernel may give a port that was just released to the next asker: two
/// tests running at once could then start their servers on one port, and the second, failing to
/// bind, would leave its test talking to the first test's server.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a loopback port");
        if handed_out.insert(port) {
            return port;
        }
    }
}
