//! Store latency and errors by adapter: decorators of the hot ports that time every call into
//! [`Metrics::observe_store`]. The portal wraps each store it opens when metrics are on; the
//! decorated store behaves exactly as the inner one (same results, same errors).

use async_trait::async_trait;
use phaze_auth::{Account, AccountStore, Email, StoreError as AccountError, UserId};
use phaze_ratelimit::{Decision, LimitKey, RateLimitStore, Step, StoreError as LimitError, Window};
use phaze_sessions::{
    Rotation, SessionKey, SessionStore, StoreError as SessionError, StoredSession,
};
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use time::OffsetDateTime;

use super::Metrics;

/// `inner`, timed under `adapter` (`memory`, `fs`, `postgres`, `redis`).
pub struct Timed<S: ?Sized> {
    inner: Arc<S>,
    adapter: &'static str,
    metrics: Arc<Metrics>,
}

impl<S: ?Sized> Timed<S> {
    /// Times every call of `inner` into `metrics` as `adapter`.
    pub fn new(inner: Arc<S>, adapter: &'static str, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            adapter,
            metrics,
        }
    }

    async fn time<T, E>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = call.await;
        self.metrics
            .observe_store(self.adapter, operation, started.elapsed(), result.is_err());
        result
    }
}

#[async_trait]
impl SessionStore for Timed<dyn SessionStore> {
    async fn insert(&self, session: &StoredSession) -> Result<(), SessionError> {
        self.time("sessions.insert", self.inner.insert(session))
            .await
    }
    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, SessionError> {
        self.time("sessions.get", self.inner.get(key)).await
    }
    async fn update(&self, session: &StoredSession) -> Result<bool, SessionError> {
        self.time("sessions.update", self.inner.update(session))
            .await
    }
    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, SessionError> {
        self.time("sessions.rotate", self.inner.rotate(retired, successor))
            .await
    }
    async fn remove(&self, key: &SessionKey) -> Result<bool, SessionError> {
        self.time("sessions.remove", self.inner.remove(key)).await
    }
    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, SessionError> {
        self.time("sessions.list_user", self.inner.list_user(user_id))
            .await
    }
    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, SessionError> {
        self.time(
            "sessions.remove_user",
            self.inner.remove_user(user_id, keep),
        )
        .await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, SessionError> {
        self.time("sessions.purge_expired", self.inner.purge_expired(now))
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
        self.time("ratelimit.hit", self.inner.hit(key, window, now))
            .await
    }
    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        self.time("ratelimit.peek", self.inner.peek(key, window, now))
            .await
    }
    async fn reset(&self, key: &LimitKey) -> Result<(), LimitError> {
        self.time("ratelimit.reset", self.inner.reset(key)).await
    }
    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, LimitError> {
        self.time("ratelimit.run", self.inner.run(steps, now)).await
    }
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, LimitError> {
        self.time("ratelimit.purge_idle", self.inner.purge_idle(now))
            .await
    }
}

#[async_trait]
impl AccountStore for Timed<dyn AccountStore> {
    async fn insert(&self, account: &Account) -> Result<(), AccountError> {
        self.time("accounts.insert", self.inner.insert(account))
            .await
    }
    async fn by_email(&self, email: &Email) -> Result<Option<Account>, AccountError> {
        self.time("accounts.by_email", self.inner.by_email(email))
            .await
    }
    async fn by_id(&self, id: &UserId) -> Result<Option<Account>, AccountError> {
        self.time("accounts.by_id", self.inner.by_id(id)).await
    }
    async fn update(&self, account: &Account) -> Result<(), AccountError> {
        self.time("accounts.update", self.inner.update(account))
            .await
    }
}
