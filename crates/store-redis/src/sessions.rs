//! [`SessionStore`] over Redis: a hash per session, a set per user, one expiry index; every
//! method one command or one Lua script.
//!
//! - `<prefix>session:<key hex>` is a hash: `user` (the id, for the ownership check), `uh` (the
//!   SHA-256 hex of the id, naming the user's set), `exp` (`expires_at`, see below), `sup` (`0`
//!   while live; once retired by a rotation, the successor's key hex; `1` on records retired
//!   before records named their successor, read as naming themselves) and `data` (the sealed
//!   bytes). Its TTL is `max(expires_at − TIME, 0)` + [`TTL_SLACK`]
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
use phaze_sessions::{Rotation, SessionKey, SessionStore, StoreError, StoredSession};
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

/// `write(record, user set, expiry index, key hex, user id, user hash, exp (encoded), expires_at
/// (Unix seconds), sup, sealed data, TTL slack (seconds))` writes a record and its index
/// entries; the head of the scripts that write records.
const WRITE_LUA: &str = r"
local function write(rec, uset, zset, hex, user, uh, exp, exp_secs, sup, data, slack)
  redis.call('HSET', rec, 'user', user, 'uh', uh, 'exp', exp, 'sup', sup, 'data', data)
  local ttl = tonumber(exp_secs) - tonumber(redis.call('TIME')[1])
  if ttl < 0 then ttl = 0 end
  ttl = ttl + tonumber(slack)
  redis.call('EXPIRE', rec, ttl)
  redis.call('SADD', uset, hex)
  if redis.call('TTL', uset) < ttl then redis.call('EXPIRE', uset, ttl) end
  redis.call('ZADD', zset, 0, exp .. ':' .. hex)
end
";

/// `KEYS`: record, user set, expiry index. `ARGV`: key hex, user id, user hash, exp (encoded),
/// expires_at (Unix seconds), sup, sealed data, TTL slack (seconds); the arguments of
/// [`INSERT`] and [`UPDATE`].
const WRITE_ARGS: &str = "KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], \
                          ARGV[6], ARGV[7], ARGV[8]";

/// Create-if-absent; returns 0 if the key is taken.
static INSERT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WRITE_LUA}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
write({WRITE_ARGS})
return 1"
    ))
});

/// Replace-if-same-user-and-live; returns 0, writing nothing, if the record is gone, another
/// user's, or retired (a touch finishing after a rotation must not make the old id live again).
/// The old expiry's index entry goes first.
static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WRITE_LUA}
local old = redis.call('HMGET', KEYS[1], 'user', 'exp', 'sup')
if old[1] ~= ARGV[2] or old[3] ~= '0' then return 0 end
if old[2] then redis.call('ZREM', KEYS[3], old[2] .. ':' .. ARGV[1]) end
write({WRITE_ARGS})
return 1"
    ))
});

/// The compare-and-swap of [`SessionStore::rotate`]. `KEYS`: old record, successor record, user
/// set, expiry index. `ARGV`: old key hex, successor key hex, user id, user hash, TTL slack, then
/// exp (encoded), expires_at (Unix seconds) and sealed data of the retired record, then the same
/// three of the successor. Returns `{code, exp, sup, data}`: code 1 won; 2 lost, with the old
/// record's fields; 0 gone; 3 the successor's key is taken.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{WRITE_LUA}
local old = redis.call('HMGET', KEYS[1], 'user', 'exp', 'sup', 'data')
if old[1] ~= ARGV[3] then return {{0, '', '', ''}} end
if old[3] ~= '0' then return {{2, old[2] or '', old[3] or '', old[4] or ''}} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {{3, '', '', ''}} end
write(KEYS[2], KEYS[3], KEYS[4], ARGV[2], ARGV[3], ARGV[4], ARGV[9], ARGV[10], '0', ARGV[11],
  ARGV[5])
if old[2] then redis.call('ZREM', KEYS[4], old[2] .. ':' .. ARGV[1]) end
write(KEYS[1], KEYS[3], KEYS[4], ARGV[1], ARGV[3], ARGV[4], ARGV[6], ARGV[7], ARGV[2], ARGV[8],
  ARGV[5])
return {{1, '', '', ''}}"
    ))
});

/// `KEYS`: record, expiry index. `ARGV`: key hex, prefix. Deletes the record and, following
/// `sup`, the records of the same user it was rotated into, all in this one script. Returns 1 if
/// the record existed.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local owner = redis.call('HGET', KEYS[1], 'user')
if not owner then
  return redis.call('DEL', KEYS[1])
end
local hex = ARGV[1]
-- Each step deletes a record, so even a cycle in a tampered chain ends.
while hex do
  local rec = ARGV[2] .. 'session:' .. hex
  local r = redis.call('HMGET', rec, 'user', 'uh', 'exp', 'sup')
  if r[1] ~= owner then break end
  redis.call('DEL', rec)
  if r[2] then redis.call('SREM', ARGV[2] .. 'user-sessions:' .. r[2], hex) end
  if r[3] then redis.call('ZREM', KEYS[2], r[3] .. ':' .. hex) end
  if r[4] and string.len(r[4]) == 64 then hex = r[4] else hex = nil end
end
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

/// [`SessionStore`] under the deployment's prefix (key layout in the crate docs). Several
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
                    .arg(sup(s))
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

    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, StoreError> {
        let (old_hex, new_hex) = (retired.key.to_hex(), successor.key.to_hex());
        let (code, exp, sup, data): (i64, Vec<u8>, Vec<u8>, Vec<u8>) = self
            .redis
            .invoke(
                ROTATE
                    .key(self.record_key(&old_hex))
                    .key(self.record_key(&new_hex))
                    .key(self.user_key(&retired.user_id))
                    .key(self.expiry_key())
                    .arg(&old_hex)
                    .arg(&new_hex)
                    .arg(&retired.user_id)
                    .arg(user_hash(&retired.user_id))
                    .arg(TTL_SLACK)
                    .arg(encode_expiry(retired.expires_at))
                    .arg(retired.expires_at.unix_timestamp())
                    .arg(retired.sealed.as_slice())
                    .arg(encode_expiry(successor.expires_at))
                    .arg(successor.expires_at.unix_timestamp())
                    .arg(successor.sealed.as_slice()),
            )
            .await
            .map_err(backend)?;
        match code {
            1 => Ok(Rotation::Won),
            2 => decode_record(retired.key, retired.user_id.as_bytes(), &exp, &sup, data)
                .map(Rotation::Lost)
                .map_err(backend),
            0 => Ok(Rotation::Gone),
            3 => Err(StoreError::Duplicate),
            _ => Err(backend(RedisError::Malformed("rotation reply"))),
        }
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

    /// Deletes the records expired at `now`, 500 per script call: each batch is
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

/// The `sup` field of a record: `0` while live, else the successor's key hex.
fn sup(s: &StoredSession) -> String {
    s.successor
        .map_or_else(|| "0".to_owned(), |next| next.to_hex())
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
    let successor = match sup {
        b"0" => None,
        // Retired before records named their successor: it leads nowhere.
        b"1" => Some(key),
        hex => Some(
            std::str::from_utf8(hex)
                .ok()
                .and_then(SessionKey::from_hex)
                .ok_or(RedisError::Malformed("session successor"))?,
        ),
    };
    Ok(StoredSession {
        key,
        user_id,
        expires_at,
        successor,
        sealed,
    })
}

#[cfg(test)]
mod tests;
