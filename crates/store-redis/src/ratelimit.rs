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
//!
//! A [`RateLimitStore::run`] is one script too, over every key of the run: Redis runs a script
//! alone, so no other command on any key interleaves. Its steps run the same Lua function as a
//! single decision, in order, and the script stops at the first refused step that says so.

use async_trait::async_trait;
use phaze_ratelimit::{
    conclude, unix_nanos, Decision, LimitKey, Op, RateLimitStore, Step, StoreError, Window,
    MAX_STEPS,
};
use redis::Script;
use std::sync::LazyLock;
use time::OffsetDateTime;

use crate::{Redis, RedisError};

/// One decision, as a Lua function both scripts define: `key` the log, `bound` the lexicographic
/// bound `(<start>;`, `now` the instant (20 digits), `limit` the limit (a string), `record`
/// whether to record (a hit) or not (a peek), `ttl` the period in milliseconds (a string).
/// Returns `{live count, oldest live member or ""}`, both taken before this hit is recorded.
const DECIDE_FN: &str = r"
local function decide(key, bound, now, limit, record, ttl)
  if record then
    redis.call('ZREMRANGEBYLEX', key, '-', bound)
  end
  local count = redis.call('ZLEXCOUNT', key, bound, '+')
  local oldest = redis.call('ZRANGEBYLEX', key, bound, '+', 'LIMIT', 0, 1)[1] or ''
  if record and count < tonumber(limit) then
    local same = redis.call('ZLEXCOUNT', key, '[' .. now .. ':', '(' .. now .. ';')
    redis.call('ZADD', key, 0, now .. ':' .. same)
    -- Live one period past the newest instant, which another process's fast clock may have put
    -- ahead of `now`. The first 14 of the 20 digits are milliseconds: exact as a Lua number.
    local newest = redis.call('ZREVRANGEBYLEX', key, '+', '-', 'LIMIT', 0, 1)[1]
    local ahead = tonumber(string.sub(newest, 1, 14)) - tonumber(string.sub(now, 1, 14))
    if ahead > 0 then ahead = ahead + 1 else ahead = 0 end
    redis.call('PEXPIRE', key, tonumber(ttl) + ahead)
  end
  return {count, oldest}
end
";

/// One decision. `KEYS[1]` the log. `ARGV`: the bound, `now`, the limit, `1` to record (a hit)
/// or `0` (a peek), the period in milliseconds (see [`DECIDE_FN`]).
const DECIDE_ONE: &str = r"
return decide(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1', ARGV[5])
";

/// A run of steps. `KEYS[i]` is step i's log (a key may repeat). `ARGV[1]` is `now`, then five
/// arguments per step: the bound, the limit, `1` to record or `0`, the period in milliseconds,
/// and `1` if a refusal ends the run. Returns one `{live count, oldest}` per step judged; a step
/// is refused when its count has reached its limit, as in [`phaze_ratelimit::conclude`].
///
/// The keys are declared, but in Redis Cluster they would also need one hash slot (a hash tag
/// in the key names), which this store does not give them: it needs one Redis (see the crate).
const RUN_STEPS: &str = r"
local now, out = ARGV[1], {}
for i = 1, #KEYS do
  local a = 1 + (i - 1) * 5
  local limit = ARGV[a + 2]
  local reply = decide(KEYS[i], ARGV[a + 1], now, limit, ARGV[a + 3] == '1', ARGV[a + 4])
  out[i] = reply
  if ARGV[a + 5] == '1' and reply[1] >= tonumber(limit) then
    break
  end
end
return out
";

static DECIDE: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{DECIDE_FN}{DECIDE_ONE}")));
static RUN: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{DECIDE_FN}{RUN_STEPS}")));

/// [`RateLimitStore`] in `<prefix>ratelimit:<key hex>`. Each `hit`, `peek`, `reset` and `run`
/// is one atomic Redis operation; idle keys expire by themselves, so `purge_idle` does nothing.
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
        Ok(conclude(
            count,
            oldest_instant(&oldest)?,
            window,
            now_ns,
            record,
        ))
    }

    /// The steps, as one script; `steps` is at most [`MAX_STEPS`] long.
    async fn run_script(
        &self,
        steps: &[Step],
        now: OffsetDateTime,
    ) -> Result<Vec<Decision>, RedisError> {
        let now_ns = unix_nanos(now);
        let mut script = RUN.prepare_invoke();
        script.arg(encode_instant(now_ns));
        for step in steps {
            let period_ns = step.window.period_nanos();
            let start = now_ns.saturating_sub(period_ns);
            script
                .key(self.key(&step.key))
                .arg(format!("({};", encode_instant(start)))
                .arg(step.window.limit)
                .arg(if step.op == Op::Hit { "1" } else { "0" })
                .arg(ttl_millis(period_ns))
                .arg(if step.stop_if_refused { "1" } else { "0" });
        }
        let replies: Vec<(u64, Vec<u8>)> = self.redis.invoke(&script).await?;
        if replies.len() > steps.len() {
            return Err(RedisError::Malformed(
                "more rate-limit decisions than steps",
            ));
        }
        steps
            .iter()
            .zip(replies)
            .map(|(step, (count, oldest))| {
                let record = step.op == Op::Hit;
                Ok(conclude(
                    count,
                    oldest_instant(&oldest)?,
                    step.window,
                    now_ns,
                    record,
                ))
            })
            .collect()
    }
}

/// The instant of the oldest live member a script returned, `""` when the log is empty.
fn oldest_instant(member: &[u8]) -> Result<Option<i64>, RedisError> {
    if member.is_empty() {
        Ok(None)
    } else {
        decode_member(member)
            .map(Some)
            .ok_or(RedisError::Malformed("rate-limit log member"))
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

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        if steps.len() > MAX_STEPS {
            return Err(StoreError::Backend("too many steps in one run".into()));
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        self.run_script(steps, now).await.map_err(backend)
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
