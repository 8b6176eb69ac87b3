//! A minimal actix-web service embedding Phaze: sessions, CSRF, login with lockout and client
//! budgets, logout. `cargo run -p phaze-actix --example embed`, then open http://127.0.0.1:8090
//! and log in as `demo@example.com` / `correct horse battery staple`. Memory stores here; swap
//! in `phaze_store_fs::DataDir` or Redis/PostgreSQL adapters without touching a handler.

use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpResponse, HttpServer};
use phaze_actix::{
    Credentials, LoginFlow, LoginResult, RateLimitStepLedger, Visitor, VisitorLayer,
};
use phaze_auth::{
    Account, Argon2id, AuthConfig, AuthKeys, AuthService, DisplayName, Email, EmailIndexKey,
    HashParams, PasswordPolicy, TokenHasher, UserId,
};
use phaze_ratelimit::{KeyHasher, LimitKeys, Limits, RateLimitPolicy};
use phaze_sessions::{Csrf, Sealer, SealingKey, SessionManager, SessionPolicy};
use phaze_store_memory::{
    MemoryAccounts, MemoryMailer, MemoryRateLimits, MemorySessions, MemoryTokens,
};
use secrecy::SecretBox;
use std::sync::Arc;
use time::OffsetDateTime;

struct Phaze {
    sessions: Arc<SessionManager>,
    login: LoginFlow,
}

/// Keys come from configuration in a real service; random ones die with the process.
fn key() -> SecretBox<[u8; 32]> {
    SecretBox::new(Box::new(rand::random()))
}

async fn index(v: Visitor) -> HttpResponse {
    let body = match v.account() {
        // Only an id and a token go into this page: text a user typed would need escaping on
        // output (askama does that in the portal).
        Some(a) => format!(
            "<p>Logged in as account {}.</p><form method=post action=/logout>\
            <input type=hidden name=csrf_token value={}><button>Log out</button></form>",
            a.id, v.csrf_token
        ),
        None => format!(
            "<form method=post action=/login><input type=hidden name=csrf_token value={}>\
            <input name=email><input name=password type=password><button>Log in</button></form>",
            v.csrf_token
        ),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(body)
}

/// The login form's handler: the flow judges, checks, replaces the session and queues cookies.
async fn login(
    p: web::Data<Phaze>,
    v: Visitor,
    req: actix_web::HttpRequest,
    form: web::Form<Credentials>,
) -> Result<HttpResponse, phaze_actix::Error> {
    Ok(match p.login.log_in(&v, &req, form.into_inner()).await? {
        LoginResult::LoggedIn(_) => HttpResponse::SeeOther()
            .insert_header(("location", "/"))
            .finish(),
        LoginResult::Unconfirmed => HttpResponse::Forbidden().body("Confirm your address first."),
        LoginResult::Locked => HttpResponse::Forbidden().body("This account is suspended."),
        // A real form would show `challenge` for the browser to solve (see the portal's login page).
        LoginResult::Refused { .. } => {
            HttpResponse::Unauthorized().body("Invalid email or password.")
        }
    })
}

async fn logout(p: web::Data<Phaze>, v: Visitor) -> actix_web::Result<HttpResponse> {
    if let Some(c) = &v.current {
        p.sessions
            .destroy(&c.session.key)
            .await
            .map_err(actix_web::error::ErrorServiceUnavailable)?;
    }
    v.end_session();
    Ok(HttpResponse::SeeOther()
        .insert_header(("location", "/"))
        .finish())
}

/// The routes: one scope behind the visitor layer (signed webhooks would go outside it).
fn routes(layer: VisitorLayer) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.service(
            web::scope("")
                .wrap(from_fn(layer.middleware()))
                .route("/", web::get().to(index))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout)),
        );
    }
}

