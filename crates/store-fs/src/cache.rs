//! Read caches for hot records, in one of two modes ([`Trust`]).
//!
//! - **Every read** (a data directory shared between processes): an entry is served only while
//!   the file at its path is still the very file it was read from. Records are never modified in
//!   place (every write renames a new file over the old one, every delete unlinks it), so a file
//!   with the same device, inode, size, modification and change times as when it was read has the
//!   same content. A hit costs one `stat(2)` instead of open, read and close plus decoding; a miss
//!   reads through the open file and stamps the entry with that file's own metadata, so a
//!   concurrent replace is never cached under the wrong stamp. Only on Unix, where inode numbers
//!   are available; elsewhere every read goes to the file.
//! - **Own writes** (this process holds the directory alone, see [`crate::DataDir`]): every
//!   change to a record goes through this process, which tells the cache ([`StampCache::changed`])
//!   after the change is on disk, so a hit needs no system call at all. A reader that missed reads
//!   the file and caches it only if no change was reported since it started (a generation count):
//!   a reader that raced a writer cannot put the old content back.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Entries kept before the cache starts over; a bound on memory, not a tuning knob.
const CAPACITY: usize = 8192;

/// How far a cache may trust its entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Other processes may change the files: check each entry against its file on every read.
    EveryRead,
    /// Only this process changes the files, and reports each change.
    OwnWrites,
}

/// Cache of the decoded records of one directory, keyed by file name.
pub(crate) struct StampCache<V> {
    dir: PathBuf,
    trust: Trust,
    inner: Mutex<Entries<V>>,
}

struct Entries<V> {
    map: HashMap<String, (Option<Stamp>, V)>,
    /// Changes reported so far.
    generation: u64,
}

