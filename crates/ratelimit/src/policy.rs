//! The numbers of every limit, as one deserialisable struct: it is the `[ratelimit]` section of a
//! service's configuration as it stands, and its `Default` is the only set of defaults.

use serde::Deserialize;
use time::Duration;

use crate::{LoginPolicy, Window};

/// What is limited. Client budgets count per client network ([`crate::client_network`]), account
/// budgets per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Budget {
    /// Login attempts, per client network.
    Login,
    /// Registrations, per client network.
    Register,
    /// Every unsafe request (POST and the like), per client network.
    Post,
    /// Visits to verification links (guessing a token costs a request each), per client network.
    Verify,
    /// Password change attempts, per account.
    PasswordChange,
    /// Profile API calls, per account.
    ProfileApi,
    /// Password reset requests, per client network.
    ResetPerClient,
    /// Password reset requests, per address asked about (known or not; keyed by
    /// [`crate::identifier`]).
    ResetPerAddress,
}

impl Budget {
    /// The class its keys are derived under (and that logs name).
    pub fn class(self) -> &'static str {
        match self {
            Budget::Login => "client/login",
            Budget::Register => "client/register",
            Budget::Post => "client/post",
            Budget::Verify => "client/verify",
            Budget::PasswordChange => "account/password",
            Budget::ProfileApi => "account/profile-api",
            Budget::ResetPerClient => "client/password-reset",
            Budget::ResetPerAddress => "identifier/password-reset",
        }
    }
}

/// Every limit's numbers. Field names are the configuration keys (`ratelimit.login_per_client`
/// and so on); unknown keys are refused, missing ones take the default in brackets.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitPolicy {
    /// IPv4 clients are grouped by this prefix (32).
    pub client_v4_prefix: u8,
    /// IPv6 clients are grouped by this prefix (64).
    pub client_v6_prefix: u8,
    /// Login attempts per client network per `login_period_secs` (5).
    pub login_per_client: u32,
    /// (900)
    pub login_period_secs: u32,
    /// Registrations per client network per `register_period_secs` (10).
    pub register_per_client: u32,
    /// (3600)
    pub register_period_secs: u32,
    /// Any POST per client network per `post_period_secs` (120).
    pub post_per_client: u32,
    /// (60)
    pub post_period_secs: u32,
    /// Verification link visits per client network per `verify_period_secs` (20).
    pub verify_per_client: u32,
    /// (3600)
    pub verify_period_secs: u32,
    /// Password change attempts per account per `password_change_period_secs` (5).
    pub password_change_per_account: u32,
    /// (900)
    pub password_change_period_secs: u32,
    /// Profile API calls per account per `profile_api_period_secs` (30).
    pub profile_api_per_account: u32,
    /// (60)
    pub profile_api_period_secs: u32,
    /// Password reset requests per client network per `reset_period_secs` (5).
    pub reset_per_client: u32,
    /// Password reset requests per address per `reset_period_secs` (3).
    pub reset_per_address: u32,
    /// (3600)
    pub reset_period_secs: u32,
    /// Failed logins for one identifier after which a proof-of-work challenge is required (3).
    pub challenge_after_failures: u32,
    /// The period failures are counted over, in seconds (3600).
    pub failure_period_secs: u32,
    /// Leading zero bits the challenge asks for (14: about 16,000 SHA-256 calls on average, under
    /// a second of WebCrypto; node's WebCrypto needed ~3 s for a 16-bit one).
    pub challenge_difficulty_bits: u8,
    /// Lifetime of a challenge, in seconds (300).
    pub challenge_ttl_secs: u32,
    /// Failed logins for one identifier within `failure_period_secs` that lock it (10).
    pub lockout_after_failures: u32,
    /// How long a locked identifier stays locked, in seconds (900).
    pub lockout_secs: u32,
    /// Failures a browser with a device cookie for the identifier may make within
    /// `failure_period_secs` before that device is locked too (5).
    pub device_failures: u32,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        Self {
            client_v4_prefix: 32,
            client_v6_prefix: 64,
            login_per_client: 5,
            login_period_secs: 900,
            register_per_client: 10,
            register_period_secs: 3600,
            post_per_client: 120,
            post_period_secs: 60,
            verify_per_client: 20,
            verify_period_secs: 3600,
            password_change_per_account: 5,
            password_change_period_secs: 900,
            profile_api_per_account: 30,
            profile_api_period_secs: 60,
            reset_per_client: 5,
            reset_per_address: 3,
            reset_period_secs: 3600,
            challenge_after_failures: 3,
            failure_period_secs: 3600,
            challenge_difficulty_bits: 14,
            challenge_ttl_secs: 300,
            lockout_after_failures: 10,
            lockout_secs: 900,
            device_failures: 5,
        }
    }
}

