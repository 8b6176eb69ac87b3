//! Personal data at rest: an account's address and display name are sealed before they reach a
//! store, and the address is found through a keyed blind index.
//!
//! - The address and the name are sealed with the session keys ([`Sealer`], XChaCha20-Poly1305,
//!   the rotatable key list), each bound to the account's id and to what it is, the address also
//!   to its index: a blob copied to another account, from the name's place to the address's, or
//!   a record filed under another address's index, does not open.
//! - The lookup by address, and its uniqueness, go through [`EmailIndex`]: HMAC-SHA256 of the
//!   normalised address under a key of its own ([`EmailIndexKey`]). A store holds no address,
//!   and without the key a dump cannot even be tested against a list of guessed addresses.
//! - [`AccountStore`] adapters only ever see [`AccountRecord`]s: no adapter can forget to seal.
//!   [`SealedAccounts`] is the store as the domain sees it, accounts in and accounts out.

use hmac::{Hmac, Mac};
use phaze_sessions::Sealer;
use secrecy::{ExposeSecret, SecretBox};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

use crate::{Account, AccountStore, DisplayName, Email, StoreError, TwoFactor, UserId};

/// The keyed blind index of a normalised address: what stores look an account up by, and keep
/// unique, instead of the address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmailIndex(pub [u8; 32]);

impl EmailIndex {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EmailIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailIndex({}…)", &self.to_hex()[..12])
    }
}

/// The key of the [`EmailIndex`]. It is never rotated: every stored index would change with it.
pub struct EmailIndexKey(SecretBox<[u8; 32]>);

impl EmailIndexKey {
    /// The index under `key`.
    pub fn new(key: SecretBox<[u8; 32]>) -> Self {
        Self(key)
    }

    /// What [`AccountStore::check_index_key`] keeps: the MAC of a constant, which tells two keys
    /// apart and reveals nothing about either.
    pub fn check(&self) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) else {
            unreachable!("HMAC accepts any key length")
        };
        mac.update(b"phaze-email-index-check");
        mac.finalize().into_bytes().into()
    }

    /// The index of `email`.
    pub fn index(&self, email: &Email) -> EmailIndex {
        // HMAC takes keys of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(self.0.expose_secret()) else {
            unreachable!("HMAC accepts any key length")
        };
        mac.update(b"phaze-email-index\0");
        mac.update(email.as_str().as_bytes());
        EmailIndex(mac.finalize().into_bytes().into())
    }
}

impl fmt::Debug for EmailIndexKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EmailIndexKey(<redacted>)")
    }
}

/// An address as stores keep it: its blind index and the sealed address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEmail {
    /// The lookup key.
    pub index: EmailIndex,
    /// The address, sealed and bound to the account's id.
    pub sealed: Vec<u8>,
}

impl fmt::Debug for SealedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedEmail")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// An [`Account`] as an [`AccountStore`] keeps it: the address and the display name sealed.
/// `Debug` leaves the password hash and the sealed bytes out, as [`Account`]'s does.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Permanent id.
    pub id: UserId,
    /// The login identifier: unique by its index.
    pub email: SealedEmail,
    /// The display name, sealed and bound to the account's id.
    pub sealed_name: Vec<u8>,
    /// See [`Account::email_verified`].
    pub email_verified: bool,
    /// See [`Account::password_hash`].
    pub password_hash: String,
    /// See [`Account::is_admin`].
    pub is_admin: bool,
    /// See [`Account::locked`].
    #[serde(default)]
    pub locked: bool,
    /// See [`Account::created_at`].
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
    /// See [`Account::password_changed_at`].
    #[serde(with = "time::serde::timestamp")]
    pub password_changed_at: OffsetDateTime,
    /// See [`Account::two_factor`] (its secret is sealed already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub two_factor: Option<TwoFactor>,
}

impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("email_verified", &self.email_verified)
            .field("password_hash", &"<redacted>")
            .field("is_admin", &self.is_admin)
            .field("locked", &self.locked)
            .field("created_at", &self.created_at)
            .field("password_changed_at", &self.password_changed_at)
            .field("two_factor", &self.two_factor)
            .finish_non_exhaustive()
    }
}

