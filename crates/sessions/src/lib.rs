//! Server-side sessions for Phaze, in the shape the security review asked for.
//!
//! - A session id is 256 bits from the OS CSPRNG ([`SessionId`]); it only ever lives in the cookie.
//! - The store is keyed by the SHA-256 of the id ([`SessionKey`]), and what it holds is sealed with
//!   XChaCha20-Poly1305 ([`Sealer`]), so a dump of the store yields neither a usable cookie nor the
//!   session's contents. Sealing keys are a list: the first seals, all of them open, so a key can be
//!   rotated without logging everyone out.
//! - [`SessionManager`] enforces the absolute lifetime, the idle timeout, rotation with a short
//!   grace for requests in flight, optional IP binding, and the per-user index behind "list my
//!   sessions" and "log out everywhere".
//!
//! **Invariant:** this crate never reads the clock, the network or the filesystem: time comes in as
//! `now`, and storage goes through the [`SessionStore`] port.
#![warn(missing_docs)]

mod id;
mod manager;
mod seal;
mod store;

pub use id::{SessionId, SessionKey};
pub use manager::{
    ClientMeta, Error, IpBinding, Loaded, Session, SessionData, SessionInfo, SessionManager,
    SessionPolicy,
};
pub use seal::{SealError, Sealer, SealingKey};
pub use store::{SessionStore, StoreError, StoredSession};
