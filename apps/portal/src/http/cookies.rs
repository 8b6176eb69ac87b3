//! The portal's own cookie, the one-time notice after a redirect. It follows the rules of Phaze's
//! cookies ([`phaze_actix::cookies`]): `__Host-` over HTTPS, `HttpOnly`, `SameSite=Lax`.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};

use crate::errors::AppError;
use crate::views::Notice;
use phaze_actix::client::client_of;
use phaze_actix::cookies::CookieNames;
use phaze_actix::Visitor;

/// How long a notice waits for the page its redirect leads to: the browser follows at once, so a
/// minute is plenty, and a notice never turns up on a page the visitor opens much later.
const NOTICE_MAX_AGE: CookieDuration = CookieDuration::seconds(60);

/// The notice cookie's name for a request that is (`true`) or is not HTTPS.
fn notice_name(https: bool) -> &'static str {
    if https {
        "__Host-phaze_notice"
    } else {
        "phaze_notice"
    }
}

/// The notice cookie: only the code of a [`Notice`], for a minute. The page that shows it clears
/// it (reading [`PendingNotice`] does), so a reload does not repeat it.
pub fn notice(names: &CookieNames, notice: Notice) -> Cookie<'static> {
    let mut c = names.build(notice_name(names.https()), notice.code().to_owned());
    c.set_max_age(NOTICE_MAX_AGE);
    c
}

/// The notice a redirect left for this page, read from its cookie. Only a `GET` reads it (a
/// `HEAD` shows nothing, so it must not use the notice up); an unknown code is ignored. Reading
/// it asks the visitor layer to clear the cookie with this response: a notice shows once. (Like
/// every page, the response is `Cache-Control: no-store`, so no cache keeps a copy that shows it
/// again.)
#[derive(Debug)]
pub struct PendingNotice(Option<Notice>);

impl PendingNotice {
    /// The notice to show, if any.
    pub fn get(&self) -> Option<Notice> {
        self.0
    }
}

impl FromRequest for PendingNotice {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // The frame layer decides the scheme; without it (a route mounted outside it by
        // mistake), the plain-HTTP name, as the visitor layer assumes too.
        let names = CookieNames::new(client_of(req).https);
        let name = notice_name(names.https());
        let cookie = (req.method() == Method::GET)
            .then(|| req.cookie(name))
            .flatten();
        if cookie.is_some() {
            if let Some(visitor) = req.extensions().get::<Visitor>() {
                visitor.queue_cookie(names.clear(name));
            }
        }
        ready(Ok(Self(cookie.and_then(|c| Notice::from_code(c.value())))))
    }
}
