//! [`AccountStore`] over a directory: one JSON file per account, one index file per email.

use async_trait::async_trait;
use phaze_auth::{Account, AccountStore, Email, StoreError, UserId};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::StampCache;
use crate::lock::ShardLocks;
use crate::{atomic, auth_backend, blocking, corrupt, prepare_dir, sha256_hex, DataDir, FsError};

/// [`AccountStore`] in `<dir>/accounts`: `records/<sha256(user id)>` holds the account as JSON and
/// `emails/<sha256(normalised email)>` holds the owner's id.
///
/// The email is unique even with several processes on one directory: the index entry is created
/// with `link(2)`, which only one creator of a name can win; a loser deletes the record it wrote.
#[derive(Clone, Debug)]
pub struct FsAccounts {
    dirs: Arc<Dirs>,
}

impl FsAccounts {
    /// Opens the store in `dir/accounts`, creating its directories (0700 on Unix) if needed, with
    /// the directory opened [`Sharing::Shared`](crate::Sharing::Shared).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        DataDir::open(dir, crate::Sharing::Shared)?.accounts()
    }

    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let root = owner.path().join("accounts");
        let records = prepare_dir(&root.join("records"))?;
        let cache = owner.account_cache(&records);
        let emails = prepare_dir(&root.join("emails"))?;
        let locks = ShardLocks::new(&prepare_dir(&root.join("locks"))?).reporting_to(owner);
        Ok(Self {
            dirs: Arc::new(Dirs {
                records,
                emails,
                locks,
                cache,
                _owner: owner.clone(),
            }),
        })
    }
}

#[async_trait]
impl AccountStore for FsAccounts {
    async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        let (dirs, account) = (self.dirs.clone(), account.clone());
        match blocking(move || dirs.insert(&account)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Duplicate),
            Err(e) => Err(auth_backend(e)),
        }
    }

    async fn by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        self.dirs.by_email(email).map_err(auth_backend)
    }

    async fn by_id(&self, id: &UserId) -> Result<Option<Account>, StoreError> {
        self.dirs.by_id(id).map_err(auth_backend)
    }

    async fn update(&self, account: &Account) -> Result<(), StoreError> {
        let (dirs, account) = (self.dirs.clone(), account.clone());
        match blocking(move || dirs.update(&account)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::NotFound),
            Err(e) => Err(auth_backend(e)),
        }
    }

    async fn remove(&self, id: &UserId) -> Result<bool, StoreError> {
        let (dirs, id) = (self.dirs.clone(), *id);
        blocking(move || dirs.remove(&id))
            .await
            .map_err(auth_backend)
    }
}

#[derive(Debug)]
struct Dirs {
    records: PathBuf,
    emails: PathBuf,
    locks: ShardLocks,
    cache: Arc<StampCache<Account>>,
    _owner: DataDir,
}

fn record_name(id: &UserId) -> String {
    sha256_hex(id.to_string().as_bytes())
}

fn email_name(email: &Email) -> String {
    sha256_hex(email.as_str().as_bytes())
}

impl Dirs {
    fn by_id(&self, id: &UserId) -> io::Result<Option<Account>> {
        self.cache.read(&record_name(id), |bytes| {
            let account: Account =
                serde_json::from_slice(bytes).map_err(|_| corrupt("account record"))?;
            if account.id != *id {
                return Err(corrupt("account record (id does not match its name)"));
            }
            Ok(account)
        })
    }

    fn by_email(&self, email: &Email) -> io::Result<Option<Account>> {
        let Some(bytes) = atomic::read(&self.emails.join(email_name(email)))? else {
            return Ok(None);
        };
        let id: UserId = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("email index entry"))?;
        // The record is written before its index entry and the entry removed before the record,
        // so a missing record means a removal in between (the entry is gone now) or someone
        // edited the directory: fail rather than guess.
        let Some(account) = self.by_id(&id)? else {
            if atomic::read(&self.emails.join(email_name(email)))?.is_none() {
                return Ok(None);
            }
            return Err(corrupt("email index (no such account)"));
        };
        if account.email != *email {
            return Err(corrupt("email index (points at another address)"));
        }
        Ok(Some(account))
    }

    fn insert(&self, account: &Account) -> io::Result<bool> {
        let bytes = serde_json::to_vec(account).map_err(io::Error::other)?;
        let name = record_name(&account.id);
        // Record first, then the index entry, so by_email never finds an entry without a record.
        let created = self
            .cache
            .changing(&name, || atomic::create(&self.records, &name, &bytes))?;
        if !created {
            return Ok(false);
        }
        let id = account.id.to_string();
        match atomic::create(&self.emails, &email_name(&account.email), id.as_bytes()) {
            Ok(true) => Ok(true),
            Ok(false) => {
                self.remove_record(&name)?;
                Ok(false)
            }
            Err(e) => {
                // Leave nothing behind; the index error is the one worth reporting.
                let _ = self.remove_record(&name);
                Err(e)
            }
        }
    }

    /// Deletes the record of an insert that lost its email, under the lock `update` takes.
    fn remove_record(&self, name: &str) -> io::Result<()> {
        let _guard = self.locks.lock(name)?;
        self.cache
            .changing(name, || atomic::remove(&self.records, name))
            .map(drop)
    }

    /// The email's index entry first, then the record, under the record's lock: a reader never
    /// finds an entry naming a record that is gone for good.
    fn remove(&self, id: &UserId) -> io::Result<bool> {
        let name = record_name(id);
        let _guard = self.locks.lock(&name)?;
        let Some(account) = self.by_id(id)? else {
            return Ok(false);
        };
        let entry = email_name(&account.email);
        let names_this = atomic::read(&self.emails.join(&entry))?
            .is_some_and(|bytes| bytes == id.to_string().as_bytes());
        if names_this {
            atomic::remove(&self.emails, &entry)?;
        }
        self.cache
            .changing(&name, || atomic::remove(&self.records, &name))
            .map(drop)?;
        Ok(true)
    }

    fn update(&self, account: &Account) -> io::Result<bool> {
        let bytes = serde_json::to_vec(account).map_err(io::Error::other)?;
        let name = record_name(&account.id);
        let _guard = self.locks.lock(&name)?;
        match self.by_id(&account.id)? {
            // The email is the index key: changing it here would orphan the index entry.
            Some(old) if old.email == account.email => {
                self.cache
                    .changing(&name, || atomic::replace(&self.records, &name, &bytes))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}
