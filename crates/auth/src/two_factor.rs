//! Two-factor authentication: enrolment, the second step of a login, recovery codes, turning it
//! off. The TOTP rules themselves are in [`crate::totp`]; this is the flow over the stores.
//!
//! - The secret is sealed at rest with the session keys ([`phaze_sessions::Sealer`]), bound to
//!   the account id, and is shown (QR code and text) until a valid code completes the enrolment.
//! - A code is accepted once per time step, across processes ([`StepLedger`]); the step of `now`
//!   and one either side are accepted (clock skew).
//! - Ten recovery codes are shown once, kept as keyed hashes in the account, and each is a
//!   single-use token ([`crate::TokenStore::consume`]) so two processes cannot both spend one.
//! - Failures of the second step are [`AuthError::InvalidCredentials`] at login, the same answer
//!   as a wrong password, and count toward the same lockout.

use async_trait::async_trait;
use phaze_events::SecurityEvent;
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use crate::totp::{self, TotpSecret};
use crate::{
    Account, AuthError, AuthService, StoreError, TokenHash, TokenPurpose, TokenRecord, TwoFactor,
    UserId,
};

/// The name authenticator apps show above the code.
pub const ISSUER: &str = "Phaze";

/// How long an unused recovery code stays in the token store: the account's list says which
/// set is current, this only bounds what a purge keeps.
const RECOVERY_CODE_LIFETIME: Duration = Duration::days(3650);

/// The associated data a TOTP secret is sealed under: its purpose and the account, so a sealed
/// secret copied onto another account, or a session blob, does not open as one.
pub(crate) fn seal_context(user: &UserId) -> Vec<u8> {
    let mut context = b"phaze-totp-secret\0".to_vec();
    context.extend_from_slice(user.as_uuid().as_bytes());
    context
}

/// A sealed secret of no account (a random id), for [`AuthService::login`]'s equal work.
pub(crate) fn dummy_secret(sealer: &phaze_sessions::Sealer) -> (UserId, Vec<u8>) {
    let nobody = UserId::generate();
    let sealed = sealer.seal_bound(
        &seal_context(&nobody),
        TotpSecret::generate().expose_bytes(),
    );
    (nobody, sealed)
}

/// Remembers which TOTP time steps of an account have been used, so a code is accepted once.
/// Implementations are atomic across every process sharing them (the portal keeps the ledger in
/// its rate-limit store: memory, files, Redis or PostgreSQL).
#[async_trait]
pub trait StepLedger: Send + Sync {
    /// Records that `user` used the code of time step `step`; `false` when the step was recorded
    /// before (a replayed code). A record needs to outlive only the steps a code is accepted in.
    async fn first_use(
        &self,
        user: &UserId,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}

/// What the enrolment page shows: the secret as a QR code and as text.
pub struct Enrolment {
    /// Base32, for typing into an app.
    pub secret: SecretString,
    /// The `otpauth://totp/…` URI the QR code carries.
    pub otpauth_url: SecretString,
}

impl std::fmt::Debug for Enrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(<redacted>)")
    }
}

impl AuthService {
    /// The enrolment of `user`: the pending secret, made and stored (sealed) on the first call,
    /// so reloading the page shows the same QR code. [`AuthError::TwoFactorOn`] when it is on.
    pub async fn two_factor_enrolment(&self, user: &UserId) -> Result<Enrolment, AuthError> {
        let mut account = self.existing(user).await?;
        let secret = match &account.two_factor {
            Some(t) if t.enabled_at.is_some() => return Err(AuthError::TwoFactorOn),
            Some(_) => self.open_secret(&account)?,
            None => {
                let secret = TotpSecret::generate();
                account.two_factor = Some(TwoFactor {
                    sealed_secret: self
                        .sealer
                        .seal_bound(&seal_context(user), secret.expose_bytes()),
                    enabled_at: None,
                    recovery_codes: Vec::new(),
                });
                self.accounts.update(&account).await?;
                secret
            }
        };
        let otpauth_url = secret
            .otpauth_url(ISSUER, account.email.as_str())
            .ok_or(AuthError::Sealed)?;
        Ok(Enrolment {
            secret: secret.base32(),
            otpauth_url,
        })
    }

