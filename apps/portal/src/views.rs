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

/// `GET /account/sessions`
#[derive(Template)]
#[template(path = "sessions.html")]
pub struct SessionsPage<'a> {
    /// Common parts.
    pub layout: Layout<'a>,
    /// Newest first.
    pub sessions: Vec<SessionRow>,
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

/// Formats an instant for pages: `2026-01-31 14:05 UTC`.
pub fn format_time(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    t.to_offset(time::UtcOffset::UTC)
        .format(&f)
        .unwrap_or_default()
}
