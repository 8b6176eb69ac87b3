//! `Webhooks::deliver` end to end over the memory stores: signed bodies in, exactly one effect per
//! event id, nothing from a body that is not signed, and a failed effect given back for Stripe's
//! retry.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use async_trait::async_trait;
use phaze_payments::{
    Claim, ClaimToken, Delivery, ProcessedEvents, SignatureError, Status, StoreError,
    SubscriptionRecord, Subscriptions, UserId, WebhookError, WebhookPolicy, WebhookVerifier,
    Webhooks, DEFAULT_TOLERANCE,
};
use phaze_store_memory::{MemoryProcessedEvents, MemorySubscriptions};
use secrecy::SecretString;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

const T: i64 = 1_767_225_600;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T).unwrap()
}

fn verifier() -> WebhookVerifier {
    WebhookVerifier::new(vec![SecretString::from("whsec_test")], DEFAULT_TOLERANCE)
}

struct World {
    webhooks: Webhooks,
    events: Arc<MemoryProcessedEvents>,
    subscriptions: Arc<MemorySubscriptions>,
}

fn world_with(subscriptions: Arc<dyn Subscriptions>, inner: Arc<MemorySubscriptions>) -> World {
    let events = Arc::new(MemoryProcessedEvents::default());
    World {
        webhooks: Webhooks::new(
            verifier(),
            events.clone(),
            subscriptions,
            WebhookPolicy::default(),
        ),
        events,
        subscriptions: inner,
    }
}

fn world() -> World {
    let subs = Arc::new(MemorySubscriptions::default());
    world_with(subs.clone(), subs)
}

fn checkout(id: &str, created: i64, user: UserId) -> String {
    format!(
        r#"{{"id":"{id}","type":"checkout.session.completed","created":{created},"data":{{"object":{{
        "client_reference_id":"{user}","customer":"cus_1","subscription":"sub_1","metadata":{{"phaze_price":"price_1"}}}}}}}}"#
    )
}

fn invoice(id: &str, created: i64, kind: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"{kind}","created":{created},"data":{{"object":{{"customer":"cus_1","subscription":"sub_1"}}}}}}"#
    )
}

async fn deliver(w: &World, body: &str) -> Result<Delivery, WebhookError> {
    let header = verifier().sign(body.as_bytes(), T).unwrap();
    w.webhooks
        .deliver(Some(&header), body.as_bytes(), now())
        .await
}

async fn status(w: &World, user: UserId) -> Status {
    w.subscriptions
        .get(&user)
        .await
        .unwrap()
        .map_or(Status::None, |(r, _)| r.status)
}

/// Whether `id` was never claimed (a fresh claim wins; it is given back at once).
async fn untouched(w: &World, id: &str) -> bool {
    let t = ClaimToken::generate();
    let won = w
        .events
        .claim(id, &t, now(), Duration::seconds(1))
        .await
        .unwrap()
        == Claim::Won;
    w.events.release(id, &t).await.unwrap();
    won
}

#[tokio::test]
async fn a_signed_event_takes_effect_once_and_its_replay_none() {
    let w = world();
    let user = UserId::generate();
    let body = checkout("evt_1", T, user);
    assert_eq!(
        deliver(&w, &body).await.unwrap(),
        Delivery::Applied {
            user,
            status: Status::Active
        }
    );
    for _ in 0..3 {
        assert_eq!(deliver(&w, &body).await.unwrap(), Delivery::Duplicate);
    }
    let (r, version) = w.subscriptions.get(&user).await.unwrap().unwrap();
    assert_eq!(version, 1, "one write");
    assert_eq!(r.customer.as_deref(), Some("cus_1"));
    // Later events find the account through its customer.
    let failed = invoice("evt_2", T + 10, "invoice.payment_failed");
    assert_eq!(
        deliver(&w, &failed).await.unwrap(),
        Delivery::Applied {
            user,
            status: Status::PastDue
        }
    );
}

