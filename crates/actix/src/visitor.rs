//! The visitor layer, around every page and API route: it loads the session (expiry, rotation,
//! IP binding, through [`SessionManager::load`]) and its account (through [`AuthService`]),
//! binds the CSRF token, refuses unsafe requests that fail the CSRF checks before any handler
//! runs, spends the client's budget of unsafe requests, and writes every cookie that follows:
//! a rotated or cleared session id, a new anonymous CSRF cookie, and what the handler asked for
//! through the [`Visitor`] ([`VisitorData::start_session`], [`VisitorData::end_session`],
//! [`VisitorData::set_device_cookie`], [`VisitorData::queue_cookie`]). A handler never sets the
//! session cookie itself, so no handler can forget an attribute or race the layer.
//!
//! Routes that authenticate by signature instead (webhooks) are the one exemption, and they are
//! exempt by construction: mount them outside the scope this layer wraps.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::Cookie;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use phaze_auth::{Account, AuthService, UserId};
use phaze_events::{CsrfReason, Events, SecurityEvent};
use phaze_ratelimit::{Budget, Limits};
use phaze_sessions::{
    new_anonymous_value, valid_anonymous_value, Binding, ClientMeta, Csrf, Session, SessionId,
    SessionManager,
};
use std::cell::RefCell;
use std::future::{ready, Future, Ready};
use std::ops::Deref;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::client::{client_of, ClientInfo};
use crate::cookies::CookieNames;
use crate::Error;

/// The logged-in session behind a request.
#[derive(Clone, Debug)]
pub struct Current {
    /// The id the client holds (after any rotation in this request).
    pub id: SessionId,
    /// The session.
    pub session: Session,
    /// Its account, loaded through the auth service.
    pub account: Account,
}

impl Current {
    /// The account's id.
    pub fn user(&self) -> UserId {
        self.account.id
    }
}

/// What a handler knows about the visitor: built once per request by the layer and shared (not
/// copied) with the handler. Extract it as a handler argument.
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
    /// The CSRF token for forms (`csrf_token`) and scripts (`X-CSRF-Token`).
    pub csrf_token: String,
    meta: ClientMeta,
    asked: RefCell<Asked>,
}

/// What the handler asked the layer to write.
#[derive(Debug, Default)]
struct Asked {
    session: Option<SessionCookie>,
    cookies: Vec<Cookie<'static>>,
}

#[derive(Debug)]
enum SessionCookie {
    Start(SessionId),
    End,
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

    /// Address and `User-Agent` (first 256 characters), for a session this request creates.
    pub fn meta(&self) -> ClientMeta {
        self.meta.clone()
    }

    /// The session `id` starts with this response (after [`SessionManager::start`] or
    /// [`SessionManager::restart_for_user`]): the layer sends it as the session cookie.
    pub fn start_session(&self, id: &SessionId) {
        self.asked.borrow_mut().session = Some(SessionCookie::Start(id.clone()));
    }

    /// The session ended with this response (after [`SessionManager::destroy`]): the layer
    /// expires the session cookie.
    pub fn end_session(&self) {
        self.asked.borrow_mut().session = Some(SessionCookie::End);
    }

    /// The browser keeps a device cookie ([`phaze_ratelimit::LoginOutcome::Right`]).
    pub fn set_device_cookie(&self, value: &str) {
        let cookie = self.cookies.device(value);
        self.queue_cookie(cookie);
    }

    /// Any other cookie of the service, written with the layer's (build it with
    /// [`CookieNames::build`] for Phaze's attributes).
    pub fn queue_cookie(&self, cookie: Cookie<'static>) {
        self.asked.borrow_mut().cookies.push(cookie);
    }
}

impl FromRequest for Visitor {
    type Error = Error;
    type Future = Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Absent only if a route was mounted outside the visitor layer by mistake.
        ready(
            req.extensions()
                .get::<Visitor>()
                .cloned()
                .ok_or(Error::BadRequest),
        )
    }
}

use crate::clock::Clock;

/// The configured layer; clone it into every worker.
#[derive(Clone)]
pub struct VisitorLayer(Arc<Inner>);

struct Inner {
    sessions: Arc<SessionManager>,
    auth: Arc<AuthService>,
    csrf: Csrf,
    origin: String,
    limits: Option<Arc<Limits>>,
    clock: Clock,
    events: Events,
}

/// Builds a [`VisitorLayer`].
pub struct VisitorLayerBuilder(Inner);

