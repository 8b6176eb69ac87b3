//! The JSON API under `/api/v1/`: strictly typed bodies (unknown fields, wrong types: 422).

use actix_web::{web, HttpRequest, HttpResponse};
use phaze_auth::{Account, AuthError};
use serde::Deserialize;

use super::pages::auth_failure;
use super::require_user;
use crate::errors::AppError;
use crate::state::AppState;
use phaze_actix::Visitor;

type State = web::Data<AppState>;

async fn me_json(state: &AppState, a: &Account) -> Result<serde_json::Value, AppError> {
    let sub = state
        .billing
        .overview(&a.id)
        .await
        .map_err(AppError::unavailable)?;
    let end = sub.current_period_end.and_then(|t| {
        t.format(&time::format_description::well_known::Rfc3339)
            .ok()
    });
    Ok(serde_json::json!({
        "id": a.id.to_string(),
        "email": a.email.as_str(),
        "display_name": a.display_name.as_str(),
        "two_factor": a.two_factor_enabled(),
        "subscription": {
            "status": sub.status.as_str(),
            "plan": sub.plan.map(|p| p.id),
            "current_period_end": end,
        },
    }))
}

/// `GET /api/v1/me`
pub async fn me(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
) -> Result<HttpResponse, actix_web::Error> {
    let current = require_user(&visitor, req.path())?;
    Ok(HttpResponse::Ok().json(me_json(&state, &current.account).await?))
}

/// `POST /api/v1/profile` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    display_name: String,
}

/// `POST /api/v1/profile`
pub async fn profile(
    state: State,
    visitor: Visitor,
    req: HttpRequest,
    body: web::Json<ProfileBody>,
) -> Result<HttpResponse, actix_web::Error> {
    let current = require_user(&visitor, req.path())?;
    match state
        .auth
        .update_display_name(&current.account.id, &body.display_name)
        .await
    {
        Ok(account) => Ok(HttpResponse::Ok().json(me_json(&state, &account).await?)),
        Err(AuthError::InvalidDisplayName(why)) => {
            Err(AppError::Unprocessable(why.to_string()).into())
        }
        Err(e) => Err(auth_failure(e).into()),
    }
}
