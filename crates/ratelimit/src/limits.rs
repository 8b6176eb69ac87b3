//! [`Limits`]: every limit of a portal over one [`RateLimitStore`], as the operations a request
//! handler calls: spend a budget, and the whole login sequence as one call ([`Limits::login`]).
//!
//! The login sequence, in order: the client network's login budget, the device cookie (which
//! picks the counter), the counter's lock, the challenge when one is due, the reservation of a
//! judged attempt, then the credential check (passed in, so this crate does not depend on how
//! credentials are checked), then the outcome: a success clears the counter and issues a device
//! cookie, a failure may lock the counter and say that the next attempt needs a challenge. The
//! checks before the credentials are one atomic [`RateLimitStore::run`]; the outcome is one more
//! store operation at most. Every refusal and lockout is logged with target `security`, naming
//! identifiers only by a keyed hash.

use phaze_events::{Events, LockScope, SecurityEvent};
use secrecy::SecretBox;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::{
    client_network, Budget, Challenge, ChallengeIssuer, Counter, Decision, DeviceCookies,
    KeyHasher, LoginGuard, RateLimitPolicy, RateLimitStore, Step, StoreError,
};

/// The secrets of [`Limits`], 32 bytes each, independent of one another.
pub struct LimitKeys {
    /// Derives the store keys (so a store holds no address and no email) and log hashes.
    pub keys: SecretBox<[u8; 32]>,
    /// Signs device cookies.
    pub devices: SecretBox<[u8; 32]>,
    /// Signs challenges.
    pub challenges: SecretBox<[u8; 32]>,
}

/// Why a limited operation did not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// Over the limit: answer 429 with `Retry-After` from the decision.
    #[error("rate limited")]
    Limited(Decision),
    /// The store failed: fail closed (503), never "allow because the limiter is unreachable".
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A login attempt, as submitted.
#[derive(Clone, Copy, Debug)]
pub struct LoginAttempt<'a> {
    /// The client's address (its network's budget is spent).
    pub client: IpAddr,
    /// The identifier as typed; normalised here ([`identifier`]).
    pub identifier: &'a str,
    /// The device cookie's value, if the browser sent one.
    pub device_cookie: Option<&'a str>,
    /// The answer to a challenge (`<token>.<counter>`), if the form carried one.
    pub challenge_answer: Option<&'a str>,
}

/// What the credential check found.
#[derive(Debug)]
pub enum Verdict<T> {
    /// The credentials are right (even if the account cannot log in yet, e.g. unverified): the
    /// attempt was no guess, so the counter is cleared.
    Right(T),
    /// Wrong identifier or password (one answer for both).
    Wrong,
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome<T> {
    /// The credentials were right. `device_cookie` is a new device cookie value for this
    /// identifier, for the browser to keep.
    Right {
        /// What the check returned.
        value: T,
        /// A device cookie value bound to the identifier.
        device_cookie: String,
    },
    /// The credentials were wrong; `challenge` is set when the next attempt needs one.
    Wrong {
        /// The challenge for the next attempt's form.
        challenge: Option<Challenge>,
    },
    /// A solved challenge is needed first; the credentials were not checked.
    ChallengeRequired(Challenge),
    /// The client's budget is spent or the counter is locked: 429, `Retry-After` from the
    /// decision; the credentials were not checked.
    Limited(Decision),
}

/// Why [`Limits::login`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError<E> {
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The credential check failed (not a wrong password: an outage, say).
    #[error("credential check failed")]
    Check(#[source] E),
}

/// The subject failures are counted against: the email's one spelling
/// ([`phaze_sanitize::fold_email`]), or for input that is not an email the trimmed, lower-cased
/// text; at most 320 characters either way. Unknown and malformed identifiers are counted
/// exactly like real ones, and no two spellings of one mailbox are two counters.
pub fn identifier(raw: &str) -> String {
    phaze_sanitize::fold_email(raw)
        .unwrap_or_else(|| raw.trim().to_lowercase())
        .chars()
        .take(320)
        .collect()
}

/// Every limit of a portal over one store; see the module doc.
pub struct Limits {
    store: Arc<dyn RateLimitStore>,
    keys: KeyHasher,
    policy: RateLimitPolicy,
    guard: LoginGuard,
    challenges: ChallengeIssuer,
    devices: DeviceCookies,
    events: Events,
}

impl Limits {
    /// The limits of `policy` over `store`, under `keys`.
    pub fn new(store: Arc<dyn RateLimitStore>, keys: LimitKeys, policy: RateLimitPolicy) -> Self {
        let copy = |k: &SecretBox<[u8; 32]>| {
            SecretBox::new(Box::new(*secrecy::ExposeSecret::expose_secret(k)))
        };
        let guard = LoginGuard::new(
            store.clone(),
            KeyHasher::new(copy(&keys.keys)),
            policy.login(),
        );
        Self {
            challenges: ChallengeIssuer::new(
                keys.challenges,
                policy.challenge_difficulty_bits,
                policy.challenge_ttl(),
            ),
            devices: DeviceCookies::new(keys.devices),
            keys: KeyHasher::new(keys.keys),
            guard,
            store,
            policy,
            events: Events::default(),
        }
    }

