//! Files under a base directory, through a capability (cap-std): a name that tries `..`, an
//! absolute path, or a symlink leading out of the directory cannot reach anything outside it.

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use std::io::{self, Write};
use std::path::Path;

/// A directory whose files are reached only relative to it (`openat`-style, checked by cap-std).
#[derive(Debug)]
pub struct SafeDir(Dir);

impl SafeDir {
    /// Opens the existing directory `path` as the base.
    pub fn open(path: &Path) -> io::Result<Self> {
        Dir::open_ambient_dir(path, ambient_authority()).map(Self)
    }

    /// [`SafeDir::open`], creating `path` first if it is missing.
    pub fn create(path: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(path)?;
        Self::open(path)
    }

    /// The file `name`'s bytes, `None` if there is none; a name that leaves the directory is an
    /// error.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match self.0.read(name) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces (or creates) `name` with `bytes`, whole or not at all: a temporary file, synced,
    /// renamed over it.
    pub fn replace(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let temp = format!(".{name}.tmp");
        let mut file = self.0.create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        self.0.rename(&temp, &self.0, name)
    }

    /// Removes `name`; `false` if there was none.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        match self.0.remove_file(name) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The names of the directory's entries (non-UTF-8 names skipped).
    pub fn names(&self) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in self.0.entries()? {
            if let Ok(name) = entry?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }
}
