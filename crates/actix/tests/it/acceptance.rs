//! actix-session's acceptance suite for stores (`actix_session::test_helpers`, which is
//! `#[cfg(test)]` there and so cannot be called from here), ported to `actix_web::test` services:
//! the workflows every actix-session store must pass, under both cookie policies, with
//! invalidation supported (a renewed or purged id no longer loads).

use actix_session::config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy};
use actix_session::{Session, SessionMiddleware};
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::{test, web, App, HttpResponse};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::support::Fixture;

const POLICIES: [CookieContentSecurity; 2] = [
    CookieContentSecurity::Signed,
    CookieContentSecurity::Private,
];

/// actix-session's `basic_workflow`: cookie path, name and domain as configured, state read back.
pub(crate) async fn basic_workflow(f: Fixture) {
    for policy in POLICIES {
        let app = test::init_service(
            App::new()
                .wrap(
                    SessionMiddleware::builder(f.store(), f.key.clone())
                        .cookie_path("/test/".into())
                        .cookie_name("actix-test".into())
                        .cookie_domain(Some("localhost".into()))
                        .cookie_content_security(policy)
                        .session_lifecycle(
                            PersistentSession::default().session_ttl(Duration::seconds(100)),
                        )
                        .build(),
                )
                .service(web::resource("/").to(|ses: Session| async move {
                    let _ = ses.insert("counter", 100);
                    "test"
                }))
                .service(web::resource("/test/").to(|ses: Session| async move {
                    let val: usize = ses.get("counter").unwrap().unwrap();
                    format!("counter: {val}")
                })),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
        let cookie = cookie(&res, "actix-test").unwrap();
        assert_eq!(cookie.path(), Some("/test/"));
        let req = test::TestRequest::with_uri("/test/")
            .cookie(cookie)
            .to_request();
        assert_eq!(test::call_and_read_body(&app, req).await, "counter: 100");
    }
}

/// actix-session's `expiration_is_refreshed_on_changes`: a change re-sets the cookie with the
/// TTL, a request that changes nothing sets no cookie.
pub(crate) async fn expiration_is_refreshed_on_changes(f: Fixture) {
    for policy in POLICIES {
        let ttl = Duration::seconds(60);
        let app = ttl_app(&f, policy, ttl, TtlExtensionPolicy::OnStateChanges).await;
        let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
        let cookie_1 = cookie(&res, "id").unwrap();
        assert_eq!(cookie_1.max_age(), Some(ttl));
        let req = test::TestRequest::with_uri("/test/")
            .cookie(cookie_1.clone())
            .to_request();
        let res = test::call_service(&app, req).await;
        assert!(res.response().cookies().next().is_none());
        let req = test::TestRequest::get().cookie(cookie_1).to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(cookie(&res, "id").unwrap().max_age(), Some(ttl));
    }
}

/// actix-session's `expiration_is_always_refreshed_if_configured_to_refresh_on_every_request`.
pub(crate) async fn expiration_is_refreshed_on_every_request_if_configured(f: Fixture) {
    for policy in POLICIES {
        let ttl = Duration::seconds(60);
        let app = ttl_app(&f, policy, ttl, TtlExtensionPolicy::OnEveryRequest).await;
        let res = test::call_service(&app, test::TestRequest::get().to_request()).await;
        let cookie_1 = cookie(&res, "id").unwrap();
        assert_eq!(cookie_1.max_age(), Some(ttl));
        let req = test::TestRequest::with_uri("/test/")
            .cookie(cookie_1)
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(cookie(&res, "id").unwrap().max_age(), Some(ttl));
    }
}

/// actix-session's `complex_workflow` with `is_invalidation_supported = true`, and its `guard`
/// steps: anonymous, changes, login with `renew()`, the pre-login id dead, logout with `purge()`.
pub(crate) async fn complex_workflow(f: Fixture) {
    for policy in POLICIES {
        let ttl = Duration::days(7);
        let app = test::init_service(
            App::new()
                .wrap(
                    SessionMiddleware::builder(f.store(), f.key.clone())
                        .cookie_name("test-session".into())
                        .cookie_content_security(policy)
                        .session_lifecycle(PersistentSession::default().session_ttl(ttl))
                        .build(),
                )
                .route("/", web::get().to(index))
                .route("/do_something", web::post().to(do_something))
                .route("/login", web::post().to(login))
                .route("/logout", web::post().to(logout)),
        )
        .await;
        let counter = |user_id: Option<&str>, counter| IndexResponse {
            user_id: user_id.map(str::to_owned),
            counter,
        };

        // 1: no state, no cookie.
        let (set, body) = call(&app, test::TestRequest::get().uri("/"), None).await;
        assert!(set.is_none());
        assert_eq!(body, counter(None, 0));

        // 2: a change creates the session.
        let req = test::TestRequest::post().uri("/do_something");
        let (set, body) = call(&app, req, None).await;
        assert_eq!(body, counter(None, 1));
        let cookie_1 = set.unwrap();
        assert_eq!(cookie_1.max_age(), Some(ttl));

        // 3: reading sets no cookie.
        let (set, body) = call(&app, test::TestRequest::get().uri("/"), Some(&cookie_1)).await;
        assert!(set.is_none());
        assert_eq!(body, counter(None, 1));

        // 4: a change re-sets the cookie, same lifetime.
        let req = test::TestRequest::post().uri("/do_something");
        let (set, body) = call(&app, req, Some(&cookie_1)).await;
        assert_eq!(body, counter(None, 2));
        let cookie_2 = set.unwrap();
        assert_eq!(cookie_2.max_age(), cookie_1.max_age());

        // 5: login renews: a new cookie value.
        let req = test::TestRequest::post().uri("/login").set_json(Identity {
            user_id: "ferris".into(),
        });
        let (set, body) = call(&app, req, Some(&cookie_2)).await;
        assert_eq!(body, counter(Some("ferris"), 2));
        let cookie_3 = set.unwrap();
        assert_ne!(cookie_2.value(), cookie_3.value());

        // 6, 7: the new id carries the state.
        let (_, body) = call(&app, test::TestRequest::get().uri("/"), Some(&cookie_3)).await;
        assert_eq!(body, counter(Some("ferris"), 2));
        let req = test::TestRequest::post().uri("/do_something");
        let (_, body) = call(&app, req, Some(&cookie_3)).await;
        assert_eq!(body, counter(Some("ferris"), 3));

        // 8: the id from before login is dead.
        let (set, body) = call(&app, test::TestRequest::get().uri("/"), Some(&cookie_2)).await;
        assert!(set.is_none());
        assert_eq!(body, counter(None, 0));

        // 9: logout clears the cookie.
        let req = test::TestRequest::post().uri("/logout");
        let (set, _) = call(&app, req, Some(&cookie_3)).await;
        let removal = set.unwrap();
        assert_eq!(removal.max_age().map(|t| t.whole_seconds()), Some(0));
        assert_eq!(removal.path(), Some("/"));

        // 10: and the logged-out id is dead.
        let (set, body) = call(&app, test::TestRequest::get().uri("/"), Some(&cookie_3)).await;
        assert!(set.is_none());
        assert_eq!(body, counter(None, 0));
    }
}

async fn ttl_app(
    f: &Fixture,
    policy: CookieContentSecurity,
    ttl: Duration,
    extension: TtlExtensionPolicy,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(
        App::new()
            .wrap(
                SessionMiddleware::builder(f.store(), f.key.clone())
                    .cookie_content_security(policy)
                    .session_lifecycle(
                        PersistentSession::default()
                            .session_ttl(ttl)
                            .session_ttl_extension_policy(extension),
                    )
                    .build(),
            )
            .service(web::resource("/").to(|ses: Session| async move {
                let _ = ses.insert("counter", 100);
                "test"
            }))
            .service(web::resource("/test/").to(|| async move { "no-changes-in-session" })),
    )
    .await
}

fn cookie<B>(res: &ServiceResponse<B>, name: &str) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == name)
        .map(Cookie::into_owned)
}