    /// Emits the limits' security events (failed logins, lockouts, challenges, refusals)
    /// through `events` instead of only the log.
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// The policy in force.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// The login guard, for callers that need its single steps.
    pub fn guard(&self) -> &LoginGuard {
        &self.guard
    }

    /// The challenge issuer.
    pub fn challenges(&self) -> &ChallengeIssuer {
        &self.challenges
    }

    fn network(&self, client: IpAddr) -> String {
        client_network(
            client,
            self.policy.client_v4_prefix,
            self.policy.client_v6_prefix,
        )
        .to_string()
    }

    /// Records one event of a client budget for `client`'s network, or refuses it.
    pub async fn spend(
        &self,
        budget: Budget,
        client: IpAddr,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        self.spend_on(budget, &self.network(client), now).await
    }

    /// Records one event of an account budget for the account `user` (an opaque id), or refuses
    /// it.
    pub async fn spend_for_account(
        &self,
        budget: Budget,
        user: &str,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        self.spend_on(budget, user, now).await
    }

    async fn spend_on(
        &self,
        budget: Budget,
        subject: &str,
        now: OffsetDateTime,
    ) -> Result<Decision, LimitError> {
        let key = self.keys.key(budget.class(), subject);
        let decision = self
            .store
            .hit(&key, self.policy.window(budget), now)
            .await?;
        if !decision.allowed {
            self.limited(budget, subject, &decision);
            return Err(LimitError::Limited(decision));
        }
        Ok(decision)
    }

    /// What security events say about a counter: a keyed hash (16 hex digits) that lets an
    /// operator correlate events of one identifier without the log ever holding an address.
    pub fn log_hash(&self, counter: &Counter<'_>) -> String {
        let key = match counter {
            Counter::Identifier(id) => self.keys.key("log/identifier", id),
            Counter::Device(nonce) => self.keys.key("log/device", &hex::encode(nonce)),
        };
        key.to_hex()[..16].to_owned()
    }

    /// One login attempt, start to end; see the module doc. `check` runs only when every limit
    /// allows it, and at most once.
    pub async fn login<T, E, F, Fut>(
        &self,
        attempt: LoginAttempt<'_>,
        now: OffsetDateTime,
        check: F,
    ) -> Result<LoginOutcome<T>, LoginError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Verdict<T>, E>>,
    {
        let identifier = identifier(attempt.identifier);
        // A browser that logged in to this identifier before counts its failures on its own.
        let device = attempt
            .device_cookie
            .and_then(|c| self.devices.verify(c, &identifier));
        let counter = match &device {
            Some(nonce) => Counter::Device(nonce),
            None => Counter::Identifier(&identifier),
        };
        let client = self.network(attempt.client);
        let reservation = match self
            .gate(
                &counter,
                &identifier,
                (attempt.client, &client),
                attempt.challenge_answer,
                now,
            )
            .await?
        {
            Ok(reservation) => reservation,
            Err(refusal) => return Ok(refusal),
        };
        match check().await.map_err(LoginError::Check)? {
            Verdict::Right(value) => {
                self.guard.succeeded(&counter).await?;
                Ok(LoginOutcome::Right {
                    value,
                    device_cookie: self.devices.issue(&identifier),
                })
            }
            Verdict::Wrong => {
                self.events.emit(SecurityEvent::LoginFailed {
                    client: attempt.client,
                    identifier: self.log_hash(&counter),
                });
                if self.guard.failed(&counter, &reservation, now).await? {
                    let scope = match counter {
                        Counter::Identifier(_) => LockScope::Identifier,
                        Counter::Device(_) => LockScope::Device,
                    };
                    self.events.emit(SecurityEvent::LockoutStarted {
                        identifier: self.log_hash(&counter),
                        scope,
                    });
                }
                // The reservation says how many attempts the log holds, this one included: once
                // that reaches the challenge threshold, the page carries a challenge, so the next
                // attempt can be solved before it is sent.
                let used = reservation.limit.saturating_sub(reservation.remaining);
                let challenge = (device.is_none() && used >= self.guard.policy().challenge_after)
                    .then(|| self.challenges.issue(&identifier, now));
                Ok(LoginOutcome::Wrong { challenge })
            }
        }
    }

