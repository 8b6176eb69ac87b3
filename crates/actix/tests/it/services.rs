//! The three Phaze services a `VisitorLayer` or a `LoginFlow` runs over, on memory stores with
//! fixed keys and a cheap argon2 (the rules under test are not the hash's).

use phaze_actix::RateLimitStepLedger;
use phaze_auth::{
    Argon2id, AuthConfig, AuthKeys, AuthService, EmailIndexKey, HashParams, PasswordPolicy,
    TokenHasher,
};
use phaze_ratelimit::{KeyHasher, LimitKeys, Limits, RateLimitPolicy};
use phaze_sessions::{Sealer, SealingKey, SessionManager, SessionPolicy};
use phaze_store_memory::{
    MemoryAccounts, MemoryMailer, MemoryRateLimits, MemorySessions, MemoryTokens,
};
use secrecy::SecretBox;
use std::sync::Arc;
use time::Duration;

pub(crate) const ORIGIN: &str = "https://portal.example";

pub(crate) struct Services {
    pub(crate) auth: Arc<AuthService>,
    pub(crate) sessions: Arc<SessionManager>,
    pub(crate) limits: Arc<Limits>,
    pub(crate) mailer: Arc<MemoryMailer>,
}

pub(crate) fn secret(b: u8) -> SecretBox<[u8; 32]> {
    SecretBox::new(Box::new([b; 32]))
}

/// The hasher `services` uses, for tests that store a password hash first.
pub(crate) fn hasher() -> Argon2id {
    Argon2id::new(HashParams {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    })
    .unwrap()
}

pub(crate) fn services(accounts: Arc<MemoryAccounts>, policy: RateLimitPolicy) -> Services {
    let mailer = Arc::new(MemoryMailer::default());
    let rate_limits = Arc::new(MemoryRateLimits::default());
    let auth = Arc::new(AuthService::new(
        accounts,
        Arc::new(MemoryTokens::default()),
        Arc::new(RateLimitStepLedger::new(
            rate_limits.clone(),
            KeyHasher::new(secret(6)),
        )),
        mailer.clone(),
        Arc::new(hasher()),
        AuthKeys {
            tokens: TokenHasher::new(secret(1)),
            sealer: Sealer::new(vec![SealingKey::new(&[2; 32])]).unwrap(),
            email_index: EmailIndexKey::new(secret(5)),
        },
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: Duration::hours(24),
            reset_ttl: Duration::hours(1),
            public_url: ORIGIN.into(),
            letters: phaze_auth::Letters::default(),
        },
    ));
    let sessions = Arc::new(SessionManager::new(
        Arc::new(MemorySessions::default()),
        Sealer::new(vec![SealingKey::new(&[2; 32])]).unwrap(),
        SessionPolicy::default(),
    ));
    let limits = Arc::new(Limits::new(
        rate_limits,
        LimitKeys {
            keys: secret(3),
            devices: secret(4),
            challenges: secret(5),
        },
        policy,
    ));
    Services {
        auth,
        sessions,
        limits,
        mailer,
    }
}
