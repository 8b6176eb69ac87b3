//! The TOTP step ledger over the rate-limit store ([`StepLedger`] for [`RateLimitStore`]).
//!
//! A code must be accepted once per time step across every process, which is exactly what the
//! rate-limit store already guarantees for a window of one: the first hit on a step's key is
//! allowed, every later one refused, atomically on memory, files, Redis and PostgreSQL. Keys
//! are HMACs ([`KeyHasher`]), so the store never holds an account id next to a step.

use async_trait::async_trait;
use phaze_auth::{StepLedger, StoreError, UserId};
use phaze_ratelimit::{KeyHasher, RateLimitStore, Window};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// One use per step, remembered well past the steps a code is accepted in (±30 s).
const ONCE: Window = Window::new(1, Duration::minutes(3));

/// [`StepLedger`] kept in a [`RateLimitStore`].
pub struct RateLimitStepLedger {
    store: Arc<dyn RateLimitStore>,
    keys: KeyHasher,
}

impl RateLimitStepLedger {
    /// A ledger in `store`, its keys derived under `keys` (give it a key of its own).
    pub fn new(store: Arc<dyn RateLimitStore>, keys: KeyHasher) -> Self {
        Self { store, keys }
    }
}

#[async_trait]
impl StepLedger for RateLimitStepLedger {
    async fn first_use(
        &self,
        user: &UserId,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let key = self.keys.key("totp/step", &format!("{user}:{step}"));
        let decision = self
            .store
            .hit(&key, ONCE, now)
            .await
            .map_err(|e| StoreError::Backend(Box::new(e)))?;
        Ok(decision.allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phaze_store_memory::MemoryRateLimits;
    use secrecy::SecretBox;

    #[tokio::test]
    async fn a_step_is_used_once_per_account() {
        let ledger = RateLimitStepLedger::new(
            Arc::new(MemoryRateLimits::default()),
            KeyHasher::new(SecretBox::new(Box::new([1; 32]))),
        );
        let (ada, bob) = (UserId::generate(), UserId::generate());
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        assert!(ledger.first_use(&ada, 7, now).await.unwrap_or(false));
        assert!(!ledger.first_use(&ada, 7, now).await.unwrap_or(true));
        assert!(!ledger
            .first_use(&ada, 7, now + Duration::seconds(90))
            .await
            .unwrap_or(true));
        assert!(ledger.first_use(&ada, 8, now).await.unwrap_or(false));
        assert!(ledger.first_use(&bob, 7, now).await.unwrap_or(false));
    }
}
