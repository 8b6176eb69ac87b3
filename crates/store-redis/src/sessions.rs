//! [`SessionStore`] over Redis: a hash per session, a set per user, one expiry index; every
//! method one command or one Lua script.
//!
//! - `<prefix>session:<key hex>` is a hash: `user` (the id, for the ownership check), `uh` (the
//!   SHA-256 hex of the id, naming the user's set), `exp` (`expires_at`, see below), `sup` (`0` or
//!   `1`) and `data` (the sealed bytes). Its TTL is `max(expires_at − TIME, 0)` + [`TTL_SLACK`]
//!   seconds, `TIME` being the Redis server's clock read inside the script.
//! - `<prefix>user-sessions:<sha256(user) hex>` is a set of key hexes. Its TTL is raised to the
//!   longest TTL of a record added to it, so an abandoned user's set goes with their records.
//!   Members whose record vanished (TTL) are dropped by `list_user` and `remove_user`.
//! - `<prefix>session-expiry` is a sorted set, every score 0, of `<exp>:<key hex>`, where `<exp>`
//!   is `expires_at` in Unix nanoseconds (an `i128`) offset by 2¹²⁷, in 39 zero-padded digits: it
//!   sorts bytewise as the instants do, so "expired at `now`" is the lexicographic range up to
//!   `(<now>;` and `purge_expired` finds exactly those records, in batches of [`PURGE_BATCH`].
//!
//! Why the TTL is relative and padded: records must outlive `expires_at` (the manager judges
//! expiry and may still read an expired record), contract tests and replayed clocks use instants in
//! the past, and portal clocks differ; only the server's own clock makes one TTL that every
//! process agrees on. The TTL is the safety net for a portal that stops purging, never the rule.

use async_trait::async_trait;
use phaze_sessions::{SessionKey, SessionStore, StoreError, StoredSession};
use redis::{Script, Value};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use time::OffsetDateTime;

use crate::{Redis, RedisError};

/// Seconds a record outlives its `expires_at` in Redis before its TTL drops it.
const TTL_SLACK: i64 = 3600;
/// Expired records deleted per script call by `purge_expired`, so one call never blocks Redis
/// for long.
const PURGE_BATCH: usize = 500;
/// Width of an encoded `expires_at`: `u128::MAX` has 39 digits.
const EXP_DIGITS: usize = 39;

/// Writes the record and its index entries; the tail of [`INSERT_LUA`] and [`UPDATE_LUA`].
/// `KEYS`: record, user set, expiry index. `ARGV`: key hex, user id, user hash, exp (encoded),
/// expires_at (Unix seconds), superseded (`0`/`1`), sealed data, TTL slack (seconds).
const WRITE_LUA: &str = r"
redis.call('HSET', KEYS[1], 'user', ARGV[2], 'uh', ARGV[3], 'exp', ARGV[4], 'sup', ARGV[6],
  'data', ARGV[7])
local ttl = tonumber(ARGV[5]) - tonumber(redis.call('TIME')[1])
if ttl < 0 then ttl = 0 end
ttl = ttl + tonumber(ARGV[8])
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('TTL', KEYS[2]) < ttl then redis.call('EXPIRE', KEYS[2], ttl) end
redis.call('ZADD', KEYS[3], 0, ARGV[4] .. ':' .. ARGV[1])
return 1
";

/// Create-if-absent; returns 0 if the key is taken. Arguments as [`WRITE_LUA`].
static INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n{WRITE_LUA}"
    ))
});

/// Replace-if-same-user; returns 0, writing nothing, if the record is gone or another user's.
/// Arguments as [`WRITE_LUA`]. The old expiry's index entry goes first.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local old = redis.call('HMGET', KEYS[1], 'user', 'exp')
if old[1] ~= ARGV[2] then return 0 end
if old[2] then redis.call('ZREM', KEYS[3], old[2] .. ':' .. ARGV[1]) end
{WRITE_LUA}"
    ))
});

/// `KEYS`: record, expiry index. `ARGV`: key hex, prefix. Returns 1 if the record existed.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local r = redis.call('HMGET', KEYS[1], 'uh', 'exp')
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
if r[1] then redis.call('SREM', ARGV[2] .. 'user-sessions:' .. r[1], ARGV[1]) end
if r[2] then redis.call('ZREM', KEYS[2], r[2] .. ':' .. ARGV[1]) end
return 1",
    )
});

