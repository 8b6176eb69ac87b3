//! [`MailQueue`] as a directory: one JSON file per message.
//!
//! `queue/<id>.json` waits (written whole, fsynced, before `push` returns); `dead/<id>.json` is a
//! dead letter. A message is claimed by an exclusive, non-blocking OS lock on its file (flock /
//! LockFileEx), held until it is settled or the process ends, so any number of couriers, in any
//! number of processes, share the directory and each message has one at a time. Settling changes
//! the file's identity (it is removed, or replaced by a new file), and a claimer checks after
//! locking that the path still names the file it locked: a courier that opened a message just
//! before another delivered it sees that, and leaves it.

use async_trait::async_trait;
use phaze_mail::{MailQueue, QueueError, QueuedMail};
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use time::OffsetDateTime;

use crate::{atomic, blocking, prepare_dir, FsError};

/// [`MailQueue`] in `queue/` and `dead/` under one directory.
#[derive(Clone, Debug)]
pub struct FsMailQueue {
    queue: Arc<PathBuf>,
    dead: Arc<PathBuf>,
    /// The files this process holds locked, by message id.
    held: Arc<Mutex<HashMap<String, File>>>,
}

impl FsMailQueue {
    /// The queue under `dir` (created 0700 on Unix if needed).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        let dir = prepare_dir(dir.as_ref())?;
        Ok(Self {
            queue: Arc::new(prepare_dir(&dir.join("queue"))?),
            dead: Arc::new(prepare_dir(&dir.join("dead"))?),
            held: Arc::default(),
        })
    }

    fn release(&self, id: &str) {
        // Dropping the file releases its lock.
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    fn holds(&self, id: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(id)
    }
}

fn name_of(id: &str) -> Option<String> {
    (id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| format!("{id}.json"))
}

