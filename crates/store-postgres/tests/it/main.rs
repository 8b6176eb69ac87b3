//! The port contracts, run against the PostgreSQL adapters, each test in a fresh schema of its
//! own; and what only this store has to prove: migrations and the schema check, exactness across
//! processes, hostile input as plain data, TLS, and a pool that survives dead connections.
//!
//! Needs PostgreSQL at `PHAZE_TEST_DATABASE_URL` (default: the local server), checked once before
//! any test runs: without it the tests that need it are reported as ignored, with the reason,
//! except under `CI=true`, where they fail (`phaze_testkit::harness`). A child process of the
//! multi-process tests (`phaze_testkit::processes`) plays its role from `main`, before the
//! harness.
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

use phaze_testkit::harness::{self, Need, Test};
use std::process::ExitCode;

phaze_testkit::session_store_contract!(
    support::contract(phaze_store_postgres::Postgres::sessions).await
);
phaze_testkit::account_store_contract!(
    support::contract(phaze_store_postgres::Postgres::accounts).await
);
phaze_testkit::token_store_contract!(
    support::contract(phaze_store_postgres::Postgres::tokens).await
);
phaze_testkit::rate_limit_store_contract!(
    support::contract(phaze_store_postgres::Postgres::rate_limits).await
);
phaze_testkit::processed_events_contract!(
    support::contract(phaze_store_postgres::Postgres::processed_events).await
);
phaze_testkit::subscriptions_contract!(
    support::contract(phaze_store_postgres::Postgres::subscriptions).await
);
phaze_testkit::device_store_contract!(
    support::contract(phaze_store_postgres::Postgres::devices).await
);
phaze_testkit::address_pool_contract!(
    support::contract(phaze_store_postgres::Postgres::address_pool).await
);
phaze_testkit::audit_store_contract!(
    support::contract(phaze_store_postgres::Postgres::audit).await
);

/// The account contract again, through the cache, with its watcher listening.
mod cached {
    phaze_testkit::account_store_contract!({
        let (store, _, guard) = crate::account_cache::cached().await;
        (store, guard)
    });

    pub(crate) fn tests() -> Vec<phaze_testkit::harness::Test> {
        account_store_contract::tests()
    }
}

fn main() -> ExitCode {
    let cross_process = multiprocess::processes();
    if let Some(exit) = cross_process.child_entry() {
        return exit;
    }
    let postgres = Need::check("PostgreSQL", support::reachable);
    let tls = postgres.and("TLS on the test server", tls::tls_on);
    let certificate = tls.and("the server's certificate", tls::certificate_readable);
    let processes = postgres.and("the server's processes", pool::server_processes_here);
    let mut tests: Vec<Test> = [
        session_store_contract::tests(),
        account_store_contract::tests(),
        token_store_contract::tests(),
        rate_limit_store_contract::tests(),
        processed_events_contract::tests(),
        subscriptions_contract::tests(),
        device_store_contract::tests(),
        address_pool_contract::tests(),
        audit_store_contract::tests(),
        cached::tests(),
        cross_process.tests(),
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            account_cache::{
                a_change_anywhere_reaches_every_cache,
                without_a_listening_watcher_nothing_is_served_from_the_cache,
            },
            hostile::{sql_lookalikes_round_trip_unchanged, hostile_session_owners_are_plain_bytes},
            pool::{
                a_full_pool_fails_within_the_wait_timeout,
                a_lock_held_by_a_frozen_process_fails_within_the_query_timeout,
            },
            purge::{
                purge_idle_deletes_exactly_the_logs_no_window_sees,
                a_limit_of_zero_stores_nothing,
                token_purge_takes_used_and_expired_tokens_only,
            },
            schema::{
                check_schema_tells_behind_current_and_ahead,
                migrate_creates_the_schema_and_its_tables_there,
                migrated_tables_have_the_declared_columns,
                the_sealing_migration_keeps_every_account_and_leaves_nothing_in_the_clear,
            },
        ),
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 4, test);
            concurrency::{
                sixteen_connections_registering_one_email_admit_exactly_one,
                sixteen_connections_consuming_one_token_admit_exactly_one,
                sixteen_connections_hitting_one_key_admit_exactly_the_limit,
            },
            pool::{
                connections_closed_by_the_server_are_replaced,
                requests_racing_a_restart_recover_within_a_second,
            },
            schema::{concurrent_migrations_apply_each_migration_once},
        ),
        phaze_testkit::tests!(
            |name, test| Test::current_thread(name, test);
            schema::{migrate_and_the_stores_work_on_a_current_thread_runtime},
        ),
        phaze_testkit::tests!(
            |name, test| Test::new(name, test);
            pools::{each_single_threaded_runtime_uses_its_own_connections},
        ),
        tls.gate(phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            tls::{
                require_refuses_a_certificate_from_an_unknown_issuer,
                prefer_encrypts_without_verifying_and_disable_does_not_encrypt,
            },
        )),
        certificate.gate(phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            tls::{
                require_with_the_servers_certificate_is_encrypted_and_verified,
                require_refuses_a_certificate_for_another_name,
                a_ca_file_turns_verification_on_for_prefer,
            },
        )),
        processes.gate(phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            pool::{an_idle_connection_that_does_not_answer_is_replaced},
        )),
    ]
    .into_iter()
    .flatten()
    .collect();
    tests = postgres.gate(tests);
    // Without a server: the refusals, which need none.
    tests.extend(phaze_testkit::tests!(
        |name, test| Test::tokio(name, 2, test);
        pool::{
            a_server_that_never_answers_fails_within_the_connect_timeout,
            errors_and_debug_output_never_show_the_password,
        },
    ));
    tests.extend(phaze_testkit::tests!(
        |name, test| Test::new(name, test);
        hostile::{invalid_schema_names_are_refused_before_any_sql},
        tls::{an_unusable_ca_file_is_refused_up_front},
    ));
    harness::run(tests)
}
