//! Stripe's side, for the payment tests: a fake API (Checkout and Billing Portal sessions, with
//! Stripe's idempotency: one key, one session) and signed webhook deliveries.

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use phaze_payments::WebhookVerifier;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The webhook secret the payment tests configure.
pub const WEBHOOK_SECRET: &str = "whsec_e2e_secret";
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
