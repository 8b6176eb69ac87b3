//! A cache of accounts by id in front of the `accounts` table, kept in step with it by
//! PostgreSQL's `LISTEN`/`NOTIFY`: every authenticated page looks its account up by id, and a
//! query per page would cost more than the rest of the page.
//!
//! - A trigger on `accounts` (migration `account_changes`) sends the id of every updated or
//!   deleted row on the channel `phaze_accounts` when its transaction commits (`*` for a `TRUNCATE`).
//!   [`AccountWatcher`] listens on a connection of its own and drops the entry of each id it
//!   hears about; the process's own writes drop theirs at once, without waiting for the echo.
//! - The cache serves nothing unless the watcher is listening: until the first `LISTEN` has
//!   succeeded, and from the moment the connection fails (a notification may have been lost) until
//!   it is listening again, every lookup goes to the table and nothing is kept; each change of
//!   state empties the cache. The connection is checked with a `SELECT 1` after every idle second,
//!   so a silently dead connection stops the cache within a second plus the check's timeout.
//! - A lookup that raced a change is not kept: every drop bumps a generation, and a row read
//!   under an older generation is returned but not cached. An entry is also never served after
//!   [`MAX_AGE`], a bound for what no notification can cover (a row changed by hand with the
//!   trigger disabled).
//! - Only lookups by id are cached. Logins (by email) read the table, so a password change
//!   counts from its commit everywhere; sessions, not this cache, are what a revocation ends.

use diesel::IntoSql;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::StreamExt;
use phaze_auth::{AccountRecord, UserId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::connect::Connector;
use crate::{BoxError, PgError};

/// The channel the `accounts` trigger notifies.
pub(crate) const CHANNEL: &str = "phaze_accounts";
/// The longest an entry is served.
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// How long the listening connection may be silent before it is checked.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Wait between two attempts to listen again.
const RETRY: Duration = Duration::from_secs(1);

/// The cached accounts of one process.
pub(crate) struct AccountCache {
    state: Mutex<State>,
    capacity: usize,
}

struct State {
    /// Whether the watcher is listening: entries are served and kept only then.
    live: bool,
    /// Bumped by every drop, so a read that raced one is not kept.
    generation: u64,
    entries: HashMap<UserId, (AccountRecord, Instant)>,
}

/// A cache miss: read the table, then [`AccountCache::keep`] what it said under this ticket.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ticket(u64);

impl AccountCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                live: false,
                generation: 0,
                entries: HashMap::new(),
            }),
            capacity,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached account, or a ticket to read the table with.
    pub(crate) fn get(&self, id: &UserId) -> Result<AccountRecord, Ticket> {
        let state = self.state();
        match state.entries.get(id) {
            Some((account, at)) if state.live && at.elapsed() < MAX_AGE => Ok(account.clone()),
            _ => Err(Ticket(state.generation)),
        }
    }

    /// Keeps what the table said under `ticket`, unless something changed since it was issued.
    pub(crate) fn keep(&self, ticket: Ticket, account: &AccountRecord) {
        let mut state = self.state();
        if !state.live || state.generation != ticket.0 {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&account.id) {
            // Full: make room by dropping the expired entries, or else any one.
            state.entries.retain(|_, (_, at)| at.elapsed() < MAX_AGE);
            if state.entries.len() >= self.capacity {
                let Some(victim) = state.entries.keys().next().copied() else {
                    return;
                };
                state.entries.remove(&victim);
            }
        }
        state
            .entries
            .insert(account.id, (account.clone(), Instant::now()));
    }

    /// Drops `id` (it changed).
    pub(crate) fn forget(&self, id: &UserId) {
        let mut state = self.state();
        state.generation += 1;
        state.entries.remove(id);
    }

    /// Drops everything, and serves again only if `live`.
    fn reset(&self, live: bool) {
        let mut state = self.state();
        state.generation += 1;
        state.live = live;
        state.entries.clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.state().entries.len()
    }
}

/// What the watcher reports, for the application's log.
#[derive(Debug)]
pub enum WatchEvent {
    /// Listening: the cache serves from now on.
    Listening,
    /// The listening connection failed or could not be made: the cache is off until the next
    /// [`WatchEvent::Listening`].
    Lost(PgError),
}

/// Keeps the cache of one [`crate::PgAccounts`] in step with the table (see the module docs).
/// Without it running, that cache stays off.
pub struct AccountWatcher {
    connector: Arc<Connector>,
    cache: Arc<AccountCache>,
}

