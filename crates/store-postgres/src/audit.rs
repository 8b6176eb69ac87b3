//! [`AuditStore`] over `audit_log`.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use phaze_audit::{AuditEntry, AuditError, AuditFilter, AuditStore};
use phaze_ids::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::audit_log;
use crate::{checkout, Corrupt, Pools};

/// First key of the advisory lock an append holds ("PHZA"); the second is 0.
const LOCK_SPACE: i32 = 0x5048_5a41;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log, check_for_backend(diesel::pg::Pg))]
struct Row {
    seq: i64,
    at: OffsetDateTime,
    actor: Option<Uuid>,
    action: String,
    subject: Option<Uuid>,
    client: Option<String>,
    detail: String,
    prev: String,
    mac: String,
}

impl Row {
    fn new(e: &AuditEntry) -> Result<Self, AuditError> {
        Ok(Self {
            seq: i64::try_from(e.seq).map_err(|e| AuditError::Store(Box::new(e)))?,
            at: e.at,
            actor: e.actor.map(|a| *a.as_uuid()),
            action: e.action.clone(),
            subject: e.subject.map(|s| *s.as_uuid()),
            client: e.client.clone(),
            detail: e.detail.clone(),
            prev: e.prev.clone(),
            mac: e.mac.clone(),
        })
    }

    fn into_entry(self) -> Result<AuditEntry, AuditError> {
        Ok(AuditEntry {
            seq: u64::try_from(self.seq)
                .map_err(|_| AuditError::Store(Box::new(Corrupt("audit_log"))))?,
            at: self.at,
            actor: self.actor.map(UserId::from),
            action: self.action,
            subject: self.subject.map(UserId::from),
            client: self.client,
            detail: self.detail,
            prev: self.prev,
            mac: self.mac,
        })
    }
}

fn failed(e: impl std::error::Error + Send + Sync + 'static) -> AuditError {
    AuditError::Store(Box::new(e))
}

/// [`AuditStore`] over the `audit_log` table.
#[derive(Clone)]
pub struct PgAudit {
    pool: Pools,
}

impl std::fmt::Debug for PgAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAudit").finish_non_exhaustive()
    }
}

impl PgAudit {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl AuditStore for PgAudit {
    async fn append(
        &self,
        next: &(dyn for<'h> Fn(Option<&'h AuditEntry>) -> AuditEntry + Send + Sync),
    ) -> Result<AuditEntry, AuditError> {
        let mut conn = checkout(&self.pool).await.map_err(AuditError::Store)?;
        let built = conn
            .build_transaction()
            .read_committed()
            .run(async |conn| {
                diesel::sql_query("SELECT pg_advisory_xact_lock($1, 0)")
                    .bind::<diesel::sql_types::Integer, _>(LOCK_SPACE)
                    .execute(conn)
                    .await?;
                let last: Option<Row> = audit_log::table
                    .order(audit_log::seq.desc())
                    .select(Row::as_select())
                    .first(conn)
                    .await
                    .optional()?;
                let last = match last.map(Row::into_entry).transpose() {
                    Ok(last) => last,
                    Err(e) => return Ok(Err(e)),
                };
                let entry = next(last.as_ref());
                let row = match Row::new(&entry) {
                    Ok(row) => row,
                    Err(e) => return Ok(Err(e)),
                };
                diesel::insert_into(audit_log::table)
                    .values(&row)
                    .execute(conn)
                    .await?;
                Ok::<_, DieselError>(Ok(entry))
            })
            .await;
        built.map_err(failed)?
    }

    async fn range(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let mut conn = checkout(&self.pool).await.map_err(AuditError::Store)?;
        audit_log::table
            .filter(audit_log::seq.ge(i64::try_from(from).unwrap_or(i64::MAX)))
            .order(audit_log::seq.asc())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(Row::as_select())
            .load(&mut conn)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Row::into_entry)
            .collect()
    }

    async fn purge_through(&self, through: u64) -> Result<usize, AuditError> {
        let mut conn = checkout(&self.pool).await.map_err(AuditError::Store)?;
        diesel::delete(
            audit_log::table.filter(audit_log::seq.le(i64::try_from(through).unwrap_or(i64::MAX))),
        )
        .execute(&mut conn)
        .await
        .map_err(failed)
    }

    async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let mut conn = checkout(&self.pool).await.map_err(AuditError::Store)?;
        let mut query = audit_log::table
            .order(audit_log::seq.desc())
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(Row::as_select())
            .into_boxed();
        if let Some(before) = before {
            query = query.filter(audit_log::seq.lt(i64::try_from(before).unwrap_or(i64::MAX)));
        }
        if let Some(user) = filter.user {
            let user = *user.as_uuid();
            query = query.filter(audit_log::actor.eq(user).or(audit_log::subject.eq(user)));
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_log::action.eq(action.clone()));
        }
        query
            .load(&mut conn)
            .await
            .map_err(failed)?
            .into_iter()
            .map(Row::into_entry)
            .collect()
    }
}
