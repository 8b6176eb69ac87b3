//! [`RateLimitStore`] in memory: 64 shards, each a mutex over its keys' sliding logs, so
//! decisions on different keys rarely contend, and idle keys are swept so memory stays bounded
//! under a flood of distinct keys. A [`RateLimitStore::run`] locks the distinct shards of its
//! keys in ascending order (so two runs never wait for each other in a cycle) and holds them all
//! while it decides.

use async_trait::async_trait;
use phaze_ratelimit::{
    decide, Decision, LimitKey, Op, RateLimitStore, Step, StoreError, Window, MAX_STEPS,
};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

const SHARDS: usize = 64;
/// A shard drops its idle keys at most this often (nanoseconds of the callers' `now`).
const SWEEP_EVERY_NS: i64 = 1_000_000_000;

/// [`RateLimitStore`] in process memory: the sliding logs in 64 shards, each behind its own
/// mutex. A decision holds its key's shard lock throughout, and a `run` the locks of all its
/// keys' shards at once (taken in shard order, so two runs never deadlock): every decision is
/// exact under any concurrency. Keys no window can see are swept as the shards are used, so a
/// flood of distinct keys leaves nothing behind one window later.
pub struct MemoryRateLimits {
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    logs: HashMap<LimitKey, Entry, BuildHasherDefault<KeyHasher>>,
    next_sweep: i64,
}

struct Entry {
    log: Vec<i64>,
    /// After this instant the log is empty whatever window reads it (newest event + longest
    /// period seen for the key).
    idle_at: i64,
}

/// [`LimitKey`]s are HMAC outputs, uniformly distributed already: their first eight bytes are a
/// perfectly good hash, and SipHash over 32 bytes would cost more than the whole decision.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
}

impl Default for MemoryRateLimits {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

/// The shard holding `key`.
fn shard_of(key: &LimitKey) -> usize {
    usize::from(key.as_bytes()[31]) % SHARDS
}

impl MemoryRateLimits {
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn shard(&self, key: &LimitKey) -> MutexGuard<'_, Shard> {
        self.lock(shard_of(key))
    }

    /// How many keys are held (tests of the memory bound).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).logs.len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The decision, synchronously: one lock, one [`decide`].
    pub fn decide(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
        record: bool,
    ) -> Decision {
        self.shard(key).decide(key, window, now, record)
    }

    /// The decisions of `steps`, under the locks of all their shards at once.
    fn run_locked(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        if steps.len() > MAX_STEPS {
            return Err(StoreError::Backend("too many steps in one run".into()));
        }
        let mut shards: Vec<usize> = steps.iter().map(|s| shard_of(&s.key)).collect();
        shards.sort_unstable();
        shards.dedup();
        let mut held: Vec<MutexGuard<'_, Shard>> = shards.iter().map(|&i| self.lock(i)).collect();
        let mut out = Vec::with_capacity(steps.len());
        for step in steps {
            // Every step's shard is in `shards`, so the search always finds it.
            let Some(shard) = shards
                .binary_search(&shard_of(&step.key))
                .ok()
                .and_then(|i| held.get_mut(i))
            else {
                return Err(StoreError::Backend("a step's shard was not locked".into()));
            };
            let d = shard.decide(&step.key, step.window, now, step.op == Op::Hit);
            out.push(d);
            if !d.allowed && step.stop_if_refused {
                break;
            }
        }
        Ok(out)
    }
}

impl Shard {
    /// [`decide`] on `key`'s log in this (locked) shard, sweeping idle keys now and then.
    fn decide(
        &mut self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
        record: bool,
    ) -> Decision {
        let now_ns = i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        if now_ns >= self.next_sweep {
            self.logs.retain(|_, e| e.idle_at > now_ns);
            if self.logs.capacity() > 64 && self.logs.len() < self.logs.capacity() / 4 {
                self.logs.shrink_to_fit();
            }
            self.next_sweep = now_ns.saturating_add(SWEEP_EVERY_NS);
        }
        let period_ns = i64::try_from(window.period.whole_nanoseconds()).unwrap_or(i64::MAX);
        match self.logs.get_mut(key) {
            Some(entry) => {
                let d = decide(&mut entry.log, window, now, record);
                if let Some(newest) = entry.log.iter().max() {
                    entry.idle_at = entry.idle_at.max(newest.saturating_add(period_ns));
                } else {
                    self.logs.remove(key);
                }
                d
            }
            None => {
                let mut log = Vec::new();
                let d = decide(&mut log, window, now, record);
                if !log.is_empty() {
                    let idle_at = now_ns.saturating_add(period_ns);
                    self.logs.insert(*key, Entry { log, idle_at });
                }
                d
            }
        }
    }
}

#[async_trait]
impl RateLimitStore for MemoryRateLimits {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        Ok(self.decide(key, window, now, true))
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        Ok(self.decide(key, window, now, false))
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        self.shard(key).logs.remove(key);
        Ok(())
    }

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        self.run_locked(steps, now)
    }
}
