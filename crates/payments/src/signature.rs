//! `Stripe-Signature` verification, as Stripe's own libraries do it, on the raw body before any
//! JSON is parsed.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…]` with possibly `v0=…` or schemes Stripe
//! adds later. The signed payload is `<t>.<raw body>`; a `v1` is the hex HMAC-SHA256 of it under
//! the endpoint's secret. Valid when *any* `v1` matches under *any* configured secret (Stripe signs
//! with the old and the new secret while one is rolled), compared in constant time, and `t` is
//! within the tolerance of now, in the past *or* the future.
//!
//! Stricter than stripe-python in three ways, each refusing only headers Stripe never sends: a
//! pair without `=` or with an empty name, a second `t`, and a `t` that is not plain decimal
//! digits are refused instead of ignored or crashing; a timestamp far in the future is refused
//! (stripe-python checks only the past); and the header's size and its number of pairs are capped.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::fmt;
use time::{Duration, OffsetDateTime};

/// The longest header accepted, in bytes: a real one is under 300.
pub const MAX_HEADER_BYTES: usize = 4096;
/// The most `name=value` pairs a header may carry: a real one has two or three.
pub const MAX_PAIRS: usize = 16;
/// The tolerance Stripe's libraries default to.
pub const DEFAULT_TOLERANCE: Duration = Duration::seconds(300);

/// Why a delivery was refused. The variant is for the log: the sender gets one `400`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `Stripe-Signature` header, or not ASCII text.
    #[error("no Stripe-Signature header")]
    Missing,
    /// Longer than [`MAX_HEADER_BYTES`] or more than [`MAX_PAIRS`] pairs.
    #[error("Stripe-Signature header too large")]
    TooLarge,
    /// A pair without `=`, with an empty name, a second `t`, or no `t`.
    #[error("malformed Stripe-Signature header")]
    Malformed,
    /// `t` is not a plain decimal number of seconds.
    #[error("invalid timestamp in Stripe-Signature header")]
    BadTimestamp,
    /// No `v1` signature at all.
    #[error("no v1 signature in Stripe-Signature header")]
    NoSignature,
    /// No `v1` matches under any configured secret.
    #[error("no signature matches")]
    Mismatch,
    /// `t` is further from now than the tolerance.
    #[error("timestamp outside the tolerance")]
    Stale,
}

/// A parsed header: the timestamp and the `v1` signatures, decoded. A `v1` that is not 64
/// lower-case hex digits can match nothing and is kept out.
#[derive(Debug, PartialEq, Eq)]
pub struct SignatureHeader {
    /// `t`, in Unix seconds.
    pub timestamp: i64,
    /// The `v1` signatures that are well-formed HMAC-SHA256 values.
    pub v1: Vec<[u8; 32]>,
    /// How many `v1` pairs the header had, well-formed or not.
    pub v1_pairs: usize,
}

impl SignatureHeader {
    /// Parses a header value.
    ///
    /// # Errors
    /// See [`SignatureError`]; [`SignatureError::NoSignature`] when there is no `v1` pair.
    pub fn parse(header: &str) -> Result<Self, SignatureError> {
        if header.len() > MAX_HEADER_BYTES {
            return Err(SignatureError::TooLarge);
        }
        let mut timestamp = None;
        let mut v1 = Vec::new();
        let mut v1_pairs = 0;
        for (n, pair) in header.split(',').enumerate() {
            if n >= MAX_PAIRS {
                return Err(SignatureError::TooLarge);
            }
            let (name, value) = pair.split_once('=').ok_or(SignatureError::Malformed)?;
            match name.trim() {
                "" => return Err(SignatureError::Malformed),
                "t" => {
                    if timestamp.is_some() {
                        return Err(SignatureError::Malformed);
                    }
                    timestamp = Some(parse_timestamp(value.trim())?);
                }
                "v1" => {
                    v1_pairs += 1;
                    // Stripe's libraries compare the lower-case hex text; so does this, by
                    // decoding only that spelling.
                    let value = value.trim();
                    let mut sig = [0u8; 32];
                    if value
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        && hex::decode_to_slice(value, &mut sig).is_ok()
                    {
                        v1.push(sig);
                    }
                }
                // v0 (test mode's old scheme) and schemes added later are not ours to check.
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if v1_pairs == 0 {
            return Err(SignatureError::NoSignature);
        }
        Ok(Self {
            timestamp,
            v1,
            v1_pairs,
        })
    }
}

/// Plain decimal digits only (no sign, no spaces inside, no exponent), at most 12 of them (year
/// 33658): `i64::from_str` alone would take `+1`.
fn parse_timestamp(value: &str) -> Result<i64, SignatureError> {
    if value.is_empty() || value.len() > 12 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    value.parse().map_err(|_| SignatureError::BadTimestamp)
}

/// The endpoint's signing secrets and the tolerance: checks deliveries.
#[derive(Clone)]
pub struct WebhookVerifier {
    secrets: Vec<SecretString>,
    tolerance: Duration,
}

impl fmt::Debug for WebhookVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WebhookVerifier({} secrets, tolerance {}, <redacted>)",
            self.secrets.len(),
            self.tolerance
        )
    }
}

