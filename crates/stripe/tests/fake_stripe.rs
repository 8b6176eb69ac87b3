//! `StripeGateway` against a fake Stripe API started here: what it sends, idempotency across
//! retries and double submits, and which failures it retries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use phaze_payments::{
    BillingPortalRequest, CheckoutRequest, GatewayError, IdempotencyKey, PaymentGateway, UserId,
};
use phaze_stripe::{StripeConfig, StripeGateway};
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;

/// What the fake does with the next attempts, in order; then it answers normally.
#[derive(Clone, Copy, Debug)]
enum Fault {
    Status(u16),
    StatusNoRetry(u16),
    Hang,
}

/// One request as the fake saw it: `Authorization`, `Idempotency-Key`, the form.
type Attempt = (String, String, Vec<(String, String)>);

#[derive(Default)]
struct Fake {
    faults: Vec<Fault>,
    attempts: Vec<Attempt>,
    sessions: HashMap<String, String>,
}

async fn sessions(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    fake: web::Data<Mutex<Fake>>,
) -> HttpResponse {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let fault = {
        let mut f = fake.lock().unwrap();
        f.attempts.push((auth.clone(), key.clone(), form.0.clone()));
        (!f.faults.is_empty()).then(|| f.faults.remove(0))
    };
    match fault {
        Some(Fault::Hang) => {
            actix_web::rt::time::sleep(Duration::from_secs(5)).await;
            return HttpResponse::Ok().finish();
        }
        Some(Fault::Status(s)) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(s).unwrap())
                .body(r#"{"error":{"message":"boom","code":"x"}}"#)
        }
        Some(Fault::StatusNoRetry(s)) => {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(s).unwrap())
                .insert_header(("stripe-should-retry", "false"))
                .finish()
        }
        None => {}
    }
    if auth != "Bearer sk_test_fake" {
        return HttpResponse::Unauthorized()
            .body(r#"{"error":{"message":"Invalid API Key","code":"api_key_invalid"}}"#);
    }
    // Stripe's idempotency: the same key gets the same answer.
    let mut f = fake.lock().unwrap();
    let n = f.sessions.len();
    let id = f
        .sessions
        .entry(key)
        .or_insert_with(|| format!("cs_test_{n}"))
        .clone();
    HttpResponse::Ok().json(serde_json::json!({
        "id": id, "object": "checkout.session",
        "url": format!("https://checkout.stripe.com/c/pay/{id}")
    }))
}

struct Running {
    fake: web::Data<Mutex<Fake>>,
    base: String,
    _server: actix_web::dev::ServerHandle,
}

async fn fake(faults: Vec<Fault>) -> Running {
    let fake = web::Data::new(Mutex::new(Fake {
        faults,
        ..Fake::default()
    }));
    let port = phaze_testkit::free_port();
    let data = fake.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/v1/checkout/sessions", web::post().to(sessions))
            .route("/v1/billing_portal/sessions", web::post().to(sessions))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    Running {
        fake,
        base: format!("http://127.0.0.1:{port}"),
        _server: handle,
    }
}

fn gateway(base: &str, key: &str) -> StripeGateway {
    StripeGateway::new(StripeConfig {
        api_base: base.to_owned(),
        timeout: Duration::from_millis(500),
        backoff: Duration::from_millis(10),
        ..StripeConfig::new(SecretString::from(key))
    })
    .unwrap()
}

fn checkout(user: UserId) -> CheckoutRequest {
    CheckoutRequest {
        user,
        price: "price_basic".into(),
        customer: None,
        success_url: "https://portal.example/billing?checkout=done".into(),
        cancel_url: "https://portal.example/billing".into(),
        idempotency_key: IdempotencyKey::checkout(
            &user,
            None,
            "price_basic",
            OffsetDateTime::UNIX_EPOCH,
        ),
    }
}

