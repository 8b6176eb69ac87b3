//! Security events: what happened, as one typed enum ([`SecurityEvent`]), and the one port the
//! flows emit it through ([`EventSink`], fanned out by [`Events`]).
//!
//! The crates that own a security rule emit its event where the rule decides (the login guard a
//! failed login, the CSRF check a refusal, the command runner a refused program); adapters turn
//! events into something an operator reads: [`TracingSink`] into log lines (target `security`,
//! JSON in production, so they carry the request's id and client from its span), the portal's
//! metrics sink into Prometheus counters. An event never carries a secret: no password, token,
//! key or email address; a login identifier appears only as its keyed hash.
//!
//! ```
//! use phaze_events::{Events, Recorder, SecurityEvent};
//! use std::sync::Arc;
//!
//! let recorder = Arc::new(Recorder::default());
//! let events = Events::new([recorder.clone() as Arc<dyn phaze_events::EventSink>]);
//! events.emit(SecurityEvent::CommandRefused { program: "/bin/sh".into() });
//! assert_eq!(recorder.kinds(), ["command_refused"]);
//! ```

use phaze_ids::UserId;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Why a state-changing request failed the CSRF check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrfReason {
    /// No token, or one that does not belong to the session.
    Token,
    /// `Sec-Fetch-Site: cross-site`.
    CrossSite,
    /// An `Origin` other than the portal's own.
    Origin,
}

impl CsrfReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::CrossSite => "cross_site",
            Self::Origin => "origin",
        }
    }
}

/// Which login counter a lockout closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockScope {
    /// The submitted identifier, for every client.
    Identifier,
    /// The identifier for one remembered device.
    Device,
}

/// Something security-relevant that happened. Each variant is one `kind` (its snake-case name in
/// logs and the `kind` label of `phaze_security_events_total`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecurityEvent {
    /// A login with a wrong password, an unknown address or a wrong second factor (one event for
    /// all three, as the answer is one). `identifier` is the keyed hash of the folded address.
    LoginFailed {
        client: IpAddr,
        identifier: String,
    },
    /// A login that started a session.
    LoginSucceeded {
        user: UserId,
        client: IpAddr,
    },
    /// A login counter reached its lockout threshold.
    LockoutStarted {
        identifier: String,
        scope: LockScope,
    },
    /// A login refused because its identifier is locked.
    LockedOutAttempt {
        client: IpAddr,
        identifier: String,
    },
    /// A login refused until a proof-of-work challenge is solved.
    ChallengeIssued {
        client: IpAddr,
        identifier: String,
    },
    /// A request over a rate limit (`budget` is the limit's class; `subject` what it counts,
    /// a client network or a hashed identifier).
    RateLimited {
        budget: &'static str,
        subject: String,
        retry_after_secs: i64,
    },
    /// A state-changing request refused by the CSRF check.
    CsrfFailure {
        client: IpAddr,
        path: String,
        reason: CsrfReason,
    },
    /// A webhook whose signature did not verify.
    WebhookSignatureFailure {
        client: IpAddr,
        reason: String,
    },
    /// A webhook claim whose lease ran out before its effect was recorded.
    WebhookClaimLost {
        event_id: String,
    },
    /// A file lock not obtained within the bounded wait.
    LockTimeout {
        file: String,
        waited_ms: u64,
    },
    /// A program the command runner refused to start.
    CommandRefused {
        program: String,
    },
    /// The owner changed the password.
    PasswordChanged {
        user: UserId,
    },
    /// A password set through a reset link.
    PasswordReset {
        user: UserId,
    },
    /// A registration confirmed by its link.
    EmailVerified {
        user: UserId,
    },
    TwoFactorEnabled {
        user: UserId,
    },
    TwoFactorDisabled {
        user: UserId,
    },
    RecoveryCodeUsed {
        user: UserId,
        left: u64,
    },
    RecoveryCodesRenewed {
        user: UserId,
    },
    /// One session ended by its owner.
    SessionRevoked {
        user: UserId,
    },
    /// The owner ended all their other sessions.
    SessionsRevoked {
        user: UserId,
        count: u64,
    },
    /// Every session of a user ended by a change of credentials or role (`reason` says which).
    SessionsRestarted {
        user: UserId,
        reason: &'static str,
        count: u64,
    },
    Logout {
        user: UserId,
    },
    /// The admin flag granted or taken away (from the command line or an admin page).
    RoleChanged {
        user: UserId,
        admin: bool,
    },
    DeviceAdded {
        user: UserId,
        device: String,
    },
    DeviceDeleted {
        user: UserId,
        device: String,
    },
    CheckoutStarted {
        user: UserId,
    },
    /// A message given up after its last attempt or a permanent refusal.
    MailDeadLetter {
        id: String,
        attempts: u64,
    },
    /// An admin acted on an account (`action` is the audit log's kind).
    AdminAction {
        admin: UserId,
        action: &'static str,
        target: Option<UserId>,
    },
}

