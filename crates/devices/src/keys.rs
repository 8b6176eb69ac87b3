use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use phaze_sessions::Sealer;
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use std::fmt;
use x25519_dalek::StaticSecret;

use crate::DeviceId;

/// A WireGuard public key: 32 bytes, shown as standard base64 (44 characters), as `wg` does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key's base64 form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A key from its base64 form; anything but 32 bytes of standard base64 is `None`.
    pub fn from_base64(s: &str) -> Option<Self> {
        let bytes = STANDARD.decode(s).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// A key from its raw bytes (as a store keeps it).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl TryFrom<String> for PublicKey {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_base64(&s).ok_or_else(|| "invalid public key".to_owned())
    }
}

impl From<PublicKey> for String {
    fn from(k: PublicKey) -> Self {
        k.to_base64()
    }
}

/// A device's x25519 key pair (x25519-dalek). The private key never leaves this type but sealed
/// ([`DeviceKeys::seal`]) or as the one line of the configuration the owner downloads
/// ([`DeviceKeys::private_base64`]); `Debug` prints the public key only.
pub struct DeviceKeys {
    secret: StaticSecret,
}

impl fmt::Debug for DeviceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeviceKeys(public={}, <private redacted>)",
            self.public()
        )
    }
}

/// What a sealed private key is bound to: its purpose and its device.
fn context(device: &DeviceId) -> Vec<u8> {
    let mut c = b"phaze-device-private-key\0".to_vec();
    c.extend_from_slice(device.as_uuid().as_bytes());
    c
}

impl DeviceKeys {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Self {
        Self {
            secret: StaticSecret::random_from_rng(OsRng),
        }
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(x25519_dalek::PublicKey::from(&self.secret).to_bytes())
    }

    /// The private key sealed for `device` (XChaCha20-Poly1305 under the session key list).
    pub fn seal(&self, sealer: &Sealer, device: &DeviceId) -> Vec<u8> {
        sealer.seal_bound(&context(device), self.secret.as_bytes())
    }

    /// The key pair of `device` from its sealed private key; `None` if it does not open (another
    /// device's blob, a removed key, a tampered store).
    pub fn open(sealer: &Sealer, device: &DeviceId, sealed: &[u8]) -> Option<Self> {
        let bytes: [u8; 32] = sealer
            .open_bound(&context(device), sealed)
            .ok()?
            .try_into()
            .ok()?;
        Some(Self {
            secret: StaticSecret::from(bytes),
        })
    }

    /// The private key in base64, for the owner's configuration file only.
    pub fn private_base64(&self) -> String {
        STANDARD.encode(self.secret.as_bytes())
    }
}
