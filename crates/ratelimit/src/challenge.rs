//! A self-hosted proof-of-work challenge, asked of whoever keeps failing to log in to one
//! identifier: the browser must find a counter whose SHA-256 with the challenge token has
//! `difficulty` leading zero bits. Cheap to check, costly to solve in bulk, no third party.
//!
//! A token is `base64url(expires ‖ nonce ‖ tag)`, the tag an HMAC over the identifier, expiry and
//! nonce: it cannot be forged, moved to another identifier, or used after it expires. The answer
//! is `<token>.<counter>`. Single use is the caller's job (the nonce, as a limit-1 window in the
//! rate-limit store), so it holds across processes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};

const NONCE: usize = 16;
const TAG: usize = 16;
const TOKEN_BYTES: usize = 8 + NONCE + TAG;

/// A challenge to put in the login form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The token (URL-safe text).
    pub token: String,
    /// Leading zero bits the answer's hash needs.
    pub difficulty: u8,
}

/// Why an answer was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// Not `<token>.<counter>`, or not a token this server made for this identifier.
    #[error("invalid challenge")]
    Invalid,
    /// The token expired.
    #[error("challenge expired")]
    Expired,
    /// The counter does not give enough leading zero bits.
    #[error("not enough work")]
    NotSolved,
}

/// Issues and checks proof-of-work challenges under a server key: a token is
/// `base64url(expiry ‖ nonce ‖ tag)`, the tag an HMAC-SHA256 over the identifier, difficulty,
/// expiry and nonce, so it cannot be forged, moved to another identifier or used after it
/// expires. Single use is not this type's job: the caller records the nonce (see
/// [`crate::Limits::login`]), so it holds across processes.
pub struct ChallengeIssuer {
    key: SecretBox<[u8; 32]>,
    difficulty: u8,
    ttl: Duration,
}

impl fmt::Debug for ChallengeIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChallengeIssuer(difficulty={}, <redacted>)",
            self.difficulty
        )
    }
}

impl ChallengeIssuer {
    /// Challenges of `difficulty` bits (at most 32) that live `ttl`.
    pub fn new(key: SecretBox<[u8; 32]>, difficulty: u8, ttl: Duration) -> Self {
        Self {
            key,
            difficulty: difficulty.min(32),
            ttl,
        }
    }

    /// How long a challenge lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn tag(&self, identifier: &str, head: &[u8]) -> [u8; TAG] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(&(identifier.len() as u64).to_be_bytes());
        mac.update(identifier.as_bytes());
        mac.update(&[self.difficulty]);
        mac.update(head);
        let mut tag = [0u8; TAG];
        tag.copy_from_slice(&mac.finalize().into_bytes()[..TAG]);
        tag
    }

    /// A fresh challenge for `identifier`.
    pub fn issue(&self, identifier: &str, now: OffsetDateTime) -> Challenge {
        let expires = (now + self.ttl).unix_timestamp();
        let mut bytes = [0u8; TOKEN_BYTES];
        bytes[..8].copy_from_slice(&expires.to_be_bytes());
        OsRng.fill_bytes(&mut bytes[8..8 + NONCE]);
        let tag = self.tag(identifier, &bytes[..8 + NONCE]);
        bytes[8 + NONCE..].copy_from_slice(&tag);
        Challenge {
            token: URL_SAFE_NO_PAD.encode(bytes),
            difficulty: self.difficulty,
        }
    }

    /// Checks `answer` (`<token>.<counter>`) for `identifier`: the tag is compared in constant
    /// time, then the expiry, then the work. On success returns the challenge's nonce, which the
    /// caller marks used.
    pub fn verify(
        &self,
        identifier: &str,
        answer: &str,
        now: OffsetDateTime,
    ) -> Result<[u8; NONCE], ChallengeError> {
        let (token, counter) = answer.rsplit_once('.').ok_or(ChallengeError::Invalid)?;
        if counter.is_empty() || counter.len() > 20 || !counter.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(ChallengeError::Invalid);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| ChallengeError::Invalid)?;
        if bytes.len() != TOKEN_BYTES {
            return Err(ChallengeError::Invalid);
        }
        let expected = self.tag(identifier, &bytes[..8 + NONCE]);
        if !bool::from(expected.ct_eq(&bytes[8 + NONCE..])) {
            return Err(ChallengeError::Invalid);
        }
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&bytes[..8]);
        if i64::from_be_bytes(expires) <= now.unix_timestamp() {
            return Err(ChallengeError::Expired);
        }
        if leading_zero_bits(token, counter) < u32::from(self.difficulty) {
            return Err(ChallengeError::NotSolved);
        }
        let mut nonce = [0u8; NONCE];
        nonce.copy_from_slice(&bytes[8..8 + NONCE]);
        Ok(nonce)
    }
}

