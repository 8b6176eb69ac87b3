//! Rate limiting and brute-force defence for Phaze.
//!
//! - [`TrustedProxies::client`] decides who the client is, from the one header family the proxies
//!   set ([`ForwardedHeaders`]); [`client_network`] groups clients by network (IPv4 /32, IPv6 /64
//!   by default) so rotating addresses buys no new budget.
//! - A [`Window`] is a policy as data: at most `limit` events in any `period` (a sliding log, not
//!   fixed buckets, so no burst at a bucket edge). [`decide`] is the whole algorithm, written once;
//!   every adapter runs it inside one atomic operation of its backend.
//! - [`LimitKey`]s are keyed hashes of what is limited (a network, a normalised email), so a store
//!   holds no address and no email.
//! - [`LoginGuard`]: failure counting, challenge ([`ChallengeIssuer`]) and lockout for an
//!   identifier, with device cookies' own budgets ([`Counter`]), as one policy over the port.
//! - Port: [`RateLimitStore`], one atomic check-and-record per decision. "Load, check, save" in
//!   two calls is what the reviewed design did and what let 10 of 10 parallel attempts through.
//!
//! **Invariant:** no I/O, no clock (time comes in as `now`), no HTTP framework.
#![warn(missing_docs)]

mod challenge;
mod client;
mod device;
mod guard;
mod limit;
mod limits;
mod policy;

pub use challenge::{solve, Challenge, ChallengeError, ChallengeIssuer};
pub use client::{client_network, ClientInfo, ForwardedHeaders, Headers, TrustedProxies};
pub use device::DeviceCookies;
pub use guard::{Counter, LoginGuard, LoginPolicy};
pub use limit::{
    conclude, decide, unix_nanos, Decision, KeyHasher, LimitKey, Op, RateLimitStore, Step,
    StoreError, Window, MAX_STEPS,
};
pub use limits::{
    identifier, LimitError, LimitKeys, Limits, LoginAttempt, LoginError, LoginOutcome, Verdict,
};
pub use policy::{Budget, PolicyError, RateLimitPolicy};
