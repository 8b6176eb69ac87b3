//! One rate-limit decision, side by side: the `governor` crate's keyed limiter (an in-memory
//! GCRA, the yardstick), the memory adapter called directly and through the async port, and the
//! filesystem adapter through the port (on tokio's blocking pool) and called inline.
//!
//! Every variant cycles over the same 1024 distinct keys. The sliding log keeps one instant per
//! allowed hit, so the clock is moved on by an eighth of the window after each full pass over the
//! keys: every key then holds at most 8 instants (older ones leave the window), all hits are
//! allowed (limit 100), and each decision does the steady-state work of a busy login limit:
//! drop one expired instant, count, append one. `governor` reads the real clock, so most of its
//! keys are denied after their first 60; it does the same lookup and arithmetic either way.
#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a failed unwrap is a failed run

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use governor::{Quota, RateLimiter};
use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
use phaze_store_fs::FsRateLimits;
use phaze_store_memory::MemoryRateLimits;
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Instant;
use time::{Duration, OffsetDateTime};
use tokio::runtime::Runtime;

const KEYS: usize = 1024;
/// Passes over the keys per window: at most this many instants in any key's log.
const PASSES_PER_WINDOW: i32 = 8;
const WINDOW: Window = Window::new(100, Duration::minutes(1));

/// A fixed instant: benchmarks, like the crates, never read the clock.
fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

fn keys() -> Vec<LimitKey> {
    (0..KEYS as u64)
        .map(|i| LimitKey::from(<[u8; 32]>::from(Sha256::digest(i.to_le_bytes()))))
        .collect()
}

/// The key and instant of decision number `n`.
fn nth(keys: &[LimitKey], n: u64) -> (&LimitKey, OffsetDateTime) {
    let pass = i32::try_from(n / KEYS as u64).unwrap();
    let now = t0() + WINDOW.period / PASSES_PER_WINDOW * pass;
    (&keys[n as usize % KEYS], now)
}

/// Times `iters` hits through the async port inside one `block_on`.
fn port_loop(
    rt: &Runtime,
    store: &impl RateLimitStore,
    keys: &[LimitKey],
    next: &mut u64,
    iters: u64,
) -> std::time::Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let (k, now) = nth(keys, *next);
            *next += 1;
            let d = store.hit(black_box(k), WINDOW, now).await.unwrap();
            assert!(d.allowed);
        }
        start.elapsed()
    })
}

fn decision(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = keys();
    let mut group = c.benchmark_group("decision");
    group.throughput(Throughput::Elements(1));

    let governor = RateLimiter::keyed(Quota::per_minute(NonZeroU32::new(60).unwrap()));
    let mut n = 0u64;
    group.bench_function("governor_keyed", |b| {
        b.iter(|| {
            n += 1;
            governor.check_key(black_box(&(n % KEYS as u64))).is_ok()
        });
    });

    let memory = MemoryRateLimits::default();
    let mut n = 0u64;
    group.bench_function("memory_sync", |b| {
        b.iter(|| {
            let (k, now) = nth(&keys, n);
            n += 1;
            let d = memory.decide(black_box(k), WINDOW, now, true);
            assert!(d.allowed);
            d
        });
    });

    let memory = MemoryRateLimits::default();
    let mut n = 0u64;
    group.bench_function("memory_port", |b| {
        b.iter_custom(|iters| port_loop(&rt, &memory, &keys, &mut n, iters));
    });

    let dir = tempfile::tempdir().unwrap();
    let fs = FsRateLimits::open(dir.path()).unwrap();
    let mut n = 0u64;
    group.bench_function("fs", |b| {
        b.iter_custom(|iters| port_loop(&rt, &fs, &keys, &mut n, iters));
    });

    let dir = tempfile::tempdir().unwrap();
    let fs = FsRateLimits::open(dir.path()).unwrap();
    let mut n = 0u64;
    group.bench_function("fs_inline", |b| {
        b.iter(|| {
            let (k, now) = nth(&keys, n);
            n += 1;
            let d = fs.decide(black_box(k), WINDOW, now, true).unwrap();
            assert!(d.allowed);
            d
        });
    });
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
