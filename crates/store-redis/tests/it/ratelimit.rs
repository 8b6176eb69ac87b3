//! Rate-limit decisions in Redis equal `decide`'s, keys live one period, and prefixes never mix.

use phaze_ratelimit::{decide, LimitKey, RateLimitStore, Window};
use phaze_sessions::SessionStore;
use phaze_testkit::ratelimit::key;
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

use crate::support::{keys, rate_limits, raw, redis};

macro_rules! store {
    () => {
        rate_limits().await
    };
}

/// Random hits, peeks and resets at random nanosecond instants (forwards, backwards, repeated),
/// against Redis and against `decide` on a plain `Vec`: every decision is the same.
pub(crate) async fn decisions_equal_decide_for_random_histories() {
    let (store, _cleanup) = store!();
    let seed: u64 = rand::random();
    println!("seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..40u8 {
        let k = LimitKey::from([round; 32]);
        // Hits on one key share a window; its period stays long against the test's real run
        // time, because the key's TTL runs on the server's clock.
        let hit_window = Window::new(
            rng.gen_range(1..8),
            Duration::nanoseconds(rng.gen_range(5_000_000_000..3_600_000_000_000)),
        );
        let period = hit_window.period.whole_nanoseconds() as i64;
        let mut log: Vec<i64> = Vec::new();
        let mut now =
            t0() + Duration::nanoseconds(rng.gen_range(-1_000_000_000_000..1_000_000_000_000));
        for step in 0..60 {
            now += Duration::nanoseconds(match rng.gen_range(0..10) {
                0 => 0,
                1 => -rng.gen_range(0..period / 4), // another process's clock is behind
                2 => rng.gen_range(period / 2..period * 2),
                3 => period, // exactly one period: the oldest leaves
                _ => rng.gen_range(0..period / 3),
            });
            let context = format!("seed {seed} round {round} step {step} {hit_window:?} at {now}");
            match rng.gen_range(0..10) {
                0..=5 => {
                    let expected = decide(&mut log, hit_window, now, true);
                    let got = store.hit(&k, hit_window, now).await.unwrap();
                    assert_eq!(got, expected, "hit: {context}");
                }
                6..=8 => {
                    // Peeks may use any window over the same log.
                    let w = Window::new(
                        rng.gen_range(0..10),
                        Duration::nanoseconds(rng.gen_range(0..period * 2)),
                    );
                    let expected = decide(&mut log.clone(), w, now, false);
                    let got = store.peek(&k, w, now).await.unwrap();
                    assert_eq!(got, expected, "peek {w:?}: {context}");
                }
                _ => {
                    store.reset(&k).await.unwrap();
                    log.clear();
                }
            }
        }
    }
}

pub(crate) async fn a_key_is_one_sorted_set_living_one_period() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let window = Window::new(5, Duration::minutes(15));
    store.peek(&key(1), window, t0()).await.unwrap();
    assert!(keys(p).await.is_empty(), "a peek writes nothing");
    store.hit(&key(1), window, t0()).await.unwrap();
    store.hit(&key(1), window, t0()).await.unwrap();
    store
        .hit(&key(1), window, t0() + Duration::nanoseconds(1))
        .await
        .unwrap();
    let name = format!("{p}ratelimit:{}", key(1).to_hex());
    assert_eq!(keys(p).await, vec![name.clone()]);
    let mut conn = raw().await;
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&name)
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    let t0_ns = (t0().unix_timestamp_nanos() as i64 as u64) ^ (1 << 63);
    assert_eq!(
        members,
        vec![
            format!("{t0_ns:020}:0"),
            format!("{t0_ns:020}:1"),
            format!("{:020}:0", t0_ns + 1),
        ]
    );
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((895_000..=900_000).contains(&pttl), "{pttl}");
    // A short window's key really goes by itself.
    let short = Window::new(5, Duration::milliseconds(150));
    store.hit(&key(2), short, t0()).await.unwrap();
    let name2 = format!("{p}ratelimit:{}", key(2).to_hex());
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&name2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=150).contains(&pttl), "{pttl}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&name2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(exists, 0);
    assert_eq!(
        store.purge_idle(t0()).await.unwrap(),
        0,
        "nothing for purge_idle to do"
    );
}

/// A process whose clock runs ahead records an instant after everyone else's `now`; the log must
/// live until that instant has left the slow processes' windows too (`decide`: a slow clock never
/// erases what others recorded).
pub(crate) async fn a_log_lives_a_period_past_its_newest_instant_even_from_a_fast_clock() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let window = Window::new(5, Duration::minutes(1));
    // The fast process, 10 minutes ahead, then a slow one at t0.
    store
        .hit(&key(3), window, t0() + Duration::minutes(10))
        .await
        .unwrap();
    store.hit(&key(3), window, t0()).await.unwrap();
    let mut conn = raw().await;
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{p}ratelimit:{}", key(3).to_hex()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((655_000..=660_001).contains(&pttl), "{pttl}");
    let d = store.peek(&key(3), window, t0()).await.unwrap();
    assert_eq!(d.remaining, 3, "the fast clock's instant still counts");
}

pub(crate) async fn prefixes_are_independent() {
    let (a, _ca) = redis().await;
    let (b, _cb) = redis().await;
    let window = Window::new(3, Duration::minutes(15));
    for _ in 0..3 {
        assert!(
            a.rate_limits()
                .hit(&key(1), window, t0())
                .await
                .unwrap()
                .allowed
        );
    }
    assert!(
        !a.rate_limits()
            .hit(&key(1), window, t0())
            .await
            .unwrap()
            .allowed
    );
    assert_eq!(
        b.rate_limits()
            .peek(&key(1), window, t0())
            .await
            .unwrap()
            .remaining,
        3
    );
    for _ in 0..3 {
        assert!(
            b.rate_limits()
                .hit(&key(1), window, t0())
                .await
                .unwrap()
                .allowed
        );
    }
    b.rate_limits().reset(&key(1)).await.unwrap();
    assert!(
        !a.rate_limits()
            .peek(&key(1), window, t0())
            .await
            .unwrap()
            .allowed,
        "b's reset left a alone"
    );

    let s = record(1, "alice");
    a.sessions().insert(&s).await.unwrap();
    b.sessions().insert(&s).await.unwrap(); // no Duplicate: another deployment
    assert!(b.sessions().remove(&s.key).await.unwrap());
    assert_eq!(a.sessions().get(&s.key).await.unwrap(), Some(s.clone()));
    b.sessions().insert(&s).await.unwrap();
    assert_eq!(b.sessions().remove_user("alice", None).await.unwrap(), 1);
    assert_eq!(
        b.sessions()
            .purge_expired(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX))
            .await
            .unwrap(),
        0
    );
    assert_eq!(a.sessions().list_user("alice").await.unwrap(), vec![s]);
}
