//! Forward authentication: `/auth/verify` tells a gateway in front of other services whether
//! the request it is about to pass on carries a live portal session, and whose. nginx
//! (`auth_request`), Traefik (`ForwardAuth`) and Envoy (`ext_authz`, HTTP service) call it with the
//! client's cookies and pass the request on only if it answers 2xx (Envoy: exactly 200), copying
//! the identity headers below into the request they forward.
//!
//! The route sits behind the visitor layer, so the session is loaded the one way every page loads
//! it (idle timeout, absolute lifetime, rotation, IP binding, the account behind it) and a store
//! error is a 503, never an answer. It answers any method, because Envoy checks with the client's
//! own (nginx and Traefik check with `GET`): the layer is the read-only one
//! ([`phaze_actix::VisitorLayer::read_only_middleware`]), so no CSRF check applies and no POST
//! budget is spent, and this handler changes nothing. A session whose id is due for rotation is
//! rotated here like anywhere else, and
//! the layer sets the new id as a cookie on the 200; the gateway must hand that `Set-Cookie` to
//! the browser (README, "Forward authentication"), or the browser keeps an id that dies when its
//! grace period ends.
//!
//! Envoy appends the client's path to its `path_prefix`, so `/auth/verify/…` answers the same.

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::HttpResponse;
use phaze_auth::Account;

use crate::errors::AppError;
use crate::views::Rendered;
use phaze_actix::Visitor;

/// The account's id, as in `/api/v1/me`.
pub const USER_ID: &str = "x-phaze-user-id";
/// `admin` or `customer`.
pub const USER_ROLE: &str = "x-phaze-user-role";
/// Whether the session passed a second factor: `on` for an account with two-factor
/// authentication (its every session did: login asks for the code, and turning 2FA on or off
/// ends the other sessions and restarts the one that proved a code), else `off`.
pub const TWO_FACTOR: &str = "x-phaze-2fa";

/// `/auth/verify`, any method: `200` with the identity headers for a live session, else `401` with
/// no body and none of them. Both are `Cache-Control: no-store`: the answer is about this one
/// request's cookie.
pub async fn verify(visitor: Visitor) -> Result<HttpResponse, AppError> {
    let mut res = match visitor.account() {
        Some(account) => granted(account)?,
        None => denied(),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn granted(account: &Account) -> Result<HttpResponse, AppError> {
    let role = if account.is_admin {
        "admin"
    } else {
        "customer"
    };
    let id = HeaderValue::try_from(account.id.to_string()).map_err(AppError::internal)?;
    let mut res = HttpResponse::Ok().finish();
    let headers = res.headers_mut();
    headers.insert(HeaderName::from_static(USER_ID), id);
    headers.insert(
        HeaderName::from_static(USER_ROLE),
        HeaderValue::from_static(role),
    );
    headers.insert(
        HeaderName::from_static(TWO_FACTOR),
        HeaderValue::from_static(if account.two_factor_enabled() {
            "on"
        } else {
            "off"
        }),
    );
    Ok(res)
}

fn denied() -> HttpResponse {
    let mut res = HttpResponse::Unauthorized().finish();
    // Not the generic error page: Traefik and Envoy hand a refusal's body to the browser in place
    // of the protected service's answer (nginx drops it), and the portal's page is not that
    // service's to show. An empty body says nothing there.
    res.extensions_mut().insert(Rendered);
    res
}
