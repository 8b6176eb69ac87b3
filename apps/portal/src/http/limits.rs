//! Request budgets per client network, through the `phaze-ratelimit` port: one atomic
//! check-and-record per decision, in whatever store is configured.

use phaze_auth::UserId;
pub use phaze_ratelimit::Counter;
use phaze_ratelimit::{
    client_network, Decision, KeyHasher, LoginGuard, LoginPolicy, RateLimitStore, Window,
};
use secrecy::SecretBox;
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::errors::AppError;
use crate::settings::RateLimitSettings;

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
    guard: LoginGuard,
}

impl Limits {
    /// Budgets from `settings`, keys under `keys`.
    /// Budgets and the login guard from `settings`; keys from `key` (32 secret bytes).
    pub fn new(store: Arc<dyn RateLimitStore>, key: [u8; 32], settings: RateLimitSettings) -> Self {
        let policy = LoginPolicy {
            challenge_after: settings.challenge_after_failures,
            lockout_after: settings.lockout_after_failures,
            device_failures: settings.device_failures,
            period: Duration::seconds(settings.failure_period_secs.into()),
            lockout: Duration::seconds(settings.lockout_secs.into()),
        };
        let hasher = |k: [u8; 32]| KeyHasher::new(SecretBox::new(Box::new(k)));
        let guard = LoginGuard::new(store.clone(), hasher(key), policy);
        Self {
            store,
            keys: hasher(key),
            settings,
            guard,
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

    /// What security events say about a counter: a keyed hash (16 hex digits) that lets an
    /// operator correlate events of one identifier without the log ever holding an address.
    pub fn log_hash(&self, counter: &Counter<'_>) -> String {
        let key = match counter {
            Counter::Identifier(id) => self.keys.key("log/identifier", id),
            Counter::Device(nonce) => self.keys.key("log/device", &hex::encode(nonce)),
        };
        key.to_hex()[..16].to_owned()
    }

    /// Whether logins for `identifier` (see [`identifier`]) must carry a solved challenge.
    pub async fn challenge_required(
        &self,
        identifier: &str,
        now: OffsetDateTime,
    ) -> Result<bool, AppError> {
        self.guard
            .challenge_required(identifier, now)
            .await
            .map_err(AppError::unavailable)
    }

    /// The lock on `counter`, if it is locked.
    pub async fn locked(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Option<Decision>, AppError> {
        self.guard
            .locked(counter, now)
            .await
            .map_err(AppError::unavailable)
    }

    /// Reserves one judged attempt before the password is checked; `Err(lock)` if locked.
    pub async fn reserve_attempt(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, Decision>, AppError> {
        self.guard
            .reserve_attempt(counter, now)
            .await
            .map_err(AppError::unavailable)
    }

    /// After a failed attempt; logs the lockout it may cause (never the identifier itself).
    pub async fn failed(
        &self,
        counter: &Counter<'_>,
        reservation: &Decision,
        now: OffsetDateTime,
    ) -> Result<(), AppError> {
        if self
            .guard
            .failed(counter, reservation, now)
            .await
            .map_err(AppError::unavailable)?
        {
            let kind = match counter {
                Counter::Identifier(_) => "identifier",
                Counter::Device(_) => "device",
            };
            tracing::warn!(target: "security", event = "lockout", kind, identifier = %self.log_hash(counter));
        }
        Ok(())
    }

    /// Forgets a counter's attempts (after a successful login).
    pub async fn clear_failures(&self, counter: &Counter<'_>) -> Result<(), AppError> {
        self.guard
            .succeeded(counter)
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
        self.guard
            .use_challenge(nonce, ttl, now)
            .await
            .map_err(AppError::unavailable)
    }

    /// Deletes logs no window can see any more (a no-op for stores that expire by themselves).
    pub async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, AppError> {
        self.store
            .purge_idle(now)
            .await
            .map_err(AppError::unavailable)
    }
}
