//! `phaze_actix::LoginFlow` behind a login handler that does what the flow's docs ask of one:
//! parse, call `log_in` once, render. The rules are the crates'; these tests show the flow
//! applies them in order and that the layer writes what it asks for.

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{test, web, App, HttpRequest, HttpResponse};
use phaze_actix::{Credentials, LoginFlow, LoginResult, Visitor, VisitorLayer};
use phaze_auth::{Account, DisplayName, Email, UserId};
use phaze_ratelimit::RateLimitPolicy;
use phaze_sessions::Csrf;
use phaze_store_memory::{MemoryAccounts, MemoryMailer};
use std::sync::Arc;
use time::OffsetDateTime;

use crate::services::{hasher, secret, services, ORIGIN};

const PASSWORD: &str = "correct horse battery staple";

struct World {
    layer: VisitorLayer,
    flow: LoginFlow,
    mailer: Arc<MemoryMailer>,
}

/// Ada (confirmed) and Bob (whose address was never confirmed), both with [`PASSWORD`].
async fn world(policy: RateLimitPolicy) -> World {
    let t0 = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let s = services(Arc::new(MemoryAccounts::default()), policy);
    for (email, verified) in [("ada@example.com", true), ("bob@example.com", false)] {
        s.auth
            .accounts()
            .insert(&Account {
                id: UserId::generate(),
                email: Email::parse(email).unwrap(),
                email_verified: verified,
                password_hash: hasher().hash_sync(PASSWORD).unwrap(),
                display_name: DisplayName::parse("Someone").unwrap(),
                is_admin: false,
                locked: false,
                created_at: t0,
                password_changed_at: t0,
                two_factor: None,
            })
            .await
            .unwrap();
    }
    let layer = VisitorLayer::builder(
        s.sessions.clone(),
        s.auth.clone(),
        Csrf::new(secret(6)),
        ORIGIN,
    )
    .clock(move || t0)
    .build();
    World {
        layer,
        flow: LoginFlow::new(s.auth, s.sessions, s.limits).clock(move || t0),
        mailer: s.mailer,
    }
}

/// The handler an embedder writes: the result as a word the tests read.
async fn login(
    flow: web::Data<LoginFlow>,
    v: Visitor,
    req: HttpRequest,
    form: web::Form<Credentials>,
) -> Result<HttpResponse, phaze_actix::Error> {
    Ok(match flow.log_in(&v, &req, form.into_inner()).await? {
        LoginResult::LoggedIn(a) => HttpResponse::SeeOther().body(a.email.as_str().to_owned()),
        LoginResult::Unconfirmed => HttpResponse::Forbidden().body("unconfirmed"),
        LoginResult::Locked => HttpResponse::Forbidden().body("locked"),
        LoginResult::Refused {
            challenge,
            unchecked,
        } => HttpResponse::Unauthorized().body(format!(
            "refused challenge={} unchecked={unchecked}",
            challenge.map_or("none".to_owned(), |c| phaze_ratelimit::solve(&c))
        )),
    })
}

macro_rules! app {
    ($w:expr) => {{
        let w = &$w;
        test::init_service(
            App::new().app_data(web::Data::new(w.flow.clone())).service(
                web::scope("")
                    .wrap(from_fn(w.layer.middleware()))
                    .route(
                        "/",
                        web::get().to(|v: Visitor| async move {
                            let who = v.account().map_or("anonymous", |a| a.email.as_str());
                            HttpResponse::Ok().body(format!("{who} {}", v.csrf_token))
                        }),
                    )
                    .route("/login", web::post().to(login)),
            ),
        )
        .await
    }};
}

/// A browser: its cookie jar and the CSRF token of its last page.
struct Browser {
    jar: Vec<Cookie<'static>>,
    token: String,
}

