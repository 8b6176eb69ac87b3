//! Two-factor authentication pages: enrol, turn on (showing the recovery codes once), make new
//! recovery codes (sudo mode), turn off (password and code). The rules are
//! [`phaze_auth::AuthService`]'s; these handlers parse, call one operation and render.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use phaze_actix::{Current, Visitor};
use phaze_auth::AuthError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::pages::auth_failure;
use super::{layout, require_user, see_other};
use crate::errors::AppError;
use crate::http::cookies::PendingNotice;
use crate::state::AppState;
use crate::views::{self, format_time, Notice, RecoveryCodesPage, TwoFactorPage, TwoFactorView};

type State = web::Data<AppState>;
type Page = Result<HttpResponse, actix_web::Error>;

/// Where sudo mode sends a visitor whose login is too old, and back.
const REAUTH: &str = "/account/confirm?next=%2Faccount%2F2fa";

/// The base32 secret in groups of four, as apps show and people type.
fn grouped(secret: &SecretString) -> String {
    let chars: Vec<char> = secret.expose_secret().chars().collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn page(
    state: &AppState,
    visitor: &Visitor,
    current: &Current,
    status: StatusCode,
    error: Option<(&str, &str)>,
    notice: Option<Notice>,
) -> Result<HttpResponse, AppError> {
    let account = state
        .auth
        .account(&current.account.id)
        .await
        .map_err(auth_failure)?
        .ok_or(AppError::NotFound)?;
    let view = match account.two_factor.as_ref() {
        Some(t) if t.enabled_at.is_some() => TwoFactorView::On {
            since: t.enabled_at.map(format_time).unwrap_or_default(),
            codes_left: t.recovery_codes.len(),
        },
        _ => {
            let enrolment = state
                .auth
                .two_factor_enrolment(&account.id)
                .await
                .map_err(auth_failure)?;
            TwoFactorView::Enrol {
                qr_svg: views::qr_svg(enrolment.otpauth_url.expose_secret())?,
                secret: grouped(&enrolment.secret),
            }
        }
    };
    let mut layout = layout(visitor).with_notice(notice);
    if let Some((field, message)) = error {
        layout = layout.with_error(field, message);
    }
    views::render(
        status,
        &TwoFactorPage {
            layout,
            email: account.email.as_str(),
            state: view,
        },
    )
}

/// The codes page; `csrf_token` is that of the session the page belongs to (a new one after
/// the enrolment restarted the user's sessions).
fn codes_page(
    visitor: &Visitor,
    csrf_token: &str,
    codes: &[SecretString],
    just_enabled: bool,
) -> Page {
    Ok(views::render(
        StatusCode::OK,
        &RecoveryCodesPage {
            layout: crate::views::Layout {
                csrf_token,
                ..layout(visitor)
            },
            just_enabled,
            codes: codes.iter().map(|c| c.expose_secret().to_owned()).collect(),
        },
    )?)
}

/// `GET /account/2fa`: the enrolment (QR code and key), or the state of 2FA that is on.
pub async fn show(state: State, visitor: Visitor, req: HttpRequest, notice: PendingNotice) -> Page {
    let current = require_user(&visitor, req.path())?;
    Ok(page(
        &state,
        &visitor,
        current,
        StatusCode::OK,
        None,
        notice.get(),
    )
    .await?)
}

/// `POST /account/2fa/enable` fields.
#[derive(Deserialize)]
pub struct EnableForm {
    code: String,
}

/// `POST /account/2fa/enable`: a valid code turns it on; every other session ends, and the page
/// lists the ten recovery codes, once.
pub async fn enable(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<EnableForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    let user = current.account.id;
    match state.auth.enable_two_factor(&user, &form.code, now).await {
        Ok(codes) => {
            let token =
                super::restart_sessions(&state, &visitor, &user, "two_factor_enabled").await?;
            codes_page(&visitor, &token, &codes, true)
        }
        Err(AuthError::InvalidCode) => {
            let message = "That code is not right, or was already used. Check that the time on \
                           your phone is correct and enter the newest code.";
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page(
                &state,
                &visitor,
                current,
                status,
                Some(("code", message)),
                None,
            )
            .await?)
        }
        Err(AuthError::TwoFactorOn | AuthError::TwoFactorOff) => Ok(see_other("/account/2fa")),
        Err(e) => Err(auth_failure(e).into()),
    }
}

/// `POST /account/2fa/disable` fields.
#[derive(Deserialize)]
pub struct DisableForm {
    password: SecretString,
    code: String,
}

/// `POST /account/2fa/disable`: the password and a code (from the app, or a recovery code) turn
/// it off; every other session ends.
pub async fn disable(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<DisableForm>,
) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    let user = current.account.id;
    let DisableForm { password, code } = form.into_inner();
    match state
        .auth
        .disable_two_factor(&user, password, &code, now)
        .await
    {
        Ok(_) => {
            super::restart_sessions(&state, &visitor, &user, "two_factor_disabled").await?;
            visitor.queue_cookie(crate::http::cookies::notice(
                &visitor.cookies,
                Notice::TwoFactorOff,
            ));
            Ok(see_other("/account/2fa"))
        }
        Err(AuthError::InvalidCredentials) => {
            let message = "Your password or the code is not correct.";
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(page(
                &state,
                &visitor,
                current,
                status,
                Some(("password", message)),
                None,
            )
            .await?)
        }
        Err(AuthError::TwoFactorOff) => Ok(see_other("/account/2fa")),
        Err(e) => Err(auth_failure(e).into()),
    }
}

/// `POST /account/2fa/recovery-codes`: in sudo mode (a login within `session.reauth_secs`), a
/// new set, shown once; otherwise the password is asked for first.
pub async fn recovery_codes(state: State, visitor: Visitor, req: HttpRequest) -> Page {
    let current = require_user(&visitor, req.path())?;
    let now = state.clock.now();
    if !current
        .session
        .recently_authenticated(state.sessions.policy(), now)
    {
        visitor.queue_cookie(crate::http::cookies::notice(
            &visitor.cookies,
            Notice::ReauthNeeded,
        ));
        return Ok(see_other(REAUTH));
    }
    match state
        .auth
        .new_recovery_codes(&current.account.id, now)
        .await
    {
        Ok(codes) => codes_page(&visitor, &visitor.csrf_token, &codes, false),
        Err(AuthError::TwoFactorOff) => Ok(see_other("/account/2fa")),
        Err(e) => Err(auth_failure(e).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qr_code_is_inline_svg_with_no_text_of_the_secret() {
        let url = SecretString::from(
            "otpauth://totp/Phaze:ada%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Phaze"
                .to_owned(),
        );
        let svg = views::qr_svg(url.expose_secret()).unwrap_or_default();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.ends_with("</svg>"));
        assert!(!svg.contains("GEZD") && !svg.contains("<script") && !svg.contains("href"));
        assert_eq!(
            grouped(&SecretString::from("GEZDGNBVGY".to_owned())),
            "GEZD GNBV GY"
        );
    }
}
