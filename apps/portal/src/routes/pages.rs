//! Anonymous pages: landing, registration, verification, login, logout.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_auth::AuthError;
use secrecy::SecretString;
use serde::Deserialize;

use super::{layout, see_other};
use crate::errors::AppError;
use phaze_ratelimit::{Challenge, LoginAttempt, LoginError, LoginOutcome, Verdict};

const CHALLENGE_MESSAGE: &str =
    "Too many failed attempts for this address. Your browser will solve a short check before \
     you can try again; please enter your password again.";
use crate::http::cookies::PendingNotice;
use crate::state::AppState;
use crate::views::{
    self, IndexPage, LoginPage, Notice, RegisterDonePage, RegisterPage, VerifyFailedPage,
};
use phaze_actix::Visitor;

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
        Ok(account) => {
            tracing::info!(target: "security", event = "email_verified", user = %account.id);
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
        },
    )
}

/// `POST /login` fields. `totp` is accepted for forward compatibility.
#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: SecretString,
    next: Option<String>,
    challenge: Option<String>,
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
    let form = form.into_inner();
    let next = form.next.as_deref().or(query.next.as_deref());
    let now = state.clock.now();
    let device = req.cookie(visitor.cookies.device);
    let attempt = LoginAttempt {
        client: visitor.client.ip,
        identifier: &form.email,
        device_cookie: device.as_ref().map(|c| c.value()),
        challenge_answer: form.challenge.as_deref(),
    };
    let password = form.password;
    let outcome = state
        .limits
        .login(attempt, now, || async {
            match state.auth.login(&form.email, password).await {
                Ok(account) => Ok(Verdict::Right(Some(account))),
                // The password was right: this was no guess.
                Err(AuthError::EmailNotVerified) => Ok(Verdict::Right(None)),
                Err(AuthError::InvalidCredentials) => Ok(Verdict::Wrong),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| match e {
            LoginError::Store(s) => AppError::unavailable(s),
            LoginError::Check(e) => auth_failure(e),
        })?;
    let page = |status, error, challenge| {
        login_page(
            &visitor,
            status,
            form.email.trim(),
            next,
            Some(error),
            challenge,
        )
    };
    match outcome {
        LoginOutcome::Right {
            value: Some(account),
            device_cookie,
        } => {
            let presented = visitor.current.as_ref().map(|c| &c.session.key);
            let (id, _) = state
                .sessions
                .start(&account.id, presented, &visitor.meta(), now)
                .await?;
            tracing::info!(target: "security", event = "login_success", user = %account.id, client = %visitor.client.ip);
            let target = next
                .and_then(phaze_sanitize::same_origin_path)
                .unwrap_or("/account");
            visitor.start_session(&id);
            visitor.set_device_cookie(&device_cookie);
            Ok(see_other(target))
        }
        LoginOutcome::Right { value: None, .. } => {
            // Only reachable with the right password, so it reveals nothing to a guesser.
            state
                .auth
                .resend_verification(&form.email, now)
                .await
                .map_err(auth_failure)?;
            page(
                StatusCode::FORBIDDEN,
                "Please confirm your email address first: we have sent you a new link.",
                None,
            )
        }
        LoginOutcome::Wrong { challenge } => page(
            StatusCode::UNAUTHORIZED,
            "Invalid email or password.",
            challenge,
        ),
        LoginOutcome::ChallengeRequired(challenge) => {
            page(StatusCode::UNAUTHORIZED, CHALLENGE_MESSAGE, Some(challenge))
        }
        LoginOutcome::Limited(decision) => Err(AppError::TooManyRequests(decision)),
    }
}

/// `POST /logout`: the server-side session is deleted and the cookie expired.
pub async fn logout(state: State, visitor: Visitor) -> Result<HttpResponse, AppError> {
    if let Some(current) = &visitor.current {
        state.sessions.destroy(&current.session.key).await?;
        tracing::info!(target: "security", event = "logout", user = %current.account.id);
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
