//! The portal's cookies. Over HTTPS they carry the `__Host-` prefix (so they are `Secure`, host-only
//! and `Path=/`, and a sibling domain or a plain-HTTP response cannot plant them); over plain HTTP
//! the bare names. Only the name matching the request's scheme is ever read.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use std::future::{ready, Ready};

use crate::errors::AppError;
use crate::http::client::ClientInfo;
use crate::views::Notice;

/// How long a notice waits for the page its redirect leads to: the browser follows at once, so a
/// minute is plenty, and a notice never turns up on a page the visitor opens much later.
const NOTICE_MAX_AGE: CookieDuration = CookieDuration::seconds(60);

/// Cookie names for one request's scheme.
#[derive(Clone, Copy, Debug)]
pub struct CookieNames {
    /// Session id.
    pub session: &'static str,
    /// Anonymous CSRF binding.
    pub csrf: &'static str,
    /// Device cookie (OWASP "device cookies": this browser logged in to an account before).
    pub device: &'static str,
    /// A one-time notice for the page after a redirect ([`Notice`]).
    pub notice: &'static str,
    https: bool,
}

impl CookieNames {
    /// The names for a request that is (`true`) or is not HTTPS.
    pub fn new(https: bool) -> Self {
        if https {
            Self {
                session: "__Host-phaze_session",
                csrf: "__Host-phaze_csrf",
                device: "__Host-phaze_device",
                notice: "__Host-phaze_notice",
                https,
            }
        } else {
            Self {
                session: "phaze_session",
                csrf: "phaze_csrf",
                device: "phaze_device",
                notice: "phaze_notice",
                https,
            }
        }
    }

    fn build(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.https)
            .finish()
    }

    /// The session cookie (a browser-session cookie: the server enforces the lifetimes).
    pub fn session(&self, id: &str) -> Cookie<'static> {
        self.build(self.session, id.to_owned())
    }

    /// Expires the session cookie.
    pub fn clear_session(&self) -> Cookie<'static> {
        let mut c = self.build(self.session, String::new());
        c.set_max_age(CookieDuration::ZERO);
        c
    }

    /// The anonymous CSRF cookie.
    pub fn csrf(&self, value: &str) -> Cookie<'static> {
        self.build(self.csrf, value.to_owned())
    }

    /// The device cookie: kept for 180 days, so a lockout of the account does not lock out a
    /// browser that logged in to it before.
    pub fn device(&self, value: &str) -> Cookie<'static> {
        let mut c = self.build(self.device, value.to_owned());
        c.set_max_age(CookieDuration::days(180));
        c
    }

    /// The notice cookie: only the code of a [`Notice`], for a minute. The page that shows it
    /// clears it ([`PendingNotice::shown`]), so a reload does not repeat it.
    pub fn notice(&self, notice: Notice) -> Cookie<'static> {
        let mut c = self.build(self.notice, notice.code().to_owned());
        c.set_max_age(NOTICE_MAX_AGE);
        c
    }

    /// Expires the notice cookie.
    pub fn clear_notice(&self) -> Cookie<'static> {
        let mut c = self.build(self.notice, String::new());
        c.set_max_age(CookieDuration::ZERO);
        c
    }
}

/// The notice a redirect left for this page, read from its cookie. Only a `GET` reads it (a
/// `HEAD` shows nothing, so it must not use the notice up); an unknown code is ignored.
#[derive(Debug)]
pub struct PendingNotice {
    names: CookieNames,
    present: bool,
    notice: Option<Notice>,
}

impl PendingNotice {
    /// The notice to show, if any.
    pub fn get(&self) -> Option<Notice> {
        self.notice
    }

    /// `res`, the page that showed the notice, with the cookie cleared: a notice shows once.
    /// (Like every page, the response is `Cache-Control: no-store`, set by the frame layer, so no
    /// cache keeps a copy that shows it again.)
    pub fn shown(&self, mut res: HttpResponse) -> Result<HttpResponse, AppError> {
        if self.present {
            res.add_cookie(&self.names.clear_notice())
                .map_err(AppError::internal)?;
        }
        Ok(res)
    }
}

impl FromRequest for PendingNotice {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The frame layer decides the scheme; without it (a route mounted outside it by
        // mistake), the plain-HTTP name, as the visitor layer assumes too.
        let https = req
            .extensions()
            .get::<ClientInfo>()
            .is_some_and(|c| c.https);
        let names = CookieNames::new(https);
        let cookie = (req.method() == Method::GET)
            .then(|| req.cookie(names.notice))
            .flatten();
        ready(Ok(Self {
            names,
            present: cookie.is_some(),
            notice: cookie.and_then(|c| Notice::from_code(c.value())),
        }))
    }
}
