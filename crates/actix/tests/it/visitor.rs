//! `phaze_actix::VisitorLayer` on an `actix_web::test` service, as an embedder wires it: the
//! session and its account, CSRF on unsafe requests, the POST budget, and the cookies the layer
//! writes (never the handler).

use actix_web::cookie::Cookie;
use actix_web::http::StatusCode;
use actix_web::middleware::from_fn;
use actix_web::{test, web, App, HttpResponse};
use phaze_actix::{Visitor, VisitorLayer};

use crate::services::{secret, services, ORIGIN};
use phaze_auth::{Account, DisplayName, Email, UserId};
use phaze_ratelimit::{Budget, LimitKeys, Limits, RateLimitPolicy};
use phaze_sessions::{Csrf, SessionManager};
use phaze_store_memory::{MemoryAccounts, MemoryRateLimits};
use std::sync::{Arc, Mutex};
use time::{Duration, OffsetDateTime};

struct World {
    sessions: Arc<SessionManager>,
    layer: VisitorLayer,
    clock: Arc<Mutex<OffsetDateTime>>,
    ada: UserId,
    /// Handler runs, so a refusal can be shown to come before the handler.
    runs: Arc<Mutex<u32>>,
}

async fn world(post_per_client: u32) -> World {
    let t0 = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let clock = Arc::new(Mutex::new(t0));
    let s = services(
        Arc::new(MemoryAccounts::default()),
        RateLimitPolicy {
            post_per_client,
            ..RateLimitPolicy::default()
        },
    );
    let ada = UserId::generate();
    s.auth
        .accounts()
        .insert(&Account {
            id: ada,
            email: Email::parse("ada@example.com").unwrap(),
            email_verified: true,
            password_hash: String::new(),
            display_name: DisplayName::parse("Ada").unwrap(),
            is_admin: false,
            locked: false,
            created_at: t0,
            password_changed_at: t0,
            two_factor: None,
        })
        .await
        .unwrap();
    let (sessions, auth, limits) = (s.sessions, s.auth, s.limits);
    let now = clock.clone();
    let layer = VisitorLayer::builder(sessions.clone(), auth, Csrf::new(secret(6)), ORIGIN)
        .post_budget(limits)
        .clock(move || *now.lock().unwrap())
        .build();
    World {
        sessions,
        layer,
        clock,
        ada,
        runs: Arc::new(Mutex::new(0)),
    }
}

/// An app with the routes an embedder would have: a page showing who is there and the token,
/// a form post, a login that starts a session for Ada, a logout.
macro_rules! app {
    ($w:expr) => {{
        let w = &$w;
        let (sessions, runs, ada) = (w.sessions.clone(), w.runs.clone(), w.ada);
        let (s2, r2, r3) = (sessions.clone(), runs.clone(), runs.clone());
        test::init_service(
            App::new().service(
                web::scope("")
                    .wrap(from_fn(w.layer.middleware()))
                    .route(
                        "/",
                        web::get().to(|v: Visitor| async move {
                            let who = v.account().map_or("anonymous".to_owned(), |a| {
                                a.display_name.as_str().to_owned()
                            });
                            HttpResponse::Ok().body(format!("{who} {}", v.csrf_token))
                        }),
                    )
                    .route(
                        "/post",
                        web::post().to(move || {
                            let runs = r2.clone();
                            async move {
                                *runs.lock().unwrap() += 1;
                                HttpResponse::Ok().finish()
                            }
                        }),
                    )
                    .route(
                        "/login",
                        web::post().to(move |v: Visitor| {
                            let (sessions, runs) = (sessions.clone(), runs.clone());
                            async move {
                                *runs.lock().unwrap() += 1;
                                let presented = v.current.as_ref().map(|c| c.session.key);
                                let now =
                                    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
                                let (id, _) = sessions
                                    .start(&ada, presented.as_ref(), &v.meta(), now)
                                    .await
                                    .unwrap();
                                v.start_session(&id);
                                v.set_device_cookie("device-value");
                                HttpResponse::SeeOther().finish()
                            }
                        }),
                    )
                    .route(
                        "/logout",
                        web::post().to(move |v: Visitor| {
                            let (sessions, runs) = (s2.clone(), r3.clone());
                            async move {
                                *runs.lock().unwrap() += 1;
                                if let Some(c) = &v.current {
                                    sessions.destroy(&c.session.key).await.unwrap();
                                }
                                v.end_session();
                                HttpResponse::SeeOther().finish()
                            }
                        }),
                    ),
            ),
        )
        .await
    }};
}

