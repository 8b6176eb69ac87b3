//! The login guard: failure counting, challenge and lockout for an identifier, as one policy over
//! the [`RateLimitStore`] port, so every embedder gets the same rules.
//!
//! - Every login attempt reserves a slot in its counter's log *before* the password is checked,
//!   and the lock is re-checked after reserving: of any number of parallel guesses, from any
//!   clients in any process, at most `lockout_after` are judged.
//! - After `challenge_after` attempts without a success, logins need a solved challenge.
//! - The attempt that uses the last slot (or one over it) takes the slot of a limit-1 window: the
//!   counter is locked for `lockout`. Locking clears the log, so when the lock ends the owner
//!   starts afresh; a success clears it too.
//! - A [`Counter::Device`] (a valid device cookie for the identifier) has its own, smaller budget
//!   and is not held back by the identifier's lock: an attacker cannot lock the owner out.

use time::{Duration, OffsetDateTime};

use crate::{Decision, KeyHasher, LimitKey, RateLimitStore, StoreError, Window};

/// The numbers of the login policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Attempts without success after which a challenge is required (3).
    pub challenge_after: u32,
    /// Attempts without success that lock an identifier (10).
    pub lockout_after: u32,
    /// Attempts a device may make before it is locked too (5).
    pub device_failures: u32,
    /// The period attempts are counted over (1 h).
    pub period: Duration,
    /// How long a lock lasts (15 min).
    pub lockout: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            challenge_after: 3,
            lockout_after: 10,
            device_failures: 5,
            period: Duration::hours(1),
            lockout: Duration::minutes(15),
        }
    }
}

/// Whose attempts are counted.
#[derive(Clone, Copy, Debug)]
pub enum Counter<'a> {
    /// A normalised identifier, counted whether or not an account exists.
    Identifier(&'a str),
    /// The nonce of a valid device cookie for the submitted identifier.
    Device(&'a [u8; 16]),
}

/// The login policy over a store.
pub struct LoginGuard {
    store: std::sync::Arc<dyn RateLimitStore>,
    keys: KeyHasher,
    policy: LoginPolicy,
}

impl LoginGuard {
    /// The policy over `store`, keys under `keys`.
    pub fn new(
        store: std::sync::Arc<dyn RateLimitStore>,
        keys: KeyHasher,
        policy: LoginPolicy,
    ) -> Self {
        Self {
            store,
            keys,
            policy,
        }
    }

    /// The attempts log, the lock and the threshold of a counter.
    fn counter_keys(&self, counter: &Counter<'_>) -> (LimitKey, LimitKey, u32) {
        match counter {
            Counter::Identifier(id) => (
                self.keys.key("identifier/failures", id),
                self.keys.key("identifier/lock", id),
                self.policy.lockout_after,
            ),
            Counter::Device(nonce) => {
                let n = hex::encode(nonce);
                (
                    self.keys.key("device/failures", &n),
                    self.keys.key("device/lock", &n),
                    self.policy.device_failures,
                )
            }
        }
    }

    fn lock_window(&self) -> Window {
        Window::new(1, self.policy.lockout)
    }

    /// Whether logins for `identifier` must carry a solved challenge.
    pub async fn challenge_required(
        &self,
        identifier: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (attempts, _, _) = self.counter_keys(&Counter::Identifier(identifier));
        let window = Window::new(self.policy.challenge_after, self.policy.period);
        Ok(!self.store.peek(&attempts, window, now).await?.allowed)
    }

    /// The lock on `counter`, if any: `reset_after` is the time left.
    pub async fn locked(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Decision>, StoreError> {
        let (_, lock, _) = self.counter_keys(counter);
        let d = self.store.peek(&lock, self.lock_window(), now).await?;
        Ok((!d.allowed).then_some(d))
    }

    /// Reserves one judged attempt before the password is checked. `Err(lock)` when the counter is
    /// (now) locked: the caller refuses the attempt without judging it.
    pub async fn reserve_attempt(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, Decision>, StoreError> {
        let (attempts, _, threshold) = self.counter_keys(counter);
        let d = self
            .store
            .hit(&attempts, Window::new(threshold, self.policy.period), now)
            .await?;
        if !d.allowed {
            self.lock(counter, now).await?;
        }
        // Checked after reserving: a lock taken (and the log cleared) by a parallel request
        // between the caller's lock check and this reservation must still refuse this attempt.
        Ok(match self.locked(counter, now).await? {
            Some(lock) => Err(lock),
            None if d.allowed => Ok(d),
            None => Err(d),
        })
    }

    /// After a failed attempt: the one that used the last slot locks the counter. Returns
    /// whether this call took the lock (for the security log).
    pub async fn failed(
        &self,
        counter: &Counter<'_>,
        reservation: &Decision,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if reservation.remaining == 0 {
            return self.lock(counter, now).await;
        }
        Ok(false)
    }

    /// After a successful login (or a right password on an unverified account).
    pub async fn succeeded(&self, counter: &Counter<'_>) -> Result<(), StoreError> {
        let (attempts, _, _) = self.counter_keys(counter);
        self.store.reset(&attempts).await
    }

    /// Marks a challenge's nonce used; `false` if it was used before, in any process.
    pub async fn use_challenge(
        &self,
        nonce: &[u8],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let key = self.keys.key("challenge/used", &hex::encode(nonce));
        Ok(self
            .store
            .hit(&key, Window::new(1, ttl), now)
            .await?
            .allowed)
    }

    /// Locks the counter and clears its log; `true` if this call took the lock.
    async fn lock(&self, counter: &Counter<'_>, now: OffsetDateTime) -> Result<bool, StoreError> {
        let (attempts, lock, _) = self.counter_keys(counter);
        let d = self.store.hit(&lock, self.lock_window(), now).await?;
        self.store.reset(&attempts).await?;
        Ok(d.allowed)
    }
}
