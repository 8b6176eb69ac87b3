//! Identifiers the domains share, so that a session carries the same typed account id the
//! accounts are keyed by, without `phaze-sessions` depending on `phaze-auth`.
//!
//! ```
//! use phaze_ids::UserId;
//!
//! let id = UserId::generate();
//! let text = id.to_string();
//! assert_eq!(text.parse::<UserId>().unwrap(), id);
//! assert!("not-a-uuid".parse::<UserId>().is_err());
//! ```
#![warn(missing_docs)]

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An account's permanent id: a random UUID, never derived from the email. Its text form (and its
/// serde form) is the hyphenated UUID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(Uuid::new_v4())
    }

    /// The UUID, for stores with a native UUID type.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for UserId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.as_hyphenated().fmt(f)
    }
}

impl FromStr for UserId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_serde_form_is_the_text_form() {
        let id = UserId::generate();
        let json = serde_json::to_string(&id).unwrap_or_default();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<UserId>(&json).ok(), Some(id));
        for bad in ["\"\"", "\"x\"", "42", "\"../../etc\""] {
            assert!(serde_json::from_str::<UserId>(bad).is_err(), "{bad}");
        }
    }
}
