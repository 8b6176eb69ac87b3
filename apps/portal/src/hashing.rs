//! argon2id off the async workers: each hash runs on actix's blocking pool, at most
//! `auth.hash_concurrency` at once (each takes `argon2_m_kib` of memory), so a burst of logins
//! queues for CPU instead of stalling every page request or exhausting memory.

use async_trait::async_trait;
use phaze_actix::metrics::Argon2Gauges;
use phaze_actix::metrics::Gauge;
use phaze_auth::{Argon2id, HashError, PasswordHasher, Verification};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// [`PasswordHasher`] that runs [`Argon2id`] on the blocking pool.
pub struct OffloadedHasher {
    inner: Arc<Argon2id>,
    permits: Semaphore,
    gauges: Option<Argon2Gauges>,
}

impl OffloadedHasher {
    /// At most `concurrency` hashes at once; the queue shown on `gauges` when given.
    pub fn new(inner: Argon2id, concurrency: usize, gauges: Option<Argon2Gauges>) -> Self {
        Self {
            inner: Arc::new(inner),
            permits: Semaphore::new(concurrency.max(1)),
            gauges,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2id) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = {
            let _waiting = self.gauges.as_ref().map(|g| Moved::new(&g.waiting));
            self.permits.acquire().await
        };
        let _permit = permit.map_err(|e| HashError(e.to_string()))?;
        let _running = self.gauges.as_ref().map(|g| Moved::new(&g.running));
        let inner = self.inner.clone();
        actix_web::web::block(move || work(&inner))
            .await
            .map_err(|e| HashError(e.to_string()))
    }
}

/// One on a gauge for as long as it lives (a cancelled request's future drops it too).
struct Moved<'a>(&'a Gauge);

impl<'a> Moved<'a> {
    fn new(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Moved<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[async_trait]
impl PasswordHasher for OffloadedHasher {
    async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.run(move |h| h.hash_sync(password.expose_secret()))
            .await?
    }

    async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, HashError> {
        self.run(move |h| h.verify_sync(password.expose_secret(), phc.as_deref()))
            .await
    }
}
