//! [`RateLimitStore`] over a directory: one small file per key, and each decision one
//! read-modify-write of that file under an OS advisory lock on the file itself.
//!
//! Unlike the other adapters, a key's file is locked and rewritten in place (no temporary file,
//! no rename): the lock lives on the record's own inode, so no shard lock is needed and keys never
//! contend with each other. What that costs, and how it is paid:
//!
//! - **Torn writes.** A process killed mid-write may leave part of the new record over part of
//!   the old one. Every record carries a checksum of its header and instants, so a torn (or
//!   truncated, or foreign) file fails the check and the decision fails closed with `Backend`; it
//!   is never read as an empty log. That decision also empties the file (under the lock) and its
//!   error says so, so the log the portal writes for the 503 records the replacement, and the
//!   next decision starts from an empty log: a limit file is not precious (losing one forgives
//!   one key's recent events, as a purge does), whereas keeping it would refuse that key for
//!   good. `purge_idle` deletes corrupt files for the same reason. The new record is written over
//!   the old one from offset 0 *before* the file is cut to length, so the only states a crash can
//!   leave are the old record, the new one (possibly followed by stale bytes, which the record's
//!   own length excludes), or a torn one that the checksum rejects. An empty file is an empty log:
//!   it is what `open(create)` makes, and emptying a log is one `ftruncate`, which cannot tear.
//! - **Deletion.** A waiter may hold a handle to a file that the lock holder deletes (`reset`,
//!   `purge_idle`). After taking the lock, every operation checks that its inode is still linked
//!   (`nlink > 0`, one `fstat`) and otherwise reopens the path, so nobody decides on a deleted
//!   file. Only a lock holder deletes, and nothing renames these files, so a linked inode is the
//!   one the name points to. Without Unix link counts (Windows) files are emptied, not deleted.
//! - **Runs.** A [`RateLimitStore::run`] locks the file of every distinct key it names, in
//!   ascending key order (so two runs never wait for each other in a cycle; single decisions hold
//!   one lock and cannot take part in one), exclusively for a key it hits and shared for a key it
//!   only peeks, and decides only once it holds them all. A key only peeked whose file does not
//!   exist has nothing to lock; once the others are held, the run checks that it still does not
//!   exist (else it releases everything and starts over), so an absent file reads as an empty
//!   log at that same instant. Only the logs that changed are written back, each as a hit writes
//!   its own. A write that fails part-way fails the run with the logs before it already
//!   rewritten: a recorded hit too many only ever makes a limit stricter.
//! - **Durability.** Nothing is synced: rate-limit state need not survive a machine crash (losing
//!   it forgives some recent failures), but it must be exact between live processes, which the
//!   page cache shared by all processes already guarantees.
//!
//! File format, little-endian, [`HEADER`] + 8·count + [`CHECK`] bytes:
//!
//! ```text
//! 0   8  magic "PHZRL\0\0" + format version 1
//! 8   8  expiry: i64 Unix ns after which the log is empty under every window it was hit with
//! 16  4  count: u32
//! 20  8n the instants, i64 Unix ns, oldest first
//! ..  8  the first 8 bytes of SHA-256 of everything before
//! ```

use async_trait::async_trait;
use phaze_ratelimit::{
    decide, Decision, LimitKey, Op, RateLimitStore, Step, StoreError, Window, MAX_STEPS,
};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use time::OffsetDateTime;

use crate::{atomic, blocking, corrupt, is_record_name, prepare_dir, DataDir, FsError};

/// Magic prefix: the format's name and, in the last byte, its version.
const MAGIC: [u8; 8] = *b"PHZRL\0\0\x01";
/// Magic, expiry, count.
const HEADER: usize = 8 + 8 + 4;
/// Length of the checksum that ends a record.
const CHECK: usize = 8;
/// How often an operation reopens a key's file that was deleted while it waited for the lock.
/// Each retry means another process deleted the file, which takes a `reset` or a purge, so this
/// bound is only ever reached by a bug.
const REOPEN_RETRIES: usize = 64;

