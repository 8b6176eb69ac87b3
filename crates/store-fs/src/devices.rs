//! [`DeviceStore`] and [`AddressPool`] as files.
//!
//! `devices/records/<device id>.json` holds a device; `devices/owners/<sha256(owner)>/<device id>`
//! (empty) says whose it is, and a device exists exactly when its owner entry does: lookups go
//! through the owner, so another account's id is never found. An owner's inserts and removals
//! run under that owner's shard lock (an OS lock, so across processes), which makes "count, then
//! store" one step: the per-account limit holds under any concurrency. A crash between writing a
//! record and its owner entry leaves a record nobody can see.
//!
//! `pool/<slot>` holds the id of the device that has the slot; a claim is an exclusive create of
//! the lowest free slot's file (atomic across processes), a release removes it if the releaser
//! holds it.

use async_trait::async_trait;
use phaze_devices::{AddressPool, Device, DeviceId, DeviceStore, Inserted, PoolError, StoreError};
use phaze_ids::UserId;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::lock::ShardLocks;
use crate::{atomic, blocking, prepare_dir, sha256_hex, DataDir, FsError};

/// [`DeviceStore`] in `<data>/devices`.
#[derive(Clone, Debug)]
pub struct FsDevices {
    records: Arc<PathBuf>,
    owners: Arc<PathBuf>,
    locks: Arc<ShardLocks>,
    _owner: DataDir,
}

impl FsDevices {
    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let dir = prepare_dir(&owner.path().join("devices"))?;
        Ok(Self {
            records: Arc::new(prepare_dir(&dir.join("records"))?),
            owners: Arc::new(prepare_dir(&dir.join("owners"))?),
            locks: Arc::new(ShardLocks::new(&prepare_dir(&dir.join("locks"))?).reporting_to(owner)),
            _owner: owner.clone(),
        })
    }
}

