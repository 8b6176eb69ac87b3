//! The audit log: every admin action and every read or change of someone's personal data by
//! someone else, as entries that say who ([`AuditEntry::actor`]), what (`action`), whose data
//! (`subject`), when (`at`) and from where (`client`).
//!
//! The log is append-only and tamper-evident. Entry *n* carries the MAC of entry *n − 1*
//! (`prev`) and its own MAC over every field and `prev`: HMAC-SHA256 under the audit key, so
//! whoever can write the store but does not hold the key cannot rewrite the chain after an edit.
//! [`AuditLog::verify`] walks the chain from the first entry and names the first entry that was
//! edited, removed (a gap in `seq`) or moved. Appends are atomic in every store ([`AuditStore::append`]
//! builds the next entry from the head it holds), so concurrent appends from several processes
//! keep one chain.
//!
//! What the chain cannot show alone: entries cut off the end (the head is the last entry left).
//! Each append is also a log line with its `seq` and MAC (the portal's `audit` target), which a
//! log shipper keeps elsewhere: compare the newest shipped line with the head.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use phaze_audit::{AuditLog, Draft};
//! use phaze_store_memory::MemoryAudit;
//! use std::sync::Arc;
//!
//! let log = AuditLog::new(Arc::new(MemoryAudit::default()), [7; 32]);
//! let now = time::OffsetDateTime::UNIX_EPOCH;
//! log.record(Draft::new(now, None, "admin.grant")).await?;
//! assert_eq!(log.verify().await?, phaze_audit::Verdict::Intact { entries: 1 });
//! # Ok::<(), phaze_audit::AuditError>(())
//! # }).unwrap();
//! ```

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use phaze_ids::UserId;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use time::OffsetDateTime;

/// The MAC of "no previous entry".
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest `detail`, in characters.
pub const MAX_DETAIL: usize = 256;

/// One entry of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Who: an account, or `None` for an operator at the command line.
    pub actor: Option<UserId>,
    /// What: a kind such as `admin.lock` (lower case, digits, `_` and `.`).
    pub action: String,
    /// Whose data, if someone's.
    pub subject: Option<UserId>,
    /// From where: the client address, if over HTTP.
    pub client: Option<String>,
    /// A short note (one line, no personal data: ids, not addresses).
    pub detail: String,
    /// The MAC of the entry before (hex); [`GENESIS`] for the first.
    pub prev: String,
    /// HMAC-SHA256 of every field above under the audit key (hex).
    pub mac: String,
}

/// An entry before it is chained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub at: OffsetDateTime,
    pub actor: Option<UserId>,
    pub action: String,
    pub subject: Option<UserId>,
    pub client: Option<String>,
    pub detail: String,
}

impl Draft {
    /// `actor` did `action` at `at`; no subject, client or detail yet.
    pub fn new(at: OffsetDateTime, actor: Option<UserId>, action: &str) -> Self {
        Self {
            at,
            actor,
            action: action.to_owned(),
            subject: None,
            client: None,
            detail: String::new(),
        }
    }

    /// About `subject`'s data.
    #[must_use]
    pub fn subject(mut self, subject: UserId) -> Self {
        self.subject = Some(subject);
        self
    }

    /// From `client`.
    #[must_use]
    pub fn client(mut self, client: impl ToString) -> Self {
        self.client = Some(client.to_string());
        self
    }

    /// With a note.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn check(&self) -> Result<(), AuditError> {
        let action_ok = !self.action.is_empty()
            && self.action.len() <= 64
            && self
                .action
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
        if !action_ok {
            return Err(AuditError::Invalid("action"));
        }
        if self.detail.chars().count() > MAX_DETAIL || self.detail.chars().any(char::is_control) {
            return Err(AuditError::Invalid("detail"));
        }
        if self
            .client
            .as_ref()
            .is_some_and(|c| c.len() > 64 || c.chars().any(char::is_control))
        {
            return Err(AuditError::Invalid("client"));
        }
        Ok(())
    }
}

/// Which entries a page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Entries whose actor or subject is this account.
    pub user: Option<UserId>,
    /// Entries of this action.
    pub action: Option<String>,
}

impl AuditFilter {
    /// Whether `entry` passes.
    pub fn matches(&self, entry: &AuditEntry) -> bool {
        self.user
            .is_none_or(|u| entry.actor == Some(u) || entry.subject == Some(u))
            && self.action.as_ref().is_none_or(|a| *a == entry.action)
    }
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A draft field out of shape (named).
    #[error("audit entry: invalid {0}")]
    Invalid(&'static str),
    /// The store failed.
    #[error("audit store: {0}")]
    Store(Box<dyn std::error::Error + Send + Sync>),
}

/// What [`AuditLog::verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every entry in place.
    Intact { entries: u64 },
    /// The first entry that is not what the chain says (`seq` is where it should be).
    Broken { seq: u64, why: String },
}

/// The port: where entries live. Every adapter keeps one chain across processes.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Stores the entry `next` builds from the current last entry (`None` when the log is empty),
    /// atomically: no other append lands between reading the last entry and storing this one.
    async fn append(
        &self,
        next: &(dyn for<'h> Fn(Option<&'h AuditEntry>) -> AuditEntry + Send + Sync),
    ) -> Result<AuditEntry, AuditError>;
    /// Up to `limit` entries with `seq >= from`, in `seq` order, as stored (for verification).
    async fn range(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError>;
    /// Up to `limit` entries passing `filter` with `seq < before` (all when `None`), newest first.
    async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError>;
    /// Deletes the entries with `seq <= through` (retention); returns how many.
    async fn purge_through(&self, through: u64) -> Result<usize, AuditError>;
}

/// The audit action that records a purge: its detail names the last entry purged and its MAC,
/// the anchor the chain now starts from.
pub const PURGED: &str = "audit.purged";

