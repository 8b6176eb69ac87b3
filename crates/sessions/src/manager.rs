use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use time::{Duration, OffsetDateTime};

use crate::{
    Rotation, Sealer, SessionId, SessionKey, SessionStore, StoreError, StoredSession, UserId,
};

/// The limits a [`SessionManager`] enforces. `Default` is the contract's: 8 h absolute, 30 min idle,
/// rotation every 15 min with 10 s of grace, IP binding off.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    /// A session dies this long after login, however active it is.
    pub absolute: Duration,
    /// A session dies after this long without a request.
    pub idle: Duration,
    /// A session gets a new id once its current id is this old.
    pub rotate_after: Duration,
    /// How long a rotated-away id keeps working, for requests already in flight.
    pub grace: Duration,
    /// `last_seen` is written back at most this often, so a page view is not a store write. The idle
    /// timeout is therefore exact to within this interval.
    pub touch_interval: Duration,
    /// "Sudo mode": how long after its login a session may take sensitive actions without the
    /// password again ([`Session::recently_authenticated`]).
    pub reauth: Duration,
    /// Whether a session only works from the network it was created from.
    pub ip_binding: IpBinding,
}

impl Default for SessionPolicy {
    /// [`crate::SessionSettings`]' defaults: one set of numbers.
    fn default() -> Self {
        crate::SessionSettings::default().policy()
    }
}

/// Binding a session to the client's network. Prefixes rather than exact addresses, so that mobile
/// clients and IPv6 privacy addresses are not logged out constantly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpBinding {
    /// Sessions work from anywhere.
    Off,
    /// Sessions work only from the same IPv4 /`v4_prefix` or IPv6 /`v6_prefix` network.
    Network {
        /// Prefix length for IPv4 (default 24).
        v4_prefix: u8,
        /// Prefix length for IPv6 (default 64).
        v6_prefix: u8,
    },
}

impl IpBinding {
    fn allows(self, bound: Option<IpAddr>, now: Option<IpAddr>) -> bool {
        let IpBinding::Network {
            v4_prefix,
            v6_prefix,
        } = self
        else {
            return true;
        };
        match (
            bound.map(|ip| ip.to_canonical()),
            now.map(|ip| ip.to_canonical()),
        ) {
            (Some(IpAddr::V4(a)), Some(IpAddr::V4(b))) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(v4_prefix.min(32)))
                    .unwrap_or(0);
                u32::from(a) & mask == u32::from(b) & mask
            }
            (Some(IpAddr::V6(a)), Some(IpAddr::V6(b))) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(v6_prefix.min(128)))
                    .unwrap_or(0);
                u128::from(a) & mask == u128::from(b) & mask
            }
            (None, None) => true,
            _ => false,
        }
    }
}

/// Who is making the request, as far as the session cares.
#[derive(Clone, Debug, Default)]
pub struct ClientMeta {
    /// The client's address, as the portal's trusted-proxy rules determined it.
    pub ip: Option<IpAddr>,
    /// The `User-Agent` header, for the "your sessions" page; truncated to 256 characters.
    pub user_agent: String,
}

/// The sealed part of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionData {
    /// Owner: the account's id.
    pub user_id: UserId,
    /// Login time; the absolute lifetime counts from here, across rotations.
    #[serde(with = "time::serde::timestamp")]
    pub created_at: OffsetDateTime,
    /// Last request, to within [`SessionPolicy::touch_interval`].
    #[serde(with = "time::serde::timestamp")]
    pub last_seen: OffsetDateTime,
    /// When the current id was issued.
    #[serde(with = "time::serde::timestamp")]
    pub rotated_at: OffsetDateTime,
    /// Per-session secret the portal derives CSRF tokens from; new at every login.
    pub csrf_secret: [u8; 32],
    /// Client address at login.
    pub ip: Option<IpAddr>,
    /// Client user agent at login.
    pub user_agent: String,
}

/// A live session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Store key of the id the client holds now.
    pub key: SessionKey,
    /// Its contents.
    pub data: SessionData,
}

impl Session {
    /// Whether this session's login (a re-authentication is a login: it starts a new session)
    /// is less than `policy.reauth` old: "sudo mode" for sensitive actions such as making new
    /// recovery codes. Past it, the portal asks for the password again.
    pub fn recently_authenticated(&self, policy: &SessionPolicy, now: OffsetDateTime) -> bool {
        now - self.data.created_at < policy.reauth
    }
}

/// The result of [`SessionManager::load`].
#[derive(Debug)]
pub struct Loaded {
    /// The session, as of this request.
    pub session: Session,
    /// Set when the client's id is no longer the session's: this request rotated it, or the
    /// request carried an id that another one had just rotated away (within the grace period).
    /// Either way this is the session's one current id, and the portal must send it as the cookie.
    pub rotated_to: Option<SessionId>,
}

