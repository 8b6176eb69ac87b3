//! CSRF tokens, bound to the visitor: the rule lives with the session it is bound to.
//!
//! - Logged in, the token is a MAC of the session's CSRF secret ([`crate::SessionData`]), which
//!   is new at every login, so a token from before login is dead after it.
//! - Before login, the visitor holds a random anonymous cookie and the token is a MAC of it (the
//!   signed double submit), so forms work before there is a session, and a token cannot be made
//!   for a cookie without the server's key.
//! - [`Csrf::verify`] compares in constant time (`subtle`, which also keeps the compiler from
//!   turning the comparison into an early-exit loop; `constant_time_eq` would do the job but adds
//!   a crate for what `subtle` already in the tree does).
//!
//! The browser's word about where a request comes from (`Sec-Fetch-Site`, `Origin`) is HTTP, and
//! is checked by the HTTP layer before it asks this module about the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// What a token is bound to.
pub enum Binding<'a> {
    /// A logged-in session's secret.
    Session(&'a [u8; 32]),
    /// An anonymous visitor's `phaze_csrf` cookie value.
    Anonymous(&'a str),
}

/// Makes and checks CSRF tokens.
pub struct Csrf {
    key: SecretBox<[u8; 32]>,
}

impl Csrf {
    /// Tokens under `key`.
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self { key }
    }

    /// The token for `binding`: base64url of HMAC-SHA256.
    pub fn token(&self, binding: &Binding<'_>) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        match binding {
            Binding::Session(secret) => {
                mac.update(b"phaze-csrf/session\0");
                mac.update(secret.as_slice());
            }
            Binding::Anonymous(cookie) => {
                mac.update(b"phaze-csrf/anon\0");
                mac.update(cookie.as_bytes());
            }
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `provided` is the token for `binding`, in constant time. The only way a token is
    /// checked: a request path that compared tokens itself would be a second rule to keep right.
    pub fn verify(&self, binding: &Binding<'_>, provided: &str) -> bool {
        let expected = self.token(binding);
        expected.len() == provided.len()
            && bool::from(expected.as_bytes().ct_eq(provided.as_bytes()))
    }
}

/// A fresh anonymous cookie value: 256 random bits.
pub fn new_anonymous_value() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Accepts an anonymous cookie value only in the shape [`new_anonymous_value`] makes.
pub fn valid_anonymous_value(value: &str) -> bool {
    value.len() == 43 && URL_SAFE_NO_PAD.decode(value).is_ok_and(|b| b.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csrf(k: u8) -> Csrf {
        Csrf::new(SecretBox::new(Box::new([k; 32])))
    }

    #[test]
    fn tokens_are_bound() {
        let c = csrf(1);
        let anon = new_anonymous_value();
        let t = c.token(&Binding::Anonymous(&anon));
        assert!(c.verify(&Binding::Anonymous(&anon), &t));
        assert!(!c.verify(&Binding::Anonymous(&new_anonymous_value()), &t));
        assert!(!c.verify(&Binding::Session(&[0; 32]), &t));
        assert!(
            !csrf(2).verify(&Binding::Anonymous(&anon), &t),
            "another key"
        );
        assert!(!c.verify(&Binding::Anonymous(&anon), ""));
        assert!(!c.verify(&Binding::Anonymous(&anon), &t[..t.len() - 1]));
        let s = c.token(&Binding::Session(&[7; 32]));
        assert!(c.verify(&Binding::Session(&[7; 32]), &s));
        assert!(!c.verify(&Binding::Session(&[8; 32]), &s));
    }

    #[test]
    fn anonymous_values_are_checked() {
        assert!(valid_anonymous_value(&new_anonymous_value()));
        for bad in [
            "",
            "abc",
            &"a".repeat(44),
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(!valid_anonymous_value(bad), "{bad}");
        }
    }
}
