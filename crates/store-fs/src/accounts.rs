//! [`AccountStore`] over a directory: one JSON file per account, one index file per email index.

use async_trait::async_trait;
use phaze_auth::{
    Account, AccountRecord, AccountStore, EmailIndex, SealedFields, StoreError, UserId,
};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::StampCache;
use crate::lock::ShardLocks;
use crate::{
    atomic, auth_backend, blocking, corrupt, is_record_name, prepare_dir, sha256_hex, DataDir,
    FsError,
};

/// [`AccountStore`] in `<dir>/accounts`: `records/<sha256(user id)>` holds the account record
/// (address and name sealed) as JSON and `emails/<email index>` holds the owner's id.
///
/// Versions of Phaze before sealing kept the account in the clear and its index entry at
/// `emails/<sha256(address)>`; [`AccountStore::clear`] finds such records and
/// [`AccountStore::seal_clear`] swaps each for its sealed record. Once a scan finds none, the
/// file `sealed` records it and later scans are skipped.
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
        let sealed_marker = root.join(SEALED_MARKER);
        let locks = ShardLocks::new(&prepare_dir(&root.join("locks"))?).reporting_to(owner);
        Ok(Self {
            dirs: Arc::new(Dirs {
                records,
                emails,
                root,
                sealed_marker,
                locks,
                cache,
                _owner: owner.clone(),
            }),
        })
    }
}

#[async_trait]
impl AccountStore for FsAccounts {
    async fn insert(&self, account: &AccountRecord) -> Result<(), StoreError> {
        let (dirs, account) = (self.dirs.clone(), account.clone());
        match blocking(move || dirs.insert(&account)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Duplicate),
            Err(e) => Err(auth_backend(e)),
        }
    }

    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, StoreError> {
        self.dirs.by_email(email).map_err(auth_backend)
    }

    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, StoreError> {
        self.dirs.by_id(id).map_err(auth_backend)
    }

    async fn update(&self, account: &AccountRecord) -> Result<(), StoreError> {
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

    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        let (dirs, after) = (self.dirs.clone(), after.copied());
        blocking(move || dirs.page(after.as_ref(), limit))
            .await
            .map_err(auth_backend)
    }

    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, StoreError> {
        let (dirs, id, old, new) = (self.dirs.clone(), *id, old.clone(), new.clone());
        blocking(move || dirs.reseal(&id, &old, &new))
            .await
            .map_err(auth_backend)
    }

    async fn clear(&self, limit: usize) -> Result<Vec<Account>, StoreError> {
        let dirs = self.dirs.clone();
        blocking(move || dirs.clear(limit))
            .await
            .map_err(auth_backend)
    }

    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, StoreError> {
        let (root, check) = (self.dirs.root.clone(), hex::encode(check));
        blocking(move || {
            // Exclusive create: of two first processes with different keys, one loses.
            atomic::create(&root, INDEX_CHECK, check.as_bytes())?;
            Ok(atomic::read(&root.join(INDEX_CHECK))?.is_some_and(|b| b == check.as_bytes()))
        })
        .await
        .map_err(auth_backend)
    }

    async fn seal_clear(&self, record: &AccountRecord) -> Result<bool, StoreError> {
        let (dirs, record) = (self.dirs.clone(), record.clone());
        match blocking(move || dirs.seal_clear(&record)).await {
            Ok(Some(sealed)) => Ok(sealed),
            Ok(None) => Err(StoreError::Duplicate),
            Err(e) => Err(auth_backend(e)),
        }
    }
}

/// The file that says no record in the clear is left.
const SEALED_MARKER: &str = "sealed";
/// The file that holds the email index key's check.
const INDEX_CHECK: &str = "index-key-check";

#[derive(Debug)]
struct Dirs {
    records: PathBuf,
    emails: PathBuf,
    root: PathBuf,
    sealed_marker: PathBuf,
    locks: ShardLocks,
    cache: Arc<StampCache<AccountRecord>>,
    _owner: DataDir,
}

fn record_name(id: &UserId) -> String {
    sha256_hex(id.to_string().as_bytes())
}

fn email_name(email: &EmailIndex) -> String {
    email.to_hex()
}

/// The index entry name of a record stored in the clear by a version before sealing.
fn clear_email_name(account: &Account) -> String {
    sha256_hex(account.email.as_str().as_bytes())
}

fn decode(bytes: &[u8]) -> io::Result<AccountRecord> {
    serde_json::from_slice(bytes).map_err(|_| corrupt("account record"))
}

impl Dirs {
    fn by_id(&self, id: &UserId) -> io::Result<Option<AccountRecord>> {
        self.cache.read(&record_name(id), |bytes| {
            let account = decode(bytes)?;
            if account.id != *id {
                return Err(corrupt("account record (id does not match its name)"));
            }
            Ok(account)
        })
    }

