//! [`AccountStore`] over the `accounts` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_auth::{
    Account, AccountRecord, AccountStore, DisplayName, Email, EmailIndex, SealedEmail,
    SealedFields, StoreError, TokenHash, TwoFactor, UserId,
};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account_cache::AccountCache;
use crate::schema::accounts;
use crate::{checkout, Corrupt, Pools};

/// [`AccountStore`] over the `accounts` table. The unique index on `email_index` settles concurrent
/// registrations of one address, from any number of processes: exactly one insert succeeds and
/// the others get [`StoreError::Duplicate`].
///
/// Built by [`crate::Postgres::cached_accounts`], lookups by id go through a cache kept in step
/// with the table by an [`crate::AccountWatcher`] (see [`crate::account_cache`]).
#[derive(Clone)]
pub struct PgAccounts {
    pool: Pools,
    cache: Option<Arc<AccountCache>>,
}

impl std::fmt::Debug for PgAccounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAccounts").finish_non_exhaustive()
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = accounts, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: Uuid,
    email: Option<String>,
    email_verified: bool,
    password_hash: String,
    display_name: Option<String>,
    is_admin: bool,
    locked: bool,
    created_at: OffsetDateTime,
    password_changed_at: OffsetDateTime,
    totp_secret: Option<Vec<u8>>,
    totp_enabled_at: Option<OffsetDateTime>,
    recovery_codes: Option<Vec<u8>>,
    email_index: Option<Vec<u8>>,
    email_sealed: Option<Vec<u8>>,
    name_sealed: Option<Vec<u8>>,
}

/// What `update` may change: everything but the id and the email (the lookup keys). A `None`
/// is written as NULL (two-factor authentication turned off), not skipped.
#[derive(AsChangeset)]
#[diesel(table_name = accounts, treat_none_as_null = true)]
struct Changes<'a> {
    email_verified: bool,
    password_hash: &'a str,
    email_sealed: &'a [u8],
    name_sealed: &'a [u8],
    is_admin: bool,
    locked: bool,
    created_at: OffsetDateTime,
    password_changed_at: OffsetDateTime,
    totp_secret: Option<&'a [u8]>,
    totp_enabled_at: Option<OffsetDateTime>,
    recovery_codes: Option<Vec<u8>>,
}

impl Row {
    fn new(a: &AccountRecord) -> Self {
        Self {
            id: *a.id.as_uuid(),
            email: None,
            email_verified: a.email_verified,
            password_hash: a.password_hash.clone(),
            display_name: None,
            is_admin: a.is_admin,
            locked: a.locked,
            created_at: a.created_at,
            password_changed_at: a.password_changed_at,
            totp_secret: a.two_factor.as_ref().map(|t| t.sealed_secret.clone()),
            totp_enabled_at: a.two_factor.as_ref().and_then(|t| t.enabled_at),
            recovery_codes: a.two_factor.as_ref().map(recovery_bytes),
            email_index: Some(a.email.index.0.to_vec()),
            email_sealed: Some(a.email.sealed.clone()),
            name_sealed: Some(a.sealed_name.clone()),
        }
    }

    fn two_factor(
        totp_secret: Option<Vec<u8>>,
        enabled_at: Option<OffsetDateTime>,
        codes: Option<Vec<u8>>,
    ) -> Result<Option<TwoFactor>, StoreError> {
        match (totp_secret, codes) {
            (Some(sealed_secret), Some(codes)) if codes.len() % 32 == 0 => Ok(Some(TwoFactor {
                sealed_secret,
                enabled_at,
                recovery_codes: codes
                    .chunks_exact(32)
                    .map(|c| TokenHash(c.try_into().unwrap_or([0; 32])))
                    .collect(),
            })),
            (None, None) => Ok(None),
            _ => Err(corrupt()),
        }
    }

