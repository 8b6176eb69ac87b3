//! Contract of [`SessionStore`].

use phaze_sessions::{Rotation, SessionKey, SessionStore, StoreError, StoredSession};
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
        successor: None,
        sealed: vec![n; 80],
    }
}

/// The two records of `old` rotating into key byte `n`: `old` retired (naming the successor,
/// with 10 s of grace and sealed bytes of its own) and the successor.
pub fn rotation(old: &StoredSession, n: u8) -> (StoredSession, StoredSession) {
    let successor = StoredSession {
        sealed: vec![n; 60],
        ..record(n, &old.user_id)
    };
    let retired = StoredSession {
        expires_at: t0() + Duration::seconds(10),
        successor: Some(successor.key),
        sealed: vec![n; 32],
        ..old.clone()
    };
    (retired, successor)
}

/// Runs the whole [`SessionStore`] contract against an adapter. The argument is an expression
/// giving a fresh `(store, guard)` for each rule (see the crate docs). Defines a module of
/// the macro's name with a `#[tokio::test]` per rule, and `tests()` listing them for
/// [`crate::harness::run`].
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
                    rotate_retires_the_old_record_and_inserts_the_successor,
                    rotate_of_a_missing_foreign_or_retired_record_writes_nothing,
                    rotate_onto_a_taken_key_is_a_duplicate_and_writes_nothing,
                    concurrent_rotations_of_one_record_admit_exactly_one_successor,
                    update_never_revives_a_retired_record,
                    remove_ends_the_whole_chain,
                    remove_user_ends_chains_and_keeps_the_named_session,
                    rotation_racing_remove_leaves_neither_id,
                    rotation_racing_remove_user_leaves_neither_id,
                    purge_never_takes_a_successor_along,
                ]
            );
        }
    };
}

/// An inserted record comes back from `get` byte for byte.
pub async fn insert_then_get_round_trips(store: Arc<impl SessionStore>) {
    let s = record(1, "u1");
    store.insert(&s).await.unwrap();
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s));
}

/// Inserting a taken key is [`StoreError::Duplicate`], even for another user, and the first
/// record is untouched.
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

/// `get` of a key never stored is `Ok(None)`, not an error.
pub async fn get_of_unknown_key_is_none(store: Arc<impl SessionStore>) {
    assert_eq!(store.get(&record(7, "u").key).await.unwrap(), None);
}

/// `update` of a missing record returns `false` and creates nothing; of a live one it replaces
/// the sealed data and expiry.
pub async fn update_replaces_existing_only(store: Arc<impl SessionStore>) {
    let mut s = record(1, "u1");
    assert!(
        !store.update(&s).await.unwrap(),
        "update of a missing record writes nothing"
    );
    assert_eq!(store.get(&s.key).await.unwrap(), None);
    store.insert(&s).await.unwrap();
    s.sealed = vec![42; 100];
    s.expires_at = t0() + Duration::seconds(10);
    assert!(store.update(&s).await.unwrap());
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s));
}

/// `remove` says whether the record existed, and a removed record leaves the user's index too.
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

/// `list_user` returns exactly the user's records; user ids shaped like paths, globs or NUL are
/// plain data and list nothing.
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

/// `remove_user` deletes every record of the user but `keep`, counts them, and leaves other
/// users alone.
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

/// `purge_expired` deletes exactly the records expired at `now` (from the index too) and counts
/// them.
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

/// Sixteen tasks insert one key at once: exactly one succeeds, the others get
/// [`StoreError::Duplicate`].
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

/// An `update` racing a `remove` of the same record never brings it back: after both, the
/// record is gone (a request finishing after a logout).
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

/// A winning `rotate` stores the retired record in place of the old one and inserts the
/// successor; both are in the user's index.
pub async fn rotate_retires_the_old_record_and_inserts_the_successor(
    store: Arc<impl SessionStore>,
) {
    let old = record(1, "alice");
    store.insert(&old).await.unwrap();
    let (retired, successor) = rotation(&old, 2);
    assert_eq!(
        store.rotate(&retired, &successor).await.unwrap(),
        Rotation::Won
    );
    assert_eq!(store.get(&old.key).await.unwrap(), Some(retired.clone()));
    assert_eq!(
        store.get(&successor.key).await.unwrap(),
        Some(successor.clone())
    );
    let mut listed = store.list_user("alice").await.unwrap();
    listed.sort_by_key(|s| s.key);
    assert_eq!(listed, vec![retired, successor], "both in the user's index");
}

