//! Crash-safe file operations, the only way any adapter writes a record.
//!
//! Every write first goes to a private file in the target's own directory (so the final step never
//! crosses a filesystem), created with `create_new` under a random name, written and synced. Then
//! either [`replace`] renames it over the target, or [`create`] hard-links it to the target name,
//! which fails if the name exists, so "create if absent" is one atomic system call that settles
//! races between processes. Last, the directory itself is synced so the new name survives a crash.
//! Private names start with a dot and end in `.tmp` or `.claim`: never a record name, never
//! `*.eml`.

use rand::RngCore;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Suffix of files being written.
const TEMP_SUFFIX: &str = ".tmp";
/// Suffix of token files claimed by a consumer (see `tokens`).
pub(crate) const CLAIM_SUFFIX: &str = ".claim";
/// Private files older than this (by modification time, against the caller's `now`) are leftovers
/// of a crashed process: no write or claim takes anywhere near this long.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A fresh private name ending in `suffix`: a dot, 32 random hex digits, the suffix.
pub(crate) fn private_name(suffix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(".{}{suffix}", hex::encode(bytes))
}

/// Creates `path` and any missing parents with mode 0700 (on Unix); fine if it exists.
pub(crate) fn create_dir_private(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Options for a file only its owner may read (0600 on Unix).
pub(crate) fn private_options() -> OpenOptions {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Makes changes to the entries of `dir` durable. Only Unix can open a directory to sync it;
/// elsewhere renames are as durable as the filesystem makes them.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to a new private file in `dir` and syncs it; returns its path.
fn write_temp(dir: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    // 128 random bits do not collide; the loop only keeps `create_new` honest.
    for _ in 0..4 {
        let path = dir.join(private_name(TEMP_SUFFIX));
        let mut file = match private_options().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(e) = written {
            drop(file);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        return Ok(path);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free temporary name",
    ))
}

/// Replaces (or creates) `dir/name` with `bytes`, whole or not at all.
pub(crate) fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = write_temp(dir, bytes)?;
    if let Err(e) = fs::rename(&temp, dir.join(name)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// Creates `dir/name` with `bytes` if no such name exists, atomically even against other
/// processes: `Ok(false)` if it does. The file appears complete or not at all.
pub(crate) fn create(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<bool> {
    let temp = write_temp(dir, bytes)?;
    let linked = fs::hard_link(&temp, dir.join(name));
    // The record (if linked) holds its own name now; a temp that cannot be removed is swept later.
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes `dir/name` and makes that durable; `Ok(false)` if it did not exist.
pub(crate) fn remove(dir: &Path, name: &str) -> io::Result<bool> {
    let removed = remove_unsynced(dir, name)?;
    if removed {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Deletes `dir/name` without syncing `dir`, for callers that delete several names and sync once;
/// `Ok(false)` if it did not exist.
pub(crate) fn remove_unsynced(dir: &Path, name: &str) -> io::Result<bool> {
    match fs::remove_file(dir.join(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The content of `path`, or `None` if there is no such file.
pub(crate) fn read(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The names in `dir` (none if it does not exist), skipping names that are not UTF-8: this crate
/// never writes one.
pub(crate) fn names(dir: &Path) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        if let Ok(name) = entry?.file_name().into_string() {
            out.push(name);
        }
    }
    Ok(out)
}

/// Deletes private files in `dir` left by crashed processes: modified more than an hour before
/// `now`. Best effort; returns nothing because a sweep that fails is retried next time.
pub(crate) fn sweep_stale(dir: &Path, now: SystemTime) {
    let Ok(names) = names(dir) else { return };
    let Some(cutoff) = now.checked_sub(STALE_AFTER) else {
        return;
    };
    for name in names {
        if !(name.starts_with('.') && (name.ends_with(TEMP_SUFFIX) || name.ends_with(CLAIM_SUFFIX)))
        {
            continue;
        }
        let path = dir.join(&name);
        let stale = fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|modified| modified < cutoff);
        if stale {
            let _ = fs::remove_file(&path);
        }
    }
}

#[cfg(test)]
mod tests;
