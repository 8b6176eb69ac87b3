use secrecy::SecretString;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::{
    Account, AccountStore, DisplayName, Email, HashError, MailError, Mailer, OutgoingMail,
    PasswordHasher, PasswordPolicy, PasswordRejection, StoreError, Token, TokenHasher,
    TokenPurpose, TokenRecord, TokenStore, UserId,
};

/// Settings of [`AuthService`].
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Rules for new passwords.
    pub policy: PasswordPolicy,
    /// Lifetime of an email verification link (default 24 h).
    pub verification_ttl: Duration,
    /// The portal's public base URL, for links in mail (no trailing slash).
    pub public_url: String,
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
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(e)
    }
}

/// The account use cases: register, verify, log in, change password, edit profile.
pub struct AuthService {
    accounts: Arc<dyn AccountStore>,
    tokens: Arc<dyn TokenStore>,
    mailer: Arc<dyn Mailer>,
    hasher: Arc<dyn PasswordHasher>,
    token_hasher: TokenHasher,
    config: AuthConfig,
}

impl AuthService {
    /// Wires the service to its ports.
    pub fn new(
        accounts: Arc<dyn AccountStore>,
        tokens: Arc<dyn TokenStore>,
        mailer: Arc<dyn Mailer>,
        hasher: Arc<dyn PasswordHasher>,
        token_hasher: TokenHasher,
        config: AuthConfig,
    ) -> Self {
        Self {
            accounts,
            tokens,
            mailer,
            hasher,
            token_hasher,
            config,
        }
    }

    /// The account store, for the portal's read-only lookups.
    pub fn accounts(&self) -> &Arc<dyn AccountStore> {
        &self.accounts
    }

    /// The configured password policy.
    pub fn policy(&self) -> PasswordPolicy {
        self.config.policy
    }

    /// Registers `email`. Succeeds the same way whether or not the address is taken: a new owner
    /// gets a verification link, an existing owner a notice that someone tried to register. The
    /// password is hashed on both paths, so the time taken does not tell them apart either.
    pub async fn register(
        &self,
        email: &str,
        password: SecretString,
        confirm: &SecretString,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        use secrecy::ExposeSecret;
        let email = Email::parse(email).ok_or(AuthError::InvalidEmail)?;
        if password.expose_secret() != confirm.expose_secret() {
            return Err(AuthError::PasswordMismatch);
        }
        self.config
            .policy
            .check(password.expose_secret(), Some(&email))?;
        let password_hash = self.hasher.hash(password).await?;
        if self.accounts.by_email(&email).await?.is_some() {
            return self.notify_existing(&email).await;
        }
        let display_name =
            DisplayName::parse(email.local_part()).or_else(|_| DisplayName::parse("Customer"))?;
        let account = Account {
            id: UserId::generate(),
            email: email.clone(),
            email_verified: false,
            password_hash,
            display_name,
            is_admin: false,
            created_at: now,
            password_changed_at: now,
        };
        match self.accounts.insert(&account).await {
            Ok(()) => self.send_verification(&account, now).await,
            // Lost a race with another registration of the same address.
            Err(StoreError::Duplicate) => self.notify_existing(&email).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn notify_existing(&self, email: &Email) -> Result<(), AuthError> {
        let body = format!(
            "Someone, perhaps you, tried to create a new account with this address.\n\n\
             You already have an account. To log in, go to {url}/login\n\n\
             If this was not you, you can ignore this message: nothing has changed.\n",
            url = self.config.public_url
        );
        self.mail(email, "Your account already exists", body).await
    }

    /// Sends a fresh verification link to an unverified account.
    pub async fn send_verification(
        &self,
        account: &Account,
        now: OffsetDateTime,
    ) -> Result<(), AuthError> {
        let token = Token::generate();
        let record = TokenRecord {
            hash: self
                .token_hasher
                .hash(TokenPurpose::EmailVerification, token.expose()),
            purpose: TokenPurpose::EmailVerification,
            user_id: account.id,
            expires_at: now + self.config.verification_ttl,
        };
        self.tokens.insert(&record).await?;
        let body = format!(
            "Welcome to Phaze.\n\nConfirm your email address by opening this link within {hours} hours:\n\n\
             {url}/verify/{token}\n\nIf you did not create an account, ignore this message.\n",
            hours = self.config.verification_ttl.whole_hours(),
            url = self.config.public_url,
            token = token.expose(),
        );
        self.mail(&account.email, "Confirm your email address", body)
            .await
    }

    /// Consumes a verification token and marks the address verified.
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
        let mut account = self
            .accounts
            .by_id(&record.user_id)
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if !account.email_verified {
            account.email_verified = true;
            self.accounts.update(&account).await?;
        }
        Ok(account)
    }

    /// Checks credentials. Unknown address, malformed address and wrong password all return
    /// [`AuthError::InvalidCredentials`] after the same argon2id work. On success the hash is
    /// upgraded if the parameters changed.
    pub async fn login(&self, email: &str, password: SecretString) -> Result<Account, AuthError> {
        let account = match Email::parse(email) {
            Some(email) => self.accounts.by_email(&email).await?,
            None => None,
        };
        let phc = account.as_ref().map(|a| a.password_hash.clone());
        let verdict = self.hasher.verify(password.clone(), phc).await?;
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
        let body = format!(
            "The password of your Phaze account was changed, and every other session was logged out.\n\n\
             If this was not you, reset your password at {url}/password/forgot and contact support.\n",
            url = self.config.public_url
        );
        self.mail(&account.email, "Your password was changed", body)
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

    async fn mail(&self, to: &Email, subject: &str, body: String) -> Result<(), AuthError> {
        let mail = OutgoingMail {
            to: to.clone(),
            subject: subject.to_owned(),
            body,
        };
        Ok(self.mailer.send(&mail).await?)
    }
}