#[actix_web::test]
async fn a_checkout_sends_the_form_the_key_and_the_idempotency_key() {
    let f = fake(vec![]).await;
    let user = UserId::generate();
    let req = checkout(user);
    let hosted = gateway(&f.base, "sk_test_fake")
        .checkout(&req)
        .await
        .unwrap();
    assert_eq!(
        hosted.url,
        format!("https://checkout.stripe.com/c/pay/{}", hosted.id)
    );
    let fake = f.fake.lock().unwrap();
    let (auth, key, form) = &fake.attempts[0];
    assert_eq!(auth, "Bearer sk_test_fake");
    assert_eq!(key, req.idempotency_key.as_str());
    assert!(form.contains(&("client_reference_id".into(), user.to_string())));
    assert!(form.contains(&("line_items[0][price]".into(), "price_basic".into())));
}

#[actix_web::test]
async fn a_double_submit_gets_one_session() {
    let f = fake(vec![]).await;
    let g = gateway(&f.base, "sk_test_fake");
    let user = UserId::generate();
    // Two submits of one form: two requests, each deriving its key.
    let first = g.checkout(&checkout(user)).await.unwrap();
    let second = g.checkout(&checkout(user)).await.unwrap();
    assert_eq!(first.id, second.id);
    assert_eq!(f.fake.lock().unwrap().sessions.len(), 1);
}

#[actix_web::test]
async fn a_failed_first_attempt_is_retried_with_the_same_key() {
    for first in [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Status(409),
        Fault::Status(429),
        Fault::Hang,
    ] {
        let f = fake(vec![first]).await;
        let req = checkout(UserId::generate());
        let hosted = gateway(&f.base, "sk_test_fake").checkout(&req).await;
        assert!(hosted.is_ok(), "{first:?}: {hosted:?}");
        let fake = f.fake.lock().unwrap();
        assert_eq!(fake.attempts.len(), 2, "{first:?}");
        assert!(fake
            .attempts
            .iter()
            .all(|(_, k, _)| k == req.idempotency_key.as_str()));
        assert_eq!(fake.sessions.len(), 1);
    }
}

#[actix_web::test]
async fn refusals_are_not_retried_and_outages_give_up_after_the_retries() {
    // A 4xx is a configuration error: one attempt.
    let f = fake(vec![]).await;
    let r = gateway(&f.base, "sk_test_wrong")
        .checkout(&checkout(UserId::generate()))
        .await;
    assert!(
        matches!(r, Err(GatewayError::Refused { status: 401, .. })),
        "{r:?}"
    );
    assert_eq!(f.fake.lock().unwrap().attempts.len(), 1);
    // Stripe says not to retry: one attempt.
    let f = fake(vec![Fault::StatusNoRetry(500)]).await;
    let r = gateway(&f.base, "sk_test_fake")
        .checkout(&checkout(UserId::generate()))
        .await;
    assert!(matches!(r, Err(GatewayError::Unavailable(_))), "{r:?}");
    assert_eq!(f.fake.lock().unwrap().attempts.len(), 1);
    // Always failing: the first attempt and two retries, then unavailable.
    let f = fake(vec![Fault::Status(502); 5]).await;
    let r = gateway(&f.base, "sk_test_fake")
        .checkout(&checkout(UserId::generate()))
        .await;
    assert!(matches!(r, Err(GatewayError::Unavailable(_))), "{r:?}");
    assert_eq!(f.fake.lock().unwrap().attempts.len(), 3);
    // Nothing listening.
    let port = phaze_testkit::free_port();
    let r = gateway(&format!("http://127.0.0.1:{port}"), "sk_test_fake")
        .checkout(&checkout(UserId::generate()))
        .await;
    assert!(matches!(r, Err(GatewayError::Unavailable(_))), "{r:?}");
}

#[actix_web::test]
async fn a_billing_portal_session_is_created_for_the_customer() {
    let f = fake(vec![]).await;
    let user = UserId::generate();
    let req = BillingPortalRequest {
        customer: "cus_1".into(),
        return_url: "https://portal.example/billing".into(),
        idempotency_key: IdempotencyKey::billing_portal(&user, "cus_1", OffsetDateTime::UNIX_EPOCH),
    };
    let hosted = gateway(&f.base, "sk_test_fake")
        .billing_portal(&req)
        .await
        .unwrap();
    assert!(hosted.url.starts_with("https://"));
    let fake = f.fake.lock().unwrap();
    assert!(fake.attempts[0]
        .2
        .contains(&("customer".into(), "cus_1".into())));
}