/// How loud an event is in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

/// An event's fields, flattened for a sink that writes named fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields<'a> {
    pub user: Option<&'a UserId>,
    pub client: Option<IpAddr>,
    /// What the event is about: a hashed identifier, a path, a program, a device, a message.
    pub subject: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub count: Option<u64>,
}

impl SecurityEvent {
    /// Every kind, in declaration order (for metrics exported at zero before the first event).
    pub const KINDS: &'static [&'static str] = &[
        "login_failure",
        "login_success",
        "lockout",
        "locked_out",
        "challenge_required",
        "rate_limited",
        "csrf_failure",
        "webhook_signature_failure",
        "webhook_claim_lost",
        "lock_timeout",
        "command_refused",
        "password_changed",
        "password_reset",
        "email_verified",
        "two_factor_enabled",
        "two_factor_disabled",
        "recovery_code_used",
        "recovery_codes_renewed",
        "session_revoked",
        "sessions_revoked",
        "sessions_restarted",
        "logout",
        "role_changed",
        "device_added",
        "device_deleted",
        "checkout_started",
        "mail_dead_letter",
        "admin_action",
    ];

    /// The event's kind: its name in logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::LoginFailed { .. } => "login_failure",
            Self::LoginSucceeded { .. } => "login_success",
            Self::LockoutStarted { .. } => "lockout",
            Self::LockedOutAttempt { .. } => "locked_out",
            Self::ChallengeIssued { .. } => "challenge_required",
            Self::RateLimited { .. } => "rate_limited",
            Self::CsrfFailure { .. } => "csrf_failure",
            Self::WebhookSignatureFailure { .. } => "webhook_signature_failure",
            Self::WebhookClaimLost { .. } => "webhook_claim_lost",
            Self::LockTimeout { .. } => "lock_timeout",
            Self::CommandRefused { .. } => "command_refused",
            Self::PasswordChanged { .. } => "password_changed",
            Self::PasswordReset { .. } => "password_reset",
            Self::EmailVerified { .. } => "email_verified",
            Self::TwoFactorEnabled { .. } => "two_factor_enabled",
            Self::TwoFactorDisabled { .. } => "two_factor_disabled",
            Self::RecoveryCodeUsed { .. } => "recovery_code_used",
            Self::RecoveryCodesRenewed { .. } => "recovery_codes_renewed",
            Self::SessionRevoked { .. } => "session_revoked",
            Self::SessionsRevoked { .. } => "sessions_revoked",
            Self::SessionsRestarted { .. } => "sessions_restarted",
            Self::Logout { .. } => "logout",
            Self::RoleChanged { .. } => "role_changed",
            Self::DeviceAdded { .. } => "device_added",
            Self::DeviceDeleted { .. } => "device_deleted",
            Self::CheckoutStarted { .. } => "checkout_started",
            Self::MailDeadLetter { .. } => "mail_dead_letter",
            Self::AdminAction { .. } => "admin_action",
        }
    }

    /// Warn for what an attacker does, error for what loses data, info for the rest.
    pub fn severity(&self) -> Severity {
        match self {
            Self::LockoutStarted { .. }
            | Self::RateLimited { .. }
            | Self::CsrfFailure { .. }
            | Self::WebhookSignatureFailure { .. }
            | Self::WebhookClaimLost { .. }
            | Self::LockTimeout { .. }
            | Self::CommandRefused { .. } => Severity::Warn,
            Self::MailDeadLetter { .. } => Severity::Error,
            _ => Severity::Info,
        }
    }

    /// The event's fields, named for a log line.
    pub fn fields(&self) -> Fields<'_> {
        let mut f = Fields::default();
        match self {
            Self::LoginFailed { client, identifier }
            | Self::LockedOutAttempt { client, identifier }
            | Self::ChallengeIssued { client, identifier } => {
                f.client = Some(*client);
                f.subject = Some(identifier);
            }
            Self::LoginSucceeded { user, client } => {
                f.user = Some(user);
                f.client = Some(*client);
            }
            Self::LockoutStarted { identifier, scope } => {
                f.subject = Some(identifier);
                f.reason = Some(match scope {
                    LockScope::Identifier => "identifier",
                    LockScope::Device => "device",
                });
            }
            Self::RateLimited {
                budget,
                subject,
                retry_after_secs,
            } => {
                f.subject = Some(subject);
                f.reason = Some(budget);
                f.count = u64::try_from(*retry_after_secs).ok();
            }
            Self::CsrfFailure {
                client,
                path,
                reason,
            } => {
                f.client = Some(*client);
                f.subject = Some(path);
                f.reason = Some(reason.as_str());
            }
            Self::WebhookSignatureFailure { client, reason } => {
                f.client = Some(*client);
                f.reason = Some(reason);
            }
            Self::WebhookClaimLost { event_id } => f.subject = Some(event_id),
            Self::LockTimeout { file, waited_ms } => {
                f.subject = Some(file);
                f.count = Some(*waited_ms);
            }
            Self::CommandRefused { program } => f.subject = Some(program),
            Self::PasswordChanged { user }
            | Self::PasswordReset { user }
            | Self::EmailVerified { user }
            | Self::TwoFactorEnabled { user }
            | Self::TwoFactorDisabled { user }
            | Self::RecoveryCodesRenewed { user }
            | Self::SessionRevoked { user }
            | Self::Logout { user }
            | Self::CheckoutStarted { user } => f.user = Some(user),
            Self::RecoveryCodeUsed { user, left } => {
                f.user = Some(user);
                f.count = Some(*left);
            }
            Self::SessionsRevoked { user, count } => {
                f.user = Some(user);
                f.count = Some(*count);
            }
            Self::SessionsRestarted {
                user,
                reason,
                count,
            } => {
                f.user = Some(user);
                f.reason = Some(reason);
                f.count = Some(*count);
            }
            Self::RoleChanged { user, admin } => {
                f.user = Some(user);
                f.reason = Some(if *admin { "granted" } else { "revoked" });
            }
            Self::DeviceAdded { user, device } | Self::DeviceDeleted { user, device } => {
                f.user = Some(user);
                f.subject = Some(device);
            }
            Self::MailDeadLetter { id, attempts } => {
                f.subject = Some(id);
                f.count = Some(*attempts);
            }
            Self::AdminAction {
                admin,
                action,
                target: _,
            } => {
                f.user = Some(admin);
                f.reason = Some(action);
            }
        }
        f
    }

    /// The account an admin action was about.
    pub fn target(&self) -> Option<&UserId> {
        match self {
            Self::AdminAction { target, .. } => target.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for SecurityEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())
    }
}

