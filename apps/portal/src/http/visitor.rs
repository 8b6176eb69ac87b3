//! The visitor layer, on every page and API route: loads the session (applying expiry, rotation
//! and IP binding), binds the CSRF token, refuses unsafe requests that fail the CSRF checks before
//! any handler runs, and sets the cookies that follow from all that.
//!
//! Routes that authenticate by signature instead (Stripe webhooks) are the one exemption, and they
//! are exempt by construction: they are mounted outside the scope this middleware wraps (see
//! [`crate::app::routes`]).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use phaze_auth::{Account, UserId};
use phaze_ratelimit::Budget;
use phaze_sessions::{
    new_anonymous_value, valid_anonymous_value, Binding, ClientMeta, Session, SessionId,
};
use std::future::{ready, Ready};
use std::ops::Deref;
use std::rc::Rc;

use crate::errors::AppError;
use crate::http::client::ClientInfo;
use crate::http::cookies::CookieNames;
use crate::state::AppState;

/// The session behind this request, if any.
#[derive(Clone, Debug)]
pub struct Current {
    /// The id the client holds (after any rotation in this request).
    pub id: SessionId,
    /// The session.
    pub session: Session,
    /// Its account.
    pub account: Account,
}

/// What handlers know about the visitor: built once per request by the layer and shared (not
/// copied) with the handler.
#[derive(Clone, Debug)]
pub struct Visitor(Rc<VisitorData>);

/// See [`Visitor`].
#[derive(Debug)]
pub struct VisitorData {
    /// Address and scheme.
    pub client: ClientInfo,
    /// Cookie names for this request's scheme.
    pub cookies: CookieNames,
    /// The logged-in session, if any.
    pub current: Option<Current>,
    /// The CSRF token for forms and the meta tag.
    pub csrf_token: String,
    /// Address and `User-Agent` (first 256 characters), for new sessions.
    meta: ClientMeta,
}

impl Deref for Visitor {
    type Target = VisitorData;

    fn deref(&self) -> &VisitorData {
        &self.0
    }
}

impl VisitorData {
    /// The logged-in account, or `None`.
    pub fn account(&self) -> Option<&Account> {
        self.current.as_ref().map(|c| &c.account)
    }

    /// Session metadata for a session created by this request.
    pub fn meta(&self) -> ClientMeta {
        self.meta.clone()
    }
}

impl FromRequest for Visitor {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only if a route was mounted outside the visitor layer by mistake.
        ready(
            req.extensions()
                .get::<Visitor>()
                .cloned()
                .ok_or(AppError::BadRequest),
        )
    }
}

/// A handler set or cleared the session cookie itself (login, logout): the layer leaves it alone.
#[derive(Clone, Copy, Debug)]
pub struct SessionCookieSet;

/// What [`prepare`] decided before the handler runs.
struct Prepared {
    cookies: CookieNames,
    new_anon: Option<String>,
    rotated: Option<SessionId>,
    clear_session: bool,
}

/// The middleware; see the module doc. Its own failures (store down: 503; CSRF: 403) become
/// responses here, so the frame around it renders them like any other error.
pub async fn visitor(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let prepared = match prepare(&mut req).await {
        Ok(p) => p,
        Err(e) => return Ok(req.error_response(e)),
    };
    let mut res = next.call(req).await?.map_into_boxed_body();
    let cookies = prepared.cookies;
    let mut set = Vec::new();
    if let Some(v) = &prepared.new_anon {
        set.push(cookies.csrf(v));
    }
    if res
        .response()
        .extensions()
        .get::<SessionCookieSet>()
        .is_none()
    {
        if let Some(id) = &prepared.rotated {
            set.push(cookies.session(id.expose()));
        } else if prepared.clear_session {
            set.push(cookies.clear_session());
        }
    }
    for cookie in set {
        if let Err(e) = res.response_mut().add_cookie(&cookie) {
            tracing::error!(error = %e, "cookie could not be set");
        }
    }
    Ok(res)
}

