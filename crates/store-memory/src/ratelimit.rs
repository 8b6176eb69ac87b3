//! [`RateLimitStore`] in memory: 64 shards, each a mutex over its keys' sliding logs, so
//! decisions on different keys rarely contend, and idle keys are swept so memory stays bounded
//! under a flood of distinct keys.

use async_trait::async_trait;
use phaze_ratelimit::{decide, Decision, LimitKey, RateLimitStore, StoreError, Window};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

const SHARDS: usize = 64;
/// A shard drops its idle keys at most this often (nanoseconds of the callers' `now`).
const SWEEP_EVERY_NS: i64 = 1_000_000_000;

/// Sliding logs in process memory.
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

impl MemoryRateLimits {
    fn shard(&self, key: &LimitKey) -> MutexGuard<'_, Shard> {
        let i = usize::from(key.as_bytes()[31]) % SHARDS;
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
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
        let now_ns = i64::try_from(now.unix_timestamp_nanos()).unwrap_or(i64::MAX);
        let mut shard = self.shard(key);
        if now_ns >= shard.next_sweep {
            shard.logs.retain(|_, e| e.idle_at > now_ns);
            if shard.logs.capacity() > 64 && shard.logs.len() < shard.logs.capacity() / 4 {
                shard.logs.shrink_to_fit();
            }
            shard.next_sweep = now_ns.saturating_add(SWEEP_EVERY_NS);
        }
        let period_ns = i64::try_from(window.period.whole_nanoseconds()).unwrap_or(i64::MAX);
        match shard.logs.get_mut(key) {
            Some(entry) => {
                let d = decide(&mut entry.log, window, now, record);
                if let Some(newest) = entry.log.iter().max() {
                    entry.idle_at = entry.idle_at.max(newest.saturating_add(period_ns));
                } else {
                    shard.logs.remove(key);
                }
                d
            }
            None => {
                let mut log = Vec::new();
                let d = decide(&mut log, window, now, record);
                if !log.is_empty() {
                    let idle_at = now_ns.saturating_add(period_ns);
                    shard.logs.insert(*key, Entry { log, idle_at });
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
}