/// `GET /`: who the layer says is there, the token, and the cookies it set.
async fn page(
    app: &impl actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
    >,
    cookies: &[Cookie<'static>],
) -> (String, String, Vec<Cookie<'static>>) {
    let mut req = test::TestRequest::get().uri("/");
    for c in cookies {
        req = req.cookie(c.clone());
    }
    let res = test::call_service(app, req.to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let set = cookies_of(&res);
    let body = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    let (who, token) = body.split_once(' ').unwrap();
    (who.to_owned(), token.to_owned(), set)
}

/// The cookies a response sets.
fn cookies_of(res: &actix_web::dev::ServiceResponse) -> Vec<Cookie<'static>> {
    res.response().cookies().map(|c| c.into_owned()).collect()
}

fn named<'a>(cookies: &'a [Cookie<'static>], name: &str) -> Option<&'a Cookie<'static>> {
    cookies.iter().find(|c| c.name() == name)
}

fn post(uri: &str, cookies: &[Cookie<'static>]) -> test::TestRequest {
    let mut req = test::TestRequest::post().uri(uri);
    for c in cookies {
        req = req.cookie(c.clone());
    }
    req
}

pub(crate) async fn unsafe_requests_need_the_token_and_the_site_s_own_origin() {
    let w = world(1000).await;
    let app = app!(w);
    let (who, token, set) = page(&app, &[]).await;
    assert_eq!(who, "anonymous");
    let anon = named(&set, "phaze_csrf")
        .expect("an anonymous binding")
        .clone();
    assert!(anon.http_only().unwrap());
    let jar = vec![anon];

    let refused = [
        ("no token", post("/post", &jar)),
        (
            "wrong token",
            post("/post", &jar).insert_header(("x-csrf-token", "A".repeat(43))),
        ),
        (
            "token without its cookie",
            post("/post", &[]).insert_header(("x-csrf-token", token.clone())),
        ),
        (
            "foreign origin",
            post("/post", &jar)
                .insert_header(("x-csrf-token", token.clone()))
                .insert_header(("origin", "https://evil.example")),
        ),
        (
            "null origin",
            post("/post", &jar)
                .insert_header(("x-csrf-token", token.clone()))
                .insert_header(("origin", "null")),
        ),
        (
            "cross-site",
            post("/post", &jar)
                .insert_header(("x-csrf-token", token.clone()))
                .insert_header(("sec-fetch-site", "cross-site")),
        ),
    ];
    for (what, req) in refused {
        let res = test::call_service(&app, req.to_request()).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{what}");
    }
    assert_eq!(*w.runs.lock().unwrap(), 0, "no handler ran");

    let header = post("/post", &jar)
        .insert_header(("x-csrf-token", token.clone()))
        .insert_header(("origin", ORIGIN))
        .to_request();
    assert_eq!(
        test::call_service(&app, header).await.status(),
        StatusCode::OK
    );
    let form = post("/post", &jar)
        .set_form([("csrf_token", token.as_str()), ("x", "1")])
        .to_request();
    assert_eq!(
        test::call_service(&app, form).await.status(),
        StatusCode::OK
    );
    let not_utf8 = post("/post", &jar)
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("csrf_token={token}&x=%FF"))
        .to_request();
    assert_eq!(
        test::call_service(&app, not_utf8).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(*w.runs.lock().unwrap(), 2);
}

pub(crate) async fn the_layer_writes_the_session_cookie_and_login_kills_the_old_token() {
    let w = world(1000).await;
    let app = app!(w);
    let (_, anon_token, set) = page(&app, &[]).await;
    let anon = named(&set, "phaze_csrf").unwrap().clone();
    let res = test::call_service(
        &app,
        post("/login", std::slice::from_ref(&anon))
            .insert_header(("x-csrf-token", anon_token.clone()))
            .to_request(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let set = cookies_of(&res);
    let session = named(&set, "phaze_session")
        .expect("set by the layer")
        .clone();
    assert!(session.http_only().unwrap());
    assert!(named(&set, "phaze_device").is_some());
    let jar = vec![session.clone(), anon.clone()];
    let (who, token, _) = page(&app, &jar).await;
    assert_eq!(who, "Ada");
    assert_ne!(token, anon_token, "the token is now the session's");
    let stale = post("/post", &jar)
        .insert_header(("x-csrf-token", anon_token))
        .to_request();
    assert_eq!(
        test::call_service(&app, stale).await.status(),
        StatusCode::FORBIDDEN,
        "a token from before login is dead after it"
    );

    // Logout: the layer expires the cookie and the id is dead server-side.
    let res = test::call_service(
        &app,
        post("/logout", &jar)
            .insert_header(("x-csrf-token", token))
            .to_request(),
    )
    .await;
    let cleared = named(&cookies_of(&res), "phaze_session").unwrap().clone();
    assert_eq!(cleared.value(), "");
    let (who, _, set) = page(&app, &jar).await;
    assert_eq!(who, "anonymous");
    assert_eq!(
        named(&set, "phaze_session").map(|c| c.value()),
        Some(""),
        "a dead id is cleared"
    );
}

pub(crate) async fn a_due_rotation_hands_the_new_id_to_the_client() {
    let w = world(1000).await;
    let app = app!(w);
    let (_, token, set) = page(&app, &[]).await;
    let anon = named(&set, "phaze_csrf").unwrap().clone();
    let res = test::call_service(
        &app,
        post("/login", std::slice::from_ref(&anon))
            .insert_header(("x-csrf-token", token))
            .to_request(),
    )
    .await;
    let old = named(&cookies_of(&res), "phaze_session").unwrap().clone();
    *w.clock.lock().unwrap() += Duration::minutes(16);
    let (who, _, set) = page(&app, std::slice::from_ref(&old)).await;
    assert_eq!(who, "Ada");
    let new = named(&set, "phaze_session").expect("rotated");
    assert_ne!(new.value(), old.value());
    assert!(!new.value().is_empty());
}

pub(crate) async fn forged_cookies_are_anonymous_and_cleared() {
    let w = world(1000).await;
    let app = app!(w);
    for value in ["forged", "", &"A".repeat(43), &"é".repeat(30), "../../etc"] {
        let (who, _, set) = page(&app, &[Cookie::new("phaze_session", value.to_owned())]).await;
        assert_eq!(who, "anonymous", "{value:?}");
        assert_eq!(named(&set, "phaze_session").map(|c| c.value()), Some(""));
    }
}

pub(crate) async fn the_post_budget_answers_429_with_retry_after() {
    let w = world(2).await;
    let app = app!(w);
    let (_, token, set) = page(&app, &[]).await;
    let jar = vec![named(&set, "phaze_csrf").unwrap().clone()];
    for _ in 0..2 {
        let req = post("/post", &jar).insert_header(("x-csrf-token", token.clone()));
        assert_eq!(
            test::call_service(&app, req.to_request()).await.status(),
            StatusCode::OK
        );
    }
    let req = post("/post", &jar).insert_header(("x-csrf-token", token.clone()));
    let res = test::call_service(&app, req.to_request()).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = res.headers();
    assert!(h.get("retry-after").is_some());
    assert_eq!(h.get("ratelimit-limit").unwrap(), "2");
    assert_eq!(h.get("ratelimit-remaining").unwrap(), "0");
    assert_eq!(*w.runs.lock().unwrap(), 2);
}

pub(crate) async fn route_guards_spend_before_the_handler_and_answer_429() {
    let limits = Arc::new(Limits::new(
        Arc::new(MemoryRateLimits::default()),
        LimitKeys {
            keys: secret(3),
            devices: secret(4),
            challenges: secret(5),
        },
        RateLimitPolicy {
            register_per_client: 2,
            ..RateLimitPolicy::default()
        },
    ));
    let start = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
    let clock = Arc::new(Mutex::new(start));
    let now = clock.clone();
    let guards = phaze_actix::limits::Guards::new(limits).clock(move || *now.lock().unwrap());
    let runs = Arc::new(Mutex::new(0u32));
    let counted = runs.clone();
    let app = test::init_service(
        App::new()
            .route(
                "/register",
                web::post()
                    .to(move || {
                        let runs = counted.clone();
                        async move {
                            *runs.lock().unwrap() += 1;
                            HttpResponse::Ok().finish()
                        }
                    })
                    .wrap(from_fn(guards.per_client(Budget::Register))),
            )
            .route(
                "/profile",
                web::post()
                    .to(|| async { HttpResponse::Ok().finish() })
                    .wrap(from_fn(guards.per_account(Budget::ProfileApi))),
            ),
    )
    .await;
    let call = |uri: &'static str| test::TestRequest::post().uri(uri).to_request();
    for _ in 0..2 {
        assert_eq!(
            test::call_service(&app, call("/register")).await.status(),
            StatusCode::OK
        );
    }
    let res = test::call_service(&app, call("/register")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = res.headers();
    assert_eq!(h.get("ratelimit-limit").unwrap(), "2");
    let retry: i64 = h
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3000..=3600).contains(&retry), "{retry}");
    assert_eq!(
        *runs.lock().unwrap(),
        2,
        "the refused request never reached the handler"
    );
    // The window slides on the guard's clock.
    *clock.lock().unwrap() += Duration::hours(1);
    assert_eq!(
        test::call_service(&app, call("/register")).await.status(),
        StatusCode::OK
    );
    // An account budget spends nothing for an anonymous request: the handler decides.
    for _ in 0..40 {
        assert_eq!(
            test::call_service(&app, call("/profile")).await.status(),
            StatusCode::OK
        );
    }
}
