//! The admin pages: `/admin/users` (look an account up, lock, unlock, end its sessions, resend
//! its verification, grant or revoke the role) and `/admin/audit`. The rules (who may, sudo mode,
//! the audit entry of each action) are [`phaze_admin::AdminService`]'s; these handlers parse,
//! call one operation and render. To anyone but an admin every admin path is the 404 of an
//! unknown page.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use phaze_actix::{Current, Visitor};
use phaze_admin::{Acting, AdminError};
use phaze_audit::{AuditEntry, AuditFilter};
use phaze_auth::{Account, UserId};
use serde::Deserialize;

use super::{layout, see_other};
use crate::errors::AppError;
use crate::http::cookies::{notice, PendingNotice};
use crate::state::AppState;
use crate::views::{
    self, format_time, AdminAccountView, AdminAuditPage, AdminUsersPage, AuditRow, Notice,
};

type State = web::Data<AppState>;
type Page = Result<HttpResponse, actix_web::Error>;

/// The deepest page `/admin/audit?page=` goes to (each page is read from the newest).
const MAX_PAGE: u32 = 200;

/// The gate: an admin with two-factor authentication, or the unknown-page 404 (an admin without
/// it is sent to enrol).
fn gate<'a>(
    state: &AppState,
    visitor: &'a Visitor,
) -> Result<(&'a Current, Acting), Box<HttpResponse>> {
    let Some(current) = visitor.current.as_ref() else {
        return Err(Box::new(not_found()));
    };
    match state.admin.authorize(
        &current.account,
        &current.session,
        Some(visitor.client.ip),
        state.clock.now(),
    ) {
        Ok(acting) => Ok((current, acting)),
        Err(AdminError::TwoFactorRequired) => {
            visitor.queue_cookie(notice(&visitor.cookies, Notice::AdminNeedsTwoFactor));
            Err(Box::new(see_other("/account/2fa")))
        }
        Err(_) => Err(Box::new(not_found())),
    }
}

fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&AppError::NotFound)
}

fn failure(e: AdminError) -> AppError {
    match e {
        AdminError::NotAdmin | AdminError::NoAccount => AppError::NotFound,
        AdminError::Audit(a) => AppError::unavailable(a),
        AdminError::Sessions(s) => AppError::from(s),
        AdminError::Auth(a) => crate::routes::pages::auth_failure(a),
        other => AppError::internal(other),
    }
}

fn view(account: &Account, me: &UserId) -> AdminAccountView {
    AdminAccountView {
        id: account.id.to_string(),
        email: account.email.as_str().to_owned(),
        display_name: account.display_name.as_str().to_owned(),
        email_verified: account.email_verified,
        two_factor: account.two_factor_enabled(),
        is_admin: account.is_admin,
        locked: account.locked,
        is_self: account.id == *me,
        created_at: format_time(account.created_at),
    }
}

/// `GET /admin/users` query.
#[derive(Deserialize)]
pub struct UsersQuery {
    /// An address to look up.
    email: Option<String>,
    /// An account to show (after an action, or from the audit log).
    id: Option<String>,
}

/// `GET /admin/users[?email=…|?id=…]`
pub async fn users(
    state: State,
    visitor: Visitor,
    query: web::Query<UsersQuery>,
    pending: PendingNotice,
) -> Page {
    let (current, acting) = match gate(&state, &visitor) {
        Ok(ok) => ok,
        Err(res) => return Ok(*res),
    };
    let now = state.clock.now();
    let me = current.account.id;
    let email = query.email.as_deref().unwrap_or_default();
    let mut status = StatusCode::OK;
    let mut error = None;
    let (account, searched) = if let Some(id) = query.id.as_deref() {
        let id: UserId = id.parse().map_err(|_| AppError::NotFound)?;
        let account = state.admin.view(&acting, &id, now).await.map_err(failure)?;
        (Some(account), false)
    } else if !email.trim().is_empty() {
        match state.admin.find(&acting, email, now).await {
            Ok(found) => (found, true),
            Err(AdminError::InvalidEmail) => {
                status = StatusCode::UNPROCESSABLE_ENTITY;
                error = Some("Enter a whole email address, such as name@example.com.");
                (None, false)
            }
            Err(e) => return Err(failure(e).into()),
        }
    } else {
        (None, false)
    };
    let mut layout = layout(&visitor).with_notice(pending.get());
    if let Some(message) = error {
        layout = layout.with_error("email", message);
    }
    Ok(views::render(
        status,
        &AdminUsersPage {
            layout,
            query: email,
            searched,
            account: account.as_ref().map(|a| view(a, &me)),
        },
    )?)
}

/// The actions of `POST /admin/users/{id}/{action}`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Lock,
    Unlock,
    EndSessions,
    ResendVerification,
    Grant,
    Revoke,
}

