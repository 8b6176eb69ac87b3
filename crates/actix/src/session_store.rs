//! [`PhazeSessionStore`]: actix-session's storage seam over a [`phaze_sessions::SessionStore`].
//!
//! A record is a [`StoredSession`]: `key` the SHA-256 of the id in the cookie, `user_id` an owner
//! of its own (`actix-session:<key hex>`, see the crate docs), `expires_at` the expiry (whole
//! seconds), no successor, and `sealed` the [`Sealer`]'s seal, under the key, of
//! `{"v":1,"exp":<expires_at, Unix seconds>,"state":{…}}`.

use actix_session::storage::{
    LoadError, SaveError, SessionKey as CookieValue, SessionStore as ActixSessionStore, UpdateError,
};
use phaze_sessions::{Sealer, SessionId, SessionKey, SessionStore, StoreError, StoredSession};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// actix-session's session state.
type State = HashMap<String, String>;

/// What every record's owner starts with; the store key's hex follows.
const OWNER_PREFIX: &str = "actix-session:";
/// Version of the sealed layout.
const SEALED_VERSION: u8 = 1;
/// Tries at a fresh id: two 256-bit random ids do not collide, but the port allows `Duplicate`.
const INSERT_ATTEMPTS: usize = 3;

/// The source of the current time, replaceable for tests.
use crate::clock::Clock;

/// An [`actix_session::storage::SessionStore`] backed by a Phaze session store: hashed ids in the
/// store, sealed state, server-side expiry. Cheap to clone (two `Arc`s and a key list), as
/// `HttpServer::new`'s factory needs.
///
/// What it keeps of Phaze's guarantees and what actix-session leaves no room for is in the
/// [crate docs](crate#what-it-keeps-and-what-it-cannot).
#[derive(Clone)]
pub struct PhazeSessionStore {
    store: Arc<dyn SessionStore>,
    sealer: Sealer,
    clock: Clock,
}

impl PhazeSessionStore {
    /// A store over `store`, sealing with `sealer`, reading the system clock.
    pub fn new(store: Arc<dyn SessionStore>, sealer: Sealer) -> Self {
        Self {
            store,
            sealer,
            clock: crate::clock::system(),
        }
    }

    /// The same store reading the time from `now` instead of the system clock: actix-session
    /// passes no time to its store, and tests move a manual clock to test expiry without
    /// sleeping.
    pub fn with_clock(self, now: impl Fn() -> OffsetDateTime + Send + Sync + 'static) -> Self {
        Self {
            clock: Arc::new(now),
            ..self
        }
    }

    /// Deletes every expired record of the underlying store (all of them: this store's and any
    /// other user of it) and returns how many went. actix-session never purges; on the memory
    /// and filesystem stores a service calls this periodically, or expired records stay on disk
    /// until their id is next presented. Redis drops them by TTL as well.
    pub async fn purge_expired(&self) -> Result<usize, StoreError> {
        self.store.purge_expired(self.now()).await
    }

    fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// `now + ttl`, to the whole second below (what the sealed layout holds). A TTL beyond the
    /// year 9999 is a configuration error.
    fn expiry(&self, ttl: &Duration) -> Result<OffsetDateTime, anyhow::Error> {
        self.now()
            .checked_add(*ttl)
            .and_then(|at| OffsetDateTime::from_unix_timestamp(at.unix_timestamp()).ok())
            .ok_or_else(|| anyhow::anyhow!("session TTL {ttl} is out of range"))
    }

    /// The record of `state` under `key`, expiring at `expires_at`.
    fn record(
        &self,
        key: &SessionKey,
        state: &State,
        expires_at: OffsetDateTime,
    ) -> Result<StoredSession, serde_json::Error> {
        let plain = serde_json::to_vec(&SealedRef {
            v: SEALED_VERSION,
            exp: expires_at.unix_timestamp(),
            state,
        })?;
        Ok(StoredSession {
            key: *key,
            user_id: owner(key),
            expires_at,
            successor: None,
            sealed: self.sealer.seal(key, &plain),
        })
    }