/// `rotate` of a missing record or another user's is [`Rotation::Gone`], and of a retired one
/// [`Rotation::Lost`] with the first rotation's record; none of them writes anything.
pub async fn rotate_of_a_missing_foreign_or_retired_record_writes_nothing(
    store: Arc<impl SessionStore>,
) {
    let old = record(1, "alice");
    let (retired, successor) = rotation(&old, 2);
    assert_eq!(
        store.rotate(&retired, &successor).await.unwrap(),
        Rotation::Gone,
        "missing"
    );
    assert_eq!(store.get(&successor.key).await.unwrap(), None);

    store.insert(&record(1, "bob")).await.unwrap();
    assert_eq!(
        store.rotate(&retired, &successor).await.unwrap(),
        Rotation::Gone,
        "another user's"
    );
    assert_eq!(store.get(&successor.key).await.unwrap(), None);
    assert_eq!(store.get(&old.key).await.unwrap(), Some(record(1, "bob")));
    store.remove(&old.key).await.unwrap();

    store.insert(&old).await.unwrap();
    assert_eq!(
        store.rotate(&retired, &successor).await.unwrap(),
        Rotation::Won
    );
    let (again, other) = rotation(&old, 3);
    assert_eq!(
        store.rotate(&again, &other).await.unwrap(),
        Rotation::Lost(retired.clone()),
        "retired already: the first rotation's record, naming its successor"
    );
    assert_eq!(store.get(&other.key).await.unwrap(), None);
    assert_eq!(store.get(&old.key).await.unwrap(), Some(retired));
    assert_eq!(store.list_user("alice").await.unwrap().len(), 2);
}

/// A `rotate` whose successor key is taken is [`StoreError::Duplicate`] and writes nothing: the
/// old record stays live.
pub async fn rotate_onto_a_taken_key_is_a_duplicate_and_writes_nothing(
    store: Arc<impl SessionStore>,
) {
    let old = record(1, "alice");
    let taken = record(2, "alice");
    store.insert(&old).await.unwrap();
    store.insert(&taken).await.unwrap();
    let (retired, successor) = rotation(&old, 2);
    assert!(matches!(
        store.rotate(&retired, &successor).await,
        Err(StoreError::Duplicate)
    ));
    assert_eq!(store.get(&old.key).await.unwrap(), Some(old), "still live");
    assert_eq!(store.get(&taken.key).await.unwrap(), Some(taken));
}

