//! Contract of [`RateLimitStore`], including the exactness rules: N simultaneous hits against a
//! limit L allow exactly L, and a [`RateLimitStore::run`] is one atomic operation over its keys.

use phaze_ratelimit::{
    Decision, LimitKey, Op, RateLimitStore, Step, StoreError, Window, MAX_STEPS,
};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::t0;

/// A key with first byte `n`.
pub fn key(n: u8) -> LimitKey {
    let mut k = [0x5a; 32];
    k[0] = n;
    LimitKey::from(k)
}

/// A key with first and last byte `n`: keys of different `n` differ at both ends, so a store
/// that shards or orders by either end sees them apart.
pub fn spread_key(n: u8) -> LimitKey {
    let mut k = [0x5a; 32];
    k[0] = n;
    k[31] = n;
    LimitKey::from(k)
}

/// Runs the whole [`RateLimitStore`] contract against an adapter. The argument is an expression
/// giving a fresh `(store, guard)` for each rule (see the crate docs). Defines a module of
/// the macro's name with a `#[tokio::test]` per rule, and `tests()` listing them for
/// [`crate::harness::run`].
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
                    a_run_equals_its_steps_one_by_one,
                    a_run_of_more_than_max_steps_is_refused_and_records_nothing,
                    parallel_gate_runs_admit_exactly_the_lesser_limit,
                    parallel_runs_never_see_each_other_half_done,
                ]
            );
        }
    };
}

const FIVE_PER_15_MIN: Window = Window::new(5, Duration::minutes(15));

/// Five hits of a five-per-15-minutes window are allowed with `remaining` counting down; the
/// sixth is denied with the `retry_after` of the oldest hit.
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

/// A spent key denies while another key is still allowed.
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

/// The window slides: a slot frees exactly one period after the hit that took it, not at a
/// bucket edge, and long after the whole budget is back.
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

/// `peek` never records, and reads one log under another window (3 failures within a
/// 10-per-hour log).
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

/// `reset` empties a key's log, and of an unknown key is fine.
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

/// N tasks released together hit one key of limit L: exactly `min(N, L)` are allowed, for
/// several N and L.
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

/// The steps of a run decided one by one with `hit` and `peek`, under the run's stop rule: what
/// a run must equal on a store that nobody else is using meanwhile.
async fn one_by_one(
    store: &impl RateLimitStore,
    steps: &[Step],
    now: OffsetDateTime,
) -> Vec<Decision> {
    let mut out = Vec::new();
    for step in steps {
        let d = match step.op {
            Op::Hit => store.hit(&step.key, step.window, now).await,
            Op::Peek => store.peek(&step.key, step.window, now).await,
        }
        .unwrap();
        out.push(d);
        if !d.allowed && step.stop_if_refused {
            break;
        }
    }
    out
}

/// The twin of a key byte, whose log the same steps build one by one.
fn twin(k: LimitKey) -> LimitKey {
    let mut b = *k.as_bytes();
    b[0] = b[0].wrapping_add(100);
    LimitKey::from(b)
}

/// `steps` as a run on their keys and one by one on the twins: the decisions must be equal.
async fn check_run(
    store: &impl RateLimitStore,
    steps: &[Step],
    now: OffsetDateTime,
    context: &str,
) -> Vec<Decision> {
    let got = store.run(steps, now).await.unwrap();
    let twins: Vec<Step> = steps
        .iter()
        .map(|s| Step {
            key: twin(s.key),
            ..*s
        })
        .collect();
    let want = one_by_one(store, &twins, now).await;
    assert_eq!(got, want, "{context}: {steps:?}");
    got
}

