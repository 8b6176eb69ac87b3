//! SessionManager rules over the memory store, with time as a parameter (no sleeping).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use phaze_sessions::{
    ClientMeta, IpBinding, Sealer, SealingKey, SessionId, SessionManager, SessionPolicy,
    SessionStore, UserId,
};
use phaze_store_memory::MemorySessions;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap()
}

/// A fixed account id per name, so tests read as names.
fn user(name: &str) -> UserId {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    UserId::from(uuid::Uuid::from_bytes(bytes))
}

fn meta(ip: &str) -> ClientMeta {
    ClientMeta {
        ip: Some(ip.parse().unwrap()),
        user_agent: "Mozilla/5.0 test".into(),
    }
}

fn sealer(keys: &[u8]) -> Sealer {
    Sealer::new(keys.iter().map(|k| SealingKey::new(&[*k; 32])).collect()).unwrap()
}

fn manager(policy: SessionPolicy) -> (SessionManager, Arc<MemorySessions>) {
    let store = Arc::new(MemorySessions::default());
    (
        SessionManager::new(store.clone(), sealer(&[1]), policy),
        store,
    )
}

#[tokio::test]
async fn ids_are_long_random_and_stored_only_as_hashes() {
    let (m, store) = manager(SessionPolicy::default());
    let (id, s) = m
        .create(&user("user-1"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    assert_eq!(id.expose().len(), 43, "256 bits, base64url");
    assert_ne!(
        id,
        m.create(&user("user-1"), &meta("192.0.2.1"), t0())
            .await
            .unwrap()
            .0
    );
    assert_eq!(s.key, id.key());
    let stored = store.get(&id.key()).await.unwrap().unwrap();
    let dump = format!("{stored:?}{}", String::from_utf8_lossy(&stored.sealed));
    assert!(
        !dump.contains(id.expose()),
        "the id itself is nowhere in the store"
    );
    assert!(!dump.contains("Mozilla"), "session data is sealed");
    assert!(!dump.contains("192.0.2.1"), "session data is sealed");
    assert_eq!(format!("{id:?}"), "SessionId(<redacted>)");
    // A store key is not a cookie: presenting it as one finds nothing.
    assert!(SessionId::parse(&stored.key.to_hex()).is_none());
}

#[tokio::test]
async fn malformed_cookie_values_are_refused_before_the_store() {
    for bad in [
        "",
        "short",
        &"A".repeat(44),
        &"!".repeat(43),
        "../../../../etc/passwd",
    ] {
        assert!(SessionId::parse(bad).is_none(), "{bad}");
    }
    assert!(SessionId::parse(SessionId::generate().expose()).is_some());
}

#[tokio::test]
async fn idle_timeout_and_absolute_lifetime() {
    let (m, store) = manager(SessionPolicy::default());
    let (id, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let at = |mins: i64| t0() + Duration::minutes(mins);
    // The request at 29 min moved the idle deadline to 59 (and rotated the id: follow it).
    let loaded = m
        .load(&id, &meta("192.0.2.1"), at(29))
        .await
        .unwrap()
        .unwrap();
    let id = loaded.rotated_to.unwrap_or(id);
    let loaded = m
        .load(&id, &meta("192.0.2.1"), at(58))
        .await
        .unwrap()
        .unwrap();
    let id = loaded.rotated_to.unwrap_or(id);
    assert!(
        m.load(&id, &meta("192.0.2.1"), at(58 + 31))
            .await
            .unwrap()
            .is_none(),
        "idle"
    );
    assert!(
        store.get(&id.key()).await.unwrap().is_none(),
        "deleted, not just refused"
    );

    let (mut id, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let mut now = t0();
    while now < t0() + Duration::hours(8) - Duration::minutes(20) {
        now += Duration::minutes(20);
        let loaded = m
            .load(&id, &meta("192.0.2.1"), now)
            .await
            .unwrap()
            .expect("active session lives");
        id = loaded.rotated_to.unwrap_or(id);
    }
    let after = t0() + Duration::hours(8) + Duration::seconds(1);
    assert!(
        m.load(&id, &meta("192.0.2.1"), after)
            .await
            .unwrap()
            .is_none(),
        "absolute"
    );
}

#[tokio::test]
async fn rotation_keeps_the_session_and_gives_the_old_id_a_short_grace() {
    let (m, _) = manager(SessionPolicy::default());
    let (old, created) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let now = t0() + Duration::minutes(15);
    let loaded = m
        .load(&old, &meta("192.0.2.1"), now)
        .await
        .unwrap()
        .unwrap();
    let new = loaded.rotated_to.expect("rotated at 15 min");
    assert_ne!(new, old);
    assert_eq!(
        loaded.session.data.created_at, created.data.created_at,
        "absolute clock kept"
    );
    assert_eq!(loaded.session.data.csrf_secret, created.data.csrf_secret);
    // In flight: the old id still loads the session, without rotating again: it is told the new
    // id, so the client converges on the one successor.
    let grace = m
        .load(&old, &meta("192.0.2.1"), now + Duration::seconds(9))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grace.rotated_to.as_ref(), Some(&new));
    assert_eq!(grace.session.key, new.key());
    assert!(m
        .load(&old, &meta("192.0.2.1"), now + Duration::seconds(10))
        .await
        .unwrap()
        .is_none());
    assert!(m
        .load(&new, &meta("192.0.2.1"), now + Duration::seconds(10))
        .await
        .unwrap()
        .is_some());
    // The rotated-away record is not listed as a session of its own.
    assert_eq!(m.list(&user("u"), now).await.unwrap().len(), 1);
}

#[tokio::test]
async fn revoked_sessions_stay_dead() {
    let (m, _) = manager(SessionPolicy::default());
    let (a, sa) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let (b, _) = m
        .create(&user("u"), &meta("192.0.2.2"), t0())
        .await
        .unwrap();
    let (c, _) = m
        .create(&user("other"), &meta("192.0.2.3"), t0())
        .await
        .unwrap();
    assert!(
        !m.revoke(&user("other"), &a.key()).await.unwrap(),
        "only the owner revokes"
    );
    assert!(m
        .load(&a, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_some());
    assert_eq!(m.revoke_all(&user("u"), Some(&sa.key)).await.unwrap(), 1);
    assert!(m
        .load(&b, &meta("192.0.2.2"), t0())
        .await
        .unwrap()
        .is_none());
    assert!(m
        .load(&a, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_some());
    assert!(m.revoke(&user("u"), &a.key()).await.unwrap());
    assert!(m
        .load(&a, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_none());
    assert!(
        m.load(&c, &meta("192.0.2.3"), t0())
            .await
            .unwrap()
            .is_some(),
        "others untouched"
    );
    // A late touch or rotation of a revoked session does not bring it back.
    let (d, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    m.revoke_all(&user("u"), None).await.unwrap();
    let later = t0() + Duration::minutes(20);
    assert!(m
        .load(&d, &meta("192.0.2.1"), later)
        .await
        .unwrap()
        .is_none());
    assert!(m.list(&user("u"), later).await.unwrap().is_empty());
}

#[tokio::test]
async fn listing_shows_metadata_newest_first() {
    let (m, _) = manager(SessionPolicy::default());
    m.create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    m.create(
        &user("u"),
        &meta("2001:db8::1"),
        t0() + Duration::minutes(1),
    )
    .await
    .unwrap();
    let list = m
        .list(&user("u"), t0() + Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].ip, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(list[1].user_agent, "Mozilla/5.0 test");
    assert!(
        m.list(&user("u"), t0() + Duration::hours(9))
            .await
            .unwrap()
            .is_empty(),
        "expired hidden"
    );
}

#[tokio::test]
async fn ip_binding_refuses_other_networks() {
    let policy = SessionPolicy {
        ip_binding: IpBinding::Network {
            v4_prefix: 24,
            v6_prefix: 64,
        },
        ..SessionPolicy::default()
    };
    let (m, _) = manager(policy);
    let (id, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    assert!(
        m.load(&id, &meta("192.0.2.99"), t0())
            .await
            .unwrap()
            .is_some(),
        "same /24"
    );
    assert!(
        m.load(&id, &meta("198.51.100.1"), t0())
            .await
            .unwrap()
            .is_none(),
        "other network"
    );
    assert!(
        m.load(&id, &meta("192.0.2.1"), t0())
            .await
            .unwrap()
            .is_none(),
        "and it is gone"
    );
    let (id6, _) = m
        .create(&user("u"), &meta("2001:db8:1:2::1"), t0())
        .await
        .unwrap();
    assert!(
        m.load(&id6, &meta("2001:db8:1:2:abcd::7"), t0())
            .await
            .unwrap()
            .is_some(),
        "same /64"
    );
    assert!(m
        .load(&id6, &meta("2001:db8:1:3::1"), t0())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn tampered_or_moved_records_do_not_open() {
    let (m, store) = manager(SessionPolicy::default());
    let (a, _) = m
        .create(&user("alice"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let (b, _) = m
        .create(&user("mallory"), &meta("192.0.2.2"), t0())
        .await
        .unwrap();
    // Someone with write access to the store grafts alice's sealed data onto mallory's key.
    let alice = store.get(&a.key()).await.unwrap().unwrap();
    let mut grafted = store.get(&b.key()).await.unwrap().unwrap();
    grafted.sealed = alice.sealed.clone();
    grafted.user_id = user("alice").to_string();
    store.remove(&b.key()).await.unwrap();
    store.insert(&grafted).await.unwrap();
    assert!(m
        .load(&b, &meta("192.0.2.2"), t0())
        .await
        .unwrap()
        .is_none());
    // A flipped bit.
    let mut flipped = store.get(&a.key()).await.unwrap().unwrap();
    let last = flipped.sealed.len() - 1;
    flipped.sealed[last] ^= 1;
    store.update(&flipped).await.unwrap();
    assert!(m
        .load(&a, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn sealing_keys_rotate_without_logging_anyone_out() {
    let store = Arc::new(MemorySessions::default());
    let old = SessionManager::new(store.clone(), sealer(&[1]), SessionPolicy::default());
    let (id, _) = old
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    // New key first, old key kept: existing sessions open, new ones seal under the new key.
    let both = SessionManager::new(store.clone(), sealer(&[2, 1]), SessionPolicy::default());
    assert!(both
        .load(&id, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_some());
    let (fresh, _) = both
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    // Old key dropped: sessions sealed under it are gone, the new ones live.
    let new_only = SessionManager::new(store, sealer(&[2]), SessionPolicy::default());
    assert!(new_only
        .load(&fresh, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_some());
    assert!(new_only
        .load(&id, &meta("192.0.2.1"), t0())
        .await
        .unwrap()
        .is_none());
    assert!(Sealer::new(Vec::new()).is_err());
}

#[tokio::test]
async fn purge_removes_expired_records() {
    let (m, store) = manager(SessionPolicy::default());
    let (id, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    assert_eq!(
        m.purge_expired(t0() + Duration::minutes(29)).await.unwrap(),
        0
    );
    assert_eq!(
        m.purge_expired(t0() + Duration::minutes(31)).await.unwrap(),
        1
    );
    assert!(store.get(&id.key()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_requests_at_rotation_time_share_one_successor() {
    let (m, store) = manager(SessionPolicy::default());
    let (old, _) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    let now = t0() + Duration::minutes(15);
    // A page and its assets, sent with one cookie just as the id falls due for rotation.
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let (m, old) = (m.clone(), old.clone());
            tokio::spawn(async move { m.load(&old, &meta("192.0.2.1"), now).await })
        })
        .collect();
    let mut successors = Vec::new();
    for request in requests {
        let loaded = request.await.unwrap().unwrap().expect("the session lives");
        let new = loaded.rotated_to.expect("every request is told the new id");
        assert_eq!(loaded.session.key, new.key());
        successors.push(new);
    }
    assert!(
        successors.iter().all(|s| *s == successors[0]),
        "one successor, not one per request"
    );
    assert_ne!(successors[0], old);
    assert_eq!(
        store.list_user(&user("u").to_string()).await.unwrap().len(),
        2,
        "the retired record and its one successor"
    );
    assert_eq!(m.list(&user("u"), now).await.unwrap().len(), 1);
}

#[tokio::test]
async fn logout_ends_the_rotated_away_id_and_its_successor_at_once() {
    let (m, _) = manager(SessionPolicy::default());
    let ip = meta("192.0.2.1");
    let now = t0() + Duration::minutes(15);
    let soon = now + Duration::seconds(1);
    let rotated = |old: SessionId| {
        let m = m.clone();
        async move {
            let new = m
                .load(&old, &meta("192.0.2.1"), now)
                .await
                .unwrap()
                .unwrap();
            (old, new.rotated_to.expect("rotated at 15 min"))
        }
    };

    // Logout with the new id ends the old one too, though its grace has not run out.
    let (old, new) = rotated(m.create(&user("u"), &ip, t0()).await.unwrap().0).await;
    m.destroy(&new.key()).await.unwrap();
    assert!(m.load(&old, &ip, soon).await.unwrap().is_none(), "old id");
    assert!(m.load(&new, &ip, soon).await.unwrap().is_none(), "new id");

    // Logout from a request that still carried the old id ends the new one too: the portal
    // destroys the session the request loaded.
    let (old, new) = rotated(m.create(&user("u"), &ip, t0()).await.unwrap().0).await;
    let in_flight = m.load(&old, &ip, soon).await.unwrap().unwrap();
    m.destroy(&in_flight.session.key).await.unwrap();
    assert!(m.load(&new, &ip, soon).await.unwrap().is_none(), "new id");
    assert!(m.load(&old, &ip, soon).await.unwrap().is_none(), "old id");

    // Revoking the handle the sessions page showed before the rotation ends the session it
    // became.
    let (old, new) = rotated(m.create(&user("u"), &ip, t0()).await.unwrap().0).await;
    assert!(m.revoke(&user("u"), &old.key()).await.unwrap());
    assert!(m.load(&new, &ip, soon).await.unwrap().is_none(), "new id");
    assert!(m.load(&old, &ip, soon).await.unwrap().is_none(), "old id");
    assert!(m.list(&user("u"), soon).await.unwrap().is_empty());
}

#[tokio::test]
async fn login_replaces_the_presented_session_with_a_new_id_and_csrf_secret() {
    let (m, _) = manager(SessionPolicy::default());
    let ip = meta("192.0.2.1");
    // A session the visitor held before logging in (another account's, or one an attacker
    // planted): login ends it and shares nothing with the new one.
    let (before, old) = m.create(&user("mallory"), &ip, t0()).await.unwrap();
    let (after, new) = m
        .start(&user("ada"), Some(&old.key), &ip, t0())
        .await
        .unwrap();
    assert_ne!(after, before);
    assert_ne!(new.data.csrf_secret, old.data.csrf_secret);
    assert_eq!(new.data.user_id, user("ada"));
    assert!(m.load(&before, &ip, t0()).await.unwrap().is_none());
    assert!(m.load(&after, &ip, t0()).await.unwrap().is_some());
    // Without one, a login simply starts a session.
    let (other, _) = m.start(&user("ada"), None, &ip, t0()).await.unwrap();
    assert_eq!(m.list(&user("ada"), t0()).await.unwrap().len(), 2);
    assert_ne!(other, after);
}

#[tokio::test]
async fn a_restart_ends_every_session_of_the_user_and_gives_this_one_a_new_id() {
    let (m, _) = manager(SessionPolicy::default());
    let ip = meta("192.0.2.1");
    let (mine, _) = m.create(&user("ada"), &ip, t0()).await.unwrap();
    let (laptop, _) = m
        .create(&user("ada"), &meta("198.51.100.7"), t0())
        .await
        .unwrap();
    let (bobs, _) = m.create(&user("bob"), &ip, t0()).await.unwrap();
    let (renewed, session, ended) = m.restart_for_user(&user("ada"), &ip, t0()).await.unwrap();
    assert_eq!(ended, 2);
    assert_eq!(session.data.user_id, user("ada"));
    for (what, id) in [("this id", &mine), ("the laptop", &laptop)] {
        assert!(m.load(id, &ip, t0()).await.unwrap().is_none(), "{what}");
    }
    assert!(m.load(&renewed, &ip, t0()).await.unwrap().is_some());
    assert!(
        m.load(&bobs, &ip, t0()).await.unwrap().is_some(),
        "other users keep theirs"
    );
    assert_eq!(m.list(&user("ada"), t0()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn sudo_mode_lasts_the_reauth_window_from_login_and_a_new_login_renews_it() {
    let (m, _) = manager(SessionPolicy::default());
    let policy = m.policy().clone();
    assert_eq!(policy.reauth, Duration::minutes(10));
    let (id, session) = m
        .create(&user("u"), &meta("192.0.2.1"), t0())
        .await
        .unwrap();
    assert!(session.recently_authenticated(&policy, t0() + Duration::minutes(9)));
    // Activity, touches and rotations do not extend it: only a login does.
    let later = t0() + Duration::minutes(16);
    let loaded = m
        .load(&id, &meta("192.0.2.1"), later)
        .await
        .unwrap()
        .unwrap();
    assert!(loaded.rotated_to.is_some(), "rotated");
    assert!(!loaded.session.recently_authenticated(&policy, later));
    let (_, again) = m
        .start(
            &user("u"),
            Some(&loaded.session.key),
            &meta("192.0.2.1"),
            later,
        )
        .await
        .unwrap();
    assert!(again.recently_authenticated(&policy, later + Duration::minutes(9)));
    assert!(!again.recently_authenticated(&policy, later + Duration::minutes(10)));
}
