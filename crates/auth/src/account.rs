use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;

pub use phaze_ids::UserId;

use crate::pii::{AccountRecord, EmailIndex, SealedFields};

/// An email address in its one canonical form: the login identifier, and an address the mailer
/// accepts.
///
/// Two spellings of one mailbox give one `Email`, so they can never be two accounts: the address
/// is trimmed, compatibility-normalised (NFKC: fullwidth letters, ligatures and NFD sequences
/// become their plain forms), lower-cased, and its domain converted to ASCII by IDNA (UTS #46,
/// strict: `bücher.example` and `xn--bcher-kva.example` are one domain). Control characters and
/// invisible ones (zero-width space, soft hyphen, bidi controls…) are refused rather than
/// dropped, so what is stored is what the user saw. The result must also be an address the
/// mailer ([`lettre::Address`]) accepts, so an address is never stored that mail cannot reach.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    /// Normalises and checks `raw` (see [`Email`]): one `@`, a local part of 1–64 bytes without
    /// leading, trailing or doubled dots or characters that need quoting, a domain of DNS labels
    /// with at least one dot, 254 bytes in all. Returns `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        let email = phaze_sanitize::fold_email(raw)?;
        let (local, domain) = email.split_once('@')?;
        let ok = email.len() <= 254
            && (1..=64).contains(&local.len())
            && (1..=253).contains(&domain.len())
            && domain.contains('.')
            && !domain.ends_with('.')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                !c.is_whitespace()
                    && !matches!(
                        c,
                        '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '\\' | '"' | '@'
                    )
            })
            // The mailer's own rules, so that every stored address can be mailed.
            && lettre::Address::new(local, domain).is_ok();
        ok.then_some(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An address that was an `Email` when it was sealed: the AEAD vouches for it, so it is not
    /// normalised and checked again on every read.
    pub(crate) fn from_sealed(address: String) -> Self {
        Self(address)
    }

    /// The part before `@`, used as the default display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Email::parse(&s).ok_or_else(|| "invalid email address".to_owned())
    }
}

impl From<Email> for String {
    fn from(e: Email) -> Self {
        e.0
    }
}

/// A display name: 1–64 characters after NFC and trimming, no control or invisible formatting
/// characters. HTML in it is kept as typed and escaped wherever it is shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates and normalises a display name.
    pub fn parse(raw: &str) -> Result<Self, phaze_sanitize::TextError> {
        phaze_sanitize::single_line(raw, Self::MAX_CHARS).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A name that was a `DisplayName` when it was sealed (see [`Email::from_sealed`]).
    pub(crate) fn from_sealed(name: String) -> Self {
        Self(name)
    }
}

impl TryFrom<String> for DisplayName {
    type Error = phaze_sanitize::TextError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        DisplayName::parse(&s)
    }
}

impl From<DisplayName> for String {
    fn from(d: DisplayName) -> Self {
        d.0
    }
}

/// A customer account. `Debug` leaves the password hash out, so logging an account never logs it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Permanent id.
    pub id: UserId,
    /// Login identifier, unique across accounts.
    pub email: Email,
    /// Whether the owner has followed the verification link.
    pub email_verified: bool,
    /// PHC string of the argon2id hash.
    pub password_hash: String,
    /// Name shown in the portal.
    pub display_name: DisplayName,
    /// Operators' flag, set with `phaze-portal admin grant`.
    pub is_admin: bool,
    /// Suspended by an admin: no login, no session, until unlocked.
    #[serde(default)]
    pub locked: bool,
    /// Registration time.
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
    /// Last password change (or registration).
    #[serde(with = "time::serde::timestamp")]
    pub password_changed_at: OffsetDateTime,
    /// Two-factor authentication: on when present with an `enabled_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_factor: Option<TwoFactor>,
}

impl Account {
    /// Whether logging in needs a second factor.
    pub fn two_factor_enabled(&self) -> bool {
        self.two_factor
            .as_ref()
            .is_some_and(|t| t.enabled_at.is_some())
    }
}

