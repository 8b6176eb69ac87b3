//! One rate-limit decision against the Redis at `PHAZE_TEST_REDIS_URL` (default local), beside
//! what one round trip costs, to compare with `redis-benchmark -t ping`:
//!
//! - `ping/pool`: `Redis::ping`, a pooled `PING` (the pool's recycle check adds a round trip);
//! - `ping/multiplexed`: `PING` on one shared multiplexed connection, no pool;
//! - `hit/serial`: one `RedisRateLimits::hit` at a time;
//! - `hit/concurrent-32`: the same with 32 tasks in flight, time per hit (throughput).
//!
//! Hits cycle over 1024 keys, and the clock moves on so every log stays short and every hit is
//! allowed, like the filesystem adapter's benchmark. Skips, saying so, if Redis does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a failed unwrap is a failed run

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
use phaze_store_redis::{Redis, RedisConfig};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::runtime::Runtime;

const KEYS: u64 = 1024;
const WINDOW: Window = Window::new(100, time::Duration::minutes(1));
const CONCURRENCY: u64 = 32;

fn key(i: u64) -> LimitKey {
    LimitKey::from(<[u8; 32]>::from(Sha256::digest((i % KEYS).to_le_bytes())))
}

/// The instant of the `i`-th hit: an eighth of the window further after every pass over the
/// keys, so no log holds more than 8 instants.
fn at(i: u64) -> OffsetDateTime {
    let t0 = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    t0 + WINDOW.period / 8 * i32::try_from(i / KEYS).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let url = std::env::var("PHAZE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("phaze-bench:{:016x}:", rand::random::<u64>());
    let redis = Redis::new(&RedisConfig {
        url: url.clone(),
        prefix: prefix.clone(),
        pool_size: 16,
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(2),
    })
    .unwrap();
    if let Err(e) = rt.block_on(redis.ping()) {
        eprintln!("SKIPPED: Redis is unreachable ({e})");
        return;
    }
    let mut shared = rt.block_on(async {
        redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    });

    let mut group = c.benchmark_group("redis");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ping/pool", |b| {
        b.iter_custom(|n| {
            timed(&rt, async {
                for _ in 0..n {
                    redis.ping().await.unwrap()
                }
            })
        })
    });
    group.bench_function("ping/multiplexed", |b| {
        b.iter_custom(|n| {
            timed(&rt, async {
                for _ in 0..n {
                    redis::cmd("PING")
                        .query_async::<String>(&mut shared)
                        .await
                        .unwrap();
                }
            })
        })
    });
    let store = redis.rate_limits();
    let next = Arc::new(AtomicU64::new(0));
    group.bench_function("hit/serial", |b| {
        b.iter_custom(|n| {
            timed(&rt, async {
                for _ in 0..n {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    assert!(store.hit(&key(i), WINDOW, at(i)).await.unwrap().allowed);
                }
            })
        })
    });
    group.bench_function("hit/concurrent-32", |b| {
        b.iter_custom(|n| {
            timed(&rt, async {
                let tasks: Vec<_> = (0..CONCURRENCY)
                    .map(|t| {
                        let (store, next) = (store.clone(), next.clone());
                        let share = n / CONCURRENCY + u64::from(t < n % CONCURRENCY);
                        tokio::spawn(async move {
                            for _ in 0..share {
                                let i = next.fetch_add(1, Ordering::Relaxed);
                                store.hit(&key(i), WINDOW, at(i)).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            })
        })
    });
    group.finish();
    rt.block_on(async {
        for i in 0..KEYS {
            store.reset(&key(i)).await.unwrap();
        }
    });
}

/// Runs `work` to completion and returns how long it took.
fn timed(rt: &Runtime, work: impl std::future::Future<Output = ()>) -> Duration {
    let start = Instant::now();
    rt.block_on(work);
    start.elapsed()
}

criterion_group!(benches, bench);
criterion_main!(benches);
