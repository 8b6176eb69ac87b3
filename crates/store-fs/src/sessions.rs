//! [`SessionStore`] over a directory: one file per session, a directory of empty markers per user.

use async_trait::async_trait;
use phaze_sessions::{Rotation, SessionKey, SessionStore, StoreError, StoredSession};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use time::OffsetDateTime;

use crate::cache::StampCache;
use crate::lock::ShardLocks;
use crate::{atomic, blocking, corrupt, is_record_name, prepare_dir, sha256_hex, DataDir, FsError};

/// [`SessionStore`] in `<dir>/sessions`. Records are named by the [`SessionKey`]'s hex; the
/// per-user index is `users/<sha256(user id)>/` holding one empty file per session key, so listing
/// or revoking a user's sessions never scans other users' records.
///
/// Several processes may open the same directory (see [`DataDir`]).
#[derive(Clone, Debug)]
pub struct FsSessions {
    dirs: Arc<Dirs>,
}

impl FsSessions {
    /// Opens the store in `dir/sessions`, creating its directories (0700 on Unix) if needed, with
    /// the directory opened [`Sharing::Shared`](crate::Sharing::Shared).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        DataDir::open(dir, crate::Sharing::Shared)?.sessions()
    }

    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let root = owner.path().join("sessions");
        let records = prepare_dir(&root.join("records"))?;
        let cache = owner.session_cache(&records);
        let users = prepare_dir(&root.join("users"))?;
        let locks = ShardLocks::new(&prepare_dir(&root.join("locks"))?).reporting_to(owner);
        Ok(Self {
            dirs: Arc::new(Dirs {
                records,
                users,
                locks,
                cache,
                _owner: owner.clone(),
            }),
        })
    }
}

