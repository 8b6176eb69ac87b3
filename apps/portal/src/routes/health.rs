//! Liveness, readiness and the static assets: outside the visitor layer (no session lookup).

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::errors::AppError;
use crate::state::AppState;
use crate::views::{APP_CSS, APP_JS};

/// `GET /healthz`: the process answers.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// `GET /readyz`: every store the portal needs is reachable.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    for dir in &state.ready_dirs {
        let ok = std::fs::metadata(dir).is_ok_and(|m| m.is_dir());
        if !ok {
            return Err(AppError::Unavailable(
                format!("{} is not a directory", dir.display()).into(),
            ));
        }
    }
    Ok(HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ready"))
}

/// `GET /static/app.css`
pub async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/css; charset=utf-8"))
        .body(APP_CSS)
}

/// `GET /static/app.js`
pub async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/javascript; charset=utf-8"))
        .body(APP_JS)
}