impl AccountRecord {
    /// The record's sealed fields, for [`AccountStore::reseal`].
    pub fn sealed_fields(&self) -> SealedFields {
        SealedFields {
            email: self.email.sealed.clone(),
            name: self.sealed_name.clone(),
            totp: self.two_factor.as_ref().map(|t| t.sealed_secret.clone()),
        }
    }
}

/// What a key rotation rewrites in a record: every blob sealed under the session keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedFields {
    /// The sealed address (its index stays).
    pub email: Vec<u8>,
    /// The sealed display name.
    pub name: Vec<u8>,
    /// The sealed TOTP secret, if the account has one.
    pub totp: Option<Vec<u8>>,
}

/// Why [`SealedAccounts::check_index_key`] failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexKeyError {
    /// The store's accounts were indexed under another key.
    #[error(
        "the email index key is not the one this store's accounts were indexed with \
         (was the token pepper replaced?)"
    )]
    Mismatch,
    /// The store failed.
    #[error("account store unavailable")]
    Store(#[source] StoreError),
}

/// A sealed field no configured key opens (a key removed too early, or a tampered store), or an
/// address whose index does not match it.
#[derive(Debug, thiserror::Error)]
#[error("sealed account data could not be opened")]
pub struct PiiError;

const EMAIL_CONTEXT: &[u8] = b"phaze-account-email\0";
const NAME_CONTEXT: &[u8] = b"phaze-account-name\0";

fn context(kind: &[u8], owner: &UserId) -> Vec<u8> {
    let mut c = kind.to_vec();
    c.extend_from_slice(owner.as_uuid().as_bytes());
    c
}

/// An address is bound to its account and to its index: a record refiled under another index
/// does not open, so a lookup by one address can never yield the account of another.
fn email_context(owner: &UserId, index: &EmailIndex) -> Vec<u8> {
    let mut c = context(EMAIL_CONTEXT, owner);
    c.extend_from_slice(&index.0);
    c
}

/// Seals accounts into [`AccountRecord`]s and opens them again.
#[derive(Clone, Debug)]
pub struct AccountSealer {
    sealer: Sealer,
    index: Arc<EmailIndexKey>,
}

impl AccountSealer {
    /// Seals under `sealer` (the session keys), indexes under `index`.
    pub fn new(sealer: Sealer, index: EmailIndexKey) -> Self {
        Self {
            sealer,
            index: Arc::new(index),
        }
    }

    /// The index of `email`.
    pub fn index(&self, email: &Email) -> EmailIndex {
        self.index.index(email)
    }

    /// Whether a rotation can have anything to do: older keys are configured beside the newest.
    pub fn rotating(&self) -> bool {
        self.sealer.has_older_keys()
    }

    /// `email` as the account `owner` (or the account a registration will create) keeps it.
    pub fn seal_email(&self, owner: &UserId, email: &Email) -> SealedEmail {
        let index = self.index(email);
        SealedEmail {
            index,
            sealed: self
                .sealer
                .seal_bound(&email_context(owner, &index), email.as_str().as_bytes()),
        }
    }

    /// Opens an address sealed for `owner` under the stored index: an index moved to another
    /// record, or a sealed address moved under another index, does not open.
    pub fn open_email(&self, owner: &UserId, email: &SealedEmail) -> Result<Email, PiiError> {
        let bytes = self
            .sealer
            .open_bound(&email_context(owner, &email.index), &email.sealed)
            .map_err(|_| PiiError)?;
        String::from_utf8(bytes)
            .map(Email::from_sealed)
            .map_err(|_| PiiError)
    }

