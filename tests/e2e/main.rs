//! End-to-end tests: each starts the real portal on a random port and drives it over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

mod accounts;
mod admin;
mod csrf;
mod devices;
mod edge;
mod forward_auth;
mod hostile;
mod limits;
mod operations;
mod password;
mod payments;
mod privacy;
mod proxies;
mod sessions;
mod two_factor;

/// A password that passes the policy.
pub const PW: &str = "correct horse battery staple";
