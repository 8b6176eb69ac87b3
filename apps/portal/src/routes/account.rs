//! The logged-in pages: account, profile, password, sessions.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_auth::AuthError;
use phaze_events::SecurityEvent;
use phaze_sessions::SessionKey;
use secrecy::SecretString;
use serde::Deserialize;

use super::pages::auth_failure;
use super::{layout, require_user, see_other};
use crate::errors::AppError;
use crate::http::cookies::PendingNotice;
use crate::state::AppState;
use crate::views::{self, format_time, AccountPage, AccountView, Notice, SessionRow, SessionsPage};
use phaze_actix::{Current, Visitor};

type State = web::Data<AppState>;
type Page = Result<HttpResponse, actix_web::Error>;

fn account_page(
    state: &AppState,
    visitor: &Visitor,
    current: &Current,
    status: StatusCode,
    error: Option<(&str, &str)>,
    notice: Option<Notice>,
) -> Result<HttpResponse, AppError> {
    let a = &current.account;
    let mut layout = layout(visitor).with_notice(notice);
    if let Some((field, message)) = error {
        layout = layout.with_error(field, message);
    }
    views::render(
        status,
        &AccountPage {
            layout,
            account: AccountView {
                email: a.email.as_str(),
                display_name: a.display_name.as_str(),
                email_verified: a.email_verified,
                two_factor: a.two_factor_enabled(),
                created_at: format_time(a.created_at),
            },
            password_min: state.settings.auth.password_min,
            password_max: state.settings.auth.password_max,
        },
    )
}

/// `303 See Other` to `location`, leaving `notice` for the page there.
fn see_other_with(visitor: &Visitor, location: &str, notice: Notice) -> HttpResponse {
    visitor.queue_cookie(crate::http::cookies::notice(&visitor.cookies, notice));
    see_other(location)
}

/// `GET /account`, with the notice a form on it left, if any.
pub async fn show(state: State, visitor: Visitor, req: HttpRequest, notice: PendingNotice) -> Page {
    let current = require_user(&visitor, req.path())?;
    let page = account_page(
        &state,
        &visitor,
        current,
        StatusCode::OK,
        None,
        notice.get(),
    )?;
    Ok(page)
}

/// `POST /account/profile` fields.
#[derive(Deserialize)]
pub struct ProfileForm {
    display_name: String,
}

/// `POST /account/profile`
pub async fn profile(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<ProfileForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    match state
        .auth
        .update_display_name(&current.account.id, &form.display_name)
        .await
    {
        Ok(_) => Ok(see_other_with(&visitor, "/account", Notice::ProfileSaved)),
        Err(AuthError::InvalidDisplayName(why)) => {
            let message = format!("Display name: {why}.");
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(account_page(
                &state,
                &visitor,
                current,
                status,
                Some(("display_name", &message)),
                None,
            )?)
        }
        Err(e) => Err(auth_failure(e).into()),
    }
}

/// `POST /account/password` fields.
#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: SecretString,
    new_password: SecretString,
}

/// `POST /account/password`: ends every other session, and gives this one a new id.
pub async fn password(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<PasswordForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let form = form.into_inner();
    let now = state.clock.now();
    let user = current.account.id;
    let status = StatusCode::UNPROCESSABLE_ENTITY;
    match state
        .auth
        .change_password(&user, form.current_password, form.new_password, now)
        .await
    {
        Ok(_) => {
            super::restart_sessions(&state, &visitor, &user, "password_changed").await?;
            Ok(see_other_with(
                &visitor,
                "/account",
                Notice::PasswordChanged,
            ))
        }
        Err(AuthError::InvalidCredentials) => Ok(account_page(
            &state,
            &visitor,
            current,
            status,
            Some(("current_password", "Your current password is not correct.")),
            None,
        )?),
        Err(AuthError::WeakPassword(why)) => {
            let message = why.to_string();
            Ok(account_page(
                &state,
                &visitor,
                current,
                status,
                Some(("new_password", &message)),
                None,
            )?)
        }
        Err(e) => Err(auth_failure(e).into()),
    }
}

