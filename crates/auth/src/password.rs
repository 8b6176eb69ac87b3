use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use async_trait::async_trait;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};
use subtle::ConstantTimeEq;

use crate::Email;

/// argon2id cost parameters. `Default` is OWASP's first recommendation: m = 19456 KiB, t = 2, p = 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HashParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self {
            m_cost: 19_456,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

/// Hashing failed (bad parameters, or a worker pool that went away).
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(pub String);

/// The outcome of checking a password against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verification {
    /// The password matches.
    pub matches: bool,
    /// The hash was made with other parameters (or another algorithm) than today's: store a new one.
    pub needs_rehash: bool,
}

/// Password hashing as a port, so the app can move the CPU-heavy work off its async workers
/// (a blocking pool) while tests and embedders call [`Argon2id`] directly.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A PHC string for `password` with a fresh random salt.
    async fn hash(&self, password: SecretString) -> Result<String, HashError>;
    /// Checks `password` against `phc`; with `None` it checks against a dummy hash so that an
    /// unknown account costs the same as a known one, and never matches.
    async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, HashError>;
}

/// argon2id from RustCrypto, with the configured parameters.
///
/// The 19 MiB of working memory each hash needs is taken from a small pool of reused buffers
/// instead of being allocated per hash: that is measurably faster, and it keeps the resident
/// memory of a process bounded by (concurrent hashes x m_cost) instead of letting every thread's
/// allocator arena keep its own copy after a burst of logins.
pub struct Argon2id {
    params: Params,
    config: HashParams,
    dummy: String,
    spare: Mutex<Vec<Vec<Block>>>,
    /// The (m, t, p) of every argon2 computation, so unit tests can prove that each path does
    /// the same work without timing it.
    #[cfg(test)]
    work: Mutex<Vec<(u32, u32, u32)>>,
}

/// How many idle buffers the pool keeps; callers bound concurrency themselves.
const SPARE_BUFFERS: usize = 8;

impl Argon2id {
    /// Fails if the parameters are outside what argon2 accepts.
    pub fn new(config: HashParams) -> Result<Self, HashError> {
        let params = Params::new(config.m_cost, config.t_cost, config.p_cost, None)
            .map_err(|e| HashError(e.to_string()))?;
        let mut me = Self {
            params,
            config,
            dummy: String::new(),
            spare: Mutex::new(Vec::new()),
            #[cfg(test)]
            work: Mutex::new(Vec::new()),
        };
        me.dummy = me.hash_sync("phaze dummy password, never valid")?;
        // Keep no m_cost-sized buffer from start-up: an idle process should not hold 19 MiB.
        me.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        Ok(me)
    }

    /// Runs argon2 with `params` into `out`, on a pooled buffer.
    fn compute(
        &self,
        argon: &Argon2<'_>,
        params: &Params,
        password: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        #[cfg(test)]
        self.work
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((params.m_cost(), params.t_cost(), params.p_cost()));
        let need = params.block_count();
        let mut blocks = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        if blocks.len() < need {
            blocks.resize(need, Block::default());
        }
        let result = argon
            .hash_password_into_with_memory(password, salt, out, &mut blocks[..need])
            .map_err(|e| HashError(e.to_string()));
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_BUFFERS {
            spare.push(blocks);
        }
        result
    }

