//! Contract of [`AccountStore`]: most rules go through [`SealedAccounts`], as the domain uses a
//! store, so each round trip also proves that what the adapter keeps opens again.

use phaze_auth::{
    Account, AccountSealer, AccountStore, DisplayName, Email, EmailIndexKey, SealedAccounts,
    StoreError, TokenHash, TwoFactor, UserId,
};
use phaze_sessions::{Sealer, SealingKey};
use secrecy::SecretBox;
use std::collections::HashSet;
use std::sync::Arc;

use crate::t0;

/// The email index key of [`sealer`] and [`sealer_with`].
pub const INDEX_KEY: [u8; 32] = [5; 32];

/// An [`AccountSealer`] under the fixed test key `[3; 32]`.
pub fn sealer() -> AccountSealer {
    sealer_with(&[[3; 32]])
}

/// An [`AccountSealer`] under `keys` (the first seals), indexing under [`INDEX_KEY`].
pub fn sealer_with(keys: &[[u8; 32]]) -> AccountSealer {
    AccountSealer::new(
        Sealer::new(keys.iter().map(SealingKey::new).collect()).unwrap(),
        EmailIndexKey::new(SecretBox::new(Box::new(INDEX_KEY))),
    )
}

/// `store` as the domain sees it, through [`sealer`].
pub fn sealed(store: Arc<impl AccountStore + 'static>) -> SealedAccounts {
    SealedAccounts::new(store, sealer())
}

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
                    an_update_cannot_move_an_account_to_another_address,
                    pages_visit_every_account_once,
                    reseal_swaps_the_sealed_fields_only_while_they_are_unchanged,
                    rotation_seals_every_account_under_the_newest_key,
                    the_first_index_key_is_kept_and_another_is_refused,
                ]
            );
        }
    };
}

/// An inserted account is found, unchanged, by its email (under any spelling that normalises
/// to it) and by its id.
pub async fn insert_then_lookup_by_email_and_id(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
    let a = account("ada@example.com");
    store.insert(&a).await.unwrap();
    assert_eq!(store.by_email(&a.email).await.unwrap(), Some(a.clone()));
    assert_eq!(store.by_id(&a.id).await.unwrap(), Some(a.clone()));
    let upper = Email::parse("  ADA@Example.COM ").unwrap();
    assert_eq!(store.by_email(&upper).await.unwrap(), Some(a));
}