/// A body whose signature was verified: the only way to get one is [`WebhookVerifier::verify`],
/// so code that takes a `Verified` (the event parser, the HTTP layer's exemption from CSRF) cannot
/// be handed an unchecked body.
#[derive(Clone, Copy, Debug)]
pub struct Verified<'a> {
    body: &'a [u8],
    timestamp: i64,
}

impl<'a> Verified<'a> {
    /// The raw body, exactly as signed.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// The signed timestamp.
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
}

impl WebhookVerifier {
    /// A verifier accepting a signature under any of `secrets` (`whsec_…`, used as their bytes,
    /// as Stripe does), within `tolerance` of now either way.
    ///
    /// # Panics
    /// Never; an empty list verifies nothing (every delivery is [`SignatureError::Mismatch`]).
    pub fn new(secrets: Vec<SecretString>, tolerance: Duration) -> Self {
        Self {
            secrets,
            tolerance: tolerance.abs(),
        }
    }

    /// Checks `header` against the raw `body` at `now`.
    ///
    /// # Errors
    /// See [`SignatureError`]. A signature is checked before the time, so a forged delivery is
    /// [`SignatureError::Mismatch`] whatever its `t`.
    pub fn verify<'a>(
        &self,
        header: Option<&str>,
        body: &'a [u8],
        now: OffsetDateTime,
    ) -> Result<Verified<'a>, SignatureError> {
        let parsed = SignatureHeader::parse(header.ok_or(SignatureError::Missing)?)?;
        let prefix = format!("{}.", parsed.timestamp);
        let matched = self.secrets.iter().any(|secret| {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            else {
                return false;
            };
            mac.update(prefix.as_bytes());
            mac.update(body);
            // `verify_slice` compares in constant time; every candidate is tried (no early exit on
            // the position of the match).
            parsed.v1.iter().fold(false, |found, sig| {
                mac.clone().verify_slice(sig).is_ok() | found
            })
        });
        if !matched {
            return Err(SignatureError::Mismatch);
        }
        let age = now.unix_timestamp().saturating_sub(parsed.timestamp);
        if age.unsigned_abs() > self.tolerance.whole_seconds().unsigned_abs() {
            return Err(SignatureError::Stale);
        }
        Ok(Verified {
            body,
            timestamp: parsed.timestamp,
        })
    }

    /// A `Stripe-Signature` value for `body` at `timestamp` under the first secret, as Stripe
    /// would send it: for tests and for tools that replay a delivery by hand.
    pub fn sign(&self, body: &[u8], timestamp: i64) -> Option<String> {
        let secret = self.secrets.first()?;
        Some(format!(
            "t={timestamp},v1={}",
            hex::encode(signature(secret, timestamp, body))
        ))
    }
}