fn backend(e: io::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

#[async_trait]
impl SessionStore for FsSessions {
    async fn insert(&self, session: &StoredSession) -> Result<(), StoreError> {
        let (dirs, session) = (self.dirs.clone(), session.clone());
        match blocking(move || dirs.insert(&session)).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Duplicate),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        // One small read, and atomic renames make it consistent without a lock.
        self.dirs.read_record(&key.to_hex()).map_err(backend)
    }

    async fn update(&self, session: &StoredSession) -> Result<bool, StoreError> {
        let (dirs, session) = (self.dirs.clone(), session.clone());
        blocking(move || dirs.update(&session))
            .await
            .map_err(backend)
    }

    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, StoreError> {
        let (dirs, retired, successor) = (self.dirs.clone(), retired.clone(), successor.clone());
        match blocking(move || dirs.rotate(&retired, &successor)).await {
            Ok(Some(rotation)) => Ok(rotation),
            Ok(None) => Err(StoreError::Duplicate),
            Err(e) => Err(backend(e)),
        }
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        let (dirs, name) = (self.dirs.clone(), key.to_hex());
        blocking(move || dirs.remove(&name)).await.map_err(backend)
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError> {
        let (dirs, user_id) = (self.dirs.clone(), user_id.to_owned());
        blocking(move || dirs.list_user(&user_id))
            .await
            .map_err(backend)
    }

    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError> {
        let (dirs, user_id, keep) = (
            self.dirs.clone(),
            user_id.to_owned(),
            keep.map(|k| k.to_hex()),
        );
        blocking(move || dirs.remove_user(&user_id, keep.as_deref()))
            .await
            .map_err(backend)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let dirs = self.dirs.clone();
        blocking(move || dirs.purge_expired(now))
            .await
            .map_err(backend)
    }
}

#[derive(Debug)]
struct Dirs {
    records: PathBuf,
    users: PathBuf,
    locks: ShardLocks,
    cache: Arc<StampCache<StoredSession>>,
    _owner: DataDir,
}

/// What is on disk under a record name, for the operations that delete records: a record that
/// cannot be decoded can never be served, so those delete it rather than fail forever.
enum Slot {
    Missing,
    Corrupt,
    Present(StoredSession),
}

impl Dirs {
    fn user_dir(&self, user_id: &str) -> PathBuf {
        self.users.join(sha256_hex(user_id.as_bytes()))
    }

    /// The record called `name`; an error if it exists but is not a record with that key.
    fn read_record(&self, name: &str) -> io::Result<Option<StoredSession>> {
        self.cache.read(name, |bytes| decode_named(name, bytes))
    }

    fn slot(&self, name: &str) -> io::Result<Slot> {
        slot_of(self.read_record(name))
    }

    /// [`Self::slot`] read from the file, leaving the cache as it is: for scans of every record,
    /// which would otherwise fill the cache with cold sessions and push the hot ones out.
    fn scanned_slot(&self, name: &str) -> io::Result<Slot> {
        slot_of(
            self.cache
                .read_uncached(name, |bytes| decode_named(name, bytes)),
        )
    }

    fn insert(&self, session: &StoredSession) -> io::Result<bool> {
        let name = session.key.to_hex();
        let bytes = encode(session)?;
        let _guard = self.locks.lock(&name)?;
        if fs::exists(self.records.join(&name))? {
            return Ok(false);
        }
        // The marker goes first: a crash in between leaves a marker without a record, which
        // `list_user` skips and cleans, never a record that "log out everywhere" cannot find.
        self.add_marker(&self.user_dir(&session.user_id), &name)?;
        // Under the lock the name is free, but linking (not renaming) keeps "never overwrite"
        // true even against a writer that ignores the locks.
        self.cache
            .changing(&name, || atomic::create(&self.records, &name, &bytes))
    }

    fn add_marker(&self, user_dir: &Path, name: &str) -> io::Result<()> {
        for _ in 0..4 {
            let fresh = !fs::exists(user_dir)?;
            atomic::create_dir_private(user_dir)?;
            let marker = atomic::private_options()
                .write(true)
                .create(true)
                .truncate(false)
                .open(user_dir.join(name));
            match marker {
                Ok(_) => {
                    atomic::sync_dir(user_dir)?;
                    return if fresh {
                        atomic::sync_dir(&self.users)
                    } else {
                        Ok(())
                    };
                }
                // `purge_expired` removed the then-empty user directory in between: make it again.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "user index directory keeps vanishing",
        ))
    }

    fn update(&self, session: &StoredSession) -> io::Result<bool> {
        let name = session.key.to_hex();
        let bytes = encode(session)?;
        // Existence is checked under the same lock `remove` takes, so an update racing a revoke
        // either lands before it (and is then removed) or finds nothing and writes nothing.
        let _guard = self.locks.lock(&name)?;
        match self.read_record(&name)? {
            Some(old) if old.user_id == session.user_id && old.successor.is_none() => {
                self.cache
                    .changing(&name, || atomic::replace(&self.records, &name, &bytes))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// [`SessionStore::rotate`]; `None` if the successor's name is taken. Atomic under the old
    /// record's shard lock, which every writer of that record takes: of racing rotations one
    /// finds the record live, the rest find it retired. Only that one lock is held (see
    /// `lock.rs`); the successor's name is fresh and unknown to anyone else until the old record
    /// names it, and its record is written before its marker, so a listing that meets the marker
    /// always finds the record. The old record is retired last: a reader that sees it retired
    /// finds the successor in place. A crash part-way leaves at worst a successor nobody holds the
    /// id of, which expires idle.
    fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> io::Result<Option<Rotation>> {
        let name = retired.key.to_hex();
        let next = successor.key.to_hex();
        let (retired_bytes, successor_bytes) = (encode(retired)?, encode(successor)?);
        let _guard = self.locks.lock(&name)?;
        match self.read_record(&name)? {
            Some(old) if old.user_id != retired.user_id => return Ok(Some(Rotation::Gone)),
            Some(old) if old.successor.is_some() => return Ok(Some(Rotation::Lost(old))),
            Some(_) => {}
            None => return Ok(Some(Rotation::Gone)),
        }
        if !self.cache.changing(&next, || {
            atomic::create(&self.records, &next, &successor_bytes)
        })? {
            return Ok(None);
        }
        self.add_marker(&self.user_dir(&successor.user_id), &next)?;
        self.cache.changing(&name, || {
            atomic::replace(&self.records, &name, &retired_bytes)
        })?;
        Ok(Some(Rotation::Won))
    }

    fn remove(&self, name: &str) -> io::Result<bool> {
        let (removed, next) = {
            let _guard = self.locks.lock(name)?;
            match self.slot(name)? {
                Slot::Missing => (false, None),
                Slot::Corrupt => (self.delete_locked(name, None)?, None),
                Slot::Present(old) => (
                    self.delete_locked(name, Some(&old.user_id))?,
                    old.successor.map(|k| (k, old.user_id)),
                ),
            }
        };
        let followed = match next {
            Some((key, owner)) => self.remove_successors(key, &owner, None)?,
            None => 0,
        };
        if removed || followed > 0 {
            atomic::sync_dir(&self.records)?;
        }
        Ok(removed)
    }

    /// Deletes `first` and the records it was rotated into, while they belong to `owner`, up to
    /// `keep`; returns how many went. One record at a time, each under its own shard lock (no
    /// code path holds two), each read under that lock: a rotation of the chain's last record
    /// either happened before (and the walk follows its pointer) or finds the record gone. The
    /// caller syncs the records directory.
    fn remove_successors(
        &self,
        first: SessionKey,
        owner: &str,
        keep: Option<&str>,
    ) -> io::Result<usize> {
        let mut removed = 0;
        let mut next = Some(first.to_hex());
        // Each step deletes a record, so even a cycle in a tampered chain ends.
        while let Some(name) = next.take() {
            if keep == Some(name.as_str()) {
                break;
            }
            let _guard = self.locks.lock(&name)?;
            if let Slot::Present(s) = self.slot(&name)? {
                if s.user_id == owner && self.delete_locked(&name, Some(owner))? {
                    removed += 1;
                    next = s.successor.map(|k| k.to_hex());
                }
            }
        }
        Ok(removed)
    }

    /// Deletes the record `name` and, given its owner, the owner's marker, without syncing the
    /// records directory; the caller holds the shard lock. Whether the record existed.
    fn delete_locked(&self, name: &str, owner: Option<&str>) -> io::Result<bool> {
        let removed = self
            .cache
            .changing(name, || atomic::remove_unsynced(&self.records, name))?;
        if let Some(owner) = owner {
            atomic::remove_unsynced(&self.user_dir(owner), name)?;
        }
        Ok(removed)
    }

    fn list_user(&self, user_id: &str) -> io::Result<Vec<StoredSession>> {
        let user_dir = self.user_dir(user_id);
        let mut out = Vec::new();
        for name in atomic::names(&user_dir)? {
            if !is_record_name(&name) {
                continue;
            }
            match self.read_record(&name)? {
                Some(s) if s.user_id == user_id => out.push(s),
                _ => {
                    // A marker without a record of this user. An insert writes the marker before
                    // the record while holding the shard lock, so decide under that lock.
                    let _guard = self.locks.lock(&name)?;
                    match self.read_record(&name)? {
                        Some(s) if s.user_id == user_id => out.push(s),
                        _ => {
                            atomic::remove_unsynced(&user_dir, &name)?;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn remove_user(&self, user_id: &str, keep: Option<&str>) -> io::Result<usize> {
        let user_dir = self.user_dir(user_id);
        let mut removed = 0;
        for name in atomic::names(&user_dir)? {
            if !is_record_name(&name) || keep == Some(name.as_str()) {
                continue;
            }
            let _guard = self.locks.lock(&name)?;
            match self.slot(&name)? {
                Slot::Present(s) if s.user_id != user_id => {
                    atomic::remove_unsynced(&user_dir, &name)?;
                }
                // This user's record, or one nobody can read whose marker is in this user's
                // directory: theirs either way. A record rotated after the names were read has
                // a successor the list lacks: it goes too (after this lock is released).
                Slot::Present(s) => {
                    if self.delete_locked(&name, Some(user_id))? {
                        removed += 1;
                        if let Some(next) = s.successor {
                            drop(_guard);
                            removed += self.remove_successors(next, user_id, keep)?;
                        }
                    }
                }
                Slot::Corrupt => {
                    if self.delete_locked(&name, Some(user_id))? {
                        removed += 1;
                    }
                }
                Slot::Missing => {
                    atomic::remove_unsynced(&user_dir, &name)?;
                }
            }
        }
        // "Log out everywhere" must survive a crash, so the deletions are made durable together.
        if removed > 0 {
            atomic::sync_dir(&self.records)?;
        }
        Ok(removed)
    }

    fn purge_expired(&self, now: OffsetDateTime) -> io::Result<usize> {
        let mut purged = 0;
        for name in atomic::names(&self.records)? {
            if !is_record_name(&name) {
                continue;
            }
            let dead = |slot: &Slot| match slot {
                Slot::Missing => false,
                Slot::Corrupt => true,
                Slot::Present(s) => s.expires_at <= now,
            };
            // Judge without the lock first, so a purge does not lock every shard for live records.
            if !dead(&self.scanned_slot(&name)?) {
                continue;
            }
            let _guard = self.locks.lock(&name)?;
            let slot = self.slot(&name)?;
            if !dead(&slot) {
                continue;
            }
            let owner = match &slot {
                Slot::Present(s) => Some(s.user_id.as_str()),
                Slot::Missing | Slot::Corrupt => None,
            };
            if self.delete_locked(&name, owner)? {
                purged += 1;
            }
        }
        if purged > 0 {
            atomic::sync_dir(&self.records)?;
        }
        atomic::sweep_stale(&self.records, SystemTime::from(now));
        // Drop empty user directories; `remove_dir` refuses non-empty ones, and `add_marker`
        // recreates a directory removed under its feet.
        for name in atomic::names(&self.users)? {
            if is_record_name(&name) {
                let _ = fs::remove_dir(self.users.join(name));
            }
        }
        Ok(purged)
    }
}

/// Format tag and version of a session record.
const MAGIC: &[u8; 4] = b"PZS1";

/// Retirement flags: live; retired before records named their successor (read as retired, naming
/// itself: it leads nowhere); retired, followed by the successor's key (32 bytes).
const LIVE: u8 = 0;
const RETIRED_UNNAMED: u8 = 1;
const RETIRED: u8 = 2;

/// Encodes a record: magic, retirement flag (1 byte, and the successor's key if it has one),
/// `expires_at` as Unix nanoseconds (i128 LE), key (32), user id length (u32 LE) and bytes, then
/// the sealed data to the end.
fn encode(s: &StoredSession) -> io::Result<Vec<u8>> {
    let user = s.user_id.as_bytes();
    let user_len =
        u32::try_from(user.len()).map_err(|_| io::Error::other("session user id too long"))?;
    let mut out =
        Vec::with_capacity(MAGIC.len() + 1 + 32 + 16 + 32 + 4 + user.len() + s.sealed.len());
    out.extend_from_slice(MAGIC);
    match &s.successor {
        None => out.push(LIVE),
        Some(next) => {
            out.push(RETIRED);
            out.extend_from_slice(next.as_bytes());
        }
    }
    out.extend_from_slice(&s.expires_at.unix_timestamp_nanos().to_le_bytes());
    out.extend_from_slice(s.key.as_bytes());
    out.extend_from_slice(&user_len.to_le_bytes());
    out.extend_from_slice(user);
    out.extend_from_slice(&s.sealed);
    Ok(out)
}

fn decode(bytes: &[u8]) -> io::Result<StoredSession> {
    let bad = || corrupt("session record");
    let rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
    let (&flag, rest) = rest.split_first().ok_or_else(bad)?;
    let (successor, rest) = match flag {
        LIVE => (Successor::None, rest),
        RETIRED_UNNAMED => (Successor::Itself, rest),
        RETIRED => {
            let (next, rest) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
            (Successor::Key(SessionKey::from(*next)), rest)
        }
        _ => return Err(bad()),
    };
    let (nanos, rest) = rest.split_first_chunk::<16>().ok_or_else(bad)?;
    let expires_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from_le_bytes(*nanos))
        .map_err(|_| bad())?;
    let (key, rest) = rest.split_first_chunk::<32>().ok_or_else(bad)?;
    let (len, rest) = rest.split_first_chunk::<4>().ok_or_else(bad)?;
    let len = usize::try_from(u32::from_le_bytes(*len)).map_err(|_| bad())?;
    if rest.len() < len {
        return Err(bad());
    }
    let (user, sealed) = rest.split_at(len);
    let user_id = String::from_utf8(user.to_vec()).map_err(|_| bad())?;
    let key = SessionKey::from(*key);
    Ok(StoredSession {
        key,
        user_id,
        expires_at,
        successor: match successor {
            Successor::None => None,
            Successor::Itself => Some(key),
            Successor::Key(next) => Some(next),
        },
        sealed: sealed.to_vec(),
    })
}

/// A decoded retirement flag, before the record's own key is known.
enum Successor {
    None,
    Itself,
    Key(SessionKey),
}

fn decode_named(name: &str, bytes: &[u8]) -> io::Result<StoredSession> {
    let session = decode(bytes)?;
    if session.key.to_hex() != name {
        return Err(corrupt("session record (key does not match its name)"));
    }
    Ok(session)
}

fn slot_of(read: io::Result<Option<StoredSession>>) -> io::Result<Slot> {
    match read {
        Ok(Some(session)) => Ok(Slot::Present(session)),
        Ok(None) => Ok(Slot::Missing),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Ok(Slot::Corrupt),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests;
