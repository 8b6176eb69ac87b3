//! What rendering a page costs, apart from the HTTP stack: the account page as a logged-in user
//! sees it, and the login page.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use actix_web::http::StatusCode;
use criterion::{criterion_group, criterion_main, Criterion};
use phaze_portal::views::{self, AccountPage, AccountView, Layout, LoginPage, UserView};

const TOKEN: &str = "Yk3x8m2Lq0r9T4vW7zA1cE5gH8jK2nP4sU6wY9bD1fG";

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    group.bench_function("account", |b| {
        b.iter(|| {
            let page = AccountPage {
                layout: Layout {
                    csrf_token: TOKEN,
                    user: Some(UserView {
                        email: "ada@example.com",
                        display_name: "Ada Lovelace",
                        is_admin: false,
                    }),
                    ..Layout::default()
                },
                account: AccountView {
                    email: "ada@example.com",
                    display_name: "Ada Lovelace",
                    email_verified: true,
                    two_factor: false,
                    created_at: "2026-01-01 00:00 UTC".to_owned(),
                },
                password_min: 12,
                password_max: 128,
            };
            views::render(StatusCode::OK, &page).unwrap()
        })
    });
    group.bench_function("login", |b| {
        b.iter(|| {
            let page = LoginPage {
                layout: Layout {
                    csrf_token: TOKEN,
                    ..Layout::default()
                },
                email: "",
                next: None,
                challenge: None,
                reauth: false,
            };
            views::render(StatusCode::OK, &page).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
