use secrecy::SecretString;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use phaze_events::{Events, SecurityEvent};
use phaze_sessions::Sealer;

use crate::letters::Letters;
use crate::two_factor::StepLedger;
use crate::{
    Account, AccountSealer, AccountStore, DisplayName, Email, EmailIndexKey, HashError, HeldMail,
    MailError, Mailer, OutgoingMail, PasswordHasher, PasswordPolicy, PasswordRejection,
    Registration, SealedAccounts, StoreError, Token, TokenHasher, TokenPurpose, TokenRecord,
    TokenStore, UserId,
};

/// Settings of [`AuthService`].
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Rules for new passwords.
    pub policy: PasswordPolicy,
    /// Lifetime of an email verification link (default 24 h).
    pub verification_ttl: Duration,
    /// Lifetime of a password reset link (default 1 h).
    pub reset_ttl: Duration,
    /// The portal's public base URL, for links in mail (no trailing slash).
    pub public_url: String,
    /// The text of each message ([`Letters::default`]: the compiled-in templates).
    pub letters: Letters,
}

/// What went wrong, in terms the portal maps to responses. Variants that could reveal whether an
/// account exists are never returned for an unknown account: `login` answers
/// [`AuthError::InvalidCredentials`] for both.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Email unknown or password wrong: one variant for both.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// Right password, but the address is not verified yet (only reachable with the password).
    #[error("email not verified")]
    EmailNotVerified,
    /// Right credentials (and second factor), but an admin suspended the account.
    #[error("account locked")]
    AccountLocked,
    /// The email is not an address.
    #[error("invalid email address")]
    InvalidEmail,
    /// The two passwords typed differ.
    #[error("passwords do not match")]
    PasswordMismatch,
    /// The new password breaks the policy.
    #[error(transparent)]
    WeakPassword(#[from] PasswordRejection),
    /// The display name is empty, too long or holds control characters.
    #[error("invalid display name: {0}")]
    InvalidDisplayName(#[from] phaze_sanitize::TextError),
    /// Unknown, used or expired token.
    #[error("invalid or expired token")]
    InvalidToken,
    /// The session's account no longer exists.
    #[error("account not found")]
    AccountGone,
    /// A store failed.
    #[error("store unavailable")]
    Store(#[source] StoreError),
    /// Hashing failed.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// Mail could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// A two-factor code (enrolment) was wrong or already used.
    #[error("invalid or used code")]
    InvalidCode,
    /// Two-factor authentication is already on.
    #[error("two-factor authentication is on")]
    TwoFactorOn,
    /// Two-factor authentication is off (or its enrolment was not started).
    #[error("two-factor authentication is off")]
    TwoFactorOff,
    /// A stored TOTP secret does not open under the configured keys (a removed key, a
    /// tampered store): the caller fails closed.
    #[error("two-factor secret could not be opened")]
    Sealed,
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

/// The part of a reset request that depends on whether the address has an account, handed back
/// by [`AuthService::request_password_reset`] to be finished by
/// [`AuthService::complete_reset_request`] off the request path.
#[must_use = "a reset request does nothing until complete_reset_request runs"]
#[derive(Debug)]
pub struct ResetJob {
    email: Option<Email>,
}

/// The part of a registration that depends on whether the address is taken, handed back by
/// [`AuthService::register`] to be finished by [`AuthService::complete_registration`] off the
/// request path. `Debug` leaves the password hash out.
#[must_use = "a registration does nothing until complete_registration runs"]
#[derive(Debug)]
pub struct RegistrationJob {
    email: Email,
    password_hash: PasswordHash,
}

/// A PHC string whose `Debug` shows nothing.
struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The keys of [`AuthService`], from configuration.
pub struct AuthKeys {
    /// The pepper that tokens and recovery codes are hashed under.
    pub tokens: TokenHasher,
    /// Seals TOTP secrets, addresses and display names at rest: the session sealing keys, so
    /// one rotation covers them all.
    pub sealer: Sealer,
    /// Keys the blind index accounts are found by ([`crate::pii`]).
    pub email_index: EmailIndexKey,
}

/// The account use cases: register, verify, log in (with a second factor), change password,
/// reset it, edit profile, two-factor authentication.
pub struct AuthService {
    pub(crate) accounts: SealedAccounts,
    pub(crate) tokens: Arc<dyn TokenStore>,
    pub(crate) steps: Arc<dyn StepLedger>,
    pub(crate) mailer: Arc<dyn Mailer>,
    pub(crate) hasher: Arc<dyn PasswordHasher>,
    pub(crate) token_hasher: TokenHasher,
    pub(crate) sealer: Sealer,
    pub(crate) config: AuthConfig,
    /// A TOTP secret of no account, sealed, that a code is matched against when the account has
    /// none: the same work either way ([`AuthService::login`]).
    pub(crate) dummy_totp: (UserId, Vec<u8>),
    pub(crate) events: Events,
}

impl AuthService {
    /// Wires the service to its ports.
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        tokens: Arc<dyn TokenStore>,
        steps: Arc<dyn StepLedger>,
        mailer: Arc<dyn Mailer>,
        hasher: Arc<dyn PasswordHasher>,
        keys: AuthKeys,
        config: AuthConfig,
    ) -> Self {
        Self {
            accounts: SealedAccounts::new(
                accounts,
                AccountSealer::new(keys.sealer.clone(), keys.email_index),
            ),
            tokens,
            steps,
            mailer,
            hasher,
            token_hasher: keys.tokens,
            dummy_totp: crate::two_factor::dummy_secret(&keys.sealer),
            sealer: keys.sealer,
            config,
            events: Events::default(),
        }
    }

    /// Reports credential and role changes through `events`.
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The account store as this service sees it (sealing and opening on the way).
    pub fn accounts(&self) -> &SealedAccounts {
        &self.accounts
    }

    /// The configured password policy.
    pub fn policy(&self) -> PasswordPolicy {
        self.config.policy
    }

    /// Starts registering `email`: checks the input and hashes the password, and nothing else.
    ///
    /// Nothing here reads or writes a store, so the answer and its timing are the same whether or
    /// not the address is taken, on every store. What does depend on it (a link for a new
    /// address, a notice to an existing owner) is [`AuthService::complete_registration`], which
    /// the caller runs off the request path, after answering: awaiting it before answering would
    /// tell a caller, by time or by a store's error, whether the address is registered.
    pub async fn register(
        &self,
        email: &str,
        password: SecretString,
        confirm: &SecretString,
    ) -> Result<RegistrationJob, AuthError> {
        use secrecy::ExposeSecret;
        let email = Email::parse(email).ok_or(AuthError::InvalidEmail)?;
        if password.expose_secret() != confirm.expose_secret() {
            return Err(AuthError::PasswordMismatch);
        }
        self.config
            .policy
            .check(password.expose_secret(), Some(&email))?;
        let password_hash = self.hasher.hash(password).await?;
        Ok(RegistrationJob {
            email,
            password_hash: PasswordHash(password_hash),
        })
    }

    /// Finishes a registration off the request path. A registration is pending until its own
    /// link is used: no account exists before, so nobody's password works for an address whose
    /// owner has not confirmed it, and the password that becomes active is the one chosen in the
    /// registration whose link was used ([`AuthService::verify_email`]). A new registration of
    /// an unconfirmed address starts a new pending registration and kills the older link; the
    /// owner of a confirmed address gets a notice instead, and nothing changes.
    pub async fn complete_registration(
        &self,
        job: RegistrationJob,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let RegistrationJob {
            email,
            password_hash,
        } = job;
        match self.accounts.by_email(&email).await? {
            Some(account) if account.email_verified => self.notify_existing(&email).await,
            // An account stored unconfirmed by an older version of Phaze gets its id reused:
            // using the link confirms it with this registration's password.
            other => {
                let user_id = other.map_or_else(UserId::generate, |a| a.id);
                self.send_link(user_id, &email, password_hash.0, now).await
            }
        }
    }

    async fn notify_existing(&self, email: &Email) -> Result<(), AuthError> {
        self.send_letter(email, "account_exists.txt", self.letter_context())
            .await
    }

    /// Sends a new confirmation link to an account left unconfirmed by an older version of
    /// Phaze (its owner just proved the password); the link confirms it with that password.
    pub async fn send_verification(
        &self,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        self.send_link(
            account.id,
            &account.email,
            account.password_hash.clone(),
            now,
        )
        .await
    }

    /// After [`AuthService::login`] answered [`AuthError::EmailNotVerified`] for `email`, and only
    /// then (the caller has just proved the password, so this reveals nothing and mails no one
    /// who did not ask): a new confirmation link for that unconfirmed account.
    pub async fn resend_verification(
        &self,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let Some(email) = Email::parse(email) else {
            return Ok(());
        };
        match self.accounts.by_email(&email).await? {
            Some(account) if !account.email_verified => self.send_verification(&account, now).await,
            _ => Ok(()),
        }
    }

    /// The account behind a session's user id, if it still exists.
    pub async fn account(&self, user: &UserId) -> Result<Option<Account>, AuthError> {
        Ok(self.accounts.by_id(user).await?)
    }

    /// The messages to the account `user` that the mailer still holds (for the export).
    pub async fn mail_held_for(&self, user: &UserId) -> Result<Vec<HeldMail>, AuthError> {
        let account = self
            .accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)?;
        Ok(self.mailer.held(&account.email).await?)
    }

    /// Suspends (`true`) or reinstates the account `user`: a locked account cannot log in
    /// ([`AuthError::AccountLocked`], said only after every factor was right) and its sessions
    /// stop working. The caller ends its sessions.
    pub async fn set_locked(&self, user: &UserId, locked: bool) -> Result<Account, AuthError> {
        let mut account = self
            .accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)?;
        if account.locked != locked {
            account.locked = locked;
            self.accounts.update(&account).await?;
        }
        Ok(account)
    }

    /// [`AuthService::set_admin`] for the account `user`.
    pub async fn set_admin_of(&self, user: &UserId, admin: bool) -> Result<Account, AuthError> {
        let account = self
            .accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)?;
        self.set_admin(account.email.as_str(), admin).await
    }

    /// The account of `email` (folded as at login), for an admin's lookup.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<Account>, AuthError> {
        match Email::parse(email) {
            Some(email) => Ok(self.accounts.by_email(&email).await?),
            None => Err(AuthError::InvalidEmail),
        }
    }

    /// Grants (`true`) or takes away the admin flag of the account of `email`. The caller ends
    /// the account's sessions, so the change never applies to a session that predates it.
    pub async fn set_admin(&self, email: &str, admin: bool) -> Result<Account, AuthError> {
        let email = Email::parse(email).ok_or(AuthError::InvalidEmail)?;
        let mut account = self
            .accounts
            .by_email(&email)
            .await?
            .ok_or(AuthError::AccountGone)?;
        if account.is_admin != admin {
            account.is_admin = admin;
            self.accounts.update(&account).await?;
        }
        self.events.emit(SecurityEvent::RoleChanged {
            user: account.id,
            admin,
        });
        Ok(account)
    }

    /// Issues the link of a pending registration (killing the address's older link) and mails it.
    async fn send_link(
        &self,
        user_id: UserId,
        email: &Email,
        password_hash: String,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let token = Token::generate();
        let registration = Registration {
            email: self.accounts.sealer().seal_email(&user_id, email),
            password_hash,
        };
        let record = TokenRecord {
            hash: self
                .token_hasher
                .hash(TokenPurpose::EmailVerification, token.expose()),
            purpose: TokenPurpose::EmailVerification,
            user_id,
            expires_at: now + self.config.verification_ttl,
            registration: Some(registration),
        };
        self.tokens.issue(&record).await?;
        let mut context = self.letter_context();
        context.insert("token", token.expose());
        context.insert("hours", &self.config.verification_ttl.whole_hours());
        self.send_letter(email, "verify_email.txt", context).await
    }

    /// Uses a confirmation link: creates the account of its registration with the password
    /// chosen in it. A used, expired, replaced or unknown link, or one for an address that was
    /// confirmed meanwhile, is [`AuthError::InvalidToken`].
    pub async fn verify_email(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        let hash = self
            .token_hasher
            .hash(TokenPurpose::EmailVerification, token);
        let record = self
            .tokens
            .consume(&hash, TokenPurpose::EmailVerification, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let account = match record.registration {
            Some(registration) => self.activate(record.user_id, registration, now).await?,
            // A link mailed by an older version of Phaze, for an account it stored unconfirmed.
            None => {
                let mut account = self
                    .accounts
                    .by_id(&record.user_id)
                    .await?
                    .ok_or(AuthError::InvalidToken)?;
                if !account.email_verified {
                    account.email_verified = true;
                    self.accounts.update(&account).await?;
                }
                account
            }
        };
        self.events
            .emit(SecurityEvent::EmailVerified { user: account.id });
        Ok(account)
    }

    async fn activate(
        &self,
        id: UserId,
        registration: Registration,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        let Registration {
            email,
            password_hash,
        } = registration;
        // The address was sealed for this id when the link was issued.
        let email = self
            .accounts
            .sealer()
            .open_email(&id, &email)
            .map_err(|e| AuthError::Store(StoreError::Backend(Box::new(e))))?;
        match self.accounts.by_email(&email).await? {
            Some(account) if account.email_verified => Err(AuthError::InvalidToken),
            Some(mut account) => {
                account.password_hash = password_hash;
                account.email_verified = true;
                account.password_changed_at = now;
                self.accounts.update(&account).await?;
                Ok(account)
            }
            None => {
                let display_name = DisplayName::parse(email.local_part())
                    .or_else(|_| DisplayName::parse("Customer"))?;
                let account = Account {
                    id,
                    email,
                    email_verified: true,
                    password_hash,
                    display_name,
                    is_admin: false,
                    locked: false,
                    created_at: now,
                    password_changed_at: now,
                    two_factor: None,
                };
                match self.accounts.insert(&account).await {
                    Ok(()) => Ok(account),
                    // Confirmed meanwhile through another process: this link is spent.
                    Err(StoreError::Duplicate) => Err(AuthError::InvalidToken),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Checks credentials. Unknown address, malformed address and wrong password all return
    /// [`AuthError::InvalidCredentials`] after the same argon2id work. On success the hash is
    /// upgraded if the parameters changed.
    ///
    /// An account with two-factor authentication also needs `second_factor`: a TOTP code of
    /// its app, accepted once per time step, or an unused recovery code (spent). A missing,
    /// wrong or replayed one is the same [`AuthError::InvalidCredentials`] as a wrong password:
    /// one flow, one answer, one failure counted by the caller's lockout.
    pub async fn login(
        &self,
        email: &str,
        password: SecretString,
        second_factor: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        let account = match Email::parse(email) {
            Some(email) => self.accounts.by_email(&email).await?,
            None => None,
        };
        let phc = account.as_ref().map(|a| a.password_hash.clone());
        let verdict = self.hasher.verify(password.clone(), phc).await?;
        // Equal work: a code that is given is matched whether or not the password is right and
        // the account has 2FA (against a dummy secret if not), so the time of the answer tells
        // neither. Only what follows a right password touches a store.
        let step = match second_factor {
            Some(code) => self.match_code(account.as_ref(), code, now)?,
            None => None,
        };
        let Some(mut account) = account.filter(|_| verdict.matches) else {
            return Err(AuthError::InvalidCredentials);
        };
        if verdict.needs_rehash {
            // Best effort: a failed upgrade must not fail the login.
            if let Ok(hash) = self.hasher.hash(password).await {
                account.password_hash = hash;
                if let Err(e) = self.accounts.update(&account).await {
                    tracing::warn!(error = %e, "password rehash could not be stored");
                }
            }
        }
        if !account.email_verified {
            return Err(AuthError::EmailNotVerified);
        }
        if account.two_factor_enabled() {
            let Some(code) = second_factor else {
                return Err(AuthError::InvalidCredentials);
            };
            if !self.second_factor(&mut account, code, step, now).await? {
                return Err(AuthError::InvalidCredentials);
            }
        }
        // Said only to whoever proved every factor: nobody else learns the account exists.
        if account.locked {
            return Err(AuthError::AccountLocked);
        }
        Ok(account)
    }

    /// Changes the password after checking the current one, and mails a notice to the owner.
    /// The caller ends the user's other sessions.
    pub async fn change_password(
        &self,
        user: &UserId,
        current: SecretString,
        new: SecretString,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        use secrecy::ExposeSecret;
        let mut account = self
            .accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)?;
        let verdict = self
            .hasher
            .verify(current, Some(account.password_hash.clone()))
            .await?;
        if !verdict.matches {
            return Err(AuthError::InvalidCredentials);
        }
        self.config
            .policy
            .check(new.expose_secret(), Some(&account.email))?;
        account.password_hash = self.hasher.hash(new).await?;
        account.password_changed_at = now;
        self.accounts.update(&account).await?;
        self.events
            .emit(SecurityEvent::PasswordChanged { user: account.id });
        self.send_letter(
            &account.email,
            "password_changed.txt",
            self.letter_context(),
        )
        .await?;
        Ok(account)
    }

    /// Starts a password reset for `email`: touches no store and sends nothing, so the answer
    /// and its timing are the same for a known, an unknown and a malformed address. The work
    /// that differs is [`AuthService::complete_reset_request`], run off the request path.
    pub fn request_password_reset(&self, email: &str) -> ResetJob {
        ResetJob {
            email: Email::parse(email),
        }
    }

    /// Finishes a reset request off the request path: for a confirmed account, a new reset link
    /// (the older link of that account dies in the same step, [`TokenStore::issue`]), mailed to
    /// the address; for anything else, nothing.
    pub async fn complete_reset_request(
        &self,
        job: ResetJob,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let Some(email) = job.email else {
            return Ok(());
        };
        let Some(account) = self.accounts.by_email(&email).await? else {
            return Ok(());
        };
        if !account.email_verified {
            return Ok(());
        }
        let token = Token::generate();
        self.tokens
            .issue(&TokenRecord {
                hash: self
                    .token_hasher
                    .hash(TokenPurpose::PasswordReset, token.expose()),
                purpose: TokenPurpose::PasswordReset,
                user_id: account.id,
                expires_at: now + self.config.reset_ttl,
                registration: None,
            })
            .await?;
        let mut context = self.letter_context();
        context.insert("token", token.expose());
        context.insert("minutes", &self.config.reset_ttl.whole_minutes());
        self.send_letter(&account.email, "password_reset.txt", context)
            .await
    }

    /// Whether `token` is a live reset link, without using it (the reset page shows its form
    /// only for one).
    pub async fn check_reset_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let hash = self.token_hasher.hash(TokenPurpose::PasswordReset, token);
        match self
            .tokens
            .find(&hash, TokenPurpose::PasswordReset, now)
            .await?
        {
            Some(_) => Ok(()),
            None => Err(AuthError::InvalidToken),
        }
    }

    /// Uses a reset link: sets `new` as the password and mails a notice. The new password is
    /// checked against the policy before the link is spent, so a refused password leaves the
    /// link usable; of several requests racing on one link, one succeeds. The caller ends every
    /// session of the returned account.
    pub async fn reset_password(
        &self,
        token: &str,
        new: SecretString,
        confirm: &SecretString,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        use secrecy::ExposeSecret;
        let hash = self.token_hasher.hash(TokenPurpose::PasswordReset, token);
        let record = self
            .tokens
            .find(&hash, TokenPurpose::PasswordReset, now)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let mut account = self
            .accounts
            .by_id(&record.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if new.expose_secret() != confirm.expose_secret() {
            return Err(AuthError::PasswordMismatch);
        }
        self.config
            .policy
            .check(new.expose_secret(), Some(&account.email))?;
        let password_hash = self.hasher.hash(new).await?;
        // Spent here, once: a parallel request that found the same link finds it gone.
        if self
            .tokens
            .consume(&hash, TokenPurpose::PasswordReset, now)
            .await?
            .is_none()
        {
            return Err(AuthError::InvalidToken);
        }
        account.password_hash = password_hash;
        account.password_changed_at = now;
        self.accounts.update(&account).await?;
        self.events
            .emit(SecurityEvent::PasswordReset { user: account.id });
        self.send_letter(
            &account.email,
            "password_was_reset.txt",
            self.letter_context(),
        )
        .await?;
        Ok(account)
    }

    /// Sets the display name.
    pub async fn update_display_name(
        &self,
        user: &UserId,
        name: &str,
    ) -> Result<Account, AuthError> {
        let name = DisplayName::parse(name)?;
        let mut account = self
            .accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)?;
        if account.display_name != name {
            account.display_name = name;
            self.accounts.update(&account).await?;
        }
        Ok(account)
    }

    /// What every message's template may use: `url`, the portal's public base URL.
    pub(crate) fn letter_context(&self) -> tera::Context {
        let mut context = tera::Context::new();
        context.insert("url", &self.config.public_url);
        context
    }

    /// Renders the template `name` with `context` and hands the message to the mailer.
    pub(crate) async fn send_letter(
        &self,
        to: &Email,
        name: &str,
        context: tera::Context,
    ) -> Result<(), AuthError> {
        let (subject, body) = self.config.letters.render(name, &context)?;
        let mail = OutgoingMail {
            to: to.clone(),
            subject,
            body,
        };
        Ok(self.mailer.send(&mail).await?)
    }
}
