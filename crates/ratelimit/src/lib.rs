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
//! - [`Limits`]: every limit of a portal as the calls a request handler makes: spend a budget,
//!   and the whole login sequence in one call ([`Limits::login`]), the credential check passed
//!   in as a closure that runs only when every limit allows it.
//! - Port: [`RateLimitStore`], one atomic check-and-record per decision. "Load, check, save" in
//!   two calls is what the reviewed design did and what let 10 of 10 parallel attempts through.
//!
//! **Invariant:** no I/O, no clock (time comes in as `now`), no HTTP framework.
//!
//! ```
//! use phaze_ratelimit::{ForwardedHeaders, Headers, LimitKeys, Limits, LoginAttempt, LoginOutcome,
//!     RateLimitPolicy, TrustedProxies, Verdict};
//! use phaze_store_memory::MemoryRateLimits;
//! use secrecy::SecretBox;
//! use std::convert::Infallible;
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use time::macros::datetime;
//!
//! /// The request's headers, as the HTTP layer hands them over (lower-case names).
//! struct Request(Vec<(&'static str, &'static str)>);
//! impl Headers for Request {
//!     fn values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
//!         let name = name.to_owned();
//!         self.0.iter().filter(move |(k, _)| *k == name).map(|(_, v)| *v)
//!     }
//! }
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // Who is asking. The proxy at 10.0.0.2 appended the address it saw; the client wrote the
//! // left-hand entry itself, so it is not believed.
//! let proxies = TrustedProxies::new(vec!["10.0.0.0/8".parse()?], ForwardedHeaders::XForwardedFor);
//! let request = Request(vec![
//!     ("x-forwarded-for", "203.0.113.66, 198.51.100.7"),
//!     ("x-forwarded-proto", "https"),
//! ]);
//! let client = proxies.client(Some("10.0.0.2".parse()?), &request);
//! assert_eq!(client.ip, "198.51.100.7".parse::<IpAddr>()?);
//! assert!(client.https);
//! // From a peer that is not a trusted proxy, the same headers are ignored.
//! let direct = proxies.client(Some("192.0.2.1".parse()?), &request);
//! assert_eq!((direct.ip, direct.https), ("192.0.2.1".parse()?, false));
//!
//! // Logins: 5 attempts per client network per 15 minutes, a challenge after 3 failures of one
//! // identifier, a lock after 10. Secrets come from configuration.
//! let limits = Limits::new(
//!     Arc::new(MemoryRateLimits::default()),
//!     LimitKeys {
//!         keys: SecretBox::new(Box::new([1; 32])),
//!         devices: SecretBox::new(Box::new([2; 32])),
//!         challenges: SecretBox::new(Box::new([3; 32])),
//!     },
//!     RateLimitPolicy::default(),
//! );
//! let attempt = LoginAttempt {
//!     client: client.ip,
//!     identifier: "Ada@Example.com",
//!     device_cookie: None,
//!     challenge_answer: None,
//! };
//! // The credential check (argon2, say) is a closure: it runs only if every limit allows it.
//! let wrong = || async { Ok::<Verdict<&str>, Infallible>(Verdict::Wrong) };
//! let right = || async { Ok::<_, Infallible>(Verdict::Right("user-1")) };
//! let now = datetime!(2026-01-01 09:00 UTC);
//!
//! let outcome = limits.login(attempt, now, wrong).await?;
//! assert!(matches!(outcome, LoginOutcome::Wrong { challenge: None }));
//! // A success clears the identifier's failures and gives the browser a device cookie.
//! let LoginOutcome::Right { value, device_cookie } = limits.login(attempt, now, right).await?
//! else {
//!     return Err("the right password, within every limit, logs in".into());
//! };
//! assert_eq!(value, "user-1");
//! assert!(!device_cookie.is_empty());
//! // Three more failures: the third asks for a proof-of-work challenge on the next attempt.
//! limits.login(attempt, now, wrong).await?;
//! limits.login(attempt, now, wrong).await?;
//! let outcome = limits.login(attempt, now, wrong).await?;
//! assert!(matches!(outcome, LoginOutcome::Wrong { challenge: Some(_) }));
//! // The network's five attempts are spent: refused, even with the right password, unchecked.
//! let outcome = limits.login(attempt, now, right).await?;
//! assert!(matches!(outcome, LoginOutcome::Limited(d) if d.reset_after.whole_minutes() == 15));
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
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
