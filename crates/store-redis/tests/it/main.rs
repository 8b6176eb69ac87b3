//! The port contracts, run against the Redis adapters, and what only a shared Redis store has to
//! prove: the key layout and TTLs, exact purging, decisions equal to `decide`, exactness across
//! processes, isolation between prefixes, recovery from an outage and TLS.
//!
//! Every test uses its own random key prefix on the Redis at `PHAZE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) and deletes its keys afterwards. Outage and TLS tests start private
//! `redis-server` processes on free ports. What they need is checked once before any test runs:
//! without it the tests that need it are reported as ignored, with the reason, except under
//! `CI=true`, where they fail (`phaze_testkit::harness`). A child process of the multi-process
//! tests (`phaze_testkit::processes`) plays its role from `main`, before the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod multiprocess;
mod outage;
mod pools;
mod ratelimit;
mod sessions;
mod support;
mod tls;

use phaze_testkit::harness::{self, Need, Test};
use std::process::ExitCode;

phaze_testkit::session_store_contract!(crate::support::sessions().await);
phaze_testkit::rate_limit_store_contract!(crate::support::rate_limits().await);

fn main() -> ExitCode {
    let cross_process = multiprocess::processes();
    if let Some(exit) = cross_process.child_entry() {
        return exit;
    }
    let redis = Need::check("Redis", support::reachable);
    let redis_server = Need::check("redis-server (the program)", || {
        support::runs("redis-server", "--version")
    });
    let openssl = redis_server.and("openssl (the program)", || {
        support::runs("openssl", "version")
    });
    let shared: Vec<Test> = [
        session_store_contract::tests(),
        rate_limit_store_contract::tests(),
        cross_process.tests(),
        phaze_testkit::tests!(
            |name, test| Test::current_thread(name, test);
            ratelimit::{
                a_key_is_one_sorted_set_living_one_period,
                a_log_lives_a_period_past_its_newest_instant_even_from_a_fast_clock,
                prefixes_are_independent,
            },
            sessions::{
                layout_is_one_hash_one_set_one_index,
                records_outlive_a_past_expiry_by_the_slack,
                purge_is_exact_to_the_nanosecond,
                purge_works_through_many_batches,
                vanished_records_leave_no_trace_in_lists_or_purges,
                a_stale_index_entry_never_purges_a_recreated_record,
                update_moves_the_expiry_and_checks_the_owner,
                odd_values_round_trip,
                a_foreign_value_is_an_error_not_a_session,
            },
        ),
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            ratelimit::{decisions_equal_decide_for_random_histories},
        ),
        phaze_testkit::tests!(
            |name, test| Test::new(name, test);
            pools::{
                each_single_threaded_runtime_uses_its_own_connections,
                the_commands_of_one_thread_share_one_connection_even_after_an_idle_second,
            },
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let private: Vec<Test> = [
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            outage::{
                a_killed_server_fails_fast_and_recovery_is_automatic,
                a_hung_server_times_out_instead_of_stalling,
            },
        ),
        phaze_testkit::tests!(
            |name, test| Test::current_thread(name, test);
            outage::{
                a_connection_that_failed_is_replaced_at_once,
                passwords_work_and_never_show_in_errors,
            },
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut tests = redis.gate(shared);
    tests.extend(redis_server.gate(private));
    tests.extend(openssl.gate(phaze_testkit::tests!(
        |name, test| Test::tokio(name, 2, test);
        tls::{rediss_verifies_the_server_certificate},
    )));
    // Without any server: a closed port and a silent listener.
    tests.extend(phaze_testkit::tests!(
        |name, test| Test::current_thread(name, test);
        outage::{nothing_listening_is_an_error_not_a_hang, a_silent_listener_times_out},
    ));
    harness::run(tests)
}
