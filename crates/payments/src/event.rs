//! Typed webhook events, parsed only from a [`Verified`] body: the types the portal acts on, and
//! every other type acknowledged and ignored. Unknown fields are ignored (Stripe adds fields to
//! every API version); a known field of the wrong type is an [`EventError`] (a `400`).
//!
//! Where Stripe moved a field between API versions both places are read: an invoice's
//! subscription (`subscription`, or `parent.subscription_details.subscription` since 2025-03-31)
//! and a subscription's period end (`current_period_end`, or on its items since 2025-03-31).

use phaze_ids::UserId;
use serde::Deserialize;
use std::collections::HashMap;

use crate::signature::Verified;

/// The largest body parsed, in bytes; a real event is a few KiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The metadata key carrying the account id, set on every Checkout Session and subscription
/// this crate creates, so a subscription's events find their account whatever order they arrive in.
pub const USER_METADATA: &str = "phaze_user";

/// Why a verified body is not an event we can take.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// Over [`MAX_BODY_BYTES`].
    #[error("event body too large")]
    TooLarge,
    /// Not JSON, nested too deep, or a field of the wrong type (the detail is for the log).
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// One event: its id (the unit of exactly-once), its `created` time, and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `evt_…`.
    pub id: String,
    /// Stripe's `created`, in Unix seconds: orders the events of one subscription.
    pub created: i64,
    /// What happened.
    pub kind: EventKind,
}

/// The events the portal acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `checkout.session.completed`: the account (`client_reference_id`) is now this customer,
    /// with this subscription, active.
    CheckoutCompleted {
        /// `client_reference_id`, if it is an account id.
        user: Option<UserId>,
        /// `customer`.
        customer: Option<String>,
        /// `subscription`.
        subscription: Option<String>,
        /// The price bought (metadata set at checkout).
        price: Option<String>,
    },
    /// `customer.subscription.created|updated|deleted`.
    Subscription {
        /// The subscription's id.
        subscription: String,
        /// Its customer.
        customer: Option<String>,
        /// The account in its metadata, if set.
        user: Option<UserId>,
        /// Stripe's status (`canceled` for a deletion).
        status: String,
        /// The price of its first item.
        price: Option<String>,
        /// The end of the current period, in Unix seconds.
        current_period_end: Option<i64>,
    },
    /// `invoice.paid` (`paid: true`) or `invoice.payment_failed` (`paid: false`).
    Invoice {
        /// Whether the invoice was paid.
        paid: bool,
        /// Its customer.
        customer: Option<String>,
        /// The subscription it bills, if any.
        subscription: Option<String>,
        /// The account in the subscription's metadata, if Stripe copied it here.
        user: Option<UserId>,
    },
    /// Any other type: acknowledged, no effect.
    Ignored(String),
}

/// The envelope; `data` is skipped here (and read again, typed, for the types acted on), so no
/// event is ever parsed into a generic JSON tree.
#[derive(Debug, Deserialize)]
struct RawEvent {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    created: i64,
}

#[derive(Deserialize)]
struct WithObject<T> {
    data: DataOf<T>,
}

#[derive(Deserialize)]
struct DataOf<T> {
    object: T,
}

