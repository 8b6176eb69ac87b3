//! Anonymous pages: landing, registration, verification, login, logout.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_auth::AuthError;
use phaze_events::SecurityEvent;
use secrecy::SecretString;
use serde::Deserialize;

use super::{layout, see_other};
use crate::errors::AppError;
use phaze_ratelimit::Challenge;

const CHALLENGE_MESSAGE: &str =
    "Too many failed attempts for this address. Your browser will solve a short check before \
     you can try again; please enter your password again.";
use crate::http::cookies::PendingNotice;
use crate::state::AppState;
use crate::views::{
    self, IndexPage, LoginPage, Notice, RegisterDonePage, RegisterPage, VerifyFailedPage,
};
use phaze_actix::{Credentials, LoginResult, Visitor};

type State = web::Data<AppState>;

/// `GET /`
pub async fn index(visitor: Visitor) -> Result<HttpResponse, AppError> {
    views::render(
        StatusCode::OK,
        &IndexPage {
            layout: layout(&visitor),
        },
    )
}

fn register_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    email: &str,
    error: Option<&str>,
) -> Result<HttpResponse, AppError> {
    let mut layout = layout(visitor);
    if let Some(e) = error {
        layout = layout.with_error("", e);
    }
    views::render(
        status,
        &RegisterPage {
            layout,
            email,
            password_min: state.settings.auth.password_min,
            password_max: state.settings.auth.password_max,
        },
    )
}

/// `GET /register`
pub async fn register_form(state: State, visitor: Visitor) -> Result<HttpResponse, AppError> {
    register_page(&state, &visitor, StatusCode::OK, "", None)
}

/// `POST /register` fields.
#[derive(Deserialize)]
pub struct RegisterForm {
    email: String,
    password: SecretString,
    password_confirm: SecretString,
}

/// `POST /register`: the same page and status whether or not the address is taken.
pub async fn register(
    state: State,
    visitor: Visitor,
    form: web::Form<RegisterForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let email = form.email.trim();
    let now = state.clock.now();
    match state
        .auth
        .register(email, form.password, &form.password_confirm)
        .await
    {
        Ok(job) => {
            // What depends on whether the address is taken (a link or a notice, the stores'
            // writes, the mail) runs after the answer, on the deferred thread, so neither timing
            // nor a failing store tells a visitor which it was. A failure is logged: the visitor
            // can register again.
            let finishing = state.clone();
            state
                .deferred
                .run(async move {
                    if let Err(e) = finishing.auth.complete_registration(job, now).await {
                        tracing::error!(error = %crate::errors::chain(&e), "registration could not be completed");
                    }
                })
                .map_err(AppError::unavailable)?;
            views::render(
                StatusCode::OK,
                &RegisterDonePage {
                    layout: layout(&visitor),
                    email,
                },
            )
        }
        Err(e) => {
            let message = match &e {
                AuthError::InvalidEmail => "Enter a valid email address.".to_owned(),
                AuthError::PasswordMismatch => "The two passwords do not match.".to_owned(),
                AuthError::WeakPassword(why) => why.to_string(),
                _ => return Err(auth_failure(e)),
            };
            register_page(
                &state,
                &visitor,
                StatusCode::UNPROCESSABLE_ENTITY,
                email,
                Some(&message),
            )
        }
    }
}

/// `GET /verify/{token}`: one use; on success the login page says the account is ready. A used,
/// expired, replaced or unknown link is a `400` page that says so and what to do next.
pub async fn verify(
    state: State,
    visitor: Visitor,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = token.into_inner();
    let failed = || {
        views::render(
            StatusCode::BAD_REQUEST,
            &VerifyFailedPage {
                layout: layout(&visitor),
            },
        )
    };
    if token.len() > 128 {
        return failed();
    }
    match state.auth.verify_email(&token, state.clock.now()).await {
        Ok(_) => {
            visitor.queue_cookie(crate::http::cookies::notice(
                &visitor.cookies,
                Notice::EmailConfirmed,
            ));
            Ok(see_other("/login"))
        }
        Err(AuthError::InvalidToken) => failed(),
        Err(e) => Err(auth_failure(e)),
    }
}

/// `GET /login` query.
#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

fn login_page(
    visitor: &Visitor,
    status: StatusCode,
    email: &str,
    next: Option<&str>,
    error: Option<&str>,
    challenge: Option<Challenge>,
) -> Result<HttpResponse, AppError> {
    let mut layout = layout(visitor);
    if let Some(e) = error {
        layout = layout.with_error("", e);
    }
    views::render(
        status,
        &LoginPage {
            layout,
            email,
            next: next.and_then(phaze_sanitize::same_origin_path),
            challenge: challenge.as_ref(),
            reauth: false,
        },
    )
}

