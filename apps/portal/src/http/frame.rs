//! The outermost layer of every request: it gives the request an id (in every log line of the
//! request, and on the 500 page), decides the client ([`phaze_actix::client::resolve`]), adds the security headers,
//! and turns every error status into the generic page (or JSON under `/api/`), so no internal
//! message, path or trace reaches a client in any build profile.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpResponse};
use rand::RngCore;
use tracing::Instrument;

use crate::errors::{chain, AppError};
use crate::state::AppState;
use crate::views::{ErrorPage, Layout, Rendered};
use phaze_actix::headers::SecurityHeaders;

/// A short random id per request: 12 hex characters.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl RequestId {
    fn new() -> Self {
        // Not a secret, so the thread's userspace CSPRNG will do: no system call per request.
        Self(format!("{:012x}", rand::thread_rng().next_u64() >> 16))
    }
}

/// The frame middleware; see the module doc.
pub async fn frame(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(HttpResponse::InternalServerError().finish()));
    };
    let request_id = RequestId::new();
    let client = phaze_actix::client::resolve(&req, &state.proxies);
    req.extensions_mut().insert(request_id.clone());
    let is_api = req.path().starts_with("/api/");
    let is_static = req.path().starts_with("/static/");
    let span = tracing::info_span!(
        "request",
        id = %request_id.0,
        method = %req.method(),
        path = %req.path(),
        client = %client.ip,
    );
    // Inner layers answer their own failures with responses (see `visitor`), so an `Err` here
    // is actix's own and is rendered by actix.
    let mut res = next
        .call(req)
        .instrument(span.clone())
        .await?
        .map_into_boxed_body();
    let status = res.status();
    let _enter = span.enter();
    if status.is_server_error() {
        let detail = res
            .response()
            .error()
            .map(|e| {
                if let Some(app) = e.as_error::<AppError>() {
                    chain(app)
                } else if let Some(layer) = e.as_error::<phaze_actix::Error>() {
                    chain(layer)
                } else {
                    e.to_string()
                }
            })
            .unwrap_or_default();
        tracing::error!(status = status.as_u16(), error = %detail, "request failed");
    } else if status.is_client_error() {
        if let Some(e) = res.response().error() {
            tracing::info!(status = status.as_u16(), error = %e, "request refused");
        }
    }
    if (status.is_client_error() || status.is_server_error())
        && res.response().extensions().get::<Rendered>().is_none()
    {
        res = generic_error(res, &request_id, is_api);
    }
    SecurityHeaders::default().apply(res.headers_mut(), client.https, is_static);
    Ok(res)
}

fn generic_error(
    res: ServiceResponse<BoxBody>,
    request_id: &RequestId,
    is_api: bool,
) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let (title, message) = describe(status);
    let show_id = status.is_server_error();
    let mut new = if is_api {
        let mut body = serde_json::json!({ "error": title.to_lowercase() });
        if show_id {
            body["request_id"] = request_id.0.clone().into();
        }
        HttpResponse::build(status).json(body)
    } else {
        let page = ErrorPage {
            layout: Layout::default(),
            status: status.as_u16(),
            title,
            message,
            request_id: show_id.then_some(request_id.0.as_str()),
        };
        let body = askama::Template::render(&page)
            .unwrap_or_else(|_| format!("{} {title}\n", status.as_u16()));
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(body)
    };
    // Keep what the protocol needs (Allow, Retry-After, cookies being cleared), drop the rest.
    for (name, value) in res.headers() {
        if matches!(
            name.as_str(),
            "allow" | "retry-after" | "set-cookie" | "www-authenticate"
        ) || name.as_str().starts_with("ratelimit")
        {
            new.headers_mut().append(name.clone(), value.clone());
        }
    }
    let (req, _) = res.into_parts();
    ServiceResponse::new(req, new)
}

fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("Bad request", "The request could not be understood."),
        401 => ("Authentication required", "Please log in to continue."),
        403 => (
            "Forbidden",
            "This request was refused. If you submitted a form, reload the page and try again.",
        ),
        404 => ("Not found", "There is nothing at this address."),
        405 => ("Method not allowed", "This address does not accept that kind of request."),
        413 => ("Request too large", "The request was larger than this service accepts."),
        415 => ("Unsupported media type", "The request body is not in a format this address accepts."),
        422 => ("Unprocessable request", "The submitted data was not valid."),
        429 => ("Too many requests", "Please wait a moment and try again."),
        503 => (
            "Service unavailable",
            "The service is temporarily unavailable. Please try again in a moment.",
        ),
        s if s >= 500 => (
            "Something went wrong",
            "An unexpected error occurred. If it persists, contact support and quote the reference below.",
        ),
        _ => ("Request refused", "The request could not be completed."),
    }
}
