//! Rate limiting and brute-force defence for Phaze. This first part decides who the client is:
//! [`TrustedProxies::client`] and the network a limit is keyed by ([`client_network`]).
//! Policies, keys and the atomic `RateLimitStore` port follow (issue 3).
//!
//! **Invariant:** no I/O and no HTTP framework: headers come in through the [`Headers`] trait.
#![warn(missing_docs)]

mod client;

pub use client::{client_network, ClientInfo, Headers, TrustedProxies};
