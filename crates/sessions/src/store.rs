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
    /// Set on the old record when a session rotates: it stays valid for the grace period but is not
    /// listed, touched or rotated again.
    pub superseded: bool,
    /// [`crate::SessionData`], sealed under the key above.
    pub sealed: Vec<u8>,
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
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Fails with [`StoreError::Duplicate`] if the key is taken.
    async fn insert(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// The record, expired or not: the manager judges expiry.
    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError>;
    /// Replaces an existing record of the same user. Returns `false`, and writes nothing, if the
    /// record is gone or belongs to another user: a request finishing after a revoke must never
    /// bring the session back.
    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError>;
    /// Deletes one record; `false` if it did not exist.
    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError>;
    /// Every record of a user, expired or not, in no particular order.
    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError>;
    /// Deletes every record of a user except `keep`; returns how many went.
    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError>;
    /// Deletes records whose `expires_at` is at or before `now`; returns how many went.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError>;
}
