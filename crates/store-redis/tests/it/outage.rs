//! A private Redis that dies, hangs and comes back: calls fail fast with `Backend` while it is
//! gone, and succeed again within seconds once it is back, with no restart of the store.

use phaze_ratelimit::{RateLimitStore, StoreError as LimitError, Window};
use phaze_sessions::{SessionStore, StoreError};
use phaze_store_redis::{Redis, RedisConfig, RedisError};
use phaze_testkit::ratelimit::key;
use phaze_testkit::sessions::record;
use phaze_testkit::t0;
use std::time::{Duration, Instant};

use crate::support::{within, Server};
use phaze_testkit::free_port;

/// Short timeouts, as a portal would configure them.
fn config(port: u16) -> RedisConfig {
    RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: "phaze-outage:".to_owned(),
        pool_size: 4,
        connect_timeout: Duration::from_millis(500),
        wait_timeout: Duration::from_millis(500),
        response_timeout: Duration::from_millis(500),
    }
}

const WINDOW: Window = Window::new(1000, time::Duration::minutes(15));

/// A private server (the harness checked that `redis-server` runs).
fn server(dir: &std::path::Path) -> Server {
    let port = free_port();
    match Server::start(
        port,
        &[
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
        ],
        dir,
    ) {
        Ok(s) => s,
        Err(e) => phaze_testkit::server_unavailable("a private redis-server", &e),
    }
}

/// Everything the store does, once: `Ok` if all of it worked.
async fn exercise(redis: &Redis, n: u8) -> Result<(), String> {
    redis.ping().await.map_err(|e| e.to_string())?;
    redis
        .rate_limits()
        .hit(&key(1), WINDOW, t0())
        .await
        .map_err(|e| e.to_string())?;
    let s = record(n, "alice");
    redis
        .sessions()
        .insert(&s)
        .await
        .map_err(|e| e.to_string())?;
    match redis.sessions().get(&s.key).await {
        Ok(Some(got)) if got == s => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// Every call fails, with the ports' `Backend` error, each within `limit`.
async fn all_fail_fast(redis: &Redis, limit: Duration) {
    for _ in 0..3 {
        let start = Instant::now();
        assert!(matches!(
            redis.rate_limits().hit(&key(1), WINDOW, t0()).await,
            Err(LimitError::Backend(_))
        ));
        assert!(matches!(
            redis.sessions().get(&record(1, "alice").key).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            redis.sessions().insert(&record(200, "alice")).await,
            Err(StoreError::Backend(_))
        ));
        assert!(matches!(
            redis.ping().await,
            Err(RedisError::Unavailable(_))
        ));
        let took = start.elapsed();
        assert!(took < limit * 4, "four calls took {took:?}");
    }
}

pub(crate) async fn a_killed_server_fails_fast_and_recovery_is_automatic() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path());
    let redis = Redis::new(&config(server.port())).unwrap();
    // Fill the pool: every connection must be replaced after the restart.
    let warm: Vec<_> = (0..4u8).map(|n| exercise(&redis, n)).collect();
    for r in futures_util::future::join_all(warm).await {
        r.unwrap();
    }

    server.kill();
    all_fail_fast(&redis, Duration::from_secs(2)).await;

    server.restart().unwrap();
    let mut n = 10u8;
    let took = within(Duration::from_secs(5), || {
        n += 1;
        let redis = redis.clone();
        async move { exercise(&redis, n).await.is_ok() }
    })
    .await;
    assert!(took.is_some(), "the store did not recover within 5 s");
    println!("recovered {took:?} after the restart");
    // And every pooled connection works, not just one.
    let all: Vec<_> = (100..116u8).map(|n| exercise(&redis, n)).collect();
    for r in futures_util::future::join_all(all).await {
        r.unwrap();
    }
}