/// Sixteen tasks rotate one record at once: exactly one wins, every loser is handed the
/// winner's retired record, and no loser's successor is stored.
pub async fn concurrent_rotations_of_one_record_admit_exactly_one_successor(
    store: Arc<impl SessionStore + 'static>,
) {
    const RACERS: u8 = 16;
    for round in 0..4u8 {
        let old = record(round, "alice");
        store.insert(&old).await.unwrap();
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = store.clone();
                let (retired, successor) = rotation(&old, 0x40 + round * RACERS + i);
                tokio::spawn(async move {
                    let outcome = store.rotate(&retired, &successor).await.unwrap();
                    (retired, successor, outcome)
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut lost = Vec::new();
        for t in futures_util::future::join_all(tasks).await {
            match t.unwrap() {
                (retired, successor, Rotation::Won) => winners.push((retired, successor)),
                (_, successor, Rotation::Lost(found)) => lost.push((successor, found)),
                (_, _, Rotation::Gone) => panic!("round {round}: the record is there"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: one successor per session");
        let (retired, successor) = winners.remove(0);
        for (own, found) in &lost {
            assert_eq!(
                *found, retired,
                "every loser is given the winner's successor"
            );
            assert_eq!(
                store.get(&own.key).await.unwrap(),
                None,
                "losers wrote nothing"
            );
        }
        assert_eq!(store.get(&old.key).await.unwrap(), Some(retired));
        assert_eq!(store.get(&successor.key).await.unwrap(), Some(successor));
    }
    assert_eq!(
        store.list_user("alice").await.unwrap().len(),
        8,
        "four retired records and their four successors"
    );
}

/// An `update` of a retired record (a touch computed before the rotation) returns `false` and
/// writes nothing; the successor updates normally.
pub async fn update_never_revives_a_retired_record(store: Arc<impl SessionStore>) {
    let old = record(1, "alice");
    store.insert(&old).await.unwrap();
    let (retired, successor) = rotation(&old, 2);
    store.rotate(&retired, &successor).await.unwrap();
    // A touch of the old id that was computed before the rotation lands after it.
    let mut touched = old.clone();
    touched.sealed = vec![7; 90];
    assert!(!store.update(&touched).await.unwrap());
    assert_eq!(store.get(&old.key).await.unwrap(), Some(retired));
    let mut touched = successor.clone();
    touched.sealed = vec![8; 90];
    assert!(
        store.update(&touched).await.unwrap(),
        "the successor is live"
    );
}

/// `remove` of any id in a rotation chain ends the whole session; a successor pointer to another
/// user's record (a tampered store) is not followed.
pub async fn remove_ends_the_whole_chain(store: Arc<impl SessionStore>) {
    // alice: 1 rotated into 2, rotated into 3.
    let first = record(1, "alice");
    store.insert(&first).await.unwrap();
    let (retired, second) = rotation(&first, 2);
    store.rotate(&retired, &second).await.unwrap();
    let (retired, third) = rotation(&second, 3);
    store.rotate(&retired, &third).await.unwrap();
    assert!(store.remove(&first.key).await.unwrap());
    for key in [first.key, second.key, third.key] {
        assert_eq!(store.get(&key).await.unwrap(), None, "{key:?}");
    }
    assert!(store.list_user("alice").await.unwrap().is_empty());

    // Removing the successor needs no walk back: the retired record lives only through it.
    let first = record(4, "alice");
    store.insert(&first).await.unwrap();
    let (retired, second) = rotation(&first, 5);
    store.rotate(&retired, &second).await.unwrap();
    assert!(store.remove(&second.key).await.unwrap());
    assert_eq!(store.get(&second.key).await.unwrap(), None);

    // A pointer to another user's record (a tampered store) is not followed.
    let bob = record(6, "bob");
    store.insert(&bob).await.unwrap();
    let forged = StoredSession {
        successor: Some(bob.key),
        ..record(7, "alice")
    };
    store.insert(&forged).await.unwrap();
    assert!(store.remove(&forged.key).await.unwrap());
    assert_eq!(store.get(&bob.key).await.unwrap(), Some(bob));
}

/// `remove_user` ends rotated sessions under all their ids and keeps only `keep`.
pub async fn remove_user_ends_chains_and_keeps_the_named_session(store: Arc<impl SessionStore>) {
    let first = record(1, "alice");
    store.insert(&first).await.unwrap();
    let (retired, second) = rotation(&first, 2);
    store.rotate(&retired, &second).await.unwrap();
    let keep = record(3, "alice");
    store.insert(&keep).await.unwrap();
    store.insert(&record(4, "bob")).await.unwrap();
    assert_eq!(
        store.remove_user("alice", Some(&keep.key)).await.unwrap(),
        2
    );
    assert_eq!(store.list_user("alice").await.unwrap(), vec![keep]);
    assert_eq!(store.list_user("bob").await.unwrap().len(), 1);
}

/// A `rotate` racing a `remove` of the old id leaves neither id live: a logout during a rotation
/// ends the session.
pub async fn rotation_racing_remove_leaves_neither_id(store: Arc<impl SessionStore + 'static>) {
    for round in 0..20u8 {
        let old = record(round, "alice");
        store.insert(&old).await.unwrap();
        let (retired, successor) = rotation(&old, 0x80 + round);
        let (a, b) = (store.clone(), store.clone());
        let rotate = tokio::spawn(async move { a.rotate(&retired, &successor).await.unwrap() });
        let remove = tokio::spawn(async move { b.remove(&old.key).await.unwrap() });
        let _ = rotate.await.unwrap();
        assert!(remove.await.unwrap());
        assert!(
            store.list_user("alice").await.unwrap().is_empty(),
            "round {round}: logout ends the session under both ids"
        );
    }
}

/// A `rotate` racing a `remove_user` leaves neither id live: "log out everywhere" during a
/// rotation ends the session.
pub async fn rotation_racing_remove_user_leaves_neither_id(
    store: Arc<impl SessionStore + 'static>,
) {
    for round in 0..20u8 {
        // Other sessions of the user, so that listing them takes a while.
        for n in 0..4u8 {
            store.insert(&record(0xc0 + n, "alice")).await.unwrap();
        }
        let old = record(round, "alice");
        store.insert(&old).await.unwrap();
        let (retired, successor) = rotation(&old, 0x80 + round);
        let (a, b) = (store.clone(), store.clone());
        let rotate = tokio::spawn(async move { a.rotate(&retired, &successor).await.unwrap() });
        let remove = tokio::spawn(async move { b.remove_user("alice", None).await.unwrap() });
        let _ = rotate.await.unwrap();
        remove.await.unwrap();
        assert!(
            store.list_user("alice").await.unwrap().is_empty(),
            "round {round}: log out everywhere ends the session under both ids"
        );
    }
}

/// Purging a retired record at the end of its grace deletes it alone, never its live successor.
pub async fn purge_never_takes_a_successor_along(store: Arc<impl SessionStore>) {
    let old = record(1, "alice");
    store.insert(&old).await.unwrap();
    let (retired, successor) = rotation(&old, 2);
    store.rotate(&retired, &successor).await.unwrap();
    assert_eq!(
        store
            .purge_expired(t0() + Duration::seconds(10))
            .await
            .unwrap(),
        1,
        "the retired record, at the end of its grace"
    );
    assert_eq!(store.list_user("alice").await.unwrap(), vec![successor]);
}
