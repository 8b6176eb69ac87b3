//! The errors of the HTTP layer, as statuses: the body is the service's to render (the portal's
//! frame renders every error status as one generic page), the detail goes to the log.

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use phaze_ratelimit::Decision;

/// Why the layer answered instead of the handler.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be understood (a form that is not UTF-8, a route mounted outside the
    /// layer).
    #[error("bad request")]
    BadRequest,
    /// Refused: a CSRF check failed (the reason is for the log).
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Over a limit: 429 with `Retry-After` and `RateLimit-*`.
    #[error("rate limited")]
    TooManyRequests(Decision),
    /// A store is unreachable: 503, never "allow" nor "anonymous".
    #[error("backend unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else that went wrong (500): a bug, a hash that failed.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A backend failure (503).
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

impl From<phaze_sessions::Error> for Error {
    fn from(e: phaze_sessions::Error) -> Self {
        Self::unavailable(e)
    }
}

/// A store or the mail transport down is 503 (whichever backend it is); the rest is 500.
impl From<phaze_auth::AuthError> for Error {
    fn from(e: phaze_auth::AuthError) -> Self {
        use phaze_auth::{AuthError, MailError};
        match e {
            AuthError::Store(_) | AuthError::Mail(MailError::Transport(_)) => Self::unavailable(e),
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<phaze_ratelimit::LimitError> for Error {
    fn from(e: phaze_ratelimit::LimitError) -> Self {
        match e {
            phaze_ratelimit::LimitError::Limited(d) => Self::TooManyRequests(d),
            phaze_ratelimit::LimitError::Store(s) => Self::unavailable(s),
        }
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        match self {
            Error::BadRequest => StatusCode::BAD_REQUEST,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::new(self.status_code());
        if let Error::TooManyRequests(d) = self {
            rate_limit_headers(&mut res, d);
        }
        res
    }
}

/// Sets `Retry-After` and the `RateLimit-Limit`, `-Remaining` and `-Reset` fields (IETF
/// draft-ietf-httpapi-ratelimit-headers) of a refusal, in whole seconds rounded up: a client that
/// waits `Retry-After` gets through.
pub fn rate_limit_headers(res: &mut HttpResponse, d: &Decision) {
    let secs = |t: time::Duration| (t.whole_milliseconds().max(0) as u64).div_ceil(1000);
    let h = res.headers_mut();
    let mut set = |name: &'static str, value: u64| {
        h.insert(HeaderName::from_static(name), HeaderValue::from(value));
    };
    set(
        "retry-after",
        secs(d.retry_after().unwrap_or(d.reset_after)).max(1),
    );
    set("ratelimit-limit", u64::from(d.limit));
    set("ratelimit-remaining", u64::from(d.remaining));
    set("ratelimit-reset", secs(d.reset_after));
}

#[cfg(test)]
mod tests {
    use super::*;
    use phaze_auth::{AuthError, MailError, StoreError};

    /// A store or the mail transport down is 503 whichever it is; a bug is a 500, never a 503
    /// that would send an operator looking at healthy backends.
    #[test]
    fn auth_failures_map_to_503_for_backends_and_500_for_the_rest() {
        let status = |e: AuthError| Error::from(e).status_code();
        assert_eq!(
            status(AuthError::Store(StoreError::NotFound)),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(AuthError::Mail(MailError::Transport("refused".into()))),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(AuthError::Mail(MailError::Build("bad header".into()))),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            status(AuthError::AccountGone),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
