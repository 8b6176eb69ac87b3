//! A webhook delivery, end to end: verify the signature on the raw bytes, parse the event, claim
//! its id, apply it to the subscription it is about, mark it applied. A handler calls
//! [`Webhooks::deliver`] once and maps the [`Delivery`] or the [`WebhookError`] to a status.

use phaze_events::{Events, SecurityEvent};
use phaze_ids::UserId;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

use crate::event::{Event, EventError, Head};
use crate::ports::{Claim, ClaimToken, ProcessedEvents, StoreError, Subscriptions};
use crate::signature::{SignatureError, Verified, WebhookVerifier};
use crate::subscription::{apply, customer_of, user_named_by, Status, SubscriptionRecord};

/// How many times a compare-and-set is retried against parallel writers of one record.
const CAS_ATTEMPTS: usize = 16;

/// How many applied event ids a process remembers (about 100 bytes each); when full it forgets
/// them all and learns again from the store.
const REMEMBERED: usize = 65_536;

/// How a delivery ended. Every variant is a `200` to Stripe except [`Delivery::InProgress`].
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The event changed the account's subscription.
    Applied {
        /// The account.
        user: UserId,
        /// Its status now.
        status: Status,
    },
    /// Taken, but it changed nothing (older than the state, or already reflected).
    Unchanged,
    /// This event id was applied before: nothing done.
    Duplicate,
    /// Another delivery of this id is being applied now: answer non-2xx so Stripe retries, and
    /// the retry finds it applied, or takes it over if that delivery died.
    InProgress,
    /// A type the portal does not act on.
    Ignored,
    /// About a customer no account is linked to (e.g. one made in Stripe's dashboard).
    Unroutable,
}

/// Why a delivery was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Signature missing, wrong or stale: `400`, and a security event.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Signed, but not an event we can read: `400`.
    #[error(transparent)]
    Event(#[from] EventError),
    /// A store failed: the claim was released; answer `503` so Stripe retries.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Parallel writers kept winning the record: as a store failure.
    #[error("subscription record contended")]
    Contended,
}

/// Settings of [`Webhooks`].
#[derive(Clone, Copy, Debug)]
pub struct WebhookPolicy {
    /// How long a claim is held before another delivery may take it over (60 s).
    pub claim_lease: Duration,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            claim_lease: Duration::seconds(60),
        }
    }
}

/// Webhook deliveries over the two stores.
///
/// Ids this process has seen applied are remembered: "applied" is final (until the id is purged,
/// after which a duplicate is stale anyway), so a retry or replay of one of them is answered
/// without a store operation. Any other id goes to the store, which all processes share.
#[derive(Clone)]
pub struct Webhooks {
    verifier: WebhookVerifier,
    events: Arc<dyn ProcessedEvents>,
    subscriptions: Arc<dyn Subscriptions>,
    policy: WebhookPolicy,
    applied: Arc<Mutex<HashSet<String>>>,
    security: Events,
}

impl Webhooks {
    /// Deliveries checked by `verifier`, claimed in `events`, applied to `subscriptions`.
    pub fn new(
        verifier: WebhookVerifier,
        events: Arc<dyn ProcessedEvents>,
        subscriptions: Arc<dyn Subscriptions>,
        policy: WebhookPolicy,
    ) -> Self {
        Self {
            verifier,
            events,
            subscriptions,
            policy,
            applied: Arc::default(),
            security: Events::default(),
        }
    }

    /// Reports lost claims through `events`.
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.security = events;
        self
    }

    fn seen_applied(&self, id: &str) -> bool {
        self.applied
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    fn remember_applied(&self, id: &str) {
        let mut applied = self.applied.lock().unwrap_or_else(PoisonError::into_inner);
        if applied.len() >= REMEMBERED {
            applied.clear();
        }
        applied.insert(id.to_owned());
    }

    /// One delivery: `signature` is the `Stripe-Signature` header, `body` the raw bytes.
    ///
    /// # Errors
    /// See [`WebhookError`].
    pub async fn deliver(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<Delivery, WebhookError> {
        let verified = self.verifier.verify(signature, body, now)?;
        self.apply(verified, now).await
    }

    /// Applies a verified body (see [`Webhooks::deliver`]).
    ///
    /// # Errors
    /// See [`WebhookError`].
    pub async fn apply(
        &self,
        verified: Verified<'_>,
        now: OffsetDateTime,
    ) -> Result<Delivery, WebhookError> {
        // The envelope first: an ignored type or a remembered duplicate needs no more.
        let head = Head::parse(verified)?;
        if !head.acted_on() {
            return Ok(Delivery::Ignored);
        }
        if self.seen_applied(head.id()) {
            return Ok(Delivery::Duplicate);
        }
        let event = Event::read(head)?;
        let token = ClaimToken::generate();
        match self
            .events
            .claim(&event.id, &token, now, self.policy.claim_lease)
            .await?
        {
            Claim::Applied => {
                self.remember_applied(&event.id);
                return Ok(Delivery::Duplicate);
            }
            Claim::Held => return Ok(Delivery::InProgress),
            Claim::Won => {}
        }
        match self.effect(&event).await {
            Ok(delivery) => {
                if self.events.mark_applied(&event.id, &token, now).await? {
                    self.remember_applied(&event.id);
                } else {
                    // The lease ran out before the event was marked applied.
                    self.security.emit(SecurityEvent::WebhookClaimLost {
                        event_id: event.id.clone(),
                    });
                }
                Ok(delivery)
            }
            Err(e) => {
                if let Err(release) = self.events.release(&event.id, &token).await {
                    // The lease runs out instead, and a retry takes the claim over.
                    tracing::error!(error = %release, id = %event.id, "claim not released");
                }
                Err(e)
            }
        }
    }

    async fn effect(&self, event: &Event) -> Result<Delivery, WebhookError> {
        let linked = match customer_of(event) {
            Some(c) => self.subscriptions.user_for_customer(c).await?,
            None => None,
        };
        let user = match (user_named_by(event), linked) {
            // The event names one account and its customer belongs to another: the records and
            // Stripe disagree. Applying it would move the customer; refusing it would make Stripe
            // retry for days. It is acknowledged, logged, and left to an operator.
            (Some(named), Some(owner)) if named != owner => {
                tracing::warn!(id = %event.id, named = %named, owner = %owner,
                    "webhook event names another account than its customer's: ignored");
                return Ok(Delivery::Unroutable);
            }
            (Some(named), _) => Some(named),
            (None, linked) => linked,
        };
        let Some(user) = user else {
            tracing::warn!(id = %event.id, "webhook event for no known account: ignored");
            return Ok(Delivery::Unroutable);
        };
        for _ in 0..CAS_ATTEMPTS {
            let (current, version) = self
                .subscriptions
                .get(&user)
                .await?
                .unwrap_or_else(|| (SubscriptionRecord::new(user), 0));
            let Some(next) = apply(&current, event) else {
                return Ok(Delivery::Unchanged);
            };
            if self.subscriptions.put(&next, version).await? {
                return Ok(Delivery::Applied {
                    user,
                    status: next.status,
                });
            }
        }
        Err(WebhookError::Contended)
    }
}