    /// The record of `account`, every field sealed afresh under the newest key.
    pub fn seal(&self, account: &Account) -> AccountRecord {
        AccountRecord {
            id: account.id,
            email: self.seal_email(&account.id, &account.email),
            sealed_name: self.sealer.seal_bound(
                &context(NAME_CONTEXT, &account.id),
                account.display_name.as_str().as_bytes(),
            ),
            email_verified: account.email_verified,
            password_hash: account.password_hash.clone(),
            is_admin: account.is_admin,
            locked: account.locked,
            created_at: account.created_at,
            password_changed_at: account.password_changed_at,
            two_factor: account.two_factor.clone().map(|mut t| {
                // An account read before a rotation and written after it must not put the
                // secret back under the old key.
                if let Some(again) = self.current_totp(&account.id, &t.sealed_secret) {
                    t.sealed_secret = again;
                }
                t
            }),
        }
    }

    /// `sealed` (a TOTP secret of `owner`) sealed under the newest key, if it is under an older
    /// one that still opens it.
    fn current_totp(&self, owner: &UserId, sealed: &[u8]) -> Option<Vec<u8>> {
        if self.sealer.is_current(sealed) {
            return None;
        }
        let context = crate::two_factor::seal_context(owner);
        let secret = self.sealer.open_bound(&context, sealed).ok()?;
        Some(self.sealer.seal_bound(&context, &secret))
    }

    /// The account of `record`.
    pub fn open(&self, record: AccountRecord) -> Result<Account, PiiError> {
        let email = self.open_email(&record.id, &record.email)?;
        let name = self
            .sealer
            .open_bound(&context(NAME_CONTEXT, &record.id), &record.sealed_name)
            .map_err(|_| PiiError)?;
        let display_name = String::from_utf8(name)
            .map(DisplayName::from_sealed)
            .map_err(|_| PiiError)?;
        Ok(Account {
            id: record.id,
            email,
            email_verified: record.email_verified,
            password_hash: record.password_hash,
            display_name,
            is_admin: record.is_admin,
            locked: record.locked,
            created_at: record.created_at,
            password_changed_at: record.password_changed_at,
            two_factor: record.two_factor,
        })
    }

    /// The sealed fields of `record` sealed again under the newest key, or `None` if they all are
    /// already. A TOTP secret is re-sealed with the account's own context
    /// (bound to it as at enrolment), so the second factor keeps working.
    pub fn reseal(&self, record: &AccountRecord) -> Result<Option<SealedFields>, PiiError> {
        let old = record.sealed_fields();
        let current = self.sealer.is_current(&old.email)
            && self.sealer.is_current(&old.name)
            && old
                .totp
                .as_deref()
                .is_none_or(|t| self.sealer.is_current(t));
        if current {
            return Ok(None);
        }
        let again = |ctx: Vec<u8>, blob: &[u8]| -> Result<Vec<u8>, PiiError> {
            let plain = self.sealer.open_bound(&ctx, blob).map_err(|_| PiiError)?;
            Ok(self.sealer.seal_bound(&ctx, &plain))
        };
        let totp = match &old.totp {
            Some(t) => Some(again(crate::two_factor::seal_context(&record.id), t)?),
            None => None,
        };
        Ok(Some(SealedFields {
            email: again(email_context(&record.id, &record.email.index), &old.email)?,
            name: again(context(NAME_CONTEXT, &record.id), &old.name)?,
            totp,
        }))
    }
}

/// An [`AccountStore`] seen through an [`AccountSealer`]: accounts in, accounts out, sealed in
/// between. What [`crate::AuthService`] uses; tests and tools that seed a store use it too.
///
/// Every authenticated request reads its account, and opening two blobs costs microseconds: the
/// accounts opened last are kept beside the record they came from, and a read whose record is
/// byte for byte that one (the store still decides what is current) skips the opening. An
/// account is forgotten when it is removed through this value or a lookup finds it gone, and
/// the whole memory when it holds 10,000 accounts.
#[derive(Clone)]
pub struct SealedAccounts {
    store: Arc<dyn AccountStore>,
    sealer: AccountSealer,
    opened: Arc<Mutex<HashMap<UserId, (AccountRecord, Account)>>>,
}

/// Accounts kept opened; past this the memory is dropped and filled again.
const OPENED_CAPACITY: usize = 10_000;

