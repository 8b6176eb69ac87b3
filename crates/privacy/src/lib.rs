//! The data subject's rights (GDPR articles 15 and 20): [`PrivacyService::export`] gathers
//! everything Phaze stores about an account from every store that holds some of it (the
//! account, its sessions, its VPN devices, its subscription references, the audit entries by or
//! about it) into one [`Export`], a JSON document whose every field is documented here and in
//! `docs/operations.md`.
//!
//! [`PrivacyService::delete`] (article 17) erases the account from every store after its owner
//! proved who they are: first the account is locked and its sessions end (from then on it can
//! never log in, whatever fails next), an `account.delete_requested` audit entry records the
//! request durably, then devices (deprovisioned), the subscription references, tokens and the
//! account itself go, and an `account.deleted` entry closes it. A store that fails midway leaves
//! the request open; [`PrivacyService::resume_pending`], run by the portal's periodic task, finds
//! requests without their closing entry and erases again (every step is idempotent). Audit
//! entries stay: they name accounts by id only, a pseudonym once the account is gone.
//!
//! What an export leaves out, on purpose: secrets that would let its reader act as the account
//! or its devices (the password hash, the sealed TOTP secret, recovery-code hashes, devices'
//! private keys, session ids); their existence is said instead (`two_factor`, the device's public
//! key: the private key is in the device's own configuration download).

use phaze_audit::{AuditError, AuditFilter, AuditLog, Draft};
use phaze_auth::{AuthError, AuthService};
use phaze_devices::{DeviceService, DeviceStore};
use phaze_ids::UserId;
use phaze_payments::Subscriptions;
use phaze_sessions::SessionManager;
use secrecy::SecretString;
use serde::Serialize;
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;

/// The `format` of this version's export.
pub const FORMAT: &str = "phaze-export/1";

/// Audit entries an export carries at most (newest first).
pub const MAX_AUDIT_ENTRIES: usize = 10_000;

/// Everything stored about one account.
#[derive(Debug, Serialize)]
pub struct Export {
    /// [`FORMAT`].
    pub format: &'static str,
    /// When the export was made (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub exported_at: OffsetDateTime,
    pub account: AccountData,
    /// Live sessions (signed-in browsers and devices), newest login first.
    pub sessions: Vec<SessionData>,
    /// VPN devices.
    pub devices: Vec<DeviceData>,
    /// Subscription references at the payment provider, if a checkout was ever started.
    pub subscription: Option<SubscriptionData>,
    /// Audit entries by or about the account (admin actions and lookups), newest first.
    pub audit: Vec<AuditData>,
    /// Mail to the account's address that Phaze still holds: waiting for the relay, or given up
    /// on. Delivered mail is not kept, so it cannot be listed.
    pub mail: Vec<MailData>,
}

/// A message still held for the account: its subject and state, never its body (which may
/// carry a live link).
#[derive(Debug, Serialize)]
pub struct MailData {
    pub subject: String,
    /// `waiting` for delivery, or `undeliverable` (kept for the operator).
    pub state: &'static str,
}

/// The account record.
#[derive(Debug, Serialize)]
pub struct AccountData {
    /// The account id (also the `client_reference_id` sent to Stripe).
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub display_name: String,
    pub is_admin: bool,
    /// Suspended by an admin.
    pub locked: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub password_changed_at: OffsetDateTime,
    /// Whether two-factor authentication is on (the secret itself is not exported).
    pub two_factor: bool,
    /// Unused recovery codes left (the codes are stored only as keyed hashes).
    pub recovery_codes_left: usize,
}

/// One session.
#[derive(Debug, Serialize)]
pub struct SessionData {
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen: OffsetDateTime,
    /// The address at login, if known.
    pub ip: Option<String>,
    /// The browser's `User-Agent` at login.
    pub user_agent: String,
}

