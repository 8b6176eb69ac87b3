//! Payments for Phaze: Stripe webhooks that take effect exactly once, and the subscription state
//! they drive.
//!
//! - [`WebhookVerifier`]: `Stripe-Signature` checked as Stripe's libraries check it (any `v1`
//!   under any configured secret, constant time, a tolerance both ways) on the raw body, before
//!   any JSON is read; its only product, [`Verified`], is what the event parser takes.
//! - [`Event`]: the event types the portal acts on, typed; every other type acknowledged and
//!   ignored.
//! - [`Webhooks::deliver`]: verify, parse, **claim the event id before any effect**
//!   ([`ProcessedEvents`]: one claim of any number of parallel ones wins; a claim whose holder
//!   died is taken over when its lease ends), apply, mark applied (or release on failure, so
//!   Stripe's retry applies it).
//! - [`subscription::apply`]: the state machine. Each record remembers the stamp (`created`, event
//!   id) of the last event that set it, so an older event never rolls the state back; applying an
//!   event twice changes nothing the second time.
//! - Ports: [`ProcessedEvents`], [`Subscriptions`] (compare-and-set by version),
//!   [`PaymentGateway`] (Checkout and Billing Portal sessions, with an [`IdempotencyKey`] that is
//!   the same for every retry and double submit of one operation).
//!
//! - [`Billing`]: the billing page's operations (overview, checkout, manage), and
//!   [`PaymentSettings`], the `[payments]` settings section.
//!
//! **Invariant:** no I/O, no clock (`now` is a parameter), no HTTP framework; nothing is applied
//! from a body whose signature was not verified.
//!
//! ```
//! use phaze_payments::{Status, WebhookVerifier, DEFAULT_TOLERANCE};
//! use secrecy::SecretString;
//! use time::OffsetDateTime;
//!
//! let verifier = WebhookVerifier::new(vec![SecretString::from("whsec_test")], DEFAULT_TOLERANCE);
//! let body = br#"{"id":"evt_1","type":"invoice.paid","created":1767225600}"#;
//! let now = OffsetDateTime::from_unix_timestamp(1_767_225_600)?;
//! let header = verifier.sign(body, now.unix_timestamp()).unwrap();
//! assert!(verifier.verify(Some(&header), body, now).is_ok());
//! // One byte changed, or five minutes and a second later: refused.
//! assert!(verifier.verify(Some(&header), b"{}", now).is_err());
//! assert!(verifier.verify(Some(&header), body, now + time::Duration::seconds(301)).is_err());
//! assert_eq!(Status::from_stripe("unpaid"), Status::PastDue);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod billing;
pub mod event;
pub mod gateway;
pub mod ports;
pub mod signature;
pub mod subscription;
pub mod webhooks;

pub use billing::{Billing, BillingError, Overview, PaymentSettings, Plan};
pub use event::{Event, EventError, EventKind};
pub use gateway::{
    BillingPortalRequest, CheckoutRequest, GatewayError, Hosted, IdempotencyKey, PaymentGateway,
};
pub use phaze_ids::UserId;
pub use ports::{Claim, ClaimToken, ProcessedEvents, StoreError, Subscriptions};
pub use signature::{SignatureError, Verified, WebhookVerifier, DEFAULT_TOLERANCE};
pub use subscription::{Stamp, Status, SubscriptionRecord};
pub use webhooks::{Delivery, WebhookError, WebhookPolicy, Webhooks};
