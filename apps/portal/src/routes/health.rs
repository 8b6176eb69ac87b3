//! Liveness, readiness, metrics and the static assets: outside the visitor layer (no session
//! lookup), but for `/metrics`, which answers strangers exactly as an unknown path does.

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

/// `GET /readyz`: every store the portal needs answers, within two seconds in all.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let checks = futures_util::future::try_join_all(state.probes.iter().map(|p| p.check()));
    match tokio::time::timeout(std::time::Duration::from_secs(2), checks).await {
        Ok(Ok(_)) => Ok(HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready")),
        Ok(Err(e)) => Err(AppError::Unavailable(e)),
        Err(elapsed) => Err(AppError::unavailable(elapsed)),
    }
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

/// `GET /metrics`: Prometheus text, for the networks and the bearer token of `[metrics]`; to
/// anyone else (and with metrics off) the 404 of an unknown path, so it is not even seen.
pub async fn metrics(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
) -> Result<HttpResponse, AppError> {
    let Some(metrics) = &state.metrics else {
        return Err(AppError::NotFound);
    };
    if !state.metrics_access.allows_request(&req) {
        return Err(AppError::NotFound);
    }
    if let Some(queue) = &state.mail_queue {
        match queue.depth().await {
            Ok(depth) => metrics.set_mail_queue(depth),
            Err(e) => tracing::warn!(error = %e, "mail queue depth unknown"),
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(metrics.encode()))
}
