//! The login guard: failure counting, challenge and lockout for an identifier, as one policy over
//! the [`RateLimitStore`] port, so every embedder gets the same rules.
//!
//! - Every login attempt reserves a slot in its counter's log *before* the password is checked:
//!   of any number of parallel guesses, from any clients in any process, exactly `lockout_after`
//!   get a slot and are judged; the others are refused. A slot, once given, is never taken back
//!   (the hit that gave it is the one atomic step), which is why the log is *not* cleared when
//!   the counter locks: a cleared log would hand out new slots during the lock, which a second
//!   lock check would then have to refuse, and that check cannot tell a slot given before the
//!   lock from one given after it (so it refused some of the first ten as well).
//! - After `challenge_after` attempts without a success, logins need a solved challenge.
//! - The attempt that uses the last slot takes, once judged and failed, the slot of a limit-1
//!   window: the counter is locked for `lockout`. An attempt refused for want of a slot takes it
//!   too (the last slot's own attempt may still be being judged).
//! - A full log whose newest attempt is older than `lockout` is *spent*: the lock that followed
//!   it has ended, so the owner starts afresh. The first attempt that finds it so (one per
//!   lockout, through a limit-1 window of its own, so parallel attempts cannot each clear the log
//!   and each be judged) clears it and reserves again; a success clears the log too.
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
    /// [`crate::RateLimitPolicy`]'s defaults: one set of numbers.
    fn default() -> Self {
        crate::RateLimitPolicy::default().login()
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

    /// The policy in force.
    pub fn policy(&self) -> &LoginPolicy {
        &self.policy
    }

    /// The keys and the threshold of a counter.
    pub(crate) fn counter_keys(&self, counter: &Counter<'_>) -> CounterKeys {
        let (class, subject, threshold) = match counter {
            Counter::Identifier(id) => ("identifier", (*id).to_owned(), self.policy.lockout_after),
            Counter::Device(nonce) => ("device", hex::encode(nonce), self.policy.device_failures),
        };
        let key = |what: &str| self.keys.key(&format!("{class}/{what}"), &subject);
        CounterKeys {
            attempts: key("failures"),
            lock: key("lock"),
            renewal: key("renewal"),
            threshold,
        }
    }

    /// Whether logins for `identifier` must carry a solved challenge: `challenge_after` attempts
    /// in the period, unless the log is spent (its lock has ended: the owner starts afresh).
    pub async fn challenge_required(
        &self,
        identifier: &str,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let keys = self.counter_keys(&Counter::Identifier(identifier));
        if self
            .store
            .peek(&keys.attempts, self.challenge_window(), now)
            .await?
            .allowed
        {
            return Ok(false);
        }
        let full = Window::new(keys.threshold, self.policy.period);
        let full = !self.store.peek(&keys.attempts, full, now).await?.allowed;
        Ok(!(full && self.spent(&keys, now).await?))
    }

    /// The lock on `counter`, if any: `reset_after` is the time left.
    pub async fn locked(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Decision>, StoreError> {
        let keys = self.counter_keys(counter);
        let d = self.store.peek(&keys.lock, self.lock_window(), now).await?;
        Ok((!d.allowed).then_some(d))
    }

    /// Reserves one judged attempt before the password is checked. `Err(lock)` when there is no
    /// slot left (the counter is, or is being, locked): the caller refuses the attempt without
    /// judging it. `Ok` is final: a parallel attempt never takes a given slot back.
    pub async fn reserve_attempt(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, Decision>, StoreError> {
        let keys = self.counter_keys(counter);
        let d = self
            .store
            .hit(&keys.attempts, self.attempts_window(&keys), now)
            .await?;
        if d.allowed {
            return Ok(Ok(d));
        }
        self.reserve_after_refusal(counter, d, now).await
    }

    /// The window of a counter's attempts log: its threshold over the period.
    pub(crate) fn attempts_window(&self, keys: &CounterKeys) -> Window {
        Window::new(keys.threshold, self.policy.period)
    }

    /// The window whose refusal means a challenge is due (unless the log is spent).
    pub(crate) fn challenge_window(&self) -> Window {
        Window::new(self.policy.challenge_after, self.policy.period)
    }

    /// The window of a lock.
    pub(crate) fn lock_window(&self) -> Window {
        Window::new(1, self.policy.lockout)
    }

    /// The rest of [`LoginGuard::reserve_attempt`] once the hit on the attempts log, `d`, was
    /// refused: the counter is locked, or its log is spent and may be renewed, or it is being
    /// locked. Rare (only around lockouts), so it may take several round trips.
    pub(crate) async fn reserve_after_refusal(
        &self,
        counter: &Counter<'_>,
        d: Decision,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, Decision>, StoreError> {
        let keys = self.counter_keys(counter);
        let window = self.attempts_window(&keys);
        if let Some(lock) = self.locked(counter, now).await? {
            return Ok(Err(lock));
        }
        if self.spent(&keys, now).await? {
            // The lock has ended. One attempt per lockout clears the log; the others are refused
            // this once rather than clear it again (and again be judged).
            let renewal = Window::new(1, self.policy.lockout);
            if !self.store.hit(&keys.renewal, renewal, now).await?.allowed {
                return Ok(Err(d));
            }
            self.store.reset(&keys.attempts).await?;
            let d = self.store.hit(&keys.attempts, window, now).await?;
            return Ok(if d.allowed { Ok(d) } else { Err(d) });
        }
        if self.store.peek(&keys.attempts, window, now).await?.allowed {
            // Cleared since this hit (a success, a renewal): refused this once, and no lock.
            return Ok(Err(d));
        }
        // Every slot is given and the last one's attempt may still be being judged: lock now.
        self.lock(counter, now).await?;
        Ok(Err(self.locked(counter, now).await?.unwrap_or(d)))
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
        let keys = self.counter_keys(counter);
        self.store.reset(&keys.attempts).await
    }

    /// The key that marks a challenge's nonce used: a limit-1 window over the challenge's
    /// lifetime, hit in [`crate::Limits::login`]'s gate, so single use holds in every process.
    pub(crate) fn challenge_key(&self, nonce: &[u8]) -> LimitKey {
        self.keys.key("challenge/used", &hex::encode(nonce))
    }

    /// Locks the counter; `true` if this call took the lock. The log stays full, so no slot is
    /// given while the lock lasts, and is spent when it ends.
    async fn lock(&self, counter: &Counter<'_>, now: OffsetDateTime) -> Result<bool, StoreError> {
        let keys = self.counter_keys(counter);
        Ok(self
            .store
            .hit(&keys.lock, self.lock_window(), now)
            .await?
            .allowed)
    }

    /// Whether a full log is spent: no attempt in the last `lockout`. The lock is taken at or
    /// after the newest attempt, so it has ended by then.
    async fn spent(&self, keys: &CounterKeys, now: OffsetDateTime) -> Result<bool, StoreError> {
        let recent = Window::new(1, self.policy.lockout);
        Ok(self.store.peek(&keys.attempts, recent, now).await?.allowed)
    }
}

/// The store keys of one counter, and its threshold.
pub(crate) struct CounterKeys {
    /// The attempts log (slots).
    pub(crate) attempts: LimitKey,
    /// The lock: a limit-1 window of `lockout`.
    pub(crate) lock: LimitKey,
    /// Who may clear a spent log: a limit-1 window of `lockout`.
    renewal: LimitKey,
    pub(crate) threshold: u32,
}
