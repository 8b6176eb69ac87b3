//! Contract of [`TokenStore`].

use phaze_auth::{
    Email, Registration, StoreError, TokenHash, TokenPurpose, TokenRecord, TokenStore, UserId,
};
use std::sync::Arc;
use time::Duration;

use crate::t0;

/// A verification token record with hash byte `n`, expiring an hour after [`t0`].
pub fn token(n: u8) -> TokenRecord {
    TokenRecord {
        hash: TokenHash([n; 32]),
        purpose: TokenPurpose::EmailVerification,
        user_id: UserId::generate(),
        expires_at: t0() + Duration::hours(1),
        registration: None,
    }
}

/// A registration link with hash byte `n` for `email`, expiring an hour after [`t0`].
pub fn registration(n: u8, email: &str) -> TokenRecord {
    let record = token(n);
    TokenRecord {
        registration: Some(Registration {
            email: crate::accounts::sealer()
                .seal_email(&record.user_id, &Email::parse(email).unwrap()),
            password_hash: format!("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ${n}"),
        }),
        ..record
    }
}

/// Runs the whole [`TokenStore`] contract against an adapter. The argument is an expression
/// giving a fresh `(store, guard)` for each rule (see the crate docs). Defines a module of
/// the macro's name with a `#[tokio::test]` per rule, and `tests()` listing them for
/// [`crate::harness::run`].
#[macro_export]
macro_rules! token_store_contract {
    ($make:expr) => {
        mod token_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                tokens,
                $make,
                [
                    consume_is_single_use,
                    duplicate_issue_is_rejected,
                    wrong_purpose_does_not_consume,
                    expired_token_is_refused_and_gone,
                    concurrent_consumes_admit_exactly_one,
                    purge_removes_only_expired,
                    registrations_round_trip,
                    a_new_token_kills_the_older_one_of_its_subject,
                    other_subjects_and_purposes_keep_their_tokens,
                    concurrent_issues_for_one_subject_leave_one_live_token,
                    find_sees_only_live_tokens_and_uses_none,
                    recovery_codes_of_one_account_all_stay_live,
                    remove_user_deletes_every_token_of_the_user_only,
                ]
            );
        }
    };
}

/// A token is consumed once: the first `consume` returns it, the second and one for an unknown
/// hash return `None`.
pub async fn consume_is_single_use(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.issue(&r).await.unwrap();
    let now = t0();
    assert_eq!(
        store.consume(&r.hash, r.purpose, now).await.unwrap(),
        Some(r.clone())
    );
    assert_eq!(store.consume(&r.hash, r.purpose, now).await.unwrap(), None);
    assert_eq!(
        store
            .consume(&TokenHash([9; 32]), r.purpose, now)
            .await
            .unwrap(),
        None
    );
}

/// Issuing a hash that exists is [`StoreError::Duplicate`].
pub async fn duplicate_issue_is_rejected(store: Arc<impl TokenStore>) {
    store.issue(&token(1)).await.unwrap();
    assert!(matches!(
        store.issue(&token(1)).await,
        Err(StoreError::Duplicate)
    ));
}

/// A `consume` with another purpose returns `None` and leaves the token usable for its own.
pub async fn wrong_purpose_does_not_consume(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.issue(&r).await.unwrap();
    assert_eq!(
        store
            .consume(&r.hash, TokenPurpose::PasswordReset, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.consume(&r.hash, r.purpose, t0()).await.unwrap(),
        Some(r)
    );
}

/// A token presented at its expiry is refused and gone: not even an earlier `now` brings it
/// back.
pub async fn expired_token_is_refused_and_gone(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.issue(&r).await.unwrap();
    assert_eq!(
        store
            .consume(&r.hash, r.purpose, r.expires_at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.consume(&r.hash, r.purpose, t0()).await.unwrap(),
        None,
        "gone after"
    );
}

/// Eight tasks consume one token at once, ten times over: exactly one gets it each time.
pub async fn concurrent_consumes_admit_exactly_one(store: Arc<impl TokenStore + 'static>) {
    for round in 0..10u8 {
        let r = token(round);
        store.issue(&r).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                let r = r.clone();
                tokio::spawn(async move { store.consume(&r.hash, r.purpose, t0()).await.unwrap() })
            })
            .collect();
        let got = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|t| t.as_ref().unwrap().is_some())
            .count();
        assert_eq!(got, 1, "round {round}");
    }
}

