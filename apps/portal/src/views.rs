//! Pages and static assets, compiled into the binary so it runs from any directory.
//!
//! Each page is a struct whose template (askama, in the workspace's `templates/`) is compiled with
//! the crate: a template that names a missing field, or a field of the wrong kind, does not build.
//! HTML is escaped on output for every `{{ … }}`; no template marks user data `|safe`.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use askama::Template;
use phaze_ratelimit::Challenge;

use crate::errors::AppError;

/// Marks a response whose body a handler rendered on purpose (a 401 login page, a 422 form with
/// its message), so the frame middleware does not replace it with the generic error page.
#[derive(Clone, Copy, Debug)]
pub struct Rendered;

/// Renders `page` as an HTML response with `status`.
pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let body = page.render()?;
    let mut res = HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body);
    res.extensions_mut().insert(Rendered);
    Ok(res)
}

/// Marks `res` as [`Rendered`] (a JSON answer the handler built on purpose, say).
pub fn rendered(mut res: HttpResponse) -> HttpResponse {
    res.extensions_mut().insert(Rendered);
    res
}

/// `text` as an inline SVG QR code (medium error correction), drawn here: no image service, no
/// script, and nothing for the CSP to allow. The SVG holds geometry only, never the text.
pub fn qr_svg(text: &str) -> Result<String, AppError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(AppError::internal)?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build();
    // Inline in HTML: the XML declaration has no place there.
    Ok(image
        .find("<svg")
        .map_or(image.as_str(), |at| &image[at..])
        .to_owned())
}

/// A user as templates see it.
#[derive(Clone, Copy, Debug)]
pub struct UserView<'a> {
    /// Login address.
    pub email: &'a str,
    /// Display name (escaped on output).
    pub display_name: &'a str,
    /// Operator flag.
    pub is_admin: bool,
}

/// What `base.html` shows on every page.
#[derive(Clone, Copy, Debug, Default)]
pub struct Layout<'a> {
    /// In `<meta name="csrf-token">` and in every POST form; empty on error pages.
    pub csrf_token: &'a str,
    /// The logged-in user: switches the navigation.
    pub user: Option<UserView<'a>>,
    /// The error box (`#page-error`, `role="alert"`).
    pub error: Option<&'a str>,
    /// The field the error is about (`aria-invalid="true"`); empty if none.
    pub error_field: &'a str,
    /// A one-time notice left by the redirect that led here (`#page-notice`, `role="status"`).
    pub notice: Option<Notice>,
}

impl<'a> Layout<'a> {
    /// The same layout with an error about `field` (empty: about the whole form).
    pub fn with_error(self, field: &'a str, message: &'a str) -> Self {
        Self {
            error: Some(message),
            error_field: field,
            ..self
        }
    }

    /// Whether the error is about `field` (used for `aria-invalid`).
    pub fn error_on(&self, field: &str) -> bool {
        self.error.is_some() && self.error_field == field
    }

    /// The same layout showing `notice`, if any.
    pub fn with_notice(self, notice: Option<Notice>) -> Self {
        Self { notice, ..self }
    }
}

/// What a form POST tells the page its redirect leads to, once: the result the visitor would
/// otherwise have to guess from a silent redirect. It travels in a short-lived cookie as a fixed
/// code (see [`crate::http::cookies::notice`]), never as text, so nothing a visitor
/// or a sibling site plants in that cookie can put words on a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// `GET /verify/{token}` created or confirmed the account.
    EmailConfirmed,
    /// `POST /account/password` changed the password and ended the other sessions.
    PasswordChanged,
    /// `POST /account/profile` saved the display name.
    ProfileSaved,
    /// `POST /account/sessions/{id}/revoke` logged one other session out.
    SessionRevoked,
    /// `POST /account/sessions/revoke-others` logged every other session out.
    OtherSessionsRevoked,
    /// `POST /password/reset/{token}` set a new password and ended every session.
    PasswordReset,
    /// `POST /account/2fa/disable` turned two-factor authentication off.
    TwoFactorOff,
    /// A form needed a recent login: the page asks for the password again.
    ReauthNeeded,
    /// `POST /account/devices` added a device.
    DeviceAdded,
    /// `POST /account/devices/{id}/delete` deleted one.
    DeviceDeleted,
    /// An admin without two-factor authentication was sent to enrol.
    AdminNeedsTwoFactor,
    /// An admin action was done (the page of the account says what it is now).
    AdminDone,
}