/// One row of "your sessions".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    /// Handle for revoking it (a hash, not the cookie value).
    pub key: SessionKey,
    /// Login time.
    pub created_at: OffsetDateTime,
    /// Last request.
    pub last_seen: OffsetDateTime,
    /// Address at login.
    pub ip: Option<IpAddr>,
    /// User agent at login.
    pub user_agent: String,
}

/// Errors of the session manager.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; callers must fail closed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

const USER_AGENT_MAX: usize = 256;

/// Creates, loads, rotates and revokes sessions over a [`SessionStore`].
#[derive(Clone)]
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    sealer: Sealer,
    policy: SessionPolicy,
    opened: Arc<Mutex<HashMap<SessionKey, Opened>>>,
}

/// A sealed blob and what it opened to. The same ciphertext under the same key always opens to
/// the same plaintext, so an unchanged record need not be decrypted and parsed on every request.
struct Opened {
    sealed: Vec<u8>,
    data: SessionData,
}

/// Opened sessions remembered before the memo starts over: a bound on memory.
const OPENED_CAPACITY: usize = 8192;

/// Records one load may look at: a retired id leads to its successor, a lost rotation race or a
/// failed touch to a fresh read. Two or three is the norm (the grace is seconds, rotation every
/// few minutes); the bound only stops a tampered store from sending a request round in circles.
const MAX_STEPS: usize = 8;

/// How [`SessionManager::rotate`] ended.
enum Rotated {
    Won(SessionId, Session),
    /// Another request rotated first: its retired record, to follow.
    Lost(StoredSession),
    Gone,
}

