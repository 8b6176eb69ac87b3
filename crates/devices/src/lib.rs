//! VPN devices for Phaze: what a customer adds to get a WireGuard configuration.
//!
//! - A [`Device`] has a validated [`DeviceName`], an x25519 key pair ([`DeviceKeys`]: the private
//!   key is stored only sealed, with the session key list, bound to the device id, and never
//!   printed), and tunnel addresses ([`TunnelAddress`], IPv4 and IPv6) from a configured pool.
//! - The pool hands out *slots* (small integers) atomically ([`AddressPool`]): a slot is an address
//!   pair by [`PoolSettings::address`], so stores deal in numbers only and two processes never
//!   hold one slot.
//! - [`DeviceService`] adds (key pair, slot, store under the per-account limit, provision the peer;
//!   undone in reverse if a step fails), lists, renders the configuration of, and deletes
//!   (deprovision, remove, free the slot) devices. A device is only ever found through its owner:
//!   another account's device id is the same "not found" as one that does not exist.
//!
//! Ports: [`DeviceStore`], [`AddressPool`], [`Provisioner`].
//!
//! **Invariant:** never reads the clock, never opens a file or socket.
#![warn(missing_docs)]

mod config;
mod keys;
mod model;
mod pool;
mod service;
mod store;

pub use config::{render_config, ServerSettings};
pub use keys::{DeviceKeys, PublicKey};
pub use model::{Device, DeviceId, DeviceName, TunnelAddress};
pub use pool::{AddressPool, PoolError, PoolSettings};
pub use service::{DeviceError, DeviceService, Resealed};
pub use store::{DeviceStore, Inserted, ProvisionError, Provisioner, StoreError};
