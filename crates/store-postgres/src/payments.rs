//! The payments ports over the `payment_events` and `subscriptions` tables.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sql_types::{Bool, Nullable, Text, Timestamptz};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_payments::{
    Claim, ClaimToken, ProcessedEvents, Stamp, Status, StoreError, SubscriptionRecord,
    Subscriptions, UserId,
};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::schema::{payment_events, subscriptions};
use crate::{checkout, Pools};

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(e)
}

async fn conn(pool: &Pools) -> Result<Object<AsyncPgConnection>, StoreError> {
    checkout(pool).await.map_err(StoreError::Backend)
}

/// [`ProcessedEvents`] over `payment_events`.
///
/// `claim` is one statement: an `INSERT … ON CONFLICT (id) DO UPDATE … WHERE applied_at IS NULL
/// AND claimed_until <= now` that inserts a new id or takes over a lapsed claim (PostgreSQL's row
/// lock lets one of any number of concurrent claimers through), offered only ids that are neither
/// applied nor held in the statement's snapshot, with the row as it stood before in the same round
/// trip, to tell "applied" from "held". A duplicate delivery costs that one round trip, and
/// writes and locks nothing.
#[derive(Clone)]
pub struct PgProcessedEvents {
    pool: Pools,
}

impl std::fmt::Debug for PgProcessedEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgProcessedEvents").finish_non_exhaustive()
    }
}

impl PgProcessedEvents {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct ClaimRow {
    #[diesel(sql_type = Bool)]
    won: bool,
    #[diesel(sql_type = Nullable<Bool>)]
    applied: Option<bool>,
}

#[async_trait]
impl ProcessedEvents for PgProcessedEvents {
    async fn claim(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let mut conn = conn(&self.pool).await?;
        // The sub-selects read the statement's snapshot, from before the insert. An id applied
        // or held by then is not even offered to the INSERT, so a duplicate (the hot path) writes
        // nothing and locks nothing: an `ON CONFLICT DO UPDATE` locks the conflicting row even
        // when its `WHERE` is false, and 64 concurrent duplicates of one id then queued behind
        // each other's commits (3,000/s). An id that appeared after the snapshot meets the
        // `ON CONFLICT` clause, which decides on the row's latest version; it answers "held"
        // unless taken (a retry learns the rest).
        let row: ClaimRow = diesel::sql_query(
            "WITH taken AS ( \
               INSERT INTO payment_events (id, claim_token, claimed_until) \
               SELECT $1, $2, $3 WHERE NOT EXISTS ( \
                 SELECT 1 FROM payment_events \
                 WHERE id = $1 AND (applied_at IS NOT NULL OR claimed_until > $4)) \
               ON CONFLICT (id) DO UPDATE SET claim_token = EXCLUDED.claim_token, \
                 claimed_until = EXCLUDED.claimed_until \
               WHERE payment_events.applied_at IS NULL AND payment_events.claimed_until <= $4 \
               RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM taken) AS won, \
               (SELECT applied_at IS NOT NULL FROM payment_events WHERE id = $1) AS applied",
        )
        .bind::<Text, _>(event)
        .bind::<Text, _>(token.as_str())
        .bind::<Timestamptz, _>(now + lease)
        .bind::<Timestamptz, _>(now)
        .get_result(&mut conn)
        .await
        .map_err(backend)?;
        Ok(match row {
            ClaimRow { won: true, .. } => Claim::Won,
            ClaimRow {
                applied: Some(true),
                ..
            } => Claim::Applied,
            _ => Claim::Held,
        })
    }

    async fn mark_applied(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let n = diesel::update(
            payment_events::table
                .filter(payment_events::id.eq(event))
                .filter(payment_events::claim_token.eq(token.as_str()))
                .filter(payment_events::applied_at.is_null()),
        )
        .set((
            payment_events::applied_at.eq(Some(now)),
            payment_events::claim_token.eq(None::<String>),
            payment_events::claimed_until.eq(None::<OffsetDateTime>),
        ))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(n == 1)
    }

