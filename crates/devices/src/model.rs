use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::PublicKey;
use phaze_ids::UserId;

/// A device's permanent id (random), the handle in its URLs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(Uuid);

impl DeviceId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// The id in a URL path segment; anything that is not a UUID is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        Uuid::try_parse(s).ok().map(Self)
    }

    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for DeviceId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A device's name as its owner typed it: 1–64 characters after NFC and trimming, no control or
/// invisible characters. Shown escaped; a download's file name is made from it by
/// `phaze_sanitize::safe_filename`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceName(String);

impl DeviceName {
    /// The longest name, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates and normalises a name.
    pub fn parse(raw: &str) -> Result<Self, phaze_sanitize::TextError> {
        phaze_sanitize::single_line(raw, Self::MAX_CHARS).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceName {
    type Error = phaze_sanitize::TextError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<DeviceName> for String {
    fn from(n: DeviceName) -> Self {
        n.0
    }
}

/// A device's addresses inside the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TunnelAddress {
    /// Its IPv4 address (a /32 in the server's peer list).
    pub v4: Ipv4Addr,
    /// Its IPv6 address (a /128).
    pub v6: Ipv6Addr,
}

/// A stored device. `Debug` shows the sealed private key's length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// Permanent id.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// Name.
    pub name: DeviceName,
    /// Public key (the server's peer entry).
    pub public_key: PublicKey,
    /// The private key, sealed (see [`crate::DeviceKeys`]).
    pub sealed_private_key: Vec<u8>,
    /// The pool slot its addresses come from.
    pub slot: u32,
    /// Its addresses (from `slot`, kept so a pool change never moves a device silently).
    pub address: TunnelAddress,
    /// When it was added.
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("public_key", &self.public_key)
            .field(
                "sealed_private_key",
                &format_args!("<{} bytes>", self.sealed_private_key.len()),
            )
            .field("slot", &self.slot)
            .field("address", &self.address)
            .field("created_at", &self.created_at)
            .finish()
    }
}
