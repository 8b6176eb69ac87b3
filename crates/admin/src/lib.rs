//! What admins may do to other people's accounts, who may do it, and the record of it.
//!
//! [`AdminService::authorize`] is the one gate: the account must hold the admin role, must not
//! be locked, and must have two-factor authentication on ([`AdminError::TwoFactorRequired`]
//! otherwise: the portal sends the admin to enrol first). What it returns, [`Acting`], is what
//! every operation takes, so none can run without the gate. Operations that change someone's
//! access (lock, unlock, end sessions, grant, revoke) also need a recent login
//! ([`AdminError::ReauthRequired`]: the session's "sudo" window, `session.reauth_secs`).
//!
//! Every operation, reads included (a lookup is a read of someone's personal data), appends an
//! entry to the audit log *before* it answers, and fails if the entry cannot be written: an
//! action nobody could trace never happens. The entry names the admin, the account acted on,
//! the client address and the action; never an email address (an account id is a pseudonym once
//! the account is gone).

use phaze_audit::{AuditEntry, AuditError, AuditFilter, AuditLog, Draft};
use phaze_auth::{Account, AuthError, AuthService};
use phaze_events::{Events, SecurityEvent};
use phaze_ids::UserId;
use phaze_sessions::{Session, SessionManager};
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;

/// Entries per page of [`AdminService::audit_page`].
pub const AUDIT_PAGE: usize = 50;

/// An admin who passed [`AdminService::authorize`] for one request.
#[derive(Clone, Debug)]
pub struct Acting {
    admin: UserId,
    client: Option<IpAddr>,
    recent: bool,
}

impl Acting {
    /// The admin's account id.
    pub fn admin(&self) -> UserId {
        self.admin
    }
}

/// Why an admin operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Not an admin (or a locked one): the portal answers as for an unknown page.
    #[error("not an admin")]
    NotAdmin,
    /// An admin without two-factor authentication: enrol first.
    #[error("admins need two-factor authentication")]
    TwoFactorRequired,
    /// A change to someone's access needs a recent login.
    #[error("re-authentication required")]
    ReauthRequired,
    /// No such account.
    #[error("no such account")]
    NoAccount,
    /// An admin cannot lock themselves out or take their own role away here.
    #[error("admins cannot do this to their own account")]
    OwnAccount,
    /// The address typed is not an address.
    #[error("not an email address")]
    InvalidEmail,
    /// The account is confirmed already: there is nothing to resend.
    #[error("the address is confirmed already")]
    AlreadyVerified,
    /// The audit log could not take the entry: nothing was done.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The account store or the mailer failed.
    #[error(transparent)]
    Auth(AuthError),
    /// The session store failed.
    #[error(transparent)]
    Sessions(#[from] phaze_sessions::Error),
}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::AccountGone => AdminError::NoAccount,
            AuthError::InvalidEmail => AdminError::InvalidEmail,
            other => AdminError::Auth(other),
        }
    }
}

/// The admin operations over the account, session and audit stores.
pub struct AdminService {
    auth: Arc<AuthService>,
    sessions: Arc<SessionManager>,
    audit: AuditLog,
    events: Events,
}

impl std::fmt::Debug for AdminService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminService").finish_non_exhaustive()
    }
}

impl AdminService {
    /// Admin operations on `auth`'s accounts and `sessions`, recorded in `audit`.
    pub fn new(
        auth: Arc<AuthService>,
        sessions: Arc<SessionManager>,
        audit: AuditLog,
        events: Events,
    ) -> Self {
        Self {
            auth,
            sessions,
            audit,
            events,
        }
    }

