//! Time-based one-time passwords (RFC 6238, through totp-rs) and recovery codes: the rules, with
//! no store. A code is matched to its time step, so the caller can accept each step once (a
//! replayed code is the same step again); recovery codes are shown once and kept only as keyed
//! hashes.

use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::fmt;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use totp_rs::{Algorithm, Secret, TOTP};

/// Seconds per step (RFC 6238's recommendation, and what every authenticator app assumes).
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;

/// A TOTP secret: 160 random bits (RFC 4226's recommendation). Never printed.
pub struct TotpSecret(SecretBox<[u8; 20]>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 20];
        OsRng.fill_bytes(&mut bytes);
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A secret from its raw bytes (as stored, after unsealing).
    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// A secret from its base32 text (as an app, or a test standing in for one, reads it off
    /// the enrolment page; spaces ignored). `None` unless it is 20 bytes of valid base32.
    pub fn from_base32(text: &str) -> Option<Self> {
        let text: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let bytes = Secret::Encoded(text).to_bytes().ok()?;
        Some(Self::from_bytes(bytes.try_into().ok()?))
    }

    /// The raw bytes, to be sealed before storing.
    pub fn expose_bytes(&self) -> &[u8; 20] {
        self.0.expose_secret()
    }

    fn totp(&self, issuer: &str, account: &str) -> Option<TOTP> {
        TOTP::new(
            Algorithm::SHA1,
            DIGITS,
            0,
            STEP_SECS,
            self.0.expose_secret().to_vec(),
            Some(issuer.to_owned()),
            account.to_owned(),
        )
        .ok()
    }

    /// The base32 text an authenticator app takes when typed in.
    pub fn base32(&self) -> SecretString {
        SecretString::from(
            Secret::Raw(self.0.expose_secret().to_vec())
                .to_encoded()
                .to_string(),
        )
    }

    /// The `otpauth://totp/…` URI for a QR code. `None` when `issuer` or `account` contains a
    /// colon (the URI's separator).
    pub fn otpauth_url(&self, issuer: &str, account: &str) -> Option<SecretString> {
        self.totp(issuer, account)
            .map(|t| SecretString::from(t.get_url()))
    }

    /// The step (`unix time / 30`) whose code `code` is, among the step of `now` and the one
    /// before and after it (clock skew), or `None`. Each candidate is compared in constant time;
    /// anything but six ASCII digits (after removing spaces) matches nothing.
    pub fn matching_step(&self, code: &str, now: OffsetDateTime) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp("phaze", "account")?;
        let step = u64::try_from(now.unix_timestamp()).ok()? / STEP_SECS;
        let mut found = None;
        for candidate in [step.saturating_sub(1), step, step + 1] {
            let expected = totp.generate(candidate * STEP_SECS);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
                found = Some(candidate);
            }
        }
        found
    }

    /// The code of the step of `now` (for tests, and for a user's first check).
    pub fn code_at(&self, now: OffsetDateTime) -> Option<String> {
        let t = u64::try_from(now.unix_timestamp()).ok()?;
        Some(self.totp("phaze", "account")?.generate(t))
    }
}

/// A fresh set of `RECOVERY_CODES` recovery codes, to show once: 10 characters each
/// (`xxxxx-xxxxx`, about 49 bits), from an alphabet without look-alikes (no 0/o, 1/l/i). They are
/// stored only as keyed hashes of their [`normal_recovery_code`] ([`crate::TokenHasher`]).
pub fn generate_recovery_codes() -> Vec<SecretString> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: String = (0..10)
                .map(|_| {
                    // Rejection sampling: a uniform pick, no modulo bias.
                    loop {
                        let b = (OsRng.next_u32() & 0x1f) as usize;
                        if let Some(c) = ALPHABET.get(b) {
                            break char::from(*c);
                        }
                    }
                })
                .collect();
            SecretString::from(format!("{}-{}", &chars[..5], &chars[5..]))
        })
        .collect()
}

/// A recovery code as typed, in the form that is hashed: case, spaces and dashes do not matter.
/// `None` for anything that cannot be a recovery code (a TOTP code, say).
pub fn normal_recovery_code(code: &str) -> Option<String> {
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (normal.len() == 10 && normal.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 6238 appendix B, SHA-1, with the last six digits of its eight-digit values.
    #[test]
    fn the_rfc_6238_vectors_match() {
        let secret = TotpSecret::from_bytes(*b"12345678901234567890");
        for (t, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_111_111_111, "050471"),
            (1_234_567_890, "005924"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(secret.code_at(at(t)).as_deref(), Some(code), "t={t}");
            assert_eq!(
                secret.matching_step(code, at(t)),
                Some(t as u64 / 30),
                "t={t}"
            );
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = TotpSecret::generate();
        let t = 1_767_225_600;
        let code = secret.code_at(at(t)).unwrap_or_default();
        let step = t as u64 / 30;
        assert_eq!(secret.matching_step(&code, at(t - 30)), Some(step));
        assert_eq!(secret.matching_step(&code, at(t + 30)), Some(step));
        assert_eq!(secret.matching_step(&code, at(t + 60)), None);
        assert_eq!(secret.matching_step(&code, at(t - 60)), None);
        // Spaces are what apps show; anything else is no code.
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(secret.matching_step(&spaced, at(t)), Some(step));
        for bad in [
            "",
            "12345",
            "1234567",
            "abcdef",
            "12345x",
            "١٢٣٤٥٦",
            "+12345",
        ] {
            assert_eq!(secret.matching_step(bad, at(t)), None, "{bad}");
        }
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_secret() {
        let secret = TotpSecret::from_bytes(*b"12345678901234567890");
        let url = secret
            .otpauth_url("Phaze", "ada@example.com")
            .map(|u| u.expose_secret().to_owned())
            .unwrap_or_default();
        assert!(
            url.starts_with("otpauth://totp/Phaze:ada%40example.com?"),
            "{url}"
        );
        assert!(
            url.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"),
            "{url}"
        );
        assert!(url.contains("issuer=Phaze"), "{url}");
        assert_eq!(
            secret.base32().expose_secret(),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
        assert!(secret.otpauth_url("Pha:ze", "ada@example.com").is_none());
        let typed = TotpSecret::from_base32("GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        assert_eq!(
            typed.map(|t| *t.expose_bytes()),
            Some(*b"12345678901234567890")
        );
        assert!(TotpSecret::from_base32("GEZDGNBV").is_none(), "too short");
        assert!(TotpSecret::from_base32("GEZD!NBVGY3TQOJQGEZDGNBVGY3TQOJQ").is_none());
        assert!(!format!("{secret:?}").contains("GEZD"));
    }

    #[test]
    fn recovery_codes_are_distinct_and_forgiving_of_typing() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut normal: Vec<String> = codes
            .iter()
            .filter_map(|c| normal_recovery_code(c.expose_secret()))
            .collect();
        normal.sort_unstable();
        normal.dedup();
        assert_eq!(normal.len(), RECOVERY_CODES);
        let first = codes[0].expose_secret().to_owned();
        assert_eq!(first.len(), 11);
        assert_eq!(first.as_bytes()[5], b'-');
        assert_eq!(
            normal_recovery_code(&first.to_uppercase().replace('-', " ")),
            normal_recovery_code(&first)
        );
        for bad in [
            "",
            "123456",
            "abcde-abcd",
            "abcde-abcdef",
            "abcde_abcde",
            "abcdé-abcde",
        ] {
            assert_eq!(normal_recovery_code(bad), None, "{bad}");
        }
    }
}