/// [`RateLimitStore`] in `<dir>/ratelimits`, one file per [`LimitKey`], named by its hex.
///
/// Each `hit`, `peek` and `reset` is one atomic operation across every process sharing the
/// directory (an exclusive `File::lock` on the key's file; `peek` takes a shared one), and keys
/// never share a lock; a `run` holds the locks of all its keys at once, taken in key order, and
/// decides only once it holds them all. A torn or corrupt file fails its decision closed
/// (`Backend`, never an empty log) and is emptied under the same lock, so the next decision
/// starts afresh. Nothing is synced: limits are exact between live processes, not durable across
/// a machine crash. Idle files stay until [`FsRateLimits::purge_idle`] deletes them; run it now
/// and then (e.g. every few minutes).
#[derive(Clone, Debug)]
pub struct FsRateLimits {
    dir: Arc<PathBuf>,
    owner: DataDir,
}

/// A key's file, decoded.
#[derive(Debug, PartialEq, Eq)]
struct Log {
    /// After this instant (Unix ns) the log is empty under every window it was hit with.
    expiry: i64,
    instants: Vec<i64>,
}

impl Log {
    /// What an absent or empty file holds.
    const EMPTY: Self = Self {
        expiry: i64::MIN,
        instants: Vec::new(),
    };
}

impl FsRateLimits {
    /// Opens the store in `dir/ratelimits`, creating it (0700 on Unix) if needed, with the
    /// directory opened [`Sharing::Shared`](crate::Sharing::Shared).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, FsError> {
        DataDir::open(dir, crate::Sharing::Shared)?.rate_limits()
    }

    pub(crate) fn open_in(owner: &DataDir) -> Result<Self, FsError> {
        Ok(Self {
            dir: Arc::new(prepare_dir(&owner.path().join("ratelimits"))?),
            owner: owner.clone(),
        })
    }

    /// The decision, synchronously on the calling thread: [`decide`] on the key's log under the
    /// key's file lock, recording the event if `record` and it is allowed. Blocks while another
    /// thread or process decides on the same key; the port's methods run this on tokio's blocking
    /// pool.
    pub fn decide(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
        record: bool,
    ) -> Result<Decision, StoreError> {
        let path = self.dir.join(key.to_hex());
        if record {
            hit(&path, window, now)
        } else {
            peek(&path, window, now)
        }
        .map_err(|e| self.backend(e))
    }

    /// A store error, reporting a lock timeout first.
    fn backend(&self, e: io::Error) -> StoreError {
        self.owner.report(&e);
        StoreError::Backend(Box::new(e))
    }
}

#[async_trait]
impl RateLimitStore for FsRateLimits {
    async fn hit(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        let path = self.dir.join(key.to_hex());
        blocking(move || hit(&path, window, now))
            .await
            .map_err(|e| self.backend(e))
    }

    async fn peek(
        &self,
        key: &LimitKey,
        window: Window,
        now: OffsetDateTime,
    ) -> Result<Decision, StoreError> {
        let path = self.dir.join(key.to_hex());
        blocking(move || peek(&path, window, now))
            .await
            .map_err(|e| self.backend(e))
    }

    /// Deletes the files of keys whose log is empty at `now` under every window they were hit
    /// with, empty files and corrupt ones (which the next decision would empty anyway, after
    /// failing once). Files being decided on right now are skipped.
    async fn purge_idle(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let dir = self.dir.clone();
        blocking(move || purge_idle(&dir, now))
            .await
            .map_err(|e| self.backend(e))
    }

    async fn reset(&self, key: &LimitKey) -> Result<(), StoreError> {
        let path = self.dir.join(key.to_hex());
        blocking(move || reset(&path))
            .await
            .map_err(|e| self.backend(e))
    }

    async fn run(&self, steps: &[Step], now: OffsetDateTime) -> Result<Vec<Decision>, StoreError> {
        if steps.len() > MAX_STEPS {
            return Err(StoreError::Backend("too many steps in one run".into()));
        }
        if steps.is_empty() {
            return Ok(Vec::new());
        }
        let (dir, steps) = (self.dir.clone(), steps.to_vec());
        blocking(move || run(&dir, &steps, now))
            .await
            .map_err(|e| self.backend(e))
    }
}

