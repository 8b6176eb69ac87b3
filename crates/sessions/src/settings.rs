//! The numbers of a [`SessionPolicy`] as they are configured: the `[session]` section of a
//! service's configuration as it stands, with the only set of defaults.

use serde::Deserialize;
use time::Duration;

use crate::{IpBinding, SessionPolicy};

/// `[session]`. Field names are the configuration keys (`session.idle_secs` and so on); unknown
/// keys are refused, missing ones take the default in brackets.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Absolute lifetime in seconds (8 h).
    pub absolute_secs: u32,
    /// Idle timeout in seconds (30 min).
    pub idle_secs: u32,
    /// Rotate the id after this many seconds (15 min).
    pub rotate_secs: u32,
    /// Seconds an id rotated away keeps working, for requests in flight (10; at most 120).
    pub grace_secs: u32,
    /// Write `last_seen` back at most this often, in seconds (60).
    pub touch_secs: u32,
    /// Bind sessions to the client's network (off).
    pub ip_binding: bool,
    /// Network prefix for IPv4 binding (24).
    pub ip_v4_prefix: u8,
    /// Network prefix for IPv6 binding (64).
    pub ip_v6_prefix: u8,
    /// "Sudo mode": seconds after a login (or a re-authentication, which is one) during which
    /// sensitive actions need no password again (600; 60 to 3600).
    pub reauth_secs: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            absolute_secs: 8 * 3600,
            idle_secs: 30 * 60,
            rotate_secs: 15 * 60,
            grace_secs: 10,
            touch_secs: 60,
            ip_binding: false,
            ip_v4_prefix: 24,
            ip_v6_prefix: 64,
            reauth_secs: 600,
        }
    }
}

/// Settings that cannot be enforced: which key, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {why}")]
pub struct SettingsError {
    /// The configuration key, `session.` included.
    pub key: &'static str,
    /// What it must be.
    pub why: &'static str,
}

impl SessionSettings {
    /// Refuses lifetimes of zero, a grace long enough to matter to a thief (over two minutes),
    /// and prefixes longer than an address.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let fail = |key, why| Err(SettingsError { key, why });
        if self.absolute_secs == 0 || self.idle_secs == 0 || self.rotate_secs == 0 {
            return fail(
                "session",
                "absolute_secs, idle_secs and rotate_secs must be above 0",
            );
        }
        if self.grace_secs > 120 {
            return fail("session.grace_secs", "must be at most 120");
        }
        if !(60..=3600).contains(&self.reauth_secs) {
            return fail("session.reauth_secs", "must be between 60 and 3600");
        }
        if self.ip_v4_prefix > 32 {
            return fail("session.ip_v4_prefix", "must be at most 32");
        }
        if self.ip_v6_prefix > 128 {
            return fail("session.ip_v6_prefix", "must be at most 128");
        }
        Ok(())
    }

    /// The policy these settings configure.
    pub fn policy(&self) -> SessionPolicy {
        let secs = |s: u32| Duration::seconds(s.into());
        SessionPolicy {
            absolute: secs(self.absolute_secs),
            idle: secs(self.idle_secs),
            rotate_after: secs(self.rotate_secs),
            grace: secs(self.grace_secs),
            touch_interval: secs(self.touch_secs),
            reauth: secs(self.reauth_secs),
            ip_binding: if self.ip_binding {
                IpBinding::Network {
                    v4_prefix: self.ip_v4_prefix,
                    v6_prefix: self.ip_v6_prefix,
                }
            } else {
                IpBinding::Off
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_set_of_defaults_and_hostile_numbers_refused() {
        let policy = SessionSettings::default().policy();
        assert_eq!(policy.absolute, Duration::hours(8));
        assert_eq!(policy.idle, Duration::minutes(30));
        assert_eq!(policy.rotate_after, Duration::minutes(15));
        assert_eq!(policy.grace, Duration::seconds(10));
        assert_eq!(policy.ip_binding, IpBinding::Off);
        assert!(SessionSettings::default().validate().is_ok());
        for bad in [
            SessionSettings {
                idle_secs: 0,
                ..Default::default()
            },
            SessionSettings {
                reauth_secs: 59,
                ..Default::default()
            },
            SessionSettings {
                reauth_secs: 3601,
                ..Default::default()
            },
            SessionSettings {
                grace_secs: 121,
                ..Default::default()
            },
            SessionSettings {
                ip_v4_prefix: 33,
                ..Default::default()
            },
            SessionSettings {
                ip_v6_prefix: 129,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
