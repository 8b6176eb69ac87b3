//! What rendering a page costs, apart from the HTTP stack: the account page as a logged-in user
//! sees it, and the login page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::StatusCode;
use criterion::{criterion_group, criterion_main, Criterion};
use phaze_portal::views::{UserView, Views};

fn render(c: &mut Criterion) {
    let views = Views::new().unwrap();
    let mut group = c.benchmark_group("render");
    let mut account = tera::Context::new();
    account.insert("csrf_token", "Yk3x8m2Lq0r9T4vW7zA1cE5gH8jK2nP4sU6wY9bD1fG");
    account.insert(
        "user",
        &UserView {
            email: "ada@example.com",
            display_name: "Ada Lovelace",
            is_admin: false,
        },
    );
    account.insert(
        "account",
        &serde_json::json!({
            "email": "ada@example.com", "display_name": "Ada Lovelace",
            "email_verified": true, "created_at": "2026-01-01 00:00 UTC",
        }),
    );
    account.insert("password_min", &12);
    account.insert("password_max", &128);
    group.bench_function("account", |b| {
        b.iter(|| {
            views
                .render("account.html", StatusCode::OK, &account)
                .unwrap()
        })
    });
    let mut login = tera::Context::new();
    login.insert("csrf_token", "Yk3x8m2Lq0r9T4vW7zA1cE5gH8jK2nP4sU6wY9bD1fG");
    login.insert("email", "");
    group.bench_function("login", |b| {
        b.iter(|| views.render("login.html", StatusCode::OK, &login).unwrap())
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
