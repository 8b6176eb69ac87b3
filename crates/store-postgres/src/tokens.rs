//! [`TokenStore`] over the `tokens` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_auth::{StoreError, TokenHash, TokenPurpose, TokenRecord, TokenStore, UserId};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::tokens;
use crate::{checkout, Pools};

/// [`TokenStore`] over the `tokens` table, one row per token hash.
///
/// `consume` is one `UPDATE … SET used_at = now WHERE hash = $1 AND purpose = $2 AND used_at IS
/// NULL RETURNING …`: PostgreSQL's row lock lets exactly one of any number of concurrent
/// consumers, in any process, match the row. A token presented after its expiry is marked used as
/// well (and refused), so it is gone afterwards, as the port asks. Used and expired rows stay until
/// [`TokenStore::purge_expired`] deletes them; run it now and then.
#[derive(Clone)]
pub struct PgTokens {
    pool: Pools,
}

impl std::fmt::Debug for PgTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTokens").finish_non_exhaustive()
    }
}

#[derive(Insertable)]
#[diesel(table_name = tokens)]
struct NewRow<'a> {
    hash: &'a [u8],
    purpose: &'static str,
    user_id: Uuid,
    expires_at: OffsetDateTime,
}

fn purpose_name(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::EmailVerification => "email_verification",
        TokenPurpose::PasswordReset => "password_reset",
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl PgTokens {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        checkout(&self.pool).await.map_err(StoreError::Backend)
    }
}

#[async_trait]
impl TokenStore for PgTokens {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let row = NewRow {
            hash: &record.hash.0,
            purpose: purpose_name(record.purpose),
            user_id: *record.user_id.as_uuid(),
            expires_at: record.expires_at,
        };
        let mut conn = self.conn().await?;
        match diesel::insert_into(tokens::table)
            .values(&row)
            .execute(&mut conn)
            .await
        {
            Ok(_) => Ok(()),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let claimed: Option<(Uuid, OffsetDateTime)> = diesel::update(
            tokens::table
                .filter(tokens::hash.eq(&hash.0[..]))
                .filter(tokens::purpose.eq(purpose_name(purpose)))
                .filter(tokens::used_at.is_null()),
        )
        .set(tokens::used_at.eq(now))
        .returning((tokens::user_id, tokens::expires_at))
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(backend)?;
        let Some((user_id, expires_at)) = claimed else {
            return Ok(None);
        };
        if expires_at <= now {
            return Ok(None);
        }
        let user_id = UserId::from(user_id);
        Ok(Some(TokenRecord {
            hash: *hash,
            purpose,
            user_id,
            expires_at,
        }))
    }

    /// Deletes expired tokens and used ones (which can never be consumed again).
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(
            tokens::table.filter(tokens::expires_at.le(now).or(tokens::used_at.is_not_null())),
        )
        .execute(&mut conn)
        .await
        .map_err(backend)
    }
}
