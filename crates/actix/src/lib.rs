//! Phaze for services built on actix-web: the pieces of Phaze's security stack that sit in the
//! HTTP layer, reusable outside the portal.
//!
//! - [`VisitorLayer`]: Phaze's own sessions and CSRF as middleware. It loads the session
//!   (expiry, rotation, IP binding) and its account, checks CSRF on every unsafe request
//!   (`Sec-Fetch-Site`, `Origin`, then the token from the form or `X-CSRF-Token`), spends the
//!   client's budget of unsafe requests, and writes every cookie; handlers extract a [`Visitor`]
//!   and ask it to start or end the session.
//! - [`LoginFlow`]: the login operation a login handler calls once (limits, password check,
//!   session replaced, device cookie).
//! - [`client::resolve`]: the client's address and scheme behind trusted proxies;
//!   [`headers::SecurityHeaders`]: the security headers of every response; [`Error`]: the
//!   layer's refusals as statuses, 429 with `Retry-After` and `RateLimit-*`
//!   ([`rate_limit_headers`]).
//! - [`PhazeSessionStore`], an [`actix_session::storage::SessionStore`] over Phaze's session
//!   stores (memory, a local directory, Redis, PostgreSQL), below.
//!
//! The layers in order, as the portal wires them: [`client::resolve`] first (outermost), then
//! the [`VisitorLayer`] around every page and API route, with signed webhooks mounted outside it.
//!
//! # actix-session
//!
//! A service already on actix-session keeps its handlers and its
//! [`SessionMiddleware`](actix_session::SessionMiddleware) and changes the one line that builds
//! the store. The cookie then carries a 256-bit id from the OS CSPRNG, the store is keyed by its
//! SHA-256 and holds the session state sealed (XChaCha20-Poly1305, the store key as associated
//! data), exactly as Phaze's own sessions are kept.
//!
//! ```
//! use actix_session::{Session, SessionMiddleware};
//! use actix_web::{cookie::Key, test, web, App, HttpResponse};
//! use phaze_actix::PhazeSessionStore;
//! use phaze_sessions::{Sealer, SealingKey};
//! use phaze_store_memory::MemorySessions;
//! use std::sync::Arc;
//!
//! # actix_web::rt::System::new().block_on(async {
//! // The sealing key comes from configuration; the first key of the list seals, all of them open.
//! let sealer = Sealer::new(vec![SealingKey::new(&[7; 32])])?;
//!
//! // Was: let store = RedisSessionStore::new("redis://127.0.0.1:6379").await?;
//! let store = PhazeSessionStore::new(Arc::new(MemorySessions::default()), sealer);
//!
//! let app = test::init_service(
//!     App::new()
//!         .wrap(SessionMiddleware::new(store, Key::generate()))
//!         .route("/", web::get().to(|session: Session| async move {
//!             session.insert("visits", 1)?;
//!             Ok::<_, actix_web::Error>(HttpResponse::Ok())
//!         })),
//! )
//! .await;
//! let res = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
//! assert!(res.response().cookies().any(|c| c.name() == "id"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```
//!
//! Any `Arc<dyn phaze_sessions::SessionStore>` will do: `phaze_store_fs::FsSessions::open("./var")`
//! for one host, `phaze_store_redis::Redis::new(&config)?.sessions()` for a cluster.
//!
//! # What it keeps and what it cannot
//!
//! actix-session's store seam is `load`, `save`, `update`, `update_ttl` and `delete` of a
//! `HashMap<String, String>` under a key the store mints, with the TTL its configuration names.
//! Within that seam this store keeps:
//!
//! | Guarantee | How |
//! | --- | --- |
//! | The store never holds a cookie value | The cookie carries a [`phaze_sessions::SessionId`] (256 bits, OS CSPRNG); the store is keyed by its SHA-256 ([`phaze_sessions::SessionKey`]), so a dump of the store yields no usable cookie. |
//! | Session state is sealed at rest | The state is sealed with [`phaze_sessions::Sealer`] (XChaCha20-Poly1305) under the store key as associated data: neither keys nor values are in clear, and a record moved to another key does not open (it is deleted and the client gets a fresh, empty session). |
//! | Server-side expiry | Each record carries `expires_at` = now + the TTL actix-session passes, in clear for purging and, sealed, for checking: a record past either is never served, and loading it deletes it. [`PhazeSessionStore::purge_expired`] sweeps the rest. |
//! | Revocation by deletion | `Session::purge()` (actix-session's logout) deletes the record, so the id is dead everywhere at once; so does `renew()` for the old id. |
//! | Hostile cookies never reach the store | Only a value with the exact shape of a Phaze id is looked up; anything else (over-long, not base64url, control characters, truncated) is an unknown session. actix-session has already checked the cookie's signature or decrypted it with its own key. |
//! | A store failure fails closed | A store error is an error (actix-session answers 500), never "no session". |
//!
//! It cannot give, because actix-session has no place for it:
//!
//! - **Rotation with grace.** actix-session never asks the store for a new id except on
//!   `renew()`, which deletes the old one at once; Phaze's periodic rotation, with its grace for
//!   requests in flight, needs a hook the seam lacks.
//! - **A per-user index: "list my sessions", "log out everywhere".** actix-session's state has no
//!   owner. Each record is filed under an owner of its own, `actix-session:<store key hex>`, so the
//!   store's per-user index holds one entry per session and expires with it (one owner for all
//!   would grow one Redis set or directory without bound), and `list_user`/`remove_user` cannot
//!   serve these sessions. A service that needs them must keep its own index, or use Phaze's
//!   `SessionManager` instead.
//! - **IP binding.** The store never sees the request.
//! - **Idle and absolute lifetimes together.** There is one TTL: actix-session's `state_ttl`,
//!   refreshed on every change (`TtlExtensionPolicy::OnStateChanges`, the default; an idle timeout
//!   that only counts changes) or on every request (`OnEveryRequest`: an idle timeout, at a write
//!   per request). Nothing caps a session's total lifetime; a service that needs that stores its
//!   login time in the state and checks it.
//! - **Regeneration on login**, unless the service calls `Session::renew()` when the privilege
//!   level changes, as actix-session's documentation asks.
//! - **Exact TTL refreshes under concurrency.** With `OnEveryRequest`, `update_ttl` reads the record
//!   and writes it back with the new expiry (the port has no "set expiry" operation), so a state
//!   change by a parallel request of the same session that lands between the two is lost. With
//!   the default `OnStateChanges` it is never called. (actix-session is last-writer-wins between
//!   parallel changes of one session with any store.)
//!
//! **Invariant:** the store never sees a cookie value or session state in clear; a record is never
//! served past its expiry; a store error is never turned into "no session".
#![warn(missing_docs)]

pub mod client;
mod clock;
pub mod cookies;
mod error;
pub mod headers;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod session_store;
pub mod steps;
pub mod visitor;

pub use error::{rate_limit_headers, Error};
pub use login::{Credentials, LoginFlow, LoginResult};
pub use session_store::PhazeSessionStore;
pub use steps::RateLimitStepLedger;
pub use visitor::{Current, Visitor, VisitorLayer};