/// An account's TOTP enrolment. `Debug` shows neither the sealed secret nor the code hashes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TwoFactor {
    /// The TOTP secret, sealed at rest like session data (XChaCha20-Poly1305 under the session
    /// keys, bound to this account's id): a store dump gives no secret, and a blob moved to
    /// another account does not open.
    pub sealed_secret: Vec<u8>,
    /// When a valid code completed the enrolment; `None` while it is pending (the secret was
    /// shown, no code has proved the app holds it yet), and then login does not ask for a code.
    #[serde(default, with = "time::serde::timestamp::option")]
    pub enabled_at: Option<OffsetDateTime>,
    /// Keyed hashes of the recovery codes of the current set that are not used yet. Each is also
    /// a single-use token in the [`crate::TokenStore`], which settles a race between two
    /// processes spending one code; a hash missing here (an older set) never works.
    #[serde(default)]
    pub recovery_codes: Vec<crate::TokenHash>,
}

impl fmt::Debug for TwoFactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwoFactor")
            .field("sealed_secret", &"<redacted>")
            .field("enabled_at", &self.enabled_at)
            .field("recovery_codes", &self.recovery_codes.len())
            .finish()
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("password_hash", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("is_admin", &self.is_admin)
            .field("created_at", &self.created_at)
            .field("password_changed_at", &self.password_changed_at)
            .field("two_factor", &self.two_factor)
            .finish()
    }
}

#[cfg(test)]
mod debug_tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_password_hash() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
        let account = Account {
            id: UserId::generate(),
            email: Email::parse("a@example.com").unwrap_or_else(|| unreachable!()),
            email_verified: true,
            password_hash: hash.to_owned(),
            display_name: DisplayName::parse("A").unwrap_or_else(|_| unreachable!()),
            is_admin: false,
            locked: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            password_changed_at: OffsetDateTime::UNIX_EPOCH,
            two_factor: Some(TwoFactor {
                sealed_secret: b"SEALEDSECRET".to_vec(),
                enabled_at: None,
                recovery_codes: vec![crate::TokenHash([0xab; 32])],
            }),
        };
        let printed = format!("{account:?}");
        assert!(!printed.contains("argon2id") && !printed.contains("aGFzaGhhc2hoYXNo"));
        assert!(
            !printed.contains("83, 69, 65") && !printed.contains("171"),
            "{printed}"
        );
        assert!(printed.contains("a@example.com") && printed.contains("<redacted>"));
    }
}

/// Errors of [`AccountStore`] (and [`crate::TokenStore`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The email (or token) is taken.
    #[error("already exists")]
    Duplicate,
    /// No such record.
    #[error("not found")]
    NotFound,
    /// The backend failed; callers fail closed (503), never "no such account".
    #[error("account store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage for accounts, as [`AccountRecord`]s: an adapter never sees an address or a name in
/// the clear ([`crate::pii`]). The email index is unique, guaranteed atomically by the store
/// even when several processes insert at once.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Fails with [`StoreError::Duplicate`] if the email index (or id) is taken.
    async fn insert(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// Looks an account up by its email index.
    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, StoreError>;
    /// Looks an account up by id.
    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, StoreError>;
    /// Replaces an existing account (same id and email index); [`StoreError::NotFound`] if it
    /// is gone.
    async fn update(&self, account: &AccountRecord) -> Result<(), StoreError>;
    /// Deletes the account and its email's index entry (the address is free again); `false` if
    /// there was none. For account deletion: every other lookup answers `None` afterwards.
    async fn remove(&self, id: &UserId) -> Result<bool, StoreError>;
    /// Up to `limit` records after the one of `after` (from the start for `None`), in an order of
    /// the store's that does not change while it is walked: a key rotation visits every account
    /// with it. An account inserted meanwhile may or may not be visited (it was sealed under the
    /// newest key anyway).
    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, StoreError>;
    /// Replaces the sealed fields of the account `id` with `new` if they are still `old`, and
    /// nothing else: a change made meanwhile is kept (and sealed under the newest key already).
    /// `false` if they changed or the account is gone.
    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, StoreError>;
    /// Up to `limit` accounts stored in the clear by a version of Phaze from before sealing;
    /// empty once [`AccountStore::seal_clear`] has sealed them all.
    async fn clear(&self, limit: usize) -> Result<Vec<Account>, StoreError>;
    /// Replaces the clear account `record.id` (and its index entry) with `record`; `false` if it
    /// is not stored in the clear (any more).
    async fn seal_clear(&self, record: &AccountRecord) -> Result<bool, StoreError>;
    /// Keeps `check` (a MAC of a constant under the email index key) if the store has none yet,
    /// atomically, and answers whether the store's check is `check`: a process with another
    /// index key would find no account and let an address register twice, so it must not start.
    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, StoreError>;
}