#[tokio::test]
async fn nothing_happens_for_a_body_that_is_not_signed_or_not_an_event() {
    let w = world();
    let user = UserId::generate();
    let body = checkout("evt_1", T, user);
    let good = verifier().sign(body.as_bytes(), T).unwrap();
    let forged = WebhookVerifier::new(vec![SecretString::from("whsec_guess")], DEFAULT_TOLERANCE)
        .sign(body.as_bytes(), T)
        .unwrap();
    let stale = verifier().sign(body.as_bytes(), T - 301).unwrap();
    for (header, want) in [
        (None, SignatureError::Missing),
        (Some(forged.as_str()), SignatureError::Mismatch),
        (Some(stale.as_str()), SignatureError::Stale),
    ] {
        let r = w.webhooks.deliver(header, body.as_bytes(), now()).await;
        assert!(
            matches!(r, Err(WebhookError::Signature(e)) if e == want),
            "{r:?}"
        );
    }
    // The signed header on another body.
    let r = w
        .webhooks
        .deliver(
            Some(&good),
            checkout("evt_1", T, UserId::generate()).as_bytes(),
            now(),
        )
        .await;
    assert!(matches!(
        r,
        Err(WebhookError::Signature(SignatureError::Mismatch))
    ));
    // Signed, but not an event.
    assert!(matches!(
        deliver(&w, r#"{"id":"evt_1","type":"invoice.paid","created":"x"}"#).await,
        Err(WebhookError::Event(_))
    ));
    assert!(untouched(&w, "evt_1").await, "no claim was taken");
    assert_eq!(status(&w, user).await, Status::None);
}

#[tokio::test]
async fn other_types_and_unknown_customers_are_acknowledged_without_effect() {
    let w = world();
    let ping = r#"{"id":"evt_p","type":"charge.refunded","created":1,"data":{"object":{}}}"#;
    assert_eq!(deliver(&w, ping).await.unwrap(), Delivery::Ignored);
    assert!(
        untouched(&w, "evt_p").await,
        "ignored types are not even claimed"
    );
    let stray = invoice("evt_s", T, "invoice.paid");
    assert_eq!(deliver(&w, &stray).await.unwrap(), Delivery::Unroutable);
    assert_eq!(deliver(&w, &stray).await.unwrap(), Delivery::Duplicate);
}

#[tokio::test]
async fn an_older_event_after_a_newer_one_changes_nothing() {
    let w = world();
    let user = UserId::generate();
    deliver(&w, &checkout("evt_1", T, user)).await.unwrap();
    deliver(&w, &invoice("evt_3", T + 300, "invoice.payment_failed"))
        .await
        .unwrap();
    assert_eq!(
        deliver(&w, &invoice("evt_2", T + 100, "invoice.paid"))
            .await
            .unwrap(),
        Delivery::Unchanged
    );
    assert_eq!(status(&w, user).await, Status::PastDue);
}

/// Fails the first `put`, as a database that went away mid-delivery would.
struct FailFirstPut(Arc<MemorySubscriptions>, AtomicU32);

#[async_trait]
impl Subscriptions for FailFirstPut {
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError> {
        self.0.get(user).await
    }
    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        self.0.user_for_customer(customer).await
    }
    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError> {
        if self.1.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(StoreError::backend(std::io::Error::other(
                "connection reset",
            )));
        }
        self.0.put(record, expected).await
    }
    async fn remove(&self, user: &UserId) -> Result<bool, StoreError> {
        self.0.remove(user).await
    }
}

#[tokio::test]
async fn a_failed_effect_releases_the_claim_and_the_retry_applies_it() {
    let inner = Arc::new(MemorySubscriptions::default());
    let w = world_with(
        Arc::new(FailFirstPut(inner.clone(), AtomicU32::new(0))),
        inner,
    );
    let user = UserId::generate();
    let body = checkout("evt_1", T, user);
    assert!(matches!(
        deliver(&w, &body).await,
        Err(WebhookError::Store(_))
    ));
    assert_eq!(status(&w, user).await, Status::None);
    assert_eq!(
        deliver(&w, &body).await.unwrap(),
        Delivery::Applied {
            user,
            status: Status::Active
        }
    );
}