async fn prepare(req: &mut ServiceRequest) -> Result<Prepared, actix_web::Error> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| AppError::Internal("application state missing".into()))?;
    let client = req
        .extensions()
        .get::<ClientInfo>()
        .copied()
        .unwrap_or(ClientInfo {
            ip: std::net::IpAddr::from([0, 0, 0, 0]),
            https: false,
        });
    let cookies = CookieNames::new(client.https);
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .chars()
        .take(256)
        .collect::<String>();
    let meta = ClientMeta {
        ip: Some(client.ip),
        user_agent,
    };
    let now = state.clock.now();

    // The session, fail closed: a store error is a 503, never "anonymous".
    let mut current = None;
    let mut rotated = None;
    let mut clear_session = false;
    if let Some(cookie) = req.cookie(cookies.session) {
        match SessionId::parse(cookie.value()) {
            Some(id) => match state
                .sessions
                .load(&id, &meta, now)
                .await
                .map_err(AppError::from)?
            {
                Some(loaded) => {
                    let id = loaded.rotated_to.clone().unwrap_or(id);
                    rotated = loaded.rotated_to;
                    let user: Option<UserId> = loaded.session.data.user_id.parse().ok();
                    let account = match user {
                        Some(u) => state
                            .auth
                            .account(&u)
                            .await
                            .map_err(crate::routes::pages::auth_failure)?,
                        None => None,
                    };
                    match account {
                        Some(account) => {
                            current = Some(Current {
                                id,
                                session: loaded.session,
                                account,
                            })
                        }
                        None => {
                            // The account is gone: so is the session.
                            state
                                .sessions
                                .destroy(&loaded.session.key)
                                .await
                                .map_err(AppError::from)?;
                            rotated = None;
                            clear_session = true;
                        }
                    }
                }
                None => clear_session = true,
            },
            None => clear_session = true,
        }
    }

    // The CSRF binding: the session's secret, or the anonymous cookie (new if absent or bad).
    let mut new_anon = None;
    let anonymous;
    let binding = match &current {
        Some(c) => Binding::Session(&c.session.data.csrf_secret),
        None => {
            anonymous = req
                .cookie(cookies.csrf)
                .map(|c| c.value().to_owned())
                .filter(|v| valid_anonymous_value(v))
                .unwrap_or_else(|| {
                    let v = new_anonymous_value();
                    new_anon = Some(v.clone());
                    v
                });
            Binding::Anonymous(&anonymous)
        }
    };
    let csrf_token = state.csrf.token(&binding);

    if is_unsafe(req.method()) {
        check_origin(req, &state, client)?;
        let form = form_token(req).await?;
        let provided = match req.headers().get("x-csrf-token") {
            Some(v) => v.to_str().unwrap_or_default().to_owned(),
            None => form,
        };
        let valid = state.csrf.verify(&binding, &provided);
        if !valid {
            tracing::warn!(target: "security", event = "csrf_failure", client = %client.ip, path = %req.path());
            return Err(AppError::Forbidden("csrf token missing or invalid").into());
        }
        state
            .limits
            .spend(Budget::Post, client.ip, now)
            .await
            .map_err(AppError::from)?;
    }

    req.extensions_mut().insert(Visitor(Rc::new(VisitorData {
        client,
        cookies,
        current,
        csrf_token,
        meta,
    })));
    Ok(Prepared {
        cookies,
        new_anon,
        rotated,
        clear_session,
    })
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// Refuses requests the browser marks as cross-site, and any `Origin` but the portal's own: the
/// origin of the configured public URL (`http.public_url`).
fn check_origin(
    req: &ServiceRequest,
    state: &AppState,
    client: ClientInfo,
) -> Result<(), AppError> {
    let headers = req.headers();
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        tracing::warn!(target: "security", event = "csrf_cross_site", client = %client.ip, path = %req.path());
        return Err(AppError::Forbidden("cross-site request"));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        // Only the configured origin: one built from the request's own `Host` header would
        // accept whatever origin the request claims to be addressed to.
        if !origin.eq_ignore_ascii_case(&state.public_origin) {
            tracing::warn!(target: "security", event = "csrf_bad_origin", client = %client.ip, path = %req.path(), origin = %origin);
            return Err(AppError::Forbidden("foreign origin"));
        }
    }
    Ok(())
}

/// Reads `csrf_token` from a form body and puts the body back for the handler. Bodies over the
/// configured limit are a 413 here already, and bodies that are not UTF-8 once percent-decoded a
/// 400: decoders downstream would silently replace the bad bytes instead.
async fn form_token(req: &mut ServiceRequest) -> Result<String, actix_web::Error> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(String::new());
    }
    let body = req.extract::<Bytes>().await?;
    if !form_is_utf8(&body) {
        return Err(AppError::BadRequest.into());
    }
    let token = form_urlencoded_value(&body, "csrf_token").unwrap_or_default();
    req.set_payload(Payload::from(body));
    Ok(token)
}

fn form_is_utf8(body: &[u8]) -> bool {
    body.split(|b| *b == b'&')
        .flat_map(|pair| pair.split(|b| *b == b'='))
        .all(|part| percent_decode(part).is_some_and(|bytes| std::str::from_utf8(&bytes).is_ok()))
}

fn percent_decode(part: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'%' => {
                let hex = part.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

fn form_urlencoded_value(body: &[u8], key: &str) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    pairs.into_iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_must_decode_to_utf8() {
        assert!(form_is_utf8(b"a=b&c=%C3%A9+x&empty="));
        assert!(form_is_utf8(b""));
        assert!(!form_is_utf8(b"a=%FF"));
        assert!(!form_is_utf8(b"a=%C3"));
        assert!(!form_is_utf8(b"a=%G1"));
        assert!(!form_is_utf8(b"a=%4"));
        assert!(!form_is_utf8(&[b'a', b'=', 0xff]));
    }

    #[test]
    fn form_values_are_found() {
        assert_eq!(
            form_urlencoded_value(b"x=1&csrf_token=abc%2B", "csrf_token").as_deref(),
            Some("abc+")
        );
        assert_eq!(form_urlencoded_value(b"x=1", "csrf_token"), None);
    }
}
