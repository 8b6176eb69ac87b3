//! [`RateLimitStore`] over the `rate_limits` table: one row per key holding its sliding log, and
//! each decision one transaction that locks the row; a run, one transaction that locks the rows
//! of all its keys.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_ratelimit::{
    decide, Decision, LimitKey, Op, RateLimitStore, Step, StoreError, Window, MAX_STEPS,
};
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
/// `peek` reads without locking (it records nothing).
///
/// A `run` is one transaction too. It locks the row of every distinct key in ascending key order,
/// so two runs never wait for each other in a cycle; an absent key is locked by inserting an
/// empty placeholder row, which no other transaction ever sees (the run deletes it, or fills it
/// with what a hit recorded, before it commits) but whose insert makes any other insert of that
/// key wait, as the row lock makes updates wait. Then [`decide`] runs each step on the logs in
/// memory, and the rows whose logs changed are written back as a hit writes its own.
///
/// Rows of idle keys stay until [`RateLimitStore::purge_idle`] deletes them; the portal runs it
/// periodically.
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

/// Writes the log of a key whose row the transaction holds: deletes the row when the log is empty
/// under every window (`idle` is `None`), and updates it when the log `changed`.
async fn write_back(
    conn: &mut AsyncPgConnection,
    key: &[u8],
    log: &[i64],
    idle: Option<OffsetDateTime>,
    changed: bool,
) -> Result<(), DieselError> {
    match idle {
        None => {
            diesel::delete(rate_limits::table.filter(rate_limits::key.eq(key)))
                .execute(conn)
                .await?;
        }
        Some(idle) if changed => {
            diesel::update(rate_limits::table.filter(rate_limits::key.eq(key)))
                .set((rate_limits::log.eq(log), rate_limits::idle_after.eq(idle)))
                .execute(conn)
                .await?;
        }
        Some(_) => {}
    }
    Ok(())
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
            // Only a limit of zero can empty a log on a hit: nothing left to keep. A denied hit
            // that dropped nothing and extended nothing writes nothing.
            let idle = idle_after(&log, window, Some(stored_idle))?;
            let changed = decision.allowed || log.len() != before || idle != Some(stored_idle);
            write_back(conn, key, &log, idle, changed).await?;
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

/// One distinct key of a run, its row held by the transaction.
struct Held {
    key: [u8; 32],
    log: Vec<i64>,
    /// `idle_after` as the steps leave it (as stored until a hit moves it); `None` for an empty
    /// log, whose row goes: a placeholder that only peeks read, or a log a hit emptied.
    idle: Option<OffsetDateTime>,
    /// Whether a hit changed the log, which is then written back.
    changed: bool,
}

/// Locks `key`'s row for the rest of the transaction: `SELECT … FOR UPDATE`, or, when there is
/// no row, the insert of an empty placeholder (see [`PgRateLimits`]).
async fn lock_row(
    conn: &mut AsyncPgConnection,
    key: [u8; 32],
    now: OffsetDateTime,
) -> Result<Held, DieselError> {
    for _ in 0..RETRIES {
        let row: Option<(Vec<i64>, OffsetDateTime)> = rate_limits::table
            .filter(rate_limits::key.eq(&key[..]))
            .select((rate_limits::log, rate_limits::idle_after))
            .for_update()
            .first(conn)
            .await
            .optional()?;
        if let Some((log, idle)) = row {
            return Ok(Held {
                key,
                log,
                idle: Some(idle),
                changed: false,
            });
        }
        // If another transaction creates the row first, the insert does nothing (after waiting
        // for it to commit), and the next round locks the row it made. The placeholder's
        // `idle_after` is never committed.
        let inserted = diesel::insert_into(rate_limits::table)
            .values((
                rate_limits::key.eq(&key[..]),
                rate_limits::log.eq(Vec::<i64>::new()),
                rate_limits::idle_after.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 1 {
            return Ok(Held {
                key,
                log: Vec::new(),
                idle: None,
                changed: false,
            });
        }
    }
    Err(DieselError::DeserializationError(
        "rate limit row kept vanishing under concurrent resets".into(),
    ))
}

/// The body of a run, inside its transaction.
async fn run_locked(
    conn: &mut AsyncPgConnection,
    steps: &[Step],
    now: OffsetDateTime,
) -> Result<Vec<Decision>, DieselError> {
    let mut keys: Vec<[u8; 32]> = steps.iter().map(|s| *s.key.as_bytes()).collect();
    // `bytea` compares bytewise, as `[u8; 32]` does: the order of the locks is the keys' order.
    keys.sort_unstable();
    keys.dedup();
    let mut held = Vec::with_capacity(keys.len());
    for key in keys {
        held.push(lock_row(conn, key, now).await?);
    }
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let Some(h) = held.iter_mut().find(|h| h.key == *step.key.as_bytes()) else {
            return Err(DieselError::DeserializationError(
                "a step's key was not locked".into(),
            ));
        };
        let d = match step.op {
            Op::Hit => {
                let before = h.log.len();
                let d = decide(&mut h.log, step.window, now, true);
                let idle = idle_after(&h.log, step.window, h.idle)?;
                h.changed |= d.allowed || h.log.len() != before || idle != h.idle;
                h.idle = idle;
                d
            }
            Op::Peek => decide(&mut h.log, step.window, now, false),
        };
        out.push(d);
        if !d.allowed && step.stop_if_refused {
            break;
        }
    }
    for h in &held {
        write_back(conn, &h.key, &h.log, h.idle, h.changed).await?;
    }
    Ok(out)
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

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        if steps.len() > MAX_STEPS {
            return Err(StoreError::Backend("too many steps in one run".into()));
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        // READ COMMITTED, as for a hit: locking an absent key retries on rows committed since
        // the transaction began.
        conn.build_transaction()
            .read_committed()
            .run(async |conn| run_locked(conn, steps, now).await)
            .await
            .map_err(backend)
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
    /// with. Rows being decided on right now (locked by a hit or a run) are skipped, not waited
    /// for: the next purge takes them if they are still idle. Waiting would hold the rows deleted
    /// so far while waiting for one more, in the table's order, and so could close a cycle with
    /// a run, which holds rows in key order; PostgreSQL would then abort one of the two. A row
    /// is re-checked when it is locked, so a hit that committed since the purge began keeps its
    /// log.
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        // Raw SQL: diesel's DSL takes no locking clause in a subselect.
        diesel::sql_query(
            "DELETE FROM rate_limits WHERE key IN \
             (SELECT key FROM rate_limits WHERE idle_after <= $1 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<diesel::sql_types::Timestamptz, _>(now)
        .execute(&mut conn)
        .await
        .map_err(backend)
    }
}

#[cfg(test)]
mod tests;
