//! [`SessionStore`] over the `sessions` table.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::pooled_connection::deadpool::Object;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_sessions::{Rotation, SessionKey, SessionStore, StoreError, StoredSession};
use time::OffsetDateTime;

use crate::schema::sessions;
use crate::{bytes32, checkout, Corrupt, Pools};

/// [`SessionStore`] over the `sessions` table, for deployments without Redis: one row per session
/// key, an index on the owner for listing and revoking a user's sessions, and one on the expiry
/// for [`SessionStore::purge_expired`], which the portal runs periodically (rows are not expired
/// by the database). Every method is one statement, or one transaction where it compares and
/// swaps (`rotate`) or follows `successor` pointers (`remove`, `remove_user`).
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
    sealed: Vec<u8>,
    successor: Option<Vec<u8>>,
}

impl Row {
    fn new(s: &StoredSession) -> Self {
        Self {
            key: s.key.as_bytes().to_vec(),
            user_id: s.user_id.as_bytes().to_vec(),
            expires_at: s.expires_at,
            sealed: s.sealed.clone(),
            successor: s.successor.map(|k| k.as_bytes().to_vec()),
        }
    }

    fn into_session(self) -> Result<StoredSession, StoreError> {
        Ok(StoredSession {
            key: SessionKey::from(bytes32(self.key, "sessions").map_err(backend)?),
            user_id: String::from_utf8(self.user_id).map_err(|_| backend(Corrupt("sessions")))?,
            expires_at: self.expires_at,
            successor: self
                .successor
                .map(|k| bytes32(k, "sessions").map(SessionKey::from))
                .transpose()
                .map_err(backend)?,
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

    /// One `UPDATE … WHERE key = $1 AND user_id = $2 AND successor IS NULL`: a row that is gone,
    /// another user's or retired matches nothing and nothing is written.
    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let updated = diesel::update(
            sessions::table
                .filter(sessions::key.eq(&session.key.as_bytes()[..]))
                .filter(sessions::user_id.eq(session.user_id.as_bytes()))
                .filter(sessions::successor.is_null()),
        )
        .set((
            sessions::expires_at.eq(session.expires_at),
            sessions::sealed.eq(&session.sealed),
        ))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(updated == 1)
    }

    /// One transaction: `UPDATE … WHERE key AND user_id AND successor IS NULL` retires the old row
    /// (a racing rotation waits for its row lock, then matches nothing), then the successor is
    /// inserted; a taken successor key rolls the retirement back. A rotation that matched nothing
    /// reads the row afterwards: retired rows never change again, so what it reads is the winner's.
    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, StoreError> {
        let (retired, successor) = (Row::new(retired), Row::new(successor));
        let mut conn = self.conn().await?;
        let won = conn
            .build_transaction()
            .read_committed()
            .run(async |conn| rotate_locked(conn, &retired, &successor).await)
            .await;
        match won {
            Ok(true) => return Ok(Rotation::Won),
            Ok(false) => {}
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                return Err(StoreError::Duplicate)
            }
            Err(e) => return Err(backend(e)),
        }
        let now = sessions::table
            .filter(sessions::key.eq(&retired.key))
            .select(Row::as_select())
            .first::<Row>(&mut conn)
            .await
            .optional()
            .map_err(backend)?;
        match now {
            Some(row) if row.user_id == retired.user_id && row.successor.is_some() => {
                Ok(Rotation::Lost(row.into_session()?))
            }
            _ => Ok(Rotation::Gone),
        }
    }

    /// One transaction that deletes the row and then, statement by statement, the rows it was
    /// rotated into. Each `DELETE` waits for a rotation holding the row's lock and returns the
    /// pointer that rotation wrote, and each statement sees the rows committed before it: a
    /// successor inserted meanwhile is found, and the whole chain goes at one commit.
    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let key = key.as_bytes().to_vec();
        let mut conn = self.conn().await?;
        conn.build_transaction()
            .read_committed()
            .run(async |conn| {
                let first: Option<(Vec<u8>, Option<Vec<u8>>)> =
                    diesel::delete(sessions::table.filter(sessions::key.eq(&key)))
                        .returning((sessions::user_id, sessions::successor))
                        .get_result(conn)
                        .await
                        .optional()?;
                let Some((owner, next)) = first else {
                    return Ok(false);
                };
                remove_successors(conn, next, &owner, None).await?;
                Ok::<_, DieselError>(true)
            })
            .await
            .map_err(backend)
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
        let owner = user_id.as_bytes().to_vec();
        let keep = keep.map(|k| k.as_bytes().to_vec());
        let mut conn = self.conn().await?;
        // One transaction: the first `DELETE` sees the rows committed when it starts, so a
        // rotation committing meanwhile inserts a successor it cannot see; following the
        // pointers the deleted rows return, in later statements, deletes that too.
        conn.build_transaction()
            .read_committed()
            .run(async |conn| {
                let mine = sessions::table.filter(sessions::user_id.eq(&owner));
                let successors: Vec<Option<Vec<u8>>> = match &keep {
                    Some(keep) => {
                        diesel::delete(mine.filter(sessions::key.ne(keep)))
                            .returning(sessions::successor)
                            .get_results(conn)
                            .await?
                    }
                    None => {
                        diesel::delete(mine)
                            .returning(sessions::successor)
                            .get_results(conn)
                            .await?
                    }
                };
                let mut removed = successors.len();
                for next in successors {
                    removed += remove_successors(conn, next, &owner, keep.as_deref()).await?;
                }
                Ok::<_, DieselError>(removed)
            })
            .await
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

/// The body of [`PgSessions::rotate`], inside its transaction: `true` if this call retired the
/// old row and inserted the successor.
async fn rotate_locked(
    conn: &mut AsyncPgConnection,
    retired: &Row,
    successor: &Row,
) -> Result<bool, DieselError> {
    let retired_now = diesel::update(
        sessions::table
            .filter(sessions::key.eq(&retired.key))
            .filter(sessions::user_id.eq(&retired.user_id))
            .filter(sessions::successor.is_null()),
    )
    .set((
        sessions::expires_at.eq(retired.expires_at),
        sessions::successor.eq(&retired.successor),
        sessions::sealed.eq(&retired.sealed),
    ))
    .execute(conn)
    .await?;
    if retired_now == 0 {
        return Ok(false);
    }
    diesel::insert_into(sessions::table)
        .values(successor)
        .execute(conn)
        .await?;
    Ok(true)
}

/// Deletes, statement by statement, the rows of `owner` a deleted row was rotated into, starting
/// at its `successor` and stopping at `keep`; returns how many went.
async fn remove_successors(
    conn: &mut AsyncPgConnection,
    mut next: Option<Vec<u8>>,
    owner: &[u8],
    keep: Option<&[u8]>,
) -> Result<usize, DieselError> {
    let mut removed = 0;
    // Each step deletes a row, so even a cycle in a tampered chain ends.
    while let Some(key) = next.take() {
        if keep == Some(key.as_slice()) {
            break;
        }
        let deleted: Option<Option<Vec<u8>>> = diesel::delete(
            sessions::table
                .filter(sessions::key.eq(&key))
                .filter(sessions::user_id.eq(owner)),
        )
        .returning(sessions::successor)
        .get_result(conn)
        .await
        .optional()?;
        if let Some(after) = deleted {
            removed += 1;
            next = after;
        }
    }
    Ok(removed)
}