/// Leading zero bits of SHA-256(`token` ":" `counter`), as the browser computes it.
fn leading_zero_bits(token: &str, counter: &str) -> u32 {
    let digest = Sha256::new()
        .chain_update(token.as_bytes())
        .chain_update(b":")
        .chain_update(counter.as_bytes())
        .finalize();
    let mut bits = 0;
    for byte in digest {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

/// Finds an answer (what `apps/portal/static/app.js` does in the browser): for tests and tools.
pub fn solve(challenge: &Challenge) -> String {
    let mut n: u64 = 0;
    loop {
        let counter = n.to_string();
        if leading_zero_bits(&challenge.token, &counter) >= u32::from(challenge.difficulty) {
            return format!("{}.{counter}", challenge.token);
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(bits: u8) -> ChallengeIssuer {
        ChallengeIssuer::new(
            SecretBox::new(Box::new([4; 32])),
            bits,
            Duration::minutes(5),
        )
    }

    fn t0() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
    }

    #[test]
    fn a_solved_challenge_verifies_for_its_identifier_only() {
        let i = issuer(8);
        let c = i.issue("ada@example.com", t0());
        let answer = solve(&c);
        assert!(i.verify("ada@example.com", &answer, t0()).is_ok());
        assert_eq!(
            i.verify("bob@example.com", &answer, t0()),
            Err(ChallengeError::Invalid)
        );
        let other_key =
            ChallengeIssuer::new(SecretBox::new(Box::new([5; 32])), 8, Duration::minutes(5));
        assert_eq!(
            other_key.verify("ada@example.com", &answer, t0()),
            Err(ChallengeError::Invalid)
        );
    }

    #[test]
    fn expiry_work_and_shape_are_checked() {
        let i = issuer(12);
        let c = i.issue("ada@example.com", t0());
        let answer = solve(&c);
        assert_eq!(
            i.verify("ada@example.com", &answer, t0() + Duration::minutes(5)),
            Err(ChallengeError::Expired)
        );
        // Counter 0..: the first counter that fails the work check.
        let lazy = (0u64..)
            .map(|n| format!("{}.{n}", c.token))
            .find(|a| i.verify("ada@example.com", a, t0()).is_err())
            .unwrap();
        assert_eq!(
            i.verify("ada@example.com", &lazy, t0()),
            Err(ChallengeError::NotSolved)
        );
        for bad in [
            "",
            ".",
            "x.1",
            &format!("{}.", c.token),
            &format!("{}.-1", c.token),
            &format!("{}.1e3", c.token),
            &format!("{}x.1", c.token),
            &format!("{}.{}", c.token, "9".repeat(30)),
        ] {
            assert!(i.verify("ada@example.com", bad, t0()).is_err(), "{bad}");
        }
        // A tampered expiry breaks the tag.
        let mut bytes = URL_SAFE_NO_PAD.decode(&c.token).unwrap();
        bytes[0] ^= 0x01;
        let forged = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(bytes),
            answer.rsplit_once('.').unwrap().1
        );
        assert_eq!(
            i.verify("ada@example.com", &forged, t0()),
            Err(ChallengeError::Invalid)
        );
    }

    #[test]
    fn tokens_are_unique_and_difficulty_is_capped() {
        let i = issuer(8);
        assert_ne!(i.issue("a", t0()).token, i.issue("a", t0()).token);
        assert_eq!(issuer(200).issue("a", t0()).difficulty, 32);
    }
}
