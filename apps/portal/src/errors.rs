//! One error type for handlers. Its responses carry only a status: the outermost middleware
//! ([`crate::http::frame`]) renders every error status as the generic page or JSON, with the
//! request id, and logs the source chain. Nothing internal ever reaches a client.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

type Source = Box<dyn std::error::Error + Send + Sync>;

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Malformed request.
    #[error("bad request")]
    BadRequest,
    /// CSRF or origin check failed, or not allowed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// No such page (also for things that exist but are not the caller's).
    #[error("not found")]
    NotFound,
    /// Well-formed but invalid input (JSON API).
    #[error("unprocessable: {0}")]
    Unprocessable(String),
    /// Over a rate limit: 429 with `Retry-After` and `RateLimit-*`.
    #[error("rate limited")]
    TooManyRequests(phaze_ratelimit::Decision),
    /// A store the request needs is unreachable: fail closed.
    #[error("service unavailable")]
    Unavailable(#[source] Source),
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] Source),
    /// An upstream service (the payment provider) refused what it was asked: configuration.
    #[error("bad gateway")]
    BadGateway(#[source] Source),
}

impl AppError {
    /// Wraps a backend failure as 503.
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }

    /// Wraps anything else as 500.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

impl From<phaze_ratelimit::LimitError> for AppError {
    fn from(e: phaze_ratelimit::LimitError) -> Self {
        match e {
            phaze_ratelimit::LimitError::Limited(d) => AppError::TooManyRequests(d),
            phaze_ratelimit::LimitError::Store(s) => AppError::unavailable(s),
        }
    }
}

impl From<phaze_sessions::Error> for AppError {
    fn from(e: phaze_sessions::Error) -> Self {
        Self::unavailable(e)
    }
}

impl From<phaze_auth::StoreError> for AppError {
    fn from(e: phaze_auth::StoreError) -> Self {
        Self::unavailable(e)
    }
}

impl From<phaze_actix::Error> for AppError {
    fn from(e: phaze_actix::Error) -> Self {
        match e {
            phaze_actix::Error::BadRequest => AppError::BadRequest,
            phaze_actix::Error::Forbidden(why) => AppError::Forbidden(why),
            phaze_actix::Error::TooManyRequests(d) => AppError::TooManyRequests(d),
            phaze_actix::Error::Unavailable(e) => AppError::Unavailable(e),
            phaze_actix::Error::Internal(e) => AppError::Internal(e),
        }
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        Self::internal(e)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::BadRequest => StatusCode::BAD_REQUEST,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::BadGateway(_) => StatusCode::BAD_GATEWAY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // The body is filled in by the frame middleware, which knows the request id.
        let mut res = HttpResponse::new(self.status_code());
        if let AppError::TooManyRequests(d) = self {
            phaze_actix::rate_limit_headers(&mut res, d);
        }
        res
    }
}

/// Renders the whole source chain of an error for the log.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
