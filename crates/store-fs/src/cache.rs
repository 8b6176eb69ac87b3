//! A read cache that is never stale: an entry is served only while the file at its path is still
//! the very file it was read from. Records are never modified in place (every write renames a new
//! file over the old one, every delete unlinks it), so a file with the same device, inode, size,
//! modification and change times as when it was read has the same content. A hit costs one
//! `stat(2)` instead of open, read and close plus decoding; a miss reads through the open file
//! and stamps the entry with that file's own metadata, so a concurrent replace is never cached
//! under the wrong stamp. This holds across processes sharing the directory.
//!
//! Only on Unix, where inode numbers are available; elsewhere every read goes to the file.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Entries kept before the cache starts over; a bound on memory, not a tuning knob.
const CAPACITY: usize = 8192;

/// Cache of decoded records keyed by path.
pub(crate) struct StampCache<V> {
    entries: Mutex<HashMap<PathBuf, (Stamp, V)>>,
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
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The decoded record at `path` (`None` if there is no file), from the cache while the file is
    /// unchanged, else read and decoded by `decode`.
    pub(crate) fn read(
        &self,
        path: &Path,
        decode: impl FnOnce(&[u8]) -> io::Result<V>,
    ) -> io::Result<Option<V>> {
        let meta = match fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.lock().remove(path);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if let Some(stamp) = Stamp::of(&meta) {
            if let Some((cached, value)) = self.lock().get(path) {
                if *cached == stamp {
                    return Ok(Some(value.clone()));
                }
            }
        }
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = Stamp::of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let value = decode(&bytes)?;
        if let Some(stamp) = stamp {
            let mut entries = self.lock();
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(path.to_owned(), (stamp, value.clone()));
        }
        Ok(Some(value))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, (Stamp, V)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V> fmt::Debug for StampCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StampCache")
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
        let cache = StampCache::new();
        assert_eq!(cache.read(&path, decode).unwrap(), None);
        replace(b"one");
        assert_eq!(cache.read(&path, decode).unwrap().as_deref(), Some("one"));
        let mut calls = 0;
        let counted = |b: &[u8]| {
            calls += 1;
            decode(b)
        };
        assert_eq!(cache.read(&path, counted).unwrap().as_deref(), Some("one"));
        assert_eq!(calls, 0, "a hit does not decode");
        // Replaced with content of the same length within the same clock tick: a new inode.
        replace(b"two");
        assert_eq!(cache.read(&path, decode).unwrap().as_deref(), Some("two"));
        fs::remove_file(&path).unwrap();
        assert_eq!(
            cache.read(&path, decode).unwrap(),
            None,
            "a deleted record is gone at once"
        );
    }
}
