//! Server-side sessions for Phaze, in the shape the security review asked for.
//!
//! - A session id is 256 bits from the OS CSPRNG ([`SessionId`]), or derived from one at rotation
//!   (below); it only ever lives in the cookie.
//! - The store is keyed by the SHA-256 of the id ([`SessionKey`]), and what it holds is sealed with
//!   XChaCha20-Poly1305 ([`Sealer`]), so a dump of the store yields neither a usable cookie nor the
//!   session's contents. Sealing keys are a list: the first seals, all of them open, so a key can be
//!   rotated without logging everyone out.
//! - [`SessionManager`] enforces the absolute lifetime, the idle timeout, rotation with a short
//!   grace for requests in flight, optional IP binding, and the per-user index behind "list my
//!   sessions" and "log out everywhere".
//!
//! Rotation is a compare-and-swap in the store ([`SessionStore::rotate`]), so a session has one
//! successor however many requests carry its id when it falls due. The winner retires the old
//! record: it points at the successor's key, expires after the grace period, and holds, sealed,
//! the random salt from which the successor's id is derived (SHA-256 of the old id and the salt).
//! A request that loses the race, or arrives within the grace period with the old id, derives the
//! same successor from the id it carries and is given it as its new cookie; the successor's id is
//! never stored, not even sealed, and the salt is useless without the old id, which only the
//! client has. A retired id works only through its successor, and [`SessionStore::remove`]
//! follows successor pointers, so a logout or revocation made with any id of the chain ends the
//! old id and the new one at once.
//!
//! - [`Csrf`] makes and checks the CSRF tokens bound to a session's secret, or before login to a
//!   signed anonymous cookie.
//!
//! **Invariant:** this crate never reads the clock, the network or the filesystem: time comes in as
//! `now`, and storage goes through the [`SessionStore`] port.
//!
//! ```
//! use phaze_sessions::{Binding, ClientMeta, Csrf, Sealer, SealingKey, SessionId, SessionManager, UserId,
//!     SessionPolicy};
//! use phaze_store_memory::MemorySessions;
//! use secrecy::SecretBox;
//! use std::sync::Arc;
//! use time::{macros::datetime, Duration};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Keys come from configuration, never from code.
//! let sealer = Sealer::new(vec![SealingKey::new(&[7; 32])])?;
//! let sessions = SessionManager::new(
//!     Arc::new(MemorySessions::default()),
//!     sealer,
//!     SessionPolicy::default(), // 8 h absolute, 30 min idle, a new id every 15 min
//! );
//! let csrf = Csrf::new(SecretBox::new(Box::new([9; 32])));
//! let meta = ClientMeta::default();
//! let login = datetime!(2026-01-01 09:00 UTC);
//!
//! // Login: the id goes into the cookie; the store sees only its hash and sealed data.
//! let ada = UserId::generate(); // the account's id
//! let (id, session) = sessions.create(&ada, &meta, login).await?;
//! let token = csrf.token(&Binding::Session(&session.data.csrf_secret)); // into each form
//!
//! // A later request: the cookie loads the session, and the form's token must match it.
//! let cookie = SessionId::parse(id.expose()).ok_or("not an id")?;
//! let loaded = sessions.load(&cookie, &meta, login + Duration::minutes(5)).await?.ok_or("gone")?;
//! assert_eq!(loaded.session.data.user_id, ada);
//! assert!(csrf.verify(&Binding::Session(&loaded.session.data.csrf_secret), &token));
//! assert!(!csrf.verify(&Binding::Session(&[0; 32]), &token));
//!
//! // 20 minutes in, the id is due for rotation: the response must set the new one.
//! let later = login + Duration::minutes(20);
//! let rotated = sessions.load(&cookie, &meta, later).await?.ok_or("gone")?;
//! let new_id = rotated.rotated_to.ok_or("not rotated")?;
//!
//! // Past the grace period the old id is dead; past the idle timeout the new one is too.
//! assert!(sessions.load(&cookie, &meta, login + Duration::minutes(21)).await?.is_none());
//! assert!(sessions.load(&new_id, &meta, login + Duration::hours(1)).await?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

mod csrf;
mod id;
mod manager;
mod seal;
mod settings;
mod store;

pub use csrf::{new_anonymous_value, valid_anonymous_value, Binding, Csrf};
pub use id::{SessionId, SessionKey};
pub use manager::{
    ClientMeta, Error, IpBinding, Loaded, Session, SessionData, SessionInfo, SessionManager,
    SessionPolicy,
};
pub use phaze_ids::UserId;
pub use seal::{SealError, Sealer, SealingKey};
pub use settings::{SessionSettings, SettingsError};
pub use store::{Rotation, SessionStore, StoreError, StoredSession};