impl Browser {
    fn keep(&mut self, res: &actix_web::dev::ServiceResponse) {
        for c in res.response().cookies() {
            self.jar.retain(|k| k.name() != c.name());
            if !c.value().is_empty() {
                self.jar.push(c.into_owned());
            }
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }
}

async fn visit(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    b: &mut Browser,
) -> String {
    let mut req = test::TestRequest::get().uri("/");
    for c in &b.jar {
        req = req.cookie(c.clone());
    }
    let res = test::call_service(app, req.to_request()).await;
    b.keep(&res);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let (who, token) = body.split_once(' ').unwrap();
    b.token = token.to_owned();
    who.to_owned()
}

async fn log_in(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    b: &mut Browser,
    fields: &[(&str, &str)],
) -> (StatusCode, String, Vec<String>) {
    let mut req = test::TestRequest::post().uri("/login");
    for c in &b.jar {
        req = req.cookie(c.clone());
    }
    let mut form = vec![("csrf_token", b.token.as_str())];
    form.extend_from_slice(fields);
    let res = test::call_service(app, req.set_form(form).to_request()).await;
    let set = res
        .response()
        .cookies()
        .map(|c| c.name().to_owned())
        .collect();
    let status = res.status();
    b.keep(&res);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    (status, body, set)
}

fn browser() -> Browser {
    Browser {
        jar: Vec::new(),
        token: String::new(),
    }
}

pub(crate) async fn a_right_password_replaces_the_session_and_sets_both_cookies() {
    let w = world(RateLimitPolicy::default()).await;
    let app = app!(w);
    let mut b = browser();
    assert_eq!(visit(&app, &mut b).await, "anonymous");
    let creds = [("email", " Ada@Example.com "), ("password", PASSWORD)];
    let (status, body, set) = log_in(&app, &mut b, &creds).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(body, "ada@example.com");
    assert!(set.iter().any(|c| c == "phaze_session"), "{set:?}");
    assert!(set.iter().any(|c| c == "phaze_device"), "{set:?}");
    let first = b.cookie("phaze_session").unwrap();
    assert_eq!(visit(&app, &mut b).await, "ada@example.com");

    // Logging in again from a logged-in browser: a new id, and the old one is dead server-side.
    let (status, _, _) = log_in(&app, &mut b, &creds).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let second = b.cookie("phaze_session").unwrap();
    assert_ne!(first, second);
    let mut old = browser();
    old.jar.push(Cookie::new("phaze_session", first));
    assert_eq!(visit(&app, &mut old).await, "anonymous");
}

pub(crate) async fn a_wrong_password_and_an_unknown_address_are_refused_alike() {
    let w = world(RateLimitPolicy::default()).await;
    let app = app!(w);
    let mut b = browser();
    visit(&app, &mut b).await;
    let wrong = log_in(
        &app,
        &mut b,
        &[("email", "ada@example.com"), ("password", "not it at all")],
    )
    .await;
    let unknown = log_in(
        &app,
        &mut b,
        &[("email", "nobody@example.com"), ("password", PASSWORD)],
    )
    .await;
    for (status, body, set) in [wrong, unknown] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, "refused challenge=none unchecked=false");
        assert!(!set
            .iter()
            .any(|c| c == "phaze_session" || c == "phaze_device"));
    }
    assert_eq!(visit(&app, &mut b).await, "anonymous");
    assert!(w.mailer.sent().is_empty());
}

pub(crate) async fn a_right_password_on_an_unconfirmed_address_mails_a_link_and_starts_nothing() {
    let w = world(RateLimitPolicy::default()).await;
    let app = app!(w);
    let mut b = browser();
    visit(&app, &mut b).await;
    let (status, body, set) = log_in(
        &app,
        &mut b,
        &[("email", "bob@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "unconfirmed")
    );
    assert!(!set.iter().any(|c| c == "phaze_session"));
    let sent = w.mailer.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "bob@example.com");
    // A wrong password for that address mails nothing and says nothing of its state.
    let (status, body, _) = log_in(
        &app,
        &mut b,
        &[("email", "bob@example.com"), ("password", "not it at all")],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(w.mailer.sent().len(), 1);
}

pub(crate) async fn failures_bring_a_challenge_and_no_password_is_checked_without_it() {
    let w = world(RateLimitPolicy {
        login_per_client: 100,
        ..RateLimitPolicy::default()
    })
    .await;
    let app = app!(w);
    let mut b = browser();
    visit(&app, &mut b).await;
    let wrong = [("email", "ada@example.com"), ("password", "not it at all")];
    for _ in 0..2 {
        let (_, body, _) = log_in(&app, &mut b, &wrong).await;
        assert_eq!(body, "refused challenge=none unchecked=false");
    }
    let (_, body, _) = log_in(&app, &mut b, &wrong).await;
    let answer = body
        .strip_prefix("refused challenge=")
        .and_then(|r| r.strip_suffix(" unchecked=false"))
        .filter(|a| *a != "none")
        .unwrap_or_else(|| panic!("the third failure brings a challenge: {body}"))
        .to_owned();

    // Without the answer, even the right password is not checked.
    let right = [("email", "ada@example.com"), ("password", PASSWORD)];
    let (status, body, set) = log_in(&app, &mut b, &right).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.ends_with("unchecked=true"), "{body}");
    assert!(!set.iter().any(|c| c == "phaze_session"));

    // With it, the right password logs in.
    let mut with = right.to_vec();
    with.push(("challenge", &answer));
    let (status, body, _) = log_in(&app, &mut b, &with).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
}

pub(crate) async fn a_spent_client_budget_is_a_429_before_any_password_check() {
    let w = world(RateLimitPolicy {
        login_per_client: 2,
        ..RateLimitPolicy::default()
    })
    .await;
    let app = app!(w);
    let mut b = browser();
    visit(&app, &mut b).await;
    let wrong = [("email", "ada@example.com"), ("password", "not it at all")];
    for _ in 0..2 {
        assert_eq!(
            log_in(&app, &mut b, &wrong).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // The right password is not enough once the budget is spent.
    let mut req = test::TestRequest::post().uri("/login");
    for c in &b.jar {
        req = req.cookie(c.clone());
    }
    let res = test::call_service(
        &app,
        req.set_form([
            ("csrf_token", b.token.as_str()),
            ("email", "ada@example.com"),
            ("password", PASSWORD),
        ])
        .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    assert_eq!(res.headers().get("ratelimit-limit").unwrap(), "2");
    assert!(!res
        .response()
        .cookies()
        .any(|c| c.name() == "phaze_session"));
}