#[tokio::test]
async fn a_held_claim_is_answered_in_progress_until_its_lease_runs_out() {
    let w = world();
    let user = UserId::generate();
    let body = checkout("evt_1", T, user);
    // A delivery that claimed the event and died.
    let dead = ClaimToken::generate();
    w.events
        .claim("evt_1", &dead, now(), Duration::seconds(60))
        .await
        .unwrap();
    assert_eq!(deliver(&w, &body).await.unwrap(), Delivery::InProgress);
    assert_eq!(status(&w, user).await, Status::None);
    // Stripe retries later, after the lease: the retry takes the claim over and applies it.
    let later = now() + Duration::seconds(61);
    let header = verifier()
        .sign(body.as_bytes(), later.unix_timestamp())
        .unwrap();
    assert_eq!(
        w.webhooks
            .deliver(Some(&header), body.as_bytes(), later)
            .await
            .unwrap(),
        Delivery::Applied {
            user,
            status: Status::Active
        }
    );
    assert!(!w.events.mark_applied("evt_1", &dead, later).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_deliveries_of_one_event_take_effect_once() {
    let w = Arc::new(world());
    let user = UserId::generate();
    let body = Arc::new(checkout("evt_1", T, user));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (w, body) = (w.clone(), body.clone());
            tokio::spawn(async move { deliver(&w, &body).await.unwrap() })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.unwrap() {
            Delivery::Applied { .. } => applied += 1,
            Delivery::Duplicate | Delivery::InProgress => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(
        w.subscriptions.get(&user).await.unwrap().map(|(_, v)| v),
        Some(1)
    );
}

/// Counts the calls that reach the stores.
struct Counting<E, S> {
    events: E,
    subs: S,
    calls: std::sync::Mutex<Vec<&'static str>>,
}

#[async_trait]
impl<E: ProcessedEvents, S: Send + Sync> ProcessedEvents for Counting<E, S> {
    async fn claim(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        self.calls.lock().unwrap().push("claim");
        self.events.claim(event, token, now, lease).await
    }
    async fn mark_applied(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.calls.lock().unwrap().push("mark_applied");
        self.events.mark_applied(event, token, now).await
    }
    async fn release(&self, event: &str, token: &ClaimToken) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push("release");
        self.events.release(event, token).await
    }
    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        self.events.purge(before).await
    }
}

#[async_trait]
impl<E: Send + Sync, S: Subscriptions> Subscriptions for Counting<E, S> {
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError> {
        self.calls.lock().unwrap().push("get");
        self.subs.get(user).await
    }
    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        self.calls.lock().unwrap().push("user_for_customer");
        self.subs.user_for_customer(customer).await
    }
    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError> {
        self.calls.lock().unwrap().push("put");
        self.subs.put(record, expected).await
    }
    async fn remove(&self, user: &UserId) -> Result<bool, StoreError> {
        self.calls.lock().unwrap().push("remove");
        self.subs.remove(user).await
    }
}

/// A first delivery is five store operations; a duplicate is one (the claim that finds the id
/// applied) the first time a process sees it, and none after (the process remembers applied ids).
#[tokio::test]
async fn a_duplicate_costs_one_store_operation_at_most_and_a_first_delivery_five() {
    let counting = Arc::new(Counting {
        events: MemoryProcessedEvents::default(),
        subs: MemorySubscriptions::default(),
        calls: std::sync::Mutex::new(Vec::new()),
    });
    let webhooks = Webhooks::new(
        verifier(),
        counting.clone(),
        counting.clone(),
        WebhookPolicy::default(),
    );
    let body = checkout("evt_1", T, UserId::generate());
    let header = verifier().sign(body.as_bytes(), T).unwrap();
    let first = webhooks
        .deliver(Some(&header), body.as_bytes(), now())
        .await;
    assert!(matches!(first, Ok(Delivery::Applied { .. })));
    assert_eq!(
        std::mem::take(&mut *counting.calls.lock().unwrap()),
        ["claim", "user_for_customer", "get", "put", "mark_applied"]
    );
    for _ in 0..3 {
        let again = webhooks
            .deliver(Some(&header), body.as_bytes(), now())
            .await;
        assert!(matches!(again, Ok(Delivery::Duplicate)));
    }
    assert!(counting.calls.lock().unwrap().is_empty(), "remembered");
    // Another process (another `Webhooks` on the same stores) asks the store once.
    let other = Webhooks::new(
        verifier(),
        counting.clone(),
        counting.clone(),
        WebhookPolicy::default(),
    );
    for _ in 0..3 {
        let again = other.deliver(Some(&header), body.as_bytes(), now()).await;
        assert!(matches!(again, Ok(Delivery::Duplicate)));
    }
    assert_eq!(*counting.calls.lock().unwrap(), ["claim"]);
}

#[tokio::test]
async fn an_event_naming_another_account_than_its_customer_s_moves_nothing() {
    let w = world();
    let (ada, eve) = (UserId::generate(), UserId::generate());
    deliver(&w, &checkout("evt_1", T, ada)).await.unwrap();
    // A later checkout names another account with the same customer (cus_1).
    assert_eq!(
        deliver(&w, &checkout("evt_2", T + 10, eve)).await.unwrap(),
        Delivery::Unroutable
    );
    assert_eq!(
        w.subscriptions.user_for_customer("cus_1").await.unwrap(),
        Some(ada)
    );
    assert_eq!(status(&w, eve).await, Status::None);
    assert_eq!(status(&w, ada).await, Status::Active);
}