pub(crate) async fn a_connection_that_failed_is_replaced_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = server(dir.path());
    let redis = Redis::new(&config(server.port())).unwrap();
    exercise(&redis, 1).await.unwrap();
    // A restart well within the second after which an idle connection is checked: the dead
    // connection is still "recently used", and only its failure can keep it from being reused.
    server.kill();
    assert!(redis.ping().await.is_err());
    server.restart().unwrap();
    let took = within(Duration::from_secs(5), || {
        let redis = redis.clone();
        async move { redis.ping().await.is_ok() }
    })
    .await
    .expect("the store did not recover within 5 s");
    // The first command after the restart opened a fresh connection, and the failed one is gone.
    exercise(&redis, 2).await.unwrap();
    let debug = format!("{redis:?}");
    assert!(debug.contains("pool_size: 1,"), "{debug}");
    println!("recovered {took:?} after the restart");
}

pub(crate) async fn a_hung_server_times_out_instead_of_stalling() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path());
    let redis = Redis::new(&config(server.port())).unwrap();
    exercise(&redis, 1).await.unwrap();

    // SIGSTOP: connections stay open and the kernel still accepts new ones, but nothing answers.
    server.signal("STOP");
    all_fail_fast(&redis, Duration::from_secs(2)).await;
    // Many callers at once: none waits longer than the timeouts allow.
    let start = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let limits = redis.rate_limits();
            async move { limits.hit(&key(2), WINDOW, t0()).await }
        })
        .collect();
    for r in futures_util::future::join_all(calls).await {
        assert!(r.is_err());
    }
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "{:?}",
        start.elapsed()
    );

    server.signal("CONT");
    let took = within(Duration::from_secs(5), || {
        let redis = redis.clone();
        async move { exercise(&redis, 2).await.is_ok() || exercise(&redis, 3).await.is_ok() }
    })
    .await;
    assert!(took.is_some(), "the store did not recover within 5 s");
}

pub(crate) async fn nothing_listening_is_an_error_not_a_hang() {
    let port = free_port();
    let redis = Redis::new(&config(port)).unwrap();
    let start = Instant::now();
    assert!(matches!(
        redis.ping().await,
        Err(RedisError::Unavailable(_))
    ));
    assert!(matches!(
        redis.rate_limits().peek(&key(1), WINDOW, t0()).await,
        Err(LimitError::Backend(_))
    ));
    assert!(start.elapsed() < Duration::from_secs(3));
}

/// A listener that accepts and never answers (not even the TLS or RESP handshake): connection
/// set-up itself must time out.
pub(crate) async fn a_silent_listener_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    for url in [
        format!("redis://127.0.0.1:{port}"),
        format!("rediss://localhost:{port}"),
    ] {
        let mut c = config(port);
        c.url = url.clone();
        let redis = Redis::new(&c).unwrap();
        let start = Instant::now();
        assert!(redis.ping().await.is_err(), "{url}");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{url}: {:?}",
            start.elapsed()
        );
    }
    hold.abort();
}

/// A server with a password: the right one works, a wrong one fails, and no error shows either.
pub(crate) async fn passwords_work_and_never_show_in_errors() {
    const RIGHT: &str = "right-Pa55word";
    const WRONG: &str = "wrong-Pa55word";
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = match Server::start(
        port,
        &[
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--requirepass".into(),
            RIGHT.into(),
        ],
        dir.path(),
    ) {
        Ok(s) => s,
        Err(e) => phaze_testkit::server_unavailable("a private redis-server", &e),
    };
    let mut c = config(port);
    c.url = format!("redis://:{RIGHT}@127.0.0.1:{port}");
    let redis = Redis::new(&c).unwrap();
    exercise(&redis, 1).await.unwrap();
    assert!(!format!("{c:?} {redis:?}").contains(RIGHT));

    for url in [
        format!("redis://:{WRONG}@127.0.0.1:{port}"),
        format!("redis://default:{WRONG}@127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}"),
    ] {
        let mut c = config(port);
        c.url = url.clone();
        let redis = Redis::new(&c).unwrap();
        let err = redis.ping().await.unwrap_err();
        let mut text = format!("{err} {err:?}");
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&format!(" {s} {s:?}"));
            source = s.source();
        }
        println!("{url:?} -> {err}");
        assert!(!text.contains(WRONG) && !text.contains(RIGHT), "{text}");
        let err = redis.sessions().get(&record(1, "a").key).await.unwrap_err();
        assert!(matches!(err, StoreError::Backend(_)));
    }
}
