//! Contract of [`TokenStore`].

use phaze_auth::{StoreError, TokenHash, TokenPurpose, TokenRecord, TokenStore, UserId};
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
    }
}

/// Runs the whole [`TokenStore`] contract against an adapter.
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
                    duplicate_insert_is_rejected,
                    wrong_purpose_does_not_consume,
                    expired_token_is_refused_and_gone,
                    concurrent_consumes_admit_exactly_one,
                    purge_removes_only_expired,
                ]
            );
        }
    };
}

pub async fn consume_is_single_use(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.insert(&r).await.unwrap();
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

pub async fn duplicate_insert_is_rejected(store: Arc<impl TokenStore>) {
    store.insert(&token(1)).await.unwrap();
    assert!(matches!(
        store.insert(&token(1)).await,
        Err(StoreError::Duplicate)
    ));
}

pub async fn wrong_purpose_does_not_consume(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.insert(&r).await.unwrap();
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

pub async fn expired_token_is_refused_and_gone(store: Arc<impl TokenStore>) {
    let r = token(1);
    store.insert(&r).await.unwrap();
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

pub async fn concurrent_consumes_admit_exactly_one(store: Arc<impl TokenStore + 'static>) {
    for round in 0..10u8 {
        let r = token(round);
        store.insert(&r).await.unwrap();
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

pub async fn purge_removes_only_expired(store: Arc<impl TokenStore>) {
    let mut old = token(1);
    old.expires_at = t0();
    let fresh = token(2);
    store.insert(&old).await.unwrap();
    store.insert(&fresh).await.unwrap();
    assert_eq!(store.purge_expired(t0()).await.unwrap(), 1);
    assert_eq!(
        store
            .consume(&fresh.hash, fresh.purpose, t0())
            .await
            .unwrap(),
        Some(fresh)
    );
}
