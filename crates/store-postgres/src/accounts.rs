//! [`AccountStore`] over the `accounts` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_auth::{
    Account, AccountStore, DisplayName, Email, StoreError, TokenHash, TwoFactor, UserId,
};
use std::sync::Arc;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::account_cache::AccountCache;
use crate::schema::accounts;
use crate::{checkout, Corrupt, Pools};

/// [`AccountStore`] over the `accounts` table. The unique index on `email` settles concurrent
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
    email: String,
    email_verified: bool,
    password_hash: String,
    display_name: String,
    is_admin: bool,
    locked: bool,
    created_at: OffsetDateTime,
    password_changed_at: OffsetDateTime,
    totp_secret: Option<Vec<u8>>,
    totp_enabled_at: Option<OffsetDateTime>,
    recovery_codes: Option<Vec<u8>>,
}

/// What `update` may change: everything but the id and the email (the lookup keys). A `None`
/// is written as NULL (two-factor authentication turned off), not skipped.
#[derive(AsChangeset)]
#[diesel(table_name = accounts, treat_none_as_null = true)]
struct Changes<'a> {
    email_verified: bool,
    password_hash: &'a str,
    display_name: &'a str,
    is_admin: bool,
    locked: bool,
    created_at: OffsetDateTime,
    password_changed_at: OffsetDateTime,
    totp_secret: Option<&'a [u8]>,
    totp_enabled_at: Option<OffsetDateTime>,
    recovery_codes: Option<Vec<u8>>,
}

impl Row {
    fn new(a: &Account) -> Self {
        Self {
            id: *a.id.as_uuid(),
            email: a.email.as_str().to_owned(),
            email_verified: a.email_verified,
            password_hash: a.password_hash.clone(),
            display_name: a.display_name.as_str().to_owned(),
            is_admin: a.is_admin,
            locked: a.locked,
            created_at: a.created_at,
            password_changed_at: a.password_changed_at,
            totp_secret: a.two_factor.as_ref().map(|t| t.sealed_secret.clone()),
            totp_enabled_at: a.two_factor.as_ref().and_then(|t| t.enabled_at),
            recovery_codes: a.two_factor.as_ref().map(recovery_bytes),
        }
    }

    fn into_account(self) -> Result<Account, StoreError> {
        let corrupt = || backend(Corrupt("accounts"));
        Ok(Account {
            id: UserId::from(self.id),
            email: Email::parse(&self.email)
                .filter(|e| e.as_str() == self.email)
                .ok_or_else(corrupt)?,
            email_verified: self.email_verified,
            password_hash: self.password_hash,
            display_name: DisplayName::parse(&self.display_name).map_err(|_| corrupt())?,
            is_admin: self.is_admin,
            locked: self.locked,
            created_at: self.created_at,
            password_changed_at: self.password_changed_at,
            two_factor: match (self.totp_secret, self.recovery_codes) {
                (Some(sealed_secret), Some(codes)) if codes.len() % 32 == 0 => Some(TwoFactor {
                    sealed_secret,
                    enabled_at: self.totp_enabled_at,
                    recovery_codes: codes
                        .chunks_exact(32)
                        .map(|c| TokenHash(c.try_into().unwrap_or([0; 32])))
                        .collect(),
                }),
                (None, None) => None,
                _ => return Err(corrupt()),
            },
        })
    }
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
    ) -> Result<Option<Account>, StoreError> {
        let mut conn = self.conn().await?;
        filter(accounts::table)
            .select(Row::as_select())
            .first::<Row>(&mut conn)
            .await
            .optional()
            .map_err(backend)?
            .map(Row::into_account)
            .transpose()
    }
}

#[async_trait]
impl AccountStore for PgAccounts {
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
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

    async fn by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let email = email.as_str().to_owned();
        self.find(|t| t.filter(accounts::email.eq(email)).into_boxed())
            .await
    }

    async fn by_id(&self, id: &UserId) -> Result<Option<Account>, StoreError> {
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

    async fn update(&self, account: &Account) -> Result<(), StoreError> {
        let id = *account.id.as_uuid();
        let changes = Changes {
            email_verified: account.email_verified,
            password_hash: &account.password_hash,
            display_name: account.display_name.as_str(),
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
                .filter(accounts::email.eq(account.email.as_str())),
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
}
