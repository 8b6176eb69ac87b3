//! The payments ports over a directory.
//!
//! ```text
//! <data>/payments/events/<sha256(event id)>           {"claimed": {token, until}} or {"applied": at}
//! <data>/payments/subscriptions/<sha256(user id)>     {"version", "record"}
//! <data>/payments/customers/<sha256(customer id)>     the account id
//! <data>/payments/locks/<00..ff>.lock                 shard locks
//! ```
//!
//! A first claim is an exclusive create (`link(2)` fails on an existing name), so of any number
//! of processes claiming a new id exactly one wins without a lock, and a duplicate delivery is one
//! read of an applied record. Taking over a lapsed claim, marking, releasing and every write of a
//! subscription happen under the record's shard lock, re-reading the record inside it.

use async_trait::async_trait;
use phaze_payments::{
    Claim, ClaimToken, ProcessedEvents, StoreError, SubscriptionRecord, Subscriptions, UserId,
};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::lock::ShardLocks;
use crate::{atomic, blocking, corrupt, is_record_name, prepare_dir, sha256_hex, DataDir, FsError};

fn backend(e: io::Error) -> StoreError {
    StoreError::backend(e)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum EventFile {
    Claimed {
        token: String,
        #[serde(with = "time::serde::timestamp::nanoseconds")]
        until: OffsetDateTime,
    },
    Applied {
        #[serde(with = "time::serde::timestamp::nanoseconds")]
        at: OffsetDateTime,
    },
}

/// [`ProcessedEvents`] in `<dir>/payments/events`.
#[derive(Clone, Debug)]
pub struct FsProcessedEvents {
    dir: Arc<PathBuf>,
    locks: Arc<ShardLocks>,
    _owner: DataDir,
}

impl FsProcessedEvents {
    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let base = prepare_dir(&owner.path().join("payments"))?;
        Ok(Self {
            dir: Arc::new(prepare_dir(&base.join("events"))?),
            locks: Arc::new(
                ShardLocks::new(&prepare_dir(&base.join("locks"))?).reporting_to(owner),
            ),
            _owner: owner.clone(),
        })
    }
}

fn read_event(dir: &Path, name: &str) -> io::Result<Option<EventFile>> {
    atomic::read(&dir.join(name))?
        .map(|b| serde_json::from_slice(&b).map_err(|_| corrupt("payment event record")))
        .transpose()
}

fn to_bytes(v: &impl Serialize) -> io::Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(io::Error::other)
}

/// What an existing record says to a new claim, or `None` if it is a lapsed claim.
fn standing(file: &EventFile, now: OffsetDateTime) -> Option<Claim> {
    match file {
        EventFile::Applied { .. } => Some(Claim::Applied),
        EventFile::Claimed { until, .. } if *until > now => Some(Claim::Held),
        EventFile::Claimed { .. } => None,
    }
}

fn claim(
    store: &FsProcessedEvents,
    name: &str,
    token: &str,
    now: OffsetDateTime,
    lease: Duration,
) -> io::Result<Claim> {
    let dir = store.dir.as_path();
    let claimed = to_bytes(&EventFile::Claimed {
        token: token.to_owned(),
        until: now + lease,
    })?;
    // The common cases without a lock: a duplicate (applied), a delivery in flight (held), and a
    // new id (exclusive create).
    match read_event(dir, name)? {
        Some(file) => {
            if let Some(answer) = standing(&file, now) {
                return Ok(answer);
            }
        }
        None => {
            if atomic::create(dir, name, &claimed)? {
                return Ok(Claim::Won);
            }
        }
    }
    // A lapsed claim, or a create that lost to another: decide under the lock.
    let _guard = store.locks.lock(name)?;
    match read_event(dir, name)? {
        Some(file) => {
            if let Some(answer) = standing(&file, now) {
                return Ok(answer);
            }
            atomic::replace(dir, name, &claimed)?;
            Ok(Claim::Won)
        }
        // Released meanwhile: nobody holds it.
        None => Ok(if atomic::create(dir, name, &claimed)? {
            Claim::Won
        } else {
            Claim::Held
        }),
    }
}

fn holds(file: &Option<EventFile>, token: &str) -> bool {
    matches!(file, Some(EventFile::Claimed { token: t, .. }) if t == token)
}

#[async_trait]
impl ProcessedEvents for FsProcessedEvents {
    async fn claim(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let (this, name, token) = (self.clone(), sha256_hex(event.as_bytes()), token.clone());
        blocking(move || claim(&this, &name, token.as_str(), now, lease))
            .await
            .map_err(backend)
    }

    async fn mark_applied(
        &self,
        event: &str,
        token: &ClaimToken,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let (this, name, token) = (self.clone(), sha256_hex(event.as_bytes()), token.clone());
        blocking(move || {
            let _guard = this.locks.lock(&name)?;
            if !holds(&read_event(&this.dir, &name)?, token.as_str()) {
                return Ok(false);
            }
            atomic::replace(
                &this.dir,
                &name,
                &to_bytes(&EventFile::Applied { at: now })?,
            )?;
            Ok(true)
        })
        .await
        .map_err(backend)
    }