    /// A sealed row; a row in the clear is corrupt here (it is [`Row::into_clear`]'s).
    fn into_record(self) -> Result<AccountRecord, StoreError> {
        let (Some(index), Some(email_sealed), Some(sealed_name)) =
            (self.email_index, self.email_sealed, self.name_sealed)
        else {
            return Err(corrupt());
        };
        Ok(AccountRecord {
            id: UserId::from(self.id),
            email: SealedEmail {
                index: EmailIndex(index.try_into().map_err(|_| corrupt())?),
                sealed: email_sealed,
            },
            sealed_name,
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            is_admin: self.is_admin,
            locked: self.locked,
            created_at: self.created_at,
            password_changed_at: self.password_changed_at,
            two_factor: Self::two_factor(
                self.totp_secret,
                self.totp_enabled_at,
                self.recovery_codes,
            )?,
        })
    }

    /// A row written in the clear by a version from before sealing.
    fn into_clear(self) -> Result<Account, StoreError> {
        let (Some(email), Some(name)) = (self.email, self.display_name) else {
            return Err(corrupt());
        };
        Ok(Account {
            id: UserId::from(self.id),
            email: Email::parse(&email)
                .filter(|e| e.as_str() == email)
                .ok_or_else(corrupt)?,
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            display_name: DisplayName::parse(&name).map_err(|_| corrupt())?,
            is_admin: self.is_admin,
            locked: self.locked,
            created_at: self.created_at,
            password_changed_at: self.password_changed_at,
            two_factor: Self::two_factor(
                self.totp_secret,
                self.totp_enabled_at,
                self.recovery_codes,
            )?,
        })
    }
}

fn corrupt() -> StoreError {
    backend(Corrupt("accounts"))
}

