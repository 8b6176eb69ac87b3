//! Request budgets per client network, through the `phaze-ratelimit` port: one atomic
//! check-and-record per decision, in whatever store is configured.

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
}

impl Budget {
    fn class(self) -> &'static str {
        match self {
            Budget::Login => "client/login",
            Budget::Register => "client/register",
            Budget::Post => "client/post",
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
        let key = self.keys.key(budget.class(), &network.to_string());
        let decision = self
            .store
            .hit(&key, self.window(budget), now)
            .await
            .map_err(AppError::unavailable)?;
        if !decision.allowed {
            tracing::warn!(
                target: "security",
                event = "rate_limited",
                budget = budget.class(),
                network = %network,
                retry_after_secs = decision.reset_after.whole_seconds(),
            );
            return Err(AppError::TooManyRequests(decision));
        }
        Ok(decision)
    }
}
