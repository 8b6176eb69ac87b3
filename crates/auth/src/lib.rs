//! Accounts and authentication for Phaze.
//!
//! - [`Account`]s are keyed by a random [`UserId`] and found by their normalised [`Email`].
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
#![warn(missing_docs)]

mod account;
mod mail;
mod password;
mod service;
mod token;

pub use account::{Account, AccountStore, DisplayName, Email, StoreError, UserId};
pub use mail::{MailError, Mailer, OutgoingMail};
pub use password::{
    Argon2id, HashError, HashParams, PasswordHasher, PasswordPolicy, PasswordRejection,
    Verification,
};
pub use service::{AuthConfig, AuthError, AuthService, RegistrationJob};
pub use token::{
    Registration, Token, TokenHash, TokenHasher, TokenPurpose, TokenRecord, TokenStore,
};