/// Sends `req` (with the session cookie, if any); the cookie set and the JSON answer.
async fn call<S, B>(
    app: &S,
    req: test::TestRequest,
    cookie_in: Option<&Cookie<'static>>,
) -> (Option<Cookie<'static>>, IndexResponse)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let req = match cookie_in {
        Some(c) => req.cookie(c.clone()),
        None => req,
    };
    let res = test::call_service(app, req.to_request()).await;
    let set = cookie(&res, "test-session");
    let body = test::read_body(res).await;
    let parsed = serde_json::from_slice(&body).unwrap_or_else(|_| IndexResponse {
        user_id: Some(String::from_utf8_lossy(&body).into_owned()),
        counter: -1,
    });
    (set, parsed)
}

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct IndexResponse {
    user_id: Option<String>,
    counter: i32,
}

#[derive(Serialize, Deserialize)]
struct Identity {
    user_id: String,
}

async fn index(session: Session) -> actix_web::Result<HttpResponse> {
    let user_id: Option<String> = session.get("user_id")?;
    let counter: i32 = session.get("counter")?.unwrap_or(0);
    Ok(HttpResponse::Ok().json(IndexResponse { user_id, counter }))
}

async fn do_something(session: Session) -> actix_web::Result<HttpResponse> {
    let user_id: Option<String> = session.get("user_id")?;
    let counter: i32 = session.get::<i32>("counter")?.map_or(1, |c| c + 1);
    session.insert("counter", counter)?;
    Ok(HttpResponse::Ok().json(IndexResponse { user_id, counter }))
}

async fn login(identity: web::Json<Identity>, session: Session) -> actix_web::Result<HttpResponse> {
    let id = identity.into_inner().user_id;
    session.insert("user_id", &id)?;
    session.renew();
    let counter: i32 = session.get("counter")?.unwrap_or(0);
    Ok(HttpResponse::Ok().json(IndexResponse {
        user_id: Some(id),
        counter,
    }))
}

async fn logout(session: Session) -> actix_web::Result<HttpResponse> {
    let id: Option<String> = session.get("user_id")?;
    let body = match id {
        Some(id) => {
            session.purge();
            format!("Logged out: {id}")
        }
        None => "Could not log out anonymous user".to_owned(),
    };
    Ok(HttpResponse::Ok().body(body))
}