/// The map's guard; a panic elsewhere cannot leave it half-written (every change is one call).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl fmt::Debug for SealedAccounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedAccounts").finish_non_exhaustive()
    }
}

fn sealed_error(e: PiiError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl SealedAccounts {
    /// `store` through `sealer`.
    pub fn new(store: Arc<dyn AccountStore>, sealer: AccountSealer) -> Self {
        Self {
            store,
            sealer,
            opened: Arc::default(),
        }
    }

    /// The account of `record`, from the memory of opened accounts when the record is the one
    /// it was opened from.
    fn open(&self, record: AccountRecord) -> Result<Account, StoreError> {
        if let Some((seen, account)) = lock(&self.opened).get(&record.id) {
            if *seen == record {
                return Ok(account.clone());
            }
        }
        let account = self.sealer.open(record.clone()).map_err(sealed_error)?;
        let mut opened = lock(&self.opened);
        if opened.len() >= OPENED_CAPACITY {
            opened.clear();
        }
        opened.insert(record.id, (record, account.clone()));
        Ok(account)
    }

    /// The sealer.
    pub fn sealer(&self) -> &AccountSealer {
        &self.sealer
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn AccountStore> {
        &self.store
    }

    /// Fails with [`IndexKeyError::Mismatch`] if the store's accounts were indexed under another key
    /// (records the key's check on first use). Run before serving.
    pub async fn check_index_key(&self) -> Result<(), IndexKeyError> {
        match self.store.check_index_key(&self.sealer.index.check()).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(IndexKeyError::Mismatch),
            Err(e) => Err(IndexKeyError::Store(e)),
        }
    }

    /// [`AccountStore::insert`] of the sealed `account`.
    pub async fn insert(&self, account: &Account) -> Result<(), StoreError> {
        self.store.insert(&self.sealer.seal(account)).await
    }

    /// The account of `email`. A record no configured key opens is a backend error: the caller
    /// fails closed.
    pub async fn by_email(&self, email: &Email) -> Result<Option<Account>, StoreError> {
        let found = self.store.by_email(&self.sealer.index(email)).await?;
        found.map(|r| self.open(r)).transpose()
    }

    /// The account `id`.
    pub async fn by_id(&self, id: &UserId) -> Result<Option<Account>, StoreError> {
        match self.store.by_id(id).await? {
            Some(record) => self.open(record).map(Some),
            None => {
                lock(&self.opened).remove(id);
                Ok(None)
            }
        }
    }

    /// [`AccountStore::update`] of the sealed `account`.
    pub async fn update(&self, account: &Account) -> Result<(), StoreError> {
        self.store.update(&self.sealer.seal(account)).await
    }

    /// [`AccountStore::remove`]; the opened account is forgotten too.
    pub async fn remove(&self, id: &UserId) -> Result<bool, StoreError> {
        let removed = self.store.remove(id).await;
        lock(&self.opened).remove(id);
        removed
    }
}

/// What [`SealedAccounts::rotate`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Accounts looked at.
    pub visited: usize,
    /// Accounts whose sealed fields were sealed again under the newest key.
    pub resealed: usize,
    /// Accounts with a field no configured key opens: the key they need is gone (or the store
    /// was tampered with). Logged with their ids.
    pub unopened: usize,
    /// Accounts that changed under each of several attempts: run the rotation again.
    pub busy: usize,
}

impl Rotation {
    /// Whether every account is now sealed under the newest key alone.
    pub fn complete(&self) -> bool {
        self.unopened == 0 && self.busy == 0
    }
}

/// Records per page of a rotation, accounts per batch of the clear-data migration.
const BATCH: usize = 200;
/// Attempts at re-sealing one account that keeps changing.
const RESEAL_ATTEMPTS: usize = 5;