#[derive(Deserialize)]
struct RawCheckout {
    #[serde(default)]
    client_reference_id: Option<String>,
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct RawSubscription {
    id: String,
    #[serde(default)]
    customer: Option<String>,
    status: String,
    #[serde(default)]
    current_period_end: Option<i64>,
    #[serde(default)]
    items: Option<RawList<RawItem>>,
    #[serde(default, deserialize_with = "null_as_empty")]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct RawList<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    price: Option<RawPrice>,
    #[serde(default)]
    current_period_end: Option<i64>,
}

#[derive(Deserialize)]
struct RawPrice {
    id: String,
}

#[derive(Deserialize)]
struct RawInvoice {
    #[serde(default)]
    customer: Option<String>,
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
    #[serde(default)]
    parent: Option<RawInvoiceParent>,
}

#[derive(Deserialize)]
struct RawInvoiceParent {
    #[serde(default)]
    subscription_details: Option<RawSubscriptionDetails>,
}

#[derive(Deserialize)]
struct RawSubscriptionDetails {
    #[serde(default)]
    subscription: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    metadata: HashMap<String, String>,
}

/// Stripe documents some `metadata` as nullable: `null` reads as no metadata.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, String>, D::Error> {
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

fn invalid(e: impl std::fmt::Display) -> EventError {
    EventError::Invalid(e.to_string())
}

fn object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, EventError> {
    serde_json::from_slice::<WithObject<T>>(bytes)
        .map(|w| w.data.object)
        .map_err(invalid)
}

fn user_in(metadata: &HashMap<String, String>) -> Option<UserId> {
    metadata.get(USER_METADATA).and_then(|u| u.parse().ok())
}

/// The types the portal acts on.
const ACTED_ON: [&str; 6] = [
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_failed",
];

/// An event's envelope: its id, type and time, read without its data (a duplicate needs no more).
#[derive(Debug)]
pub struct Head<'a> {
    body: Verified<'a>,
    raw: RawEvent,
}

impl<'a> Head<'a> {
    /// Reads the envelope of a verified body.
    ///
    /// # Errors
    /// [`EventError::TooLarge`] over [`MAX_BODY_BYTES`]; [`EventError::Invalid`] for a body that
    /// is not an event envelope.
    pub fn parse(body: Verified<'a>) -> Result<Self, EventError> {
        let bytes = body.body();
        if bytes.len() > MAX_BODY_BYTES {
            return Err(EventError::TooLarge);
        }
        let raw: RawEvent = serde_json::from_slice(bytes).map_err(invalid)?;
        if raw.id.is_empty() || raw.id.len() > 255 || raw.id.chars().any(char::is_control) {
            return Err(invalid("bad event id"));
        }
        Ok(Self { body, raw })
    }

    /// The event id.
    pub fn id(&self) -> &str {
        &self.raw.id
    }

    /// Whether the portal acts on this type (the others are acknowledged and ignored).
    pub fn acted_on(&self) -> bool {
        ACTED_ON.contains(&self.raw.kind.as_str())
    }
}

impl Event {
    /// Parses a verified body.
    ///
    /// # Errors
    /// [`EventError::TooLarge`] over [`MAX_BODY_BYTES`]; [`EventError::Invalid`] for anything
    /// that is not an event of the shape Stripe sends (serde_json refuses nesting deeper than 128
    /// in the data of the types acted on; the data of other types is skipped without recursion).
    pub fn parse(body: Verified<'_>) -> Result<Self, EventError> {
        Self::read(Head::parse(body)?)
    }

