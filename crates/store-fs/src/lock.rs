//! Sharded OS advisory locks around read-modify-write of a record.
//!
//! A record named `ab…` is guarded by `locks/ab.lock`, one of at most 256 files, locked with
//! `File::lock` (`flock` on Unix, `LockFileEx` on Windows). Each acquisition opens its own handle,
//! so the lock excludes threads of this process as well as other processes, and closing the handle
//! (or the process dying) releases it: there is no stale-lock rule. The record file itself is never
//! locked, because a replacing rename gives it a new inode. No code path holds two shard locks, so
//! there is no lock order to keep.
//!
//! Waiting is bounded: a lock is tried, then tried again after 1 ms, 2 ms, … up to 64 ms between
//! tries, and after [`LOCK_WAIT`] the operation fails (`TimedOut`, a 503 to a user) instead of
//! hanging behind a process that is stuck while holding it.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{atomic, DataDir};

/// How long an operation waits for a lock before it fails.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(5);

/// What an `io::Error` of kind `TimedOut` from [`lock_within`] carries, so the store that
/// sees it can report a `lock_timeout` security event ([`crate::DataDir::report_to`]).
#[derive(Debug)]
pub(crate) struct LockTimedOut {
    pub(crate) path: PathBuf,
    pub(crate) waited: Duration,
}

impl std::fmt::Display for LockTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the lock {} was held for more than {} ms",
            self.path.display(),
            self.waited.as_millis()
        )
    }
}

impl std::error::Error for LockTimedOut {}

/// Takes the lock of `file`, opened at `path` (`exclusive` or shared), waiting with backoff for
/// at most `wait`.
pub(crate) fn lock_within(
    file: &File,
    path: &Path,
    exclusive: bool,
    wait: Duration,
) -> io::Result<()> {
    let deadline = Instant::now() + wait;
    let mut pause = Duration::from_millis(1);
    loop {
        let tried = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(TryLockError::Error(e)) => return Err(e),
            Err(TryLockError::WouldBlock) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    LockTimedOut {
                        path: path.to_owned(),
                        waited: wait,
                    },
                ));
            }
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(Duration::from_millis(64));
            }
        }
    }
}

/// The lock directory of one store.
#[derive(Debug)]
pub(crate) struct ShardLocks {
    dir: PathBuf,
    wait: Duration,
    owner: Option<DataDir>,
}

impl ShardLocks {
    /// Locks in `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            wait: LOCK_WAIT,
            owner: None,
        }
    }

    /// Timeouts are reported through `owner`'s events.
    pub(crate) fn reporting_to(mut self, owner: &DataDir) -> Self {
        self.owner = Some(owner.clone());
        self
    }

    /// The same locks, giving up after `wait` (tests).
    #[cfg(test)]
    pub(crate) fn waiting(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// The lock file guarding the record called `name` (a hex name).
    pub(crate) fn path_for(&self, name: &str) -> PathBuf {
        let shard = name
            .get(..2)
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()));
        self.dir.join(format!("{}.lock", shard.unwrap_or("00")))
    }

    /// Waits (at most [`LOCK_WAIT`]) until this handle holds the shard of `name`; released when
    /// the guard drops.
    pub(crate) fn lock(&self, name: &str) -> io::Result<ShardGuard> {
        let file = atomic::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path_for(name))?;
        if let Err(e) = lock_within(&file, &self.path_for(name), true, self.wait) {
            if let Some(owner) = &self.owner {
                owner.report(&e);
            }
            return Err(e);
        }
        Ok(ShardGuard(file))
    }
}

/// A held shard lock.
#[derive(Debug)]
pub(crate) struct ShardGuard(File);

impl Drop for ShardGuard {
    fn drop(&mut self) {
        // Closing the handle releases the lock anyway; unlocking first just says so explicitly.
        let _ = self.0.unlock();
    }
}

#[cfg(test)]
mod tests;