/// A second account with the same normalised email is [`StoreError::Duplicate`], and the loser
/// leaves no record behind.
pub async fn email_is_unique(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
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
pub async fn lookups_of_unknown_are_none(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
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
pub async fn update_replaces_and_requires_existing(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
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
pub async fn two_factor_round_trips_and_clears(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
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
    let store = Arc::new(sealed(store));
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
pub async fn hostile_emails_are_plain_data(store: Arc<impl AccountStore + 'static>) {
    let store = sealed(store);
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
pub async fn remove_deletes_the_account_and_frees_its_email(
    store: Arc<impl AccountStore + 'static>,
) {
    let store = sealed(store);
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

/// An update that names another address (another index) changes nothing:
/// [`StoreError::NotFound`], as the index entry would be orphaned.
pub async fn an_update_cannot_move_an_account_to_another_address(
    store: Arc<impl AccountStore + 'static>,
) {
    let store = sealed(store);
    let a = account("ada@example.com");
    store.insert(&a).await.unwrap();
    let mut moved = a.clone();
    moved.email = Email::parse("eve@example.com").unwrap();
    assert!(matches!(
        store.update(&moved).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.by_id(&a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(store.by_email(&moved.email).await.unwrap(), None);
}

/// Walking the store a page at a time visits every account exactly once, whatever the page
/// size, and a page after the last account is empty.
pub async fn pages_visit_every_account_once(store: Arc<impl AccountStore + 'static>) {
    let accounts = sealed(store.clone());
    let mut ids = HashSet::new();
    for n in 0..7 {
        let a = account(&format!("u{n}@example.com"));
        accounts.insert(&a).await.unwrap();
        ids.insert(a.id);
    }
    for size in [1, 3, 7, 50] {
        let (mut seen, mut after) = (Vec::new(), None);
        loop {
            let page = store.page(after.as_ref(), size).await.unwrap();
            assert!(page.len() <= size);
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            seen.extend(page.iter().map(|r| r.id));
        }
        assert_eq!(seen.len(), 7, "page size {size}: {seen:?}");
        assert_eq!(seen.into_iter().collect::<HashSet<_>>(), ids, "size {size}");
    }
}

/// `reseal` swaps the sealed fields when they are still the ones given, keeps every other
/// field (a password changed meanwhile survives), and refuses stale fields and unknown ids.
pub async fn reseal_swaps_the_sealed_fields_only_while_they_are_unchanged(
    store: Arc<impl AccountStore + 'static>,
) {
    let accounts = sealed(store.clone());
    let mut a = account("ada@example.com");
    a.two_factor = Some(TwoFactor {
        sealed_secret: vec![1; 60],
        enabled_at: Some(t0()),
        recovery_codes: vec![TokenHash([7; 32])],
    });
    accounts.insert(&a).await.unwrap();
    let before = store.by_id(&a.id).await.unwrap().unwrap();
    // A change of another field after the rotation read the record.
    a.password_hash = "$argon2id$v=19$m=64,t=1,p=1$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g".into();
    accounts.update(&a).await.unwrap();
    let current = store.by_id(&a.id).await.unwrap().unwrap();
    let new = phaze_auth::SealedFields {
        email: current.email.sealed.iter().rev().copied().collect(),
        name: vec![9; 40],
        totp: Some(vec![8; 60]),
    };
    assert!(
        !store
            .reseal(&a.id, &before.sealed_fields(), &new)
            .await
            .unwrap(),
        "fields that changed since they were read are not swapped"
    );
    assert!(store
        .reseal(&a.id, &current.sealed_fields(), &new)
        .await
        .unwrap());
    let after = store.by_id(&a.id).await.unwrap().unwrap();
    assert_eq!(after.sealed_fields(), new);
    assert_eq!(
        after.password_hash, a.password_hash,
        "other fields are kept"
    );
    assert_eq!(after.email.index, current.email.index);
    assert_eq!(
        after.two_factor.as_ref().map(|t| &t.recovery_codes),
        Some(&vec![TokenHash([7; 32])])
    );
    assert_eq!(
        store.by_email(&current.email.index).await.unwrap(),
        Some(after)
    );
    assert!(!store.reseal(&UserId::generate(), &new, &new).await.unwrap());
}

/// A rotation re-seals every account (address, name, TOTP secret) under the newest key: after
/// it, a sealer without the old key opens them all, and a second run finds nothing to do.
pub async fn rotation_seals_every_account_under_the_newest_key(
    store: Arc<impl AccountStore + 'static>,
) {
    let (old, new) = ([3; 32], [4; 32]);
    let before = SealedAccounts::new(store.clone(), sealer_with(&[old]));
    let mut all = Vec::new();
    for n in 0..5 {
        let mut a = account(&format!("r{n}@example.com"));
        a.display_name = DisplayName::parse(&format!("<b>R{n}</b>")).unwrap();
        all.push(a);
    }
    for a in &all {
        before.insert(a).await.unwrap();
    }
    let rotating = SealedAccounts::new(store.clone(), sealer_with(&[new, old]));
    let report = rotating.rotate().await.unwrap();
    assert_eq!((report.visited, report.resealed), (5, 5), "{report:?}");
    assert!(report.complete());
    let after = SealedAccounts::new(store.clone(), sealer_with(&[new]));
    for a in &all {
        assert_eq!(after.by_email(&a.email).await.unwrap().as_ref(), Some(a));
    }
    let again = rotating.rotate().await.unwrap();
    assert_eq!((again.visited, again.resealed), (5, 0));
    // Without the key a record was sealed under, it is counted, not lost.
    let lost = SealedAccounts::new(store.clone(), sealer_with(&[[6; 32]]));
    let report = lost.rotate().await.unwrap();
    assert_eq!(report.unopened, 5);
    assert!(!report.complete());
}

/// The first index key check is kept: the same check passes again, any other fails, also when
/// sixteen first checks race (one of two keys wins, and the other is refused).
pub async fn the_first_index_key_is_kept_and_another_is_refused(
    store: Arc<impl AccountStore + 'static>,
) {
    let tasks: Vec<_> = (0..16u8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { (n % 2, store.check_index_key(&[n % 2; 32]).await.unwrap()) })
        })
        .collect();
    let mut passed = HashSet::new();
    for t in futures_util::future::join_all(tasks).await {
        let (key, ok) = t.unwrap();
        if ok {
            passed.insert(key);
        }
    }
    assert_eq!(passed.len(), 1, "exactly one key won: {passed:?}");
    let winner = *passed.iter().next().unwrap();
    assert!(store.check_index_key(&[winner; 32]).await.unwrap());
    assert!(!store.check_index_key(&[1 - winner; 32]).await.unwrap());
    assert!(!store.check_index_key(&[9; 32]).await.unwrap());
}