    async fn release(&self, event: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let mut conn = conn(&self.pool).await?;
        diesel::delete(
            payment_events::table
                .filter(payment_events::id.eq(event))
                .filter(payment_events::claim_token.eq(token.as_str()))
                .filter(payment_events::applied_at.is_null()),
        )
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let n = diesel::delete(
            payment_events::table.filter(
                payment_events::applied_at
                    .lt(before)
                    .or(payment_events::claimed_until.lt(before)),
            ),
        )
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(n as u64)
    }
}

/// [`Subscriptions`] over `subscriptions`: `put` is an `INSERT … ON CONFLICT DO NOTHING` for
/// version 0 and an `UPDATE … WHERE version = expected` otherwise, one statement either way.
#[derive(Clone)]
pub struct PgSubscriptions {
    pool: Pools,
}

impl std::fmt::Debug for PgSubscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSubscriptions").finish_non_exhaustive()
    }
}

impl PgSubscriptions {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }
}

type Row = (
    Uuid,
    i64,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn status_of(s: &str) -> Result<Status, StoreError> {
    Ok(match s {
        "none" => Status::None,
        "active" => Status::Active,
        "past_due" => Status::PastDue,
        "canceled" => Status::Canceled,
        _ => return Err(StoreError::Corrupt),
    })
}

fn version_of(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt)
}

#[async_trait]
impl Subscriptions for PgSubscriptions {
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let row: Option<Row> = subscriptions::table
            .filter(subscriptions::user_id.eq(user.as_uuid()))
            .select((
                subscriptions::user_id,
                subscriptions::version,
                subscriptions::customer,
                subscriptions::subscription,
                subscriptions::status,
                subscriptions::price,
                subscriptions::current_period_end,
                subscriptions::last_event_created,
                subscriptions::last_event_id,
            ))
            .first(&mut conn)
            .await
            .optional()
            .map_err(backend)?;
        let Some((id, version, customer, subscription, status, price, end, created, event)) = row
        else {
            return Ok(None);
        };
        let record = SubscriptionRecord {
            user: UserId::from(id),
            customer,
            subscription,
            status: status_of(&status)?,
            price,
            current_period_end: end,
            last_event: match (created, event) {
                (Some(created), Some(event)) => Some(Stamp { created, event }),
                (None, None) => None,
                _ => return Err(StoreError::Corrupt),
            },
        };
        let version = u64::try_from(version).map_err(|_| StoreError::Corrupt)?;
        Ok(Some((record, version)))
    }

    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let id: Option<Uuid> = subscriptions::table
            .filter(subscriptions::customer.eq(customer))
            .select(subscriptions::user_id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(backend)?;
        Ok(id.map(UserId::from))
    }

    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let next = version_of(expected + 1)?;
        let values = (
            subscriptions::customer.eq(record.customer.as_deref()),
            subscriptions::subscription.eq(record.subscription.as_deref()),
            subscriptions::status.eq(record.status.as_str()),
            subscriptions::price.eq(record.price.as_deref()),
            subscriptions::current_period_end.eq(record.current_period_end),
            subscriptions::last_event_created.eq(record.last_event.as_ref().map(|s| s.created)),
            subscriptions::last_event_id.eq(record.last_event.as_ref().map(|s| s.event.as_str())),
            subscriptions::version.eq(next),
        );
        let written = if expected == 0 {
            diesel::insert_into(subscriptions::table)
                .values((subscriptions::user_id.eq(record.user.as_uuid()), values))
                .on_conflict(subscriptions::user_id)
                .do_nothing()
                .execute(&mut conn)
                .await
        } else {
            diesel::update(
                subscriptions::table
                    .filter(subscriptions::user_id.eq(record.user.as_uuid()))
                    .filter(subscriptions::version.eq(version_of(expected)?)),
            )
            .set(values)
            .execute(&mut conn)
            .await
        };
        match written {
            Ok(n) => Ok(n == 1),
            // A customer linked to another account: the records disagree with Stripe's.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                Err(StoreError::Backend(info.message().to_owned().into()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn remove(&self, user: &UserId) -> Result<bool, StoreError> {
        let mut conn = conn(&self.pool).await?;
        let removed =
            diesel::delete(subscriptions::table.filter(subscriptions::user_id.eq(user.as_uuid())))
                .execute(&mut conn)
                .await
                .map_err(backend)?;
        Ok(removed > 0)
    }
}