/// The audit log over a store, under a key.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<dyn AuditStore>,
    key: [u8; 32],
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Entries in `store`, chained under `key`.
    pub fn new(store: Arc<dyn AuditStore>, key: [u8; 32]) -> Self {
        Self { store, key }
    }

    /// Appends `draft` to the chain.
    pub async fn record(&self, draft: Draft) -> Result<AuditEntry, AuditError> {
        draft.check()?;
        let key = self.key;
        self.store
            .append(&move |head: Option<&AuditEntry>| {
                let (seq, prev) = match head {
                    Some(h) => (h.seq + 1, h.mac.clone()),
                    None => (1, GENESIS.to_owned()),
                };
                let mut entry = AuditEntry {
                    seq,
                    at: draft.at,
                    actor: draft.actor,
                    action: draft.action.clone(),
                    subject: draft.subject,
                    client: draft.client.clone(),
                    detail: draft.detail.clone(),
                    prev,
                    mac: String::new(),
                };
                entry.mac = mac(&key, &entry);
                entry
            })
            .await
    }

    /// Up to `limit` entries passing `filter`, newest first, older than `before`.
    pub async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        self.store.page(filter, before, limit).await
    }

    /// Deletes the entries older than `cutoff`, first recording the purge in the chain (the last
    /// entry purged and its MAC), so [`AuditLog::verify`] can tell a purge from entries cut away.
    /// Returns how many went.
    pub async fn purge_before(
        &self,
        cutoff: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<usize, AuditError> {
        const BATCH: usize = 500;
        let mut last: Option<AuditEntry> = None;
        let mut from = 0;
        'scan: loop {
            let batch = self.store.range(from, BATCH).await?;
            for entry in &batch {
                if entry.at >= cutoff {
                    break 'scan;
                }
                last = Some(entry.clone());
            }
            match batch.last() {
                Some(e) if batch.len() == BATCH => from = e.seq + 1,
                _ => break,
            }
        }
        let Some(last) = last else {
            return Ok(0);
        };
        self.record(
            Draft::new(now, None, PURGED).detail(format!("through {} {}", last.seq, last.mac)),
        )
        .await?;
        self.store.purge_through(last.seq).await
    }

    /// Up to `limit` entries with `seq >= from`, oldest first (readers that follow the log).
    pub async fn entries_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        self.store.range(from, limit).await
    }

    /// Walks the whole chain from the first entry kept. After a purge the chain starts at the
    /// entry after the last one purged, which must be what the newest purge record names.
    pub async fn verify(&self) -> Result<Verdict, AuditError> {
        const BATCH: usize = 500;
        let Some(first) = self.store.range(0, 1).await?.into_iter().next() else {
            return Ok(Verdict::Intact { entries: 0 });
        };
        let start = first.seq;
        let mut expected = start;
        let mut prev = if start == 1 {
            GENESIS.to_owned()
        } else {
            first.prev.clone()
        };
        let mut anchor: Option<String> = None;
        let mut broken = None;
        'walk: loop {
            let batch = self.store.range(expected, BATCH).await?;
            for entry in &batch {
                if let Some(why) = self.check(entry, expected, &prev) {
                    broken = Some(Verdict::Broken { seq: expected, why });
                    break 'walk;
                }
                if entry.action == PURGED {
                    anchor = Some(entry.detail.clone());
                }
                prev.clone_from(&entry.mac);
                expected += 1;
            }
            if batch.len() < BATCH {
                break;
            }
        }
        // Entries missing before the first kept one come first in the chain: said first.
        if start != 1 {
            let wanted = format!("through {} {}", start - 1, first.prev);
            if anchor.as_deref() != Some(wanted.as_str()) {
                return Ok(Verdict::Broken {
                    seq: start - 1,
                    why: format!(
                        "entry {} and any before it are missing, and no purge record says so",
                        start - 1
                    ),
                });
            }
        }
        if let Some(broken) = broken {
            return Ok(broken);
        }
        Ok(Verdict::Intact {
            entries: expected - start,
        })
    }

    fn check(&self, entry: &AuditEntry, expected: u64, prev: &str) -> Option<String> {
        use subtle::ConstantTimeEq;
        if entry.seq != expected {
            return Some(format!(
                "entry {expected} is missing or out of place (found entry {} there)",
                entry.seq
            ));
        }
        if entry.prev != prev {
            return Some(format!(
                "entry {expected} does not follow entry {}: removed, moved or rewritten",
                expected - 1
            ));
        }
        let ok: bool = mac(&self.key, entry)
            .as_bytes()
            .ct_eq(entry.mac.as_bytes())
            .into();
        (!ok).then(|| format!("entry {expected} was changed after it was written"))
    }
}

/// HMAC-SHA256 over every field but `mac`, each length-prefixed so no two entries share an input.
fn mac(key: &[u8; 32], e: &AuditEntry) -> String {
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        unreachable!("HMAC takes keys of any length")
    };
    let at = e.at.unix_timestamp_nanos().to_be_bytes();
    let actor = e.actor.map(|a| a.to_string()).unwrap_or_default();
    let subject = e.subject.map(|s| s.to_string()).unwrap_or_default();
    let client = e.client.clone().unwrap_or_default();
    let seq = e.seq.to_be_bytes();
    let fields: [&[u8]; 8] = [
        &seq,
        &at,
        actor.as_bytes(),
        e.action.as_bytes(),
        subject.as_bytes(),
        client.as_bytes(),
        e.detail.as_bytes(),
        e.prev.as_bytes(),
    ];
    for field in fields {
        m.update(&(field.len() as u64).to_be_bytes());
        m.update(field);
    }
    hex::encode(m.finalize().into_bytes())
}
