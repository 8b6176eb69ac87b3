//! The session layout in Redis, its TTLs, and the exactness of `purge_expired`.

use phaze_sessions::{SessionKey, SessionStore, StoredSession};
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::support::{keys, raw, server_time, sessions};

macro_rules! store {
    () => {
        sessions().await
    };
}

fn key_n(n: u16) -> SessionKey {
    let mut k = [0x11u8; 32];
    k[..2].copy_from_slice(&n.to_be_bytes());
    SessionKey::from(k)
}

async fn ttl(key: &str) -> i64 {
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut raw().await)
        .await
        .unwrap()
}

pub(crate) async fn layout_is_one_hash_one_set_one_index() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let s = record(1, "alice@example.com");
    store.insert(&s).await.unwrap();
    let user = hex::encode(Sha256::digest(b"alice@example.com"));
    assert_eq!(
        keys(p).await,
        vec![
            format!("{p}session-expiry"),
            format!("{p}session:{}", s.key.to_hex()),
            format!("{p}user-sessions:{user}"),
        ]
    );
    let mut conn = raw().await;
    let fields: Vec<String> = redis::cmd("HKEYS")
        .arg(format!("{p}session:{}", s.key.to_hex()))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, ["data", "exp", "sup", "uh", "user"]);
    let index: Vec<String> = redis::cmd("ZRANGE")
        .arg(format!("{p}session-expiry"))
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(index.len(), 2);
    assert_eq!(index[1], "0", "a lexicographic index: every score 0");
    let (exp, hex) = index[0].split_once(':').unwrap();
    assert_eq!(exp.len(), 39);
    assert_eq!(hex, s.key.to_hex());
}

pub(crate) async fn records_outlive_a_past_expiry_by_the_slack() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    // t0 + 1 h is long past on the server's clock: the TTL is the slack alone.
    let s = record(1, "alice");
    store.insert(&s).await.unwrap();
    let t = ttl(&format!("{p}session:{}", s.key.to_hex())).await;
    assert!((3590..=3600).contains(&t), "{t}");
    // Two hours ahead of the server: the TTL covers them, then the slack.
    let mut future = record(2, "alice");
    future.expires_at = OffsetDateTime::from_unix_timestamp(server_time().await + 7200).unwrap();
    store.insert(&future).await.unwrap();
    let t = ttl(&format!("{p}session:{}", future.key.to_hex())).await;
    assert!((10_790..=10_800).contains(&t), "{t}");
    let user = hex::encode(Sha256::digest(b"alice"));
    let set_ttl = ttl(&format!("{p}user-sessions:{user}")).await;
    assert!(
        (10_790..=10_800).contains(&set_ttl),
        "the set lives as long as its longest record: {set_ttl}"
    );
    // An update recomputes the record's TTL from its new expiry.
    let mut shorter = future.clone();
    shorter.expires_at = t0();
    assert!(store.update(&shorter).await.unwrap());
    let t = ttl(&format!("{p}session:{}", future.key.to_hex())).await;
    assert!((3590..=3600).contains(&t), "{t}");
}