    /// The audit log (for `phaze-portal audit verify` and the operator's own entries).
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// The gate: `account`, logged in with `session` from `client`, may act as an admin.
    pub fn authorize(
        &self,
        account: &Account,
        session: &Session,
        client: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<Acting, AdminError> {
        if !account.is_admin || account.locked {
            return Err(AdminError::NotAdmin);
        }
        if !account.two_factor_enabled() {
            return Err(AdminError::TwoFactorRequired);
        }
        Ok(Acting {
            admin: account.id,
            client,
            recent: session.recently_authenticated(self.sessions.policy(), now),
        })
    }

    async fn record(
        &self,
        acting: &Acting,
        action: &'static str,
        subject: Option<UserId>,
        detail: &str,
        now: OffsetDateTime,
    ) -> Result<AuditEntry, AdminError> {
        let mut draft = Draft::new(now, Some(acting.admin), action).detail(detail);
        if let Some(subject) = subject {
            draft = draft.subject(subject);
        }
        if let Some(client) = acting.client {
            draft = draft.client(client);
        }
        let entry = self.audit.record(draft).await?;
        self.events.emit(SecurityEvent::AdminAction {
            admin: acting.admin,
            action,
            target: subject,
        });
        Ok(entry)
    }

    fn sudo(acting: &Acting) -> Result<(), AdminError> {
        if acting.recent {
            Ok(())
        } else {
            Err(AdminError::ReauthRequired)
        }
    }

    async fn target(&self, user: &UserId) -> Result<Account, AdminError> {
        self.auth.account(user).await?.ok_or(AdminError::NoAccount)
    }

    /// The account of `email` (as typed; folded as at login), if any. Recorded as a lookup,
    /// with the account found (never the address typed).
    pub async fn find(
        &self,
        acting: &Acting,
        email: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Account>, AdminError> {
        let found = self.auth.find_by_email(email).await?;
        let detail = if found.is_some() { "found" } else { "no match" };
        self.record(
            acting,
            "admin.search",
            found.as_ref().map(|a| a.id),
            detail,
            now,
        )
        .await?;
        Ok(found)
    }

    /// One account, for its admin page. Recorded as a read of its data.
    pub async fn view(
        &self,
        acting: &Acting,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Account, AdminError> {
        let account = self.target(user).await?;
        self.record(acting, "admin.view_user", Some(account.id), "", now)
            .await?;
        Ok(account)
    }

    /// Suspends `user` and ends every session of it. Needs a recent login; not on oneself.
    pub async fn lock(
        &self,
        acting: &Acting,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Account, AdminError> {
        self.change(acting, user, "admin.lock", false, now, async |auth, u| {
            auth.set_locked(u, true).await
        })
        .await
    }

    /// Lifts a suspension. Needs a recent login.
    pub async fn unlock(
        &self,
        acting: &Acting,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Account, AdminError> {
        self.change(acting, user, "admin.unlock", true, now, async |auth, u| {
            auth.set_locked(u, false).await
        })
        .await
    }

    /// Ends every session of `user` (they log in again). Needs a recent login. The count ended.
    pub async fn end_sessions(
        &self,
        acting: &Acting,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<usize, AdminError> {
        Self::sudo(acting)?;
        let account = self.target(user).await?;
        self.record(acting, "admin.end_sessions", Some(account.id), "", now)
            .await?;
        Ok(self.sessions.revoke_all(&account.id, None).await?)
    }

    /// Mails a new confirmation link to an account whose address is not confirmed yet.
    pub async fn resend_verification(
        &self,
        acting: &Acting,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<(), AdminError> {
        let account = self.target(user).await?;
        if account.email_verified {
            return Err(AdminError::AlreadyVerified);
        }
        self.record(
            acting,
            "admin.resend_verification",
            Some(account.id),
            "",
            now,
        )
        .await?;
        Ok(self.auth.send_verification(&account, now).await?)
    }

    /// Grants (`true`) or takes away the admin role of `user` and ends its sessions, so the
    /// change applies from its next login. Needs a recent login; an admin cannot take their own
    /// role away here (the command line can).
    pub async fn set_admin(
        &self,
        acting: &Acting,
        user: &UserId,
        admin: bool,
        now: OffsetDateTime,
    ) -> Result<Account, AdminError> {
        let action = if admin { "admin.grant" } else { "admin.revoke" };
        // Granting oneself changes nothing; taking one's own role away is the command line's.
        self.change(acting, user, action, admin, now, async |auth, u| {
            auth.set_admin_of(u, admin).await
        })
        .await
    }

    /// A change to an account's access: recent login, not on one's own account unless
    /// `own_allowed`, recorded, applied, then every session of the account ended so the change
    /// holds from its next login.
    async fn change(
        &self,
        acting: &Acting,
        user: &UserId,
        action: &'static str,
        own_allowed: bool,
        now: OffsetDateTime,
        apply: impl AsyncFnOnce(&AuthService, &UserId) -> Result<Account, AuthError>,
    ) -> Result<Account, AdminError> {
        Self::sudo(acting)?;
        if !own_allowed && *user == acting.admin {
            return Err(AdminError::OwnAccount);
        }
        let account = self.target(user).await?;
        self.record(acting, action, Some(account.id), "", now)
            .await?;
        let account = apply(&self.auth, &account.id).await?;
        self.sessions.revoke_all(&account.id, None).await?;
        Ok(account)
    }

    /// Page `page` (from 1) of the audit log, newest first, [`AUDIT_PAGE`] entries a page, and
    /// whether an older page exists. Reading it is recorded too, once.
    pub async fn audit_page(
        &self,
        acting: &Acting,
        filter: &AuditFilter,
        page: u32,
        now: OffsetDateTime,
    ) -> Result<(Vec<AuditEntry>, bool), AdminError> {
        let page = page.max(1);
        self.record(
            acting,
            "admin.view_audit",
            filter.user,
            &format!("page {page}"),
            now,
        )
        .await?;
        let mut before = None;
        for n in 1..=page {
            let mut batch = self.audit.page(filter, before, AUDIT_PAGE + 1).await?;
            let more = batch.len() > AUDIT_PAGE;
            batch.truncate(AUDIT_PAGE);
            if n == page {
                return Ok((batch, more));
            }
            if !more {
                break; // past the last page: nothing, not the last page again
            }
            before = batch.last().map(|e| e.seq);
        }
        Ok((Vec::new(), false))
    }

    /// The role granted or taken away from the command line (`phaze-portal admin grant|revoke`):
    /// recorded with no admin account as the actor, sessions ended.
    pub async fn set_admin_by_operator(
        &self,
        email: &str,
        admin: bool,
        now: OffsetDateTime,
    ) -> Result<Account, AdminError> {
        let account = self
            .auth
            .find_by_email(email)
            .await?
            .ok_or(AdminError::NoAccount)?;
        let action = if admin { "admin.grant" } else { "admin.revoke" };
        self.audit
            .record(
                Draft::new(now, None, action)
                    .subject(account.id)
                    .detail("command line"),
            )
            .await?;
        let account = self.auth.set_admin_of(&account.id, admin).await?;
        self.sessions.revoke_all(&account.id, None).await?;
        Ok(account)
    }
}