async fn phaze(
    origin: &str,
) -> Result<(web::Data<Phaze>, VisitorLayer), Box<dyn std::error::Error>> {
    let accounts = Arc::new(MemoryAccounts::default());
    let hasher = Argon2id::new(HashParams::default())?;
    let demo_hash = hasher.hash_sync("correct horse battery staple")?;
    let now = now();
    // One sealing key list for session data, TOTP secrets and personal data; one store for limits and the
    // TOTP steps already used.
    let sealer = Sealer::new(vec![SealingKey::new(&rand::random::<[u8; 32]>())])?;
    let rate_limits = Arc::new(MemoryRateLimits::default());
    let auth = Arc::new(AuthService::new(
        accounts,
        Arc::new(MemoryTokens::default()),
        Arc::new(RateLimitStepLedger::new(
            rate_limits.clone(),
            KeyHasher::new(key()),
        )),
        Arc::new(MemoryMailer::default()),
        Arc::new(hasher),
        AuthKeys {
            tokens: TokenHasher::new(key()),
            sealer: sealer.clone(),
            email_index: EmailIndexKey::new(key()),
        },
        AuthConfig {
            policy: PasswordPolicy::default(),
            verification_ttl: time::Duration::hours(24),
            reset_ttl: time::Duration::hours(1),
            public_url: origin.into(),
            letters: phaze_auth::Letters::default(),
        },
    ));
    // Accounts go in through the service's view of the store, which seals address and name.
    auth.accounts()
        .insert(&Account {
            id: UserId::generate(),
            email: Email::parse("demo@example.com").ok_or("an address")?,
            email_verified: true,
            password_hash: demo_hash,
            display_name: DisplayName::parse("Demo")?,
            is_admin: false,
            locked: false,
            created_at: now,
            password_changed_at: now,
            two_factor: None,
        })
        .await?;
    let sessions = Arc::new(SessionManager::new(
        Arc::new(MemorySessions::default()),
        sealer,
        SessionPolicy::default(),
    ));
    let limits = Arc::new(Limits::new(
        rate_limits,
        LimitKeys {
            keys: key(),
            devices: key(),
            challenges: key(),
        },
        RateLimitPolicy::default(),
    ));
    let layer = VisitorLayer::builder(sessions.clone(), auth.clone(), Csrf::new(key()), origin)
        .post_budget(limits.clone())
        .build();
    Ok((
        web::Data::new(Phaze {
            login: LoginFlow::new(auth, sessions.clone(), limits),
            sessions,
        }),
        layer,
    ))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (p, layer) = phaze("http://127.0.0.1:8090").await?;
    HttpServer::new(move || {
        App::new()
            .app_data(p.clone())
            .configure(routes(layer.clone()))
    })
    .bind(("127.0.0.1", 8090))?
    .run()
    .await?;
    Ok(())
}

/// This example has no clock to inject; a service reads it in one place, as here.
#[allow(clippy::disallowed_methods)]
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

#[cfg(test)]
#[allow(clippy::expect_used)] // test code: a failed expect is a failed test
mod tests {
    use super::*;
    use actix_web::test;

    /// The smoke test CI runs: the form carries a token, a login with it sets the session
    /// cookie (written by the layer), and the next page knows the account.
    #[actix_web::test]
    async fn a_visitor_logs_in_and_is_known() {
        let (p, layer) = phaze("http://localhost").await.expect("wired");
        let app = test::init_service(App::new().app_data(p).configure(routes(layer))).await;
        let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
        let csrf = res
            .response()
            .cookies()
            .next()
            .map(|c| c.into_owned())
            .expect("anonymous cookie");
        let page = String::from_utf8(test::read_body(res).await.to_vec()).expect("utf-8");
        let token = page
            .split("value=")
            .nth(1)
            .and_then(|t| t.split('>').next())
            .expect("a token");
        let login = test::TestRequest::post()
            .uri("/login")
            .cookie(csrf.clone())
            .set_form([
                ("csrf_token", token),
                ("email", "demo@example.com"),
                ("password", "correct horse battery staple"),
            ]);
        let res = test::call_service(&app, login.to_request()).await;
        assert_eq!(res.status(), 303);
        let session = res
            .response()
            .cookies()
            .find(|c| c.name() == "phaze_session")
            .map(|c| c.into_owned())
            .expect("session");
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/")
                .cookie(session)
                .to_request(),
        )
        .await;
        let page = String::from_utf8(test::read_body(res).await.to_vec()).expect("utf-8");
        assert!(page.contains("Logged in as account"), "{page}");
        let forged = test::TestRequest::post()
            .uri("/login")
            .cookie(csrf)
            .set_form([
                ("csrf_token", "x"),
                ("email", "demo@example.com"),
                ("password", "x"),
            ]);
        assert_eq!(
            test::call_service(&app, forged.to_request()).await.status(),
            403
        );
    }
}
