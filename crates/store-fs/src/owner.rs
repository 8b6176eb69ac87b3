//! Who may use a data directory: one process alone, or several processes that all agree to share
//! it. The agreement is an OS advisory lock on `<dir>/owner.lock` (exclusive or shared), taken
//! when the directory is opened and held while any store opened from it lives; the kernel drops
//! it when the process dies, so there is no stale owner to clean up.

use phaze_auth::AccountRecord;
use phaze_events::{Events, SecurityEvent};
use phaze_sessions::StoredSession;
use std::fmt;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::cache::{StampCache, Trust};
use crate::{atomic, prepare_dir, FsAccounts, FsError, FsRateLimits, FsSessions, FsTokens};

/// The lock file's name in the data directory.
const LOCK_FILE: &str = "owner.lock";

/// How a process holds a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// This process alone: any other process that opens the directory, either way, is refused.
    /// Since every change then goes through this process, hot reads (a session by key, an
    /// account by id) are answered from memory without a system call.
    Exclusive,
    /// Any number of processes that all open it `Shared`. Hot reads check the record's file on
    /// every read (one `stat(2)`), so a change by another process is seen at once.
    Shared,
}

/// An open data directory: the stores of one process over it share its lock and its mode.
///
/// ```
/// use phaze_store_fs::{DataDir, Sharing};
/// let dir = tempfile::tempdir()?;
/// let data = DataDir::open(dir.path(), Sharing::Exclusive)?;
/// let sessions = data.sessions()?;
/// // Another opener, in this process or any other, is refused while `data` or a store lives.
/// assert!(DataDir::open(dir.path(), Sharing::Shared).is_err());
/// # drop(sessions);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct DataDir {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    sharing: Sharing,
    /// Holds the lock; closing it releases the lock.
    _lock: File,
    /// One read cache per kind of record, shared by every store opened from this directory: an
    /// exclusive cache must hear of every change this process makes, through whichever store.
    sessions: OnceLock<Arc<StampCache<StoredSession>>>,
    accounts: OnceLock<Arc<StampCache<AccountRecord>>>,
    /// Where lock timeouts are reported (the log alone until [`DataDir::report_to`]).
    events: OnceLock<Events>,
}

impl DataDir {
    /// Opens (creating it, 0700 on Unix, if needed) the data directory at `path` as `sharing`
    /// says. [`FsError::InUse`] if another holder's mode excludes this one; never waits.
    /// [`FsError::NetworkFilesystem`] if it is on NFS, SMB/CIFS or another network filesystem,
    /// whose locks and renames do not keep this store's promises (see
    /// [`DataDir::open_on_network_fs`]).
    pub fn open(path: impl AsRef<Path>, sharing: Sharing) -> Result<Self, FsError> {
        let path = prepare_dir(path.as_ref())?;
        match network_filesystem(&path) {
            Ok(Some(kind)) => return Err(FsError::NetworkFilesystem { path, kind }),
            Ok(None) => {}
            Err(source) => return Err(FsError::Dir { path, source }),
        }
        Self::open_on_network_fs(path, sharing)
    }

    /// [`DataDir::open`] without the network filesystem check, for an operator who has checked
    /// that the filesystem's locks and renames are atomic across its clients (`store.allow_network_fs`).
    pub fn open_on_network_fs(path: impl AsRef<Path>, sharing: Sharing) -> Result<Self, FsError> {
        let path = prepare_dir(path.as_ref())?;
        let lock_path = path.join(LOCK_FILE);
        let lock_error = |source| FsError::Lock {
            path: lock_path.clone(),
            source,
        };
        let file = atomic::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(lock_error)?;
        let locked = match sharing {
            Sharing::Exclusive => file.try_lock(),
            Sharing::Shared => file.try_lock_shared(),
        };
        match locked {
            Ok(()) => Ok(Self {
                inner: Arc::new(Inner {
                    path,
                    sharing,
                    _lock: file,
                    sessions: OnceLock::new(),
                    accounts: OnceLock::new(),
                    events: OnceLock::new(),
                }),
            }),
            Err(TryLockError::WouldBlock) => Err(FsError::InUse { path, sharing }),
            Err(TryLockError::Error(e)) => Err(lock_error(e)),
        }
    }

    /// Reports the stores' lock timeouts (the `lock_timeout` security event) through `events`,
    /// for every store opened from this directory, before or after this call. The first call
    /// wins.
    pub fn report_to(&self, events: Events) {
        let _ = self.inner.events.set(events);
    }

