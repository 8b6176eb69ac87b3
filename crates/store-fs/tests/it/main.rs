//! The port contracts, run against the filesystem adapters, and what only a filesystem store has to
//! prove: the on-disk layout, several processes on one directory, hostile names, permissions and
//! the outbox's message format.
//!
//! The harness is `phaze_testkit::harness` (libtest-mimic), so that a child process of the
//! multi-process tests (`phaze_testkit::processes`) plays its role from `main`, before any test,
//! instead of as a test that passes in every normal run. A test is an `async fn` (or `fn`)
//! listed in `main`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod hostile;
mod layout;
mod multiprocess;
mod outbox;
mod ratelimit;
mod support;

use phaze_testkit::harness::{self, Test};
use std::process::ExitCode;

phaze_testkit::session_store_contract!({
    let d = tempfile::tempdir().unwrap();
    (phaze_store_fs::FsSessions::open(d.path()).unwrap(), d)
});
phaze_testkit::account_store_contract!({
    let d = tempfile::tempdir().unwrap();
    (phaze_store_fs::FsAccounts::open(d.path()).unwrap(), d)
});
phaze_testkit::token_store_contract!({
    let d = tempfile::tempdir().unwrap();
    (phaze_store_fs::FsTokens::open(d.path()).unwrap(), d)
});
phaze_testkit::rate_limit_store_contract!({
    let d = tempfile::tempdir().unwrap();
    (phaze_store_fs::FsRateLimits::open(d.path()).unwrap(), d)
});
phaze_testkit::processed_events_contract!({
    let d = tempfile::tempdir().unwrap();
    let data = phaze_store_fs::DataDir::open(d.path(), phaze_store_fs::Sharing::Shared).unwrap();
    (data.processed_events().unwrap(), d)
});
phaze_testkit::subscriptions_contract!({
    let d = tempfile::tempdir().unwrap();
    let data = phaze_store_fs::DataDir::open(d.path(), phaze_store_fs::Sharing::Shared).unwrap();
    (data.subscriptions().unwrap(), d)
});

phaze_testkit::device_store_contract!({
    let d = tempfile::tempdir().unwrap();
    let data = phaze_store_fs::DataDir::open(d.path(), phaze_store_fs::Sharing::Shared).unwrap();
    (data.devices().unwrap(), d)
});
phaze_testkit::address_pool_contract!({
    let d = tempfile::tempdir().unwrap();
    let data = phaze_store_fs::DataDir::open(d.path(), phaze_store_fs::Sharing::Shared).unwrap();
    (data.address_pool().unwrap(), d)
});
phaze_testkit::audit_store_contract!({
    let d = tempfile::tempdir().unwrap();
    let data = phaze_store_fs::DataDir::open(d.path(), phaze_store_fs::Sharing::Shared).unwrap();
    (data.audit().unwrap(), d)
});

/// The same contracts with the directory owned by this process alone, where the read caches
/// trust the store's own writes instead of checking the files.
mod exclusive {
    use phaze_store_fs::{DataDir, Sharing};

    fn owned(d: &tempfile::TempDir) -> DataDir {
        DataDir::open(d.path(), Sharing::Exclusive).unwrap()
    }

    phaze_testkit::session_store_contract!({
        let d = tempfile::tempdir().unwrap();
        (owned(&d).sessions().unwrap(), d)
    });
    phaze_testkit::account_store_contract!({
        let d = tempfile::tempdir().unwrap();
        (owned(&d).accounts().unwrap(), d)
    });
    phaze_testkit::token_store_contract!({
        let d = tempfile::tempdir().unwrap();
        (owned(&d).tokens().unwrap(), d)
    });
    phaze_testkit::rate_limit_store_contract!({
        let d = tempfile::tempdir().unwrap();
        (owned(&d).rate_limits().unwrap(), d)
    });

