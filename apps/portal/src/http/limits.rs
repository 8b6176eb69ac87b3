//! Request budgets per client network, through the `phaze-ratelimit` port: one atomic
//! check-and-record per decision, in whatever store is configured.

use phaze_auth::UserId;
use phaze_ratelimit::{client_network, Decision, KeyHasher, RateLimitStore, Window};
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::errors::AppError;
use crate::settings::RateLimitSettings;

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

    /// Deletes logs no window can see any more (a no-op for stores that expire by themselves).
    pub async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, AppError> {
        self.store
            .purge_idle(now)
            .await
            .map_err(AppError::unavailable)
    }
}
