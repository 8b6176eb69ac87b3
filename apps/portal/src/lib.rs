//! The Phaze customer portal: a thin actix-web app over the Phaze crates. It owns configuration,
//! wiring, the HTTP edge (client detection, security headers, CSRF, sessions) and the handlers;
//! every rule lives in a domain crate.
//!
//! **Invariant:** handlers never see a request that failed the CSRF checks, and never build an
//! error body themselves: the frame middleware renders every error generically.

pub mod app;
pub mod clock;
pub mod deferred;
pub mod errors;
pub mod hashing;
pub mod http;
pub mod routes;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod tls;
pub mod views;

pub use app::Application;
pub use settings::Settings;
