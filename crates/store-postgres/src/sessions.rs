//! [`SessionStore`] over the `sessions` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_sessions::{SessionKey, SessionStore, StoreError, StoredSession};
use time::OffsetDateTime;

use crate::schema::sessions;
use crate::{bytes32, checkout, Corrupt, Pools};

/// [`SessionStore`] over the `sessions` table, for deployments without Redis: one row per session
/// key, an index on the owner for listing and revoking a user's sessions, and one on the expiry
/// for [`SessionStore::purge_expired`], which the portal runs periodically (rows are not expired
/// by the database). Every method is one statement.
#[derive(Clone)]
pub struct PgSessions {
    pool: Pools,
}

impl std::fmt::Debug for PgSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSessions").finish_non_exhaustive()
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
struct Row {
    key: Vec<u8>,
    user_id: Vec<u8>,
    expires_at: OffsetDateTime,
    superseded: bool,
    sealed: Vec<u8>,
}

impl Row {
    fn new(s: &StoredSession) -> Self {
        Self {
            key: s.key.as_bytes().to_vec(),
            user_id: s.user_id.as_bytes().to_vec(),
            expires_at: s.expires_at,
            superseded: s.superseded,
            sealed: s.sealed.clone(),
        }
    }

    fn into_session(self) -> Result<StoredSession, StoreError> {
        Ok(StoredSession {
            key: SessionKey::from(bytes32(self.key, "sessions").map_err(backend)?),
            user_id: String::from_utf8(self.user_id).map_err(|_| backend(Corrupt("sessions")))?,
            expires_at: self.expires_at,
            superseded: self.superseded,
            sealed: self.sealed,
        })
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl PgSessions {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }

    async fn conn(&self) -> Result<Object<AsyncPgConnection>, StoreError> {
        checkout(&self.pool).await.map_err(StoreError::Backend)
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn insert(&self, session: &StoredSession) -> Result<(), StoreError> {
        let row = Row::new(session);
        let mut conn = self.conn().await?;
        match diesel::insert_into(sessions::table)
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

    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        let mut conn = self.conn().await?;
        sessions::table
            .filter(sessions::key.eq(&key.as_bytes()[..]))
            .select(Row::as_select())
            .first::<Row>(&mut conn)
            .await
            .optional()
            .map_err(backend)?
            .map(Row::into_session)
            .transpose()
    }

    /// One `UPDATE … WHERE key = $1 AND user_id = $2`: a row that is gone, or another user's,
    /// matches nothing and nothing is written.
    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let updated = diesel::update(
            sessions::table
                .filter(sessions::key.eq(&session.key.as_bytes()[..]))
                .filter(sessions::user_id.eq(session.user_id.as_bytes())),
        )
        .set((
            sessions::expires_at.eq(session.expires_at),
            sessions::superseded.eq(session.superseded),
            sessions::sealed.eq(&session.sealed),
        ))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(updated == 1)
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let removed = diesel::delete(sessions::table.filter(sessions::key.eq(&key.as_bytes()[..])))
            .execute(&mut conn)
            .await
            .map_err(backend)?;
        Ok(removed == 1)
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError> {
        let mut conn = self.conn().await?;
        sessions::table
            .filter(sessions::user_id.eq(user_id.as_bytes()))
            .select(Row::as_select())
            .load::<Row>(&mut conn)
            .await
            .map_err(backend)?
            .into_iter()
            .map(Row::into_session)
            .collect()
    }

    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        let mine = sessions::table.filter(sessions::user_id.eq(user_id.as_bytes()));
        match keep {
            Some(keep) => {
                diesel::delete(mine.filter(sessions::key.ne(&keep.as_bytes()[..])))
                    .execute(&mut conn)
                    .await
            }
            None => diesel::delete(mine).execute(&mut conn).await,
        }
        .map_err(backend)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut conn = self.conn().await?;
        diesel::delete(sessions::table.filter(sessions::expires_at.le(now)))
            .execute(&mut conn)
            .await
            .map_err(backend)
    }
}
