use async_trait::async_trait;
use phaze_ids::UserId;

use crate::{Device, DeviceId, PublicKey, TunnelAddress};

/// The device store failed; callers fail closed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The id is taken.
    #[error("device already exists")]
    Duplicate,
    /// The backend failed.
    #[error("device store unavailable")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What [`DeviceStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Stored.
    Yes,
    /// The owner already has the most devices allowed: nothing stored.
    LimitReached,
}

/// Devices by owner. A device is only ever looked up with its owner's id.
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores `device` unless its owner already has `limit` devices; counting and storing are one
    /// atomic step across every process, so `limit` holds under any concurrency.
    async fn insert(&self, device: &Device, limit: u32) -> Result<Inserted, StoreError>;
    /// The owner's devices, oldest first.
    async fn list(&self, user: &UserId) -> Result<Vec<Device>, StoreError>;
    /// One of the owner's devices; another owner's is `None`, like one that does not exist.
    async fn get(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError>;
    /// Removes one of the owner's devices and returns it; `None` if the owner has no such device.
    async fn remove(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError>;
    /// Up to `limit` devices of every owner after the one of `after` (from the start for
    /// `None`), in an order of the store's that does not change while it is walked: a key
    /// rotation visits every device with it.
    async fn page(&self, after: Option<&DeviceId>, limit: usize)
        -> Result<Vec<Device>, StoreError>;
    /// Replaces the sealed private key of the owner's device `id` with `new` if it is still
    /// `old`; `false` if it is not (or the device is gone).
    async fn reseal(
        &self,
        user: &UserId,
        id: &DeviceId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError>;
}

/// Provisioning failed: the VPN server did not take the change.
#[derive(Debug, thiserror::Error)]
#[error("provisioning failed")]
pub struct ProvisionError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Tells the VPN server about peers (through `wg`, a peer-list file for a sidecar, or memory).
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// The server accepts `key` from `address` (its /32 and /128).
    async fn add_peer(
        &self,
        key: &PublicKey,
        address: &TunnelAddress,
    ) -> Result<(), ProvisionError>;
    /// The server forgets `key`. Removing a peer it does not know is not an error.
    async fn remove_peer(&self, key: &PublicKey) -> Result<(), ProvisionError>;
}