fn failed(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> QueueError {
    QueueError(e.into())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

/// Whether `path` still names the file `file` (not removed or replaced since it was opened).
fn still_named(file: &File, path: &Path) -> io::Result<bool> {
    let Ok(now) = std::fs::metadata(path) else {
        return Ok(false);
    };
    let held = file.metadata()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(now.dev() == held.dev() && now.ino() == held.ino())
    }
    #[cfg(not(unix))]
    {
        // Windows keeps an open file from being removed or replaced without share-delete, which
        // std does not ask for: the path still names it.
        let _ = (now, held);
        Ok(true)
    }
}

/// The message file at `path`, locked by this handle; `None` if it is gone or someone holds it.
fn open_unheld(path: &Path) -> io::Result<Option<File>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Deletes the messages to `to` in `dir` that nobody holds (a claimer holds its file's lock).
fn forget(dir: &Path, to: &str) -> io::Result<usize> {
    let mut removed = 0;
    for name in atomic::names(dir)?
        .iter()
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
    {
        let Some(file) = open_unheld(&dir.join(name))? else {
            continue;
        };
        let to_them = serde_json::from_str::<QueuedMail>(&io::read_to_string(&file)?)
            .is_ok_and(|q| q.mail.to.as_str() == to);
        if to_them && atomic::remove(dir, name)? {
            removed += 1;
        }
    }
    Ok(removed)
}

/// Claims the first due message of `queue` that nobody holds.
fn claim(queue: &Path, now: OffsetDateTime) -> io::Result<Option<(QueuedMail, File)>> {
    let mut names = atomic::names(queue)?;
    names.sort_unstable();
    for name in names
        .iter()
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
    {
        let path = queue.join(name);
        let Some(file) = open_unheld(&path)? else {
            continue;
        };
        if !still_named(&file, &path)? {
            continue;
        }
        let bytes = io::read_to_string(&file)?;
        let queued: QueuedMail = match serde_json::from_str(&bytes) {
            Ok(q) => q,
            Err(e) => {
                // Not ours to guess at: logged, left for the operator, skipped.
                tracing::error!(target: "mail", file = %path.display(), error = %e, "unreadable queued mail skipped");
                continue;
            }
        };
        if queued.due <= now && name_of(&queued.id).as_deref() == Some(name.as_str()) {
            return Ok(Some((queued, file)));
        }
    }
    Ok(None)
}

#[async_trait]
impl MailQueue for FsMailQueue {
    async fn forget(&self, to: &str) -> Result<usize, QueueError> {
        let (queue, dead, to) = (self.queue.clone(), self.dead.clone(), to.to_owned());
        blocking(move || Ok(forget(&queue, &to)? + forget(&dead, &to)?))
            .await
            .map_err(failed)
    }

    async fn waiting_for(&self, to: &str) -> Result<Vec<QueuedMail>, QueueError> {
        let (queue, to) = (self.queue.clone(), to.to_owned());
        blocking(move || {
            let mut out = Vec::new();
            for name in atomic::names(&queue)?
                .iter()
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            {
                if let Some(bytes) = atomic::read(&queue.join(name))? {
                    if let Ok(q) = serde_json::from_slice::<QueuedMail>(&bytes) {
                        if q.mail.to.as_str() == to {
                            out.push(q);
                        }
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(failed)
    }

    async fn depth(&self) -> Result<usize, QueueError> {
        let queue = self.queue.clone();
        blocking(move || {
            Ok(atomic::names(&queue)?
                .iter()
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .count())
        })
        .await
        .map_err(failed)
    }

    async fn push(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let name = name_of(&mail.id).ok_or_else(|| failed(invalid("message id")))?;
        let bytes = serde_json::to_vec(mail).map_err(failed)?;
        let queue = self.queue.clone();
        let created = blocking(move || atomic::create(&queue, &name, &bytes))
            .await
            .map_err(failed)?;
        if created {
            Ok(())
        } else {
            Err(failed(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "message id taken",
            )))
        }
    }

    async fn claim(&self, now: OffsetDateTime) -> Result<Option<QueuedMail>, QueueError> {
        let queue = self.queue.clone();
        let claimed = blocking(move || claim(&queue, now)).await.map_err(failed)?;
        Ok(claimed.map(|(queued, file)| {
            self.held
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(queued.id.clone(), file);
            queued
        }))
    }

    async fn delivered(&self, id: &str) -> Result<(), QueueError> {
        let name = name_of(id).ok_or_else(|| failed(invalid("message id")))?;
        if !self.holds(id) {
            return Err(failed(invalid("message not held")));
        }
        let queue = self.queue.clone();
        let removed = blocking(move || atomic::remove(&queue, &name)).await;
        self.release(id);
        removed.map(|_| ()).map_err(failed)
    }

    async fn retry(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let name = name_of(&mail.id).ok_or_else(|| failed(invalid("message id")))?;
        if !self.holds(&mail.id) {
            return Err(failed(invalid("message not held")));
        }
        let bytes = serde_json::to_vec(mail).map_err(failed)?;
        let queue = self.queue.clone();
        let written = blocking(move || atomic::replace(&queue, &name, &bytes)).await;
        self.release(&mail.id);
        written.map_err(failed)
    }

    async fn dead(&self, mail: &QueuedMail) -> Result<(), QueueError> {
        let name = name_of(&mail.id).ok_or_else(|| failed(invalid("message id")))?;
        if !self.holds(&mail.id) {
            return Err(failed(invalid("message not held")));
        }
        let bytes = serde_json::to_vec(mail).map_err(failed)?;
        let (queue, dead) = (self.queue.clone(), self.dead.clone());
        let moved = blocking(move || {
            atomic::replace(&dead, &name, &bytes)?;
            atomic::remove(&queue, &name).map(|_| ())
        })
        .await;
        self.release(&mail.id);
        moved.map_err(failed)
    }

    async fn dead_letters(&self) -> Result<Vec<QueuedMail>, QueueError> {
        let dead = self.dead.clone();
        blocking(move || {
            let mut out = Vec::new();
            for name in atomic::names(&dead)?
                .iter()
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            {
                if let Some(bytes) = atomic::read(&dead.join(name))? {
                    if let Ok(q) = serde_json::from_slice(&bytes) {
                        out.push(q);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a claimer that opened a message just before another settled it sees: the path no
    /// longer names its file, whether the file was removed (delivered, dead) or replaced (retry).
    #[test]
    fn a_file_removed_or_replaced_since_it_was_opened_is_not_still_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let name = "0123456789abcdef0123456789abcdef.json";
        let path = dir.path().join(name);
        let ok = |r: io::Result<bool>| r.unwrap_or_else(|e| panic!("{e}"));
        ok(atomic::create(dir.path(), name, b"{}"));
        let opened = File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(ok(still_named(&opened, &path)));
        atomic::replace(dir.path(), name, b"{ }").unwrap_or_else(|e| panic!("{e}"));
        assert!(!ok(still_named(&opened, &path)), "replaced");
        let reopened = File::open(&path).unwrap_or_else(|e| panic!("{e}"));
        ok(atomic::remove(dir.path(), name));
        assert!(!ok(still_named(&reopened, &path)), "removed");
    }
}