fn unix_nanos(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn period_nanos(window: Window) -> i64 {
    i64::try_from(window.period.whole_nanoseconds()).unwrap_or(i64::MAX)
}

/// How a key's file is opened and locked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Read-write, created if absent, exclusive lock: `hit`.
    Create,
    /// Read-write, exclusive lock; absent is `None`: `reset`.
    Write,
    /// Read-only, shared lock; absent is `None`: `peek`.
    Read,
}

/// Opens `path` and blocks until its lock is held, reopening if the locked inode was deleted
/// meanwhile. The lock is released when the file is closed.
fn open_locked(path: &Path, access: Access) -> io::Result<Option<File>> {
    for _ in 0..REOPEN_RETRIES {
        let opened = match access {
            Access::Create => atomic::private_options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path),
            Access::Write => OpenOptions::new().read(true).write(true).open(path),
            Access::Read => File::open(path),
        };
        let file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound && access != Access::Create => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        crate::lock::lock_within(&file, path, access != Access::Read, crate::lock::LOCK_WAIT)?;
        if !unlinked(&file)? {
            return Ok(Some(file));
        }
    }
    Err(io::Error::other(
        "rate limit file deleted under every lock attempt",
    ))
}

/// Whether the open file's name was deleted (by a lock holder, before this handle got the lock).
#[cfg(unix)]
fn unlinked(file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    Ok(file.metadata()?.nlink() == 0)
}

/// Files are never deleted where link counts are unavailable (see [`discard`]).
#[cfg(not(unix))]
fn unlinked(_file: &File) -> io::Result<bool> {
    Ok(false)
}

/// Forgets a key whose file `file` (at `path`) is locked by the caller: deletes it on Unix, where
/// waiters notice the deletion; elsewhere empties it, which is the same log.
fn discard(file: &File, path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let _ = file;
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        file.set_len(0)
    }
}

fn read_log(mut file: &File) -> io::Result<Log> {
    let mut bytes = Vec::with_capacity(256);
    file.read_to_end(&mut bytes)?;
    decode(&bytes)
}

fn checksum(body: &[u8]) -> [u8; CHECK] {
    let digest = Sha256::digest(body);
    let mut out = [0u8; CHECK];
    out.copy_from_slice(&digest[..CHECK]);
    out
}

fn encode(log: &Log) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 8 * log.instants.len() + CHECK);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&log.expiry.to_le_bytes());
    // `decide` keeps at most `limit` (a u32) instants.
    let count = u32::try_from(log.instants.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_le_bytes());
    for t in &log.instants {
        out.extend_from_slice(&t.to_le_bytes());
    }
    let check = checksum(&out);
    out.extend_from_slice(&check);
    out
}

/// The log in `bytes`: empty for an empty file, an `InvalidData` error for anything that is not a
/// whole record. Bytes after the record are what a shorter rewrite left before the file was cut
/// to length, and are ignored.
fn decode(bytes: &[u8]) -> io::Result<Log> {
    if bytes.is_empty() {
        return Ok(Log::EMPTY);
    }
    let field = |at: usize| -> io::Result<[u8; 8]> {
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("rate limit file (too short)"))
    };
    if field(0)? != MAGIC {
        return Err(corrupt("rate limit file (bad magic or version)"));
    }
    let expiry = i64::from_le_bytes(field(8)?);
    let count = bytes
        .get(16..HEADER)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| corrupt("rate limit file (too short)"))?;
    let body_len = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(8))
        .and_then(|n| n.checked_add(HEADER))
        .filter(|n| n.saturating_add(CHECK) <= bytes.len())
        .ok_or_else(|| corrupt("rate limit file (truncated)"))?;
    if field(body_len)? != checksum(&bytes[..body_len]) {
        return Err(corrupt("rate limit file (checksum)"));
    }
    let instants = bytes[HEADER..body_len]
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_le_bytes(b)
        })
        .collect();
    Ok(Log { expiry, instants })
}

