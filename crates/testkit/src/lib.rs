//! Contract tests for Phaze's ports. Each rule is one `async fn` taking a store; a macro per port
//! turns every rule into a `#[tokio::test]` for an adapter:
//!
//! ```text
//! phaze_testkit::session_store_contract!((MemorySessions::default(), ()));
//! ```
//!
//! The macro argument is an expression giving `(store, guard)`: the guard (a temporary directory, a
//! schema) lives as long as the test. An adapter is done when every contract it implements passes.
//! In a test binary without libtest's harness ([`harness`]), the macro's module also has a
//! `tests()` listing the same rules as [`harness::Test`]s. Several processes on one store have a
//! contract too, run by re-executing the test binary: [`processes`].
//!
//! An adapter's `tests/it/main.rs`, with `harness = false` for that target in its `Cargo.toml`
//! (under libtest's own harness the macro lines alone are the suite: each rule is a
//! `#[tokio::test]`):
//!
//! ```
//! use phaze_store_memory::{MemoryRateLimits, MemorySessions};
//!
//! // Each rule gets a fresh `(store, guard)`: the guard (a temporary directory, a schema) lives
//! // as long as the test; the memory stores need none.
//! phaze_testkit::session_store_contract!((MemorySessions::default(), ()));
//! phaze_testkit::rate_limit_store_contract!((MemoryRateLimits::default(), ()));
//!
//! fn main() -> std::process::ExitCode {
//!     let tests = [session_store_contract::tests(), rate_limit_store_contract::tests()];
//!     phaze_testkit::harness::run(tests.into_iter().flatten().collect())
//! }
//! ```
#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test
#![allow(unreachable_pub)] // items are used by the adapters' test binaries through the macros

pub mod accounts;
pub mod audit;
pub mod devices;
pub mod harness;
pub mod payments;
pub mod processes;
pub mod ratelimit;
pub mod sessions;
pub mod smtp;
pub mod tokens;

use time::OffsetDateTime;

/// A fixed instant for tests (2026-01-01T00:00:00Z): contracts never read the clock.
pub fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// Generates one test per rule of a contract module: a `#[tokio::test]` for libtest's harness,
/// and `tests()` listing the same rules for [`harness::run`] (each binary uses one of the two;
/// `#[test]` items vanish from a binary built without libtest's harness).
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_tests {
    ($module:ident, $make:expr, [$($rule:ident),* $(,)?]) => {
        mod rules {
            #[allow(unused_imports)]
            use super::*;
            $(
                pub(super) async fn $rule() {
                    let (store, _guard) = $make;
                    $crate::$module::$rule(::std::sync::Arc::new(store)).await;
                }
            )*
        }
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $rule() {
                rules::$rule().await;
            }
        )*

        /// The rules as tests for a binary without libtest's harness.
        #[allow(dead_code)]
        pub(crate) fn tests() -> Vec<$crate::harness::Test> {
            vec![$(
                $crate::harness::Test::tokio(
                    $crate::harness::Test::name_in(module_path!(), stringify!($rule)),
                    4,
                    rules::$rule,
                )
            ),*]
        }
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

/// A test's server could not be reached. The harness checked it before any test ran
/// ([`harness::Need`]), ignoring the tests outside CI if it was down then; so it went away since,
/// and the test fails: a test that cannot do its work never passes.
pub fn server_unavailable(what: &str, error: &dyn std::fmt::Display) -> ! {
    panic!("{what} is unreachable: {error}");
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
