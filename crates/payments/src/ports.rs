//! The ports payments run over. Adapters: `phaze-store-memory`, `phaze-store-fs`,
//! `phaze-store-postgres`; each runs the contract suites in `phaze-testkit`.

use async_trait::async_trait;
use phaze_ids::UserId;
use rand::RngCore;
use std::fmt;
use time::{Duration, OffsetDateTime};

use crate::subscription::SubscriptionRecord;

/// A payments store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or refused the operation.
    #[error("payments store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The record on disk or in the database is not one this build wrote.
    #[error("payments record corrupt")]
    Corrupt,
}

impl StoreError {
    /// Wraps a backend error.
    pub fn backend(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(e))
    }
}

/// Proof of holding a claim: random, so a holder whose claim was taken over after its lease
/// cannot mark or release the new holder's claim.
#[derive(Clone, PartialEq, Eq)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token (128 bits from the OS CSPRNG, hex).
    pub fn generate() -> Self {
        let mut b = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut b);
        Self(hex::encode(b))
    }

    /// A token read back from a store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The text a store keeps.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClaimToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClaimToken(..)")
    }
}

/// What a claim found.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The event is this caller's to apply: nobody had it, or its last holder's lease ran out.
    Won,
    /// Already applied: acknowledge, do nothing.
    Applied,
    /// Another delivery holds it and its lease is running: answer non-2xx so Stripe retries.
    Held,
}

/// Event ids, claimed before any effect: claimed -> applied, or released on failure.
#[async_trait]
pub trait ProcessedEvents: Send + Sync {
    /// Claims `event` for `lease` from `now`, atomically: of any number of parallel claims of one
    /// id exactly one wins, and a claim whose lease has run out is taken over by the next.
    async fn claim(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Claim, StoreError>;

    /// Marks `event` applied at `now`, if `token` still holds it. `false`: the claim was taken
    /// over (the lease ran out first); the effect may run twice, so effects are idempotent.
    async fn mark_applied(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Gives `event` back, if `token` still holds it, so Stripe's next retry applies it.
    async fn release(&self, event: &str, token: &ClaimToken) -> Result<(), StoreError>;

    /// Forgets ids applied before `before`, and claims whose lease ended before it; returns how
    /// many. Keep applied ids longer than Stripe retries (3 days): 30 days by default.
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError>;
}

/// Subscription records by account, with the customer -> account link.
#[async_trait]
pub trait Subscriptions: Send + Sync {
    /// The account's record and its version (0 is never stored: it means "absent").
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError>;

    /// The account a Stripe customer belongs to.
    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError>;

    /// Stores `record` as version `expected + 1` if the stored version is still `expected` (0:
    /// no record yet), and links its customer to its account; `false` if another writer got
    /// there first (read again and retry).
    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError>;

    /// Deletes the account's record and its customer link (account deletion); `false` if there
    /// was no record. Later events for that customer find no account.
    async fn remove(&self, user: &UserId) -> Result<bool, StoreError>;
}