    /// The whole event of `head`.
    ///
    /// # Errors
    /// As [`Event::parse`].
    pub fn read(head: Head<'_>) -> Result<Self, EventError> {
        let Head { body, raw } = head;
        let bytes = body.body();
        let kind = match raw.kind.as_str() {
            "checkout.session.completed" => {
                let o: RawCheckout = object(bytes)?;
                EventKind::CheckoutCompleted {
                    user: o.client_reference_id.and_then(|u| u.parse().ok()),
                    customer: o.customer,
                    subscription: o.subscription,
                    price: o.metadata.get("phaze_price").cloned(),
                }
            }
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted" => {
                let o: RawSubscription = object(bytes)?;
                let first = o.items.and_then(|i| i.data.into_iter().next());
                let status = if raw.kind == "customer.subscription.deleted" {
                    "canceled".to_owned()
                } else {
                    o.status
                };
                EventKind::Subscription {
                    user: user_in(&o.metadata),
                    subscription: o.id,
                    customer: o.customer,
                    status,
                    current_period_end: o
                        .current_period_end
                        .or_else(|| first.as_ref().and_then(|i| i.current_period_end)),
                    price: first.and_then(|i| i.price).map(|p| p.id),
                }
            }
            "invoice.paid" | "invoice.payment_failed" => {
                let o: RawInvoice = object(bytes)?;
                let details = o
                    .parent
                    .and_then(|p| p.subscription_details)
                    .or(o.subscription_details);
                EventKind::Invoice {
                    paid: raw.kind == "invoice.paid",
                    customer: o.customer,
                    subscription: o
                        .subscription
                        .or_else(|| details.as_ref().and_then(|d| d.subscription.clone())),
                    user: details.as_ref().and_then(|d| user_in(&d.metadata)),
                }
            }
            _ => EventKind::Ignored(raw.kind),
        };
        Ok(Event {
            id: raw.id,
            created: raw.created,
            kind,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::WebhookVerifier;
    use secrecy::SecretString;
    use time::{Duration, OffsetDateTime};

    const NOW: i64 = 1_767_225_600;

    fn parse(body: &str) -> Result<Event, EventError> {
        let v = WebhookVerifier::new(vec![SecretString::from("whsec_t")], Duration::minutes(5));
        let header = v.sign(body.as_bytes(), NOW).unwrap_or_default();
        let now = OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let verified = v.verify(Some(&header), body.as_bytes(), now);
        Event::parse(verified.unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn checkout_completed_names_the_account_customer_and_subscription() {
        let user = UserId::generate();
        let e = parse(&format!(
            r#"{{"id":"evt_1","type":"checkout.session.completed","created":5,"livemode":false,
            "data":{{"object":{{"id":"cs_1","object":"checkout.session","client_reference_id":"{user}",
            "customer":"cus_1","subscription":"sub_1","metadata":{{"phaze_price":"price_1"}},"new_field":[1]}}}}}}"#
        ))
        .unwrap();
        assert_eq!(e.id, "evt_1");
        assert_eq!(e.created, 5);
        assert_eq!(
            e.kind,
            EventKind::CheckoutCompleted {
                user: Some(user),
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                price: Some("price_1".into()),
            }
        );
    }

    #[test]
    fn subscription_events_read_status_price_and_period_in_either_api_version() {
        let user = UserId::generate();
        let old = parse(&format!(
            r#"{{"id":"evt_2","type":"customer.subscription.updated","created":6,"data":{{"object":{{
            "id":"sub_1","customer":"cus_1","status":"past_due","current_period_end":100,
            "metadata":{{"phaze_user":"{user}"}},"items":{{"object":"list","data":[{{"price":{{"id":"price_1"}}}}]}}}}}}}}"#
        ))
        .unwrap();
        let new = parse(
            r#"{"id":"evt_3","type":"customer.subscription.deleted","created":7,"data":{"object":{
            "id":"sub_1","customer":"cus_1","status":"active",
            "items":{"data":[{"price":{"id":"price_1"},"current_period_end":200}]}}}}"#,
        )
        .unwrap();
        assert_eq!(
            old.kind,
            EventKind::Subscription {
                subscription: "sub_1".into(),
                customer: Some("cus_1".into()),
                user: Some(user),
                status: "past_due".into(),
                price: Some("price_1".into()),
                current_period_end: Some(100),
            }
        );
        match new.kind {
            EventKind::Subscription {
                status,
                current_period_end,
                user,
                ..
            } => {
                assert_eq!(status, "canceled", "a deletion is a cancellation");
                assert_eq!(current_period_end, Some(200));
                assert_eq!(user, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn invoices_find_their_subscription_in_either_api_version() {
        let user = UserId::generate();
        let old = parse(
            r#"{"id":"evt_4","type":"invoice.payment_failed","created":8,"data":{"object":{
            "customer":"cus_1","subscription":"sub_1"}}}"#,
        )
        .unwrap();
        let new = parse(&format!(
            r#"{{"id":"evt_5","type":"invoice.paid","created":9,"data":{{"object":{{"customer":"cus_1",
            "parent":{{"type":"subscription_details","subscription_details":{{"subscription":"sub_2",
            "metadata":{{"phaze_user":"{user}"}}}}}}}}}}}}"#
        ))
        .unwrap();
        assert_eq!(
            old.kind,
            EventKind::Invoice {
                paid: false,
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                user: None,
            }
        );
        assert_eq!(
            new.kind,
            EventKind::Invoice {
                paid: true,
                customer: Some("cus_1".into()),
                subscription: Some("sub_2".into()),
                user: Some(user),
            }
        );
    }

    #[test]
    fn null_metadata_is_no_metadata() {
        let e = parse(
            r#"{"id":"evt_n","type":"invoice.paid","created":1,"data":{"object":{"customer":"cus_1",
            "subscription_details":{"subscription":"sub_1","metadata":null}}}}"#,
        )
        .unwrap();
        assert!(matches!(e.kind, EventKind::Invoice { user: None, .. }));
        let e = parse(
            r#"{"id":"evt_m","type":"checkout.session.completed","created":1,"data":{"object":{"metadata":null}}}"#,
        )
        .unwrap();
        assert!(matches!(
            e.kind,
            EventKind::CheckoutCompleted { price: None, .. }
        ));
    }

    #[test]
    fn other_types_are_acknowledged_and_ignored_whatever_their_data() {
        let e = parse(r#"{"id":"evt_6","type":"charge.refunded","created":1,"data":{"object":7}}"#)
            .unwrap();
        assert_eq!(e.kind, EventKind::Ignored("charge.refunded".into()));
        let e = parse(r#"{"id":"evt_7","type":"ping","created":1}"#).unwrap();
        assert_eq!(e.kind, EventKind::Ignored("ping".into()));
    }

    #[test]
    fn hostile_bodies_are_clear_errors() {
        let deep = |kind: &str| {
            format!(
                r#"{{"id":"evt_8","type":"{kind}","created":1,"data":{{"object":{{"customer":{}{}}}}}}}"#,
                "[".repeat(10_000),
                "]".repeat(10_000)
            )
        };
        let deep_known = deep("invoice.paid");
        let big = format!(
            r#"{{"id":"evt_9","type":"x","created":1,"pad":"{}"}}"#,
            "a".repeat(1 << 20)
        );
        let cases = [
            "",
            "not json",
            "[]",
            r#"{"id":"evt_1"}"#,
            r#"{"id":1,"type":"invoice.paid","created":1}"#,
            r#"{"id":"evt_1","type":"invoice.paid","created":"yesterday"}"#,
            r#"{"id":"evt_1","type":"invoice.paid","created":1.5}"#,
            r#"{"id":"","type":"invoice.paid","created":1}"#,
            r#"{"id":"evt\u0000","type":"invoice.paid","created":1}"#,
            r#"{"id":"evt_1","type":"invoice.paid","created":1}"#,
            r#"{"id":"evt_1","type":"invoice.paid","created":1,"data":{"object":{"customer":{"id":"cus_1"}}}}"#,
            r#"{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_1"}}}"#,
            r#"{"id":"evt_1","type":"customer.subscription.updated","created":1,"data":{"object":{"id":"sub_1","status":"active","current_period_end":"soon"}}}"#,
            deep_known.as_str(),
        ];
        for body in cases {
            assert!(
                matches!(parse(body), Err(EventError::Invalid(_))),
                "{body:.100}"
            );
        }
        assert!(matches!(parse(&big), Err(EventError::TooLarge)));
        // Under a type not acted on, the data is skipped without recursion: acknowledged, and the
        // stack is intact.
        assert_eq!(
            parse(&deep("x")).map(|e| e.kind).ok(),
            Some(EventKind::Ignored("x".into()))
        );
    }
}