impl Notice {
    const ALL: [Notice; 12] = [
        Notice::EmailConfirmed,
        Notice::PasswordChanged,
        Notice::ProfileSaved,
        Notice::SessionRevoked,
        Notice::OtherSessionsRevoked,
        Notice::PasswordReset,
        Notice::TwoFactorOff,
        Notice::ReauthNeeded,
        Notice::DeviceAdded,
        Notice::DeviceDeleted,
        Notice::AdminNeedsTwoFactor,
        Notice::AdminDone,
    ];

    /// The cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Notice::EmailConfirmed => "email-confirmed",
            Notice::PasswordChanged => "password-changed",
            Notice::ProfileSaved => "profile-saved",
            Notice::SessionRevoked => "session-revoked",
            Notice::OtherSessionsRevoked => "other-sessions-revoked",
            Notice::PasswordReset => "password-reset",
            Notice::TwoFactorOff => "two-factor-off",
            Notice::ReauthNeeded => "reauth-needed",
            Notice::DeviceAdded => "device-added",
            Notice::DeviceDeleted => "device-deleted",
            Notice::AdminNeedsTwoFactor => "admin-needs-2fa",
            Notice::AdminDone => "admin-done",
        }
    }

    /// The notice a cookie value names; `None` for anything else, which is ignored.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.code() == code)
    }

    /// What the page says.
    pub fn message(self) -> &'static str {
        match self {
            Notice::EmailConfirmed => {
                "Your email address is confirmed and your account is created. You can log in now."
            }
            Notice::PasswordChanged => {
                "Your password has been changed. Every other session was logged out; this \
                 device stays signed in."
            }
            Notice::ProfileSaved => "Your display name has been saved.",
            Notice::SessionRevoked => "The session was logged out.",
            Notice::OtherSessionsRevoked => {
                "Every other session was logged out. Only this device is still signed in."
            }
            Notice::PasswordReset => {
                "Your password has been reset and every session was logged out. Log in with \
                 your new password."
            }
            Notice::TwoFactorOff => {
                "Two-factor authentication is off, and every other session was logged out. Your \
                 recovery codes no longer work."
            }
            Notice::ReauthNeeded => {
                "For your security, please confirm your password before you continue."
            }
            Notice::DeviceAdded => {
                "Your device was added. Download its configuration and import it into WireGuard."
            }
            Notice::DeviceDeleted => "The device was deleted; it can no longer connect.",
            Notice::AdminNeedsTwoFactor => {
                "Admin pages need two-factor authentication. Turn it on to continue."
            }
            Notice::AdminDone => "Done. The account below shows the change.",
        }
    }
}

/// `GET /`
#[derive(Template)]
#[template(path = "index.html")]
pub struct IndexPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
}

/// `GET|POST /register`
#[derive(Template)]
#[template(path = "register.html")]
pub struct RegisterPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Prefill.
    pub email: &'a str,
    /// Configured password length bounds.
    pub password_min: usize,
    /// Configured password length bounds.
    pub password_max: usize,
}

/// After `POST /register`: reads the same whether or not the address was registered.
#[derive(Template)]
#[template(path = "register_done.html")]
pub struct RegisterDonePage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The address as typed.
    pub email: &'a str,
}

/// `GET|POST /login`
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Prefill.
    pub email: &'a str,
    /// A same-origin relative path to return to, sent back as a hidden field.
    pub next: Option<&'a str>,
    /// The proof-of-work check `app.js` solves before the form is sent, when the address must
    /// solve one.
    pub challenge: Option<&'a Challenge>,
    /// "Confirm it's you": a logged-in user logging in again for sudo mode; the address is
    /// fixed to the account's.
    pub reauth: bool,
}

