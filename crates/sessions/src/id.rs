use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

const ID_BYTES: usize = 32;
/// Length of an id once base64url-encoded without padding.
const ID_CHARS: usize = 43;

/// The secret that identifies a session: 256 bits from the OS CSPRNG, base64url in the cookie
/// (after a rotation, 256 bits derived from the old id and a fresh random salt).
///
/// It is never stored: the store only sees its [`SessionKey`]. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; ID_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts a cookie value only if it has the exact shape of an id this crate generates, so
    /// arbitrary client input never reaches a store.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != ID_CHARS {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        (bytes.len() == ID_BYTES).then(|| Self(value.to_owned()))
    }

    /// The value to put in the cookie.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The id this one rotates into, given the rotation's salt: SHA-256 over a domain label, this
    /// id and the salt. Deriving it, rather than drawing it, lets a request that lost a rotation
    /// race compute the winner's id from the id it holds and the salt sealed in the retired
    /// record, so no id is ever stored, not even sealed; and without the old id (which only the
    /// client has) the salt is worth nothing. A fresh 256-bit salt from the OS CSPRNG per rotation
    /// keeps every successor as unguessable as a generated id.
    pub(crate) fn successor(&self, salt: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"phaze-session-successor\0")
            .chain_update(self.0.as_bytes())
            .chain_update(salt)
            .finalize();
        Self(URL_SAFE_NO_PAD.encode(digest))
    }

    /// The store key: SHA-256 of the id. A 256-bit random id needs no salt or slow hash.
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// What a store is keyed by: the SHA-256 of a [`SessionId`]. Knowing a key does not let anyone
/// forge the cookie, so keys can appear in file names, Redis keys and the "revoke" URL.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 lower-case hex characters; anything else is `None`.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).ok()?;
        Some(Self(out))
    }
}

impl From<[u8; 32]> for SessionKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", &self.to_hex()[..12])
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}
