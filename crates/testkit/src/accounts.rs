//! Contract of [`AccountStore`].

use phaze_auth::{
    Account, AccountStore, DisplayName, Email, StoreError, TokenHash, TwoFactor, UserId,
};
use std::sync::Arc;

use crate::t0;

/// A verified account for `email`.
pub fn account(email: &str) -> Account {
    Account {
        id: UserId::generate(),
        email: Email::parse(email).unwrap(),
        email_verified: true,
        password_hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into(),
        display_name: DisplayName::parse("Ada").unwrap(),
        is_admin: false,
        locked: false,
        created_at: t0(),
        password_changed_at: t0(),
        two_factor: None,
    }
}

/// Runs the whole [`AccountStore`] contract against an adapter. The argument is an expression
/// giving a fresh `(store, guard)` for each rule (see the crate docs). Defines a module of
/// the macro's name with a `#[tokio::test]` per rule, and `tests()` listing them for
/// [`crate::harness::run`].
#[macro_export]
macro_rules! account_store_contract {
    ($make:expr) => {
        mod account_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                accounts,
                $make,
                [
                    insert_then_lookup_by_email_and_id,
                    email_is_unique,
                    lookups_of_unknown_are_none,
                    update_replaces_and_requires_existing,
                    two_factor_round_trips_and_clears,
                    concurrent_registrations_of_one_email_admit_exactly_one,
                    hostile_emails_are_plain_data,
                    remove_deletes_the_account_and_frees_its_email,
                ]
            );
        }
    };
}

/// An inserted account is found, unchanged, by its email (under any spelling that normalises
/// to it) and by its id.
pub async fn insert_then_lookup_by_email_and_id(store: Arc<impl AccountStore>) {
    let a = account("ada@example.com");
    store.insert(&a).await.unwrap();
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a.clone()));
    assert_eq!(store.by_id(&a.id).await.unwrap(), Some(a.clone()));
    let upper = Email::parse("  ADA@Example.COM ").unwrap();
    assert_eq!(store.by_email(&upper).await.unwrap(), Some(a));
}

/// A second account with the same normalised email is [`StoreError::Duplicate`], and the loser
/// leaves no record behind.
pub async fn email_is_unique(store: Arc<impl AccountStore>) {
    let a = account("ada@example.com");
    store.insert(&a).await.unwrap();
    let b = account("ADA@example.com");
    assert!(matches!(store.insert(&b).await, Err(StoreError::Duplicate)));
    assert_eq!(
        store.by_id(&b.id).await.unwrap(),
        None,
        "the loser leaves no record"
    );
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a));
}

/// Lookups of an email or id never stored are `Ok(None)`, not an error.
pub async fn lookups_of_unknown_are_none(store: Arc<impl AccountStore>) {
    assert_eq!(
        store
            .by_email(&Email::parse("nobody@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.by_id(&UserId::generate()).await.unwrap(), None);
}

/// `update` replaces a stored account (here its name, HTML kept as typed, and its admin flag) and
/// is [`StoreError::NotFound`] for an account never inserted.
pub async fn update_replaces_and_requires_existing(store: Arc<impl AccountStore>) {
    let mut a = account("ada@example.com");
    assert!(matches!(store.update(&a).await, Err(StoreError::NotFound)));
    store.insert(&a).await.unwrap();
    a.display_name = DisplayName::parse("<script>alert(1)</script>").unwrap();
    a.is_admin = true;
    store.update(&a).await.unwrap();
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a));
}

/// Two-factor state round-trips through insert and update, pending and on, and an update to
/// `None` clears it (a turned-off 2FA must not survive in a column that was skipped).
pub async fn two_factor_round_trips_and_clears(store: Arc<impl AccountStore>) {
    let mut a = account("ada@example.com");
    a.two_factor = Some(TwoFactor {
        sealed_secret: vec![0, 1, 2, 255, 0, 42],
        enabled_at: None,
        recovery_codes: Vec::new(),
    });
    store.insert(&a).await.unwrap();
    assert_eq!(store.by_id(&a.id).await.unwrap(), Some(a.clone()));
    a.two_factor = Some(TwoFactor {
        sealed_secret: vec![9; 77],
        enabled_at: Some(t0()),
        recovery_codes: (1..=10).map(|n| TokenHash([n; 32])).collect(),
    });
    store.update(&a).await.unwrap();
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a.clone()));
    assert!(store
        .by_id(&a.id)
        .await
        .unwrap()
        .unwrap()
        .two_factor_enabled());
    a.two_factor = None;
    store.update(&a).await.unwrap();
    assert_eq!(store.by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a));
}

/// Sixteen tasks insert accounts with one email at once: exactly one succeeds, the others get
/// [`StoreError::Duplicate`], and the email finds the winner.
pub async fn concurrent_registrations_of_one_email_admit_exactly_one(
    store: Arc<impl AccountStore + 'static>,
) {
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let a = account("race@example.com");
                store.insert(&a).await.map(|()| a.id)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in futures_util::future::join_all(tasks).await {
        match t.unwrap() {
            Ok(id) => winners.push(id),
            Err(StoreError::Duplicate) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let found = store
        .by_email(&Email::parse("race@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, winners[0]);
}

/// Addresses shaped like paths, globs or encoded dots are stored and found as plain data, and
/// never reach another record.
pub async fn hostile_emails_are_plain_data(store: Arc<impl AccountStore>) {
    // Addresses that look like paths, globs or keys of other records stay plain data.
    for raw in [
        "../../etc/passwd@example.com",
        "a*@example.com",
        "%2e%2e@example.com",
        "x@..example.com",
    ] {
        if let Some(email) = Email::parse(raw) {
            let a = account(email.as_str());
            store.insert(&a).await.unwrap();
            assert_eq!(store.by_email(&email).await.unwrap(), Some(a));
        }
    }
    assert_eq!(
        store
            .by_email(&Email::parse("passwd@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
}

/// Removing an account makes every lookup answer `None`, frees its email for a new account,
/// leaves other accounts alone, and answers `false` the second time.
pub async fn remove_deletes_the_account_and_frees_its_email(store: Arc<impl AccountStore>) {
    let (ada, bob) = (account("ada@example.com"), account("bob@example.com"));
    store.insert(&ada).await.unwrap();
    store.insert(&bob).await.unwrap();
    assert!(store.remove(&ada.id).await.unwrap());
    assert_eq!(store.by_id(&ada.id).await.unwrap(), None);
    assert_eq!(store.by_email(&ada.email).await.unwrap(), None);
    assert!(!store.remove(&ada.id).await.unwrap(), "once");
    assert!(matches!(
        store.update(&ada).await,
        Err(phaze_auth::StoreError::NotFound)
    ));
    assert_eq!(store.by_id(&bob.id).await.unwrap(), Some(bob.clone()));
    let again = account("ada@example.com");
    store.insert(&again).await.unwrap();
    assert_eq!(store.by_email(&again.email).await.unwrap(), Some(again));
}
