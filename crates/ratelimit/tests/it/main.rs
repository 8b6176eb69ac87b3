//! The login guard over the memory store: exactness under parallel attempts, challenge, lock and
//! device budgets, with time as a parameter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod login;

use phaze_ratelimit::{
    Counter, Decision, KeyHasher, LimitKey, LoginGuard, LoginPolicy, RateLimitStore, Step,
    StoreError, Window,
};
use phaze_store_memory::MemoryRateLimits;
use secrecy::SecretBox;
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};
use tokio::sync::oneshot;

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + secs).unwrap()
}

fn guard() -> Arc<LoginGuard> {
    guard_over(Arc::new(MemoryRateLimits::default()))
}

fn guard_over(store: Arc<dyn RateLimitStore>) -> Arc<LoginGuard> {
    let keys = KeyHasher::new(SecretBox::new(Box::new([9; 32])));
    Arc::new(LoginGuard::new(store, keys, LoginPolicy::default()))
}

/// The memory store, except that the hit which hands out the last of ten slots says so and
/// then waits to return until it is told to: the slowest possible reservation, which a parallel
/// request overtakes.
#[derive(Default)]
struct SlowLastSlot {
    inner: MemoryRateLimits,
    reached: Mutex<Option<oneshot::Sender<()>>>,
    resume: Mutex<Option<oneshot::Receiver<()>>>,
}

#[async_trait::async_trait]
impl RateLimitStore for SlowLastSlot {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        let d = self.inner.hit(key, window, now).await?;
        if window.limit == 10 && d.allowed && d.remaining == 0 {
            let reached = self.reached.lock().unwrap().take();
            let resume = self.resume.lock().unwrap().take();
            if let (Some(reached), Some(resume)) = (reached, resume) {
                reached.send(()).unwrap();
                resume.await.unwrap();
            }
        }
        Ok(d)
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        self.inner.peek(key, window, now).await
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        self.inner.reset(key).await
    }

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        self.inner.run(steps, now).await
    }
}

const ADA: Counter<'static> = Counter::Identifier("ada@example.com");

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_forty_parallel_attempts_exactly_ten_are_judged() {
    let g = guard();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.reserve_attempt(&ADA, t(0)).await.unwrap().is_ok() })
        })
        .collect();
    let judged = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(judged, 10);
    assert!(g.locked(&ADA, t(0)).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_once_given_is_judged_though_a_parallel_attempt_locks_first() {
    let (reached, reached_rx) = oneshot::channel();
    let (resume_tx, resume) = oneshot::channel();
    let store = SlowLastSlot {
        reached: Mutex::new(Some(reached)),
        resume: Mutex::new(Some(resume)),
        ..SlowLastSlot::default()
    };
    let g = guard_over(Arc::new(store));
    for i in 0..9 {
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(i)).await.unwrap();
    }
    // The tenth attempt gets the last slot, and is slow to hear so.
    let tenth = {
        let g = g.clone();
        tokio::spawn(async move { g.reserve_attempt(&ADA, t(9)).await.unwrap() })
    };
    reached_rx.await.unwrap();
    // The eleventh, meanwhile: no slot, and it locks the counter.
    assert!(g.reserve_attempt(&ADA, t(9)).await.unwrap().is_err());
    assert!(g.locked(&ADA, t(9)).await.unwrap().is_some());
    resume_tx.send(()).unwrap();
    let reservation = tenth.await.unwrap().expect("the tenth slot is judged");
    assert_eq!(reservation.remaining, 0);
    assert!(
        !g.failed(&ADA, &reservation, t(9)).await.unwrap(),
        "already locked"
    );
    assert!(g.reserve_attempt(&ADA, t(10)).await.unwrap().is_err());
}

