//! Password reset: `/password/forgot` (ask for a link) and `/password/reset/{token}` (use it).

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use phaze_auth::AuthError;
use phaze_ratelimit::Budget;
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::auth_failure;
use super::{layout, see_other};
use crate::errors::AppError;
use crate::state::AppState;
use crate::views::{self, ForgotPage, Notice, ResetFailedPage, ResetPage};
use phaze_actix::Visitor;

type State = web::Data<AppState>;

/// `GET /password/forgot`
pub async fn forgot_form(visitor: Visitor) -> Result<HttpResponse, AppError> {
    views::render(
        StatusCode::OK,
        &ForgotPage {
            layout: layout(&visitor),
            email: "",
            sent: false,
        },
    )
}

/// `POST /password/forgot` fields.
#[derive(Deserialize)]
pub struct ForgotForm {
    email: String,
}

/// `POST /password/forgot`: the same page, status and work for every address; the link (or
/// nothing) is made and mailed after the answer. Limited per client network (a route guard) and
/// per address asked about, known or not.
pub async fn forgot(
    state: State,
    visitor: Visitor,
    form: web::Form<ForgotForm>,
) -> Result<HttpResponse, AppError> {
    let email = form.email.trim();
    let now = state.clock.now();
    let address = phaze_ratelimit::identifier(email);
    state
        .limits
        .spend_for_account(Budget::ResetPerAddress, &address, now)
        .await?;
    let job = state.auth.request_password_reset(email);
    let finishing = state.clone();
    state
        .deferred
        .run(async move {
            if let Err(e) = finishing.auth.complete_reset_request(job, now).await {
                tracing::error!(error = %crate::errors::chain(&e), "reset request could not be completed");
            }
        })
        .map_err(AppError::unavailable)?;
    views::render(
        StatusCode::OK,
        &ForgotPage {
            layout: layout(&visitor),
            email,
            sent: true,
        },
    )
}

fn reset_page(
    state: &AppState,
    visitor: &Visitor,
    token: &str,
    status: StatusCode,
    error: Option<(&str, &str)>,
) -> Result<HttpResponse, AppError> {
    let mut layout = layout(visitor);
    if let Some((field, message)) = error {
        layout = layout.with_error(field, message);
    }
    views::render(
        status,
        &ResetPage {
            layout,
            token,
            password_min: state.settings.auth.password_min,
            password_max: state.settings.auth.password_max,
        },
    )
}

fn dead_link(visitor: &Visitor) -> Result<HttpResponse, AppError> {
    views::render(
        StatusCode::BAD_REQUEST,
        &ResetFailedPage {
            layout: layout(visitor),
        },
    )
}

/// `GET /password/reset/{token}`: the form for a live link, a 400 page for any other.
pub async fn reset_form(
    state: State,
    visitor: Visitor,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    match state
        .auth
        .check_reset_token(&token, state.clock.now())
        .await
    {
        Ok(()) => reset_page(&state, &visitor, &token, StatusCode::OK, None),
        Err(AuthError::InvalidToken) => dead_link(&visitor),
        Err(e) => Err(auth_failure(e)),
    }
}

/// `POST /password/reset/{token}` fields.
#[derive(Deserialize)]
pub struct ResetForm {
    password: SecretString,
    password_confirm: SecretString,
}

/// `POST /password/reset/{token}`: sets the password, ends every session of the account (this
/// visitor's too, if it had one), and sends the visitor to log in.
pub async fn reset(
    state: State,
    visitor: Visitor,
    token: web::Path<String>,
    form: web::Form<ResetForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let now = state.clock.now();
    match state
        .auth
        .reset_password(&token, form.password, &form.password_confirm, now)
        .await
    {
        Ok(account) => {
            state.sessions.revoke_all(&account.id, None).await?;
            if visitor.current.is_some() {
                visitor.end_session();
            }
            visitor.queue_cookie(crate::http::cookies::notice(
                &visitor.cookies,
                Notice::PasswordReset,
            ));
            Ok(see_other("/login"))
        }
        Err(AuthError::InvalidToken) => dead_link(&visitor),
        Err(AuthError::PasswordMismatch) => reset_page(
            &state,
            &visitor,
            &token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(("password_confirm", "The two passwords do not match.")),
        ),
        Err(AuthError::WeakPassword(why)) => reset_page(
            &state,
            &visitor,
            &token,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(("password", &why.to_string())),
        ),
        Err(e) => Err(auth_failure(e)),
    }
}
