//! Every Phaze port over a local directory, one file per record: the portal's zero-setup default
//! store. [`FsSessions`], [`FsAccounts`], [`FsTokens`] and [`FsRateLimits`] each keep to their own
//! subdirectory, so they can share one data directory; [`FsOutbox`] writes one `<id>.eml` per
//! message into a directory a relay can poll.
//!
//! ```text
//! <data>/sessions/records/<session key hex>            one session
//! <data>/sessions/users/<sha256(user id)>/<key hex>     empty marker: the per-user index
//! <data>/sessions/locks/<00..ff>.lock                   shard locks
//! <data>/accounts/records/<sha256(user id)>             one account, JSON
//! <data>/accounts/emails/<sha256(email)>                the owner's user id
//! <data>/accounts/locks/<00..ff>.lock                   shard locks
//! <data>/tokens/<token hash hex>                        one token, JSON
//! <data>/ratelimits/<limit key hex>                     one key's sliding log, binary, locked
//!                                                       and rewritten in place (`ratelimit`)
//! <data>/payments/events/<sha256(event id)>             a webhook event's claim, or "applied"
//! <data>/payments/subscriptions/<sha256(user id)>       one account's subscription, JSON
//! <data>/payments/customers/<sha256(customer id)>       the account a Stripe customer is
//! <data>/owner.lock                                   held exclusive or shared (`DataDir`)
//! <outbox>/<random hex>.eml                             one RFC 5322 message
//! ```
//!
//! **Invariants:**
//! - No input ever reaches a path: every file name is the hex of a hash (or of a random id), so a
//!   lookup opens a fixed number of files and `../x` is only ever hashed.
//! - A reader never sees half a record: every write (rate-limit logs aside, see below) goes to a
//!   private temporary file in the same directory, is synced, and is then renamed (replace) or
//!   hard-linked (create-if-absent) into place, and the directory is synced (one helper module,
//!   `atomic`, does all of it).
//! - A data directory is opened through [`DataDir`], by one process alone ([`Sharing::Exclusive`],
//!   the portal's default) or by several that all open it [`Sharing::Shared`]; an owner lock
//!   file refuses any other combination. The `open` functions of the stores open it shared.
//! - Several processes may share a data directory. Read-modify-write of a record holds an OS
//!   advisory lock on one of 256 shard files, never on the record itself and never two at once;
//!   the kernel drops a dead process's lock, so there are no stale locks. Creation races are
//!   settled by `link(2)` failing on an existing name, and token consumption by `rename(2)`: only
//!   one process can move a given file away.
//! - Rate-limit logs are the exception to both rules above: a decision locks the key's own file
//!   (one lock per key, no shards) and rewrites it in place; a checksum makes a torn write fail
//!   closed, and nothing is synced, since limits need exactness between live processes, not
//!   durability across a machine crash.
//! - Reads take no lock (a rate-limit `peek` aside, which takes the key's shared lock). Files are
//!   created 0600 and directories 0700 on Unix.
//! - Hot reads (`get` of a session, `by_id` of an account) are served from a cache that is never
//!   stale (`cache`): shared, it is checked against the file's inode and times on every read;
//!   exclusive, this process reports its own changes to it and a hit costs no system call.
//! - The directory must be on a local filesystem: advisory locks and `link(2)` are unreliable or
//!   missing on some network and FAT filesystems.
//! - Library code never panics; I/O errors become the port's `Backend` error.
//!
//! ```
//! use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
//! use phaze_sessions::SessionStore;
//! use phaze_store_fs::{DataDir, FsError, Sharing};
//! use std::sync::Arc;
//! use time::{macros::datetime, Duration};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! // The portal's default: this process alone. The stores opened from `data` share its lock.
//! let data = DataDir::open(dir.path(), Sharing::Exclusive)?;
//! let sessions: Arc<dyn SessionStore> = Arc::new(data.sessions()?);
//! let limits: Arc<dyn RateLimitStore> = Arc::new(data.rate_limits()?);
//! // Any other opener, in this process or another, is refused while `data` or a store lives.
//! let second = DataDir::open(dir.path(), Sharing::Shared);
//! assert!(matches!(second, Err(FsError::InUse { .. })));
//!
//! // One decision is one lock on the key's own file, named by the key's hex.
//! let key = LimitKey::from([7; 32]); // the portal derives keys with `KeyHasher::key`
//! let window = Window::new(1, Duration::minutes(1));
//! let now = datetime!(2026-01-01 09:00 UTC);
//! assert!(limits.hit(&key, window, now).await?.allowed);
//! assert!(!limits.hit(&key, window, now).await?.allowed);
//! assert!(dir.path().join("ratelimits").join(key.to_hex()).is_file());
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

mod accounts;
mod atomic;
mod audit;
mod cache;
mod devices;
mod lock;
mod mailqueue;
mod outbox;
mod owner;
mod payments;
mod ratelimit;
mod sessions;
mod tokens;

pub use accounts::FsAccounts;
pub use audit::FsAudit;
pub use devices::{FsAddressPool, FsDevices};
pub use mailqueue::FsMailQueue;
pub use outbox::FsOutbox;
pub use owner::{network_filesystem, DataDir, Sharing};
pub use payments::{FsProcessedEvents, FsSubscriptions};
pub use ratelimit::FsRateLimits;
pub use sessions::FsSessions;
pub use tokens::FsTokens;

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Errors of opening a store.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A directory could not be created (or exists as something else).
    #[error("cannot prepare directory {}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory in a mode that excludes this one (see
    /// [`Sharing`]).
    #[error(
        "data directory {} is in use by another process ({sharing:?} use refused)",
        path.display()
    )]
    InUse {
        /// The directory.
        path: PathBuf,
        /// What this process asked for.
        sharing: Sharing,
    },
    /// The data directory is on a network filesystem (NFS, SMB/CIFS, …), whose locks and renames
    /// are not atomic across its clients in the way this store relies on.
    #[error(
        "data directory {} is on {kind}, a network filesystem: locks and atomic renames are not \
         reliable there; use a local disk (or set store.allow_network_fs = true if you have \
         checked that they are)",
        path.display()
    )]
    NetworkFilesystem {
        /// The directory.
        path: PathBuf,
        /// The filesystem.
        kind: &'static str,
    },
    /// The owner lock file could not be created or locked.
    #[error("cannot lock {}", path.display())]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The sender given to [`FsOutbox::open`] is not a valid mailbox.
    #[error("invalid sender address")]
    InvalidFrom(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Creates `path` (and its parents) as private directories, for the `open` functions.
fn prepare_dir(path: &Path) -> Result<PathBuf, FsError> {
    atomic::create_dir_private(path)
        .map(|()| path.to_path_buf())
        .map_err(|source| FsError::Dir {
            path: path.to_path_buf(),
            source,
        })
}

/// Hex of the SHA-256 of `data`: how any input becomes a file name.
fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Whether `name` is a record name this crate writes: 64 lower-case hex characters.
fn is_record_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// An error for a file whose content is not what this crate writes.
fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("corrupt {what}"))
}

/// The `Backend` error of the auth ports, which [`FsAccounts`] and [`FsTokens`] share.
fn auth_backend(e: std::io::Error) -> phaze_auth::StoreError {
    phaze_auth::StoreError::Backend(Box::new(e))
}

/// Runs blocking file work off the async workers; a panicked or cancelled task is an I/O error.
async fn blocking<T, F>(f: F) -> std::io::Result<T>
where
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}