    /// Reports `e` if it is a lock timeout.
    pub(crate) fn report(&self, e: &std::io::Error) {
        let Some(timeout) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<crate::lock::LockTimedOut>())
        else {
            return;
        };
        let event = SecurityEvent::LockTimeout {
            file: timeout.path.display().to_string(),
            waited_ms: u64::try_from(timeout.waited.as_millis()).unwrap_or(u64::MAX),
        };
        match self.inner.events.get() {
            Some(events) => events.emit(event),
            None => Events::default().emit(event),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How this process holds it.
    pub fn sharing(&self) -> Sharing {
        self.inner.sharing
    }

    /// The session store in `<dir>/sessions`.
    pub fn sessions(&self) -> Result<FsSessions, FsError> {
        FsSessions::open_in(self)
    }

    /// The account store in `<dir>/accounts`.
    pub fn accounts(&self) -> Result<FsAccounts, FsError> {
        FsAccounts::open_in(self)
    }

    /// The token store in `<dir>/tokens`.
    pub fn tokens(&self) -> Result<FsTokens, FsError> {
        FsTokens::open_in(self)
    }

    /// The device store in `<dir>/devices`.
    pub fn devices(&self) -> Result<crate::FsDevices, FsError> {
        crate::FsDevices::open_in(self)
    }

    /// The tunnel address pool in `<dir>/pool`.
    pub fn address_pool(&self) -> Result<crate::FsAddressPool, FsError> {
        crate::FsAddressPool::open_in(self)
    }

    /// The audit log in `<dir>/audit`.
    pub fn audit(&self) -> Result<crate::FsAudit, FsError> {
        crate::FsAudit::open_in(self)
    }

    /// The rate-limit store in `<dir>/ratelimits`.
    pub fn rate_limits(&self) -> Result<FsRateLimits, FsError> {
        FsRateLimits::open_in(self)
    }

    /// The webhook events store in `<dir>/payments/events`.
    pub fn processed_events(&self) -> Result<crate::FsProcessedEvents, FsError> {
        crate::FsProcessedEvents::open_in(self)
    }

    /// The subscription store in `<dir>/payments`.
    pub fn subscriptions(&self) -> Result<crate::FsSubscriptions, FsError> {
        crate::FsSubscriptions::open_in(self)
    }

    /// The read cache of session records (in `records`), the same for every session store
    /// opened from this directory.
    pub(crate) fn session_cache(&self, records: &Path) -> Arc<StampCache<StoredSession>> {
        let new = || Arc::new(StampCache::new(records, self.trust()));
        self.inner.sessions.get_or_init(new).clone()
    }

    /// The read cache of account records (in `records`), the same for every account store
    /// opened from this directory.
    pub(crate) fn account_cache(&self, records: &Path) -> Arc<StampCache<AccountRecord>> {
        let new = || Arc::new(StampCache::new(records, self.trust()));
        self.inner.accounts.get_or_init(new).clone()
    }

    /// How far the read caches of stores opened from this directory may trust themselves.
    fn trust(&self) -> Trust {
        match self.inner.sharing {
            Sharing::Exclusive => Trust::OwnWrites,
            Sharing::Shared => Trust::EveryRead,
        }
    }
}

impl fmt::Debug for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataDir")
            .field("path", &self.inner.path)
            .field("sharing", &self.inner.sharing)
            .finish()
    }
}

/// The network filesystem `path` is on, by name, or `None` for a local one. Linux reads the
/// filesystem's magic number (`statfs`); elsewhere nothing is detected (`None`).
pub fn network_filesystem(path: &Path) -> std::io::Result<Option<&'static str>> {
    #[cfg(target_os = "linux")]
    {
        let fs = rustix::fs::statfs(path)?;
        #[allow(clippy::unnecessary_cast)] // the field's width differs between targets
        Ok(network_kind(fs.f_type as i64))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        Ok(None)
    }
}

/// The network filesystems among Linux's filesystem magic numbers (`linux/magic.h`).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn network_kind(magic: i64) -> Option<&'static str> {
    match magic & 0xffff_ffff {
        0x6969 => Some("NFS"),
        0x517b => Some("SMB"),
        0xff53_4d42 => Some("CIFS"),
        0xfe53_4d42 => Some("SMB2"),
        0x00c3_6400 => Some("Ceph"),
        0x5346_414f => Some("AFS"),
        0x0102_1997 => Some("9P"),
        0x0bd0_0bd0 => Some("Lustre"),
        0x0116_1970 => Some("GFS2"),
        0x7461_636f => Some("OCFS2"),
        0x6b41_4653 => Some("kAFS"),
        _ => None,
    }
}

#[cfg(test)]
mod network_tests {
    use super::*;

    #[test]
    fn network_filesystems_are_named_and_local_ones_pass() {
        assert_eq!(network_kind(0x6969), Some("NFS"));
        assert_eq!(network_kind(0xff53_4d42), Some("CIFS"));
        assert_eq!(
            network_kind(0xffff_ffff_ff53_4d42_u64 as i64),
            Some("CIFS"),
            "sign-extended"
        );
        assert_eq!(network_kind(0xef53), None, "ext4");
        assert_eq!(network_kind(0x0102_1994), None, "tmpfs");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            network_filesystem(dir.path()).ok(),
            Some(None),
            "a local temporary directory"
        );
    }
}