    /// Completes the enrolment with a code from the app: two-factor authentication is on, and
    /// the ten recovery codes returned are shown once. A wrong or replayed code is
    /// [`AuthError::InvalidCode`] and changes nothing. Mails a notice; the caller ends the
    /// user's other sessions.
    pub async fn enable_two_factor(
        &self,
        user: &UserId,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<SecretString>, AuthError> {
        let mut account = self.existing(user).await?;
        match &account.two_factor {
            Some(t) if t.enabled_at.is_some() => return Err(AuthError::TwoFactorOn),
            Some(_) => {}
            None => return Err(AuthError::TwoFactorOff),
        }
        if !self.totp_accepts(&account, code, now).await? {
            return Err(AuthError::InvalidCode);
        }
        let (codes, hashes) = self.issue_recovery_codes(user, now).await?;
        if let Some(t) = account.two_factor.as_mut() {
            t.enabled_at = Some(now);
            t.recovery_codes = hashes;
        }
        self.accounts.update(&account).await?;
        self.events
            .emit(SecurityEvent::TwoFactorEnabled { user: *user });
        self.send_letter(&account.email, "two_factor_on.txt", self.letter_context())
            .await?;
        Ok(codes)
    }

    /// Checks that the owner of `user` is at the keyboard: the password, and a code (TOTP or
    /// recovery) when two-factor authentication is on. Any wrong or missing answer is
    /// [`AuthError::InvalidCredentials`]. For irreversible actions such as deleting the account.
    pub async fn confirm_identity(
        &self,
        user: &UserId,
        password: SecretString,
        code: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        let mut account = self.existing(user).await?;
        let verdict = self
            .hasher
            .verify(password, Some(account.password_hash.clone()))
            .await?;
        if !verdict.matches {
            return Err(AuthError::InvalidCredentials);
        }
        if account.two_factor_enabled() {
            let code = code.map(str::trim).filter(|c| !c.is_empty());
            let Some(code) = code else {
                return Err(AuthError::InvalidCredentials);
            };
            let step = self.match_code(Some(&account), code, now)?;
            if !self.second_factor(&mut account, code, step, now).await? {
                return Err(AuthError::InvalidCredentials);
            }
        }
        Ok(account)
    }

    /// Erases the account of `user` and every token of it (links, recovery codes). Idempotent:
    /// a second call finds nothing and succeeds.
    pub async fn remove_account(&self, user: &UserId) -> Result<(), AuthError> {
        if let Some(account) = self.accounts.by_id(user).await? {
            // Mail still held for the address (an outbox file, a queued message) goes first:
            // once the account is gone, nothing names the address to look for.
            self.mailer.forget(&account.email).await?;
        }
        self.tokens.remove_user(user).await?;
        self.accounts.remove(user).await?;
        Ok(())
    }

    /// Turns two-factor authentication off after checking the password and a code (TOTP or
    /// recovery): both wrong-looking answers are [`AuthError::InvalidCredentials`]. Mails a
    /// notice; the caller ends the user's other sessions.
    pub async fn disable_two_factor(
        &self,
        user: &UserId,
        password: SecretString,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Account, AuthError> {
        let mut account = self.existing(user).await?;
        if !account.two_factor_enabled() {
            return Err(AuthError::TwoFactorOff);
        }
        let verdict = self
            .hasher
            .verify(password, Some(account.password_hash.clone()))
            .await?;
        let step = self.match_code(Some(&account), code, now)?;
        if !verdict.matches || !self.second_factor(&mut account, code, step, now).await? {
            return Err(AuthError::InvalidCredentials);
        }
        account.two_factor = None;
        self.accounts.update(&account).await?;
        self.events
            .emit(SecurityEvent::TwoFactorDisabled { user: *user });
        self.send_letter(&account.email, "two_factor_off.txt", self.letter_context())
            .await?;
        Ok(account)
    }

    /// A new set of recovery codes, shown once; the old set stops working. The caller asks for
    /// a recent re-authentication first.
    pub async fn new_recovery_codes(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<SecretString>, AuthError> {
        let mut account = self.existing(user).await?;
        if !account.two_factor_enabled() {
            return Err(AuthError::TwoFactorOff);
        }
        let (codes, hashes) = self.issue_recovery_codes(user, now).await?;
        if let Some(t) = account.two_factor.as_mut() {
            t.recovery_codes = hashes;
        }
        self.accounts.update(&account).await?;
        self.events
            .emit(SecurityEvent::RecoveryCodesRenewed { user: *user });
        self.send_letter(
            &account.email,
            "recovery_codes_renewed.txt",
            self.letter_context(),
        )
        .await?;
        Ok(codes)
    }

    /// The CPU part of checking `code`, done alike for every account (see
    /// [`AuthService::login`]): a TOTP code is matched against the account's secret if it has
    /// 2FA on, else against a dummy one; a recovery code is hashed. Returns the matched step.
    pub(crate) fn match_code(
        &self,
        account: Option<&Account>,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<Option<u64>, AuthError> {
        if let Some(normal) = totp::normal_recovery_code(code) {
            let _ = self.token_hasher.hash(TokenPurpose::RecoveryCode, &normal);
            return Ok(None);
        }
        let secret = match account.filter(|a| a.two_factor_enabled()) {
            Some(account) => self.open_secret(account)?,
            None => {
                let (nobody, sealed) = &self.dummy_totp;
                let bytes = self
                    .sealer
                    .open_bound(&seal_context(nobody), sealed)
                    .map_err(|_| AuthError::Sealed)?;
                TotpSecret::from_bytes(bytes.try_into().map_err(|_| AuthError::Sealed)?)
            }
        };
        Ok(secret.matching_step(code, now))
    }

    /// The second step of a login or a re-authentication: `code` is a TOTP code of the account's
    /// app whose `step` [`AuthService::match_code`] found (accepted once per step), or one of
    /// the account's unused recovery codes (spent here).
    pub(crate) async fn second_factor(
        &self,
        account: &mut Account,
        code: &str,
        step: Option<u64>,
        now: OffsetDateTime,
    ) -> Result<bool, AuthError> {
        let Some(normal) = totp::normal_recovery_code(code) else {
            return match step {
                Some(step) => Ok(self.steps.first_use(&account.id, step, now).await?),
                None => Ok(false),
            };
        };
        let hash = self.token_hasher.hash(TokenPurpose::RecoveryCode, &normal);
        let current = account
            .two_factor
            .as_ref()
            .is_some_and(|t| t.recovery_codes.contains(&hash));
        if !current {
            return Ok(false);
        }
        // Spent here, once: of two processes presenting it, one gets the record.
        let spent = self
            .tokens
            .consume(&hash, TokenPurpose::RecoveryCode, now)
            .await?
            .is_some_and(|r| r.user_id == account.id);
        if !spent {
            return Ok(false);
        }
        let left = match account.two_factor.as_mut() {
            Some(t) => {
                t.recovery_codes.retain(|h| *h != hash);
                t.recovery_codes.len()
            }
            None => 0,
        };
        self.accounts.update(account).await?;
        self.events.emit(SecurityEvent::RecoveryCodeUsed {
            user: account.id,
            left: u64::try_from(left).unwrap_or(u64::MAX),
        });
        let mut context = self.letter_context();
        context.insert("left", &left);
        self.send_letter(&account.email, "recovery_code_used.txt", context)
            .await?;
        Ok(true)
    }

    async fn totp_accepts(
        &self,
        account: &Account,
        code: &str,
        now: OffsetDateTime,
    ) -> Result<bool, AuthError> {
        let secret = self.open_secret(account)?;
        let Some(step) = secret.matching_step(code, now) else {
            return Ok(false);
        };
        Ok(self.steps.first_use(&account.id, step, now).await?)
    }

    fn open_secret(&self, account: &Account) -> Result<TotpSecret, AuthError> {
        let sealed = account
            .two_factor
            .as_ref()
            .map(|t| &t.sealed_secret)
            .ok_or(AuthError::TwoFactorOff)?;
        let bytes = self
            .sealer
            .open_bound(&seal_context(&account.id), sealed)
            .map_err(|_| AuthError::Sealed)?;
        let bytes: [u8; 20] = bytes.try_into().map_err(|_| AuthError::Sealed)?;
        Ok(TotpSecret::from_bytes(bytes))
    }

    async fn issue_recovery_codes(
        &self,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<(Vec<SecretString>, Vec<TokenHash>), AuthError> {
        let codes = totp::generate_recovery_codes();
        let mut hashes = Vec::with_capacity(codes.len());
        for code in &codes {
            let normal = totp::normal_recovery_code(code.expose_secret()).unwrap_or_default();
            let hash = self.token_hasher.hash(TokenPurpose::RecoveryCode, &normal);
            self.tokens
                .issue(&TokenRecord {
                    hash,
                    purpose: TokenPurpose::RecoveryCode,
                    user_id: *user,
                    expires_at: now + RECOVERY_CODE_LIFETIME,
                    registration: None,
                })
                .await?;
            hashes.push(hash);
        }
        Ok((codes, hashes))
    }

    async fn existing(&self, user: &UserId) -> Result<Account, AuthError> {
        self.accounts
            .by_id(user)
            .await?
            .ok_or(AuthError::AccountGone)
    }
}