fn backend(e: io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

fn owner_name(user: &UserId) -> String {
    sha256_hex(user.as_uuid().as_bytes())
}

fn record_name(id: &DeviceId) -> String {
    format!("{}.json", id.as_uuid().simple())
}

fn read(records: &Path, id: &DeviceId) -> io::Result<Option<Device>> {
    let Some(bytes) = atomic::read(&records.join(record_name(id)))? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The owner's device, if the owner entry and the record agree.
fn owned(
    records: &Path,
    owners: &Path,
    user: &UserId,
    id: &DeviceId,
) -> io::Result<Option<Device>> {
    let entry = owners
        .join(owner_name(user))
        .join(id.as_uuid().simple().to_string());
    if !entry.exists() {
        return Ok(None);
    }
    Ok(read(records, id)?.filter(|d| d.user_id == *user))
}

#[async_trait]
impl DeviceStore for FsDevices {
    async fn insert(&self, device: &Device, limit: u32) -> Result<Inserted, StoreError> {
        let bytes = serde_json::to_vec(device).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let (this, device) = (self.clone(), device.clone());
        let result = blocking(move || {
            let owner = owner_name(&device.user_id);
            let _guard = this.locks.lock(&owner)?;
            let dir = this.owners.join(&owner);
            let count = atomic::names(&dir)?
                .iter()
                .filter(|n| !n.starts_with('.'))
                .count();
            if count >= limit as usize {
                return Ok(Some(Inserted::LimitReached));
            }
            if !atomic::create(&this.records, &record_name(&device.id), &bytes)? {
                return Ok(None);
            }
            atomic::create_dir_private(&dir)?;
            atomic::create(&dir, &device.id.as_uuid().simple().to_string(), b"")?;
            Ok(Some(Inserted::Yes))
        })
        .await
        .map_err(backend)?;
        result.ok_or(StoreError::Duplicate)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let (this, user) = (self.clone(), *user);
        blocking(move || {
            let dir = this.owners.join(owner_name(&user));
            let mut list = Vec::new();
            for name in atomic::names(&dir)? {
                let Some(id) = DeviceId::parse(&name) else {
                    continue;
                };
                if let Some(d) = read(&this.records, &id)?.filter(|d| d.user_id == user) {
                    list.push(d);
                }
            }
            list.sort_by_key(|d| (d.created_at, d.id));
            Ok(list)
        })
        .await
        .map_err(backend)
    }

    async fn get(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let (this, user, id) = (self.clone(), *user, *id);
        blocking(move || owned(&this.records, &this.owners, &user, &id))
            .await
            .map_err(backend)
    }

    async fn remove(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let (this, user, id) = (self.clone(), *user, *id);
        blocking(move || {
            let owner = owner_name(&user);
            let _guard = this.locks.lock(&owner)?;
            let Some(device) = owned(&this.records, &this.owners, &user, &id)? else {
                return Ok(None);
            };
            atomic::remove(
                &this.owners.join(&owner),
                &id.as_uuid().simple().to_string(),
            )?;
            atomic::remove(&this.records, &record_name(&id))?;
            Ok(Some(device))
        })
        .await
        .map_err(backend)
    }

    async fn page(
        &self,
        after: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        let (this, after) = (self.clone(), after.copied());
        blocking(move || {
            let mut ids: Vec<DeviceId> = atomic::names(&this.records)?
                .iter()
                .filter_map(|n| n.strip_suffix(".json").and_then(DeviceId::parse))
                .filter(|id| after.is_none_or(|a| *id > a))
                .collect();
            ids.sort_unstable();
            let mut out = Vec::new();
            for id in ids {
                if out.len() == limit {
                    break;
                }
                // Only devices that exist: a record without its owner entry is a crash's leftover.
                let Some(device) = read(&this.records, &id)? else {
                    continue;
                };
                if owned(&this.records, &this.owners, &device.user_id, &id)?.is_some() {
                    out.push(device);
                }
            }
            Ok(out)
        })
        .await
        .map_err(backend)
    }

    async fn reseal(
        &self,
        user: &UserId,
        id: &DeviceId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (this, user, id) = (self.clone(), *user, *id);
        let (old, new) = (old.to_vec(), new.to_vec());
        blocking(move || {
            let _guard = this.locks.lock(&owner_name(&user))?;
            let Some(mut device) = owned(&this.records, &this.owners, &user, &id)? else {
                return Ok(false);
            };
            if device.sealed_private_key != old {
                return Ok(false);
            }
            device.sealed_private_key = new;
            let bytes = serde_json::to_vec(&device).map_err(io::Error::other)?;
            atomic::replace(&this.records, &record_name(&id), &bytes)?;
            Ok(true)
        })
        .await
        .map_err(backend)
    }
}

/// [`AddressPool`] in `<data>/pool`.
#[derive(Clone, Debug)]
pub struct FsAddressPool {
    dir: Arc<PathBuf>,
    _owner: DataDir,
}

impl FsAddressPool {
    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        Ok(Self {
            dir: Arc::new(prepare_dir(&owner.path().join("pool"))?),
            _owner: owner.clone(),
        })
    }
}

fn pool_error(e: io::Error) -> PoolError {
    PoolError(Box::new(e))
}

#[async_trait]
impl AddressPool for FsAddressPool {
    async fn claim(&self, device: &DeviceId, capacity: u32) -> Result<Option<u32>, PoolError> {
        let (dir, holder) = (self.dir.clone(), device.as_uuid().simple().to_string());
        blocking(move || {
            for slot in 0..capacity {
                if atomic::create(&dir, &slot.to_string(), holder.as_bytes())? {
                    return Ok(Some(slot));
                }
            }
            Ok(None)
        })
        .await
        .map_err(pool_error)
    }

    async fn release(&self, slot: u32, device: &DeviceId) -> Result<(), PoolError> {
        let (dir, holder) = (self.dir.clone(), device.as_uuid().simple().to_string());
        blocking(move || {
            let name = slot.to_string();
            if atomic::read(&dir.join(&name))?.as_deref() == Some(holder.as_bytes()) {
                atomic::remove(&dir, &name)?;
            }
            Ok(())
        })
        .await
        .map_err(pool_error)
    }
}
