//! The store over Redis (`phaze_store_redis`), on a fresh key prefix of the test Redis
//! (`PHAZE_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) deleted afterwards: the acceptance
//! workflow, and what Redis holds (no id, no state in clear).

use actix_session::config::CookieContentSecurity;
use phaze_sessions::SessionId;
use phaze_store_redis::{Redis, RedisConfig};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{app, contains, send, Fixture};

/// The harness's check: the test Redis answers `PING` within 2 s.
pub(crate) fn reachable() -> Result<(), String> {
    redis::Client::open(phaze_testkit::redis_url().as_str())
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn))
        .map(drop)
        .map_err(|e| format!("{e} (PHAZE_TEST_REDIS_URL, or the local server)"))
}

/// Deletes every key under the prefix when dropped.
struct Cleanup {
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.prefix.clone();
        // A blocking connection on its own thread: drop may run inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let mut conn = redis::Client::open(phaze_testkit::redis_url().as_str())?
                .get_connection_with_timeout(Duration::from_secs(2))?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).query::<()>(&mut conn)?;
            }
            redis::RedisResult::Ok(())
        })
        .join();
    }
}

/// A fixture over the Redis store on a fresh prefix, and the prefix.
fn fixture() -> (Fixture, String) {
    let prefix = format!("phaze-test:{:016x}:", rand_u64());
    let redis = Redis::new(&RedisConfig {
        url: phaze_testkit::redis_url(),
        prefix: prefix.clone(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        wait_timeout: Duration::from_secs(5),
        response_timeout: Duration::from_secs(2),
    })
    .unwrap();
    let cleanup = Box::new(Cleanup {
        prefix: prefix.clone(),
    });
    (
        Fixture::with_guard(Arc::new(redis.sessions()), cleanup),
        prefix,
    )
}

fn rand_u64() -> u64 {
    let id = SessionId::generate();
    let bytes = id.key();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap())
}

/// Every key and value under the prefix, as raw bytes.
async fn dump(prefix: &str) -> Vec<u8> {
    let mut conn = redis::Client::open(phaze_testkit::redis_url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in keys {
        out.extend_from_slice(key.as_bytes());
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            _ => vec![redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap()],
        };
        out.extend(values.into_iter().flatten());
    }
    out
}

/// Set, read, renew, purge on Redis; Redis holds neither the id nor the state in clear.
pub(crate) async fn sessions_on_redis_are_hashed_and_sealed() {
    let (f, prefix) = fixture();
    let app =
        app(f.middleware_with(CookieContentSecurity::Private, time::Duration::hours(1))).await;
    let (_, set, _) = send(&app, "POST", "/set/password-hint/swordfish-4711", None).await;
    let cookie = set.unwrap();
    let id = f.id_in(&cookie, CookieContentSecurity::Private);
    let raw = dump(&prefix).await;
    assert!(contains(
        &raw,
        SessionId::parse(&id).unwrap().key().to_hex().as_bytes()
    ));
    for needle in [id.as_str(), "swordfish-4711", "password-hint"] {
        assert!(!contains(&raw, needle.as_bytes()), "{needle} in Redis");
    }
    let (_, _, body) = send(&app, "GET", "/get/password-hint", Some(&cookie)).await;
    assert_eq!(body, "swordfish-4711");

    let (_, renewed, _) = send(&app, "POST", "/renew", Some(&cookie)).await;
    let renewed = renewed.unwrap();
    let (_, _, body) = send(&app, "GET", "/get/password-hint", Some(&cookie)).await;
    assert_eq!(body, "-");
    let (_, _, body) = send(&app, "GET", "/get/password-hint", Some(&renewed)).await;
    assert_eq!(body, "swordfish-4711");

    f.clock.advance(time::Duration::hours(1));
    let (_, _, body) = send(&app, "GET", "/get/password-hint", Some(&renewed)).await;
    assert_eq!(
        body, "-",
        "expired by the store's clock, whatever Redis's TTL says"
    );
    let (_, set, _) = send(&app, "POST", "/set/k/v", None).await;
    let (_, removal, _) = send(&app, "POST", "/purge", set.as_ref()).await;
    assert_eq!(removal.unwrap().value(), "");
    assert!(
        !contains(&dump(&prefix).await, b"session:"),
        "every record is gone"
    );
}
