//! [`RateLimitStore`] over Redis: one sorted set per key, every decision one Lua script.
//!
//! A log is a sorted set whose scores are all 0, so Redis orders members bytewise. A member is
//! `<instant>:<n>`: the instant (Unix ns, an `i64`) offset by 2⁶³ and written as 20 zero-padded
//! digits, which sorts exactly as the number does, then a counter that only keeps equal instants
//! apart (the `n`-th hit recorded at one instant gets `n`). "After the window's start `s`" is then
//! the lexicographic range `(<s>;` to `+`: a member with instant `s` is `<s>:…`, below `<s>;`
//! because `:` < `;`, and any later instant differs in a digit and sorts above. Pruning, counting
//! and finding the oldest instant are `ZREMRANGEBYLEX`, `ZLEXCOUNT` and `ZRANGEBYLEX … LIMIT 0
//! 1`, all exact, in `O(log n)`; no timestamp is ever a Lua number.
//!
//! The script returns the live count and the oldest live member (before this hit); Rust finishes
//! the [`Decision`] with [`phaze_ratelimit::conclude`], the arithmetic half of
//! [`phaze_ratelimit::decide`]. A recorded hit sets the key's TTL to the window's period past the
//! newest instant in the log (`PEXPIRE`, relative, rounded up to a millisecond; the newest instant
//! is later than `now` when another process's clock runs ahead): once that has passed every
//! instant has left every process's window, so an idle log deletes itself.

use async_trait::async_trait;
use phaze_ratelimit::{
    conclude, unix_nanos, Decision, LimitKey, RateLimitStore, StoreError, Window,
};
use redis::Script;
use std::sync::LazyLock;
use time::OffsetDateTime;

use crate::{Redis, RedisError};

/// One decision. `KEYS[1]` the log. `ARGV`: the lexicographic bound `(<start>;`, the instant
/// `now` (20 digits), the limit, `1` to record (a hit) or `0` (a peek), the period in milliseconds.
/// Returns `{live count, oldest live member or ""}`, both taken before this hit is recorded.
const DECIDE_LUA: &str = r"
local key, bound, now = KEYS[1], ARGV[1], ARGV[2]
local record = ARGV[4] == '1'
if record then
  redis.call('ZREMRANGEBYLEX', key, '-', bound)
end
local count = redis.call('ZLEXCOUNT', key, bound, '+')
local oldest = redis.call('ZRANGEBYLEX', key, bound, '+', 'LIMIT', 0, 1)[1] or ''
if record and count < tonumber(ARGV[3]) then
  local same = redis.call('ZLEXCOUNT', key, '[' .. now .. ':', '(' .. now .. ';')
  redis.call('ZADD', key, 0, now .. ':' .. same)
  -- Live one period past the newest instant, which another process's fast clock may have put
  -- ahead of `now`. The first 14 of the 20 digits are milliseconds: exact as a Lua number.
  local newest = redis.call('ZREVRANGEBYLEX', key, '+', '-', 'LIMIT', 0, 1)[1]
  local ahead = tonumber(string.sub(newest, 1, 14)) - tonumber(string.sub(now, 1, 14))
  if ahead > 0 then ahead = ahead + 1 else ahead = 0 end
  redis.call('PEXPIRE', key, tonumber(ARGV[5]) + ahead)
end
return {count, oldest}
";

static DECIDE: LazyLock<Script> = LazyLock::new(|| Script::new(DECIDE_LUA));

/// [`RateLimitStore`] in `<prefix>ratelimit:<key hex>`. Each `hit`, `peek` and `reset` is one
/// atomic Redis operation; idle keys expire by themselves, so `purge_idle` does nothing.
#[derive(Clone, Debug)]
pub struct RedisRateLimits {
    redis: Redis,
}

impl RedisRateLimits {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn key(&self, key: &LimitKey) -> String {
        format!("{}ratelimit:{}", self.redis.prefix(), key.to_hex())
    }

    async fn decide(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
        record: bool,
    ) -> Result<Decision, RedisError> {
        let now_ns = unix_nanos(now);
        let period_ns = window.period_nanos();
        let start = now_ns.saturating_sub(period_ns);
        let (count, oldest): (u64, Vec<u8>) = self
            .redis
            .invoke(
                DECIDE
                    .key(self.key(key))
                    .arg(format!("({};", encode_instant(start)))
                    .arg(encode_instant(now_ns))
                    .arg(window.limit)
                    .arg(if record { "1" } else { "0" })
                    .arg(ttl_millis(period_ns)),
            )
            .await?;
        let oldest = if oldest.is_empty() {
            None
        } else {
            Some(decode_member(&oldest).ok_or(RedisError::Malformed("rate-limit log member"))?)
        };
        Ok(conclude(count, oldest, window, now_ns, record))
    }
}

fn backend(e: RedisError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

#[async_trait]
impl RateLimitStore for RedisRateLimits {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        self.decide(key, window, now, true).await.map_err(backend)
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        self.decide(key, window, now, false).await.map_err(backend)
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        self.redis
            .query::<()>(redis::cmd("DEL").arg(self.key(key)))
            .await
            .map_err(backend)
    }
}

/// An instant as 20 digits that sort bytewise as the instants do: offset by 2⁶³ (the sign bit
/// flipped), so `i64::MIN` is all zeros.
fn encode_instant(ns: i64) -> String {
    format!("{:020}", ns.cast_unsigned() ^ (1 << 63))
}

/// The instant of a log member `<20 digits>:<n>`.
fn decode_member(member: &[u8]) -> Option<i64> {
    let digits = member.get(..20)?;
    if member.get(20) != Some(&b':') || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let offset: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((offset ^ (1 << 63)).cast_signed())
}

/// A log's TTL: the period, rounded up to whole milliseconds, at least 1 (`PEXPIRE 0` would delete
/// the key at once).
fn ttl_millis(period_ns: i64) -> i64 {
    period_ns
        .div_euclid(1_000_000)
        .saturating_add(i64::from(period_ns.rem_euclid(1_000_000) != 0))
        .max(1)
}

#[cfg(test)]
mod tests;