pub(crate) async fn purge_is_exact_to_the_nanosecond() {
    let (store, _cleanup) = store!();
    for k in 0..5u16 {
        let mut s = record(1, "alice");
        s.key = key_n(k);
        s.expires_at = t0() + Duration::nanoseconds(i64::from(k));
        store.insert(&s).await.unwrap();
    }
    assert_eq!(
        store
            .purge_expired(t0() - Duration::nanoseconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_expired(t0() + Duration::nanoseconds(2))
            .await
            .unwrap(),
        3
    );
    let left: Vec<SessionKey> = store
        .list_user("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, vec![key_n(3), key_n(4)]);
    assert_eq!(
        store
            .purge_expired(t0() + Duration::nanoseconds(2))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.purge_expired(t0() + Duration::days(1)).await.unwrap(),
        2
    );
}

pub(crate) async fn purge_works_through_many_batches() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix().to_owned();
    let n = 1234u16;
    let inserts = (0..n).map(|k| {
        let store = store.clone();
        async move {
            let mut s = record(0, if k % 2 == 0 { "alice" } else { "bob" });
            s.key = key_n(k);
            s.expires_at = t0() + Duration::seconds(i64::from(k % 7));
            store.insert(&s).await.unwrap();
        }
    });
    futures_util::future::join_all(inserts).await;
    let mut fresh = record(0, "carol");
    fresh.key = key_n(9999);
    fresh.expires_at = t0() + Duration::hours(1);
    store.insert(&fresh).await.unwrap();
    assert_eq!(
        store
            .purge_expired(t0() + Duration::minutes(1))
            .await
            .unwrap(),
        usize::from(n)
    );
    assert_eq!(store.list_user("alice").await.unwrap(), vec![]);
    assert_eq!(store.list_user("carol").await.unwrap(), vec![fresh.clone()]);
    let carol = hex::encode(Sha256::digest(b"carol"));
    assert_eq!(
        keys(&p).await,
        vec![
            format!("{p}session-expiry"),
            format!("{p}session:{}", fresh.key.to_hex()),
            format!("{p}user-sessions:{carol}"),
        ],
        "the purged users' sets went with their records"
    );
}

pub(crate) async fn vanished_records_leave_no_trace_in_lists_or_purges() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let gone = record(1, "alice");
    let kept = record(2, "alice");
    store.insert(&gone).await.unwrap();
    store.insert(&kept).await.unwrap();
    // What a TTL does: the record goes, its index entries stay.
    let mut conn = raw().await;
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}session:{}", gone.key.to_hex()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.list_user("alice").await.unwrap(), vec![kept.clone()]);
    let user = hex::encode(Sha256::digest(b"alice"));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{p}user-sessions:{user}"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        members,
        vec![kept.key.to_hex()],
        "list_user dropped the stale member"
    );
    assert_eq!(
        store.purge_expired(t0() + Duration::days(1)).await.unwrap(),
        1,
        "only the live one counts"
    );
    let index: i64 = redis::cmd("ZCARD")
        .arg(format!("{p}session-expiry"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(index, 0);
}

pub(crate) async fn a_stale_index_entry_never_purges_a_recreated_record() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let mut s = record(1, "alice");
    s.expires_at = t0();
    store.insert(&s).await.unwrap();
    let _: () = redis::cmd("DEL")
        .arg(format!("{p}session:{}", s.key.to_hex()))
        .query_async(&mut raw().await)
        .await
        .unwrap();
    // The same key again, now expiring later: the old index entry is stale.
    s.expires_at = t0() + Duration::hours(1);
    store.insert(&s).await.unwrap();
    assert_eq!(
        store
            .purge_expired(t0() + Duration::seconds(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s.clone()));
    assert_eq!(
        store
            .purge_expired(t0() + Duration::hours(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.get(&s.key).await.unwrap(), None);
}

pub(crate) async fn update_moves_the_expiry_and_checks_the_owner() {
    let (store, _cleanup) = store!();
    let s = record(1, "alice");
    store.insert(&s).await.unwrap();
    let mut stolen = s.clone();
    stolen.user_id = "mallory".to_owned();
    stolen.sealed = vec![0; 4];
    assert!(
        !store.update(&stolen).await.unwrap(),
        "another user's record is not updated"
    );
    assert_eq!(store.get(&s.key).await.unwrap(), Some(s.clone()));
    assert!(store.list_user("mallory").await.unwrap().is_empty());
    let mut sooner = s.clone();
    sooner.expires_at = t0() + Duration::seconds(10);
    assert!(store.update(&sooner).await.unwrap());
    assert_eq!(
        store
            .purge_expired(t0() + Duration::seconds(10))
            .await
            .unwrap(),
        1,
        "purged at its new expiry"
    );
    assert!(store.list_user("alice").await.unwrap().is_empty());
}

pub(crate) async fn odd_values_round_trip() {
    let (store, _cleanup) = store!();
    let expiries = [
        OffsetDateTime::UNIX_EPOCH - Duration::nanoseconds(1),
        t0() + Duration::nanoseconds(123_456_789),
        OffsetDateTime::new_utc(time::Date::MAX, time::Time::MAX),
        OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT),
    ];
    for (n, expires_at) in expiries.into_iter().enumerate() {
        let s = StoredSession {
            key: key_n(n as u16),
            user_id: format!("ünïcødé user {n} *?[]\\ \0 ../"),
            expires_at,
            successor: (n % 2 == 1).then(|| key_n(100 + n as u16)),
            sealed: (0..=255u8).collect(),
        };
        store.insert(&s).await.unwrap();
        assert_eq!(store.get(&s.key).await.unwrap(), Some(s.clone()));
        assert_eq!(store.list_user(&s.user_id).await.unwrap(), vec![s.clone()]);
    }
    let empty = StoredSession {
        key: key_n(99),
        user_id: String::new(),
        expires_at: t0(),
        successor: None,
        sealed: vec![],
    };
    store.insert(&empty).await.unwrap();
    assert_eq!(store.get(&empty.key).await.unwrap(), Some(empty));
}

pub(crate) async fn a_foreign_value_is_an_error_not_a_session() {
    let (store, cleanup) = store!();
    let p = cleanup.prefix();
    let s = record(1, "alice");
    let _: () = redis::cmd("HSET")
        .arg(format!("{p}session:{}", s.key.to_hex()))
        .arg("user")
        .arg("alice")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&s.key).await,
        Err(phaze_sessions::StoreError::Backend(_))
    ));
    let _: () = redis::cmd("SET")
        .arg(format!("{p}session:{}", record(2, "a").key.to_hex()))
        .arg("a string")
        .query_async(&mut raw().await)
        .await
        .unwrap();
    assert!(matches!(
        store.get(&record(2, "a").key).await,
        Err(phaze_sessions::StoreError::Backend(_))
    ));
}