impl SessionManager {
    /// A manager over `store`, sealing with `sealer`, enforcing `policy`.
    pub fn new(store: Arc<dyn SessionStore>, sealer: Sealer, policy: SessionPolicy) -> Self {
        Self {
            store,
            sealer,
            policy,
            opened: Arc::default(),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    /// Starts a session for `user_id` with a fresh id and a fresh CSRF secret. Callers regenerate on
    /// login by destroying the request's old session (if any) and calling this.
    pub async fn create(
        &self,
        user_id: &UserId,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(SessionId, Session), Error> {
        let mut csrf_secret = [0u8; 32];
        OsRng.fill_bytes(&mut csrf_secret);
        let data = SessionData {
            user_id: *user_id,
            created_at: now,
            last_seen: now,
            rotated_at: now,
            csrf_secret,
            ip: meta.ip,
            user_agent: meta.user_agent.chars().take(USER_AGENT_MAX).collect(),
        };
        self.insert_fresh(data).await
    }

    /// Logs `user_id` in: the session the request presented, if any, is deleted server-side
    /// (with every id it has had), and a brand-new one with a fresh id and CSRF secret is
    /// created. Nothing the client held before login names the new session: no fixation, and no
    /// CSRF token from before login works after it.
    pub async fn start(
        &self,
        user_id: &UserId,
        replacing: Option<&SessionKey>,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(SessionId, Session), Error> {
        if let Some(old) = replacing {
            self.destroy(old).await?;
        }
        self.create(user_id, meta, now).await
    }

    /// After a change to what the account's sessions stand for (a new password, a new role):
    /// every session of `user_id` ends, on every device, the one making the change included,
    /// and that one is given a new session. Returns it and how many ended.
    pub async fn restart_for_user(
        &self,
        user_id: &UserId,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<(SessionId, Session, usize), Error> {
        let ended = self.revoke_all(user_id, None).await?;
        let (id, session) = self.create(user_id, meta, now).await?;
        Ok((id, session, ended))
    }

    async fn insert_fresh(&self, data: SessionData) -> Result<(SessionId, Session), Error> {
        // A collision of two 256-bit random ids does not happen; retrying once keeps the code
        // honest about the port's contract anyway.
        let mut attempts = 0;
        loop {
            let id = SessionId::generate();
            let session = Session {
                key: id.key(),
                data: data.clone(),
            };
            match self.store.insert(&self.to_stored(&session)?).await {
                Ok(()) => return Ok((id, session)),
                Err(StoreError::Duplicate) if attempts < 2 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Loads the session behind `id` and applies every rule: expiry (absolute, idle), IP binding,
    /// the idle touch, and rotation. A session that breaks a rule is deleted and `None` returned;
    /// a store failure is an `Err`, never `None`, so the caller fails closed rather than treating
    /// the visitor as logged out (or in).
    ///
    /// An id rotated away less than the grace period ago loads its successor, and
    /// [`Loaded::rotated_to`] tells the portal to hand the client that id: requests that were in
    /// flight, or raced the rotation, all end up on the one successor.
    pub async fn load(
        &self,
        id: &SessionId,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> Result<Option<Loaded>, Error> {
        let mut id = id.clone();
        let mut rotated_to = None;
        let Some(mut stored) = self.store.get(&id.key()).await? else {
            return Ok(None);
        };
        for _ in 0..MAX_STEPS {
            if stored.successor.is_some() {
                // A retired id lives only through its successor, so ending the successor ends it.
                // Past its grace it is dead; the purge deletes it, and deleting it here would
                // take the successor along.
                let Some(next) = self.successor_of(&id, &stored, now) else {
                    return Ok(None);
                };
                match self.store.get(&next.key()).await? {
                    Some(s) if s.user_id == stored.user_id => stored = s,
                    _ => return Ok(None),
                }
                rotated_to = Some(next.clone());
                id = next;
                continue;
            }
            let key = id.key();
            let Some(data) = self
                .open(&stored)
                .filter(|d| self.is_live(&stored, d, meta, now))
            else {
                self.store.remove(&key).await?;
                return Ok(None);
            };
            let session = Session { key, data };
            if now - session.data.rotated_at >= self.policy.rotate_after {
                match self.rotate(&id, &stored, session, now).await? {
                    Rotated::Won(new_id, new_session) => {
                        return Ok(Some(Loaded {
                            session: new_session,
                            rotated_to: Some(new_id),
                        }))
                    }
                    Rotated::Lost(retired) => {
                        stored = retired;
                        continue;
                    }
                    Rotated::Gone => return Ok(None),
                }
            }
            if now - session.data.last_seen >= self.policy.touch_interval {
                let mut touched = session;
                touched.data.last_seen = now;
                if self.store.update(&self.to_stored(&touched)?).await? {
                    return Ok(Some(Loaded {
                        session: touched,
                        rotated_to,
                    }));
                }
                // Revoked, or rotated by a parallel request, since it was read: read it again.
                let Some(again) = self.store.get(&key).await? else {
                    return Ok(None);
                };
                stored = again;
                continue;
            }
            return Ok(Some(Loaded {
                session,
                rotated_to,
            }));
        }
        Ok(None)
    }

    /// The id a retired record leads to, if its grace has not run out and its sealed salt opens
    /// and derives exactly the successor the record names.
    fn successor_of(
        &self,
        id: &SessionId,
        retired: &StoredSession,
        now: OffsetDateTime,
    ) -> Option<SessionId> {
        let named = retired.successor?;
        if retired.expires_at <= now {
            return None;
        }
        let salt: [u8; 32] = self
            .sealer
            .open(&retired.key, &retired.sealed)
            .ok()?
            .try_into()
            .ok()?;
        let next = id.successor(&salt);
        (next.key() == named).then_some(next)
    }

    fn is_live(
        &self,
        stored: &StoredSession,
        data: &SessionData,
        meta: &ClientMeta,
        now: OffsetDateTime,
    ) -> bool {
        stored.expires_at > now
            && data.user_id.to_string() == stored.user_id
            && data.created_at + self.policy.absolute > now
            && data.last_seen + self.policy.idle > now
            && self.policy.ip_binding.allows(data.ip, meta.ip)
    }

    /// Gives the session a new id through the store's compare-and-swap
    /// ([`SessionStore::rotate`]): the old record is retired with a pointer to the successor's key,
    /// a grace deadline and, sealed, the salt the successor's id is derived from, so a request
    /// that loses the race derives the same id from the one it carries.
    async fn rotate(
        &self,
        id: &SessionId,
        old: &StoredSession,
        session: Session,
        now: OffsetDateTime,
    ) -> Result<Rotated, Error> {
        let mut data = session.data;
        data.rotated_at = now;
        data.last_seen = now;
        // A collision of two 256-bit ids does not happen; a new salt on `Duplicate` keeps the code
        // honest about the port's contract anyway.
        let mut attempts = 0;
        loop {
            let mut salt = [0u8; 32];
            OsRng.fill_bytes(&mut salt);
            let new_id = id.successor(&salt);
            let successor = Session {
                key: new_id.key(),
                data: data.clone(),
            };
            let retired = StoredSession {
                key: old.key,
                user_id: old.user_id.clone(),
                expires_at: old.expires_at.min(now + self.policy.grace),
                successor: Some(successor.key),
                sealed: self.sealer.seal(&old.key, &salt),
            };
            match self
                .store
                .rotate(&retired, &self.to_stored(&successor)?)
                .await
            {
                Ok(Rotation::Won) => return Ok(Rotated::Won(new_id, successor)),
                Ok(Rotation::Lost(current)) => return Ok(Rotated::Lost(current)),
                Ok(Rotation::Gone) => return Ok(Rotated::Gone),
                Err(StoreError::Duplicate) if attempts < 2 => attempts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Deletes the session behind `key` (logout), under every id it has had since: the store
    /// follows rotations, so the id this one replaced dies with it (it lives only through its
    /// successor) and an id that replaced this one is deleted too. Unknown keys are fine.
    pub async fn destroy(&self, key: &SessionKey) -> Result<(), Error> {
        self.memo().remove(key);
        self.store.remove(key).await?;
        Ok(())
    }

    /// The user's live sessions, most recently active first.
    pub async fn list(
        &self,
        user_id: &UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionInfo>, Error> {
        let mut out: Vec<SessionInfo> = self
            .store
            .list_user(&user_id.to_string())
            .await?
            .into_iter()
            .filter(|s| s.successor.is_none())
            .filter_map(|s| {
                let data = self.open(&s)?;
                let live = s.expires_at > now
                    && data.created_at + self.policy.absolute > now
                    && data.last_seen + self.policy.idle > now;
                live.then_some(SessionInfo {
                    key: s.key,
                    created_at: data.created_at,
                    last_seen: data.last_seen,
                    ip: data.ip,
                    user_agent: data.user_agent,
                })
            })
            .collect();
        out.sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(a.key.cmp(&b.key)));
        Ok(out)
    }

    /// Revokes one session, only if it belongs to `user_id`; `false` if there was none such. A
    /// handle that has rotated away since the list was shown still ends the session it became.
    pub async fn revoke(&self, user_id: &UserId, key: &SessionKey) -> Result<bool, Error> {
        match self.store.get(key).await? {
            Some(s) if s.user_id == user_id.to_string() => Ok(self.store.remove(key).await?),
            _ => Ok(false),
        }
    }

    /// Revokes every session of `user_id` except `keep` (log out everywhere else, or everywhere).
    pub async fn revoke_all(
        &self,
        user_id: &UserId,
        keep: Option<&SessionKey>,
    ) -> Result<usize, Error> {
        Ok(self.store.remove_user(&user_id.to_string(), keep).await?)
    }

    /// Deletes expired records; the portal calls this periodically.
    pub async fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, Error> {
        Ok(self.store.purge_expired(now).await?)
    }

    fn open(&self, stored: &StoredSession) -> Option<SessionData> {
        if let Some(hit) = self
            .memo()
            .get(&stored.key)
            .filter(|o| o.sealed == stored.sealed)
        {
            return Some(hit.data.clone());
        }
        let plain = self.sealer.open(&stored.key, &stored.sealed).ok()?;
        let data: SessionData = serde_json::from_slice(&plain).ok()?;
        let mut memo = self.memo();
        if memo.len() >= OPENED_CAPACITY {
            memo.clear();
        }
        memo.insert(
            stored.key,
            Opened {
                sealed: stored.sealed.clone(),
                data: data.clone(),
            },
        );
        Some(data)
    }

    fn memo(&self) -> MutexGuard<'_, HashMap<SessionKey, Opened>> {
        self.opened.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn to_stored(&self, session: &Session) -> Result<StoredSession, Error> {
        let data = &session.data;
        let plain =
            serde_json::to_vec(data).map_err(|e| Error::Store(StoreError::Backend(Box::new(e))))?;
        Ok(StoredSession {
            key: session.key,
            user_id: data.user_id.to_string(),
            expires_at: (data.created_at + self.policy.absolute)
                .min(data.last_seen + self.policy.idle),
            successor: None,
            sealed: self.sealer.seal(&session.key, &plain),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_binding_compares_networks() {
        let b = IpBinding::Network {
            v4_prefix: 24,
            v6_prefix: 64,
        };
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(b.allows(ip("192.0.2.1"), ip("192.0.2.200")));
        assert!(!b.allows(ip("192.0.2.1"), ip("192.0.3.1")));
        assert!(b.allows(ip("2001:db8:1:2::1"), ip("2001:db8:1:2:ffff::9")));
        assert!(!b.allows(ip("2001:db8:1:2::1"), ip("2001:db8:1:3::1")));
        assert!(b.allows(ip("192.0.2.1"), ip("::ffff:192.0.2.9")));
        assert!(!b.allows(ip("192.0.2.1"), ip("2001:db8::1")));
        assert!(!b.allows(ip("192.0.2.1"), None));
        assert!(IpBinding::Off.allows(ip("192.0.2.1"), ip("2001:db8::1")));
        let exact = IpBinding::Network {
            v4_prefix: 32,
            v6_prefix: 128,
        };
        assert!(!exact.allows(ip("192.0.2.1"), ip("192.0.2.2")));
        let any = IpBinding::Network {
            v4_prefix: 0,
            v6_prefix: 0,
        };
        assert!(any.allows(ip("192.0.2.1"), ip("198.51.100.2")));
    }
}