    /// What a record of this store holds, if it opens under its key and parses.
    fn open(&self, stored: &StoredSession) -> Option<Sealed> {
        let plain = self.sealer.open(&stored.key, &stored.sealed).ok()?;
        let sealed: Sealed = serde_json::from_slice(&plain).ok()?;
        (sealed.v == SEALED_VERSION).then_some(sealed)
    }

    /// The record under `key` if it is this store's (no other user of the store can be served
    /// through actix-session, nor deleted by it) and not expired by its clear `expires_at`. An
    /// expired record of this store is deleted.
    async fn live(
        &self,
        key: &SessionKey,
        now: OffsetDateTime,
    ) -> Result<Option<StoredSession>, StoreError> {
        match self.store.get(key).await? {
            Some(s) if is_ours(&s) && s.expires_at > now => Ok(Some(s)),
            Some(s) if is_ours(&s) => {
                self.store.remove(key).await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }

    /// Inserts `state` under a fresh id and returns the id as the cookie value.
    async fn insert_fresh(
        &self,
        state: &State,
        expires_at: OffsetDateTime,
    ) -> Result<CookieValue, Fresh> {
        let mut attempts = 0;
        loop {
            let id = SessionId::generate();
            let record = self
                .record(&id.key(), state, expires_at)
                .map_err(|e| Fresh::Serialization(e.into()))?;
            match self.store.insert(&record).await {
                Ok(()) => return cookie_value(&id).map_err(Fresh::Other),
                Err(StoreError::Duplicate) if attempts + 1 < INSERT_ATTEMPTS => attempts += 1,
                Err(e) => return Err(Fresh::Other(e.into())),
            }
        }
    }
}

// `HttpServer::new` clones the store into every worker from a `Send` factory.
const _: fn() = || {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<PhazeSessionStore>();
};

impl fmt::Debug for PhazeSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhazeSessionStore")
            .field("sealer", &self.sealer)
            .finish_non_exhaustive()
    }
}

// actix-session's trait speaks `anyhow::Error` (the only place this crate uses anyhow); store
// errors go into it whole, so the middleware logs their source chain and answers 500.
impl ActixSessionStore for PhazeSessionStore {
    /// The state behind a cookie value, or `None` (a fresh, empty session) if the value is not a
    /// Phaze id, or its record is missing, expired, another user's or does not open under its
    /// key. Expired and unopenable records of this store are deleted. Never
    /// [`LoadError::Deserialization`], on which actix-session would keep the key.
    async fn load(&self, value: &CookieValue) -> Result<Option<State>, LoadError> {
        let Some(id) = SessionId::parse(value.as_ref()) else {
            return Ok(None);
        };
        let key = id.key();
        let now = self.now();
        let Some(stored) = self
            .live(&key, now)
            .await
            .map_err(other(LoadError::Other))?
        else {
            return Ok(None);
        };
        match self.open(&stored) {
            Some(sealed) if sealed.exp > now.unix_timestamp() => Ok(Some(sealed.state)),
            // Past its sealed expiry (the clear one was moved), moved from another key,
            // tampered with, or sealed under a key no longer configured.
            _ => {
                self.store
                    .remove(&key)
                    .await
                    .map_err(other(LoadError::Other))?;
                Ok(None)
            }
        }
    }

    /// Stores `state` under a fresh id expiring `ttl` from now and returns the id.
    async fn save(&self, state: State, ttl: &Duration) -> Result<CookieValue, SaveError> {
        let expires_at = self.expiry(ttl).map_err(SaveError::Other)?;
        self.insert_fresh(&state, expires_at)
            .await
            .map_err(|e| match e {
                Fresh::Serialization(e) => SaveError::Serialization(e),
                Fresh::Other(e) => SaveError::Other(e),
            })
    }