/// `POST /admin/users/{id}/{action}`: the action, then 303 to the account's page. Past the
/// sudo window, the admin confirms their password first and comes back here.
pub async fn act(state: State, visitor: Visitor, path: web::Path<(String, String)>) -> Page {
    let (_, acting) = match gate(&state, &visitor) {
        Ok(ok) => ok,
        Err(res) => return Ok(*res),
    };
    let (id, action) = path.into_inner();
    let user: UserId = id.parse().map_err(|_| AppError::NotFound)?;
    let action: Action = serde_json::from_value(serde_json::Value::String(action))
        .map_err(|_| AppError::NotFound)?;
    let now = state.clock.now();
    let admin = &state.admin;
    let done = match action {
        Action::Lock => admin.lock(&acting, &user, now).await.map(drop),
        Action::Unlock => admin.unlock(&acting, &user, now).await.map(drop),
        Action::EndSessions => admin.end_sessions(&acting, &user, now).await.map(drop),
        Action::ResendVerification => admin.resend_verification(&acting, &user, now).await,
        Action::Grant => admin.set_admin(&acting, &user, true, now).await.map(drop),
        Action::Revoke => admin.set_admin(&acting, &user, false, now).await.map(drop),
    };
    let back = format!("/admin/users?id={user}");
    match done {
        Ok(()) => {
            visitor.queue_cookie(notice(&visitor.cookies, Notice::AdminDone));
            Ok(see_other(&back))
        }
        Err(AdminError::ReauthRequired) => {
            visitor.queue_cookie(notice(&visitor.cookies, Notice::ReauthNeeded));
            let query = serde_urlencoded::to_string([("next", back.as_str())]).unwrap_or_default();
            Ok(see_other(&format!("/account/confirm?{query}")))
        }
        Err(e @ (AdminError::OwnAccount | AdminError::AlreadyVerified)) => {
            let account = state
                .auth
                .account(&user)
                .await
                .map_err(crate::routes::pages::auth_failure)?
                .ok_or(AppError::NotFound)?;
            let message = match e {
                AdminError::OwnAccount => {
                    "You cannot lock your own account or remove your own admin role here."
                }
                _ => "This address is confirmed already: there is nothing to resend.",
            };
            Ok(views::render(
                StatusCode::UNPROCESSABLE_ENTITY,
                &AdminUsersPage {
                    layout: layout(&visitor).with_error("", message),
                    query: "",
                    searched: false,
                    account: Some(view(&account, &acting.admin())),
                },
            )?)
        }
        Err(e) => Err(failure(e).into()),
    }
}

/// `GET /admin/audit` query.
#[derive(Deserialize)]
pub struct AuditQuery {
    /// From 1.
    page: Option<u32>,
    /// An account id: entries by or about it.
    user: Option<String>,
    /// An action kind.
    action: Option<String>,
}

fn row(e: AuditEntry) -> AuditRow {
    AuditRow {
        seq: e.seq,
        at: format_time(e.at),
        actor: e.actor.map(|a| a.to_string()).unwrap_or_default(),
        action: e.action,
        subject: e.subject.map(|s| s.to_string()).unwrap_or_default(),
        client: e.client.unwrap_or_default(),
        detail: e.detail,
    }
}

/// `GET /admin/audit[?page=N&user=ID&action=KIND]`, newest first, 50 a page.
pub async fn audit(state: State, visitor: Visitor, query: web::Query<AuditQuery>) -> Page {
    let (_, acting) = match gate(&state, &visitor) {
        Ok(ok) => ok,
        Err(res) => return Ok(*res),
    };
    let page = query.page.unwrap_or(1).clamp(1, MAX_PAGE);
    let user_text = query.user.as_deref().unwrap_or_default().trim();
    let action_text = query.action.as_deref().unwrap_or_default().trim();
    let mut filter = AuditFilter::default();
    let mut error = None;
    if !user_text.is_empty() {
        match user_text.parse::<UserId>() {
            Ok(u) => filter.user = Some(u),
            Err(_) => error = Some(("user", "Enter an account id as shown on the users page.")),
        }
    }
    if !action_text.is_empty() {
        let valid = action_text.len() <= 64
            && action_text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if valid {
            filter.action = Some(action_text.to_owned());
        } else {
            error = Some(("action", "Enter an action such as admin.lock."));
        }
    }
    let (entries, more) = match error {
        Some(_) => (Vec::new(), false),
        None => state
            .admin
            .audit_page(&acting, &filter, page, state.clock.now())
            .await
            .map_err(failure)?,
    };
    let mut filter_query = String::new();
    for (k, v) in [("user", user_text), ("action", action_text)] {
        if !v.is_empty() {
            filter_query.push_str(&serde_urlencoded::to_string([(k, v)]).unwrap_or_default());
            filter_query.push('&');
        }
    }
    let mut layout = layout(&visitor);
    let status = match error {
        Some((field, message)) => {
            layout = layout.with_error(field, message);
            StatusCode::UNPROCESSABLE_ENTITY
        }
        None => StatusCode::OK,
    };
    Ok(views::render(
        status,
        &AdminAuditPage {
            layout,
            entries: entries.into_iter().map(row).collect(),
            page,
            more,
            user: user_text,
            action: action_text,
            filter_query,
        },
    )?)
}
