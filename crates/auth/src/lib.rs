//! Accounts and authentication for Phaze.
//!
//! - [`Account`]s are keyed by a random [`UserId`] and found by their normalised [`Email`]; stores
//!   keep them as [`AccountRecord`]s, address and display name sealed and the address replaced by
//!   a keyed blind index ([`pii`]).
//! - Passwords are hashed with argon2id ([`Argon2id`], OWASP parameters by default) and re-hashed on
//!   login when the parameters change; unknown accounts are verified against a dummy hash so both
//!   paths cost the same ([`AuthService::login`]).
//! - [`PasswordPolicy`] enforces length and refuses the 30,000 most common breached passwords.
//! - A registration is pending until its own link is used ([`AuthService::register`],
//!   [`AuthService::complete_registration`], [`AuthService::verify_email`]): the account, with the
//!   password chosen in that registration, is created only then. Links are random, stored only as
//!   a keyed hash ([`TokenHasher`]), expire, are single use ([`TokenStore::consume`]), and a new
//!   one kills the older ones of its address ([`TokenStore::issue`]).
//!
//! Ports: [`AccountStore`], [`TokenStore`], [`Mailer`], and [`PasswordHasher`] (so the app can run
//! the CPU-heavy hashing off its async workers).
//!
//! **Invariant:** this crate never reads the clock, the network or the filesystem.
//!
//! ```
//! use phaze_auth::{EmailIndexKey,
//!     Argon2id, AuthConfig, AuthError, AuthKeys, AuthService, HashParams, Letters,
//!     PasswordPolicy, TokenHasher,
//! };
//! use phaze_sessions::{Sealer, SealingKey};
//! use phaze_store_memory::{MemoryAccounts, MemoryMailer, MemoryStepLedger, MemoryTokens};
//! use secrecy::{SecretBox, SecretString};
//! use std::sync::Arc;
//! use time::{macros::datetime, Duration};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let mailer = Arc::new(MemoryMailer::default());
//! let auth = AuthService::new(
//!     Arc::new(MemoryAccounts::default()),
//!     Arc::new(MemoryTokens::default()),
//!     Arc::new(MemoryStepLedger::default()), // TOTP steps used: a code works once
//!     mailer.clone(),
//!     Arc::new(Argon2id::new(HashParams::default())?), // OWASP: 19 MiB, 2 passes
//!     AuthKeys {
//!         tokens: TokenHasher::new(SecretBox::new(Box::new([3; 32]))), // the pepper
//!         sealer: Sealer::new(vec![SealingKey::new(&[4; 32])])?, // seals TOTP secrets, addresses
//!         email_index: EmailIndexKey::new(SecretBox::new(Box::new([5; 32]))), // finds accounts
//!     },
//!     AuthConfig {
//!         policy: PasswordPolicy::default(),
//!         verification_ttl: Duration::hours(24),
//!         reset_ttl: Duration::hours(1),
//!         public_url: "https://portal.example".into(),
//!         letters: Letters::default(), // the text of each message: tera templates
//!     },
//! );
//! let password = || SecretString::from("correct horse battery staple".to_owned());
//! let now = datetime!(2026-01-01 09:00 UTC);
//!
//! // Register: input checked and password hashed, no store touched, so the answer cannot tell
//! // whether the address is taken. The portal answers, then completes the registration.
//! let job = auth.register(" Ada@Example.com ", password(), &password()).await?;
//! auth.complete_registration(job, now).await?;
//! // Pending until its link is used: there is no account yet, so no password works.
//! let early = auth.login("ada@example.com", password(), None, now).await;
//! assert!(matches!(early, Err(AuthError::InvalidCredentials)));
//!
//! // The link in the mail creates the account, once.
//! let mail = mailer.sent().pop().ok_or("no mail")?;
//! assert_eq!(mail.to.as_str(), "ada@example.com");
//! let link = mail.body.split("/verify/").nth(1).ok_or("no link")?;
//! let token = link.split_whitespace().next().ok_or("no token")?;
//! let account = auth.verify_email(token, now).await?;
//! let again = auth.verify_email(token, now).await;
//! assert!(matches!(again, Err(AuthError::InvalidToken)));
//!
//! // Login: any spelling of the address; a wrong password and an unknown address get the same
//! // error after the same argon2id work.
//! assert_eq!(auth.login("ADA@example.com", password(), None, now).await?.id, account.id);
//! let wrong = SecretString::from("not the password".to_owned());
//! let refused = auth.login("ada@example.com", wrong, None, now).await;
//! assert!(matches!(refused, Err(AuthError::InvalidCredentials)));
//! let unknown = auth.login("nobody@example.com", password(), None, now).await;
//! assert!(matches!(unknown, Err(AuthError::InvalidCredentials)));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

mod account;
mod letters;
mod mail;
mod password;
pub mod pii;
mod service;
mod token;
pub mod totp;
mod two_factor;

pub use account::{Account, AccountStore, DisplayName, Email, StoreError, TwoFactor, UserId};
pub use letters::{LetterError, Letters};
pub use mail::{HeldMail, MailError, Mailer, OutgoingMail};
pub use password::{
    Argon2id, HashError, HashParams, PasswordHasher, PasswordPolicy, PasswordRejection,
    Verification,
};
pub use pii::{
    AccountRecord, AccountSealer, EmailIndex, EmailIndexKey, IndexKeyError, PiiError, Rotation,
    SealedAccounts, SealedEmail, SealedFields,
};
pub use service::{AuthConfig, AuthError, AuthKeys, AuthService, RegistrationJob, ResetJob};
pub use token::{
    Registration, Token, TokenHash, TokenHasher, TokenPurpose, TokenRecord, TokenStore,
};
pub use two_factor::{Enrolment, StepLedger, ISSUER};
