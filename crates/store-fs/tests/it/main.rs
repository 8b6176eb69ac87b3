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

    /// Every store opened from one owned directory hears of the others' changes: they share
    /// the read cache, so no store keeps serving a record another one replaced or deleted.
    #[tokio::test]
    async fn stores_of_one_owned_directory_see_each_others_changes() {
        use phaze_auth::AccountStore;
        use phaze_sessions::SessionStore;
        let d = tempfile::tempdir().unwrap();
        let data = owned(&d);
        let (one, two) = (data.sessions().unwrap(), data.sessions().unwrap());
        let s = phaze_testkit::sessions::record(1, "alice");
        one.insert(&s).await.unwrap();
        assert_eq!(two.get(&s.key).await.unwrap(), Some(s.clone()));
        assert!(one.remove(&s.key).await.unwrap());
        assert_eq!(two.get(&s.key).await.unwrap(), None, "revoked everywhere");

        let (one, two) = (data.accounts().unwrap(), data.accounts().unwrap());
        let mut a = phaze_testkit::accounts::account("ada@example.com");
        one.insert(&a).await.unwrap();
        assert_eq!(two.by_id(&a.id).await.unwrap(), Some(a.clone()));
        a.display_name = phaze_auth::DisplayName::parse("Ada").unwrap();
        one.update(&a).await.unwrap();
        assert_eq!(two.by_id(&a.id).await.unwrap(), Some(a));
    }
}