    /// Replaces the state behind `value` and moves its expiry to `ttl` from now, keeping the id
    /// while the record lives. If it has gone (expired while the request ran, or deleted by a
    /// parallel logout) the logout wins: the request's state is dropped and the client is handed
    /// an id with no record behind it, so its next request starts an empty session.
    /// (actix-session's Redis store saves the state under a new id instead, which brings a
    /// logged-out session back.)
    async fn update(
        &self,
        value: CookieValue,
        state: State,
        ttl: &Duration,
    ) -> Result<CookieValue, UpdateError> {
        let expires_at = self.expiry(ttl).map_err(UpdateError::Other)?;
        if let Some(id) = SessionId::parse(value.as_ref()) {
            let key = id.key();
            let now = self.now();
            if self
                .live(&key, now)
                .await
                .map_err(other(UpdateError::Other))?
                .is_some()
            {
                let record = self
                    .record(&key, &state, expires_at)
                    .map_err(|e| UpdateError::Serialization(e.into()))?;
                // `false`: deleted since it was read.
                if self
                    .store
                    .update(&record)
                    .await
                    .map_err(other(UpdateError::Other))?
                {
                    return Ok(value);
                }
            }
        }
        drop(state);
        cookie_value(&SessionId::generate()).map_err(UpdateError::Other)
    }

    /// Moves the expiry of a live record to `ttl` from now; nothing if it is missing, expired or
    /// does not open. A read then a write: see the crate docs for the race this leaves.
    async fn update_ttl(&self, value: &CookieValue, ttl: &Duration) -> Result<(), anyhow::Error> {
        let Some(id) = SessionId::parse(value.as_ref()) else {
            return Ok(());
        };
        let key = id.key();
        let now = self.now();
        let expires_at = self.expiry(ttl)?;
        let Some(stored) = self.live(&key, now).await? else {
            return Ok(());
        };
        match self.open(&stored) {
            Some(sealed) if sealed.exp > now.unix_timestamp() => {
                let record = self.record(&key, &sealed.state, expires_at)?;
                // `false`: deleted since it was read, and it stays deleted.
                self.store.update(&record).await?;
            }
            _ => {
                self.store.remove(&key).await?;
            }
        }
        Ok(())
    }

    /// Deletes the record behind `value`, if there is one.
    async fn delete(&self, value: &CookieValue) -> Result<(), anyhow::Error> {
        if let Some(id) = SessionId::parse(value.as_ref()) {
            self.store.remove(&id.key()).await?;
        }
        Ok(())
    }
}

/// The sealed content of a record, as written.
#[derive(Serialize)]
struct SealedRef<'a> {
    v: u8,
    /// Expiry, Unix seconds: `expires_at` in clear can be moved by whoever writes the store, this
    /// cannot.
    exp: i64,
    state: &'a State,
}

/// The sealed content of a record, as read.
#[derive(Deserialize)]
struct Sealed {
    v: u8,
    exp: i64,
    state: State,
}

/// Why [`PhazeSessionStore::insert_fresh`] failed, for `save` and `update` to sort into their
/// error types.
enum Fresh {
    Serialization(anyhow::Error),
    Other(anyhow::Error),
}

/// The owner a record of `key` is filed under.
fn owner(key: &SessionKey) -> String {
    format!("{OWNER_PREFIX}{}", key.to_hex())
}

/// Whether a record is one this store wrote: filed under its own owner, never rotated.
fn is_ours(stored: &StoredSession) -> bool {
    stored.successor.is_none() && stored.user_id == owner(&stored.key)
}

fn cookie_value(id: &SessionId) -> Result<CookieValue, anyhow::Error> {
    // 43 characters, far below actix-session's 4064-byte limit.
    CookieValue::try_from(id.expose().to_owned()).map_err(anyhow::Error::new)
}

/// Wraps a store error in one of actix-session's error variants.
fn other<E>(variant: fn(anyhow::Error) -> E) -> impl Fn(StoreError) -> E {
    move |e| variant(anyhow::Error::new(e))
}
