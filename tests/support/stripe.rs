//! Stripe's side, for the payment tests: a fake API (Checkout and Billing Portal sessions, with
//! Stripe's idempotency: one key, one session) and signed webhook deliveries.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use phaze_payments::WebhookVerifier;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The webhook secret the payment tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_e2e_0123456789abcdef";
/// The API key the payment tests configure.
pub const SECRET_KEY: &str = "sk_test_e2e";

/// One request the fake received: path, `Idempotency-Key`, form.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `/v1/checkout/sessions` or `/v1/billing_portal/sessions`.
    pub path: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: String,
    /// The form fields.
    pub form: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    sessions: HashMap<String, String>,
}

/// A fake Stripe API on a loopback port, stopped when dropped.
pub struct FakeStripe {
    /// `http://127.0.0.1:PORT`, for `payments.stripe_api_base`.
    pub base: String,
    state: Arc<Mutex<State>>,
    server: actix_web::dev::ServerHandle,
}

impl FakeStripe {
    /// Starts the fake on the current actix system.
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::post().to(session))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base: format!("http://127.0.0.1:{port}"),
            state,
            server: handle,
        }
    }

    /// What it received, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        let handle = self.server.clone();
        actix_web::rt::spawn(async move { handle.stop(false).await });
    }
}

async fn session(
    req: HttpRequest,
    form: web::Form<Vec<(String, String)>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("authorization") != format!("Bearer {SECRET_KEY}") {
        return HttpResponse::Unauthorized()
            .json(serde_json::json!({"error": {"message": "Invalid API Key"}}));
    }
    let key = header("idempotency-key");
    let mut s = state.lock().unwrap();
    s.seen.push(Seen {
        path: req.path().to_owned(),
        idempotency_key: key.clone(),
        form: form.0,
    });
    let n = s.sessions.len();
    let id = s
        .sessions
        .entry(key)
        .or_insert_with(|| format!("cs_test_{n}"))
        .clone();
    HttpResponse::Ok().json(serde_json::json!({
        "id": id,
        "url": format!("https://checkout.stripe.com/c/pay/{id}"),
    }))
}

/// The `Stripe-Signature` Stripe would send for `body` at `timestamp` under [`WEBHOOK_SECRET`].
pub fn sign(body: &str, timestamp: i64) -> String {
    WebhookVerifier::new(
        vec![SecretString::from(WEBHOOK_SECRET)],
        time::Duration::minutes(5),
    )
    .sign(body.as_bytes(), timestamp)
    .unwrap()
}

/// The portal processes read the system clock; so do these deliveries' signatures.
#[allow(clippy::disallowed_methods)]
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A random account id: the webhook applies to the id Stripe names, whether or not the account
/// exists, so multi-process tests need no registration.
pub fn random_user() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-8{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A `checkout.session.completed` linking `user` to customer `cus_p` and subscription `sub_p`.
pub fn checkout_completed(id: &str, created: i64, user: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"checkout.session.completed","created":{created},"data":{{"object":{{"client_reference_id":"{user}","customer":"cus_p","subscription":"sub_p"}}}}}}"#
    )
}

/// An `invoice.payment_failed` of `sub_p`.
pub fn payment_failed(id: &str, created: i64) -> String {
    format!(
        r#"{{"id":"{id}","type":"invoice.payment_failed","created":{created},"data":{{"object":{{"customer":"cus_p","subscription":"sub_p"}}}}}}"#
    )
}

/// Posts `body` to the webhook of the portal at `base`, signed now: the status.
pub async fn deliver(base: &str, body: &str) -> u16 {
    let signature = sign(body, unix_now());
    let res = awc::Client::default()
        .post(format!("{base}/webhooks/stripe"))
        .insert_header(("stripe-signature", signature))
        .insert_header(("content-type", "application/json"))
        .send_body(body.to_owned())
        .await
        .unwrap();
    res.status().as_u16()
}

/// Delivers every body to the portals in turn, all at once; then, as Stripe does, retries each
/// one not acknowledged (a 409 while another delivery holds the event) until it is.
pub async fn deliver_everywhere_until_acknowledged(bases: &[&str], bodies: &[String]) {
    let sends = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| deliver(bases[i % bases.len()], body));
    let statuses = futures_util::future::join_all(sends).await;
    for (i, mut status) in statuses.into_iter().enumerate() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while status != 200 {
            assert_eq!(status, 409, "delivery {i}");
            assert!(
                std::time::Instant::now() < deadline,
                "delivery {i} never acknowledged"
            );
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
            status = deliver(bases[(i + 1) % bases.len()], &bodies[i]).await;
        }
    }
}

/// Stripe's retries of `body` to `base` while another delivery, now dead, holds the event: the
/// first is answered 409 (the holder's lease runs), and one within ten seconds is taken over and
/// answered 200.
pub async fn retried_until_taken_over(base: &str, body: &str) {
    assert_eq!(deliver(base, body).await, 409, "held while the lease runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match deliver(base, body).await {
            200 => return,
            409 => assert!(
                std::time::Instant::now() < deadline,
                "the claim was never taken over"
            ),
            s => panic!("retry answered {s}"),
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}
