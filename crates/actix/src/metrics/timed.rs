//! Store latency and errors by adapter: decorators of the hot ports that time every call into
//! [`Metrics::store_series`]. The portal wraps each store it opens when metrics are on; the
//! decorated store behaves exactly as the inner one (same results, same errors).

use async_trait::async_trait;
use phaze_auth::{
    Account, AccountRecord, AccountStore, EmailIndex, SealedFields, StoreError as AccountError,
    UserId,
};
use phaze_ratelimit::{Decision, LimitKey, RateLimitStore, Step, StoreError as LimitError, Window};
use phaze_sessions::{
    Rotation, SessionKey, SessionStore, StoreError as SessionError, StoredSession,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

use super::{Metrics, StoreSeries};

/// Every operation a decorator times, in the order of [`Op`].
const OPERATIONS: [&str; 18] = [
    "sessions.insert",
    "sessions.get",
    "sessions.update",
    "sessions.rotate",
    "sessions.remove",
    "sessions.list_user",
    "sessions.remove_user",
    "sessions.purge_expired",
    "ratelimit.hit",
    "ratelimit.peek",
    "ratelimit.reset",
    "ratelimit.run",
    "ratelimit.purge_idle",
    "accounts.insert",
    "accounts.by_email",
    "accounts.by_id",
    "accounts.update",
    "accounts.remove",
];

/// An index into [`OPERATIONS`].
#[derive(Clone, Copy)]
enum Op {
    SessionsInsert,
    SessionsGet,
    SessionsUpdate,
    SessionsRotate,
    SessionsRemove,
    SessionsListUser,
    SessionsRemoveUser,
    SessionsPurgeExpired,
    LimitsHit,
    LimitsPeek,
    LimitsReset,
    LimitsRun,
    LimitsPurgeIdle,
    AccountsInsert,
    AccountsByEmail,
    AccountsById,
    AccountsUpdate,
    AccountsRemove,
}

/// `inner`, timed under `adapter` (`memory`, `fs`, `postgres`, `redis`). The series are resolved
/// once, here, so a call costs two clock reads and one histogram update.
pub struct Timed<S: ?Sized> {
    inner: Arc<S>,
    series: Box<[StoreSeries]>,
}

impl<S: ?Sized> Timed<S> {
    /// Times every call of `inner` into `metrics` as `adapter`.
    pub fn new(inner: Arc<S>, adapter: &'static str, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            series: OPERATIONS
                .iter()
                .map(|op| metrics.store_series(adapter, op))
                .collect(),
        }
    }

    async fn time<T, E>(&self, op: Op, call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        if let Some(series) = self.series.get(op as usize) {
            series.observe(started.elapsed(), result.is_err());
        }
        result
    }
}

#[async_trait]
impl SessionStore for Timed<dyn SessionStore> {
    async fn insert(&self, session: &StoredSession) -> Result<(), SessionError> {
        self.time(Op::SessionsInsert, self.inner.insert(session))
            .await
    }
    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, SessionError> {
        self.time(Op::SessionsGet, self.inner.get(key)).await
    }
    async fn update(&self, session: &StoredSession) -> Result<bool, SessionError> {
        self.time(Op::SessionsUpdate, self.inner.update(session))
            .await
    }
    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, SessionError> {
        self.time(Op::SessionsRotate, self.inner.rotate(retired, successor))
            .await
    }
    async fn remove(&self, key: &SessionKey) -> Result<bool, SessionError> {
        self.time(Op::SessionsRemove, self.inner.remove(key)).await
    }
    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, SessionError> {
        self.time(Op::SessionsListUser, self.inner.list_user(user_id))
            .await
    }
    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, SessionError> {
        self.time(
            Op::SessionsRemoveUser,
            self.inner.remove_user(user_id, keep),
        )
        .await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, SessionError> {
        self.time(Op::SessionsPurgeExpired, self.inner.purge_expired(now))
            .await
    }
}

#[async_trait]
impl RateLimitStore for Timed<dyn RateLimitStore> {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        self.time(Op::LimitsHit, self.inner.hit(key, window, now))
            .await
    }
    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        self.time(Op::LimitsPeek, self.inner.peek(key, window, now))
            .await
    }
    async fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
        self.time(Op::LimitsReset, self.inner.reset(key)).await
    }
    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, LimitError> {
        self.time(Op::LimitsRun, self.inner.run(steps, now)).await
    }
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, LimitError> {
        self.time(Op::LimitsPurgeIdle, self.inner.purge_idle(now))
            .await
    }
}

#[async_trait]
impl AccountStore for Timed<dyn AccountStore> {
    async fn insert(&self, account: &AccountRecord) -> Result<(), AccountError> {
        self.time(Op::AccountsInsert, self.inner.insert(account))
            .await
    }
    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, AccountError> {
        self.time(Op::AccountsByEmail, self.inner.by_email(email))
            .await
    }
    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, AccountError> {
        self.time(Op::AccountsById, self.inner.by_id(id)).await
    }
    async fn update(&self, account: &AccountRecord) -> Result<(), AccountError> {
        self.time(Op::AccountsUpdate, self.inner.update(account))
            .await
    }
    async fn remove(&self, id: &UserId) -> Result<bool, AccountError> {
        self.time(Op::AccountsRemove, self.inner.remove(id)).await
    }
    // Maintenance (key rotation, the clear-data migration): not timed.
    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, AccountError> {
        self.inner.page(after, limit).await
    }
    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, AccountError> {
        self.inner.reseal(id, old, new).await
    }
    async fn clear(&self, limit: usize) -> Result<Vec<Account>, AccountError> {
        self.inner.clear(limit).await
    }
    async fn seal_clear(&self, record: &AccountRecord) -> Result<bool, AccountError> {
        self.inner.seal_clear(record).await
    }
    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, AccountError> {
        self.inner.check_index_key(check).await
    }
}
