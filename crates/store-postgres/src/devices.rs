//! [`DeviceStore`] over `devices` and [`AddressPool`] over `address_slots`.

use async_trait::async_trait;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use phaze_devices::{
    AddressPool, Device, DeviceId, DeviceName, DeviceStore, Inserted, PoolError, PublicKey,
    StoreError, TunnelAddress,
};
use phaze_ids::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::schema::{address_slots, devices};
use crate::{checkout, Corrupt, Pools};

/// First key of the advisory locks taken here ("PHZD"); the second is the owner's hash, or 0
/// for the address pool.
const LOCK_SPACE: i32 = 0x5048_5a44;

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = devices, check_for_backend(diesel::pg::Pg))]
struct Row {
    id: Uuid,
    user_id: Uuid,
    name: String,
    public_key: Vec<u8>,
    sealed_private_key: Vec<u8>,
    slot: i32,
    address_v4: String,
    address_v6: String,
    created_at: OffsetDateTime,
}

impl Row {
    fn new(d: &Device) -> Result<Self, StoreError> {
        Ok(Self {
            id: *d.id.as_uuid(),
            user_id: *d.user_id.as_uuid(),
            name: d.name.as_str().to_owned(),
            public_key: d.public_key.as_bytes().to_vec(),
            sealed_private_key: d.sealed_private_key.clone(),
            slot: i32::try_from(d.slot).map_err(|e| StoreError::Backend(Box::new(e)))?,
            address_v4: d.address.v4.to_string(),
            address_v6: d.address.v6.to_string(),
            created_at: d.created_at,
        })
    }

    fn into_device(self) -> Result<Device, StoreError> {
        let corrupt = || StoreError::Backend(Box::new(Corrupt("devices")));
        let key: [u8; 32] = self.public_key.try_into().map_err(|_| corrupt())?;
        Ok(Device {
            id: DeviceId::from(self.id),
            user_id: UserId::from(self.user_id),
            name: DeviceName::parse(&self.name).map_err(|_| corrupt())?,
            public_key: PublicKey::from_bytes(key),
            sealed_private_key: self.sealed_private_key,
            slot: u32::try_from(self.slot).map_err(|_| corrupt())?,
            address: TunnelAddress {
                v4: self.address_v4.parse().map_err(|_| corrupt())?,
                v6: self.address_v6.parse().map_err(|_| corrupt())?,
            },
            created_at: self.created_at,
        })
    }
}

fn backend(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// `SELECT pg_advisory_xact_lock(LOCK_SPACE, hashtext(subject))`.
async fn lock(conn: &mut AsyncPgConnection, subject: &str) -> Result<(), DieselError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind::<diesel::sql_types::Integer, _>(LOCK_SPACE)
        .bind::<diesel::sql_types::Text, _>(subject)
        .execute(conn)
        .await
        .map(|_| ())
}

/// [`DeviceStore`] over the `devices` table.
#[derive(Clone)]
pub struct PgDevices {
    pool: Pools,
}

impl std::fmt::Debug for PgDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDevices").finish_non_exhaustive()
    }
}