/// `GET /account/2fa` (and the enable and disable forms' errors).
#[derive(Template)]
#[template(path = "two_factor.html")]
pub struct TwoFactorPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The account's address (for password managers on the disable form).
    pub email: &'a str,
    /// What the page shows: the enrolment, or the state of 2FA that is on.
    pub state: TwoFactorView,
}

/// The two states of [`TwoFactorPage`].
pub enum TwoFactorView {
    /// Off: the pending secret to enrol.
    Enrol {
        /// The `otpauth://` URI as an inline SVG QR code, made by the server from the secret
        /// (no image service, no script; the one markup marked `|safe`, as it holds no user text).
        qr_svg: String,
        /// The base32 secret in groups of four, for typing.
        secret: String,
    },
    /// On.
    On {
        /// When it was turned on, formatted.
        since: String,
        /// Unused recovery codes of the current set.
        codes_left: usize,
    },
}

/// After `POST /account/2fa/enable` or `/account/2fa/recovery-codes`: the codes, shown once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Whether this follows the enrolment (the page says 2FA is now on).
    pub just_enabled: bool,
    /// The codes.
    pub codes: Vec<String>,
}

/// The account overview.
#[derive(Clone, Debug)]
pub struct AccountView<'a> {
    /// Login address.
    pub email: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Whether the address is confirmed.
    pub email_verified: bool,
    /// Whether two-factor authentication is on.
    pub two_factor: bool,
    /// Creation time, formatted.
    pub created_at: String,
}

/// `GET /account` (and its forms' errors)
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The account.
    pub account: AccountView<'a>,
    /// Configured password length bounds.
    pub password_min: usize,
    /// Configured password length bounds.
    pub password_max: usize,
}

/// One row of the sessions page.
#[derive(Clone, Debug)]
pub struct SessionRow {
    /// The store key in hex: the revoke handle (not the cookie value).
    pub handle: String,
    /// Formatted creation time.
    pub created_at: String,
    /// Formatted last activity.
    pub last_seen: String,
    /// Address, or empty.
    pub ip: String,
    /// User agent, or empty.
    pub user_agent: String,
    /// The session of this request.
    pub current: bool,
}

/// One plan on the billing page.
#[derive(Clone, Debug)]
pub struct PlanView<'a> {
    /// The form value.
    pub id: &'a str,
    /// What is shown.
    pub name: &'a str,
    /// The account is subscribed to it.
    pub current: bool,
}

/// `GET /billing`
#[derive(Template)]
#[template(path = "billing.html")]
pub struct BillingPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// `none`, `active`, `past_due` or `canceled`.
    pub status: &'static str,
    /// The plan's name, if the subscription's price is a configured plan.
    pub plan: Option<&'a str>,
    /// The end of the current period, formatted.
    pub current_period_end: Option<String>,
    /// The plans offered.
    pub plans: Vec<PlanView<'a>>,
    /// A customer exists and Stripe is configured: the billing portal can open.
    pub can_manage: bool,
    /// Stripe is configured: the plans can be bought.
    pub can_subscribe: bool,
    /// Back from a completed checkout (the webhook may not have arrived yet).
    pub checkout_done: bool,
}

/// `GET /account/sessions`
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Newest first.
    pub sessions: Vec<SessionRow>,
}

/// `GET /verify/{token}` with a link that is used, expired, replaced by a newer one or unknown:
/// a `400` that says what happened and what to do next, instead of the generic page.
#[derive(Template)]
#[template(path = "verify_failed.html")]
pub struct VerifyFailedPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
}

/// `GET|POST /password/forgot`: the form, or (`sent`) the answer that reads the same for every
/// address.
#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The address as typed (prefill, or the answer's).
    pub email: &'a str,
    /// The request was taken.
    pub sent: bool,
}

/// `GET|POST /password/reset/{token}`: the new-password form.
#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The link's token, for the form's action (URL-safe base64 by construction).
    pub token: &'a str,
    /// Configured password length bounds.
    pub password_min: usize,
    /// Configured password length bounds.
    pub password_max: usize,
}