/// `GET /account/sessions`, with the notice a revocation left, if any.
pub async fn sessions(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    notice: PendingNotice,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    let list = state
        .sessions
        .list(&current.user(), now)
        .await
        .map_err(AppError::from)?;
    let rows: Vec<SessionRow> = list
        .into_iter()
        .map(|s| SessionRow {
            handle: s.key.to_hex(),
            created_at: format_time(s.created_at),
            last_seen: format_time(s.last_seen),
            ip: s.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            user_agent: s.user_agent,
            current: s.key == current.session.key,
        })
        .collect();
    let page = views::render(
        StatusCode::OK,
        &SessionsPage {
            layout: layout(&visitor).with_notice(notice.get()),
            sessions: rows,
        },
    )?;
    Ok(page)
}

/// `POST /account/sessions/{id}/revoke`: only the user's own sessions; anything else is a 404.
/// Revoking the current session is a logout.
pub async fn revoke(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    handle: web::Path<String>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let key = SessionKey::from_hex(&handle).ok_or(AppError::NotFound)?;
    let user = current.user();
    if !state
        .sessions
        .revoke(&user, &key)
        .await
        .map_err(AppError::from)?
    {
        return Err(AppError::NotFound.into());
    }
    state.events.emit(SecurityEvent::SessionRevoked { user });
    if key == current.session.key {
        visitor.end_session();
        return Ok(see_other("/"));
    }
    Ok(see_other_with(
        &visitor,
        "/account/sessions",
        Notice::SessionRevoked,
    ))
}

/// `POST /account/sessions/revoke-others`
pub async fn revoke_others(state: State, visitor: Visitor, req: HttpRequest) -> Page {
    let current = require_user(&visitor, req.path())?;
    let user = current.user();
    let ended = state
        .sessions
        .revoke_all(&user, Some(&current.session.key))
        .await
        .map_err(AppError::from)?;
    state.events.emit(SecurityEvent::SessionsRevoked {
        user,
        count: u64::try_from(ended).unwrap_or(u64::MAX),
    });
    Ok(see_other_with(
        &visitor,
        "/account/sessions",
        Notice::OtherSessionsRevoked,
    ))
}

/// `GET /account/export`: everything stored about the account as a JSON attachment
/// ([`phaze_privacy::Export`], fields in docs/operations.md).
pub async fn export(state: State, visitor: Visitor, req: HttpRequest) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    let export = state
        .privacy
        .export(&current.user(), now)
        .await
        .map_err(|e| match e {
            phaze_privacy::PrivacyError::NoAccount => AppError::NotFound,
            phaze_privacy::PrivacyError::Auth(a) => super::pages::auth_failure(a),
            other => AppError::unavailable(other),
        })?;
    let body = serde_json::to_vec_pretty(&export).map_err(AppError::internal)?;
    let date = now.date();
    let name = format!("phaze-export-{date}.json");
    Ok(views::rendered(
        HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((
                actix_web::http::header::CONTENT_DISPOSITION,
                phaze_sanitize::content_disposition(&name),
            ))
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .body(body),
    ))
}

/// `POST /account/delete` form.
#[derive(serde::Deserialize)]
pub struct DeleteForm {
    password: secrecy::SecretString,
    /// A code of the authenticator app or a recovery code, when 2FA is on.
    #[serde(default)]
    code: Option<String>,
}

/// `POST /account/delete`: with the password (and a code when 2FA is on), the account is erased
/// from every store ([`phaze_privacy::PrivacyService::delete`]) and the visitor is logged out.
pub async fn delete(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<DeleteForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let DeleteForm { password, code } = form.into_inner();
    let deleted = state
        .privacy
        .delete(
            &current.user(),
            password,
            code.as_deref(),
            Some(visitor.client.ip),
            state.clock.now(),
        )
        .await;
    match deleted {
        Ok(()) => {
            visitor.end_session();
            Ok(see_other("/"))
        }
        Err(phaze_privacy::PrivacyError::Auth(phaze_auth::AuthError::InvalidCredentials)) => {
            Ok(account_page(
                &state,
                &visitor,
                current,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((
                    "delete_password",
                    "Your password or the code is not correct. Nothing was deleted.",
                )),
                None,
            )?)
        }
        Err(phaze_privacy::PrivacyError::Auth(a)) => Err(super::pages::auth_failure(a).into()),
        Err(e) => {
            // Locked and logged out already; the rest is finished by the periodic task.
            tracing::warn!(error = %crate::errors::chain(&e), "account deletion left open; it will be resumed");
            Err(AppError::unavailable(e).into())
        }
    }
}