/// A small deterministic generator (xorshift64), so a failure replays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A `run` decides exactly as its steps one by one would on an idle store: repeated keys see
/// earlier steps, a stopping refusal ends the list and records nothing after it, and random runs
/// leave the same logs as their steps.
pub async fn a_run_equals_its_steps_one_by_one(store: Arc<impl RateLimitStore>) {
    let (a, b, c) = (spread_key(10), spread_key(11), spread_key(12));
    let wa = Window::new(3, Duration::minutes(10));
    let wb = Window::new(2, Duration::hours(1));
    let wc = Window::new(1, Duration::minutes(15));
    let store = &*store;

    assert!(store.run(&[], t0()).await.unwrap().is_empty());

    // A key may repeat: a later step sees what an earlier one recorded.
    let d = check_run(
        store,
        &[Step::hit(a, wa), Step::hit(a, wa), Step::peek(a, wa)],
        t0(),
        "repeat",
    )
    .await;
    assert_eq!(d.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 1]);

    // A refused step that stops ends the list; the steps after it record nothing.
    let d = check_run(
        store,
        &[Step::hit(c, wc), Step::hit(c, wc), Step::hit(a, wa)],
        t0(),
        "stop",
    )
    .await;
    assert_eq!(d.len(), 2);
    assert!(d[0].allowed && !d[1].allowed);
    assert_eq!(
        store.peek(&a, wa, t0()).await.unwrap().remaining,
        1,
        "the hit after the stop"
    );
    let d = check_run(
        store,
        &[Step::peek(c, wc), Step::hit(a, wa)],
        t0(),
        "a refused peek stops",
    )
    .await;
    assert_eq!(d.len(), 1);
    assert_eq!(store.peek(&a, wa, t0()).await.unwrap().remaining, 1);

    // A refusal that goes on does not end the run.
    let d = check_run(
        store,
        &[Step::hit(c, wc).and_go_on(), Step::hit(a, wa)],
        t0(),
        "go on",
    )
    .await;
    assert_eq!(d.len(), 2);
    assert!(!d[0].allowed && d[1].allowed);

    // Peeks record nothing, in a run as alone.
    let d = check_run(
        store,
        &[
            Step::peek(b, wb),
            Step::peek(b, wb),
            Step::peek(b, Window::new(1, wb.period)),
        ],
        t0(),
        "peeks",
    )
    .await;
    assert!(d.iter().all(|d| d.allowed && d.remaining == d.limit));
    assert_eq!(store.peek(&b, wb, t0()).await.unwrap().remaining, 2);

    // Random runs over three keys, with time moving on: hits keep one window per key, peeks
    // read with any.
    let hit_windows = [(a, wa), (b, wb), (c, wc)];
    let periods = [
        Duration::minutes(5),
        Duration::minutes(10),
        Duration::hours(1),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = t0();
    for round in 0..300 {
        now += Duration::seconds(rng.below(120) as i64);
        let len = rng.below(MAX_STEPS as u64 + 1) as usize;
        let steps: Vec<Step> = (0..len)
            .map(|_| {
                let (k, w) = hit_windows[rng.below(3) as usize];
                let step = if rng.below(5) < 3 {
                    Step::hit(k, w)
                } else if rng.below(2) == 0 {
                    Step::peek(k, w)
                } else {
                    let period = periods[rng.below(3) as usize];
                    Step::peek(k, Window::new(rng.below(5) as u32, period))
                };
                if rng.below(4) == 0 {
                    step.and_go_on()
                } else {
                    step
                }
            })
            .collect();
        check_run(store, &steps, now, &format!("round {round} at {now}")).await;
    }
    for (k, w) in hit_windows {
        assert_eq!(
            store.peek(&k, w, now).await.unwrap(),
            store.peek(&twin(k), w, now).await.unwrap(),
            "the logs the runs left equal the ones the steps left"
        );
    }
}

/// A run of more than [`MAX_STEPS`] steps is [`StoreError::Backend`] and records nothing; one of
/// `MAX_STEPS` is decided in full.
pub async fn a_run_of_more_than_max_steps_is_refused_and_records_nothing(
    store: Arc<impl RateLimitStore>,
) {
    let w = Window::new(20, Duration::minutes(15));
    let too_many: Vec<Step> = (0..=MAX_STEPS)
        .map(|i| Step::hit(key(20 + (i % 3) as u8), w))
        .collect();
    assert!(matches!(
        store.run(&too_many, t0()).await,
        Err(StoreError::Backend(_))
    ));
    for i in 0..3 {
        assert_eq!(
            store.peek(&key(20 + i), w, t0()).await.unwrap().remaining,
            20,
            "key {i}"
        );
    }
    let most = vec![Step::hit(key(20), w); MAX_STEPS];
    let d = store.run(&most, t0()).await.unwrap();
    assert_eq!(d.len(), MAX_STEPS);
    assert_eq!(d.last().unwrap().remaining, 20 - MAX_STEPS as u32);
}

/// The login gate's shape: a client budget, a lock, an attempt budget. `flipped` takes the two
/// budgets in the other order, which only an atomic run (and a deadlock-free one) survives.
pub fn gate(
    client: (LimitKey, Window),
    lock: (LimitKey, Window),
    attempts: (LimitKey, Window),
    flipped: bool,
) -> [Step; 3] {
    let (first, last) = if flipped {
        (attempts, client)
    } else {
        (client, attempts)
    };
    [
        Step::hit(first.0, first.1),
        Step::peek(lock.0, lock.1),
        Step::hit(last.0, last.1),
    ]
}

/// What parallel gate runs decided, counted: full runs, and the allowed hits on each budget.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GateTally {
    /// Runs whose three steps were all allowed.
    pub full: usize,
    /// Allowed hits on the client budget.
    pub client: usize,
    /// Allowed hits on the attempt budget.
    pub attempts: usize,
}

impl GateTally {
    /// Counts one run of [`gate`]; panics if it breaks the stop rule.
    pub fn add(&mut self, decisions: &[Decision], flipped: bool) {
        assert!(
            !decisions.is_empty() && decisions.len() <= 3,
            "{decisions:?}"
        );
        let (last, before) = decisions.split_last().unwrap();
        assert!(
            before.iter().all(|d| d.allowed),
            "a run goes on only past allowed steps: {decisions:?}"
        );
        if decisions.len() < 3 {
            assert!(
                !last.allowed,
                "a run ends early only at a refusal: {decisions:?}"
            );
        }
        let allowed = |i: usize| decisions.get(i).is_some_and(|d| d.allowed);
        let (client, attempts) = if flipped { (2, 0) } else { (0, 2) };
        self.full += usize::from(decisions.len() == 3 && allowed(2));
        self.client += usize::from(allowed(client));
        self.attempts += usize::from(allowed(attempts));
    }
}

