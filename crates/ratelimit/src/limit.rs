use async_trait::async_trait;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretBox};
use sha2::Sha256;
use std::fmt;
use time::{Duration, OffsetDateTime};

/// At most `limit` events in any period of length `period` (a sliding window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Events allowed per period.
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

impl Window {
    /// `limit` events per `period`.
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// The period in nanoseconds, saturating at `i64::MAX`.
    pub fn period_nanos(&self) -> i64 {
        i64::try_from(self.period.whole_nanoseconds()).unwrap_or(i64::MAX)
    }
}

/// The outcome of one decision: what a response needs (`RateLimit-*` and `Retry-After`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the event may happen (and, for a hit, was recorded).
    pub allowed: bool,
    /// The window's limit.
    pub limit: u32,
    /// Events left in the window after this one.
    pub remaining: u32,
    /// Until the oldest recorded event leaves the window (zero when none is recorded).
    pub reset_after: Duration,
}

impl Decision {
    /// When a denied client may try again: the time until a slot frees. `None` when allowed.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then_some(self.reset_after)
    }
}

/// The sliding-log algorithm, the same in every adapter: `log` holds the instants (Unix
/// nanoseconds) of recorded events. If fewer than `limit` of them are inside the window the event
/// is allowed and, when `record`, appended; a hit also drops the instants that left the window.
/// A denied event is never recorded, so the log never holds more than `limit` instants and a flood
/// costs nothing to store. Instants after `now` (another process's clock running ahead) still
/// count: a slow clock must never erase what others recorded.
///
/// A peek (`record = false`) changes nothing, so a log may be read with a shorter window or a
/// smaller limit ("3 failures in the hour" over a "10 per hour" log). Hits on one key must always
/// use the same period: a hit prunes by its own period.
pub fn decide(log: &mut Vec<i64>, window: Window, now: OffsetDateTime, record: bool) -> Decision {
    let now_ns = unix_nanos(now);
    let start = now_ns.saturating_sub(window.period_nanos());
    if record {
        log.retain(|t| *t > start);
    }
    let live = || log.iter().filter(|t| **t > start);
    let decision = conclude(
        live().count() as u64,
        live().min().copied(),
        window,
        now_ns,
        record,
    );
    if decision.allowed && record {
        log.push(now_ns);
    }
    decision
}

/// The arithmetic half of [`decide`], for stores that keep the log elsewhere (a Redis script
/// counts and finds the oldest instant, then records exactly when the result is `allowed`):
/// `live` instants are inside the window (after pruning, for a hit), `oldest` is the earliest of
/// them, `now_ns` is [`unix_nanos`] of now.
pub fn conclude(
    live: u64,
    oldest: Option<i64>,
    window: Window,
    now_ns: i64,
    record: bool,
) -> Decision {
    let allowed = live < u64::from(window.limit);
    let mut used = live;
    let mut oldest = oldest;
    if allowed && record {
        used = used.saturating_add(1);
        oldest = Some(oldest.map_or(now_ns, |o| o.min(now_ns)));
    }
    let reset_after = oldest
        .map(|o| {
            Duration::nanoseconds(
                o.saturating_add(window.period_nanos())
                    .saturating_sub(now_ns)
                    .max(0),
            )
        })
        .unwrap_or(Duration::ZERO);
    Decision {
        allowed,
        limit: window.limit,
        remaining: window
            .limit
            .saturating_sub(u32::try_from(used).unwrap_or(u32::MAX)),
        reset_after,
    }
}

/// Unix nanoseconds of `t`, saturating (the unit of every log).
pub fn unix_nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// What a limit is counted against: 32 bytes of HMAC-SHA256 over the limit's class and subject,
/// under a server secret. A store (or a dump of it) sees neither addresses nor emails, and keys
/// have one fixed, path-safe shape.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LimitKey([u8; 32]);

impl LimitKey {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters: a file name or a Redis key suffix.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl From<[u8; 32]> for LimitKey {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LimitKey({}…)", &self.to_hex()[..12])
    }
}

/// Derives [`LimitKey`]s under a secret.
pub struct KeyHasher {
    secret: SecretBox<[u8; 32]>,
}

impl KeyHasher {
    /// Keys under `secret`.
    pub fn new(secret: SecretBox<[u8; 32]>) -> Self {
        Self { secret }
    }

    /// The key of `subject` (a network's text form, a normalised email) for the limit `class`
    /// (e.g. `login/client`). Class and subject are length-prefixed, so no two pairs collide.
    pub fn key(&self, class: &str, subject: &str) -> LimitKey {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.secret.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        for part in [class, subject] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        LimitKey(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHasher(<redacted>)")
    }
}

/// Errors of a [`RateLimitStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed; callers fail closed (503), never "allow because the limiter is down".
    #[error("rate limit store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What a [`Step`] does to its key's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// [`decide`] with `record = true`.
    Hit,
    /// [`decide`] with `record = false`.
    Peek,
}

/// One decision of a [`RateLimitStore::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    /// The log.
    pub key: LimitKey,
    /// The window it is judged by.
    pub window: Window,
    /// Hit or peek.
    pub op: Op,
    /// A refusal of this step ends the run: no later step is judged or recorded.
    pub stop_if_refused: bool,
}

impl Step {
    /// A hit that ends the run when refused.
    pub const fn hit(key: LimitKey, window: Window) -> Self {
        Self {
            key,
            window,
            op: Op::Hit,
            stop_if_refused: true,
        }
    }

    /// A peek that ends the run when refused (a lock that is held, a challenge that is due).
    pub const fn peek(key: LimitKey, window: Window) -> Self {
        Self {
            key,
            window,
            op: Op::Peek,
            stop_if_refused: true,
        }
    }

    /// This step, but a refusal does not end the run.
    pub const fn and_go_on(self) -> Self {
        Self {
            stop_if_refused: false,
            ..self
        }
    }
}

/// The most steps one [`RateLimitStore::run`] takes; more is a caller's bug, answered with
/// [`StoreError::Backend`] and nothing recorded.
pub const MAX_STEPS: usize = 8;

/// Storage for sliding logs. Each method is ONE atomic operation of the backend (a mutex, a file
/// lock around one key's file, one Lua script): of N simultaneous hits against a limit L, exactly
/// L are allowed, across every process sharing the store.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Runs [`decide`] with `record = true` on the key's log, atomically.
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError>;
    /// Runs [`decide`] with `record = false`: would a hit be allowed? Records nothing.
    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError>;
    /// Forgets the key's log (e.g. failures after a successful login).
    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError>;
    /// Runs `steps` in order as ONE atomic operation over all their keys (keys may repeat): no
    /// other decision on any of those keys, in any process, interleaves. Returns one decision
    /// per step judged; the list ends at the first refused step with `stop_if_refused`, and the
    /// steps after it record nothing. This is what lets a login's checks before the password is
    /// verified (client budget, lock, challenge, reservation) cost one round trip and stay exact
    /// under concurrency. More than [`MAX_STEPS`] steps: an error, nothing recorded.
    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError>;
    /// Deletes logs that no window can see any more; returns how many. Stores that expire keys
    /// by themselves (memory sweeps, Redis TTLs) keep the default, which does nothing.
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let _ = now;
        Ok(0)
    }
}

#[cfg(test)]
mod tests;
