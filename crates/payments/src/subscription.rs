//! The subscription state machine: what an event does to an account's subscription record, as a
//! pure function, so every store applies exactly the same rules.
//!
//! Stripe does not deliver events in order, and retries an event for days. So each record keeps
//! the stamp (`created`, then the event id as a tie-break) of the last event that set its state,
//! and an event with an older stamp changes no state: a late `invoice.payment_failed` never turns
//! a renewed subscription back to `past_due`. Links (customer, subscription ids) are filled in by
//! any event, old or new, since they do not change once set.

use phaze_ids::UserId;
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::event::{Event, EventKind};

/// The subscription status the portal shows and decides access by (`/api/v1/me`'s `status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Never subscribed, or a checkout that did not complete.
    #[default]
    None,
    /// Paid up (Stripe: `active`, `trialing`).
    Active,
    /// Payment needed (Stripe: `past_due`, `unpaid`, `paused`).
    PastDue,
    /// Ended (Stripe: `canceled`, `incomplete_expired`).
    Canceled,
}

impl Status {
    /// Stripe's status, mapped explicitly; a status Stripe adds later is `None` (no access)
    /// until it is mapped here.
    pub fn from_stripe(status: &str) -> Self {
        match status {
            "active" | "trialing" => Status::Active,
            "past_due" | "unpaid" | "paused" => Status::PastDue,
            "canceled" | "incomplete_expired" => Status::Canceled,
            // `incomplete`: the first payment has not gone through.
            _ => Status::None,
        }
    }

    /// Active or past due: a subscription that runs (and is being billed).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Active | Status::PastDue)
    }

    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Active => "active",
            Status::PastDue => "past_due",
            Status::Canceled => "canceled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event sits in a subscription's history: `created`, then the id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Stamp {
    /// The event's `created`, Unix seconds.
    pub created: i64,
    /// The event id.
    pub event: String,
}

/// One account's subscription, as the stores keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionRecord {
    /// The account.
    pub user: UserId,
    /// Its Stripe customer, once a checkout completed.
    pub customer: Option<String>,
    /// Its Stripe subscription.
    pub subscription: Option<String>,
    /// The status.
    pub status: Status,
    /// The price subscribed to (a configured plan's Stripe price id).
    pub price: Option<String>,
    /// The end of the current period, Unix seconds.
    pub current_period_end: Option<i64>,
    /// The last event that set the state.
    pub last_event: Option<Stamp>,
}

impl SubscriptionRecord {
    /// A record with no subscription.
    pub fn new(user: UserId) -> Self {
        Self {
            user,
            customer: None,
            subscription: None,
            status: Status::None,
            price: None,
            current_period_end: None,
            last_event: None,
        }
    }
}

/// The account an event is about, from what the event itself says (its `client_reference_id` or
/// metadata); `None` when only the customer link can tell.
pub fn user_named_by(event: &Event) -> Option<UserId> {
    match &event.kind {
        EventKind::CheckoutCompleted { user, .. }
        | EventKind::Subscription { user, .. }
        | EventKind::Invoice { user, .. } => *user,
        EventKind::Ignored(_) => None,
    }
}

/// The customer an event is about, if it names one.
pub fn customer_of(event: &Event) -> Option<&str> {
    match &event.kind {
        EventKind::CheckoutCompleted { customer, .. }
        | EventKind::Subscription { customer, .. }
        | EventKind::Invoice { customer, .. } => customer.as_deref(),
        EventKind::Ignored(_) => None,
    }
}