/// Parallel runs of the login [`gate`], in both step orders, let exactly the lesser of the two
/// budgets' limits through (none while the lock is held), and each log holds exactly the hits
/// reported allowed.
pub async fn parallel_gate_runs_admit_exactly_the_lesser_limit(
    store: Arc<impl RateLimitStore + 'static>,
) {
    let lock_window = Window::new(1, Duration::minutes(15));
    // (runs, client limit, attempt limit, orders mixed, lock held)
    let rounds = [
        (24usize, 5u32, 3u32, false, false),
        (24, 3, 5, false, false),
        (40, 1, 9, false, false),
        (16, 4, 4, true, false),
        (32, 7, 2, true, false),
        (32, 6, 6, true, false),
        (12, 5, 5, false, true),
    ];
    for (round, (n, l1, l2, mixed, locked)) in rounds.into_iter().enumerate() {
        let base = 150 + 3 * round as u8;
        // The lock's key sorts between the budgets', so no order of the steps is the sorted one.
        let client = (spread_key(base + 2), Window::new(l1, Duration::minutes(15)));
        let lock = (spread_key(base + 1), lock_window);
        let attempts = (spread_key(base), Window::new(l2, Duration::hours(1)));
        if locked {
            assert!(store.hit(&lock.0, lock.1, t0()).await.unwrap().allowed);
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let (store, barrier) = (store.clone(), barrier.clone());
                let flipped = mixed && i % 2 == 1;
                tokio::spawn(async move {
                    barrier.wait().await;
                    let d = store
                        .run(&gate(client, lock, attempts, flipped), t0())
                        .await
                        .unwrap();
                    (d, flipped)
                })
            })
            .collect();
        let mut tally = GateTally::default();
        for t in futures_util::future::join_all(tasks).await {
            let (d, flipped) = t.unwrap();
            tally.add(&d, flipped);
        }
        let context = format!("N={n} L1={l1} L2={l2} mixed={mixed} locked={locked}: {tally:?}");
        println!("gate {context}");
        let expected = if locked {
            0
        } else {
            n.min(l1 as usize).min(l2 as usize)
        };
        assert_eq!(tally.full, expected, "{context}");
        // Each log holds exactly the hits reported allowed: none from a run that stopped before.
        let client_left = store
            .peek(&client.0, client.1, t0())
            .await
            .unwrap()
            .remaining;
        assert_eq!(
            client_left as usize,
            l1 as usize - tally.client,
            "{context}"
        );
        let attempts_left = store
            .peek(&attempts.0, attempts.1, t0())
            .await
            .unwrap()
            .remaining;
        assert_eq!(
            attempts_left as usize,
            l2 as usize - tally.attempts,
            "{context}"
        );
        let lock_left = store.peek(&lock.0, lock.1, t0()).await.unwrap().remaining;
        assert_eq!(
            lock_left,
            u32::from(!locked),
            "peeks record nothing: {context}"
        );
        if locked {
            assert_eq!(tally.attempts, 0, "{context}");
        }
    }
}

/// Runs that hit two keys, racing runs that peek both, are never seen half done: every reader
/// finds the two logs equally long.
pub async fn parallel_runs_never_see_each_other_half_done(
    store: Arc<impl RateLimitStore + 'static>,
) {
    // Writers hit two keys in one run (in both orders), readers peek both in one run: a reader
    // always finds both logs equally long.
    const TASKS: usize = 8;
    const RUNS: usize = 25;
    let w = Window::new(1000, Duration::hours(1));
    let (a, b) = (spread_key(40), spread_key(41));
    let barrier = Arc::new(tokio::sync::Barrier::new(2 * TASKS));
    let tasks: Vec<_> = (0..2 * TASKS)
        .map(|i| {
            let (store, barrier) = (store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (x, y) = if i % 4 < 2 { (a, b) } else { (b, a) };
                let mut uneven = 0;
                for _ in 0..RUNS {
                    if i % 2 == 0 {
                        let d = store
                            .run(&[Step::hit(x, w), Step::hit(y, w)], t0())
                            .await
                            .unwrap();
                        assert!(d.len() == 2 && d.iter().all(|d| d.allowed), "{d:?}");
                    } else {
                        let d = store
                            .run(&[Step::peek(x, w), Step::peek(y, w)], t0())
                            .await
                            .unwrap();
                        uneven += usize::from(d[0].remaining != d[1].remaining);
                    }
                    tokio::task::yield_now().await;
                }
                uneven
            })
        })
        .collect();
    let uneven: usize = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    println!(
        "{} reads during {} two-key writes: {uneven} saw one half",
        TASKS * RUNS,
        TASKS * RUNS
    );
    assert_eq!(
        uneven, 0,
        "a reader saw one key of a run recorded and not the other"
    );
    for k in [a, b] {
        assert_eq!(
            store.peek(&k, w, t0()).await.unwrap().remaining as usize,
            1000 - TASKS * RUNS
        );
    }
}