/// Replaces the content of the locked `file` with `log`, in place (see the module docs for why a
/// crash cannot make this read as a different valid log).
fn write_log(mut file: &File, log: &Log) -> io::Result<()> {
    if log.instants.is_empty() {
        return file.set_len(0);
    }
    let bytes = encode(log);
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    file.set_len(bytes.len() as u64)
}

/// Empties the corrupt file `file` (at `path`), which the caller holds locked exclusively, and
/// returns the error that fails this decision: it names the file and says that it was emptied,
/// so the operator who reads it knows both what happened and that nothing is left to clean up.
fn replace_corrupt(file: &File, path: &Path, e: io::Error) -> io::Error {
    match file.set_len(0) {
        Ok(()) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{e} at {}; emptied, so the next decision starts from an empty log",
                path.display()
            ),
        ),
        Err(truncate) => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{e} at {}; emptying it failed: {truncate}", path.display()),
        ),
    }
}

/// The log in the locked `file`; a corrupt one is emptied and fails this decision.
fn read_or_replace(file: &File, path: &Path) -> io::Result<Log> {
    match read_log(file) {
        Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(replace_corrupt(file, path, e)),
        read => read,
    }
}

/// A hit on `log`: [`decide`] with `record`, and the expiry it moves. Returns the decision and
/// whether the file must be rewritten: a denied hit that dropped nothing and extended nothing
/// leaves it as it is.
fn hit_log(log: &mut Log, window: Window, now: OffsetDateTime) -> (Decision, bool) {
    let before = log.instants.len();
    let decision = decide(&mut log.instants, window, now, true);
    let expiry = match log.instants.iter().max() {
        Some(newest) => log.expiry.max(newest.saturating_add(period_nanos(window))),
        None => i64::MIN,
    };
    let changed = decision.allowed || log.instants.len() != before || expiry != log.expiry;
    log.expiry = expiry;
    (decision, changed)
}

fn hit(path: &Path, window: Window, now: OffsetDateTime) -> io::Result<Decision> {
    let file = open_locked(path, Access::Create)?
        .ok_or_else(|| io::Error::other("created rate limit file missing"))?;
    let mut log = read_or_replace(&file, path)?;
    let (decision, changed) = hit_log(&mut log, window, now);
    if changed {
        write_log(&file, &log)?;
    }
    Ok(decision)
}

fn peek(path: &Path, window: Window, now: OffsetDateTime) -> io::Result<Decision> {
    let read = match open_locked(path, Access::Read)? {
        Some(file) => read_log(&file),
        None => Ok(Log::EMPTY),
    };
    let mut log = match read {
        // The shared lock and its read-only handle were dropped above.
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(replace_after_peek(path, e))
        }
        read => read?,
    };
    Ok(decide(&mut log.instants, window, now, false))
}

/// What a peek that found the file at `path` corrupt (`e`) under a shared lock does once it has
/// let go of that lock: emptying needs the exclusive lock, under which the file is read again (a
/// `hit` that came first may have replaced it already, and then the peek fails without touching
/// the new log). Returns the error that fails the peek.
fn replace_after_peek(path: &Path, e: io::Error) -> io::Error {
    match open_locked(path, Access::Write) {
        Ok(Some(file)) => match read_log(&file) {
            Err(again) if again.kind() == io::ErrorKind::InvalidData => {
                replace_corrupt(&file, path, again)
            }
            Err(other) => other,
            Ok(_) => e,
        },
        Ok(None) => e,
        Err(other) => other,
    }
}

/// One distinct key of a run, locked.
struct Held {
    key: LimitKey,
    path: PathBuf,
    /// Whether a step hits the key: then its file is open read-write (created if absent) and
    /// locked exclusively; otherwise read-only and shared.
    hit: bool,
    /// `None` for a key only peeked whose file does not exist: an empty log, nothing to lock.
    file: Option<File>,
    log: Log,
    /// Whether a hit changed the log, which is then written back.
    changed: bool,
}

