//! [`TokenStore`] over the `tokens` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_auth::{
    EmailIndex, Registration, SealedEmail, StoreError, TokenHash, TokenPurpose, TokenRecord,
    TokenStore, UserId,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::tokens;
use crate::{checkout, Corrupt, Pools};

/// [`TokenStore`] over the `tokens` table, one row per token hash.
///
/// `issue` is one `INSERT … ON CONFLICT (purpose, subject) WHERE used_at IS NULL DO UPDATE`: the
/// partial unique index `tokens_live_subject_key` admits one unused token per purpose and subject,
/// and a new token takes over the row of the older one (its hash is replaced), so the older token
/// is dead in the same statement, whichever processes race.
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

fn purpose_name(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::EmailVerification => "email_verification",
        TokenPurpose::PasswordReset => "password_reset",
        TokenPurpose::RecoveryCode => "recovery_code",
    }
}

/// A token row's user id, expiry, and registration columns.
type Row = (
    Uuid,
    OffsetDateTime,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
);

/// The columns of a [`Row`].
const COLUMNS: (
    tokens::user_id,
    tokens::expires_at,
    tokens::email_index,
    tokens::email_sealed,
    tokens::password_hash,
) = (
    tokens::user_id,
    tokens::expires_at,
    tokens::email_index,
    tokens::email_sealed,
    tokens::password_hash,
);

fn record(hash: &TokenHash, purpose: TokenPurpose, row: Row) -> Result<TokenRecord, StoreError> {
    let (user_id, expires_at, index, sealed, password_hash) = row;
    let registration = match (index, sealed, password_hash) {
        (Some(index), Some(sealed), Some(password_hash)) => Some(Registration {
            email: SealedEmail {
                index: EmailIndex(index.try_into().map_err(|_| backend(Corrupt("tokens")))?),
                sealed,
            },
            password_hash,
        }),
        _ => None,
    };
    Ok(TokenRecord {
        hash: *hash,
        purpose,
        user_id: UserId::from(user_id),
        expires_at,
        registration,
    })
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
    async fn issue(&self, record: &TokenRecord) -> Result<(), StoreError> {
        use diesel::sql_types::{Bytea, Nullable, Text, Timestamptz, Uuid as SqlUuid};
        let registration = record.registration.as_ref();
        let mut conn = self.conn().await?;
        // diesel's upsert cannot name a partial index's predicate, which the conflict target
        // needs in order to match `tokens_live_subject_key`: hence plain SQL, every value bound.
        match diesel::sql_query(
            "INSERT INTO tokens (hash, purpose, user_id, expires_at, subject, email_index, \
             email_sealed, password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (purpose, subject) WHERE used_at IS NULL DO UPDATE SET \
             hash = EXCLUDED.hash, user_id = EXCLUDED.user_id, expires_at = EXCLUDED.expires_at, \
             email_index = EXCLUDED.email_index, email_sealed = EXCLUDED.email_sealed, \
             password_hash = EXCLUDED.password_hash",
        )
        .bind::<Bytea, _>(&record.hash.0[..])
        .bind::<Text, _>(purpose_name(record.purpose))
        .bind::<SqlUuid, _>(*record.user_id.as_uuid())
        .bind::<Timestamptz, _>(record.expires_at)
        .bind::<Text, _>(record.subject())
        .bind::<Nullable<Bytea>, _>(registration.map(|r| &r.email.index.0[..]))
        .bind::<Nullable<Bytea>, _>(registration.map(|r| &r.email.sealed[..]))
        .bind::<Nullable<Text>, _>(registration.map(|r| r.password_hash.as_str()))
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
        let claimed: Option<Row> = diesel::update(
            tokens::table
                .filter(tokens::hash.eq(&hash.0[..]))
                .filter(tokens::purpose.eq(purpose_name(purpose)))
                .filter(tokens::used_at.is_null()),
        )
        .set(tokens::used_at.eq(now))
        .returning(COLUMNS)
        .get_result(&mut conn)
        .await
        .optional()
        .map_err(backend)?;
        match claimed {
            Some(row) if row.1 > now => Ok(Some(record(hash, purpose, row)?)),
            _ => Ok(None),
        }
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let row: Option<Row> = tokens::table
            .filter(tokens::hash.eq(&hash.0[..]))
            .filter(tokens::purpose.eq(purpose_name(purpose)))
            .filter(tokens::used_at.is_null())
            .filter(tokens::expires_at.gt(now))
            .select(COLUMNS)
            .first(&mut conn)
            .await
            .optional()
            .map_err(backend)?;
        row.map(|row| record(hash, purpose, row)).transpose()
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

    async fn remove_user(&self, user: &UserId) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(tokens::table.filter(tokens::user_id.eq(user.as_uuid())))
            .execute(&mut conn)
            .await
            .map_err(backend)
    }
}
