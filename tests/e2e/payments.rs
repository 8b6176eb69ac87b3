//! Payments end to end: Stripe's webhook (signature, no CSRF, exactly once, order), the billing
//! page, checkout through a fake Stripe API, and `/api/v1/me`'s subscription.

use actix_web::http::StatusCode;
use phaze_e2e::stripe::{sign, FakeStripe, SECRET_KEY, WEBHOOK_SECRET};
use phaze_e2e::{spawn_portal_with, Browser, TestPortal};
use phaze_payments::Plan;
use phaze_portal::clock::Clock;
use secrecy::SecretString;

use crate::PW;

const WEBHOOK: &str = "/webhooks/stripe";

fn payments(s: &mut phaze_portal::Settings, api_base: Option<&str>) {
    s.payments.webhook_secrets = vec![SecretString::from(WEBHOOK_SECRET)];
    s.payments.plans = vec![
        Plan {
            id: "basic".into(),
            name: "Basic, 3 devices".into(),
            price: "price_basic".into(),
        },
        Plan {
            id: "family".into(),
            name: "Family, 10 devices".into(),
            price: "price_family".into(),
        },
    ];
    if let Some(base) = api_base {
        s.payments.stripe_api_base = base.to_owned();
        s.payments.stripe_secret_key = SecretString::from(SECRET_KEY);
        s.payments.stripe_retries = 0;
    }
}

async fn me(b: &Browser) -> serde_json::Value {
    serde_json::from_str(&b.get("/api/v1/me").await.body).unwrap()
}

/// Delivers `body` as Stripe would, from a client with no cookies and another site's origin.
async fn deliver(p: &TestPortal, body: &str) -> phaze_e2e::Resp {
    let t = p.clock.now().unix_timestamp();
    p.browser()
        .post_raw(
            WEBHOOK,
            "application/json",
            body.as_bytes().to_vec(),
            &[
                ("stripe-signature", &sign(body, t)),
                ("origin", "https://stripe.com"),
            ],
        )
        .await
}

fn checkout_completed(id: &str, created: i64, user: &str) -> String {
    format!(
        r#"{{"id":"{id}","object":"event","type":"checkout.session.completed","created":{created},
        "data":{{"object":{{"id":"cs_1","client_reference_id":"{user}","customer":"cus_e2e",
        "subscription":"sub_e2e","metadata":{{"phaze_price":"price_basic"}}}}}}}}"#
    )
}

fn invoice(id: &str, kind: &str, created: i64) -> String {
    format!(
        r#"{{"id":"{id}","type":"{kind}","created":{created},"data":{{"object":{{"customer":"cus_e2e","subscription":"sub_e2e"}}}}}}"#
    )
}

