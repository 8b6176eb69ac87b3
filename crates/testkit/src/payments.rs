//! Contracts of [`ProcessedEvents`] and [`Subscriptions`].

use phaze_payments::UserId;
use phaze_payments::{
    Claim, ClaimToken, ProcessedEvents, Stamp, Status, SubscriptionRecord, Subscriptions,
};
use std::sync::Arc;
use time::Duration;

use crate::t0;

const LEASE: Duration = Duration::seconds(60);

/// Runs the whole [`ProcessedEvents`] contract against an adapter (see
/// [`crate::token_store_contract`] for the argument).
#[macro_export]
macro_rules! processed_events_contract {
    ($make:expr) => {
        mod processed_events_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                payments,
                $make,
                [
                    the_first_claim_wins_and_the_next_is_held,
                    an_applied_event_stays_applied,
                    a_released_event_can_be_claimed_again,
                    a_lapsed_claim_is_taken_over_and_its_old_holder_loses_it,
                    concurrent_claims_admit_exactly_one,
                    purge_forgets_old_applied_ids_and_lapsed_claims_only,
                    hostile_event_ids_are_kept_apart,
                ]
            );
        }
    };
}

/// Runs the whole [`Subscriptions`] contract against an adapter.
#[macro_export]
macro_rules! subscriptions_contract {
    ($make:expr) => {
        mod subscriptions_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                payments,
                $make,
                [
                    an_absent_record_is_version_zero,
                    put_is_a_compare_and_set,
                    records_round_trip,
                    the_customer_link_names_the_account,
                    concurrent_read_modify_writes_lose_nothing,
                    remove_forgets_the_record_and_the_customer_link,
                ]
            );
        }
    };
}

/// The first claim of an id wins; another, with its lease running, is told it is held.
pub async fn the_first_claim_wins_and_the_next_is_held(store: Arc<impl ProcessedEvents>) {
    let (a, b) = (ClaimToken::generate(), ClaimToken::generate());
    assert_eq!(
        store.claim("evt_1", &a, t0(), LEASE).await.unwrap(),
        Claim::Won
    );
    let later = t0() + Duration::seconds(59);
    assert_eq!(
        store.claim("evt_1", &b, later, LEASE).await.unwrap(),
        Claim::Held
    );
    assert_eq!(
        store.claim("evt_2", &b, later, LEASE).await.unwrap(),
        Claim::Won
    );
}

/// Once marked applied, an id is applied for every later claim, lease or no lease.
pub async fn an_applied_event_stays_applied(store: Arc<impl ProcessedEvents>) {
    let a = ClaimToken::generate();
    store.claim("evt_1", &a, t0(), LEASE).await.unwrap();
    assert!(store.mark_applied("evt_1", &a, t0()).await.unwrap());
    for later in [Duration::ZERO, Duration::hours(1), Duration::days(29)] {
        let b = ClaimToken::generate();
        assert_eq!(
            store.claim("evt_1", &b, t0() + later, LEASE).await.unwrap(),
            Claim::Applied
        );
    }
    // Releasing an applied id does nothing.
    store.release("evt_1", &a).await.unwrap();
    let c = ClaimToken::generate();
    assert_eq!(
        store.claim("evt_1", &c, t0(), LEASE).await.unwrap(),
        Claim::Applied
    );
}

/// A released claim is free at once, for the next delivery.
pub async fn a_released_event_can_be_claimed_again(store: Arc<impl ProcessedEvents>) {
    let (a, b) = (ClaimToken::generate(), ClaimToken::generate());
    store.claim("evt_1", &a, t0(), LEASE).await.unwrap();
    store.release("evt_1", &a).await.unwrap();
    assert_eq!(
        store.claim("evt_1", &b, t0(), LEASE).await.unwrap(),
        Claim::Won
    );
    // A release by a token that does not hold the claim changes nothing.
    store.release("evt_1", &a).await.unwrap();
    let c = ClaimToken::generate();
    assert_eq!(
        store.claim("evt_1", &c, t0(), LEASE).await.unwrap(),
        Claim::Held
    );
}

