//! [`RateLimitStore`] over the `rate_limits` table: one row per key holding its sliding log, and
//! each decision one transaction that locks the row.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_ratelimit::{decide, Decision, LimitKey, RateLimitStore, StoreError, Window};
use time::OffsetDateTime;

use crate::schema::rate_limits;
use crate::{checkout, Corrupt, Pools};

/// How often a hit retries after losing the race to create a key's row, or finding the row it
/// waited for deleted (by a reset or a purge). Each retry means another transaction committed on
/// the key, so this bound is only reached by a bug.
const RETRIES: usize = 16;

/// [`RateLimitStore`] over the `rate_limits` table, for deployments without Redis.
///
/// A hit is one transaction: `SELECT … FOR UPDATE` on the key's row (or an `INSERT … ON CONFLICT
/// DO NOTHING` of a new one), [`decide`] in Rust on the stored log, then one `UPDATE` if the log
/// changed. The row lock serialises decisions on one key across every connection and process, so
/// of N simultaneous hits against a limit L exactly L are allowed; different keys never contend.
/// `peek` reads without locking (it records nothing). Rows of idle keys stay until
/// [`RateLimitStore::purge_idle`] deletes them; the portal runs it periodically.
#[derive(Clone)]
pub struct PgRateLimits {
    pool: Pools,
}

impl std::fmt::Debug for PgRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRateLimits").finish_non_exhaustive()
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn corrupt() -> DieselError {
    DieselError::DeserializationError(Box::new(Corrupt("rate_limits")))
}

fn period_nanos(window: Window) -> i64 {
    window.period_nanos()
}

/// The instant `ns` (Unix nanoseconds) rounded *up* to PostgreSQL's microsecond, so a stored
/// `idle_after` is never earlier than the true one and a purge never drops a log a window sees.
fn instant_ceil_micros(ns: i64) -> Result<OffsetDateTime, DieselError> {
    let micros = ns.div_euclid(1000) + i64::from(ns.rem_euclid(1000) != 0);
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000).map_err(|_| corrupt())
}

/// When the log `log`, hit with `window`, is empty under every window it was hit with, given the
/// stored bound `before` (the longest period seen so far may exceed this one).
fn idle_after(
    log: &[i64],
    window: Window,
    before: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, DieselError> {
    let Some(newest) = log.iter().max() else {
        return Ok(None);
    };
    let now_bound = instant_ceil_micros(newest.saturating_add(period_nanos(window)))?;
    Ok(Some(before.map_or(now_bound, |b| b.max(now_bound))))
}

/// The body of a hit, inside its transaction.
async fn hit_locked(
    conn: &mut AsyncPgConnection,
    key: &[u8],
    window: Window,
    now: OffsetDateTime,
) -> Result<Decision, DieselError> {
    for _ in 0..RETRIES {
        let row: Option<(Vec<i64>, OffsetDateTime)> = rate_limits::table
            .filter(rate_limits::key.eq(key))
            .select((rate_limits::log, rate_limits::idle_after))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if let Some((mut log, stored_idle)) = row {
            let before = log.len();
            let decision = decide(&mut log, window, now, true);
            match idle_after(&log, window, Some(stored_idle))? {
                // Only a limit of zero can empty a log on a hit: nothing left to keep.
                None => {
                    diesel::delete(rate_limits::table.filter(rate_limits::key.eq(key)))
                        .execute(conn)
                        .await?;
                }
                // A denied hit that dropped nothing and extended nothing writes nothing.
                Some(idle) if decision.allowed || log.len() != before || idle != stored_idle => {
                    diesel::update(rate_limits::table.filter(rate_limits::key.eq(key)))
                        .set((rate_limits::log.eq(&log), rate_limits::idle_after.eq(idle)))
                        .execute(conn)
                        .await?;
                }
                Some(_) => {}
            }
            return Ok(decision);
        }
        // No row yet: decide on an empty log and create the row with the result. If another
        // transaction creates it first, the insert does nothing (after waiting for that
        // transaction to commit), and the next round locks the row it made.
        let mut log = Vec::new();
        let decision = decide(&mut log, window, now, true);
        let Some(idle) = idle_after(&log, window, None)? else {
            return Ok(decision);
        };
        let inserted = diesel::insert_into(rate_limits::table)
            .values((
                rate_limits::key.eq(key),
                rate_limits::log.eq(&log),
                rate_limits::idle_after.eq(idle),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 1 {
            return Ok(decision);
        }
    }
    Err(DieselError::DeserializationError(
        "rate limit row kept vanishing under concurrent resets".into(),
    ))
}

impl PgRateLimits {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        checkout(&self.pool).await.map_err(StoreError::Backend)
    }
}

#[async_trait]
impl RateLimitStore for PgRateLimits {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        let key = *key.as_bytes();
        let mut conn = self.conn().await?;
        // READ COMMITTED whatever the server's default: the create-then-lock retry needs each
        // statement to see rows committed since the transaction began.
        conn.build_transaction()
            .read_committed()
            .run(async |conn| hit_locked(conn, &key, window, now).await)
            .await
            .map_err(backend)
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        let mut conn = self.conn().await?;
        let mut log: Vec<i64> = rate_limits::table
            .filter(rate_limits::key.eq(&key.as_bytes()[..]))
            .select(rate_limits::log)
            .first(&mut conn)
            .await
            .optional()
            .map_err(backend)?
            .unwrap_or_default();
        Ok(decide(&mut log, window, now, false))
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(rate_limits::table.filter(rate_limits::key.eq(&key.as_bytes()[..])))
            .execute(&mut conn)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Deletes the rows of keys whose log is empty at `now` under every window they were hit
    /// with. A key being hit right now holds its row lock; the delete waits for it and then
    /// re-checks the row, so a hit that lands meanwhile keeps its log.
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(rate_limits::table.filter(rate_limits::idle_after.le(now)))
            .execute(&mut conn)
            .await
            .map_err(backend)
    }
}

#[cfg(test)]
mod tests;