    /// The checks before the credentials, as one atomic run: the client's budget, the counter's
    /// lock, the challenge (a solved one's nonce is used up, or without one the challenge
    /// threshold is peeked), and the reservation of a judged attempt. `Ok(reservation)` lets
    /// the credentials be checked; `Err(outcome)` is the refusal to answer with.
    async fn gate<T>(
        &self,
        counter: &Counter<'_>,
        identifier: &str,
        (ip, client): (IpAddr, &str),
        answer: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, LoginOutcome<T>>, StoreError> {
        let keys = self.guard.counter_keys(counter);
        let mut steps = vec![
            Step::hit(
                self.keys.key(Budget::Login.class(), client),
                self.policy.window(Budget::Login),
            ),
            Step::peek(keys.lock, self.guard.lock_window()),
        ];
        let mut challenge_step = None;
        if matches!(counter, Counter::Identifier(_)) {
            challenge_step = Some(steps.len());
            // A forged, expired or misdirected answer is no answer: the threshold decides.
            let solved = answer
                .filter(|a| !a.is_empty())
                .and_then(|a| self.challenges.verify(identifier, a, now).ok());
            steps.push(match solved {
                Some(nonce) => Step::hit(
                    self.guard.challenge_key(&nonce),
                    crate::Window::new(1, self.challenges.ttl()),
                ),
                None => Step::peek(keys.attempts, self.guard.challenge_window()),
            });
        }
        let reserve = steps.len();
        steps.push(Step::hit(keys.attempts, self.guard.attempts_window(&keys)));

        let decisions = self.store.run(&steps, now).await?;
        let refused = decisions.iter().position(|d| !d.allowed);
        match refused {
            None if decisions.len() == steps.len() => Ok(Ok(decisions[reserve])),
            None => Err(StoreError::Backend(
                "the store judged fewer steps than it was given".into(),
            )),
            Some(0) => {
                self.limited(Budget::Login, client, &decisions[0]);
                Ok(Err(LoginOutcome::Limited(decisions[0])))
            }
            Some(1) => {
                self.events.emit(SecurityEvent::LockedOutAttempt {
                    client: ip,
                    identifier: self.log_hash(counter),
                });
                Ok(Err(LoginOutcome::Limited(decisions[1])))
            }
            Some(i) if Some(i) == challenge_step => {
                // A full log whose lock has ended needs no challenge (the owner starts afresh):
                // rare, so it is asked separately, and then the attempt is reserved on its own.
                if answer.is_none() && !self.guard.challenge_required(identifier, now).await? {
                    return self.reserve_alone(counter, now).await;
                }
                self.events.emit(SecurityEvent::ChallengeIssued {
                    client: ip,
                    identifier: self.log_hash(counter),
                });
                Ok(Err(LoginOutcome::ChallengeRequired(
                    self.challenges.issue(identifier, now),
                )))
            }
            Some(_) => Ok(
                match self
                    .guard
                    .reserve_after_refusal(counter, decisions[reserve], now)
                    .await?
                {
                    Ok(reservation) => Ok(reservation),
                    Err(lock) => Err(LoginOutcome::Limited(lock)),
                },
            ),
        }
    }

    async fn reserve_alone<T>(
        &self,
        counter: &Counter<'_>,
        now: OffsetDateTime,
    ) -> Result<Result<Decision, LoginOutcome<T>>, StoreError> {
        Ok(match self.guard.reserve_attempt(counter, now).await? {
            Ok(reservation) => Ok(reservation),
            Err(lock) => Err(LoginOutcome::Limited(lock)),
        })
    }

    /// Deletes logs no window can see any more (a no-op for stores that expire by themselves).
    pub async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        self.store.purge_idle(now).await
    }
}

impl Limits {
    /// Reports a refusal of `budget`: networks as they are, account ids (opaque), never an email.
    fn limited(&self, budget: Budget, subject: &str, decision: &Decision) {
        self.events.emit(SecurityEvent::RateLimited {
            budget: budget.class(),
            subject: subject.to_owned(),
            retry_after_secs: decision.reset_after.whole_seconds(),
        });
    }
}
