//! [`AuditStore`] on files: one file per entry, named by its position.
//!
//! ```text
//! <data>/audit/entries/00000000000000000001.json   entry 1 (20 digits: names sort as numbers)
//! <data>/audit/head                                the last position appended (a hint)
//! <data>/audit/append.lock                         held exclusive for the whole of an append
//! ```
//!
//! An append takes `append.lock` (bounded wait, like every lock here), finds the last entry (the
//! head hint, then forward while the next name exists, so a crash between writing an entry and
//! its hint loses nothing), lets the domain build the next entry from it, creates the entry's
//! file (create-if-absent: never over an existing entry) and moves the hint. Entries are never
//! rewritten or deleted by this adapter. Listing is by name; a page with a filter reads entries
//! newest first until it has enough (fine for the embedded default's volumes; the cluster keeps
//! its log in PostgreSQL).

use async_trait::async_trait;
use phaze_audit::{AuditEntry, AuditError, AuditFilter, AuditStore};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{atomic, blocking, corrupt, prepare_dir, DataDir, FsError};

/// [`AuditStore`] in `<data>/audit`.
#[derive(Clone)]
pub struct FsAudit {
    dir: Arc<PathBuf>,
    owner: DataDir,
}

fn name_of(seq: u64) -> String {
    format!("{seq:020}.json")
}

fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".json")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn store_error(e: io::Error) -> AuditError {
    AuditError::Store(Box::new(e))
}

impl FsAudit {
    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        let dir = prepare_dir(&owner.path().join("audit"))?;
        prepare_dir(&dir.join("entries"))?;
        Ok(Self {
            dir: Arc::new(dir),
            owner: owner.clone(),
        })
    }

    fn entries(dir: &Path) -> PathBuf {
        dir.join("entries")
    }

    /// Every entry position present, ascending.
    fn positions(dir: &Path) -> io::Result<Vec<u64>> {
        let mut seqs: Vec<u64> = atomic::names(&Self::entries(dir))?
            .iter()
            .filter_map(|n| seq_of(n))
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    fn read_entry(dir: &Path, seq: u64) -> io::Result<Option<AuditEntry>> {
        match atomic::read(&Self::entries(dir).join(name_of(seq)))? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|_| corrupt(&format!("audit entry {seq}"))),
            None => Ok(None),
        }
    }

    /// Takes the append lock and finds the last entry.
    fn begin(dir: &Path) -> io::Result<(File, u64, Option<AuditEntry>)> {
        let lock_path = dir.join("append.lock");
        let lock = atomic::private_options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)?;
        crate::lock::lock_within(&lock, &lock_path, true, crate::lock::LOCK_WAIT)?;
        let mut head = match atomic::read(&dir.join("head"))? {
            Some(bytes) => std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| corrupt("audit head"))?,
            None => 0,
        };
        let entries = Self::entries(dir);
        while entries.join(name_of(head + 1)).exists() {
            head += 1;
        }
        let last = if head == 0 {
            None
        } else {
            Some(Self::read_entry(dir, head)?.ok_or_else(|| corrupt("audit head"))?)
        };
        Ok((lock, head, last))
    }

    fn finish(dir: &Path, head: u64, entry: &AuditEntry) -> io::Result<()> {
        if entry.seq != head + 1 {
            return Err(corrupt("audit append (the entry does not follow the head)"));
        }
        let bytes = serde_json::to_vec(entry).map_err(io::Error::other)?;
        if !atomic::create(&Self::entries(dir), &name_of(entry.seq), &bytes)? {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "audit entry exists",
            ));
        }
        atomic::replace(dir, "head", entry.seq.to_string().as_bytes())
    }

    fn failed(&self, e: io::Error) -> AuditError {
        self.owner.report(&e);
        store_error(e)
    }
}

#[async_trait]
impl AuditStore for FsAudit {
    async fn append(
        &self,
        next: &(dyn for<'h> Fn(Option<&'h AuditEntry>) -> AuditEntry + Send + Sync),
    ) -> Result<AuditEntry, AuditError> {
        let dir = self.dir.clone();
        let (lock, head, last) = blocking(move || Self::begin(&dir))
            .await
            .map_err(|e| self.failed(e))?;
        let entry = next(last.as_ref());
        let (dir, written) = (self.dir.clone(), entry.clone());
        blocking(move || {
            let done = Self::finish(&dir, head, &written);
            drop(lock);
            done
        })
        .await
        .map_err(|e| self.failed(e))?;
        Ok(entry)
    }

    async fn range(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        let dir = self.dir.clone();
        blocking(move || {
            let mut out = Vec::new();
            for seq in Self::positions(&dir)?
                .into_iter()
                .filter(|s| *s >= from)
                .take(limit)
            {
                if let Some(e) = Self::read_entry(&dir, seq)? {
                    out.push(e);
                }
            }
            Ok(out)
        })
        .await
        .map_err(store_error)
    }

    async fn purge_through(&self, through: u64) -> Result<usize, AuditError> {
        let dir = self.dir.clone();
        blocking(move || {
            let entries = Self::entries(&dir);
            let mut removed = 0;
            for seq in Self::positions(&dir)?.into_iter().filter(|s| *s <= through) {
                if atomic::remove_unsynced(&entries, &name_of(seq))? {
                    removed += 1;
                }
            }
            if removed > 0 {
                atomic::sync_dir(&entries)?;
            }
            Ok(removed)
        })
        .await
        .map_err(store_error)
    }

    async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let (dir, filter) = (self.dir.clone(), filter.clone());
        blocking(move || {
            let mut out = Vec::new();
            for seq in Self::positions(&dir)?
                .into_iter()
                .rev()
                .filter(|s| before.is_none_or(|b| *s < b))
            {
                if out.len() >= limit {
                    break;
                }
                if let Some(e) = Self::read_entry(&dir, seq)? {
                    if filter.matches(&e) {
                        out.push(e);
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(store_error)
    }
}