/// `purge_expired` deletes exactly the tokens expired at `now` and counts them; a live one stays
/// usable.
pub async fn purge_removes_only_expired(store: Arc<impl TokenStore>) {
    let mut old = token(1);
    old.expires_at = t0();
    let fresh = token(2);
    store.issue(&old).await.unwrap();
    store.issue(&fresh).await.unwrap();
    assert_eq!(store.purge_expired(t0()).await.unwrap(), 1);
    assert_eq!(
        store
            .consume(&fresh.hash, fresh.purpose, t0())
            .await
            .unwrap(),
        Some(fresh)
    );
}

/// A registration link comes back from `consume` with its address and password hash intact.
pub async fn registrations_round_trip(store: Arc<impl TokenStore>) {
    let r = registration(1, "ada@example.com");
    store.issue(&r).await.unwrap();
    assert_eq!(
        store.consume(&r.hash, r.purpose, t0()).await.unwrap(),
        Some(r)
    );
}

/// One live token per purpose and subject: a new registration of an address kills the older
/// link, a new reset token the older one of its account, and once its token is used a subject
/// can get a new one.
pub async fn a_new_token_kills_the_older_one_of_its_subject(store: Arc<impl TokenStore>) {
    // A new registration of one address kills the older link.
    let older = registration(1, "ada@example.com");
    let newer = registration(2, "ada@example.com");
    store.issue(&older).await.unwrap();
    store.issue(&newer).await.unwrap();
    assert_eq!(
        store
            .consume(&older.hash, older.purpose, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume(&newer.hash, newer.purpose, t0())
            .await
            .unwrap(),
        Some(newer)
    );
    // The same for two tokens of one account.
    let first = TokenRecord {
        purpose: TokenPurpose::PasswordReset,
        ..token(3)
    };
    let second = TokenRecord {
        hash: TokenHash([4; 32]),
        ..first.clone()
    };
    store.issue(&first).await.unwrap();
    store.issue(&second).await.unwrap();
    assert_eq!(
        store
            .consume(&first.hash, first.purpose, t0())
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .consume(&second.hash, second.purpose, t0())
            .await
            .unwrap(),
        Some(second)
    );
    // Once its token is used, a subject can have a new one.
    let third = registration(5, "ada@example.com");
    store.issue(&third).await.unwrap();
    assert_eq!(
        store
            .consume(&third.hash, third.purpose, t0())
            .await
            .unwrap(),
        Some(third)
    );
}

/// Issuing never kills a token of another subject, or of another purpose for the same account.
pub async fn other_subjects_and_purposes_keep_their_tokens(store: Arc<impl TokenStore>) {
    let ada = registration(1, "ada@example.com");
    let bob = registration(2, "bob@example.com");
    let account = token(3);
    let reset = TokenRecord {
        hash: TokenHash([4; 32]),
        purpose: TokenPurpose::PasswordReset,
        ..account.clone()
    };
    for r in [&ada, &bob, &account, &reset] {
        store.issue(r).await.unwrap();
    }
    for r in [ada, bob, account, reset] {
        assert_eq!(
            store.consume(&r.hash, r.purpose, t0()).await.unwrap(),
            Some(r)
        );
    }
}

/// Recovery codes are subjects of their own: ten issued for one account all stay usable (each
/// once), next to the account's reset link, and none is found under another purpose.
pub async fn recovery_codes_of_one_account_all_stay_live(store: Arc<impl TokenStore>) {
    let reset = TokenRecord {
        purpose: TokenPurpose::PasswordReset,
        ..token(200)
    };
    let codes: Vec<TokenRecord> = (1..=10)
        .map(|n| TokenRecord {
            hash: TokenHash([n; 32]),
            purpose: TokenPurpose::RecoveryCode,
            expires_at: t0() + Duration::days(3650),
            ..reset.clone()
        })
        .collect();
    store.issue(&reset).await.unwrap();
    for c in &codes {
        store.issue(c).await.unwrap();
    }
    assert_eq!(
        store
            .find(&codes[0].hash, TokenPurpose::PasswordReset, t0())
            .await
            .unwrap(),
        None
    );
    for c in codes.iter().rev() {
        assert_eq!(
            store.consume(&c.hash, c.purpose, t0()).await.unwrap(),
            Some(c.clone())
        );
        assert_eq!(store.consume(&c.hash, c.purpose, t0()).await.unwrap(), None);
    }
    assert_eq!(
        store
            .consume(&reset.hash, reset.purpose, t0())
            .await
            .unwrap(),
        Some(reset)
    );
}

/// Eight tasks issue links for one address at once: exactly one of them stays usable.
pub async fn concurrent_issues_for_one_subject_leave_one_live_token(
    store: Arc<impl TokenStore + 'static>,
) {
    let records: Vec<TokenRecord> = (0..8).map(|n| registration(n, "ada@example.com")).collect();
    let tasks: Vec<_> = records
        .iter()
        .cloned()
        .map(|r| {
            let store = store.clone();
            tokio::spawn(async move { store.issue(&r).await.unwrap() })
        })
        .collect();
    for t in futures_util::future::join_all(tasks).await {
        t.unwrap();
    }
    let mut live = 0;
    for r in &records {
        if store
            .consume(&r.hash, r.purpose, t0())
            .await
            .unwrap()
            .is_some()
        {
            live += 1;
        }
    }
    assert_eq!(live, 1, "exactly one of the racing links stays usable");
}

/// `find` returns a live token of the purpose asked, and nothing for a used, expired, replaced,
/// unknown or other-purpose one; it uses nothing (the token is consumed afterwards).
pub async fn find_sees_only_live_tokens_and_uses_none(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.issue(&r).await.unwrap();
    let now = t0();
    for _ in 0..2 {
        assert_eq!(
            store.find(&r.hash, r.purpose, now).await.unwrap(),
            Some(r.clone())
        );
    }
    assert_eq!(
        store
            .find(&r.hash, TokenPurpose::PasswordReset, now)
            .await
            .unwrap(),
        None,
        "another purpose"
    );
    assert_eq!(
        store.find(&r.hash, r.purpose, r.expires_at).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store
            .find(&TokenHash([9; 32]), r.purpose, now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.consume(&r.hash, r.purpose, now).await.unwrap(),
        Some(r.clone()),
        "find used nothing"
    );
    assert_eq!(
        store.find(&r.hash, r.purpose, now).await.unwrap(),
        None,
        "used"
    );
    // A newer token of the same subject replaces the older one.
    let older = registration(2, "find@example.com");
    let newer = registration(3, "find@example.com");
    store.issue(&older).await.unwrap();
    store.issue(&newer).await.unwrap();
    assert_eq!(
        store.find(&older.hash, older.purpose, now).await.unwrap(),
        None
    );
    assert_eq!(
        store.find(&newer.hash, newer.purpose, now).await.unwrap(),
        Some(newer)
    );
}

/// Every token of a user goes, whatever its purpose and whether a link is pending; another
/// user's stay; a second call finds nothing.
pub async fn remove_user_deletes_every_token_of_the_user_only(store: Arc<impl TokenStore>) {
    let link = token(1);
    let ada = link.user_id;
    let mut reset = token(2);
    reset.user_id = ada;
    reset.purpose = TokenPurpose::PasswordReset;
    let other = token(3);
    for t in [&link, &reset, &other] {
        store.issue(t).await.unwrap();
    }
    assert_eq!(store.remove_user(&ada).await.unwrap(), 2);
    for t in [&link, &reset] {
        assert_eq!(store.find(&t.hash, t.purpose, t0()).await.unwrap(), None);
    }
    assert!(store
        .find(&other.hash, other.purpose, t0())
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.remove_user(&ada).await.unwrap(), 0);
    // The subject's slot is free: a new token for it issues and lives.
    let mut again = token(4);
    again.user_id = ada;
    store.issue(&again).await.unwrap();
    assert!(store
        .find(&again.hash, again.purpose, t0())
        .await
        .unwrap()
        .is_some());
}
