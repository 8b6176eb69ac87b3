//! `phaze_actix::VisitorLayer` as an embedder wires it (`visitor`), and
//! `phaze_actix::PhazeSessionStore` under actix-session's own `SessionMiddleware`, on
//! `actix_web::test` services: actix-session's acceptance workflows, then what Phaze adds (hashed
//! ids, sealed state, server-side expiry, hostile cookies), on the memory and filesystem stores,
//! and once on Redis.
//!
//! The harness is `phaze_testkit::harness`: without a Redis at `PHAZE_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`) the Redis test is reported as ignored, with the reason, except
//! under `CI=true`, where it fails. Each test runs on an actix system of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod acceptance;
mod login;
mod redis;
mod services;
mod sessions;
mod support;
mod visitor;

use phaze_testkit::harness::{self, Need, Test};
use std::future::Future;
use std::process::ExitCode;

/// A test on an actix system (a single-threaded tokio runtime) of its own, as `#[actix_web::test]`.
fn actix<F>(name: impl Into<String>, test: impl FnOnce() -> F + Send + 'static) -> Test
where
    F: Future<Output = ()> + 'static,
{
    Test::new(name, move || actix_web::rt::System::new().block_on(test()))
}

/// Each listed `fn(Fixture)` as one test on the memory store and one on the filesystem store.
macro_rules! on_memory_and_fs {
    ($($module:ident :: { $($test:ident),* $(,)? }),* $(,)?) => {
        vec![$($(
            actix(
                concat!("memory::", stringify!($module), "::", stringify!($test)),
                || $module::$test(support::Fixture::memory()),
            ),
            actix(
                concat!("fs::", stringify!($module), "::", stringify!($test)),
                || $module::$test(support::Fixture::fs()),
            ),
        )*)*]
    };
}

fn main() -> ExitCode {
    let redis = Need::check("Redis", redis::reachable);
    let mut tests = on_memory_and_fs!(
        acceptance::{
            basic_workflow,
            expiration_is_refreshed_on_changes,
            expiration_is_refreshed_on_every_request_if_configured,
            complex_workflow,
        },
        sessions::{
            insert_get_change_purge,
            renew_gives_a_new_id_and_the_old_one_no_longer_loads,
            the_store_is_keyed_by_the_sha256_of_the_cookie_value,
            stored_bytes_hold_no_state_in_clear,
            forged_truncated_or_unknown_cookies_give_a_fresh_empty_session,
            a_record_moved_to_another_key_does_not_open,
            a_record_sealed_under_a_dropped_key_is_a_fresh_session,
            expired_records_are_not_served_and_are_deleted,
            a_moved_clear_expiry_does_not_extend_a_session,
            every_request_moves_the_expiry_if_configured,
            update_keeps_the_id_while_the_record_lives,
            hostile_cookie_values_are_refused_without_panics,
            purge_expired_sweeps_what_nobody_presented,
        },
    );
    tests.extend(phaze_testkit::tests!(
        |name, test| actix(name, test);
        sessions::{a_store_failure_is_a_500_not_a_fresh_session},
    ));
    tests.extend(phaze_testkit::tests!(
        |name, test| actix(name, test);
        visitor::{
            unsafe_requests_need_the_token_and_the_site_s_own_origin,
            the_layer_writes_the_session_cookie_and_login_kills_the_old_token,
            a_due_rotation_hands_the_new_id_to_the_client,
            forged_cookies_are_anonymous_and_cleared,
            the_post_budget_answers_429_with_retry_after,
            route_guards_spend_before_the_handler_and_answer_429,
        },
    ));
    tests.extend(phaze_testkit::tests!(
        |name, test| actix(name, test);
        login::{
            a_right_password_replaces_the_session_and_sets_both_cookies,
            a_wrong_password_and_an_unknown_address_are_refused_alike,
            a_right_password_on_an_unconfirmed_address_mails_a_link_and_starts_nothing,
            failures_bring_a_challenge_and_no_password_is_checked_without_it,
            a_spent_client_budget_is_a_429_before_any_password_check,
        },
    ));
    tests.extend(redis.gate(phaze_testkit::tests!(
        |name, test| actix(name, test);
        redis::{sessions_on_redis_are_hashed_and_sealed},
    )));
    harness::run(tests)
}