#[actix_web::test]
async fn a_signed_event_takes_effect_once_and_an_older_one_never_rolls_back() {
    let p = spawn_portal_with(|s| payments(s, None)).await;
    let b = p.user("payer@example.com", PW).await;
    let user = me(&b).await["id"].as_str().unwrap().to_owned();
    assert_eq!(me(&b).await["subscription"]["status"], "none");

    let t = p.clock.now().unix_timestamp();
    let checkout = checkout_completed("evt_checkout", t - 60, &user);
    let r = deliver(&p, &checkout).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, r#"{"received":true}"#);
    let sub = &me(&b).await["subscription"];
    assert_eq!(sub["status"], "active");
    assert_eq!(sub["plan"], "basic");

    // A newer failed payment, then the older events again (replayed, or late): past_due stays.
    let failed = invoice("evt_failed", "invoice.payment_failed", t - 10);
    assert_eq!(deliver(&p, &failed).await.status, StatusCode::OK);
    assert_eq!(me(&b).await["subscription"]["status"], "past_due");
    let late_paid = invoice("evt_paid_late", "invoice.paid", t - 30);
    for body in [&checkout, &late_paid, &checkout] {
        let r = deliver(&p, body).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(me(&b).await["subscription"]["status"], "past_due");
    // A newer payment brings it back.
    deliver(&p, &invoice("evt_paid", "invoice.paid", t)).await;
    assert_eq!(me(&b).await["subscription"]["status"], "active");
    // Types the portal does not act on are acknowledged.
    let other = r#"{"id":"evt_x","type":"charge.refunded","created":1,"data":{"object":{}}}"#;
    assert_eq!(deliver(&p, other).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn unsigned_forged_stale_or_hostile_deliveries_are_400_and_change_nothing() {
    let p = spawn_portal_with(|s| payments(s, None)).await;
    let b = p.user("victim@example.com", PW).await;
    let user = me(&b).await["id"].as_str().unwrap().to_owned();
    let t = p.clock.now().unix_timestamp();
    let body = checkout_completed("evt_forged", t, &user);
    let good = sign(&body, t);
    let v1 = good.split(",v1=").nth(1).unwrap();
    let forged = phaze_payments::WebhookVerifier::new(
        vec![SecretString::from("whsec_guess")],
        time::Duration::minutes(5),
    )
    .sign(body.as_bytes(), t)
    .unwrap();
    let headers: Vec<(&str, String)> = vec![
        ("none", String::new()),
        ("forged", forged),
        ("stale", sign(&body, t - 301)),
        ("future", sign(&body, t + 301)),
        (
            "replayed signature, other t",
            format!("t={},v1={v1}", t - 1),
        ),
        ("empty", " ".into()),
        ("10 KB", format!("t={t},v1={}", "a".repeat(10_000))),
        ("many v1", format!("t={t},{}", vec!["v1=00"; 40].join(","))),
        ("non-hex", format!("t={t},v1=zz{}", &v1[2..])),
        ("non-numeric t", format!("t=soon,v1={v1}")),
        ("unicode", format!("t={t},v1=é{}", &v1[2..])),
    ];
    for (what, header) in headers {
        let mut extra = vec![];
        if what != "none" {
            extra.push(("stripe-signature", header.as_str()));
        }
        let r = p
            .browser()
            .post_raw(
                WEBHOOK,
                "application/json",
                body.clone().into_bytes(),
                &extra,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.body, r#"{"error":"invalid signature"}"#, "{what}");
    }
    // Signed, but not an event: 400; too large: 413.
    for bad in [
        "not json",
        "[]",
        &format!("{}1{}", "[".repeat(5000), "]".repeat(5000)),
    ] {
        let r = p
            .browser()
            .post_raw(
                WEBHOOK,
                "application/json",
                bad.as_bytes().to_vec(),
                &[("stripe-signature", &sign(bad, t))],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:.40}");
    }
    let huge = format!(
        r#"{{"id":"evt_big","type":"x","created":1,"pad":"{}"}}"#,
        "a".repeat(1 << 20)
    );
    let r = p
        .browser()
        .post_raw(
            WEBHOOK,
            "application/json",
            huge.clone().into_bytes(),
            &[("stripe-signature", &sign(&huge, t))],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(me(&b).await["subscription"]["status"], "none");
    // The webhook is POST only.
    assert_eq!(
        p.browser().get(WEBHOOK).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[actix_web::test]
async fn checkout_goes_to_stripe_once_per_double_submit_with_the_account_named() {
    let stripe = FakeStripe::start();
    let base = stripe.base.clone();
    let p = spawn_portal_with(move |s| payments(s, Some(&base))).await;
    let b = p.user("buyer@example.com", PW).await;
    let user = me(&b).await["id"].as_str().unwrap().to_owned();
    let page = b.get("/billing").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Basic, 3 devices") && page.body.contains("No subscription"));

    let first = b.post_form("/billing/checkout", &[("plan", "basic")]).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let location = first.header("location").unwrap().to_owned();
    assert!(
        location.starts_with("https://checkout.stripe.com/"),
        "{location}"
    );
    let second = b.post_form("/billing/checkout", &[("plan", "basic")]).await;
    assert_eq!(
        second.header("location"),
        Some(location.as_str()),
        "a double submit"
    );
    let seen = stripe.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    let field = |k: &str| {
        seen[0]
            .form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("client_reference_id").as_deref(), Some(user.as_str()));
    assert_eq!(
        field("line_items[0][price]").as_deref(),
        Some("price_basic")
    );
    assert_eq!(
        field("success_url").as_deref(),
        Some(format!("{}/billing?checkout=done", p.base).as_str())
    );

    // A forged plan, a missing token, an anonymous visitor: nothing reaches Stripe.
    let r = b.post_form("/billing/checkout", &[("plan", "gold")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = b
        .post_raw(
            "/billing/checkout",
            "application/x-www-form-urlencoded",
            b"plan=basic".to_vec(),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let anon = p.browser();
    anon.get("/login").await;
    let r = anon
        .post_form("/billing/checkout", &[("plan", "basic")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("location").unwrap().starts_with("/login"));
    assert_eq!(stripe.seen().len(), 2);
    // No customer yet: nothing to manage.
    let r = b.post_form("/billing/portal", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn after_checkout_the_page_shows_the_plan_and_manages_it_at_stripe() {
    let stripe = FakeStripe::start();
    let base = stripe.base.clone();
    let p = spawn_portal_with(move |s| payments(s, Some(&base))).await;
    let b = p.user("member@example.com", PW).await;
    let user = me(&b).await["id"].as_str().unwrap().to_owned();
    let t = p.clock.now().unix_timestamp();
    deliver(&p, &checkout_completed("evt_c", t, &user)).await;
    let page = b.get("/billing").await.body;
    assert!(
        page.contains("Active") && page.contains("Basic, 3 devices"),
        "{page}"
    );
    assert!(page.contains("Manage subscription"));
    let r = b.post_form("/billing/portal", &[]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    // A second subscription beside the running one is refused before Stripe is asked.
    let before = stripe.seen().len();
    let r = b
        .post_form("/billing/checkout", &[("plan", "family")])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(stripe.seen().len(), before);
    let seen = stripe.seen();
    assert_eq!(seen.last().unwrap().path, "/v1/billing_portal/sessions");
    assert!(seen
        .last()
        .unwrap()
        .form
        .contains(&("customer".into(), "cus_e2e".into())));
}

#[actix_web::test]
async fn without_a_stripe_key_checkout_is_unavailable_and_nothing_else_breaks() {
    let p = spawn_portal_with(|s| payments(s, None)).await;
    let b = p.user("early@example.com", PW).await;
    let page = b.get("/billing").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("cannot be bought here"), "{}", page.body);
    assert!(
        !page.body.contains("/billing/checkout"),
        "no form that can only fail"
    );
    let r = b.post_form("/billing/checkout", &[("plan", "basic")]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
}
