//! [`TokenStore`] over a directory: one JSON file per token, consumed by renaming it away, and one
//! small file per subject naming its live token.

use async_trait::async_trait;
use phaze_auth::{StoreError, TokenHash, TokenPurpose, TokenRecord, TokenStore, UserId};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use time::OffsetDateTime;

use crate::lock::ShardLocks;
use crate::{
    atomic, auth_backend, blocking, corrupt, is_record_name, prepare_dir, sha256_hex, DataDir,
    FsError,
};

/// [`TokenStore`] in `<dir>/tokens`, one file per token named by its [`TokenHash`]'s hex.
///
/// `consume` needs no lock, even across processes: the consumer renames the token to a private
/// name, and of any number of renamers of one file exactly one succeeds. `issue` keeps "one live
/// token per purpose and subject" with `subjects/<sha256(purpose, subject)>`, which names the
/// subject's live token, rewritten under that name's shard lock (`locks/`): the older token is
/// claimed and deleted before the new one is written, so a crash between the steps leaves no live
/// token of the subject rather than two.
#[derive(Clone, Debug)]
pub struct FsTokens {
    dir: Arc<PathBuf>,
    subjects: Arc<PathBuf>,
    locks: Arc<ShardLocks>,
    _owner: DataDir,
}

impl FsTokens {
    /// Opens the store in `dir/tokens`, creating it (0700 on Unix) if needed, with the directory
    /// opened [`Sharing::Shared`](crate::Sharing::Shared).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        DataDir::open(dir, crate::Sharing::Shared)?.tokens()
    }

    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let dir = prepare_dir(&owner.path().join("tokens"))?;
        let subjects = prepare_dir(&dir.join("subjects"))?;
        let locks = ShardLocks::new(&prepare_dir(&dir.join("locks"))?).reporting_to(owner);
        Ok(Self {
            dir: Arc::new(dir),
            subjects: Arc::new(subjects),
            locks: Arc::new(locks),
            _owner: owner.clone(),
        })
    }
}

#[async_trait]
impl TokenStore for FsTokens {
    async fn issue(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let this = self.clone();
        let record = record.clone();
        match blocking(move || issue(&this, &record)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Duplicate),
            Err(e) => Err(auth_backend(e)),
        }
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (this, hash) = (self.clone(), *hash);
        blocking(move || {
            let consumed = consume(&this.dir, &hash, purpose, now)?;
            if let Some(record) = &consumed {
                forget_subject(&this, record)?;
            }
            Ok(consumed)
        })
        .await
        .map_err(auth_backend)
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (this, hash) = (self.clone(), *hash);
        blocking(move || {
            // A live token's file has its hash's name; a used one was renamed away first.
            let Some(bytes) = atomic::read(&this.dir.join(hash.to_hex()))? else {
                return Ok(None);
            };
            let record = decode(&bytes, &hash)?;
            Ok((record.purpose == purpose && record.expires_at > now).then_some(record))
        })
        .await
        .map_err(auth_backend)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let this = self.clone();
        blocking(move || {
            let purged = purge_expired(&this.dir, now)?;
            purge_subjects(&this)?;
            Ok(purged)
        })
        .await
        .map_err(auth_backend)
    }

    async fn remove_user(&self, user: &UserId) -> Result<usize, StoreError> {
        let (this, user) = (self.clone(), *user);
        blocking(move || {
            let owned = |bytes: &[u8]| {
                serde_json::from_slice::<TokenRecord>(bytes).is_ok_and(|r| r.user_id == user)
            };
            let removed = remove_where(&this.dir, owned)?;
            purge_subjects(&this)?;
            Ok(removed)
        })
        .await
        .map_err(auth_backend)
    }
}

/// The name of a subject's file: neither the purpose nor the subject (an address) appears in it.
fn subject_name(record: &TokenRecord) -> String {
    let purpose = match record.purpose {
        TokenPurpose::EmailVerification => "email_verification",
        TokenPurpose::PasswordReset => "password_reset",
        TokenPurpose::RecoveryCode => "recovery_code",
    };
    sha256_hex(format!("{purpose}\0{}", record.subject()).as_bytes())
}

fn issue(store: &FsTokens, record: &TokenRecord) -> io::Result<bool> {
    let (dir, name) = (store.dir.as_path(), record.hash.to_hex());
    if dir.join(&name).exists() {
        return Ok(false);
    }
    let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    let subject = subject_name(record);
    let _guard = store.locks.lock(&subject)?;
    if let Some(older) = atomic::read(&store.subjects.join(&subject))? {
        let older = String::from_utf8_lossy(&older);
        if is_record_name(&older) && older != name {
            if let Some(claimed) = claim(dir, &older)? {
                atomic::remove(dir, &claimed)?;
            }
        }
    }
    if !atomic::create(dir, &name, &bytes)? {
        return Ok(false);
    }
    atomic::replace(&store.subjects, &subject, name.as_bytes())?;
    Ok(true)
}

