use phaze_events::{Events, SecurityEvent};
use phaze_ids::UserId;
use phaze_sessions::Sealer;
use std::sync::Arc;
use time::OffsetDateTime;

use crate::{
    render_config, AddressPool, Device, DeviceId, DeviceKeys, DeviceName, DeviceStore, Inserted,
    PoolError, PoolSettings, ProvisionError, Provisioner, ServerSettings, StoreError,
};

/// What went wrong, in terms a portal maps to responses.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// The name is empty, too long, or holds control characters.
    #[error("invalid device name: {0}")]
    InvalidName(#[from] phaze_sanitize::TextError),
    /// The owner has the most devices allowed.
    #[error("device limit reached")]
    LimitReached,
    /// Every address of the pool is taken.
    #[error("no tunnel address left")]
    PoolExhausted,
    /// No such device of this owner (whether it does not exist or is someone else's).
    #[error("device not found")]
    NotFound,
    /// The device's private key does not open under the configured keys.
    #[error("device key could not be opened")]
    Sealed,
    /// A store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address pool failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// The VPN server did not take the change.
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

/// The device use cases.
pub struct DeviceService {
    store: Arc<dyn DeviceStore>,
    pool: Arc<dyn AddressPool>,
    provisioner: Arc<dyn Provisioner>,
    sealer: Sealer,
    addresses: PoolSettings,
    server: ServerSettings,
    limit: u32,
    events: Events,
}

impl DeviceService {
    /// Wires the service: devices in `store`, slots from `pool` over the `addresses` networks,
    /// peers through `provisioner`, private keys sealed by `sealer`, at most `limit` devices per
    /// account.
    pub fn new(
        store: Arc<dyn DeviceStore>,
        pool: Arc<dyn AddressPool>,
        provisioner: Arc<dyn Provisioner>,
        sealer: Sealer,
        addresses: PoolSettings,
        server: ServerSettings,
        limit: u32,
    ) -> Self {
        Self {
            store,
            pool,
            provisioner,
            sealer,
            addresses,
            server,
            limit,
            events: Events::default(),
        }
    }

    /// Reports added and deleted devices through `events`.
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = events;
        self
    }

    /// Adds a device named `name` for `user`: a key pair, a slot, the store (under the limit), the
    /// server's peer list. A step that fails undoes the ones before it, so a refusal leaves no
    /// slot held and no peer provisioned.
    pub async fn add(
        &self,
        user: &UserId,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Device, DeviceError> {
        let name = DeviceName::parse(name)?;
        let id = DeviceId::generate();
        let keys = DeviceKeys::generate();
        let Some(slot) = self.pool.claim(&id, self.addresses.capacity()).await? else {
            return Err(DeviceError::PoolExhausted);
        };
        let Some(address) = self.addresses.address(slot) else {
            self.pool.release(slot, &id).await?;
            return Err(DeviceError::PoolExhausted);
        };
        let device = Device {
            id,
            user_id: *user,
            name,
            public_key: keys.public(),
            sealed_private_key: keys.seal(&self.sealer, &id),
            slot,
            address,
            created_at: now,
        };
        match self.store.insert(&device, self.limit).await {
            Ok(Inserted::Yes) => {}
            Ok(Inserted::LimitReached) => {
                self.pool.release(slot, &id).await?;
                return Err(DeviceError::LimitReached);
            }
            Err(e) => {
                self.pool.release(slot, &id).await?;
                return Err(e.into());
            }
        }
        if let Err(e) = self
            .provisioner
            .add_peer(&device.public_key, &address)
            .await
        {
            self.store.remove(user, &id).await?;
            self.pool.release(slot, &id).await?;
            return Err(e.into());
        }
        self.events.emit(SecurityEvent::DeviceAdded {
            user: *user,
            device: id.to_string(),
        });
        Ok(device)
    }

    /// The owner's devices, oldest first.
    pub async fn list(&self, user: &UserId) -> Result<Vec<Device>, DeviceError> {
        Ok(self.store.list(user).await?)
    }

    /// The WireGuard configuration of one of the owner's devices, with the device.
    pub async fn config(
        &self,
        user: &UserId,
        id: &DeviceId,
    ) -> Result<(Device, String), DeviceError> {
        let device = self
            .store
            .get(user, id)
            .await?
            .ok_or(DeviceError::NotFound)?;
        let keys = DeviceKeys::open(&self.sealer, &device.id, &device.sealed_private_key)
            .ok_or(DeviceError::Sealed)?;
        let config = render_config(&keys, &device.address, &self.server);
        Ok((device, config))
    }

    /// Deletes one of the owner's devices: the server forgets the peer first (if it cannot, the
    /// device stays, and can be deleted again), then the record goes and the address is free.
    pub async fn delete(&self, user: &UserId, id: &DeviceId) -> Result<(), DeviceError> {
        let device = self
            .store
            .get(user, id)
            .await?
            .ok_or(DeviceError::NotFound)?;
        self.provisioner.remove_peer(&device.public_key).await?;
        if self.store.remove(user, id).await?.is_some() {
            self.pool.release(device.slot, &device.id).await?;
        }
        self.events.emit(SecurityEvent::DeviceDeleted {
            user: *user,
            device: id.to_string(),
        });
        Ok(())
    }

    /// Seals again, under the newest session key, every device's private key that an older key
    /// sealed (`phaze-portal keys rotate`). Beside live traffic: a key is swapped only if it did
    /// not change meanwhile ([`DeviceStore::reseal`]); a device deleted meanwhile is skipped.
    pub async fn reseal_keys(&self) -> Result<Resealed, DeviceError> {
        const PAGE: usize = 200;
        let mut report = Resealed::default();
        let mut after = None;
        loop {
            let page = self.store.page(after.as_ref(), PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after = Some(last.id);
            for device in page {
                report.visited += 1;
                if self.sealer.is_current(&device.sealed_private_key) {
                    continue;
                }
                let Some(keys) =
                    DeviceKeys::open(&self.sealer, &device.id, &device.sealed_private_key)
                else {
                    tracing::error!(device = %device.id, "device key sealed under a key that is not configured");
                    report.unopened += 1;
                    continue;
                };
                let new = keys.seal(&self.sealer, &device.id);
                if self
                    .store
                    .reseal(
                        &device.user_id,
                        &device.id,
                        &device.sealed_private_key,
                        &new,
                    )
                    .await?
                {
                    report.resealed += 1;
                }
            }
        }
    }
}

/// What [`DeviceService::reseal_keys`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Devices looked at.
    pub visited: usize,
    /// Private keys sealed again under the newest key.
    pub resealed: usize,
    /// Private keys no configured key opens (logged with their device ids).
    pub unopened: usize,
}
