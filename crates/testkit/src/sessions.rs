//! Contract of [`SessionStore`].

use phaze_sessions::{SessionKey, SessionStore, StoreError, StoredSession};
use std::sync::Arc;
use time::Duration;

use crate::t0;

/// A record for `user` with key byte `n`, expiring an hour after [`t0`].
pub fn record(n: u8, user: &str) -> StoredSession {
    let mut key = [0u8; 32];
    key[0] = n;
    key[31] = 0xa5;
    StoredSession {
        key: SessionKey::from(key),
        user_id: user.to_owned(),
        expires_at: t0() + Duration::hours(1),
        superseded: false,
        sealed: vec![n; 80],
    }
}

/// Runs the whole [`SessionStore`] contract against an adapter.
#[macro_export]
macro_rules! session_store_contract {
    ($make:expr) => {
        mod session_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                sessions,
                $make,
                [
                    insert_then_get_round_trips,
                    duplicate_insert_is_rejected,
                    get_of_unknown_key_is_none,
                    update_replaces_existing_only,
                    remove_reports_existence,
                    list_user_returns_only_that_users_sessions,
                    remove_user_keeps_the_named_session,
                    purge_removes_only_expired,
                    concurrent_inserts_of_one_key_admit_exactly_one,
                    update_racing_remove_never_resurrects,
                ]
            );
        }
    };
}

pub async fn insert_then_get_round_trips(store: Arc<impl SessionStore>) {
    let s = record(1, "u1");
    store.insert(&s).await.unwrap();
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s));
}

pub async fn duplicate_insert_is_rejected(store: Arc<impl SessionStore>) {
    let s = record(1, "u1");
    store.insert(&s).await.unwrap();
    let mut other = record(1, "u2");
    other.sealed = vec![9; 10];
    assert!(matches!(
        store.insert(&other).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(
        store.get(&s.key).await.unwrap(),
        Some(s),
        "the first record is untouched"
    );
}

pub async fn get_of_unknown_key_is_none(store: Arc<impl SessionStore>) {
    assert_eq!(store.get(&record(7, "u").key).await.unwrap(), None);
}

pub async fn update_replaces_existing_only(store: Arc<impl SessionStore>) {
    let mut s = record(1, "u1");
    assert!(
        !store.update(&s).await.unwrap(),
        "update of a missing record writes nothing"
    );
    assert_eq!(store.get(&s.key).await.unwrap(), None);
    store.insert(&s).await.unwrap();
    s.sealed = vec![42; 100];
    s.superseded = true;
    s.expires_at = t0() + Duration::seconds(10);
    assert!(store.update(&s).await.unwrap());
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s));
}

pub async fn remove_reports_existence(store: Arc<impl SessionStore>) {
    let s = record(1, "u1");
    assert!(!store.remove(&s.key).await.unwrap());
    store.insert(&s).await.unwrap();
    assert!(store.remove(&s.key).await.unwrap());
    assert!(!store.remove(&s.key).await.unwrap());
    assert_eq!(store.get(&s.key).await.unwrap(), None);
    assert!(
        store.list_user("u1").await.unwrap().is_empty(),
        "the index forgets it too"
    );
}

pub async fn list_user_returns_only_that_users_sessions(store: Arc<impl SessionStore>) {
    for (n, user) in [(1, "alice"), (2, "alice"), (3, "bob"), (4, "alice")] {
        store.insert(&record(n, user)).await.unwrap();
    }
    let mut alice: Vec<u8> = store
        .list_user("alice")
        .await
        .unwrap()
        .iter()
        .map(|s| s.key.as_bytes()[0])
        .collect();
    alice.sort();
    assert_eq!(alice, vec![1, 2, 4]);
    assert_eq!(
        store.list_user("bob").await.unwrap(),
        vec![record(3, "bob")]
    );
    assert!(store.list_user("carol").await.unwrap().is_empty());
    // User ids are data, never paths or patterns.
    for hostile in ["../alice", "alice/..", "*", "alice\0", "", "%2e%2e"] {
        assert!(
            store.list_user(hostile).await.unwrap().is_empty(),
            "{hostile:?}"
        );
    }
}

pub async fn remove_user_keeps_the_named_session(store: Arc<impl SessionStore>) {
    for (n, user) in [(1, "alice"), (2, "alice"), (3, "bob"), (4, "alice")] {
        store.insert(&record(n, user)).await.unwrap();
    }
    let keep = record(2, "alice").key;
    assert_eq!(store.remove_user("alice", Some(&keep)).await.unwrap(), 2);
    assert_eq!(
        store.list_user("alice").await.unwrap(),
        vec![record(2, "alice")]
    );
    assert!(store.get(&record(1, "alice").key).await.unwrap().is_none());
    assert_eq!(store.remove_user("alice", None).await.unwrap(), 1);
    assert!(store.list_user("alice").await.unwrap().is_empty());
    assert_eq!(
        store.list_user("bob").await.unwrap().len(),
        1,
        "other users untouched"
    );
}

pub async fn purge_removes_only_expired(store: Arc<impl SessionStore>) {
    let mut old = record(1, "alice");
    old.expires_at = t0();
    let fresh = record(2, "alice");
    store.insert(&old).await.unwrap();
    store.insert(&fresh).await.unwrap();
    assert_eq!(store.purge_expired(t0()).await.unwrap(), 1);
    assert_eq!(store.get(&old.key).await.unwrap(), None);
    assert_eq!(store.list_user("alice").await.unwrap(), vec![fresh]);
}

pub async fn concurrent_inserts_of_one_key_admit_exactly_one(
    store: Arc<impl SessionStore + 'static>,
) {
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut s = record(1, "alice");
                s.sealed = vec![i; 40];
                store.insert(&s).await
            })
        })
        .collect();
    let mut ok = 0;
    for t in futures_util::future::join_all(tasks).await {
        match t.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Duplicate) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(store.list_user("alice").await.unwrap().len(), 1);
}

pub async fn update_racing_remove_never_resurrects(store: Arc<impl SessionStore + 'static>) {
    for round in 0..20u8 {
        let s = record(round, "alice");
        store.insert(&s).await.unwrap();
        let (a, b) = (store.clone(), store.clone());
        let s2 = s.clone();
        let up = tokio::spawn(async move { a.update(&s2).await.unwrap() });
        let rm = tokio::spawn(async move { b.remove(&s.key).await.unwrap() });
        let _ = up.await.unwrap();
        assert!(rm.await.unwrap());
        assert_eq!(
            store.get(&record(round, "alice").key).await.unwrap(),
            None,
            "round {round}"
        );
    }
    assert!(store.list_user("alice").await.unwrap().is_empty());
}
