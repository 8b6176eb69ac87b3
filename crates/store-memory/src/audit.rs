//! [`AuditStore`] in memory: one vector under one lock.

use async_trait::async_trait;
use phaze_audit::{AuditEntry, AuditError, AuditFilter, AuditStore};
use std::sync::Mutex;

use crate::lock;

/// [`AuditStore`] in memory. [`MemoryAudit::tamper`] lets tests change what is stored.
#[derive(Default)]
pub struct MemoryAudit(Mutex<Vec<AuditEntry>>);

impl MemoryAudit {
    /// Runs `f` on the stored entries (tests: edit, remove, reorder).
    pub fn tamper(&self, f: impl FnOnce(&mut Vec<AuditEntry>)) {
        f(&mut lock(&self.0));
    }
}

#[async_trait]
impl AuditStore for MemoryAudit {
    async fn append(
        &self,
        next: &(dyn for<'h> Fn(Option<&'h AuditEntry>) -> AuditEntry + Send + Sync),
    ) -> Result<AuditEntry, AuditError> {
        let mut entries = lock(&self.0);
        let entry = next(entries.last());
        entries.push(entry.clone());
        Ok(entry)
    }

    async fn range(&self, from: u64, limit: usize) -> Result<Vec<AuditEntry>, AuditError> {
        // As stored, in storage order from the entry in the `from`-th position counted from the
        // first kept one (whose seq numbers the positions): a tampered order shows.
        let entries = lock(&self.0);
        let base = entries.first().map_or(1, |e| e.seq);
        let start = usize::try_from(from.saturating_sub(base)).unwrap_or(usize::MAX);
        Ok(entries.iter().skip(start).take(limit).cloned().collect())
    }

    async fn page(
        &self,
        filter: &AuditFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        Ok(lock(&self.0)
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.seq < b) && filter.matches(e))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn purge_through(&self, through: u64) -> Result<usize, AuditError> {
        let mut entries = lock(&self.0);
        let before = entries.len();
        entries.retain(|e| e.seq > through);
        Ok(before - entries.len())
    }
}