/// The port: where events go. A sink must not block (a request is waiting) and must not fail the
/// flow that emitted the event; it handles its own errors.
pub trait EventSink: Send + Sync {
    fn record(&self, event: &SecurityEvent);
}

/// The handle flows hold: every configured sink, in order. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    sinks: Arc<[Arc<dyn EventSink>]>,
}

impl Events {
    /// Events go to each of `sinks`.
    pub fn new(sinks: impl IntoIterator<Item = Arc<dyn EventSink>>) -> Self {
        Self {
            sinks: sinks.into_iter().collect(),
        }
    }

    /// Only the log ([`TracingSink`]): the default of every flow, so an embedder that wires
    /// nothing still gets each event as a log line.
    pub fn tracing() -> Self {
        Self::new([Arc::new(TracingSink) as Arc<dyn EventSink>])
    }

    /// Hands `event` to every sink.
    pub fn emit(&self, event: SecurityEvent) {
        for sink in self.sinks.iter() {
            sink.record(&event);
        }
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::tracing()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

/// The log adapter: one `tracing` event per security event, target `security`, field `event` =
/// the kind, then `user`, `client`, `subject`, `reason`, `count` where the event has them. Inside
/// a request the subscriber adds the request span (its id and client).
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingSink;

impl EventSink for TracingSink {
    fn record(&self, event: &SecurityEvent) {
        use tracing::field::display;
        let kind = event.kind();
        let f = event.fields();
        let user = f.user.map(display);
        let client = f.client.map(display);
        let target = event.target().map(display);
        macro_rules! log {
            ($level:expr) => {
                tracing::event!(target: "security", $level, event = kind, client, user,
                    subject = f.subject, reason = f.reason, count = f.count, target_user = target)
            };
        }
        match event.severity() {
            Severity::Info => log!(tracing::Level::INFO),
            Severity::Warn => log!(tracing::Level::WARN),
            Severity::Error => log!(tracing::Level::ERROR),
        }
    }
}

/// A sink that keeps every event, for tests that assert what a flow emitted.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<SecurityEvent>>);

impl Recorder {
    /// Everything recorded so far, oldest first.
    pub fn events(&self) -> Vec<SecurityEvent> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The kinds recorded so far, oldest first.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.events().iter().map(SecurityEvent::kind).collect()
    }
}

impl EventSink for Recorder {
    fn record(&self, event: &SecurityEvent) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event.clone());
    }
}

#[cfg(test)]
mod tests;
