//! `Limits::login`, the whole login sequence as one operation: its order (budget, device, lock,
//! challenge, reservation, check, outcome), what it costs in store operations, and its exactness
//! under parallel attempts.

use phaze_ratelimit::{
    identifier, solve, Decision, LimitKey, LimitKeys, Limits, LoginAttempt, LoginOutcome,
    RateLimitPolicy, RateLimitStore, Step, StoreError, Verdict, Window,
};
use phaze_store_memory::MemoryRateLimits;
use secrecy::SecretBox;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

fn t(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600 + secs).unwrap()
}

fn keys() -> LimitKeys {
    LimitKeys {
        keys: SecretBox::new(Box::new([1; 32])),
        devices: SecretBox::new(Box::new([2; 32])),
        challenges: SecretBox::new(Box::new([3; 32])),
    }
}

/// The memory store, counting the operations a login costs.
#[derive(Default)]
struct Counting {
    inner: MemoryRateLimits,
    ops: Mutex<Vec<&'static str>>,
}

impl Counting {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut self.ops.lock().unwrap())
    }
}

#[async_trait::async_trait]
impl RateLimitStore for Counting {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        self.ops.lock().unwrap().push("hit");
        self.inner.hit(key, window, now).await
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        self.ops.lock().unwrap().push("peek");
        self.inner.peek(key, window, now).await
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        self.ops.lock().unwrap().push("reset");
        self.inner.reset(key).await
    }

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        self.ops.lock().unwrap().push("run");
        self.inner.run(steps, now).await
    }
}

struct Portal {
    store: Arc<Counting>,
    limits: Arc<Limits>,
    /// Credential checks that ran.
    checks: Arc<AtomicUsize>,
}

impl Portal {
    fn new() -> Self {
        Self::with(RateLimitPolicy {
            // Enough for the guard's own rules; one test spends this budget on purpose.
            login_per_client: 1000,
            challenge_difficulty_bits: 4,
            ..RateLimitPolicy::default()
        })
    }

    fn with(policy: RateLimitPolicy) -> Self {
        let store = Arc::new(Counting::default());
        Self {
            limits: Arc::new(Limits::new(store.clone(), keys(), policy)),
            store,
            checks: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// One attempt at `who` from 192.0.2.1; the password is right when `right`.
    async fn login(
        &self,
        who: &str,
        right: bool,
        device: Option<&str>,
        answer: Option<&str>,
        now: OffsetDateTime,
    ) -> LoginOutcome<&'static str> {
        self.login_from(ip("192.0.2.1"), who, right, device, answer, now)
            .await
    }

    async fn login_from(
        &self,
        client: IpAddr,
        who: &str,
        right: bool,
        device: Option<&str>,
        answer: Option<&str>,
        now: OffsetDateTime,
    ) -> LoginOutcome<&'static str> {
        let checks = self.checks.clone();
        let attempt = LoginAttempt {
            client,
            identifier: who,
            device_cookie: device,
            challenge_answer: answer,
        };
        self.limits
            .login(attempt, now, || async move {
                checks.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(if right {
                    Verdict::Right("ada")
                } else {
                    Verdict::Wrong
                })
            })
            .await
            .unwrap()
    }