    async fn release(&self, event: &str, token: &ClaimToken) -> Result<(), StoreError> {
        let (this, name, token) = (self.clone(), sha256_hex(event.as_bytes()), token.clone());
        blocking(move || {
            let _guard = this.locks.lock(&name)?;
            if holds(&read_event(&this.dir, &name)?, token.as_str()) {
                atomic::remove(&this.dir, &name)?;
            }
            Ok(())
        })
        .await
        .map_err(backend)
    }

    async fn purge(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let this = self.clone();
        blocking(move || {
            let mut purged = 0;
            for name in atomic::names(&this.dir)? {
                if !is_record_name(&name) {
                    continue;
                }
                let _guard = this.locks.lock(&name)?;
                let old = match read_event(&this.dir, &name) {
                    Ok(Some(EventFile::Applied { at })) => at < before,
                    Ok(Some(EventFile::Claimed { until, .. })) => until < before,
                    Ok(None) => false,
                    // An unreadable record would otherwise stay forever.
                    Err(_) => true,
                };
                if old && atomic::remove_unsynced(&this.dir, &name)? {
                    purged += 1;
                }
            }
            Ok(purged)
        })
        .await
        .map_err(backend)
    }
}

#[derive(Serialize, Deserialize)]
struct SubscriptionFile {
    version: u64,
    record: SubscriptionRecord,
}

/// [`Subscriptions`] in `<dir>/payments/subscriptions` and `customers`.
#[derive(Clone, Debug)]
pub struct FsSubscriptions {
    records: Arc<PathBuf>,
    customers: Arc<PathBuf>,
    locks: Arc<ShardLocks>,
    _owner: DataDir,
}

impl FsSubscriptions {
    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let base = prepare_dir(&owner.path().join("payments"))?;
        Ok(Self {
            records: Arc::new(prepare_dir(&base.join("subscriptions"))?),
            customers: Arc::new(prepare_dir(&base.join("customers"))?),
            locks: Arc::new(
                ShardLocks::new(&prepare_dir(&base.join("locks"))?).reporting_to(owner),
            ),
            _owner: owner.clone(),
        })
    }
}

fn read_subscription(dir: &Path, name: &str) -> io::Result<Option<SubscriptionFile>> {
    atomic::read(&dir.join(name))?
        .map(|b| serde_json::from_slice(&b).map_err(|_| corrupt("subscription record")))
        .transpose()
}

#[async_trait]
impl Subscriptions for FsSubscriptions {
    async fn get(&self, user: &UserId) -> Result<Option<(SubscriptionRecord, u64)>, StoreError> {
        let (this, name) = (self.clone(), sha256_hex(user.to_string().as_bytes()));
        let file = blocking(move || read_subscription(&this.records, &name))
            .await
            .map_err(backend)?;
        match file {
            Some(f) if f.record.user == *user => Ok(Some((f.record, f.version))),
            Some(_) => Err(StoreError::Corrupt),
            None => Ok(None),
        }
    }

    async fn user_for_customer(&self, customer: &str) -> Result<Option<UserId>, StoreError> {
        let (this, name) = (self.clone(), sha256_hex(customer.as_bytes()));
        let bytes = blocking(move || atomic::read(&this.customers.join(name)))
            .await
            .map_err(backend)?;
        bytes
            .map(|b| {
                std::str::from_utf8(&b)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(StoreError::Corrupt)
            })
            .transpose()
    }

    async fn put(&self, record: &SubscriptionRecord, expected: u64) -> Result<bool, StoreError> {
        let this = self.clone();
        let name = sha256_hex(record.user.to_string().as_bytes());
        let record = record.clone();
        blocking(move || {
            let _guard = this.locks.lock(&name)?;
            let stored = read_subscription(&this.records, &name)?.map_or(0, |f| f.version);
            if stored != expected {
                return Ok(false);
            }
            if let Some(customer) = &record.customer {
                let link = sha256_hex(customer.as_bytes());
                atomic::replace(&this.customers, &link, record.user.to_string().as_bytes())?;
            }
            let file = SubscriptionFile {
                version: expected + 1,
                record,
            };
            atomic::replace(&this.records, &name, &to_bytes(&file)?)?;
            Ok(true)
        })
        .await
        .map_err(backend)
    }

    async fn remove(&self, user: &UserId) -> Result<bool, StoreError> {
        let (this, user) = (self.clone(), *user);
        let name = sha256_hex(user.to_string().as_bytes());
        blocking(move || {
            let _guard = this.locks.lock(&name)?;
            let Some(file) = read_subscription(&this.records, &name)? else {
                return Ok(false);
            };
            if let Some(customer) = &file.record.customer {
                let link = sha256_hex(customer.as_bytes());
                let names_user = atomic::read(&this.customers.join(&link))?
                    .is_some_and(|b| b == user.to_string().as_bytes());
                if names_user {
                    atomic::remove(&this.customers, &link)?;
                }
            }
            atomic::remove(&this.records, &name)
        })
        .await
        .map_err(backend)
    }
}
