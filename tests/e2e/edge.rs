//! The edge: security headers on every response, generic error pages, health checks.

use actix_web::http::StatusCode;
use phaze_e2e::{spawn_portal, Resp};

use crate::PW;

fn assert_security_headers(r: &Resp, what: &str) {
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: CSP"));
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{what}");
    assert!(csp.contains("script-src 'self'"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert!(r.header("referrer-policy").is_some(), "{what}");
    assert!(r.header("permissions-policy").is_some(), "{what}");
    assert_eq!(
        r.header("cross-origin-opener-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert!(r.header("server").is_none(), "{what}: no Server banner");
    assert!(r.header("x-powered-by").is_none(), "{what}");
}

/// A route of each kind that answers `GET`: pages, the API, probes, a static asset.
const GET_ROUTES: [&str; 10] = [
    "/",
    "/login",
    "/register",
    "/account",
    "/account/sessions",
    "/billing",
    "/api/v1/me",
    "/healthz",
    "/readyz",
    "/static/app.css",
];

#[actix_web::test]
async fn every_response_carries_the_security_headers() {
    let p = spawn_portal().await;
    let b = p.user("headers@example.com", PW).await;
    for path in GET_ROUTES.iter().chain(&["/nope"]) {
        let r = b.get(path).await;
        assert_security_headers(&r, path);
        if !path.starts_with("/static/") {
            assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
        }
    }
    let r = b
        .post_form(
            "/account/profile",
            &[("display_name", "x"), ("csrf_token", "bad")],
        )
        .await;
    assert_security_headers(&r, "403");
}

#[actix_web::test]
async fn errors_render_generic_pages() {
    let p = spawn_portal().await;
    let b = p.browser();
    let r = b.get("/no/such/page").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(r.body.contains("Not found"));
    let r = b.get("/api/v1/nothing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let r = b.get("/logout").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body.contains("Method not allowed"));
}

/// Finding 12.8: pages and probes answer `HEAD` like `GET`, without a body (was 405); a
/// single-use link is not spent by one, and state-changing routes still refuse it.
#[actix_web::test]
async fn head_answers_like_get_without_a_body() {
    let p = spawn_portal().await;
    let b = p.user("head@example.com", PW).await;
    for path in GET_ROUTES {
        let r = b.head(path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body.is_empty(), "{path}: no body");
        assert_security_headers(&r, path);
    }
    let anonymous = p.browser();
    let r = anonymous.head("/account").await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "anonymous: to the login page"
    );
    let r = b.head("/logout").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn health_and_readiness() {
    let p = spawn_portal().await;
    let b = p.browser();
    let r = b.get("/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok"));
    assert!(
        r.header("set-cookie").is_none(),
        "no session work on health checks"
    );
    assert_eq!(b.get("/readyz").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn readiness_fails_when_the_data_directory_goes() {
    let dir = tempfile::tempdir().unwrap();
    let p = phaze_e2e::spawn_fs_portal(dir.path()).await;
    let b = p.browser();
    assert_eq!(b.get("/readyz").await.status, StatusCode::OK);
    std::fs::remove_dir_all(dir.path().join("sessions")).unwrap();
    let r = b.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !r.body.contains(dir.path().to_str().unwrap()),
        "no path in the page"
    );
}

#[actix_web::test]
async fn landing_page_links_to_login_and_registration() {
    let p = spawn_portal().await;
    let r = p.browser().get("/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("href=\"/login\""));
    assert!(r.body.contains("href=\"/register\""));
}

/// Browsers send `Origin: null` with form POSTs under `Referrer-Policy: no-referrer`, and the CSRF
/// check refuses a null origin (`csrf.rs`), so with that policy no form works in a real browser:
/// the policy must let a same-origin POST carry its origin, and still send nothing to other sites.
#[actix_web::test]
async fn the_referrer_policy_lets_browsers_send_the_origin_of_a_form() {
    let p = spawn_portal().await;
    let b = p.browser();
    b.get("/register").await;
    assert_eq!(
        b.get("/login").await.header("referrer-policy"),
        Some("same-origin")
    );
    // What a browser sends under that policy is accepted.
    let origin = p.base.clone();
    let r = b
        .post_form_with(
            "/register",
            &[
                ("email", "origin@example.com"),
                ("password", PW),
                ("password_confirm", PW),
            ],
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
