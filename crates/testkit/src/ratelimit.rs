//! Contract of [`RateLimitStore`], including the exactness rule: N simultaneous hits against a
//! limit L allow exactly L.

use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
use std::sync::Arc;
use time::Duration;

use crate::t0;

/// A key with first byte `n`.
pub fn key(n: u8) -> LimitKey {
    let mut k = [0x5a; 32];
    k[0] = n;
    LimitKey::from(k)
}

/// Runs the whole [`RateLimitStore`] contract against an adapter.
#[macro_export]
macro_rules! rate_limit_store_contract {
    ($make:expr) => {
        mod rate_limit_store_contract {
            #[allow(unused_imports)]
            use super::*;
            $crate::__contract_tests!(
                ratelimit,
                $make,
                [
                    allows_the_limit_then_denies,
                    keys_are_independent,
                    the_window_slides,
                    peek_records_nothing,
                    reset_forgets,
                    exactly_the_limit_passes_under_concurrency,
                ]
            );
        }
    };
}

const FIVE_PER_15_MIN: Window = Window::new(5, Duration::minutes(15));

pub async fn allows_the_limit_then_denies(store: Arc<impl RateLimitStore>) {
    for i in 0..5u32 {
        let d = store
            .hit(&key(1), FIVE_PER_15_MIN, t0() + Duration::seconds(i.into()))
            .await
            .unwrap();
        assert!(d.allowed, "hit {i}");
        assert_eq!(d.remaining, 4 - i);
        assert_eq!(d.limit, 5);
    }
    let d = store
        .hit(&key(1), FIVE_PER_15_MIN, t0() + Duration::seconds(10))
        .await
        .unwrap();
    assert!(!d.allowed);
    assert_eq!(d.remaining, 0);
    assert_eq!(
        d.retry_after(),
        Some(Duration::minutes(15) - Duration::seconds(10))
    );
}

pub async fn keys_are_independent(store: Arc<impl RateLimitStore>) {
    for _ in 0..5 {
        store.hit(&key(1), FIVE_PER_15_MIN, t0()).await.unwrap();
    }
    assert!(
        !store
            .hit(&key(1), FIVE_PER_15_MIN, t0())
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .hit(&key(2), FIVE_PER_15_MIN, t0())
            .await
            .unwrap()
            .allowed
    );
}

pub async fn the_window_slides(store: Arc<impl RateLimitStore>) {
    for i in 0..5 {
        store
            .hit(&key(1), FIVE_PER_15_MIN, t0() + Duration::minutes(i))
            .await
            .unwrap();
    }
    let at = |m: i64, s: i64| t0() + Duration::minutes(m) + Duration::seconds(s);
    assert!(
        !store
            .hit(&key(1), FIVE_PER_15_MIN, at(14, 59))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        store
            .hit(&key(1), FIVE_PER_15_MIN, at(15, 0))
            .await
            .unwrap()
            .allowed
    );
    assert!(
        !store
            .hit(&key(1), FIVE_PER_15_MIN, at(15, 30))
            .await
            .unwrap()
            .allowed
    );
    // Long after, the whole budget is back.
    for _ in 0..5 {
        assert!(
            store
                .hit(&key(1), FIVE_PER_15_MIN, at(60, 0))
                .await
                .unwrap()
                .allowed
        );
    }
}

pub async fn peek_records_nothing(store: Arc<impl RateLimitStore>) {
    for _ in 0..10 {
        assert!(
            store
                .peek(&key(1), FIVE_PER_15_MIN, t0())
                .await
                .unwrap()
                .allowed
        );
    }
    for _ in 0..3 {
        store
            .hit(&key(1), Window::new(10, Duration::hours(1)), t0())
            .await
            .unwrap();
    }
    let three = Window::new(3, Duration::hours(1));
    assert!(!store.peek(&key(1), three, t0()).await.unwrap().allowed);
    assert_eq!(
        store
            .peek(&key(1), Window::new(10, Duration::hours(1)), t0())
            .await
            .unwrap()
            .remaining,
        7
    );
}

pub async fn reset_forgets(store: Arc<impl RateLimitStore>) {
    for _ in 0..5 {
        store.hit(&key(1), FIVE_PER_15_MIN, t0()).await.unwrap();
    }
    store.reset(&key(1)).await.unwrap();
    store.reset(&key(9)).await.unwrap();
    assert_eq!(
        store
            .hit(&key(1), FIVE_PER_15_MIN, t0())
            .await
            .unwrap()
            .remaining,
        4
    );
}

pub async fn exactly_the_limit_passes_under_concurrency(store: Arc<impl RateLimitStore + 'static>) {
    for (round, (n, limit)) in [(10u8, 5u32), (40, 5), (64, 1), (50, 17), (8, 10)]
        .into_iter()
        .enumerate()
    {
        let window = Window::new(limit, Duration::minutes(15));
        let k = key(100 + round as u8);
        let barrier = Arc::new(tokio::sync::Barrier::new(usize::from(n)));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store.hit(&k, window, t0()).await.unwrap().allowed
                })
            })
            .collect();
        let allowed = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count();
        assert_eq!(
            allowed,
            usize::from(n).min(limit as usize),
            "N={n} L={limit}"
        );
    }
}