/// After its lease, a claim is taken over (its holder died); the old holder can then neither mark
/// nor release it.
pub async fn a_lapsed_claim_is_taken_over_and_its_old_holder_loses_it(
    store: Arc<impl ProcessedEvents>,
) {
    let (a, b, c) = (
        ClaimToken::generate(),
        ClaimToken::generate(),
        ClaimToken::generate(),
    );
    store.claim("evt_1", &a, t0(), LEASE).await.unwrap();
    let later = t0() + LEASE + Duration::seconds(1);
    assert_eq!(
        store.claim("evt_1", &b, later, LEASE).await.unwrap(),
        Claim::Won
    );
    assert!(!store.mark_applied("evt_1", &a, later).await.unwrap());
    store.release("evt_1", &a).await.unwrap();
    assert_eq!(
        store.claim("evt_1", &c, later, LEASE).await.unwrap(),
        Claim::Held
    );
    assert!(store.mark_applied("evt_1", &b, later).await.unwrap());
    assert_eq!(
        store.claim("evt_1", &c, later, LEASE).await.unwrap(),
        Claim::Applied
    );
}

/// Of many parallel claims of one id, exactly one wins.
pub async fn concurrent_claims_admit_exactly_one(store: Arc<impl ProcessedEvents + 'static>) {
    for round in 0..10 {
        let id = format!("evt_race_{round}");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (store, id) = (store.clone(), id.clone());
                tokio::spawn(async move {
                    store
                        .claim(&id, &ClaimToken::generate(), t0(), LEASE)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() == Claim::Won {
                won += 1;
            }
        }
        assert_eq!(won, 1, "round {round}");
    }
}

/// `purge` forgets ids applied before the cut and claims whose lease ended before it; applied ids
/// after the cut and live claims stay.
pub async fn purge_forgets_old_applied_ids_and_lapsed_claims_only(
    store: Arc<impl ProcessedEvents>,
) {
    let old = t0();
    let recent = t0() + Duration::days(40);
    let cut = t0() + Duration::days(30);
    for (id, at, apply) in [
        ("evt_old", old, true),
        ("evt_recent", recent, true),
        ("evt_lapsed", old, false),
        ("evt_live", cut, false),
    ] {
        let t = ClaimToken::generate();
        store.claim(id, &t, at, LEASE).await.unwrap();
        if apply {
            store.mark_applied(id, &t, at).await.unwrap();
        }
    }
    assert_eq!(store.purge(cut).await.unwrap(), 2);
    let t = ClaimToken::generate();
    assert_eq!(
        store.claim("evt_old", &t, recent, LEASE).await.unwrap(),
        Claim::Won
    );
    assert_eq!(
        store.claim("evt_recent", &t, recent, LEASE).await.unwrap(),
        Claim::Applied
    );
    assert_eq!(
        store.claim("evt_live", &t, cut, LEASE).await.unwrap(),
        Claim::Held
    );
    assert_eq!(store.purge(cut).await.unwrap(), 0);
}

/// Ids a hostile sender could choose (after a valid signature, so only Stripe could) are kept
/// apart and never reach a path.
pub async fn hostile_event_ids_are_kept_apart(store: Arc<impl ProcessedEvents>) {
    let long = "e".repeat(255);
    let ids = [
        "../../etc/passwd",
        "/abs",
        "evt_1\\..\\x",
        "ÉVT_ünïcode_🚀",
        "evt 1",
        "EVT_1",
        "evt_1",
        long.as_str(),
    ];
    for id in ids {
        let t = ClaimToken::generate();
        assert_eq!(
            store.claim(id, &t, t0(), LEASE).await.unwrap(),
            Claim::Won,
            "{id}"
        );
        assert!(store.mark_applied(id, &t, t0()).await.unwrap(), "{id}");
    }
    for id in ids {
        let t = ClaimToken::generate();
        assert_eq!(
            store.claim(id, &t, t0(), LEASE).await.unwrap(),
            Claim::Applied,
            "{id}"
        );
    }
}

/// A record of `user` with every field set.
pub fn record(user: UserId) -> SubscriptionRecord {
    SubscriptionRecord {
        user,
        customer: Some("cus_1".into()),
        subscription: Some("sub_1".into()),
        status: Status::Active,
        price: Some("price_ünï".into()),
        current_period_end: Some(1_800_000_000),
        last_event: Some(Stamp {
            created: 1_767_225_600,
            event: "evt_1".into(),
        }),
    }
}

/// No record reads as `None`; the first `put` expects version 0 and stores version 1.
pub async fn an_absent_record_is_version_zero(store: Arc<impl Subscriptions>) {
    let user = UserId::generate();
    assert_eq!(store.get(&user).await.unwrap(), None);
    let r = SubscriptionRecord::new(user);
    assert!(store.put(&r, 0).await.unwrap());
    assert_eq!(store.get(&user).await.unwrap(), Some((r.clone(), 1)));
    assert!(!store.put(&r, 0).await.unwrap(), "version 0 means absent");
}

/// A `put` against a stale version changes nothing.
pub async fn put_is_a_compare_and_set(store: Arc<impl Subscriptions>) {
    let user = UserId::generate();
    let first = SubscriptionRecord::new(user);
    let second = record(user);
    let mut third = record(user);
    third.status = Status::Canceled;
    assert!(store.put(&first, 0).await.unwrap());
    assert!(store.put(&second, 1).await.unwrap());
    assert!(!store.put(&third, 1).await.unwrap());
    assert!(!store.put(&third, 5).await.unwrap());
    assert_eq!(store.get(&user).await.unwrap(), Some((second, 2)));
}

/// Every field comes back as stored, `None`s included, and accounts are kept apart.
pub async fn records_round_trip(store: Arc<impl Subscriptions>) {
    let (a, b) = (UserId::generate(), UserId::generate());
    let full = record(a);
    let mut empty = SubscriptionRecord::new(b);
    empty.status = Status::PastDue;
    assert!(store.put(&full, 0).await.unwrap());
    assert!(store.put(&empty, 0).await.unwrap());
    assert_eq!(store.get(&a).await.unwrap(), Some((full, 1)));
    assert_eq!(store.get(&b).await.unwrap(), Some((empty, 1)));
}

/// A stored customer names its account; an unknown one names none.
pub async fn the_customer_link_names_the_account(store: Arc<impl Subscriptions>) {
    let user = UserId::generate();
    assert_eq!(store.user_for_customer("cus_1").await.unwrap(), None);
    assert!(store.put(&record(user), 0).await.unwrap());
    assert_eq!(store.user_for_customer("cus_1").await.unwrap(), Some(user));
    assert_eq!(store.user_for_customer("cus_2").await.unwrap(), None);
    assert_eq!(store.user_for_customer("../cus_1").await.unwrap(), None);
}

/// Parallel read-modify-write loops over one record (each retrying on a lost compare-and-set)
/// lose no update.
pub async fn concurrent_read_modify_writes_lose_nothing(store: Arc<impl Subscriptions + 'static>) {
    let user = UserId::generate();
    let mut r = SubscriptionRecord::new(user);
    r.current_period_end = Some(0);
    assert!(store.put(&r, 0).await.unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..5 {
                    loop {
                        let (mut r, v) = store.get(&user).await.unwrap().unwrap();
                        r.current_period_end = r.current_period_end.map(|n| n + 1);
                        if store.put(&r, v).await.unwrap() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let (r, v) = store.get(&user).await.unwrap().unwrap();
    assert_eq!(r.current_period_end, Some(40));
    assert_eq!(v, 41);
}

/// Removing a record forgets it and its customer link, once; another account's stays.
pub async fn remove_forgets_the_record_and_the_customer_link(store: Arc<impl Subscriptions>) {
    let (ada, bob) = (UserId::generate(), UserId::generate());
    assert!(store.put(&record(ada), 0).await.unwrap());
    let mut other = record(bob);
    other.customer = Some("cus_2".into());
    assert!(store.put(&other, 0).await.unwrap());
    assert!(store.remove(&ada).await.unwrap());
    assert_eq!(store.get(&ada).await.unwrap(), None);
    assert_eq!(store.user_for_customer("cus_1").await.unwrap(), None);
    assert!(!store.remove(&ada).await.unwrap(), "once");
    assert_eq!(store.user_for_customer("cus_2").await.unwrap(), Some(bob));
    assert!(store.get(&bob).await.unwrap().is_some());
}