/// `GET|POST /password/reset/{token}` with a dead link: 400.
#[derive(Template)]
#[template(path = "reset_failed.html")]
pub struct ResetFailedPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
}

/// The generic error page. Generic by design: never internal error text, paths or traces.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    /// Common parts (no user, no token).
    pub layout: Layout<'a>,
    /// HTTP status.
    pub status: u16,
    /// Short title.
    pub title: &'a str,
    /// One sentence for the visitor.
    pub message: &'a str,
    /// Shown on 5xx pages, to quote to support.
    pub request_id: Option<&'a str>,
}

/// `/static/app.css`.
pub const APP_CSS: &str = include_str!("../static/app.css");
/// `/static/app.js`.
pub const APP_JS: &str = include_str!("../static/app.js");

/// An account as an admin sees it.
#[derive(Clone, Debug)]
pub struct AdminAccountView {
    /// The account id (links and forms).
    pub id: String,
    /// Login address (escaped on output).
    pub email: String,
    /// Display name (escaped on output).
    pub display_name: String,
    /// Whether the address is confirmed.
    pub email_verified: bool,
    /// Whether two-factor authentication is on.
    pub two_factor: bool,
    /// The admin role.
    pub is_admin: bool,
    /// Suspended.
    pub locked: bool,
    /// Whether this is the admin looking (no lock or demotion of oneself).
    pub is_self: bool,
    /// Created, formatted.
    pub created_at: String,
}

/// `GET /admin/users`: the lookup form and the account found.
#[derive(Template)]
#[template(path = "admin_users.html")]
pub struct AdminUsersPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The address searched for, as typed.
    pub query: &'a str,
    /// Whether a lookup ran (to say "no account" when nothing was found).
    pub searched: bool,
    /// The account shown.
    pub account: Option<AdminAccountView>,
}

/// One audit entry as a row.
#[derive(Clone, Debug)]
pub struct AuditRow {
    /// Position in the chain.
    pub seq: u64,
    /// When, formatted.
    pub at: String,
    /// The admin's id, or empty for the command line.
    pub actor: String,
    /// The action kind.
    pub action: String,
    /// The account acted on, or empty.
    pub subject: String,
    /// The client address, or empty.
    pub client: String,
    /// The note.
    pub detail: String,
}

/// `GET /admin/audit`
#[derive(Template)]
#[template(path = "admin_audit.html")]
pub struct AdminAuditPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The entries, newest first.
    pub entries: Vec<AuditRow>,
    /// The page number, from 1.
    pub page: u32,
    /// Whether an older page may exist.
    pub more: bool,
    /// The user filter as given.
    pub user: &'a str,
    /// The action filter as given.
    pub action: &'a str,
    /// The filters as a query string prefix for page links (`user=…&action=…&`), encoded.
    pub filter_query: String,
}

/// Formats an instant for pages: `2026-01-31 14:05 UTC`.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

/// One row of the devices page.
#[derive(Clone, Debug)]
pub struct DeviceRow {
    /// The id, for its links.
    pub id: String,
    /// The name as typed (escaped on output).
    pub name: String,
    /// Its public key.
    pub public_key: String,
    /// Its tunnel addresses.
    pub address: String,
    /// When it was added, formatted.
    pub created_at: String,
}

/// `GET /account/devices` (and the add form's errors).
#[derive(Template)]
#[template(path = "devices.html")]
pub struct DevicesPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Whether a VPN server is configured (else the page says so and offers no form).
    pub configured: bool,
    /// Devices per account.
    pub limit: u32,
    /// The account's devices, oldest first.
    pub devices: Vec<DeviceRow>,
}

/// `GET /account/devices/{id}/qr`: the configuration as a QR code for the WireGuard phone app.
#[derive(Template)]
#[template(path = "device_qr.html")]
pub struct DeviceQrPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// The device's name.
    pub name: &'a str,
    /// The configuration as an inline SVG QR code (the one `|safe`: geometry, no user text).
    pub qr_svg: String,
}