    /// Every store opened from one owned directory hears of the others' changes: they share
    /// the read cache, so no store keeps serving a record another one replaced or deleted.
    pub(crate) async fn stores_of_one_owned_directory_see_each_others_changes() {
        use phaze_sessions::SessionStore;
        let d = tempfile::tempdir().unwrap();
        let data = owned(&d);
        let (one, two) = (data.sessions().unwrap(), data.sessions().unwrap());
        let s = phaze_testkit::sessions::record(1, "alice");
        one.insert(&s).await.unwrap();
        assert_eq!(two.get(&s.key).await.unwrap(), Some(s.clone()));
        assert!(one.remove(&s.key).await.unwrap());
        assert_eq!(two.get(&s.key).await.unwrap(), None, "revoked everywhere");

        let (one, two) = (
            phaze_testkit::accounts::sealed(std::sync::Arc::new(data.accounts().unwrap())),
            phaze_testkit::accounts::sealed(std::sync::Arc::new(data.accounts().unwrap())),
        );
        let mut a = phaze_testkit::accounts::account("ada@example.com");
        one.insert(&a).await.unwrap();
        assert_eq!(two.by_id(&a.id).await.unwrap(), Some(a.clone()));
        a.display_name = phaze_auth::DisplayName::parse("Ada").unwrap();
        one.update(&a).await.unwrap();
        assert_eq!(two.by_id(&a.id).await.unwrap(), Some(a));
    }

    pub(crate) fn tests() -> Vec<phaze_testkit::harness::Test> {
        let mut tests = [
            session_store_contract::tests(),
            account_store_contract::tests(),
            token_store_contract::tests(),
            rate_limit_store_contract::tests(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
        tests.push(phaze_testkit::harness::Test::current_thread(
            "exclusive::stores_of_one_owned_directory_see_each_others_changes",
            stores_of_one_owned_directory_see_each_others_changes,
        ));
        tests
    }
}

fn main() -> ExitCode {
    let cross_process = multiprocess::processes();
    if let Some(exit) = cross_process.child_entry() {
        return exit;
    }
    let tests = [
        session_store_contract::tests(),
        account_store_contract::tests(),
        token_store_contract::tests(),
        rate_limit_store_contract::tests(),
        processed_events_contract::tests(),
        subscriptions_contract::tests(),
        device_store_contract::tests(),
        address_pool_contract::tests(),
        audit_store_contract::tests(),
        exclusive::tests(),
        cross_process.tests(),
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 2, test);
            hostile::{hostile_inputs_stay_inside_the_data_directory},
            ratelimit::{
                a_corrupt_or_truncated_file_fails_one_decision_closed_and_is_replaced,
                purge_deletes_exactly_the_idle_files,
                keys_that_spell_paths_stay_64_hex_names_inside_the_data_directory,
            },
        ),
        phaze_testkit::tests!(
            |name, test| Test::tokio(name, 4, test);
            layout::{readers_never_see_half_a_record},
        ),
        phaze_testkit::tests!(
            |name, test| Test::current_thread(name, test);
            layout::{
                every_record_is_one_file_named_by_a_hash,
                a_marker_without_its_record_is_skipped_and_cleaned,
                a_corrupt_record_is_an_error_until_purged,
                purge_sweeps_old_temporary_files_only,
                hand_edited_email_index_fails_closed,
                accounts_stored_in_the_clear_are_sealed_once_and_found_again,
                the_start_up_step_seals_every_batch_beside_another_process,
                open_refuses_a_file_where_a_directory_belongs,
                files_are_0600_and_directories_0700,
            },
            outbox::{
                hostile_subject_and_body_make_one_well_formed_message,
                every_message_gets_its_own_file,
                the_portals_default_sender_works,
            },
        ),
        phaze_testkit::tests!(
            |name, test| Test::new(name, test);
            multiprocess::{
                a_killed_lock_holder_does_not_block_others,
                a_killed_rate_limit_lock_holder_does_not_block_others,
                a_directory_owned_by_one_process_is_refused_to_every_other,
                processes_sharing_a_directory_keep_an_exclusive_owner_out,
                four_processes_draining_one_mail_queue_deliver_each_message_once,
                four_processes_claiming_addresses_never_share_one,
            },
            outbox::{an_invalid_sender_is_refused_at_open},
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    harness::run(tests)
}