impl SealedAccounts {
    /// Seals every account that a version of Phaze from before sealing stored in the clear, and
    /// gives each its index entry; returns how many. Safe to run in several processes at once
    /// (each account is sealed once), and cheap once done: the portal runs it at start.
    ///
    /// It goes on until the store holds no account in the clear, whatever other processes seal
    /// meanwhile: a process that stopped early would serve while accounts are still unfindable.
    /// An account whose address a sealed account has taken meanwhile (registered again during
    /// the upgrade) is left in the clear and logged for an operator, not a reason to stop.
    pub async fn seal_clear(&self) -> Result<usize, StoreError> {
        let mut sealed = 0;
        // Accounts this run is done with: sealed here or elsewhere, or left for an operator.
        let mut done = std::collections::HashSet::new();
        loop {
            let batch = self.store.clear(BATCH + done.len()).await?;
            let todo: Vec<&Account> = batch.iter().filter(|a| !done.contains(&a.id)).collect();
            if todo.is_empty() {
                return Ok(sealed);
            }
            for account in todo {
                done.insert(account.id);
                match self.store.seal_clear(&self.sealer.seal(account)).await {
                    Ok(true) => sealed += 1,
                    // Sealed by another process meanwhile.
                    Ok(false) => {}
                    Err(StoreError::Duplicate) => tracing::error!(
                        user = %account.id,
                        "an account stored in the clear has the address of a sealed account; \
                         left in the clear for an operator"
                    ),
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Seals again, under the newest key, every field of every account that an older key
    /// sealed: afterwards no account needs an older key. Runs beside live traffic: each
    /// account's fields are swapped only if they did not change meanwhile
    /// ([`AccountStore::reseal`]), else read and tried again.
    pub async fn rotate(&self) -> Result<Rotation, StoreError> {
        let mut report = Rotation::default();
        let mut after = None;
        loop {
            let page = self.store.page(after.as_ref(), BATCH).await?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after = Some(last.id);
            for record in page {
                report.visited += 1;
                self.reseal_one(record, &mut report).await?;
            }
        }
    }

    async fn reseal_one(
        &self,
        mut record: AccountRecord,
        report: &mut Rotation,
    ) -> Result<(), StoreError> {
        for _ in 0..RESEAL_ATTEMPTS {
            let new = match self.sealer.reseal(&record) {
                Ok(Some(new)) => new,
                Ok(None) => return Ok(()),
                Err(_) => {
                    tracing::error!(user = %record.id, "account data sealed under a key that is not configured");
                    report.unopened += 1;
                    return Ok(());
                }
            };
            if self
                .store
                .reseal(&record.id, &record.sealed_fields(), &new)
                .await?
            {
                report.resealed += 1;
                return Ok(());
            }
            match self.store.by_id(&record.id).await? {
                Some(now) => record = now,
                None => return Ok(()),
            }
        }
        report.busy += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phaze_sessions::SealingKey;

    fn sealer(keys: &[[u8; 32]]) -> AccountSealer {
        AccountSealer::new(
            Sealer::new(keys.iter().map(SealingKey::new).collect())
                .unwrap_or_else(|_| unreachable!()),
            EmailIndexKey::new(SecretBox::new(Box::new([5; 32]))),
        )
    }

    fn account(email: &str, name: &str) -> Account {
        Account {
            id: UserId::generate(),
            email: Email::parse(email).unwrap_or_else(|| unreachable!()),
            email_verified: true,
            password_hash: String::new(),
            display_name: DisplayName::parse(name).unwrap_or_else(|_| unreachable!()),
            is_admin: false,
            locked: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            password_changed_at: OffsetDateTime::UNIX_EPOCH,
            two_factor: None,
        }
    }

    #[test]
    fn a_record_opens_to_its_account_and_holds_neither_address_nor_name() {
        let s = sealer(&[[1; 32]]);
        let a = account("Ada.Lovelace@Example.com", "Ada <b>L</b>");
        let record = s.seal(&a);
        let printed = format!("{record:?}{}", String::from_utf8_lossy(&record.sealed_name));
        assert!(
            !printed.contains("lovelace") && !printed.contains("Ada"),
            "{printed}"
        );
        assert_eq!(record.email.index, s.index(&a.email));
        assert_eq!(s.open(record).ok(), Some(a));
    }

    #[test]
    fn debug_shows_neither_the_password_hash_nor_sealed_bytes() {
        let mut a = account("ada@example.com", "Ada");
        a.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaGhhc2g".into();
        let printed = format!("{:?}", sealer(&[[1; 32]]).seal(&a));
        assert!(
            !printed.contains("argon2id") && !printed.contains("aGFzaGhhc2g"),
            "{printed}"
        );
        assert!(
            printed.contains("<redacted>") && printed.contains("EmailIndex("),
            "{printed}"
        );
    }

    #[test]
    fn the_index_is_keyed_and_one_per_address() {
        let s = sealer(&[[1; 32]]);
        let other_key = AccountSealer::new(
            Sealer::new(vec![SealingKey::new(&[1; 32])]).unwrap_or_else(|_| unreachable!()),
            EmailIndexKey::new(SecretBox::new(Box::new([6; 32]))),
        );
        let e = |raw| Email::parse(raw).unwrap_or_else(|| unreachable!());
        assert_eq!(
            s.index(&e("ada@example.com")),
            s.index(&e(" ADA@example.COM "))
        );
        assert_ne!(
            s.index(&e("ada@example.com")),
            s.index(&e("bob@example.com"))
        );
        assert_ne!(
            s.index(&e("ada@example.com")),
            other_key.index(&e("ada@example.com"))
        );
    }

    /// Whoever can write the store cannot make one account answer for another's address or
    /// show another's name: every sealed field is bound to its account and its place, and an
    /// address must match the index it is stored under.
    #[test]
    fn moved_or_swapped_sealed_fields_do_not_open() {
        let s = sealer(&[[1; 32]]);
        let (ada, eve) = (
            s.seal(&account("ada@example.com", "Ada")),
            s.seal(&account("eve@example.com", "Eve")),
        );
        // Eve's sealed address under Ada's index: a lookup of Ada's address would find Eve.
        let mut grafted = ada.clone();
        grafted.email.sealed.clone_from(&eve.email.sealed);
        assert!(s.open(grafted).is_err(), "another account's address");
        // Eve's whole address (index and blob) moved onto Ada's record.
        let mut moved = ada.clone();
        moved.email = eve.email.clone();
        assert!(s.open(moved).is_err(), "bound to its account");
        // Ada's record filed under Eve's index: a lookup of Eve's address must not yield Ada.
        let mut refiled = ada.clone();
        refiled.email.index = eve.email.index;
        assert!(s.open(refiled).is_err(), "the address must match its index");
        // Ada's own name blob in the address's place, and the other way round.
        let mut swapped = ada.clone();
        swapped.email.sealed.clone_from(&ada.sealed_name);
        assert!(s.open(swapped).is_err());
        let mut swapped = ada.clone();
        swapped.sealed_name.clone_from(&ada.email.sealed);
        assert!(s.open(swapped).is_err());
        // A truncated or flipped blob.
        let mut cut = ada.clone();
        cut.sealed_name.truncate(10);
        assert!(s.open(cut).is_err());
        let mut flipped = ada.clone();
        if let Some(b) = flipped.email.sealed.last_mut() {
            *b ^= 1;
        }
        assert!(s.open(flipped).is_err());
        assert!(s.open(ada).is_ok());
    }

    #[test]
    fn reseal_is_needed_only_under_an_older_key_and_keeps_the_values() {
        let (old, new) = ([1; 32], [2; 32]);
        let a = account("ada@example.com", "Ada");
        let record = sealer(&[old]).seal(&a);
        let both = sealer(&[new, old]);
        let Ok(Some(fields)) = both.reseal(&record) else {
            panic!("an old record needs re-sealing")
        };
        let mut again = record.clone();
        again.email.sealed = fields.email;
        again.sealed_name = fields.name;
        assert!(matches!(both.reseal(&again), Ok(None)), "current now");
        assert_eq!(sealer(&[new]).open(again).ok(), Some(a));
        assert!(sealer(&[[3; 32]]).reseal(&record).is_err());
    }
}
