use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use time::OffsetDateTime;

use crate::{SealedEmail, StoreError, UserId};

/// What a token is for; a token of one purpose never works for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// The link in the "verify your address" mail.
    EmailVerification,
    /// The link in the "reset your password" mail.
    PasswordReset,
    /// A recovery code of an account with two-factor authentication: a token the user holds
    /// from the moment it was shown, spent by using it instead of a TOTP code.
    RecoveryCode,
}

/// A token as mailed to the user: 256 bits, base64url. It is never stored.
pub struct Token(String);

impl Token {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The value for the link.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The stored form of a token: HMAC-SHA256 under the server's token pepper. A dump of the store
/// gives neither the tokens nor a way to test guesses without the pepper.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..12])
    }
}

/// Computes [`TokenHash`]es under the configured pepper.
pub struct TokenHasher {
    pepper: SecretBox<[u8; 32]>,
}

impl TokenHasher {
    /// A hasher under `pepper`.
    pub fn new(pepper: SecretBox<[u8; 32]>) -> Self {
        Self { pepper }
    }

    /// The stored form of `token` for `purpose`. Input of any length or content is fine: it is only
    /// ever hashed, and a guess costs an HMAC, never a store lookup by the raw value.
    pub fn hash(&self, purpose: TokenPurpose, token: &str) -> TokenHash {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = match Hmac::<Sha256>::new_from_slice(self.pepper.expose_secret()) {
            Ok(mac) => mac,
            Err(_) => unreachable_hmac(),
        };
        mac.update(match purpose {
            TokenPurpose::EmailVerification => b"verify\0",
            TokenPurpose::PasswordReset => b"reset\0\0",
            TokenPurpose::RecoveryCode => b"recover",
        });
        mac.update(token.as_bytes());
        TokenHash(mac.finalize().into_bytes().into())
    }
}

#[cold]
fn unreachable_hmac() -> ! {
    // `Hmac::new_from_slice` only fails for fixed-size-key MACs, never for HMAC.
    panic!("HMAC rejected a 32-byte key")
}

impl fmt::Debug for TokenHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHasher(<redacted>)")
    }
}

/// A stored token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Keyed hash of the token.
    pub hash: TokenHash,
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose it is: the account it acts on, or the id the account of a [`Registration`] gets.
    pub user_id: UserId,
    /// Dead at and after this instant.
    #[serde(with = "time::serde::timestamp")]
    pub expires_at: OffsetDateTime,
    /// For a registration link: the account that using it creates. A registration exists only
    /// as its link until the link is used, so an unverified address holds no account anyone's
    /// password works for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<Registration>,
}

impl TokenRecord {
    /// What the token is about, for "one live token per purpose and subject"
    /// ([`TokenStore::issue`]): the address of a registration (its index), else the account. A recovery
    /// code is its own subject: an account holds ten at once, and which set is current is the
    /// account's to say ([`crate::TwoFactor::recovery_codes`]).
    pub fn subject(&self) -> String {
        match (&self.registration, self.purpose) {
            (Some(r), _) => format!("email:{}", r.email.index.to_hex()),
            (None, TokenPurpose::RecoveryCode) => format!("code:{}", self.hash.to_hex()),
            (None, _) => format!("user:{}", self.user_id),
        }
    }
}

/// A registration waiting for its link to be used: the address (sealed, like an account's) and
/// the password chosen with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The address being registered, sealed for the account the link creates
    /// ([`TokenRecord::user_id`]).
    pub email: SealedEmail,
    /// PHC string of the password chosen in this registration.
    pub password_hash: String,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// Storage for single-use tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token as the only live token of its purpose for its
    /// [subject](TokenRecord::subject): in the same atomic step, every other unused token of that
    /// purpose and subject stops working, even when several processes issue at once (a new
    /// registration of an address kills the older link; a new reset link kills the older one).
    /// [`StoreError::Duplicate`] if the hash exists.
    async fn issue(&self, record: &TokenRecord) -> Result<(), StoreError>;
    /// Atomically removes and returns the token if it exists, has this purpose and is not expired
    /// at `now`. Of any number of concurrent calls for one token, at most one gets `Some`.
    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// The token if it exists, has this purpose, is unused and is not expired at `now`, without
    /// using it: a page can say a link is dead before its form is filled in.
    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError>;
    /// Deletes expired tokens; returns how many went.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError>;
    /// Deletes every token of `user`, whatever its purpose, used or not (account deletion);
    /// returns how many went.
    async fn remove_user(&self, user: &UserId) -> Result<usize, StoreError>;
}