/// The recovery code hashes as one column: 32 bytes each, one after the other.
fn recovery_bytes(t: &TwoFactor) -> Vec<u8> {
    t.recovery_codes.iter().flat_map(|h| h.0).collect()
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl PgAccounts {
    pub(crate) fn new(pool: Pools, cache: Option<Arc<AccountCache>>) -> Self {
        Self { pool, cache }
    }

    async fn conn(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>, StoreError>
    {
        checkout(&self.pool).await.map_err(StoreError::Backend)
    }

    async fn find(
        &self,
        filter: impl FnOnce(accounts::table) -> accounts::BoxedQuery<'static, diesel::pg::Pg>,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let mut conn = self.conn().await?;
        filter(accounts::table)
            .select(Row::as_select())
            .first::<Row>(&mut conn)
            .await
            .optional()
            .map_err(backend)?
            .map(Row::into_record)
            .transpose()
    }
}

#[async_trait]
impl AccountStore for PgAccounts {
    async fn insert(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let row = Row::new(account);
        let mut conn = self.conn().await?;
        match diesel::insert_into(accounts::table)
            .values(&row)
            .execute(&mut conn)
            .await
        {
            Ok(_) => Ok(()),
            // The email's unique index, or the id's primary key.
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, StoreError> {
        let index = email.0.to_vec();
        self.find(|t| t.filter(accounts::email_index.eq(index)).into_boxed())
            .await
    }

    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, StoreError> {
        let ticket = match &self.cache {
            Some(cache) => match cache.get(id) {
                Ok(hit) => return Ok(Some(hit)),
                Err(ticket) => Some((cache, ticket)),
            },
            None => None,
        };
        let uuid = *id.as_uuid();
        let found = self
            .find(|t| t.filter(accounts::id.eq(uuid)).into_boxed())
            .await?;
        if let (Some((cache, ticket)), Some(account)) = (ticket, &found) {
            cache.keep(ticket, account);
        }
        Ok(found)
    }

    async fn update(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let id = *account.id.as_uuid();
        let changes = Changes {
            email_verified: account.email_verified,
            password_hash: &account.password_hash,
            email_sealed: &account.email.sealed,
            name_sealed: &account.sealed_name,
            is_admin: account.is_admin,
            locked: account.locked,
            created_at: account.created_at,
            password_changed_at: account.password_changed_at,
            totp_secret: account.two_factor.as_ref().map(|t| &t.sealed_secret[..]),
            totp_enabled_at: account.two_factor.as_ref().and_then(|t| t.enabled_at),
            recovery_codes: account.two_factor.as_ref().map(recovery_bytes),
        };
        let mut conn = self.conn().await?;
        // The email is part of the match: an update never moves an account to another address.
        let updated = diesel::update(
            accounts::table
                .filter(accounts::id.eq(id))
                .filter(accounts::email_index.eq(&account.email.index.0[..])),
        )
        .set(&changes)
        .execute(&mut conn)
        .await;
        // This process sees its own change at once, whatever the outcome (a timeout may still
        // have committed); other processes hear of it from the trigger.
        if let Some(cache) = &self.cache {
            cache.forget(&account.id);
        }
        let updated = updated.map_err(backend)?;
        if updated == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn remove(&self, id: &UserId) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let removed = diesel::delete(accounts::table.filter(accounts::id.eq(id.as_uuid())))
            .execute(&mut conn)
            .await;
        // As for `update`: this process forgets at once, the others through the trigger.
        if let Some(cache) = &self.cache {
            cache.forget(id);
        }
        Ok(removed.map_err(backend)? > 0)
    }

    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let mut conn = self.conn().await?;
        let mut query = accounts::table
            .filter(accounts::email_index.is_not_null())
            .order(accounts::id)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(Row::as_select())
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(accounts::id.gt(*after.as_uuid()));
        }
        let rows: Vec<Row> = query.load(&mut conn).await.map_err(backend)?;
        rows.into_iter().map(Row::into_record).collect()
    }

    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let target = accounts::table
            .filter(accounts::id.eq(id.as_uuid()))
            .filter(accounts::email_sealed.eq(&old.email))
            .filter(accounts::name_sealed.eq(&old.name))
            .filter(accounts::totp_secret.is_not_distinct_from(old.totp.as_deref()));
        let sealed = (
            accounts::email_sealed.eq(&new.email),
            accounts::name_sealed.eq(&new.name),
        );
        let updated = match &new.totp {
            Some(totp) => {
                diesel::update(target)
                    .set((sealed, accounts::totp_secret.eq(totp)))
                    .execute(&mut conn)
                    .await
            }
            None => diesel::update(target).set(sealed).execute(&mut conn).await,
        };
        if let Some(cache) = &self.cache {
            cache.forget(id);
        }
        Ok(updated.map_err(backend)? == 1)
    }

    async fn clear(&self, limit: usize) -> Result<Vec<Account>, StoreError> {
        let mut conn = self.conn().await?;
        let rows: Vec<Row> = accounts::table
            .filter(accounts::email_index.is_null())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(Row::as_select())
            .load(&mut conn)
            .await
            .map_err(backend)?;
        rows.into_iter().map(Row::into_clear).collect()
    }

    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, StoreError> {
        use diesel::sql_types::{Bool, Bytea};
        #[derive(QueryableByName)]
        struct Same {
            #[diesel(sql_type = Bool)]
            same: bool,
        }
        let mut conn = self.conn().await?;
        // Keep the first check, in one statement; then compare with what is kept.
        diesel::sql_query(
            "INSERT INTO key_checks (name, value) VALUES ('email_index', $1) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind::<Bytea, _>(&check[..])
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        let same: Same = diesel::sql_query(
            "SELECT value = $1 AS same FROM key_checks WHERE name = 'email_index'",
        )
        .bind::<Bytea, _>(&check[..])
        .get_result(&mut conn)
        .await
        .map_err(backend)?;
        Ok(same.same)
    }

    async fn seal_clear(&self, record: &AccountRecord) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let updated = diesel::update(
            accounts::table
                .filter(accounts::id.eq(record.id.as_uuid()))
                .filter(accounts::email_index.is_null()),
        )
        .set((
            accounts::email.eq(None::<String>),
            accounts::display_name.eq(None::<String>),
            accounts::email_index.eq(&record.email.index.0[..]),
            accounts::email_sealed.eq(&record.email.sealed),
            accounts::name_sealed.eq(&record.sealed_name),
        ))
        .execute(&mut conn)
        .await;
        if let Some(cache) = &self.cache {
            cache.forget(&record.id);
        }
        match updated {
            Ok(n) => Ok(n == 1),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(backend(e)),
        }
    }
}
