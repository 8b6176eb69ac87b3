//! The outgoing side: the port a payment provider's client implements, and the idempotency keys
//! that make a retried or double-submitted request create one thing.

use async_trait::async_trait;
use phaze_ids::UserId;
use sha2::{Digest, Sha256};
use std::fmt;
use time::OffsetDateTime;

use crate::event::USER_METADATA;

/// How long one idempotency key covers repeats of "this account subscribes to this price": a
/// double submit, a reload, a retry within it gets the same Checkout Session back.
pub const IDEMPOTENCY_WINDOW_SECS: i64 = 600;

/// The `Idempotency-Key` of one logical operation, the same for every retry of it. Derived, not
/// random, so two submits of one form (two requests, maybe two processes) agree on it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    fn derive(parts: &[&str], now: OffsetDateTime) -> Self {
        let window = now.unix_timestamp().div_euclid(IDEMPOTENCY_WINDOW_SECS);
        let mut h = Sha256::new();
        for part in parts {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(window.to_string().as_bytes());
        Self(format!("phaze-{}", hex::encode(h.finalize())))
    }

    /// "`user` (as Stripe's `customer`, if it has one) subscribes to `price`", within the current
    /// window. The customer is part of it because it is part of the request: Stripe refuses a
    /// key reused with other parameters. Two submits that straddle a window's edge get two keys
    /// (and two Checkout Sessions, of which at most one is paid for).
    pub fn checkout(
        user: &UserId,
        customer: Option<&str>,
        price: &str,
        now: OffsetDateTime,
    ) -> Self {
        Self::derive(
            &["checkout", &user.to_string(), customer.unwrap_or(""), price],
            now,
        )
    }

    /// "`user` opens the billing portal of `customer`", within the current window.
    pub fn billing_portal(user: &UserId, customer: &str, now: OffsetDateTime) -> Self {
        Self::derive(&["billing_portal", &user.to_string(), customer], now)
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

/// A Checkout Session to create: a subscription to one price for one account.
#[derive(Clone, Debug)]
pub struct CheckoutRequest {
    /// The account: `client_reference_id`, and [`USER_METADATA`] on the session and on the
    /// subscription it creates, so every later event finds the account.
    pub user: UserId,
    /// The Stripe price id of the plan.
    pub price: String,
    /// The account's Stripe customer, if it has one (a returning subscriber).
    pub customer: Option<String>,
    /// Where Stripe sends the browser after payment.
    pub success_url: String,
    /// Where Stripe sends the browser if the customer gives up.
    pub cancel_url: String,
    /// The same for every retry and double submit.
    pub idempotency_key: IdempotencyKey,
}

impl CheckoutRequest {
    /// The request's form fields, as Stripe's API takes them.
    pub fn form(&self) -> Vec<(String, String)> {
        let user = self.user.to_string();
        let mut form = vec![
            ("mode".to_owned(), "subscription".to_owned()),
            ("line_items[0][price]".to_owned(), self.price.clone()),
            ("line_items[0][quantity]".to_owned(), "1".to_owned()),
            ("client_reference_id".to_owned(), user.clone()),
            ("success_url".to_owned(), self.success_url.clone()),
            ("cancel_url".to_owned(), self.cancel_url.clone()),
            (format!("metadata[{USER_METADATA}]"), user.clone()),
            ("metadata[phaze_price]".to_owned(), self.price.clone()),
            (
                format!("subscription_data[metadata][{USER_METADATA}]"),
                user,
            ),
        ];
        if let Some(customer) = &self.customer {
            form.push(("customer".to_owned(), customer.clone()));
        }
        form
    }
}

/// A Billing Portal session to create for a customer.
#[derive(Clone, Debug)]
pub struct BillingPortalRequest {
    /// The Stripe customer.
    pub customer: String,
    /// Where the portal's "return" link goes.
    pub return_url: String,
    /// The same for every retry.
    pub idempotency_key: IdempotencyKey,
}

impl BillingPortalRequest {
    /// The request's form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        vec![
            ("customer".to_owned(), self.customer.clone()),
            ("return_url".to_owned(), self.return_url.clone()),
        ]
    }
}

/// A page hosted by the provider, to send the browser to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hosted {
    /// The provider's id of the session.
    pub id: String,
    /// Its URL (`https://checkout.stripe.com/…`).
    pub url: String,
}

/// Why the provider could not do it.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Unreachable, timed out, or failing (5xx) after every retry.
    #[error("payment provider unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The provider refused the request (4xx): a configuration error, such as an unknown price.
    #[error("payment provider refused the request ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The provider's message, for the log.
        message: String,
    },
    /// An answer that is not what the API documents.
    #[error("unexpected answer from the payment provider: {0}")]
    Invalid(String),
}

/// A payment provider's API. Its futures need not be `Send`: the adapter for actix-web keeps one
/// HTTP client per worker thread, as actix's client is.
#[async_trait(?Send)]
pub trait PaymentGateway: Send + Sync {
    /// Creates a Checkout Session.
    async fn checkout(&self, request: &CheckoutRequest) -> Result<Hosted, GatewayError>;

    /// Creates a Billing Portal session.
    async fn billing_portal(&self, request: &BillingPortalRequest) -> Result<Hosted, GatewayError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(t).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    #[test]
    fn one_operation_has_one_key_within_its_window_and_another_after() {
        let user = UserId::generate();
        let t = 1_767_225_600; // a multiple of the window
        let key = IdempotencyKey::checkout(&user, None, "price_1", at(t));
        assert_eq!(
            key,
            IdempotencyKey::checkout(&user, None, "price_1", at(t + 599))
        );
        assert_ne!(
            key,
            IdempotencyKey::checkout(&user, None, "price_1", at(t + 600))
        );
        assert_ne!(key, IdempotencyKey::checkout(&user, None, "price_2", at(t)));
        assert_ne!(
            key,
            IdempotencyKey::checkout(&UserId::generate(), None, "price_1", at(t))
        );
        assert_ne!(
            key,
            IdempotencyKey::checkout(&user, Some("cus_1"), "price_1", at(t)),
            "a customer is part of the request"
        );
        assert_ne!(
            key,
            IdempotencyKey::billing_portal(&user, "price_1", at(t)),
            "operations are kept apart"
        );
        // Stripe takes keys of up to 255 characters.
        assert!(key.as_str().len() <= 255);
    }

    #[test]
    fn a_checkout_names_the_account_everywhere_an_event_will_look() {
        let user = UserId::generate();
        let r = CheckoutRequest {
            user,
            price: "price_1".into(),
            customer: None,
            success_url: "https://portal.example/billing?done=1".into(),
            cancel_url: "https://portal.example/billing".into(),
            idempotency_key: IdempotencyKey::checkout(&user, None, "price_1", at(0)),
        };
        let form = r.form();
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let id = user.to_string();
        assert_eq!(get("client_reference_id"), Some(id.as_str()));
        assert_eq!(get("metadata[phaze_user]"), Some(id.as_str()));
        assert_eq!(
            get("subscription_data[metadata][phaze_user]"),
            Some(id.as_str())
        );
        assert_eq!(get("metadata[phaze_price]"), Some("price_1"));
        assert_eq!(get("mode"), Some("subscription"));
        assert_eq!(get("customer"), None);
    }
}