/// What `event` makes of `current`: the new record, or `None` when it changes nothing (an
/// ignored type, an older stamp with nothing to link, an invoice of another subscription).
pub fn apply(current: &SubscriptionRecord, event: &Event) -> Option<SubscriptionRecord> {
    let stamp = Stamp {
        created: event.created,
        event: event.id.clone(),
    };
    let newer = current.last_event.as_ref().is_none_or(|last| stamp > *last);
    let mut next = current.clone();
    let set_state = |next: &mut SubscriptionRecord, status: Status| {
        if newer {
            next.status = status;
            next.last_event = Some(stamp.clone());
        }
    };
    match &event.kind {
        EventKind::Ignored(_) => return None,
        EventKind::CheckoutCompleted {
            customer,
            subscription,
            price,
            ..
        } => {
            link(&mut next.customer, customer);
            link(&mut next.subscription, subscription);
            if newer {
                if let Some(p) = price {
                    next.price = Some(p.clone());
                }
                if subscription.is_some() && *subscription != current.subscription {
                    next.subscription.clone_from(subscription);
                }
            }
            set_state(&mut next, Status::Active);
        }
        EventKind::Subscription {
            subscription,
            customer,
            status,
            price,
            current_period_end,
            ..
        } => {
            link(&mut next.customer, customer);
            let ours = current
                .subscription
                .as_ref()
                .is_none_or(|s| s == subscription);
            let status = Status::from_stripe(status);
            // Another subscription of the account that ended (a duplicate canceled, an old one
            // expiring) does not end the live one.
            if !ours && current.status.is_live() && !status.is_live() {
                return (next != *current).then_some(next);
            }
            if newer {
                // A newer live subscription of the account takes over (one per account).
                next.subscription = Some(subscription.clone());
                if price.is_some() {
                    next.price.clone_from(price);
                }
                if current_period_end.is_some() {
                    next.current_period_end = *current_period_end;
                }
            } else {
                link(&mut next.subscription, &Some(subscription.clone()));
            }
            set_state(&mut next, status);
        }
        EventKind::Invoice {
            paid,
            customer,
            subscription,
            ..
        } => {
            // A one-off invoice, or one of a subscription the account has since replaced, says
            // nothing about this subscription.
            let Some(subscription) = subscription else {
                return None;
            };
            if current
                .subscription
                .as_ref()
                .is_some_and(|s| s != subscription)
            {
                return None;
            }
            link(&mut next.customer, customer);
            link(&mut next.subscription, &Some(subscription.clone()));
            // Invoices move a live subscription between paid and due; they never revive one
            // that ended (an old invoice paid after cancellation) nor start one (the checkout or
            // subscription event does).
            if current.status.is_live() {
                set_state(
                    &mut next,
                    if *paid {
                        Status::Active
                    } else {
                        Status::PastDue
                    },
                );
            }
        }
    }
    (next != *current).then_some(next)
}