/// Deletes the subject files whose token is gone (used, expired or purged).
fn purge_subjects(store: &FsTokens) -> io::Result<()> {
    for subject in atomic::names(&store.subjects)? {
        if !is_record_name(&subject) {
            continue;
        }
        let _guard = store.locks.lock(&subject)?;
        let live = atomic::read(&store.subjects.join(&subject))?
            .map(|t| String::from_utf8_lossy(&t).into_owned())
            .filter(|t| is_record_name(t) && store.dir.join(t).exists());
        if live.is_none() {
            atomic::remove_unsynced(&store.subjects, &subject)?;
        }
    }
    Ok(())
}

fn decode(bytes: &[u8], hash: &TokenHash) -> io::Result<TokenRecord> {
    let record: TokenRecord = serde_json::from_slice(bytes).map_err(|_| corrupt("token record"))?;
    if record.hash != *hash {
        return Err(corrupt("token record (hash does not match its name)"));
    }
    Ok(record)
}

/// Moves `dir/name` to a fresh private name; `None` if another process took it first.
fn claim(dir: &Path, name: &str) -> io::Result<Option<String>> {
    let claimed = atomic::private_name(atomic::CLAIM_SUFFIX);
    match fs::rename(dir.join(name), dir.join(&claimed)) {
        Ok(()) => Ok(Some(claimed)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Puts a claimed token back under its name, unless a new one took the name meanwhile.
fn unclaim(dir: &Path, claimed: &str, name: &str) -> io::Result<()> {
    match fs::hard_link(dir.join(claimed), dir.join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    atomic::remove(dir, claimed).map(drop)
}

fn consume(
    dir: &Path,
    hash: &TokenHash,
    purpose: TokenPurpose,
    now: OffsetDateTime,
) -> io::Result<Option<TokenRecord>> {
    let name = hash.to_hex();
    // Check the purpose before claiming: a token presented for the wrong purpose stays usable.
    let Some(bytes) = atomic::read(&dir.join(&name))? else {
        return Ok(None);
    };
    if decode(&bytes, hash)?.purpose != purpose {
        return Ok(None);
    }
    let Some(claimed) = claim(dir, &name)? else {
        return Ok(None);
    };
    // What was claimed is what is returned: read it again, in case the name changed hands
    // between the first read and the rename.
    let record = match atomic::read(&dir.join(&claimed))?.map(|b| decode(&b, hash)) {
        Some(Ok(record)) => record,
        Some(Err(e)) => {
            let _ = atomic::remove(dir, &claimed);
            return Err(e);
        }
        None => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "claimed token vanished",
            ))
        }
    };
    if record.purpose != purpose {
        unclaim(dir, &claimed, &name)?;
        return Ok(None);
    }
    // Durable before it is honoured: a crash must not bring a used token back.
    atomic::remove(dir, &claimed)?;
    Ok((record.expires_at > now).then_some(record))
}

/// Deletes the subject file of `record` if it still names `record`'s token (a used token leaves
/// nothing of its subject behind; a newer token's subject file stays).
fn forget_subject(store: &FsTokens, record: &TokenRecord) -> io::Result<()> {
    let subject = subject_name(record);
    let _guard = store.locks.lock(&subject)?;
    let names_it = atomic::read(&store.subjects.join(&subject))?
        .is_some_and(|t| t == record.hash.to_hex().as_bytes());
    if names_it {
        atomic::remove(&store.subjects, &subject)?;
    }
    Ok(())
}

fn purge_expired(dir: &Path, now: OffsetDateTime) -> io::Result<usize> {
    let expired = |bytes: &[u8]| {
        serde_json::from_slice::<TokenRecord>(bytes).map_or(true, |r| r.expires_at <= now)
    };
    let purged = remove_where(dir, expired)?;
    atomic::sweep_stale(dir, SystemTime::from(now));
    Ok(purged)
}

/// Deletes every token whose file `doomed` says so, claiming each first so a removal and a
/// consume never both act on one token; returns how many went.
fn remove_where(dir: &Path, doomed: impl Fn(&[u8]) -> bool) -> io::Result<usize> {
    let mut purged = 0;
    for name in atomic::names(dir)? {
        if !is_record_name(&name) {
            continue;
        }
        match atomic::read(&dir.join(&name))? {
            Some(bytes) if doomed(&bytes) => {}
            _ => continue,
        }
        // Claim before deleting, so a purge and a consume never both act on one token.
        let Some(claimed) = claim(dir, &name)? else {
            continue;
        };
        match atomic::read(&dir.join(&claimed))? {
            Some(bytes) if !doomed(&bytes) => unclaim(dir, &claimed, &name)?,
            _ => {
                atomic::remove_unsynced(dir, &claimed)?;
                purged += 1;
            }
        }
    }
    if purged > 0 {
        atomic::sync_dir(dir)?;
    }
    Ok(purged)
}