/// One VPN device.
#[derive(Debug, Serialize)]
pub struct DeviceData {
    pub id: String,
    pub name: String,
    /// WireGuard public key, base64.
    pub public_key: String,
    pub address_v4: String,
    pub address_v6: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The subscription's references.
#[derive(Debug, Serialize)]
pub struct SubscriptionData {
    /// Stripe customer id.
    pub customer: Option<String>,
    /// Stripe subscription id.
    pub subscription: Option<String>,
    /// `none`, `active`, `past_due` or `canceled`.
    pub status: &'static str,
    /// The Stripe price subscribed to.
    pub price: Option<String>,
    /// End of the current period, Unix seconds.
    pub current_period_end: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize)]
pub struct AuditData {
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The acting account's id; `null` for an operator at the command line.
    pub actor: Option<String>,
    pub action: String,
    /// The account acted on.
    pub subject: Option<String>,
    /// The client address the action came from.
    pub client: Option<String>,
    pub detail: String,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("no such account")]
    NoAccount,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Sessions(#[from] phaze_sessions::Error),
    #[error("device store: {0}")]
    Devices(#[from] phaze_devices::StoreError),
    #[error("subscription store: {0}")]
    Subscriptions(#[from] phaze_payments::StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("devices: {0}")]
    Deprovision(#[from] phaze_devices::DeviceError),
}

/// The audit action that opens a deletion.
pub const DELETE_REQUESTED: &str = "account.delete_requested";
/// The audit action that closes it.
pub const DELETED: &str = "account.deleted";

/// The data subject's operations over every store that holds personal data.
pub struct PrivacyService {
    auth: Arc<AuthService>,
    sessions: Arc<SessionManager>,
    devices: Arc<dyn DeviceStore>,
    /// Deprovisions devices on the VPN server when one is configured.
    device_service: Option<Arc<DeviceService>>,
    subscriptions: Arc<dyn Subscriptions>,
    audit: AuditLog,
    /// How far [`PrivacyService::resume_pending`] has read the audit log, and the requests
    /// still open there.
    resume: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    next: u64,
    open: HashSet<UserId>,
}

impl std::fmt::Debug for PrivacyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyService").finish_non_exhaustive()
    }
}

impl PrivacyService {
    /// Over the stores of accounts (through `auth`), sessions, devices, subscriptions and audit.
    pub fn new(
        auth: Arc<AuthService>,
        sessions: Arc<SessionManager>,
        devices: Arc<dyn DeviceStore>,
        subscriptions: Arc<dyn Subscriptions>,
        audit: AuditLog,
    ) -> Self {
        Self {
            auth,
            sessions,
            devices,
            device_service: None,
            subscriptions,
            audit,
            resume: Mutex::default(),
        }
    }

    /// Deletes devices through `service` (deprovisioning them) instead of the bare store.
    #[must_use]
    pub fn with_device_service(mut self, service: Option<Arc<DeviceService>>) -> Self {
        self.device_service = service;
        self
    }

    /// Erases `user` after checking the password (and a code when 2FA is on): locked and logged
    /// out first, then erased from every store. Wrong credentials change nothing.
    pub async fn delete(
        &self,
        user: &UserId,
        password: SecretString,
        code: Option<&str>,
        client: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> Result<(), PrivacyError> {
        self.auth
            .confirm_identity(user, password, code, now)
            .await?;
        self.auth.set_locked(user, true).await?;
        self.sessions.revoke_all(user, None).await?;
        let mut request = Draft::new(now, Some(*user), DELETE_REQUESTED).subject(*user);
        if let Some(client) = client {
            request = request.client(client);
        }
        self.audit.record(request).await?;
        self.erase(user, now).await
    }

    /// Every step of a deletion, each idempotent, the account last; then the closing entry.
    async fn erase(&self, user: &UserId, now: OffsetDateTime) -> Result<(), PrivacyError> {
        for device in self.devices.list(user).await? {
            match &self.device_service {
                Some(service) => match service.delete(user, &device.id).await {
                    Ok(()) | Err(phaze_devices::DeviceError::NotFound) => {}
                    Err(e) => return Err(e.into()),
                },
                None => {
                    self.devices.remove(user, &device.id).await?;
                }
            }
        }
        self.subscriptions.remove(user).await?;
        self.sessions.revoke_all(user, None).await?;
        self.auth.remove_account(user).await?;
        self.audit
            .record(Draft::new(now, None, DELETED).subject(*user))
            .await?;
        Ok(())
    }

    /// Finishes deletions a failure left open (a request without its closing entry); returns
    /// how many it finished. Stops at the first that fails again (the next run retries). Each
    /// run reads only the audit entries appended since the last (the first run of a process
    /// reads the whole log once).
    pub async fn resume_pending(&self, now: OffsetDateTime) -> Result<usize, PrivacyError> {
        const BATCH: usize = 500;
        let (mut next, mut open) = {
            let seen = self.resume.lock().unwrap_or_else(PoisonError::into_inner);
            (seen.next, seen.open.clone())
        };
        loop {
            let batch = self.audit.entries_from(next, BATCH).await?;
            for entry in &batch {
                match (entry.action.as_str(), entry.subject) {
                    (DELETE_REQUESTED, Some(user)) => {
                        open.insert(user);
                    }
                    (DELETED, Some(user)) => {
                        open.remove(&user);
                    }
                    _ => {}
                }
                next = entry.seq + 1;
            }
            if batch.len() < BATCH {
                break;
            }
        }
        let mut finished = 0;
        let result = async {
            for user in open.clone() {
                self.erase(&user, now).await?;
                open.remove(&user);
                finished += 1;
            }
            Ok(finished)
        }
        .await;
        *self.resume.lock().unwrap_or_else(PoisonError::into_inner) = Seen { next, open };
        result
    }

    /// Everything stored about `user`, as of `now`.
    pub async fn export(&self, user: &UserId, now: OffsetDateTime) -> Result<Export, PrivacyError> {
        let account = self
            .auth
            .account(user)
            .await?
            .ok_or(PrivacyError::NoAccount)?;
        let mut sessions = self.sessions.list(user, now).await?;
        sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
        let devices = self.devices.list(user).await?;
        let subscription = self.subscriptions.get(user).await?.map(|(r, _)| r);
        let filter = AuditFilter {
            user: Some(*user),
            action: None,
        };
        let audit = self.audit.page(&filter, None, MAX_AUDIT_ENTRIES).await?;
        let mail = self.auth.mail_held_for(user).await?;
        let id = |u: UserId| u.to_string();
        Ok(Export {
            format: FORMAT,
            exported_at: now,
            account: AccountData {
                id: account.id.to_string(),
                email: account.email.as_str().to_owned(),
                email_verified: account.email_verified,
                display_name: account.display_name.as_str().to_owned(),
                is_admin: account.is_admin,
                locked: account.locked,
                created_at: account.created_at,
                password_changed_at: account.password_changed_at,
                two_factor: account.two_factor_enabled(),
                recovery_codes_left: account
                    .two_factor
                    .as_ref()
                    .filter(|t| t.enabled_at.is_some())
                    .map_or(0, |t| t.recovery_codes.len()),
            },
            sessions: sessions
                .into_iter()
                .map(|s| SessionData {
                    created_at: s.created_at,
                    last_seen: s.last_seen,
                    ip: s.ip.map(|ip| ip.to_string()),
                    user_agent: s.user_agent,
                })
                .collect(),
            devices: devices
                .into_iter()
                .map(|d| DeviceData {
                    id: d.id.to_string(),
                    name: d.name.as_str().to_owned(),
                    public_key: d.public_key.to_base64(),
                    address_v4: d.address.v4.to_string(),
                    address_v6: d.address.v6.to_string(),
                    created_at: d.created_at,
                })
                .collect(),
            subscription: subscription.map(|r| SubscriptionData {
                customer: r.customer,
                subscription: r.subscription,
                status: r.status.as_str(),
                price: r.price,
                current_period_end: r.current_period_end,
            }),
            audit: audit
                .into_iter()
                .map(|e| AuditData {
                    seq: e.seq,
                    at: e.at,
                    actor: e.actor.map(id),
                    action: e.action,
                    subject: e.subject.map(id),
                    client: e.client,
                    detail: e.detail,
                })
                .collect(),
            mail: mail
                .into_iter()
                .map(|m| MailData {
                    subject: m.subject,
                    state: if m.waiting {
                        "waiting"
                    } else {
                        "undeliverable"
                    },
                })
                .collect(),
        })
    }
}