    fn checks(&self) -> usize {
        self.checks.load(Ordering::SeqCst)
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const ADA: &str = "ada@example.com";

#[tokio::test]
async fn a_clean_login_costs_two_store_operations_and_a_wrong_one_one() {
    let p = Portal::new();
    let LoginOutcome::Right {
        value,
        device_cookie,
    } = p.login(ADA, true, None, None, t(0)).await
    else {
        panic!("right password");
    };
    assert_eq!(value, "ada");
    assert!(!device_cookie.is_empty());
    assert_eq!(p.store.take(), ["run", "reset"], "seven round trips before");

    assert!(matches!(
        p.login(ADA, false, None, None, t(1)).await,
        LoginOutcome::Wrong { challenge: None }
    ));
    assert_eq!(p.store.take(), ["run"]);
    assert_eq!(p.checks(), 2);
}

#[tokio::test]
async fn the_third_failure_asks_for_a_challenge_and_the_fourth_needs_it_solved() {
    let p = Portal::new();
    for i in 0..2 {
        assert!(matches!(
            p.login(ADA, false, None, None, t(i)).await,
            LoginOutcome::Wrong { challenge: None }
        ));
    }
    let LoginOutcome::Wrong {
        challenge: Some(challenge),
    } = p.login(ADA, false, None, None, t(2)).await
    else {
        panic!("the third failure's page carries a challenge");
    };
    let checked = p.checks();
    // Unsolved, forged, or for another identifier: refused before the password is looked at,
    // even a right one.
    let other = p.limits.challenges().issue("bob@example.com", t(3));
    // A lazy answer: the first counter that does not solve it (most do not).
    let lazy = (0u32..)
        .map(|c| format!("{}.{c}", challenge.token))
        .find(|a| p.limits.challenges().verify(ADA, a, t(3)).is_err())
        .unwrap();
    for answer in [None, Some("forged.1"), Some(&*lazy), Some(&*solve(&other))] {
        assert!(
            matches!(
                p.login(ADA, true, None, answer, t(3)).await,
                LoginOutcome::ChallengeRequired(_)
            ),
            "{answer:?}"
        );
    }
    assert_eq!(p.checks(), checked, "no credential check ran");
    let answer = solve(&challenge);
    assert!(matches!(
        p.login(ADA, true, None, Some(&answer), t(4)).await,
        LoginOutcome::Right { .. }
    ));
    assert_eq!(p.checks(), checked + 1);
    // A solved challenge is used up, in one atomic run with the checks.
    assert!(matches!(
        p.login(ADA, true, None, Some(&answer), t(5)).await,
        LoginOutcome::Right { .. } | LoginOutcome::ChallengeRequired(_)
    ));
}

#[tokio::test]
async fn a_replayed_answer_is_refused_while_a_challenge_is_due() {
    let p = Portal::new();
    let mut challenge = None;
    for i in 0..3 {
        if let LoginOutcome::Wrong { challenge: c } = p.login(ADA, false, None, None, t(i)).await {
            challenge = c;
        }
    }
    let answer = solve(&challenge.unwrap());
    assert!(matches!(
        p.login(ADA, false, None, Some(&answer), t(4)).await,
        LoginOutcome::Wrong { challenge: Some(_) }
    ));
    let checked = p.checks();
    assert!(matches!(
        p.login(ADA, true, None, Some(&answer), t(5)).await,
        LoginOutcome::ChallengeRequired(_)
    ));
    assert_eq!(p.checks(), checked);
}

/// Wrong attempts at `who`, solving each challenge, until the counter locks; returns how many
/// were judged.
async fn fail_until_locked(p: &Portal, who: &str, device: Option<&str>, at: i64) -> usize {
    let mut answer = None;
    for i in 0..30 {
        match p
            .login(who, false, device, answer.as_deref(), t(at + i))
            .await
        {
            LoginOutcome::Wrong { challenge } => answer = challenge.map(|c| solve(&c)),
            LoginOutcome::ChallengeRequired(c) => answer = Some(solve(&c)),
            LoginOutcome::Limited(_) => return p.checks(),
            LoginOutcome::Right { .. } => unreachable!(),
        }
    }
    panic!("never locked");
}

#[tokio::test]
async fn ten_failures_lock_the_identifier_and_a_locked_one_is_never_checked() {
    let p = Portal::new();
    assert_eq!(fail_until_locked(&p, ADA, None, 0).await, 10);
    let LoginOutcome::Limited(lock) = p.login(ADA, true, None, None, t(60)).await else {
        panic!("locked, even with the right password");
    };
    assert!(!lock.allowed);
    assert!(lock.reset_after.whole_seconds() > 800, "{lock:?}");
    assert_eq!(p.checks(), 10);
    // Every spelling of the address is the one counter.
    for spelling in ["ADA@example.com", " ada@EXAMPLE.com ", "ａｄａ@example.com"] {
        assert!(
            matches!(
                p.login(spelling, true, None, None, t(61)).await,
                LoginOutcome::Limited(_)
            ),
            "{spelling}"
        );
    }
    assert_eq!(
        identifier("Ada@Bücher.Example"),
        "ada@xn--bcher-kva.example"
    );
}

#[tokio::test]
async fn a_device_that_logged_in_before_keeps_its_own_budget_through_a_lock() {
    let p = Portal::new();
    let LoginOutcome::Right { device_cookie, .. } = p.login(ADA, true, None, None, t(0)).await
    else {
        panic!("right password");
    };
    fail_until_locked(&p, ADA, None, 1).await;
    // The owner's browser is not locked out by the attacker's guesses, and needs no challenge.
    assert!(matches!(
        p.login(ADA, true, Some(&device_cookie), None, t(100)).await,
        LoginOutcome::Right { .. }
    ));
    // Only a genuine cookie for this identifier counts: a forged one, or one issued for another
    // address, meets the identifier's lock.
    let bobs = p
        .limits
        .login(
            LoginAttempt {
                client: ip("192.0.2.1"),
                identifier: "bob@example.com",
                device_cookie: None,
                challenge_answer: None,
            },
            t(100),
            || async { Ok::<_, Infallible>(Verdict::Right("bob")) },
        )
        .await
        .unwrap();
    let LoginOutcome::Right {
        device_cookie: bobs,
        ..
    } = bobs
    else {
        panic!("bob logs in")
    };
    for cookie in ["forged", bobs.as_str(), &device_cookie[1..]] {
        assert!(
            matches!(
                p.login(ADA, true, Some(cookie), None, t(101)).await,
                LoginOutcome::Limited(_)
            ),
            "{cookie}"
        );
    }
    // Its own budget is smaller, and ends in a lock of the device.
    let before = p.checks();
    let judged = fail_until_locked(&p, ADA, Some(&device_cookie), 200).await - before;
    assert_eq!(judged, 5);
}

#[tokio::test]
async fn the_client_budget_comes_first_and_charges_no_counter() {
    let p = Portal::with(RateLimitPolicy {
        login_per_client: 2,
        ..RateLimitPolicy::default()
    });
    for i in 0..2 {
        assert!(matches!(
            p.login(&format!("user{i}@example.com"), false, None, None, t(i))
                .await,
            LoginOutcome::Wrong { .. }
        ));
    }
    let LoginOutcome::Limited(d) = p.login(ADA, true, None, None, t(3)).await else {
        panic!("the network's budget is spent");
    };
    assert_eq!(d.limit, 2);
    assert_eq!(p.checks(), 2);
    // ADA's counter was not charged: from another network it is a first attempt.
    assert!(matches!(
        p.login_from(ip("198.51.100.7"), ADA, false, None, None, t(4))
            .await,
        LoginOutcome::Wrong { challenge: None }
    ));
    // A /64 is one client.
    let p = Portal::with(RateLimitPolicy {
        login_per_client: 1,
        ..RateLimitPolicy::default()
    });
    p.login_from(ip("2001:db8::1"), ADA, false, None, None, t(0))
        .await;
    assert!(matches!(
        p.login_from(ip("2001:db8::ffff:1"), ADA, true, None, None, t(1))
            .await,
        LoginOutcome::Limited(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_forty_parallel_logins_from_forty_clients_exactly_ten_are_checked() {
    // No challenge in the way, so every attempt that finds a free slot is judged.
    let p = Arc::new(Portal::with(RateLimitPolicy {
        login_per_client: 1000,
        challenge_after_failures: 1000,
        ..RateLimitPolicy::default()
    }));
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move {
                p.login_from(ip(&format!("203.0.113.{i}")), ADA, false, None, None, t(0))
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(p.checks(), 10);
}

#[tokio::test]
async fn the_failure_that_uses_the_last_slot_locks_at_once() {
    let p = Portal::with(RateLimitPolicy {
        login_per_client: 1000,
        challenge_after_failures: 1000,
        ..RateLimitPolicy::default()
    });
    let counter = phaze_ratelimit::Counter::Identifier(ADA);
    for i in 0..10 {
        assert!(
            p.limits
                .guard()
                .locked(&counter, t(i))
                .await
                .unwrap()
                .is_none(),
            "not before the tenth"
        );
        assert!(matches!(
            p.login(ADA, false, None, None, t(i)).await,
            LoginOutcome::Wrong { .. }
        ));
    }
    // Locked by the tenth failure itself, from its own instant: not by a later attempt.
    let lock = p.limits.guard().locked(&counter, t(9)).await.unwrap();
    assert_eq!(
        lock.map(|d| d.reset_after),
        Some(time::Duration::minutes(15))
    );
}
