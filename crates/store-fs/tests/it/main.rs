//! The port contracts, run against the filesystem adapters, and what only a filesystem store has to
//! prove: the on-disk layout, several processes on one directory, hostile names, permissions and
//! the outbox's message format.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod hostile;
mod layout;
mod multiprocess;
mod outbox;
mod ratelimit;
mod support;

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
}
