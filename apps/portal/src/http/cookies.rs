//! The portal's cookies. Over HTTPS they carry the `__Host-` prefix (so they are `Secure`, host-only
//! and `Path=/`, and a sibling domain or a plain-HTTP response cannot plant them); over plain HTTP
//! the bare names. Only the name matching the request's scheme is ever read.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};

/// Cookie names for one request's scheme.
#[derive(Clone, Copy, Debug)]
pub struct CookieNames {
    /// Session id.
    pub session: &'static str,
    /// Anonymous CSRF binding.
    pub csrf: &'static str,
    /// Device cookie (OWASP "device cookies": this browser logged in to an account before).
    pub device: &'static str,
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
                https,
            }
        } else {
            Self {
                session: "phaze_session",
                csrf: "phaze_csrf",
                device: "phaze_device",
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
}
