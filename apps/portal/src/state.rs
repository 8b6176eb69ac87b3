//! Wiring: the adapters chosen by configuration behind the domain services, built once at start-up
//! and shared by every worker.

use hmac::{Hmac, Mac};
use phaze_auth::{
    AccountStore, Argon2id, AuthConfig, AuthService, HashParams, Mailer, PasswordPolicy,
    TokenHasher, TokenStore,
};
use phaze_ratelimit::{ChallengeIssuer, RateLimitStore};
use phaze_sessions::{IpBinding, Sealer, SealingKey, SessionManager, SessionPolicy, SessionStore};
use phaze_store_fs::{FsAccounts, FsOutbox, FsRateLimits, FsSessions, FsTokens};
use phaze_store_memory::{MemoryAccounts, MemoryRateLimits, MemorySessions, MemoryTokens};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::path::PathBuf;
use std::sync::Arc;
use time::Duration;

use crate::clock::Clock;
use crate::hashing::OffloadedHasher;
use crate::http::client::TrustedProxies;
use crate::http::csrf::Csrf;
use crate::http::device::DeviceCookies;
use crate::http::limits::Limits;
use crate::secrets;
use crate::settings::{Settings, StoreKind};
use crate::views::Views;

/// The adapters behind the ports, and the directories `/readyz` checks.
type Stores = (
    Arc<dyn SessionStore>,
    Arc<dyn AccountStore>,
    Arc<dyn TokenStore>,
    Arc<dyn RateLimitStore>,
    Vec<PathBuf>,
);

/// Everything a request handler can reach.
pub struct AppState {
    /// The configuration in force.
    pub settings: Settings,
    /// Public base URL, no trailing slash.
    pub public_url: String,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Account use cases.
    pub auth: AuthService,
    /// Sessions.
    pub sessions: SessionManager,
    /// CSRF tokens.
    pub csrf: Csrf,
    /// Trusted-proxy rules.
    pub proxies: TrustedProxies,
    /// Templates.
    pub views: Views,
    /// Directories whose presence `/readyz` checks (the fs store's).
    pub ready_dirs: Vec<PathBuf>,
    /// Token store, for the periodic purge.
    pub tokens: Arc<dyn TokenStore>,
    /// Request budgets.
    pub limits: Limits,
    /// Proof-of-work challenges for identifiers under attack.
    pub challenges: ChallengeIssuer,
    /// Device cookies, so a lockout does not lock out the owner.
    pub devices: DeviceCookies,
}

impl AppState {
    /// Builds the state; `public_url` is final (the listener is bound first).
    pub fn build(
        settings: Settings,
        public_url: String,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let keys = secrets::load(&settings)?;
        let (sessions, accounts, tokens, rate_limits, ready_dirs): Stores =
            match settings.store.kind {
                StoreKind::Memory => (
                    Arc::new(MemorySessions::default()),
                    Arc::new(MemoryAccounts::default()),
                    Arc::new(MemoryTokens::default()),
                    Arc::new(MemoryRateLimits::default()),
                    Vec::new(),
                ),
                StoreKind::Fs => {
                    // Each adapter keeps to its own subdirectory of the data directory.
                    let dir = &settings.store.data_dir;
                    (
                        Arc::new(FsSessions::open(dir)?),
                        Arc::new(FsAccounts::open(dir)?),
                        Arc::new(FsTokens::open(dir)?),
                        Arc::new(FsRateLimits::open(dir)?),
                        ["sessions", "accounts", "tokens", "ratelimits"]
                            .map(|d| dir.join(d))
                            .to_vec(),
                    )
                }
            };
        let mailer: Arc<dyn Mailer> =
            Arc::new(FsOutbox::open(settings.outbox_dir(), &settings.mail.from)?);

        // Rate-limit keys get their own secret, derived from the token pepper, so one generated
        // file serves both without either revealing the other.
        let limit_key = derive(&keys.token_pepper, b"phaze/ratelimit-keys");
        let devices = DeviceCookies::new(SecretBox::new(Box::new(derive(
            &keys.csrf,
            b"phaze/device-cookies",
        ))));
        let limits = Limits::new(rate_limits, limit_key, settings.ratelimit.clone());
        let challenges = ChallengeIssuer::new(
            SecretBox::new(Box::new(derive(&keys.token_pepper, b"phaze/challenges"))),
            settings.ratelimit.challenge_difficulty_bits,
            Duration::seconds(settings.ratelimit.challenge_ttl_secs.into()),
        );

        let a = &settings.auth;
        let argon = Argon2id::new(HashParams {
            m_cost: a.argon2_m_kib,
            t_cost: a.argon2_t,
            p_cost: a.argon2_p,
        })?;
        let concurrency = match a.hash_concurrency {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let auth = AuthService::new(
            accounts,
            tokens.clone(),
            mailer,
            Arc::new(OffloadedHasher::new(argon, concurrency)),
            TokenHasher::new(keys.token_pepper),
            AuthConfig {
                policy: PasswordPolicy {
                    min_chars: a.password_min,
                    max_chars: a.password_max,
                },
                verification_ttl: Duration::seconds(a.verification_ttl_secs.into()),
                public_url: public_url.clone(),
            },
        );

        let s = &settings.session;
        let sealer = Sealer::new(
            keys.session
                .iter()
                .map(|k| SealingKey::new(k.expose_secret()))
                .collect(),
        )?;
        let policy = SessionPolicy {
            absolute: Duration::seconds(s.absolute_secs.into()),
            idle: Duration::seconds(s.idle_secs.into()),
            rotate_after: Duration::seconds(s.rotate_secs.into()),
            grace: Duration::seconds(s.grace_secs.into()),
            touch_interval: Duration::seconds(s.touch_secs.into()),
            ip_binding: if s.ip_binding {
                IpBinding::Network {
                    v4_prefix: s.ip_v4_prefix,
                    v6_prefix: s.ip_v6_prefix,
                }
            } else {
                IpBinding::Off
            },
        };

        Ok(Self {
            proxies: TrustedProxies::new(settings.http.trusted_proxies.clone()),
            csrf: Csrf::new(keys.csrf),
            sessions: SessionManager::new(sessions, sealer, policy),
            views: Views::new()?,
            auth,
            clock,
            public_url,
            ready_dirs,
            tokens,
            limits,
            challenges,
            devices,
            settings,
        })
    }
}

/// A sub-key of `master` for `purpose` (HMAC-SHA256 as a PRF).
fn derive(master: &crate::secrets::Key, purpose: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master.expose_secret())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}