/// A whole run in `dir`: lock, read, decide, write back (see the module docs).
fn run(dir: &Path, steps: &[Step], now: OffsetDateTime) -> io::Result<Vec<Decision>> {
    let mut keys: Vec<(LimitKey, bool)> = steps.iter().map(|s| (s.key, s.op == Op::Hit)).collect();
    // Sorted by key, a key's hit first: dedup keeps that one.
    keys.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    keys.dedup_by_key(|k| k.0);
    for _ in 0..REOPEN_RETRIES {
        let mut held = Vec::with_capacity(keys.len());
        for &(key, hit) in &keys {
            let path = dir.join(key.to_hex());
            let access = if hit { Access::Create } else { Access::Read };
            let file = open_locked(&path, access)?;
            held.push(Held {
                key,
                path,
                hit,
                file,
                log: Log::EMPTY,
                changed: false,
            });
        }
        // A file that appeared for an unlocked key while the later ones were being locked may
        // hold events decided after what the locked files show: start over, and lock it.
        let mut appeared = false;
        for h in held.iter().filter(|h| h.file.is_none()) {
            match fs::symlink_metadata(&h.path) {
                Ok(_) => appeared = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if !appeared {
            return run_held(held, steps, now);
        }
    }
    Err(io::Error::other(
        "rate limit files kept appearing while a run locked its keys",
    ))
}

/// The decisions of a run whose keys are all `held`.
fn run_held(mut held: Vec<Held>, steps: &[Step], now: OffsetDateTime) -> io::Result<Vec<Decision>> {
    // A corrupt file fails the run closed and is emptied, as it fails and is emptied by a
    // decision of its own: every corrupt file of the run at once, so the next run starts afresh.
    let mut failures = Vec::new();
    let mut corrupt_peeked = Vec::new();
    for h in &mut held {
        let Some(file) = &h.file else { continue };
        let read = if h.hit {
            read_or_replace(file, &h.path)
        } else {
            read_log(file)
        };
        match read {
            Ok(log) => h.log = log,
            Err(e) if !h.hit && e.kind() == io::ErrorKind::InvalidData => {
                corrupt_peeked.push((h.path.clone(), e));
            }
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() || !corrupt_peeked.is_empty() {
        // Releases every lock first: emptying a file only peeked takes its exclusive lock.
        drop(held);
        for (path, e) in corrupt_peeked {
            failures.push(replace_after_peek(&path, e));
        }
        return Err(failures
            .into_iter()
            .next()
            .unwrap_or_else(|| io::Error::other("a run failed")));
    }
    let mut out = Vec::with_capacity(steps.len());
    for step in steps {
        let Some(h) = held.iter_mut().find(|h| h.key == step.key) else {
            return Err(io::Error::other("a step's key was not locked"));
        };
        let d = match step.op {
            Op::Hit => {
                let (d, changed) = hit_log(&mut h.log, step.window, now);
                h.changed |= changed;
                d
            }
            Op::Peek => decide(&mut h.log.instants, step.window, now, false),
        };
        out.push(d);
        if !d.allowed && step.stop_if_refused {
            break;
        }
    }
    for h in held.iter().filter(|h| h.changed) {
        // Only hits change a log, and a hit's key always has its file.
        if let Some(file) = &h.file {
            write_log(file, &h.log)?;
        }
    }
    Ok(out)
}

fn reset(path: &Path) -> io::Result<()> {
    match open_locked(path, Access::Write)? {
        Some(file) => discard(&file, path),
        None => Ok(()),
    }
}

fn purge_idle(dir: &Path, now: OffsetDateTime) -> io::Result<usize> {
    let now_ns = unix_nanos(now);
    let mut purged = 0;
    for name in atomic::names(dir)? {
        if !is_record_name(&name) {
            continue;
        }
        let path = dir.join(&name);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // A key being decided on is not idle: skip it rather than wait.
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(e)) => return Err(e),
        }
        if unlinked(&file)? {
            continue;
        }
        // Re-checked under the lock: a hit may have landed since the directory was listed. A
        // corrupt file goes too: the next decision on it would only fail once and empty it.
        let idle = match read_log(&file) {
            Ok(log) => log.instants.is_empty() || log.expiry <= now_ns,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => true,
            Err(e) => return Err(e),
        };
        if idle {
            discard(&file, &path)?;
            purged += 1;
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests;
