use async_trait::async_trait;
use time::OffsetDateTime;

use crate::SessionKey;

/// What a [`SessionStore`] holds for one session. Only the user id (for the per-user index) and
/// the expiry (for purging) are in clear; everything else is in `sealed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// SHA-256 of the session id.
    pub key: SessionKey,
    /// Owner, for listing and revoking a user's sessions.
    pub user_id: String,
    /// After this instant the record is dead whatever it holds; stores may purge it.
    pub expires_at: OffsetDateTime,
    /// Set when the session rotated away from this record: the key of the record that replaced it.
    /// A retired record is never listed, touched or rotated again; until its `expires_at` (the
    /// grace period) it only leads a request still carrying the old id to the successor, and
    /// removing the successor ends it too. See [`SessionStore::rotate`].
    pub successor: Option<SessionKey>,
    /// [`crate::SessionData`], sealed under the key above.
    pub sealed: Vec<u8>,
}

/// What [`SessionStore::rotate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// This call retired the old record and inserted the successor.
    Won,
    /// Another rotation retired the old record first; here it is, naming that rotation's
    /// successor. Nothing was written.
    Lost(StoredSession),
    /// The old record is gone or belongs to another user (revoked, logged out, expired and
    /// purged). Nothing was written.
    Gone,
}

/// Errors of a [`SessionStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A session with this key exists already.
    #[error("session already exists")]
    Duplicate,
    /// The backend failed; the portal answers 503 and never treats this as "no session".
    #[error("session store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage for sessions. Every method is one atomic operation on the backend.
///
/// Records form chains: rotation retires a record and points it at its successor, and a chain is
/// one session under the ids it has had. `rotate` is the only way to retire a record and `remove`
/// ends a whole chain, so two ids of one session are never both live on their own.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Fails with [`StoreError::Duplicate`] if the key is taken.
    async fn insert(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// The record, expired or not: the manager judges expiry.
    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError>;
    /// Replaces an existing live record of the same user; `session.successor` is `None`. Returns
    /// `false`, and writes nothing, if the record is gone, belongs to another user or has been
    /// retired: a request finishing after a revoke must never bring the session back, nor one
    /// finishing after a rotation make the old id live beside its successor.
    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError>;
    /// Compare-and-swap of a session's id, in one atomic step: if the record under `retired.key`
    /// exists, belongs to `retired.user_id` and is live, inserts `successor` and replaces the old
    /// record with `retired`, whose `successor` is `Some(successor.key)`. So of any number of
    /// requests rotating one record at once exactly one wins, and the others learn its successor
    /// from [`Rotation::Lost`] instead of minting their own. Fails with [`StoreError::Duplicate`],
    /// writing nothing, if `successor.key` is taken.
    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, StoreError>;
    /// Deletes a record and, following `successor`, every record of the same user it was rotated
    /// into, at once: ending a session (logout, revocation) ends it under every id it has had
    /// since. `false` if the record did not exist.
    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError>;
    /// Every record of a user, expired or not, retired or not, in no particular order.
    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError>;
    /// Deletes every record of a user except `keep`, with the records they were rotated into
    /// (except `keep`), as [`SessionStore::remove`] does; returns how many went.
    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError>;
    /// Deletes records whose `expires_at` is at or before `now`, one by one (a retired record
    /// expiring never takes its successor along); returns how many went.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError>;
}
