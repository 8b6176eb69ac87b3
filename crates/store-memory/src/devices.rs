//! [`DeviceStore`], [`AddressPool`] and [`Provisioner`] in memory.

use async_trait::async_trait;
use phaze_devices::{
    AddressPool, Device, DeviceId, DeviceStore, Inserted, PoolError, ProvisionError, Provisioner,
    PublicKey, StoreError, TunnelAddress,
};
use phaze_ids::UserId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::lock;

/// [`DeviceStore`] in memory: the count and the insert under one lock.
#[derive(Default)]
pub struct MemoryDevices(Mutex<BTreeMap<DeviceId, Device>>);

#[async_trait]
impl DeviceStore for MemoryDevices {
    async fn insert(&self, device: &Device, limit: u32) -> Result<Inserted, StoreError> {
        let mut t = lock(&self.0);
        if t.contains_key(&device.id) {
            return Err(StoreError::Duplicate);
        }
        let owned = t.values().filter(|d| d.user_id == device.user_id).count();
        if owned >= limit as usize {
            return Ok(Inserted::LimitReached);
        }
        t.insert(device.id, device.clone());
        Ok(Inserted::Yes)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let mut list: Vec<Device> = lock(&self.0)
            .values()
            .filter(|d| d.user_id == *user)
            .cloned()
            .collect();
        list.sort_by_key(|d| (d.created_at, d.id));
        Ok(list)
    }

    async fn get(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        Ok(lock(&self.0)
            .get(id)
            .filter(|d| d.user_id == *user)
            .cloned())
    }

    async fn remove(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let mut t = lock(&self.0);
        if t.get(id).is_some_and(|d| d.user_id == *user) {
            return Ok(t.remove(id));
        }
        Ok(None)
    }

    async fn page(
        &self,
        after: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let t = lock(&self.0);
        Ok(t.range((after.map_or(Unbounded, Excluded), Unbounded))
            .take(limit)
            .map(|(_, d)| d.clone())
            .collect())
    }

    async fn reseal(
        &self,
        user: &UserId,
        id: &DeviceId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let mut t = lock(&self.0);
        match t.get_mut(id) {
            Some(d) if d.user_id == *user && d.sealed_private_key == old => {
                d.sealed_private_key = new.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// [`AddressPool`] in memory.
#[derive(Default)]
pub struct MemoryAddressPool(Mutex<BTreeMap<u32, DeviceId>>);

#[async_trait]
impl AddressPool for MemoryAddressPool {
    async fn claim(&self, device: &DeviceId, capacity: u32) -> Result<Option<u32>, PoolError> {
        let mut t = lock(&self.0);
        let free = (0..capacity).find(|s| !t.contains_key(s));
        if let Some(slot) = free {
            t.insert(slot, *device);
        }
        Ok(free)
    }

    async fn release(&self, slot: u32, device: &DeviceId) -> Result<(), PoolError> {
        let mut t = lock(&self.0);
        if t.get(&slot) == Some(device) {
            t.remove(&slot);
        }
        Ok(())
    }
}

/// [`Provisioner`] in memory: the server's peer list, for tests to read; it can be told to fail.
#[derive(Default)]
pub struct MemoryProvisioner {
    peers: Mutex<HashMap<PublicKey, TunnelAddress>>,
    failing: Mutex<bool>,
}

impl MemoryProvisioner {
    /// The peers the "server" has.
    pub fn peers(&self) -> HashMap<PublicKey, TunnelAddress> {
        lock(&self.peers).clone()
    }

    /// From now on every change fails (`true`) or works (`false`).
    pub fn fail(&self, failing: bool) {
        *lock(&self.failing) = failing;
    }

    fn check(&self) -> Result<(), ProvisionError> {
        if *lock(&self.failing) {
            return Err(ProvisionError("the VPN server is unreachable".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl Provisioner for MemoryProvisioner {
    async fn add_peer(
        &self,
        key: &PublicKey,
        address: &TunnelAddress,
    ) -> Result<(), ProvisionError> {
        self.check()?;
        lock(&self.peers).insert(*key, *address);
        Ok(())
    }

    async fn remove_peer(&self, key: &PublicKey) -> Result<(), ProvisionError> {
        self.check()?;
        lock(&self.peers).remove(key);
        Ok(())
    }
}
