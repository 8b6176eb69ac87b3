//! Sharded OS advisory locks around read-modify-write of a record.
//!
//! A record named `ab…` is guarded by `locks/ab.lock`, one of at most 256 files, locked with
//! `File::lock` (`flock` on Unix, `LockFileEx` on Windows). Each acquisition opens its own handle,
//! so the lock excludes threads of this process as well as other processes, and closing the handle
//! (or the process dying) releases it: there is no stale-lock rule. The record file itself is never
//! locked, because a replacing rename gives it a new inode. No code path holds two shard locks.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::atomic;

/// The lock directory of one store.
#[derive(Debug)]
pub(crate) struct ShardLocks {
    dir: PathBuf,
}

impl ShardLocks {
    /// Locks in `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The lock file guarding the record called `name` (a hex name).
    pub(crate) fn path_for(&self, name: &str) -> PathBuf {
        let shard = name
            .get(..2)
            .filter(|s| s.bytes().all(|b| b.is_ascii_hexdigit()));
        self.dir.join(format!("{}.lock", shard.unwrap_or("00")))
    }

    /// Blocks until this handle holds the shard of `name`; released when the guard drops.
    pub(crate) fn lock(&self, name: &str) -> io::Result<ShardGuard> {
        let file = atomic::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path_for(name))?;
        file.lock()?;
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