/// `GET /login`, with the notice a verification link left, if any.
pub async fn login_form(
    visitor: Visitor,
    query: web::Query<NextQuery>,
    notice: PendingNotice,
) -> Result<HttpResponse, AppError> {
    views::render(
        StatusCode::OK,
        &LoginPage {
            layout: layout(&visitor).with_notice(notice.get()),
            email: "",
            next: query
                .next
                .as_deref()
                .and_then(phaze_sanitize::same_origin_path),
            challenge: None,
            reauth: false,
        },
    )
}

/// `GET /account/confirm?next=…`: "confirm it's you", the login form with the account's address
/// fixed. It posts to `/login`, so a re-authentication is a login (same limits, same second
/// factor, a new session) and sudo mode counts from it.
pub async fn reauth_form(
    visitor: Visitor,
    req: HttpRequest,
    query: web::Query<NextQuery>,
    notice: PendingNotice,
) -> Result<HttpResponse, actix_web::Error> {
    let current = super::require_user(&visitor, req.path())?;
    Ok(views::render(
        StatusCode::OK,
        &LoginPage {
            layout: layout(&visitor).with_notice(notice.get()),
            email: current.account.email.as_str(),
            next: query
                .next
                .as_deref()
                .and_then(phaze_sanitize::same_origin_path),
            challenge: None,
            reauth: true,
        },
    )?)
}

/// `POST /login` fields besides the credentials (which include the optional `totp`).
#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(flatten)]
    credentials: Credentials,
    next: Option<String>,
}

/// `POST /login`: one answer, with equal work, for an unknown address and a wrong password; on
/// success a brand-new session (the old one, if any, is deleted server-side).
pub async fn login(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    query: web::Query<NextQuery>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let LoginForm { credentials, next } = form.into_inner();
    let next = next.or(query.into_inner().next);
    let email = credentials.email.trim().to_owned();
    let page = |status, error, challenge| {
        login_page(
            &visitor,
            status,
            &email,
            next.as_deref(),
            Some(error),
            challenge,
        )
    };
    match state.login.log_in(&visitor, &req, credentials).await? {
        LoginResult::LoggedIn(_) => Ok(see_other(
            next.as_deref()
                .and_then(phaze_sanitize::same_origin_path)
                .unwrap_or("/account"),
        )),
        LoginResult::Unconfirmed => page(
            StatusCode::FORBIDDEN,
            "Please confirm your email address first: we have sent you a new link.",
            None,
        ),
        LoginResult::Locked => page(
            StatusCode::FORBIDDEN,
            "This account is suspended. Please contact support.",
            None,
        ),
        LoginResult::Refused {
            challenge,
            unchecked: false,
        } => page(
            StatusCode::UNAUTHORIZED,
            "Invalid email or password.",
            challenge,
        ),
        LoginResult::Refused {
            challenge,
            unchecked: true,
        } => page(StatusCode::UNAUTHORIZED, CHALLENGE_MESSAGE, challenge),
    }
}

/// `POST /logout`: the server-side session is deleted and the cookie expired.
pub async fn logout(state: State, visitor: Visitor) -> Result<HttpResponse, AppError> {
    if let Some(current) = &visitor.current {
        state.sessions.destroy(&current.session.key).await?;
        state.events.emit(SecurityEvent::Logout {
            user: current.account.id,
        });
    }
    visitor.end_session();
    Ok(see_other("/"))
}

/// Maps the errors no page handles itself: stores or the mail transport down → 503 (one status for
/// every backend, so the status never tells which one a request reached), the rest → 500.
pub fn auth_failure(e: AuthError) -> AppError {
    match e {
        AuthError::Store(s) => AppError::unavailable(s),
        AuthError::Mail(m @ phaze_auth::MailError::Transport(_)) => AppError::unavailable(m),
        AuthError::AccountGone => AppError::NotFound,
        other => AppError::internal(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    /// Finding 12.8: a backend that is down answers 503 whichever backend it is, so the status
    /// cannot tell which one a request reached (a mail failure used to be a 500, a store's 503).
    #[test]
    fn every_backend_failure_is_one_status() {
        let io = || Box::new(std::io::Error::other("down"));
        let status = |e: AuthError| auth_failure(e).status_code();
        assert_eq!(
            status(AuthError::Store(phaze_auth::StoreError::Backend(io()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(AuthError::Mail(phaze_auth::MailError::Transport(io()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        // A message that cannot be built is a bug, not an outage.
        assert_eq!(
            status(AuthError::Mail(phaze_auth::MailError::Build(io()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
