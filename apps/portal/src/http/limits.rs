//! Request budgets per client network, through the `phaze-ratelimit` port: one atomic
//! check-and-record per decision, in whatever store is configured.

use phaze_auth::UserId;
use phaze_ratelimit::{client_network, Decision, KeyHasher, LimitKey, RateLimitStore, Window};
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::errors::AppError;
use crate::settings::RateLimitSettings;

/// Whose failed logins are counted: an identifier, for everyone without a device cookie for it;
/// or one device cookie, which has a small budget of its own while the identifier is locked.
#[derive(Clone, Copy, Debug)]
pub enum Counter<'a> {
    /// A normalised identifier (see [`identifier`]).
    Identifier(&'a str),
    /// The nonce of a valid device cookie for the submitted identifier.
    Device(&'a [u8; 16]),
}

/// The subject failures are counted against: the normalised email, or for input that is not an
/// email the trimmed, lower-cased text (at most 320 characters), so unknown and malformed
/// identifiers are counted exactly like real ones.
pub fn identifier(raw: &str) -> String {
    match phaze_auth::Email::parse(raw) {
        Some(email) => email.as_str().to_owned(),
        None => raw.trim().to_lowercase().chars().take(320).collect(),
    }
}

/// What is limited, per client network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// `POST /login` attempts.
    Login,
    /// `POST /register`.
    Register,
    /// Every unsafe request.
    Post,
    /// `GET /verify/{token}` (guessing tokens costs a request each).
    Verify,
    /// `POST /account/password`, per account.
    PasswordChange,
    /// `POST /api/v1/profile`, per account.
    ProfileApi,
}

impl Budget {
    fn class(self) -> &'static str {
        match self {
            Budget::Login => "client/login",
            Budget::Register => "client/register",
            Budget::Post => "client/post",
            Budget::Verify => "client/verify",
            Budget::PasswordChange => "account/password",
            Budget::ProfileApi => "account/profile-api",
        }
    }
}

/// The configured budgets over a store.
pub struct Limits {
    store: Arc<dyn RateLimitStore>,
    keys: KeyHasher,
    settings: RateLimitSettings,
}

impl Limits {
    /// Budgets from `settings`, keys under `keys`.
    pub fn new(
        store: Arc<dyn RateLimitStore>,
        keys: KeyHasher,
        settings: RateLimitSettings,
    ) -> Self {
        Self {
            store,
            keys,
            settings,
        }
    }

    fn window(&self, budget: Budget) -> Window {
        let s = &self.settings;
        let (limit, secs) = match budget {
            Budget::Login => (s.login_per_client, s.login_period_secs),
            Budget::Register => (s.register_per_client, s.register_period_secs),
            Budget::Post => (s.post_per_client, s.post_period_secs),
            Budget::Verify => (s.verify_per_client, s.verify_period_secs),
            Budget::PasswordChange => {
                (s.password_change_per_account, s.password_change_period_secs)
            }
            Budget::ProfileApi => (s.profile_api_per_account, s.profile_api_period_secs),
        };
        Window::new(limit, Duration::seconds(secs.into()))
    }