impl AccountWatcher {
    pub(crate) fn new(connector: Arc<Connector>, cache: Arc<AccountCache>) -> Self {
        Self { connector, cache }
    }

    /// Listens until the future is dropped, reconnecting a second after each failure, and
    /// reports each change of state to `report`. Spawn it on the runtime of the process.
    pub async fn run(self, mut report: impl FnMut(WatchEvent)) {
        loop {
            let lost = self.listen(&mut report).await;
            self.cache.reset(false);
            report(WatchEvent::Lost(PgError::Unavailable(lost)));
            tokio::time::sleep(RETRY).await;
        }
    }

    /// One listening connection, until it fails.
    async fn listen(&self, report: &mut impl FnMut(WatchEvent)) -> BoxError {
        let mut conn = match self.connector.connect().await {
            Ok(conn) => conn,
            Err(e) => return Box::new(e),
        };
        if let Err(e) = conn.batch_execute(&format!("LISTEN {CHANNEL}")).await {
            return Box::new(e);
        }
        // Anything kept before this point may have missed a notification.
        self.cache.reset(true);
        report(WatchEvent::Listening);
        loop {
            let next = {
                let mut stream = std::pin::pin!(conn.notifications_stream());
                tokio::time::timeout(HEARTBEAT, stream.next()).await
            };
            match next {
                Ok(Some(Ok(note))) => match note.payload.parse::<uuid::Uuid>() {
                    Ok(id) => self.cache.forget(&UserId::from(id)),
                    // `*` (a TRUNCATE), or anything else: drop everything.
                    Err(_) => self.cache.reset(true),
                },
                Ok(Some(Err(e))) => return Box::new(e),
                Ok(None) => return "the listening connection closed".into(),
                Err(_silent) => {
                    if let Err(e) = self.check(&mut conn).await {
                        return e;
                    }
                }
            }
        }
    }

    /// `SELECT 1` within the pool's health-check bound.
    async fn check(&self, conn: &mut AsyncPgConnection) -> Result<(), BoxError> {
        let ping =
            diesel::select(1.into_sql::<diesel::sql_types::Integer>()).get_result::<i32>(conn);
        match tokio::time::timeout(self.connector.timeouts.recycle, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Box::new(e)),
            Err(_) => Err("the listening connection did not answer".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phaze_auth::{EmailIndex, SealedEmail};
    use time::OffsetDateTime;

    fn account(n: u8) -> AccountRecord {
        AccountRecord {
            id: UserId::from(uuid::Uuid::from_bytes([n; 16])),
            email: SealedEmail {
                index: EmailIndex([n; 32]),
                sealed: vec![n; 40],
            },
            sealed_name: vec![n; 30],
            email_verified: false,
            password_hash: String::new(),
            is_admin: false,
            locked: false,
            created_at: OffsetDateTime::UNIX_EPOCH,
            password_changed_at: OffsetDateTime::UNIX_EPOCH,
            two_factor: None,
        }
    }

    fn fill(cache: &AccountCache, a: &AccountRecord) {
        let Err(ticket) = cache.get(&a.id) else {
            panic!("a hit before the fill")
        };
        cache.keep(ticket, a);
    }

    #[test]
    fn nothing_is_served_or_kept_until_the_watcher_listens() {
        let cache = AccountCache::new(10);
        let a = account(1);
        fill(&cache, &a);
        assert!(cache.get(&a.id).is_err());
        assert_eq!(cache.len(), 0);
        cache.reset(true);
        fill(&cache, &a);
        assert_eq!(cache.get(&a.id).ok(), Some(a.clone()));
        // The connection is lost: everything goes, and nothing is served or kept.
        cache.reset(false);
        assert!(cache.get(&a.id).is_err());
        fill(&cache, &a);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_read_that_raced_a_change_is_not_kept() {
        let cache = AccountCache::new(10);
        cache.reset(true);
        let a = account(1);
        let Err(ticket) = cache.get(&a.id) else {
            panic!("a hit on an empty cache")
        };
        // The row changes (here, another account's: any change counts) while the read is out.
        cache.forget(&account(2).id);
        cache.keep(ticket, &a);
        assert!(cache.get(&a.id).is_err());
        fill(&cache, &a);
        cache.forget(&a.id);
        assert!(cache.get(&a.id).is_err());
    }

    #[test]
    fn a_full_cache_stays_within_its_capacity() {
        let cache = AccountCache::new(3);
        cache.reset(true);
        for n in 0..10 {
            fill(&cache, &account(n));
            assert!(cache.len() <= 3);
        }
        // The newest is always kept.
        assert!(cache.get(&account(9).id).is_ok());
    }
}