/// A [`RateLimitPolicy`] that cannot be enforced: which key, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct PolicyError {
    /// The configuration key, `ratelimit.` included.
    pub key: &'static str,
    /// What it must be.
    pub why: &'static str,
}

fn secs(s: u32) -> Duration {
    Duration::seconds(s.into())
}

impl RateLimitPolicy {
    /// Refuses numbers that cannot be enforced: prefixes outside the networks they group, a
    /// zero period, a lockout or device budget below one, a challenge no browser can solve.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let fail = |key, why| Err(PolicyError { key, why });
        if !(8..=32).contains(&self.client_v4_prefix) {
            return fail("ratelimit.client_v4_prefix", "must be between 8 and 32");
        }
        if !(32..=128).contains(&self.client_v6_prefix) {
            return fail("ratelimit.client_v6_prefix", "must be between 32 and 128");
        }
        if self.challenge_difficulty_bits > 28 {
            return fail("ratelimit.challenge_difficulty_bits", "must be at most 28");
        }
        if self.lockout_after_failures < 1 || self.device_failures < 1 {
            return fail(
                "ratelimit.lockout_after_failures",
                "lockout and device budgets must be at least 1",
            );
        }
        let periods = [
            self.login_period_secs,
            self.register_period_secs,
            self.post_period_secs,
            self.verify_period_secs,
            self.password_change_period_secs,
            self.profile_api_period_secs,
            self.reset_period_secs,
            self.failure_period_secs,
            self.challenge_ttl_secs,
            self.lockout_secs,
        ];
        if periods.contains(&0) {
            return fail("ratelimit", "periods must be above 0");
        }
        Ok(())
    }

    /// The window of `budget`.
    pub fn window(&self, budget: Budget) -> Window {
        let (limit, period) = match budget {
            Budget::Login => (self.login_per_client, self.login_period_secs),
            Budget::Register => (self.register_per_client, self.register_period_secs),
            Budget::Post => (self.post_per_client, self.post_period_secs),
            Budget::Verify => (self.verify_per_client, self.verify_period_secs),
            Budget::PasswordChange => (
                self.password_change_per_account,
                self.password_change_period_secs,
            ),
            Budget::ProfileApi => (self.profile_api_per_account, self.profile_api_period_secs),
            Budget::ResetPerClient => (self.reset_per_client, self.reset_period_secs),
            Budget::ResetPerAddress => (self.reset_per_address, self.reset_period_secs),
        };
        Window::new(limit, secs(period))
    }

    /// The login guard's part.
    pub fn login(&self) -> LoginPolicy {
        LoginPolicy {
            challenge_after: self.challenge_after_failures,
            lockout_after: self.lockout_after_failures,
            device_failures: self.device_failures,
            period: secs(self.failure_period_secs),
            lockout: secs(self.lockout_secs),
        }
    }

    /// How long a challenge lives.
    pub fn challenge_ttl(&self) -> Duration {
        secs(self.challenge_ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_of_defaults() {
        let p = RateLimitPolicy::default();
        assert_eq!(p.login(), LoginPolicy::default());
        assert_eq!(
            p.window(Budget::Login),
            Window::new(5, Duration::minutes(15))
        );
        assert_eq!(
            p.window(Budget::Post),
            Window::new(120, Duration::minutes(1))
        );
        assert_eq!(p.challenge_ttl(), Duration::minutes(5));
    }

    #[test]
    fn budgets_have_distinct_classes() {
        let all = [
            Budget::Login,
            Budget::Register,
            Budget::Post,
            Budget::Verify,
            Budget::PasswordChange,
            Budget::ProfileApi,
        ];
        let classes: std::collections::HashSet<_> = all.iter().map(|b| b.class()).collect();
        assert_eq!(classes.len(), all.len());
    }
}