impl<V> Entries<V> {
    fn insert(&mut self, name: &str, stamp: Option<Stamp>, value: V) {
        if self.map.len() >= CAPACITY {
            self.map.clear();
        }
        self.map.insert(name.to_owned(), (stamp, value));
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp([i64; 7]);

impl Stamp {
    #[cfg(unix)]
    fn of(meta: &Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        Some(Self([
            meta.dev() as i64,
            meta.ino() as i64,
            meta.size() as i64,
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        ]))
    }

    #[cfg(not(unix))]
    fn of(_: &Metadata) -> Option<Self> {
        None
    }
}

impl<V: Clone> StampCache<V> {
    /// A cache of the files in `dir`.
    pub(crate) fn new(dir: &Path, trust: Trust) -> Self {
        Self {
            dir: dir.to_path_buf(),
            trust,
            inner: Mutex::new(Entries {
                map: HashMap::new(),
                generation: 0,
            }),
        }
    }

    /// The decoded record in the file `name` (`None` if there is no such file), from the cache
    /// while that is known to be current, else read and decoded by `decode`.
    pub(crate) fn read(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> io::Result<V>,
    ) -> io::Result<Option<V>> {
        match self.trust {
            Trust::OwnWrites => self.read_own(name, decode),
            Trust::EveryRead => self.read_checked(name, decode),
        }
    }

    /// The decoded record in the file `name`, read from disk whatever the cache holds, and not
    /// cached: for scans over every record.
    pub(crate) fn read_uncached(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> io::Result<V>,
    ) -> io::Result<Option<V>> {
        match fs::read(self.dir.join(name)) {
            Ok(bytes) => decode(&bytes).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs `change`, which replaces or removes the file `name`, and then reports it with
    /// [`Self::changed`], whether or not it succeeded (it may have failed half-way).
    pub(crate) fn changing<T>(&self, name: &str, change: impl FnOnce() -> T) -> T {
        let outcome = change();
        self.changed(name);
        outcome
    }

    /// Reports that the file `name` was replaced or removed (call it once the change is on disk,
    /// and also when the change failed half-way).
    pub(crate) fn changed(&self, name: &str) {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        entries.map.remove(name);
    }

    fn read_own(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> io::Result<V>,
    ) -> io::Result<Option<V>> {
        let generation = {
            let entries = self.lock();
            if let Some((_, value)) = entries.map.get(name) {
                return Ok(Some(value.clone()));
            }
            entries.generation
        };
        let bytes = match fs::read(self.dir.join(name)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let value = decode(&bytes)?;
        let mut entries = self.lock();
        if entries.generation == generation {
            entries.insert(name, None, value.clone());
        }
        Ok(Some(value))
    }

    fn read_checked(
        &self,
        name: &str,
        decode: impl FnOnce(&[u8]) -> io::Result<V>,
    ) -> io::Result<Option<V>> {
        let path = self.dir.join(name);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.lock().map.remove(name);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(stamp) = Stamp::of(&meta) {
            if let Some((Some(cached), value)) = self.lock().map.get(name) {
                if *cached == stamp {
                    return Ok(Some(value.clone()));
                }
            }
        }
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let value = decode(&bytes)?;
        if stamp.is_some() {
            self.lock().insert(name, stamp, value.clone());
        }
        Ok(Some(value))
    }

    /// Entries held (tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> MutexGuard<'_, Entries<V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> fmt::Debug for StampCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StampCache({}, {:?})", self.dir.display(), self.trust)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::atomic;

    fn decode(bytes: &[u8]) -> io::Result<String> {
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    #[test]
    fn serves_only_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let replace = |bytes: &[u8]| atomic::replace(dir.path(), "r", bytes).unwrap();
        let cache = StampCache::new(dir.path(), Trust::EveryRead);
        assert_eq!(cache.read("r", decode).unwrap(), None);
        replace(b"one");
        assert_eq!(cache.read("r", decode).unwrap().as_deref(), Some("one"));
        let mut calls = 0;
        let counted = |b: &[u8]| {
            calls += 1;
            decode(b)
        };
        assert_eq!(cache.read("r", counted).unwrap().as_deref(), Some("one"));
        assert_eq!(calls, 0, "a hit does not decode");
        // Replaced with content of the same length within the same clock tick: a new inode.
        replace(b"two");
        assert_eq!(cache.read("r", decode).unwrap().as_deref(), Some("two"));
        fs::remove_file(&path).unwrap();
        assert_eq!(
            cache.read("r", decode).unwrap(),
            None,
            "a deleted record is gone at once"
        );
    }

    #[test]
    fn own_writes_serve_hits_without_touching_the_file_until_a_change_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        let cache = StampCache::new(dir.path(), Trust::OwnWrites);
        atomic::replace(dir.path(), "r", b"one").unwrap();
        assert_eq!(cache.read("r", decode).unwrap().as_deref(), Some("one"));
        // Behind the cache's back (which an exclusive owner rules out): the hit is served as is,
        // which shows it never looked at the file.
        atomic::replace(dir.path(), "r", b"two").unwrap();
        assert_eq!(cache.read("r", decode).unwrap().as_deref(), Some("one"));
        cache.changed("r");
        assert_eq!(cache.read("r", decode).unwrap().as_deref(), Some("two"));
        fs::remove_file(&path).unwrap();
        cache.changed("r");
        assert_eq!(cache.read("r", decode).unwrap(), None);
    }

    #[test]
    fn own_writes_never_cache_what_a_racing_writer_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = StampCache::new(dir.path(), Trust::OwnWrites);
        atomic::replace(dir.path(), "r", b"old").unwrap();
        // A writer replaces the file and reports it while this reader is between reading the
        // old bytes and caching them.
        let racing = |bytes: &[u8]| {
            atomic::replace(dir.path(), "r", b"new").unwrap();
            cache.changed("r");
            decode(bytes)
        };
        assert_eq!(cache.read("r", racing).unwrap().as_deref(), Some("old"));
        assert_eq!(
            cache.read("r", decode).unwrap().as_deref(),
            Some("new"),
            "the stale read was not cached"
        );
    }
}
