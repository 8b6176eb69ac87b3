//! [`TokenStore`] over a directory: one JSON file per token, consumed by renaming it away.

use async_trait::async_trait;
use phaze_auth::{StoreError, TokenHash, TokenPurpose, TokenRecord, TokenStore};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use time::OffsetDateTime;

use crate::{
    atomic, auth_backend, blocking, corrupt, is_record_name, prepare_dir, DataDir, FsError,
};

/// [`TokenStore`] in `<dir>/tokens`, one file per token named by its [`TokenHash`]'s hex.
///
/// `consume` needs no lock, even across processes: the consumer renames the token to a private
/// name, and of any number of renamers of one file exactly one succeeds.
#[derive(Clone, Debug)]
pub struct FsTokens {
    dir: Arc<PathBuf>,
    _owner: DataDir,
}

impl FsTokens {
    /// Opens the store in `dir/tokens`, creating it (0700 on Unix) if needed, with the directory
    /// opened [`Sharing::Shared`](crate::Sharing::Shared).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        DataDir::open(dir, crate::Sharing::Shared)?.tokens()
    }

    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        Ok(Self {
            dir: Arc::new(prepare_dir(&owner.path().join("tokens"))?),
            _owner: owner.clone(),
        })
    }
}

#[async_trait]
impl TokenStore for FsTokens {
    async fn insert(&self, record: &TokenRecord) -> Result<(), StoreError> {
        let (dir, record) = (self.dir.clone(), record.clone());
        match blocking(move || insert(&dir, &record)).await {
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
        let (dir, hash) = (self.dir.clone(), *hash);
        blocking(move || consume(&dir, &hash, purpose, now))
            .await
            .map_err(auth_backend)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let dir = self.dir.clone();
        blocking(move || purge_expired(&dir, now))
            .await
            .map_err(auth_backend)
    }
}

fn insert(dir: &Path, record: &TokenRecord) -> io::Result<bool> {
    let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
    atomic::create(dir, &record.hash.to_hex(), &bytes)
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

fn purge_expired(dir: &Path, now: OffsetDateTime) -> io::Result<usize> {
    let mut purged = 0;
    for name in atomic::names(dir)? {
        if !is_record_name(&name) {
            continue;
        }
        let expired = |bytes: &[u8]| {
            serde_json::from_slice::<TokenRecord>(bytes).map_or(true, |r| r.expires_at <= now)
        };
        match atomic::read(&dir.join(&name))? {
            Some(bytes) if expired(&bytes) => {}
            _ => continue,
        }
        // Claim before deleting, so a purge and a consume never both act on one token.
        let Some(claimed) = claim(dir, &name)? else {
            continue;
        };
        match atomic::read(&dir.join(&claimed))? {
            Some(bytes) if !expired(&bytes) => unclaim(dir, &claimed, &name)?,
            _ => {
                atomic::remove_unsynced(dir, &claimed)?;
                purged += 1;
            }
        }
    }
    if purged > 0 {
        atomic::sync_dir(dir)?;
    }
    atomic::sweep_stale(dir, SystemTime::from(now));
    Ok(purged)
}