/// `KEYS`: user set. `ARGV`: user id, prefix. Returns `{hex, exp, sup, data}` per live record of
/// the user and drops set members whose record is gone.
static LIST_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local out = {}
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local r = redis.call('HMGET', ARGV[2] .. 'session:' .. hex, 'user', 'exp', 'sup', 'data')
  if r[1] == ARGV[1] then
    out[#out + 1] = {hex, r[2] or '', r[3] or '', r[4] or ''}
  else
    redis.call('SREM', KEYS[1], hex)
  end
end
return out",
    )
});

/// `KEYS`: user set, expiry index. `ARGV`: user id, prefix, the key hex to keep (or empty).
/// Returns how many records went.
static REMOVE_USER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local n = 0
for _, hex in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if hex ~= ARGV[3] then
    local rec = ARGV[2] .. 'session:' .. hex
    local r = redis.call('HMGET', rec, 'user', 'exp')
    if r[1] == ARGV[1] then
      redis.call('DEL', rec)
      if r[2] then redis.call('ZREM', KEYS[2], r[2] .. ':' .. hex) end
      n = n + 1
    end
    redis.call('SREM', KEYS[1], hex)
  end
end
return n",
    )
});

/// `KEYS`: expiry index. `ARGV`: the bound `(<now>;`, the batch size, prefix. Deletes up to a
/// batch of index entries expired at `now`, and their records if the record still has that
/// expiry (a record re-created with another one is not expired). Returns `{records deleted,
/// entries examined}`.
static PURGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"local batch = redis.call('ZRANGEBYLEX', KEYS[1], '-', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local n = 0
for _, m in ipairs(batch) do
  local exp, hex = string.sub(m, 1, {EXP_DIGITS}), string.sub(m, {EXP_DIGITS} + 2)
  local rec = ARGV[3] .. 'session:' .. hex
  local r = redis.call('HMGET', rec, 'exp', 'uh')
  if r[1] == exp then
    redis.call('DEL', rec)
    if r[2] then redis.call('SREM', ARGV[3] .. 'user-sessions:' .. r[2], hex) end
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], m)
end
return {{n, #batch}}"
    ))
});

/// [`SessionStore`] under the deployment's prefix (see the module docs for the layout). Several
/// processes may share it; every method is atomic in Redis.
#[derive(Clone, Debug)]
pub struct RedisSessions {
    redis: Redis,
}

impl RedisSessions {
    pub(crate) fn new(redis: Redis) -> Self {
        Self { redis }
    }

    fn record_key(&self, hex: &str) -> String {
        format!("{}session:{hex}", self.redis.prefix())
    }

    fn user_key(&self, user_id: &str) -> String {
        format!(
            "{}user-sessions:{}",
            self.redis.prefix(),
            user_hash(user_id)
        )
    }

    fn expiry_key(&self) -> String {
        format!("{}session-expiry", self.redis.prefix())
    }

    /// Runs [`INSERT`] or [`UPDATE`]; `true` if it wrote.
    async fn write(&self, script: &Script, s: &StoredSession) -> Result<bool, RedisError> {
        let hex = s.key.to_hex();
        let wrote: i64 = self
            .redis
            .invoke(
                script
                    .key(self.record_key(&hex))
                    .key(self.user_key(&s.user_id))
                    .key(self.expiry_key())
                    .arg(&hex)
                    .arg(&s.user_id)
                    .arg(user_hash(&s.user_id))
                    .arg(encode_expiry(s.expires_at))
                    .arg(s.expires_at.unix_timestamp())
                    .arg(if s.superseded { "1" } else { "0" })
                    .arg(s.sealed.as_slice())
                    .arg(TTL_SLACK),
            )
            .await?;
        Ok(wrote == 1)
    }

    async fn purge_batch(&self, bound: &str) -> Result<(usize, usize), RedisError> {
        self.redis
            .invoke(
                PURGE
                    .key(self.expiry_key())
                    .arg(bound)
                    .arg(PURGE_BATCH)
                    .arg(self.redis.prefix()),
            )
            .await
    }
}

