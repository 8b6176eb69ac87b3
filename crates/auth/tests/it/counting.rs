//! Ports that count their calls, so tests can prove which work a use case does on each path
//! without timing it.

use async_trait::async_trait;
use phaze_auth::{
    Account, AccountRecord, AccountStore, Email, EmailIndex, HashError, MailError, Mailer,
    OutgoingMail, PasswordHasher, SealedFields, StoreError, TokenHash, TokenPurpose, TokenRecord,
    TokenStore, UserId, Verification,
};
use secrecy::SecretString;
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;

/// The calls seen, in order, by every counting port sharing it.
#[derive(Clone, Default)]
pub(crate) struct Calls(Arc<Mutex<Vec<String>>>);

impl Calls {
    fn push(&self, call: impl Into<String>) {
        self.0.lock().unwrap().push(call.into());
    }

    /// Every call since the last `take`.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub(crate) struct Counting<T> {
    pub(crate) inner: Arc<T>,
    pub(crate) calls: Calls,
}

#[async_trait]
impl<T: AccountStore> AccountStore for Counting<T> {
    async fn insert(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.calls.push("accounts.insert");
        self.inner.insert(account).await
    }
    async fn by_email(&self, email: &EmailIndex) -> Result<Option<AccountRecord>, StoreError> {
        self.calls.push("accounts.by_email");
        self.inner.by_email(email).await
    }
    async fn by_id(&self, id: &UserId) -> Result<Option<AccountRecord>, StoreError> {
        self.calls.push("accounts.by_id");
        self.inner.by_id(id).await
    }
    async fn update(&self, account: &AccountRecord) -> Result<(), StoreError> {
        self.calls.push("accounts.update");
        self.inner.update(account).await
    }
    async fn remove(&self, id: &UserId) -> Result<bool, StoreError> {
        self.calls.push("accounts.remove");
        self.inner.remove(id).await
    }
    async fn page(
        &self,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<AccountRecord>, StoreError> {
        self.calls.push("accounts.page");
        self.inner.page(after, limit).await
    }
    async fn reseal(
        &self,
        id: &UserId,
        old: &SealedFields,
        new: &SealedFields,
    ) -> Result<bool, StoreError> {
        self.calls.push("accounts.reseal");
        self.inner.reseal(id, old, new).await
    }
    async fn clear(&self, limit: usize) -> Result<Vec<Account>, StoreError> {
        self.calls.push("accounts.clear");
        self.inner.clear(limit).await
    }
    async fn seal_clear(&self, record: &AccountRecord) -> Result<bool, StoreError> {
        self.calls.push("accounts.seal_clear");
        self.inner.seal_clear(record).await
    }
    async fn check_index_key(&self, check: &[u8; 32]) -> Result<bool, StoreError> {
        self.calls.push("accounts.check_index_key");
        self.inner.check_index_key(check).await
    }
}

#[async_trait]
impl<T: TokenStore> TokenStore for Counting<T> {
    async fn issue(&self, record: &TokenRecord) -> Result<(), StoreError> {
        self.calls.push("tokens.issue");
        self.inner.issue(record).await
    }
    async fn consume(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.calls.push("tokens.consume");
        self.inner.consume(hash, purpose, now).await
    }
    async fn find(
        &self,
        hash: &TokenHash,
        purpose: TokenPurpose,
        now: OffsetDateTime,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.calls.push("tokens.find");
        self.inner.find(hash, purpose, now).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, StoreError> {
        self.calls.push("tokens.purge_expired");
        self.inner.purge_expired(now).await
    }
    async fn remove_user(&self, user: &UserId) -> Result<usize, StoreError> {
        self.calls.push("tokens.remove_user");
        self.inner.remove_user(user).await
    }
}

#[async_trait]
impl<T: Mailer> Mailer for Counting<T> {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        self.calls.push("mailer.send");
        self.inner.send(mail).await
    }
    async fn forget(&self, to: &Email) -> Result<usize, MailError> {
        self.calls.push("mailer.forget");
        self.inner.forget(to).await
    }
    async fn held(&self, to: &Email) -> Result<Vec<phaze_auth::HeldMail>, MailError> {
        self.calls.push("mailer.held");
        self.inner.held(to).await
    }
}

#[async_trait]
impl<T: PasswordHasher> PasswordHasher for Counting<T> {
    async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.calls.push("hasher.hash");
        self.inner.hash(password).await
    }
    async fn verify(
        &self,
        password: SecretString,
        phc: Option<String>,
    ) -> Result<Verification, HashError> {
        // Whether a real hash was passed is the one difference the hasher evens out itself
        // (`auth::password::tests::unknown_accounts_cost_one_argon2_computation_like_known_ones`).
        self.calls.push("hasher.verify");
        self.inner.verify(password, phc).await
    }
}