    /// Hashes on the calling thread (tens of milliseconds at the default parameters).
    pub fn hash_sync(&self, password: &str) -> Result<String, HashError> {
        let err = |e: argon2::password_hash::Error| HashError(e.to_string());
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(err)?;
        let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        self.compute(
            &argon,
            &self.params,
            password.as_bytes(),
            raw_salt,
            &mut out,
        )?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(err)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(err)?),
        };
        Ok(phc.to_string())
    }

    /// Verifies on the calling thread. A malformed stored hash is a non-match, after the same work.
    pub fn verify_sync(&self, password: &str, phc: Option<&str>) -> Verification {
        let parsed = phc.and_then(|p| PasswordHash::new(p).ok());
        // No account, or a stored hash that cannot be checked (unparsable, or parsable without
        // its salt or output): the dummy hash is checked instead, so every path costs one
        // argon2 computation at the configured parameters.
        let matches = match parsed.as_ref().and_then(|hash| self.check(password, hash)) {
            Some(matches) => matches,
            None => {
                if let Ok(dummy) = PasswordHash::new(&self.dummy) {
                    let _ = self.check(password, &dummy);
                }
                false
            }
        };
        let needs_rehash = matches && parsed.as_ref().is_some_and(|h| self.is_outdated(h));
        Verification {
            matches,
            needs_rehash,
        }
    }

    fn check(&self, password: &str, hash: &PasswordHash<'_>) -> Option<bool> {
        let expected = hash.hash?;
        let params = Params::try_from(hash).ok()?;
        let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
        let version = hash
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .ok()?;
        let mut salt_bytes = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt_bytes).ok()?;
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        self.compute(&argon, &params, password.as_bytes(), salt, &mut out)
            .ok()?;
        Some(bool::from(expected.as_bytes().ct_eq(&out)))
    }

    fn is_outdated(&self, hash: &PasswordHash<'_>) -> bool {
        let current = Params::try_from(hash).ok();
        hash.algorithm != argon2::ARGON2ID_IDENT
            || hash.version != Some(Version::V0x13.into())
            || current.is_none_or(|p| {
                (p.m_cost(), p.t_cost(), p.p_cost())
                    != (self.config.m_cost, self.config.t_cost, self.config.p_cost)
            })
    }
}

#[async_trait]
impl PasswordHasher for Argon2id {
    async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.hash_sync(password.expose_secret())
    }

    async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, HashError> {
        Ok(self.verify_sync(password.expose_secret(), phc.as_deref()))
    }
}

/// Why a new password was refused; the message is shown to the user as is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejection {
    /// Fewer characters than the minimum.
    #[error("Use at least {0} characters.")]
    TooShort(usize),
    /// More characters than the maximum.
    #[error("Use at most {0} characters.")]
    TooLong(usize),
    /// On the list of common and breached passwords.
    #[error("This password is too common: it appears in lists of breached passwords.")]
    Common,
    /// Contains the account's email address or its local part.
    #[error("Do not use your email address in your password.")]
    ContainsEmail,
}

/// Rules for new passwords: length in characters (any Unicode), not common, not the email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (default 12).
    pub min_chars: usize,
    /// Maximum length in characters (default 128), which also caps the work one hash can cost.
    pub max_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
        }
    }
}

static COMMON_LIST: &str = include_str!("../data/common-passwords.txt");

fn common_passwords() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| COMMON_LIST.lines().filter(|l| !l.is_empty()).collect())
}

impl PasswordPolicy {
    /// How many passwords the shipped common-password list holds.
    pub fn common_list_len() -> usize {
        common_passwords().len()
    }

    /// Checks a new password for the account with `email`.
    pub fn check(&self, password: &str, email: Option<&Email>) -> Result<(), PasswordRejection> {
        let chars = password.chars().count();
        if chars < self.min_chars {
            return Err(PasswordRejection::TooShort(self.min_chars));
        }
        if chars > self.max_chars {
            return Err(PasswordRejection::TooLong(self.max_chars));
        }
        let lower = password.to_lowercase();
        if is_common(&lower) {
            return Err(PasswordRejection::Common);
        }
        if let Some(email) = email {
            let local = email.local_part();
            if lower.contains(email.as_str())
                || (local.chars().count() >= 4 && lower.contains(local))
            {
                return Err(PasswordRejection::ContainsEmail);
            }
        }
        Ok(())
    }
}

/// A common password, or one made of a common password repeated or with digits appended
/// ("passwordpassword", "qwerty123456789"), which length rules alone let through.
fn is_common(lower: &str) -> bool {
    let list = common_passwords();
    if list.contains(lower) {
        return true;
    }
    let base = lower.trim_end_matches(|c: char| c.is_ascii_digit() || "!.?@#$*_-".contains(c));
    if base.len() < lower.len() && (base.chars().count() < 4 || list.contains(base)) {
        return true;
    }
    (1..=lower.len() / 2).any(|n| {
        lower.len().is_multiple_of(n)
            && lower.is_char_boundary(n)
            && lower[..n].repeat(lower.len() / n) == lower
            && (n < 4 || list.contains(&lower[..n]))
    })
}

#[cfg(test)]
mod tests;