fn backend(e: RedisError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn insert(&self, session: &StoredSession) -> Result<(), StoreError> {
        if self.write(&INSERT, session).await.map_err(backend)? {
            Ok(())
        } else {
            Err(StoreError::Duplicate)
        }
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let fields: Vec<Option<Vec<u8>>> = self
            .redis
            .query(
                redis::cmd("HMGET")
                    .arg(self.record_key(&key.to_hex()))
                    .arg("user")
                    .arg("exp")
                    .arg("sup")
                    .arg("data"),
            )
            .await
            .map_err(backend)?;
        match <[_; 4]>::try_from(fields) {
            Ok([None, None, None, None]) => Ok(None),
            Ok([Some(user), Some(exp), Some(sup), Some(data)]) => {
                decode_record(*key, &user, &exp, &sup, data)
                    .map(Some)
                    .map_err(backend)
            }
            _ => Err(backend(RedisError::Malformed("session record"))),
        }
    }

    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError> {
        self.write(&UPDATE, session).await.map_err(backend)
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let hex = key.to_hex();
        let removed: i64 = self
            .redis
            .invoke(
                REMOVE
                    .key(self.record_key(&hex))
                    .key(self.expiry_key())
                    .arg(&hex)
                    .arg(self.redis.prefix()),
            )
            .await
            .map_err(backend)?;
        Ok(removed == 1)
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError> {
        let rows: Vec<Value> = self
            .redis
            .invoke(
                LIST_USER
                    .key(self.user_key(user_id))
                    .arg(user_id)
                    .arg(self.redis.prefix()),
            )
            .await
            .map_err(backend)?;
        rows.into_iter()
            .map(|row| {
                let (hex, exp, sup, data): (String, Vec<u8>, Vec<u8>, Vec<u8>) =
                    redis::from_redis_value(row)
                        .map_err(|_| RedisError::Malformed("session list row"))?;
                let key = SessionKey::from_hex(&hex)
                    .ok_or(RedisError::Malformed("session key in a user's set"))?;
                decode_record(key, user_id.as_bytes(), &exp, &sup, data)
            })
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError> {
        self.redis
            .invoke(
                REMOVE_USER
                    .key(self.user_key(user_id))
                    .key(self.expiry_key())
                    .arg(user_id)
                    .arg(self.redis.prefix())
                    .arg(keep.map(SessionKey::to_hex).unwrap_or_default()),
            )
            .await
            .map_err(backend)
    }

    /// Deletes the records expired at `now`, [`PURGE_BATCH`] per script call: each batch is
    /// atomic, the whole purge is not (records expiring meanwhile may or may not be counted).
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let bound = format!("({};", encode_expiry(now));
        let mut total = 0usize;
        loop {
            let (deleted, examined) = self.purge_batch(&bound).await.map_err(backend)?;
            total = total.saturating_add(deleted);
            if examined < PURGE_BATCH {
                return Ok(total);
            }
        }
    }
}

/// Lower-case hex of SHA-256 of a user id: the user's set is named by it, so ids of any shape
/// (`*`, `../x`, NUL, e-mail addresses) never appear in key names.
fn user_hash(user_id: &str) -> String {
    hex::encode(Sha256::digest(user_id.as_bytes()))
}

/// `expires_at` as 39 digits that sort bytewise as the instants do: Unix nanoseconds offset by
/// 2¹²⁷ (the sign bit flipped).
fn encode_expiry(t: OffsetDateTime) -> String {
    format!(
        "{:0width$}",
        t.unix_timestamp_nanos().cast_unsigned() ^ (1 << 127),
        width = EXP_DIGITS
    )
}

/// The inverse of [`encode_expiry`].
fn decode_expiry(digits: &[u8]) -> Option<OffsetDateTime> {
    if digits.len() != EXP_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let offset: u128 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos((offset ^ (1 << 127)).cast_signed()).ok()
}

fn decode_record(
    key: SessionKey,
    user: &[u8],
    exp: &[u8],
    sup: &[u8],
    sealed: Vec<u8>,
) -> Result<StoredSession, RedisError> {
    let user_id =
        String::from_utf8(user.to_vec()).map_err(|_| RedisError::Malformed("session user id"))?;
    let expires_at = decode_expiry(exp).ok_or(RedisError::Malformed("session expiry"))?;
    let superseded = match sup {
        b"0" => false,
        b"1" => true,
        _ => return Err(RedisError::Malformed("session superseded flag")),
    };
    Ok(StoredSession {
        key,
        user_id,
        expires_at,
        superseded,
        sealed,
    })
}

#[cfg(test)]
mod tests;