    fn by_email(&self, email: &EmailIndex) -> io::Result<Option<AccountRecord>> {
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
        if account.email.index != *email {
            return Err(corrupt("email index (points at another address)"));
        }
        Ok(Some(account))
    }

    fn insert(&self, account: &AccountRecord) -> io::Result<bool> {
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
        match atomic::create(
            &self.emails,
            &email_name(&account.email.index),
            id.as_bytes(),
        ) {
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
        let entry = email_name(&account.email.index);
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

    fn update(&self, account: &AccountRecord) -> io::Result<bool> {
        let bytes = serde_json::to_vec(account).map_err(io::Error::other)?;
        let name = record_name(&account.id);
        let _guard = self.locks.lock(&name)?;
        match self.by_id(&account.id)? {
            // The email is the index key: changing it here would orphan the index entry.
            Some(old) if old.email.index == account.email.index => {
                self.cache
                    .changing(&name, || atomic::replace(&self.records, &name, &bytes))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Record names in a fixed order (sorted), after the one of `after`.
    fn page(&self, after: Option<&UserId>, limit: usize) -> io::Result<Vec<AccountRecord>> {
        let mut names: Vec<String> = atomic::names(&self.records)?
            .into_iter()
            .filter(|n| is_record_name(n))
            .collect();
        names.sort_unstable();
        let start = after.map_or(0, |id| names.partition_point(|n| *n <= record_name(id)));
        let mut out = Vec::new();
        for name in &names[start..] {
            if out.len() == limit {
                break;
            }
            // A record left in the clear is the migration's, not a rotation's.
            let Some(Ok(record)) = atomic::read(&self.records.join(name))?.map(|b| decode(&b))
            else {
                continue;
            };
            if record_name(&record.id) != *name {
                return Err(corrupt("account record (id does not match its name)"));
            }
            out.push(record);
        }
        Ok(out)
    }

    fn reseal(&self, id: &UserId, old: &SealedFields, new: &SealedFields) -> io::Result<bool> {
        let name = record_name(id);
        let _guard = self.locks.lock(&name)?;
        let Some(mut record) = self.by_id(id)? else {
            return Ok(false);
        };
        if record.sealed_fields() != *old {
            return Ok(false);
        }
        record.email.sealed.clone_from(&new.email);
        record.sealed_name.clone_from(&new.name);
        if let (Some(t), Some(secret)) = (&mut record.two_factor, &new.totp) {
            t.sealed_secret.clone_from(secret);
        }
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        self.cache
            .changing(&name, || atomic::replace(&self.records, &name, &bytes))?;
        Ok(true)
    }

    /// Records in the clear, read from disk; writes the marker when a whole scan finds none.
    fn clear(&self, limit: usize) -> io::Result<Vec<Account>> {
        if self.sealed_marker.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for name in atomic::names(&self.records)?
            .iter()
            .filter(|n| is_record_name(n))
        {
            if out.len() == limit {
                return Ok(out);
            }
            if let Some(account) = self.read_clear(name)? {
                out.push(account);
            }
        }
        if out.is_empty() {
            atomic::create(&self.root, SEALED_MARKER, b"")?;
        }
        Ok(out)
    }

    /// The account in the clear in the file `name`; `None` for a sealed record or no file.
    fn read_clear(&self, name: &str) -> io::Result<Option<Account>> {
        let Some(bytes) = atomic::read(&self.records.join(name))? else {
            return Ok(None);
        };
        if decode(&bytes).is_ok() {
            return Ok(None);
        }
        let account: Account =
            serde_json::from_slice(&bytes).map_err(|_| corrupt("account record"))?;
        if record_name(&account.id) != name {
            return Err(corrupt("account record (id does not match its name)"));
        }
        Ok(Some(account))
    }

    /// Swaps the clear record of `record.id` for `record`: the old index entry goes first, then
    /// the new one is made, then the record is replaced, so a crash at any point leaves a state
    /// the next run finishes. `Some(false)` if the record is not in the clear; `None` if another
    /// account holds the new index entry.
    fn seal_clear(&self, record: &AccountRecord) -> io::Result<Option<bool>> {
        let name = record_name(&record.id);
        let _guard = self.locks.lock(&name)?;
        let Some(clear) = self.read_clear(&name)? else {
            return Ok(Some(false));
        };
        let id = record.id.to_string();
        let old_entry = clear_email_name(&clear);
        if atomic::read(&self.emails.join(&old_entry))?.is_some_and(|b| b == id.as_bytes()) {
            atomic::remove(&self.emails, &old_entry)?;
        }
        let entry = email_name(&record.email.index);
        if !atomic::create(&self.emails, &entry, id.as_bytes())?
            && atomic::read(&self.emails.join(&entry))?.is_none_or(|b| b != id.as_bytes())
        {
            return Ok(None);
        }
        let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
        self.cache
            .changing(&name, || atomic::replace(&self.records, &name, &bytes))?;
        Ok(Some(true))
    }
}