#[tokio::test]
async fn attempts_refused_during_a_lock_leave_nothing_behind_it() {
    let g = guard();
    for i in 0..10 {
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(i)).await.unwrap();
    }
    // Twenty guesses while locked, each past the caller's lock check (a race, or a caller that
    // does not check): all refused, and none counted.
    for i in 0..20 {
        assert!(g.reserve_attempt(&ADA, t(10 + i)).await.unwrap().is_err());
    }
    let after = t(9) + Duration::minutes(15);
    assert!(g.locked(&ADA, after).await.unwrap().is_none());
    assert!(!g
        .challenge_required("ada@example.com", after)
        .await
        .unwrap());
    // Afresh: ten slots again, the tenth failure locks again.
    for i in 0..10 {
        let r = g.reserve_attempt(&ADA, after + Duration::seconds(i)).await;
        let r = r
            .unwrap()
            .unwrap_or_else(|_| panic!("slot {i} after the lock"));
        g.failed(&ADA, &r, after + Duration::seconds(i))
            .await
            .unwrap();
    }
    assert!(g
        .reserve_attempt(&ADA, after + Duration::seconds(10))
        .await
        .unwrap()
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_parallel_attempts_as_a_lock_ends_are_judged_at_most_ten_times() {
    let g = guard();
    for i in 0..10 {
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(i)).await.unwrap();
    }
    let after = t(9) + Duration::minutes(15);
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let g = g.clone();
            tokio::spawn(async move { g.reserve_attempt(&ADA, after).await.unwrap().is_ok() })
        })
        .collect();
    let judged = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert!((1..=10).contains(&judged), "{judged}");
}

#[tokio::test]
async fn challenge_after_three_lock_after_ten_fresh_after_the_lock() {
    let g = guard();
    for i in 0..3 {
        assert!(!g.challenge_required("ada@example.com", t(i)).await.unwrap());
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(i)).await.unwrap();
    }
    assert!(g.challenge_required("ada@example.com", t(3)).await.unwrap());
    let mut locked_by = None;
    for i in 3..10 {
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        if g.failed(&ADA, &r, t(i)).await.unwrap() {
            locked_by = Some(i);
        }
    }
    assert_eq!(locked_by, Some(9), "the tenth failure locks");
    let lock = g.locked(&ADA, t(10)).await.unwrap().unwrap();
    assert_eq!(
        lock.reset_after,
        Duration::minutes(15) - Duration::seconds(1)
    );
    assert!(g.reserve_attempt(&ADA, t(10)).await.unwrap().is_err());
    // After the lock: a fresh budget, no challenge.
    let after = t(9) + Duration::minutes(15);
    assert!(g.locked(&ADA, after).await.unwrap().is_none());
    assert!(!g
        .challenge_required("ada@example.com", after)
        .await
        .unwrap());
    assert!(g.reserve_attempt(&ADA, after).await.unwrap().is_ok());
}

#[tokio::test]
async fn a_success_clears_and_devices_have_their_own_budget() {
    let g = guard();
    for i in 0..9 {
        let r = g.reserve_attempt(&ADA, t(i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(i)).await.unwrap();
    }
    let r = g.reserve_attempt(&ADA, t(9)).await.unwrap().unwrap();
    assert_eq!(r.remaining, 0);
    g.succeeded(&ADA).await.unwrap();
    assert!(
        !g.challenge_required("ada@example.com", t(10))
            .await
            .unwrap(),
        "cleared"
    );

    // Lock the identifier; a device keeps going, until its own 5 failures.
    for i in 0..10 {
        let r = g.reserve_attempt(&ADA, t(20 + i)).await.unwrap().unwrap();
        g.failed(&ADA, &r, t(20 + i)).await.unwrap();
    }
    assert!(g.locked(&ADA, t(40)).await.unwrap().is_some());
    let device = Counter::Device(&[7; 16]);
    assert!(g.locked(&device, t(40)).await.unwrap().is_none());
    for i in 0..5 {
        let r = g
            .reserve_attempt(&device, t(40 + i))
            .await
            .unwrap()
            .unwrap();
        g.failed(&device, &r, t(40 + i)).await.unwrap();
    }
    assert!(g.locked(&device, t(50)).await.unwrap().is_some());
    assert!(
        g.locked(&Counter::Device(&[8; 16]), t(50))
            .await
            .unwrap()
            .is_none(),
        "another device"
    );
}
