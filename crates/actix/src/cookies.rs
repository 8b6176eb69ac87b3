//! Cookie names by scheme, and the cookies Phaze sets. Over HTTPS every name carries the
//! `__Host-` prefix, so the cookie is `Secure`, host-only and `Path=/`, and neither a sibling
//! domain nor a plain-HTTP response can plant it; over plain HTTP the bare names. Only the name
//! matching the request's scheme is ever read. Every cookie is `HttpOnly` and `SameSite=Lax`.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};

/// How long a device cookie is kept: a lockout of the account does not lock out a browser that
/// logged in to it within this time.
const DEVICE_MAX_AGE: CookieDuration = CookieDuration::days(180);

/// Cookie names for one request's scheme.
#[derive(Clone, Copy, Debug)]
pub struct CookieNames {
    /// The session id.
    pub session: &'static str,
    /// The anonymous CSRF binding (before login).
    pub csrf: &'static str,
    /// The device cookie (OWASP "device cookies": this browser logged in to an account before).
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

    /// Whether these are the HTTPS names.
    pub fn https(&self) -> bool {
        self.https
    }

    /// A cookie named `name` with Phaze's attributes for this scheme (a browser-session cookie
    /// unless a max age is set on it). Over HTTPS, `name` should carry the `__Host-` prefix.
    pub fn build(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.https)
            .finish()
    }

    /// Expires the cookie `name`.
    pub fn clear(&self, name: &'static str) -> Cookie<'static> {
        let mut c = self.build(name, String::new());
        c.set_max_age(CookieDuration::ZERO);
        c
    }

    /// The session cookie: a browser-session cookie, as the server enforces the lifetimes.
    pub fn session(&self, id: &str) -> Cookie<'static> {
        self.build(self.session, id.to_owned())
    }

    /// Expires the session cookie.
    pub fn clear_session(&self) -> Cookie<'static> {
        self.clear(self.session)
    }

    /// The anonymous CSRF cookie.
    pub fn csrf(&self, value: &str) -> Cookie<'static> {
        self.build(self.csrf, value.to_owned())
    }

    /// The device cookie, kept for 180 days.
    pub fn device(&self, value: &str) -> Cookie<'static> {
        let mut c = self.build(self.device, value.to_owned());
        c.set_max_age(DEVICE_MAX_AGE);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_names_are_host_only_and_secure() {
        let n = CookieNames::new(true);
        assert_eq!(n.session, "__Host-phaze_session");
        let c = n.session("x");
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.path(), Some("/"));
        assert_eq!(c.domain(), None);
        let plain = CookieNames::new(false);
        assert_eq!(plain.session, "phaze_session");
        assert_eq!(plain.session("x").secure(), Some(false));
        assert_eq!(plain.clear_session().max_age(), Some(CookieDuration::ZERO));
        assert_eq!(plain.device("d").max_age(), Some(CookieDuration::days(180)));
    }
}
