//! Route handlers, one module per area of the contract (`docs/http-contract.md`).

pub mod account;
pub mod admin;
pub mod api;
pub mod billing;
pub mod devices;
pub mod forward_auth;
pub mod health;
pub mod pages;
pub mod password;
pub mod two_factor;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use phaze_events::SecurityEvent;
use std::fmt;

use crate::views::{Layout, UserView};
use phaze_actix::{Current, Visitor};

/// What every page shows: the CSRF token and the user, if any.
pub fn layout(visitor: &Visitor) -> Layout<'_> {
    Layout {
        csrf_token: &visitor.csrf_token,
        user: visitor.account().map(|a| UserView {
            email: a.email.as_str(),
            display_name: a.display_name.as_str(),
            is_admin: a.is_admin,
        }),
        ..Layout::default()
    }
}

/// After a change to what the user's sessions stand for (a password, two-factor authentication):
/// every session of `user` ends, and this visitor gets a new one, whose CSRF token is returned
/// for a page rendered by this same response.
pub async fn restart_sessions(
    state: &crate::state::AppState,
    visitor: &Visitor,
    user: &phaze_auth::UserId,
    reason: &'static str,
) -> Result<String, crate::errors::AppError> {
    let (id, session, ended) = state
        .sessions
        .restart_for_user(user, &visitor.meta(), state.clock.now())
        .await
        .map_err(crate::errors::AppError::from)?;
    state.events.emit(SecurityEvent::SessionsRestarted {
        user: *user,
        reason,
        count: u64::try_from(ended).unwrap_or(u64::MAX),
    });
    visitor.start_session(&id);
    Ok(state.visitors.csrf_token_of(&session))
}

/// `303 See Other` to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A logged-in visitor, or the response an anonymous one gets: a redirect to the login page for
/// pages, `401` for the API.
pub fn require_user<'a>(visitor: &'a Visitor, path: &str) -> Result<&'a Current, NotLoggedIn> {
    visitor.current.as_ref().ok_or_else(|| NotLoggedIn {
        next: path.to_owned(),
    })
}

/// The visitor is anonymous.
#[derive(Debug)]
pub struct NotLoggedIn {
    next: String,
}

impl fmt::Display for NotLoggedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("login required")
    }
}

impl ResponseError for NotLoggedIn {
    fn status_code(&self) -> StatusCode {
        if self.next.starts_with("/api/") {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::SEE_OTHER
        }
    }

    fn error_response(&self) -> HttpResponse {
        if self.next.starts_with("/api/") {
            return HttpResponse::Unauthorized().finish();
        }
        let query = serde_urlencoded::to_string([("next", self.next.as_str())]).unwrap_or_default();
        see_other(&format!("/login?{query}"))
    }
}