impl PgDevices {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl DeviceStore for PgDevices {
    async fn insert(&self, device: &Device, limit: u32) -> Result<Inserted, StoreError> {
        let row = Row::new(device)?;
        let owner = row.user_id;
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        let result = conn
            .build_transaction()
            .read_committed()
            .run(async |conn| {
                lock(conn, &format!("devices:{owner}")).await?;
                let count: i64 = devices::table
                    .filter(devices::user_id.eq(owner))
                    .count()
                    .get_result(conn)
                    .await?;
                if count >= i64::from(limit) {
                    return Ok(Inserted::LimitReached);
                }
                diesel::insert_into(devices::table)
                    .values(&row)
                    .execute(conn)
                    .await?;
                Ok::<_, DieselError>(Inserted::Yes)
            })
            .await;
        match result {
            Ok(i) => Ok(i),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
                Err(StoreError::Duplicate)
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(&self, user: &UserId) -> Result<Vec<Device>, StoreError> {
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        devices::table
            .filter(devices::user_id.eq(user.as_uuid()))
            .order((devices::created_at, devices::id))
            .select(Row::as_select())
            .load::<Row>(&mut conn)
            .await
            .map_err(backend)?
            .into_iter()
            .map(Row::into_device)
            .collect()
    }

    async fn get(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        devices::table
            .filter(devices::id.eq(id.as_uuid()))
            .filter(devices::user_id.eq(user.as_uuid()))
            .select(Row::as_select())
            .first::<Row>(&mut conn)
            .await
            .optional()
            .map_err(backend)?
            .map(Row::into_device)
            .transpose()
    }

    async fn remove(&self, user: &UserId, id: &DeviceId) -> Result<Option<Device>, StoreError> {
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        diesel::delete(
            devices::table
                .filter(devices::id.eq(id.as_uuid()))
                .filter(devices::user_id.eq(user.as_uuid())),
        )
        .returning(Row::as_returning())
        .get_result::<Row>(&mut conn)
        .await
        .optional()
        .map_err(backend)?
        .map(Row::into_device)
        .transpose()
    }

    async fn page(
        &self,
        after: Option<&DeviceId>,
        limit: usize,
    ) -> Result<Vec<Device>, StoreError> {
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        let mut query = devices::table
            .order(devices::id)
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .select(Row::as_select())
            .into_boxed();
        if let Some(after) = after {
            query = query.filter(devices::id.gt(*after.as_uuid()));
        }
        let rows: Vec<Row> = query.load(&mut conn).await.map_err(backend)?;
        rows.into_iter().map(Row::into_device).collect()
    }

    async fn reseal(
        &self,
        user: &UserId,
        id: &DeviceId,
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let mut conn = checkout(&self.pool).await.map_err(StoreError::Backend)?;
        let updated = diesel::update(
            devices::table
                .filter(devices::id.eq(id.as_uuid()))
                .filter(devices::user_id.eq(user.as_uuid()))
                .filter(devices::sealed_private_key.eq(old)),
        )
        .set(devices::sealed_private_key.eq(new))
        .execute(&mut conn)
        .await
        .map_err(backend)?;
        Ok(updated == 1)
    }
}

/// [`AddressPool`] over the `address_slots` table.
#[derive(Clone)]
pub struct PgAddressPool {
    pool: Pools,
}

impl std::fmt::Debug for PgAddressPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAddressPool").finish_non_exhaustive()
    }
}

impl PgAddressPool {
    pub(crate) fn new(pool: Pools) -> Self {
        Self { pool }
    }
}

#[derive(QueryableByName)]
struct Slot {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    slot: i32,
}

fn pool_error(e: impl std::error::Error + Send + Sync + 'static) -> PoolError {
    PoolError(Box::new(e))
}

#[async_trait]
impl AddressPool for PgAddressPool {
    async fn claim(&self, device: &DeviceId, capacity: u32) -> Result<Option<u32>, PoolError> {
        let capacity = i32::try_from(capacity).unwrap_or(i32::MAX);
        let holder = *device.as_uuid();
        let mut conn = checkout(&self.pool).await.map_err(PoolError)?;
        let slot = conn
            .build_transaction()
            .read_committed()
            .run(async |conn| {
                lock(conn, "address_slots").await?;
                // The lowest slot with no row: 0 if free, else the first gap after a held slot.
                let found: Option<Slot> = diesel::sql_query(
                    "SELECT s AS slot FROM (SELECT 0 AS s UNION ALL SELECT slot + 1 FROM address_slots) c \
                     WHERE s < $1 AND NOT EXISTS (SELECT 1 FROM address_slots a WHERE a.slot = c.s) \
                     ORDER BY s LIMIT 1",
                )
                .bind::<diesel::sql_types::Integer, _>(capacity)
                .get_result(conn)
                .await
                .optional()?;
                let Some(Slot { slot }) = found else {
                    return Ok(None);
                };
                diesel::insert_into(address_slots::table)
                    .values((address_slots::slot.eq(slot), address_slots::device_id.eq(holder)))
                    .execute(conn)
                    .await?;
                Ok::<_, DieselError>(Some(slot))
            })
            .await
            .map_err(pool_error)?;
        Ok(slot.and_then(|s| u32::try_from(s).ok()))
    }

    async fn release(&self, slot: u32, device: &DeviceId) -> Result<(), PoolError> {
        let Ok(slot) = i32::try_from(slot) else {
            return Ok(());
        };
        let mut conn = checkout(&self.pool).await.map_err(PoolError)?;
        diesel::delete(
            address_slots::table
                .filter(address_slots::slot.eq(slot))
                .filter(address_slots::device_id.eq(device.as_uuid())),
        )
        .execute(&mut conn)
        .await
        .map_err(pool_error)?;
        Ok(())
    }
}