/// Fills a link that is not set yet; a set link is never overwritten by an older event.
fn link(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, created: i64, kind: EventKind) -> Event {
        Event {
            id: id.into(),
            created,
            kind,
        }
    }

    fn sub(status: &str, created: i64, id: &str) -> Event {
        event(
            id,
            created,
            EventKind::Subscription {
                subscription: "sub_1".into(),
                customer: Some("cus_1".into()),
                user: None,
                status: status.into(),
                price: Some("price_1".into()),
                current_period_end: Some(created + 1000),
            },
        )
    }

    fn invoice(paid: bool, created: i64, id: &str, subscription: &str) -> Event {
        event(
            id,
            created,
            EventKind::Invoice {
                paid,
                customer: Some("cus_1".into()),
                subscription: Some(subscription.into()),
                user: None,
            },
        )
    }

    fn run(events: &[Event]) -> SubscriptionRecord {
        let mut r = SubscriptionRecord::new(uuid_zero());
        for e in events {
            if let Some(next) = apply(&r, e) {
                r = next;
            }
        }
        r
    }

    fn uuid_zero() -> UserId {
        // Any fixed id: the state machine never looks at it.
        "00000000-0000-4000-8000-000000000000"
            .parse()
            .unwrap_or_else(|_| UserId::generate())
    }

    #[test]
    fn stripe_statuses_map_explicitly() {
        for (stripe, ours) in [
            ("active", Status::Active),
            ("trialing", Status::Active),
            ("past_due", Status::PastDue),
            ("unpaid", Status::PastDue),
            ("paused", Status::PastDue),
            ("canceled", Status::Canceled),
            ("incomplete_expired", Status::Canceled),
            ("incomplete", Status::None),
            ("something_new", Status::None),
        ] {
            assert_eq!(Status::from_stripe(stripe), ours, "{stripe}");
        }
    }

    #[test]
    fn checkout_links_and_activates() {
        let r = run(&[event(
            "evt_1",
            10,
            EventKind::CheckoutCompleted {
                user: None,
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                price: Some("price_1".into()),
            },
        )]);
        assert_eq!(r.status, Status::Active);
        assert_eq!(r.customer.as_deref(), Some("cus_1"));
        assert_eq!(r.subscription.as_deref(), Some("sub_1"));
        assert_eq!(r.price.as_deref(), Some("price_1"));
    }

    #[test]
    fn an_older_event_never_rolls_the_state_back_in_any_order() {
        let events = [
            sub("active", 10, "evt_a"),
            invoice(false, 20, "evt_b", "sub_1"),
            invoice(true, 30, "evt_c", "sub_1"),
            sub("canceled", 40, "evt_d"),
        ];
        // Every order of delivery ends where the newest event says.
        let mut orders = vec![vec![0, 1, 2, 3]];
        for a in 0..4 {
            for b in 0..4 {
                for c in 0..4 {
                    for d in 0..4 {
                        let o = vec![a, b, c, d];
                        let mut s = o.clone();
                        s.sort_unstable();
                        s.dedup();
                        if s.len() == 4 {
                            orders.push(o);
                        }
                    }
                }
            }
        }
        for order in orders {
            let delivered: Vec<Event> = order.iter().map(|&i| events[i].clone()).collect();
            let r = run(&delivered);
            assert_eq!(r.status, Status::Canceled, "{order:?}");
            assert_eq!(
                r.last_event.as_ref().map(|s| s.event.as_str()),
                Some("evt_d")
            );
        }
        // Replays change nothing.
        let r = run(&events);
        for e in &events {
            assert_eq!(apply(&r, e), None, "{}", e.id);
        }
    }

    #[test]
    fn equal_created_times_are_ordered_by_event_id() {
        let r = run(&[
            sub("active", 5, "evt_0"),
            invoice(true, 10, "evt_b", "sub_1"),
            invoice(false, 10, "evt_a", "sub_1"),
        ]);
        assert_eq!(r.status, Status::Active, "evt_a < evt_b: evt_a is older");
    }

    #[test]
    fn invoices_of_another_subscription_or_none_change_nothing() {
        let r = run(&[sub("active", 10, "evt_a")]);
        assert_eq!(apply(&r, &invoice(false, 20, "evt_b", "sub_old")), None);
        let one_off = event(
            "evt_c",
            30,
            EventKind::Invoice {
                paid: false,
                customer: Some("cus_1".into()),
                subscription: None,
                user: None,
            },
        );
        assert_eq!(apply(&r, &one_off), None);
        assert_eq!(
            apply(&r, &event("evt_d", 40, EventKind::Ignored("x".into()))),
            None
        );
    }

    #[test]
    fn a_paid_invoice_never_revives_a_canceled_subscription() {
        let r = run(&[
            sub("active", 10, "evt_a"),
            invoice(false, 20, "evt_b", "sub_1"),
            sub("canceled", 30, "evt_c"),
            // Weeks later the customer pays the old open invoice on Stripe's hosted page.
            invoice(true, 40, "evt_d", "sub_1"),
        ]);
        assert_eq!(r.status, Status::Canceled);
        // Nor does an invoice start a subscription.
        let fresh = SubscriptionRecord::new(uuid_zero());
        let started = apply(&fresh, &invoice(true, 50, "evt_e", "sub_1"));
        assert!(started.is_none_or(|r| r.status == Status::None));
    }

    #[test]
    fn another_subscription_ending_does_not_end_the_live_one() {
        let other = |status: &str, created: i64, id: &str| {
            let mut e = sub(status, created, id);
            if let EventKind::Subscription { subscription, .. } = &mut e.kind {
                *subscription = "sub_2".into();
            }
            e
        };
        // The account somehow has two; the duplicate (sub_2) is canceled after sub_1 started.
        let r = run(&[sub("active", 10, "evt_a"), other("canceled", 20, "evt_b")]);
        assert_eq!(r.status, Status::Active);
        assert_eq!(r.subscription.as_deref(), Some("sub_1"));
        // sub_1's invoices still count.
        let r2 = apply(&r, &invoice(false, 30, "evt_c", "sub_1")).unwrap();
        assert_eq!(r2.status, Status::PastDue);
        // A newer live subscription does take over (a resubscription after cancellation).
        let ended = run(&[sub("active", 10, "evt_a"), sub("canceled", 20, "evt_b")]);
        let resub = apply(&ended, &other("active", 30, "evt_c")).unwrap();
        assert_eq!(resub.status, Status::Active);
        assert_eq!(resub.subscription.as_deref(), Some("sub_2"));
    }

    #[test]
    fn an_old_event_still_fills_missing_links() {
        let r = run(&[sub("past_due", 50, "evt_new")]);
        let late_checkout = event(
            "evt_old",
            10,
            EventKind::CheckoutCompleted {
                user: None,
                customer: Some("cus_1".into()),
                subscription: Some("sub_1".into()),
                price: None,
            },
        );
        let mut r2 = r.clone();
        r2.customer = None;
        let linked = apply(&r2, &late_checkout).unwrap_or_else(|| r2.clone());
        assert_eq!(linked.customer.as_deref(), Some("cus_1"));
        assert_eq!(
            linked.status,
            Status::PastDue,
            "the state stays the newer one"
        );
    }
}