impl VisitorLayer {
    /// A layer over `sessions` and the accounts of `auth`, with CSRF tokens from `csrf`, that
    /// accepts unsafe requests only from `origin` (`scheme://host[:port]`, the service's own
    /// public origin: never one built from the request's `Host`).
    pub fn builder(
        sessions: Arc<SessionManager>,
        auth: Arc<AuthService>,
        csrf: Csrf,
        origin: &str,
    ) -> VisitorLayerBuilder {
        VisitorLayerBuilder(Inner {
            sessions,
            auth,
            csrf,
            origin: origin.to_ascii_lowercase(),
            limits: None,
            clock: crate::clock::system(),
            events: Events::default(),
        })
    }

    /// The CSRF token of `session`, for a page rendered by the request that started it (after
    /// [`SessionManager::restart_for_user`], say): [`VisitorData::csrf_token`] is the token of
    /// the session the request came with, which is gone.
    pub fn csrf_token_of(&self, session: &phaze_sessions::Session) -> String {
        self.0
            .csrf
            .token(&Binding::Session(&session.data.csrf_secret))
    }

    /// The layer as actix middleware: `scope.wrap(from_fn(layer.middleware()))`.
    #[allow(clippy::type_complexity)]
    pub fn middleware<B: MessageBody + 'static>(
        &self,
    ) -> impl Fn(
        ServiceRequest,
        Next<B>,
    )
        -> Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>
           + 'static {
        self.with_methods(Methods::AsSent)
    }

    /// The layer for routes that only *read* the session, whatever the request's method: a
    /// gateway's forward-authentication check, which Envoy's `ext_authz` sends with the client's
    /// own method (a `POST` to the protected service is checked as a `POST`). Every method is
    /// treated as a read here: no CSRF check and no POST budget, since none can change anything
    /// through a route that only reads. The session is loaded, rotated and bound exactly as by
    /// [`VisitorLayer::middleware`]. Mount under it only handlers that change nothing.
    #[allow(clippy::type_complexity)]
    pub fn read_only_middleware<B: MessageBody + 'static>(
        &self,
    ) -> impl Fn(
        ServiceRequest,
        Next<B>,
    )
        -> Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>
           + 'static {
        self.with_methods(Methods::AllRead)
    }

    #[allow(clippy::type_complexity)]
    fn with_methods<B: MessageBody + 'static>(
        &self,
        methods: Methods,
    ) -> impl Fn(
        ServiceRequest,
        Next<B>,
    )
        -> Pin<Box<dyn Future<Output = Result<ServiceResponse<BoxBody>, actix_web::Error>>>>
           + 'static {
        let layer = self.clone();
        move |req, next| {
            let layer = layer.clone();
            Box::pin(async move { layer.run(req, next, methods).await })
        }
    }

    /// Runs the layer around `next`; see the module doc. Its own refusals (403, 429, 503, 400)
    /// become responses here, so an outer layer renders them like any other error status.
    pub async fn handle<B: MessageBody + 'static>(
        &self,
        req: ServiceRequest,
        next: Next<B>,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        self.run(req, next, Methods::AsSent).await
    }

    async fn run<B: MessageBody + 'static>(
        &self,
        mut req: ServiceRequest,
        next: Next<B>,
        methods: Methods,
    ) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
        let prepared = match self.prepare(&mut req, methods).await {
            Ok(p) => p,
            Err(e) => return Ok(req.error_response(e)),
        };
        let mut res = next.call(req).await?.map_into_boxed_body();
        let cookies = prepared.visitor.cookies;
        let asked = std::mem::take(&mut *prepared.visitor.asked.borrow_mut());
        let mut set = Vec::new();
        if let Some(v) = &prepared.new_anon {
            set.push(cookies.csrf(v));
        }
        match asked.session {
            Some(SessionCookie::Start(id)) => set.push(cookies.session(id.expose())),
            Some(SessionCookie::End) => set.push(cookies.clear_session()),
            None => {
                if let Some(id) = &prepared.rotated {
                    set.push(cookies.session(id.expose()));
                } else if prepared.clear_session {
                    set.push(cookies.clear_session());
                }
            }
        }
        set.extend(asked.cookies);
        for cookie in set {
            if let Err(e) = res.response_mut().add_cookie(&cookie) {
                tracing::error!(error = %e, "cookie could not be set");
            }
        }
        Ok(res)
    }

    async fn prepare(
        &self,
        req: &mut ServiceRequest,
        methods: Methods,
    ) -> Result<Prepared, actix_web::Error> {
        let s = &self.0;
        let client = client_of(req);
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
        let now = (s.clock)();

        // The session, fail closed: a store error is a 503, never "anonymous".
        let mut current = None;
        let mut rotated = None;
        let mut clear_session = false;
        if let Some(cookie) = req.cookie(cookies.session) {
            match SessionId::parse(cookie.value()) {
                Some(id) => match s
                    .sessions
                    .load(&id, &meta, now)
                    .await
                    .map_err(Error::from)?
                {
                    Some(loaded) => {
                        let id = loaded.rotated_to.clone().unwrap_or(id);
                        rotated = loaded.rotated_to;
                        let account = s
                            .auth
                            .account(&loaded.session.data.user_id)
                            .await
                            .map_err(Error::from)?;
                        match account {
                            Some(account) if !account.locked => {
                                current = Some(Current {
                                    id,
                                    session: loaded.session,
                                    account,
                                })
                            }
                            _ => {
                                // The account is gone or suspended: so is the session (a lock
                                // ends every session; this catches one started meanwhile).
                                s.sessions
                                    .destroy(&loaded.session.key)
                                    .await
                                    .map_err(Error::from)?;
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
        let csrf_token = s.csrf.token(&binding);

        if methods == Methods::AsSent && is_unsafe(req.method()) {
            self.check_origin(req, client)?;
            let form = form_token(req).await?;
            let provided = match req.headers().get("x-csrf-token") {
                Some(v) => v.to_str().unwrap_or_default().to_owned(),
                None => form,
            };
            if !s.csrf.verify(&binding, &provided) {
                self.csrf_failed(req, client, CsrfReason::Token);
                return Err(Error::Forbidden("csrf token missing or invalid").into());
            }
            if let Some(limits) = &s.limits {
                limits
                    .spend(Budget::Post, client.ip, now)
                    .await
                    .map_err(Error::from)?;
            }
        }

        let visitor = Visitor(Rc::new(VisitorData {
            client,
            cookies,
            current,
            csrf_token,
            meta,
            asked: RefCell::default(),
        }));
        req.extensions_mut().insert(visitor.clone());
        Ok(Prepared {
            visitor,
            new_anon,
            rotated,
            clear_session,
        })
    }

    fn csrf_failed(&self, req: &ServiceRequest, client: ClientInfo, reason: CsrfReason) {
        self.0.events.emit(SecurityEvent::CsrfFailure {
            client: client.ip,
            path: req.path().to_owned(),
            reason,
        });
    }

    /// Refuses requests the browser marks as cross-site, and any `Origin` but the configured one.
    fn check_origin(&self, req: &ServiceRequest, client: ClientInfo) -> Result<(), Error> {
        let headers = req.headers();
        if headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
        {
            self.csrf_failed(req, client, CsrfReason::CrossSite);
            return Err(Error::Forbidden("cross-site request"));
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("null");
            // Only the configured origin: one built from the request's own `Host` header would
            // accept whatever origin the request claims to be addressed to.
            if !origin.eq_ignore_ascii_case(&self.0.origin) {
                self.csrf_failed(req, client, CsrfReason::Origin);
                return Err(Error::Forbidden("foreign origin"));
            }
        }
        Ok(())
    }
}

impl VisitorLayerBuilder {
    /// Every unsafe request that passes the CSRF checks spends one of the client network's
    /// [`Budget::Post`] events (429 when spent).
    pub fn post_budget(mut self, limits: Arc<Limits>) -> Self {
        self.0.limits = Some(limits);
        self
    }

    /// Reports CSRF refusals through `events` (the `csrf_failure` security event).
    pub fn events(mut self, events: Events) -> Self {
        self.0.events = events;
        self
    }

    /// Reads the time from `now` instead of the system clock (tests move a manual clock).
    pub fn clock(mut self, now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        self.0.clock = Arc::new(now);
        self
    }

    /// The layer.
    pub fn build(self) -> VisitorLayer {
        VisitorLayer(Arc::new(self.0))
    }
}

/// What [`VisitorLayer::prepare`] decided before the handler runs.
struct Prepared {
    visitor: Visitor,
    new_anon: Option<String>,
    rotated: Option<SessionId>,
    clear_session: bool,
}

/// How the layer judges a request's method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Methods {
    /// Unsafe methods meet the CSRF checks and the POST budget.
    AsSent,
    /// Every method is a read ([`VisitorLayer::read_only_middleware`]).
    AllRead,
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
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
        return Err(Error::BadRequest.into());
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