    /// Records one event of `budget` for `client`'s network, or refuses it with 429. A store
    /// failure is a 503: never "allow because the limiter is unreachable".
    pub async fn spend(
        &self,
        budget: Budget,
        client: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Decision, AppError> {
        let s = &self.settings;
        let network = client_network(client, s.client_v4_prefix, s.client_v6_prefix);
        self.spend_on(budget, &network.to_string(), now).await
    }

    /// Records one event of `budget` for the account `user`, or refuses it with 429.
    pub async fn spend_for_account(
        &self,
        budget: Budget,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Decision, AppError> {
        self.spend_on(budget, &user.to_string(), now).await
    }

    async fn spend_on(
        &self,
        budget: Budget,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<Decision, AppError> {
        let key = self.keys.key(budget.class(), subject);
        let decision = self
            .store
            .hit(&key, self.window(budget), now)
            .await
            .map_err(AppError::unavailable)?;
        if !decision.allowed {
            // Networks are logged as is; account ids are opaque; never an email or a password.
            tracing::warn!(
                target: "security",
                event = "rate_limited",
                budget = budget.class(),
                subject = %subject,
                retry_after_secs = decision.reset_after.whole_seconds(),
            );
            return Err(AppError::TooManyRequests(decision));
        }
        Ok(decision)
    }

    fn counter_keys(&self, counter: &Counter<'_>) -> (LimitKey, LimitKey, u32) {
        let s = &self.settings;
        match counter {
            Counter::Identifier(id) => (
                self.keys.key("identifier/failures", id),
                self.keys.key("identifier/lock", id),
                s.lockout_after_failures,
            ),
            Counter::Device(nonce) => {
                let n = hex::encode(nonce);
                (
                    self.keys.key("device/failures", &n),
                    self.keys.key("device/lock", &n),
                    s.device_failures,
                )
            }
        }
    }

    fn lock_window(&self) -> Window {
        Window::new(1, Duration::seconds(self.settings.lockout_secs.into()))
    }

    /// Whether `identifier` (see [`identifier`]) failed often enough lately that a login must
    /// carry a solved challenge. Counted whether or not an account exists.
    pub async fn challenge_required(
        &self,
        identifier: &str,
        now: OffsetDateTime,
    ) -> Result<bool, AppError> {
        let s = &self.settings;
        let period = Duration::seconds(s.failure_period_secs.into());
        let (failures, _, _) = self.counter_keys(&Counter::Identifier(identifier));
        let d = self
            .store
            .peek(
                &failures,
                Window::new(s.challenge_after_failures, period),
                now,
            )
            .await;
        Ok(!d.map_err(AppError::unavailable)?.allowed)
    }

    /// The lock on `counter`, if it is locked: a decision whose `reset_after` is the time left.
    pub async fn locked(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Decision>, AppError> {
        let (_, lock, _) = self.counter_keys(counter);
        let d = self
            .store
            .peek(&lock, self.lock_window(), now)
            .await
            .map_err(AppError::unavailable)?;
        Ok((!d.allowed).then_some(d))
    }

    /// Reserves one judged attempt for `counter`, before the password is checked, so that of any
    /// number of parallel guesses (from any clients, in any process) at most the threshold are
    /// judged. `Err(lock)` when the counter is over it: the counter is locked from now on.
    /// The log counts attempts since the last success: a success clears it.
    pub async fn reserve_attempt(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, Decision>, AppError> {
        let (attempts, _, threshold) = self.counter_keys(counter);
        let period = Duration::seconds(self.settings.failure_period_secs.into());
        let window = Window::new(threshold, period);
        let d = self
            .store
            .hit(&attempts, window, now)
            .await
            .map_err(AppError::unavailable)?;
        if d.allowed {
            return Ok(Ok(d));
        }
        self.lock(counter, now).await?;
        Ok(Err(self.locked(counter, now).await?.unwrap_or(d)))
    }

    /// After a failed attempt: the one that used the last reservation locks the counter.
    pub async fn failed(
        &self,
        counter: &Counter<'_>,
        reservation: &Decision,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        if reservation.remaining == 0 {
            self.lock(counter, now).await?;
        }
        Ok(())
    }

    /// Locks the counter for `lockout_secs` and clears its attempts, so that when the lock ends
    /// the owner gets a fresh budget instead of an hour-long tail of the attacker's attempts.
    async fn lock(&self, counter: &Counter<'_>, now: OffsetDateTime) -> Result<(), AppError> {
        let (attempts, lock, _) = self.counter_keys(counter);
        let d = self
            .store
            .hit(&lock, self.lock_window(), now)
            .await
            .map_err(AppError::unavailable)?;
        self.store
            .reset(&attempts)
            .await
            .map_err(AppError::unavailable)?;
        if d.allowed {
            let kind = match counter {
                Counter::Identifier(_) => "identifier",
                Counter::Device(_) => "device",
            };
            // The identifier itself never reaches the log: its keyed hash does.
            tracing::warn!(target: "security", event = "lockout", kind, key = %&attempts.to_hex()[..16]);
        }
        Ok(())
    }

    /// Forgets a counter's attempts (after a successful login).
    pub async fn clear_failures(&self, counter: &Counter<'_>) -> Result<(), AppError> {
        let (failures, _, _) = self.counter_keys(counter);
        self.store
            .reset(&failures)
            .await
            .map_err(AppError::unavailable)
    }

    /// Marks a challenge used; `false` if it was used before (in any process).
    pub async fn use_challenge(
        &self,
        nonce: &[u8],
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<bool, AppError> {
        let key = self.keys.key("challenge/used", &hex::encode(nonce));
        let d = self
            .store
            .hit(&key, Window::new(1, ttl), now)
            .await
            .map_err(AppError::unavailable)?;
        Ok(d.allowed)
    }

    /// Deletes logs no window can see any more (a no-op for stores that expire by themselves).
    pub async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, AppError> {
        self.store
            .purge_idle(now)
            .await
            .map_err(AppError::unavailable)
    }
}
