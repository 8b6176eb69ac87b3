//! The security headers of every response: a strict Content Security Policy, no sniffing, no
//! framing, no referrer to other sites, no powerful features, isolation from other origins,
//! HSTS over HTTPS, `Cache-Control: no-store` for anything but static assets, and no `Server`.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The policy of a service whose pages load scripts, styles and images only from themselves
/// and post forms only to themselves.
pub const STRICT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

/// The headers to set; `Default` is [`STRICT_CSP`].
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    csp: HeaderValue,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        Self {
            csp: HeaderValue::from_static(STRICT_CSP),
        }
    }
}

impl SecurityHeaders {
    /// Another Content Security Policy; `None` if it is not a valid header value.
    pub fn with_csp(csp: &str) -> Option<Self> {
        Some(Self {
            csp: HeaderValue::from_str(csp).ok()?,
        })
    }

    /// Sets the headers on a response to a request that was (`https`) or was not over HTTPS;
    /// `cacheable` responses (static assets) may be kept for an hour, nothing else is stored.
    pub fn apply(&self, h: &mut HeaderMap, https: bool, cacheable: bool) {
        h.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        let mut set = |name: HeaderName, value: &'static str| {
            h.insert(name, HeaderValue::from_static(value));
        };
        set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
        set(header::X_FRAME_OPTIONS, "DENY");
        // Not `no-referrer`: under it, browsers send `Origin: null` with every form POST (Fetch,
        // "serialize a request origin"), which the CSRF origin check rightly refuses, so no form
        // would work. `same-origin` still sends nothing to other sites: no token in a URL (a
        // verification link) leaks to them in a `Referer`.
        set(header::REFERRER_POLICY, "same-origin");
        set(
            HeaderName::from_static("permissions-policy"),
            "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
        );
        set(
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        );
        set(
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        );
        if https {
            set(
                header::STRICT_TRANSPORT_SECURITY,
                "max-age=63072000; includeSubDomains",
            );
        }
        if cacheable {
            set(header::CACHE_CONTROL, "public, max-age=3600");
        } else {
            set(header::CACHE_CONTROL, "no-store");
        }
        h.remove(header::SERVER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsts_only_over_https_and_nothing_stored_but_assets() {
        let s = SecurityHeaders::default();
        let mut h = HeaderMap::new();
        h.insert(header::SERVER, HeaderValue::from_static("x"));
        s.apply(&mut h, false, false);
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_none());
        assert!(h.get(header::SERVER).is_none());
        assert_eq!(h.get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert_eq!(h.get(header::CONTENT_SECURITY_POLICY).unwrap(), STRICT_CSP);
        s.apply(&mut h, true, true);
        assert!(h.get(header::STRICT_TRANSPORT_SECURITY).is_some());
        assert_eq!(
            h.get(header::CACHE_CONTROL).unwrap(),
            "public, max-age=3600"
        );
        assert!(SecurityHeaders::with_csp("default-src 'self'\n").is_none());
    }
}
