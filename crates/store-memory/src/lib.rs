//! Every Phaze port over process memory. State dies with the process, so this is for tests,
//! embedding in another service's tests, and single-process development (`store = "memory"`).
//!
//! **Invariant:** each port method takes its lock once and holds it to the end (a rate-limit
//! `run`, the locks of all its keys' shards), so every operation is atomic.
//!
//! ```
//! use phaze_auth::{AccountStore, Mailer, TokenStore};
//! use phaze_ratelimit::{LimitKey, RateLimitStore, Window};
//! use phaze_sessions::SessionStore;
//! use phaze_store_memory::{
//!     MemoryAccounts, MemoryMailer, MemoryRateLimits, MemorySessions, MemoryTokens,
//! };
//! use std::sync::Arc;
//! use time::{macros::datetime, Duration};
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // What the domain crates take: one trait object per port.
//! let sessions: Arc<dyn SessionStore> = Arc::new(MemorySessions::default());
//! let accounts: Arc<dyn AccountStore> = Arc::new(MemoryAccounts::default());
//! let tokens: Arc<dyn TokenStore> = Arc::new(MemoryTokens::default());
//! let mailer: Arc<dyn Mailer> = Arc::new(MemoryMailer::default());
//! let limits: Arc<dyn RateLimitStore> = Arc::new(MemoryRateLimits::default());
//!
//! // A hit checks and records under one lock: of five hits on a limit of three, three pass.
//! let key = LimitKey::from([7; 32]); // the portal derives keys with `KeyHasher::key`
//! let window = Window::new(3, Duration::minutes(15));
//! let now = datetime!(2026-01-01 09:00 UTC);
//! let mut allowed = 0;
//! for _ in 0..5 {
//!     allowed += u32::from(limits.hit(&key, window, now).await?.allowed);
//! }
//! assert_eq!(allowed, 3);
//! // A denied hit is not recorded: the log frees up 15 minutes after the first hit.
//! assert!(limits.hit(&key, window, now + Duration::minutes(15)).await?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
#![warn(missing_docs)]

mod audit;
mod devices;
mod mailqueue;
mod payments;
mod ratelimit;

pub use audit::MemoryAudit;
pub use devices::{MemoryAddressPool, MemoryDevices, MemoryProvisioner};
pub use mailqueue::MemoryMailQueue;
pub use payments::{MemoryProcessedEvents, MemorySubscriptions};
pub use ratelimit::MemoryRateLimits;

use async_trait::async_trait;
use phaze_auth::{
    Account, AccountRecord, AccountStore, Email, EmailIndex, HeldMail, MailError, Mailer,
    OutgoingMail, SealedFields, StepLedger, StoreError as AuthStoreError, TokenHash, TokenPurpose,
    TokenRecord, TokenStore, UserId,
};
use phaze_sessions::{Rotation, SessionKey, SessionStore, StoreError, StoredSession};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave these maps half-updated in a way that matters
    // more than losing the whole store, so recover the guard.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct SessionTables {
    by_key: HashMap<SessionKey, StoredSession>,
    by_user: HashMap<String, HashSet<SessionKey>>,
}

impl SessionTables {
    fn remove(&mut self, key: &SessionKey) -> bool {
        let Some(old) = self.by_key.remove(key) else {
            return false;
        };
        if let Some(keys) = self.by_user.get_mut(&old.user_id) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_user.remove(&old.user_id);
            }
        }
        true
    }

    /// Removes `key` and the records it was rotated into, while they belong to the same user.
    fn remove_chain(&mut self, key: &SessionKey) -> bool {
        let Some(first) = self.by_key.get(key) else {
            return false;
        };
        let user = first.user_id.clone();
        let mut next = Some(*key);
        // Each step deletes a record, so even a cycle in a tampered chain ends.
        while let Some(k) = next.take() {
            if self.by_key.get(&k).is_some_and(|s| s.user_id == user) {
                next = self.by_key.get(&k).and_then(|s| s.successor);
                self.remove(&k);
            }
        }
        true
    }
}

/// [`SessionStore`] in memory, with the per-user index.
#[derive(Default)]
pub struct MemorySessions(Mutex<SessionTables>);

#[async_trait]
impl SessionStore for MemorySessions {
    async fn insert(&self, s: &StoredSession) -> Result<(), StoreError> {
        let mut t = lock(&self.0);
        if t.by_key.contains_key(&s.key) {
            return Err(StoreError::Duplicate);
        }
        t.by_user
            .entry(s.user_id.clone())
            .or_default()
            .insert(s.key);
        t.by_key.insert(s.key, s.clone());
        Ok(())
    }

