//! OWASP "device cookies": a browser that logged in to an account successfully gets a signed
//! cookie naming that account. While the account's identifier is locked for everyone else, such a
//! browser keeps a small failure budget of its own, so an attacker's guesses cannot lock the owner
//! out.
//!
//! Value: `base64url(nonce ‖ tag)`, tag = HMAC over the identifier and nonce. The identifier is
//! not in the cookie (only in the MAC), so the cookie does not reveal the address.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const NONCE: usize = 16;
const TAG: usize = 16;

/// Issues and checks OWASP device cookies: `base64url(nonce ‖ tag)`, the tag an HMAC-SHA256
/// under the server key over the identifier and a random nonce. A cookie cannot be forged or
/// moved to another identifier, and does not reveal the identifier it is bound to.
pub struct DeviceCookies {
    key: SecretBox<[u8; 32]>,
}

impl DeviceCookies {
    /// Cookies under `key`.
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self { key }
    }

    fn tag(&self, identifier: &str, nonce: &[u8]) -> [u8; TAG] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(identifier.len() as u64).to_be_bytes());
        mac.update(identifier.as_bytes());
        mac.update(nonce);
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG]);
        tag
    }

    /// A new cookie value for `identifier`.
    pub fn issue(&self, identifier: &str) -> String {
        let mut bytes = [0u8; NONCE + TAG];
        OsRng.fill_bytes(&mut bytes[..NONCE]);
        let tag = self.tag(identifier, &bytes[..NONCE]);
        bytes[NONCE..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The cookie's nonce if `value` is a cookie this server issued for `identifier`; the tag is
    /// compared in constant time.
    pub fn verify(&self, value: &str, identifier: &str) -> Option<[u8; NONCE]> {
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() != NONCE + TAG {
            return None;
        }
        let expected = self.tag(identifier, &bytes[..NONCE]);
        if !bool::from(expected.ct_eq(&bytes[NONCE..])) {
            return None;
        }
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&bytes[..NONCE]);
        Some(nonce)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_bound_to_their_identifier_and_key() {
        let d = DeviceCookies::new(SecretBox::new(Box::new([1; 32])));
        let v = d.issue("ada@example.com");
        assert!(d.verify(&v, "ada@example.com").is_some());
        assert!(d.verify(&v, "bob@example.com").is_none());
        assert!(!v.contains("ada"));
        let other = DeviceCookies::new(SecretBox::new(Box::new([2; 32])));
        assert!(other.verify(&v, "ada@example.com").is_none());
        for bad in ["", "x", &v[..v.len() - 1], &format!("{v}A"), "%%%"] {
            assert!(d.verify(bad, "ada@example.com").is_none(), "{bad}");
        }
        assert_ne!(d.issue("ada@example.com"), v, "a fresh nonce each time");
    }
}