fn signature(secret: &SecretString, timestamp: i64, body: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length.
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
        .expect("HMAC accepts any key length");
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_767_225_600;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    fn verifier(secrets: &[&str]) -> WebhookVerifier {
        WebhookVerifier::new(
            secrets.iter().map(|s| SecretString::from(*s)).collect(),
            DEFAULT_TOLERANCE,
        )
    }

    fn at(t: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn sig(secret: &str, t: i64, body: &[u8]) -> String {
        hex::encode(signature(&SecretString::from(secret), t, body))
    }

    fn check(v: &WebhookVerifier, header: &str) -> Result<(), SignatureError> {
        v.verify(Some(header), BODY, at(NOW)).map(|_| ())
    }

    #[test]
    fn a_signature_stripe_would_send_verifies() {
        let v = verifier(&["whsec_test"]);
        let header = format!("t={NOW},v1={}", sig("whsec_test", NOW, BODY));
        let ok = v.verify(Some(&header), BODY, at(NOW)).map(|v| v.body());
        assert_eq!(ok, Ok(BODY));
        assert_eq!(v.sign(BODY, NOW), Some(header));
    }

    #[test]
    fn any_v1_under_any_secret_is_enough_and_other_schemes_are_ignored() {
        let v = verifier(&["whsec_old", "whsec_new"]);
        let good = sig("whsec_new", NOW, BODY);
        let bad = sig("whsec_other", NOW, BODY);
        for header in [
            format!("t={NOW},v1={bad},v1={good}"),
            format!("t={NOW},v1={good},v1={bad}"),
            format!("v1={good},t={NOW}"),
            format!("t={NOW},v0={bad},v1={good},v9=whatever"),
            format!("t={NOW}, v1={good}"),
            format!("t={NOW},v1=nothex,v1={good}"),
        ] {
            assert_eq!(check(&v, &header), Ok(()), "{header}");
        }
    }

    #[test]
    fn the_signature_covers_timestamp_and_every_byte_of_the_body() {
        let v = verifier(&["whsec_test"]);
        let good = sig("whsec_test", NOW, BODY);
        // The same signature with another t, or over another body.
        assert_eq!(
            check(&v, &format!("t={},v1={good}", NOW - 1)),
            Err(SignatureError::Mismatch)
        );
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert_eq!(
            v.verify(Some(&format!("t={NOW},v1={good}")), &body, at(NOW))
                .map(|_| ()),
            Err(SignatureError::Mismatch)
        );
        // A v0 that matches is not a v1.
        assert_eq!(
            check(&v, &format!("t={NOW},v0={good}")),
            Err(SignatureError::NoSignature)
        );
        // Upper-case hex matches nothing, as in Stripe's libraries (a string comparison there).
        assert_eq!(
            check(&v, &format!("t={NOW},v1={}", good.to_uppercase())),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_and_far_future_timestamps_are_refused_after_the_signature() {
        let v = verifier(&["whsec_test"]);
        for (t, want) in [
            (NOW - 300, Ok(())),
            (NOW + 300, Ok(())),
            (NOW - 301, Err(SignatureError::Stale)),
            (NOW + 301, Err(SignatureError::Stale)),
            (0, Err(SignatureError::Stale)),
            (999_999_999_999, Err(SignatureError::Stale)),
        ] {
            let header = format!("t={t},v1={}", sig("whsec_test", t, BODY));
            assert_eq!(check(&v, &header), want, "t={t}");
        }
        // A forged stale delivery says "mismatch", not "stale": the time tells a forger nothing.
        let forged = format!("t={},v1={}", NOW - 10_000, "0".repeat(64));
        assert_eq!(check(&v, &forged), Err(SignatureError::Mismatch));
    }

    #[test]
    fn hostile_headers_are_refused_with_a_reason() {
        let v = verifier(&["whsec_test"]);
        let good = sig("whsec_test", NOW, BODY);
        let many = format!("t={NOW},{}", vec![format!("v1={good}"); 20].join(","));
        let huge = format!("t={NOW},v1={}", "a".repeat(10_000));
        let cases: Vec<(String, SignatureError)> = vec![
            (String::new(), SignatureError::Malformed),
            (",".into(), SignatureError::Malformed),
            ("garbage".into(), SignatureError::Malformed),
            (format!("v1={good}"), SignatureError::Malformed),
            (
                format!("t={NOW},t={NOW},v1={good}"),
                SignatureError::Malformed,
            ),
            (format!("=x,t={NOW},v1={good}"), SignatureError::Malformed),
            (format!("t={NOW},v1={good},"), SignatureError::Malformed),
            (format!("t=,v1={good}"), SignatureError::BadTimestamp),
            (format!("t=+{NOW},v1={good}"), SignatureError::BadTimestamp),
            (format!("t=-{NOW},v1={good}"), SignatureError::BadTimestamp),
            (format!("t=1e9,v1={good}"), SignatureError::BadTimestamp),
            (format!("t=١٢٣,v1={good}"), SignatureError::BadTimestamp),
            (
                format!("t={},v1={good}", "9".repeat(40)),
                SignatureError::BadTimestamp,
            ),
            (format!("t={NOW}"), SignatureError::NoSignature),
            (format!("t={NOW},v1=zz"), SignatureError::Mismatch),
            (
                format!("t={NOW},v1=é{}", &good[2..]),
                SignatureError::Mismatch,
            ),
            (
                format!("t={NOW},v1={}", &good[..62]),
                SignatureError::Mismatch,
            ),
            (many, SignatureError::TooLarge),
            (huge, SignatureError::TooLarge),
        ];
        for (header, want) in cases {
            assert_eq!(check(&v, &header), Err(want), "{header:.80}");
        }
        assert_eq!(
            v.verify(None, BODY, at(NOW)).map(|_| ()),
            Err(SignatureError::Missing)
        );
        // No secret configured: nothing verifies.
        assert_eq!(
            check(&verifier(&[]), &format!("t={NOW},v1={good}")),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        /// Whatever the header, parsing never panics, and only a header carrying the right HMAC
        /// verifies.
        #[test]
        fn arbitrary_headers_never_panic_and_never_verify(header in "\\PC{0,200}") {
            let v = verifier(&["whsec_test"]);
            prop_assert!(check(&v, &header).is_err());
        }

        /// Arbitrary bodies round-trip through sign and verify, and one flipped byte breaks it.
        #[test]
        fn any_body_signs_and_verifies(body in proptest::collection::vec(any::<u8>(), 0..512), flip in any::<usize>()) {
            let v = verifier(&["whsec_test"]);
            let header = v.sign(&body, NOW).unwrap_or_default();
            prop_assert!(v.verify(Some(&header), &body, at(NOW)).is_ok());
            if !body.is_empty() {
                let mut other = body.clone();
                let i = flip % other.len();
                other[i] ^= 1;
                prop_assert_eq!(
                    v.verify(Some(&header), &other, at(NOW)).map(|_| ()),
                    Err(SignatureError::Mismatch)
                );
            }
        }
    }
}