    async fn get(&self, key: &SessionKey) -> Result<Option<StoredSession>, StoreError> {
        Ok(lock(&self.0).by_key.get(key).cloned())
    }

    async fn update(&self, s: &StoredSession) -> Result<bool, StoreError> {
        let mut t = lock(&self.0);
        match t.by_key.get_mut(&s.key) {
            Some(existing) if existing.user_id == s.user_id && existing.successor.is_none() => {
                *existing = s.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn rotate(
        &self,
        retired: &StoredSession,
        successor: &StoredSession,
    ) -> Result<Rotation, StoreError> {
        let mut t = lock(&self.0);
        match t.by_key.get(&retired.key) {
            Some(old) if old.user_id != retired.user_id => return Ok(Rotation::Gone),
            Some(old) if old.successor.is_some() => return Ok(Rotation::Lost(old.clone())),
            Some(_) => {}
            None => return Ok(Rotation::Gone),
        }
        if t.by_key.contains_key(&successor.key) {
            return Err(StoreError::Duplicate);
        }
        t.by_user
            .entry(successor.user_id.clone())
            .or_default()
            .insert(successor.key);
        t.by_key.insert(successor.key, successor.clone());
        t.by_key.insert(retired.key, retired.clone());
        Ok(Rotation::Won)
    }

    async fn remove(&self, key: &SessionKey) -> Result<bool, StoreError> {
        Ok(lock(&self.0).remove_chain(key))
    }

    async fn list_user(&self, user_id: &str) -> Result<Vec<StoredSession>, StoreError> {
        let t = lock(&self.0);
        let keys = t.by_user.get(user_id).into_iter().flatten();
        Ok(keys.filter_map(|k| t.by_key.get(k).cloned()).collect())
    }

    async fn remove_user(
        &self,
        user_id: &str,
        keep: Option<&SessionKey>,
    ) -> Result<usize, StoreError> {
        let mut t = lock(&self.0);
        let doomed: Vec<SessionKey> = t
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter(|k| Some(*k) != keep)
            .copied()
            .collect();
        Ok(doomed.iter().filter(|k| t.remove(k)).count())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        let mut t = lock(&self.0);
        let doomed: Vec<SessionKey> = t
            .by_key
            .values()
            .filter(|s| s.expires_at <= now)
            .map(|s| s.key)
            .collect();
        Ok(doomed.iter().filter(|k| t.remove(k)).count())
    }
}

#[derive(Default)]
struct AccountTables {
    by_id: BTreeMap<UserId, AccountRecord>,
    by_email: HashMap<EmailIndex, UserId>,
    index_check: Option<[u8; 32]>,
}

/// [`AccountStore`] in memory. It never holds accounts in the clear: [`AccountStore::clear`]
/// is always empty.
#[derive(Default)]
pub struct MemoryAccounts(Mutex<AccountTables>);

#[async_trait]
impl AccountStore for MemoryAccounts {
    async fn insert(&self, a: &AccountRecord) -> Result<(), AuthStoreError> {
        let mut t = lock(&self.0);
        if t.by_email.contains_key(&a.email.index) || t.by_id.contains_key(&a.id) {
            return Err(AuthStoreError::Duplicate);
        }
        t.by_email.insert(a.email.index, a.id);
        t.by_id.insert(a.id, a.clone());
        Ok(())
    }

    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, AuthStoreError> {
        let t = lock(&self.0);
        Ok(t.by_email
            .get(email)
            .and_then(|id| t.by_id.get(id))
            .cloned())
    }

    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, AuthStoreError> {
        Ok(lock(&self.0).by_id.get(id).cloned())
    }

    async fn update(&self, a: &AccountRecord) -> Result<(), AuthStoreError> {
        let mut t = lock(&self.0);
        match t.by_id.get_mut(&a.id) {
            Some(existing) if existing.email.index == a.email.index => {
                *existing = a.clone();
                Ok(())
            }
            _ => Err(AuthStoreError::NotFound),
        }
    }

    async fn remove(&self, id: &UserId) -> Result<bool, AuthStoreError> {
        let mut t = lock(&self.0);
        let Some(account) = t.by_id.remove(id) else {
            return Ok(false);
        };
        if t.by_email.get(&account.email.index) == Some(id) {
            t.by_email.remove(&account.email.index);
        }
        Ok(true)
    }

    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, AuthStoreError> {
        use std::ops::Bound::{Excluded, Unbounded};
        let t = lock(&self.0);
        let from = after.map_or(Unbounded, Excluded);
        Ok(t.by_id
            .range((from, Unbounded))
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, AuthStoreError> {
        let mut t = lock(&self.0);
        match t.by_id.get_mut(id) {
            Some(record) if record.sealed_fields() == *old => {
                record.email.sealed.clone_from(&new.email);
                record.sealed_name.clone_from(&new.name);
                if let (Some(t), Some(secret)) = (&mut record.two_factor, &new.totp) {
                    t.sealed_secret.clone_from(secret);
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn clear(&self, _limit: usize) -> Result<Vec<Account>, AuthStoreError> {
        Ok(Vec::new())
    }

    async fn seal_clear(&self, _record: &AccountRecord) -> Result<bool, AuthStoreError> {
        Ok(false)
    }

    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, AuthStoreError> {
        let mut t = lock(&self.0);
        Ok(*t.index_check.get_or_insert(*check) == *check)
    }
}

/// [`TokenStore`] in memory.
#[derive(Default)]
pub struct MemoryTokens(Mutex<HashMap<TokenHash, TokenRecord>>);

#[async_trait]
impl TokenStore for MemoryTokens {
    async fn issue(&self, r: &TokenRecord) -> Result<(), AuthStoreError> {
        let mut t = lock(&self.0);
        if t.contains_key(&r.hash) {
            return Err(AuthStoreError::Duplicate);
        }
        // One scan under the lock that also inserts: the older tokens of the subject die in the
        // same step. Tokens are few (tests, embedding); the fs and PostgreSQL stores index them.
        let subject = r.subject();
        t.retain(|_, old| old.purpose != r.purpose || old.subject() != subject);
        t.insert(r.hash, r.clone());
        Ok(())
    }

    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, AuthStoreError> {
        let mut t = lock(&self.0);
        match t.get(hash) {
            Some(r) if r.purpose != purpose => Ok(None),
            Some(_) => Ok(t.remove(hash).filter(|r| r.expires_at > now)),
            None => Ok(None),
        }
    }

    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, AuthStoreError> {
        let t = lock(&self.0);
        Ok(t.get(hash)
            .filter(|r| r.purpose == purpose && r.expires_at > now)
            .cloned())
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, AuthStoreError> {
        let mut t = lock(&self.0);
        let before = t.len();
        t.retain(|_, r| r.expires_at > now);
        Ok(before - t.len())
    }

    async fn remove_user(&self, user: &UserId) -> Result<usize, AuthStoreError> {
        let mut t = lock(&self.0);
        let before = t.len();
        t.retain(|_, r| r.user_id != *user);
        Ok(before - t.len())
    }
}

/// [`Mailer`] that keeps every message in memory, for tests that read their mail.
#[derive(Default)]
pub struct MemoryMailer(Mutex<Vec<OutgoingMail>>);

impl MemoryMailer {
    /// Every message sent so far, oldest first.
    pub fn sent(&self) -> Vec<OutgoingMail> {
        lock(&self.0).clone()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        lock(&self.0).push(mail.clone());
        Ok(())
    }

    async fn forget(&self, to: &Email) -> Result<usize, MailError> {
        let mut sent = lock(&self.0);
        let before = sent.len();
        sent.retain(|m| m.to != *to);
        Ok(before - sent.len())
    }

    async fn held(&self, to: &Email) -> Result<Vec<HeldMail>, MailError> {
        Ok(lock(&self.0)
            .iter()
            .filter(|m| m.to == *to)
            .map(|m| HeldMail {
                subject: m.subject.clone(),
                waiting: true,
            })
            .collect())
    }
}

/// [`StepLedger`] in memory: the TOTP steps used in the last few minutes, per account.
#[derive(Default)]
pub struct MemoryStepLedger(Mutex<HashMap<(UserId, u64), OffsetDateTime>>);

/// A step is accepted up to one step after its own: remembering it for this long is plenty.
const STEP_MEMORY: time::Duration = time::Duration::minutes(3);

#[async_trait]
impl StepLedger for MemoryStepLedger {
    async fn first_use(
        &self,
        user: &UserId,
        step: u64,
        now: OffsetDateTime,
    ) -> Result<bool, AuthStoreError> {
        let mut used = lock(&self.0);
        used.retain(|_, at| *at + STEP_MEMORY > now);
        Ok(used.insert((*user, step), now).is_none())
    }
}
