//! A single-threaded runtime keeps its own connections: a connection's I/O task lives on the
//! runtime that opened it, so one borrowed from another runtime would wait on a thread that is
//! busy elsewhere, or on a runtime that is gone.

use crate::support;
use phaze_store_redis::Redis;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn each_single_threaded_runtime_uses_its_own_connections() {
    let main = runtime();
    // Opens (and pools) a connection whose I/O task runs on `main`.
    let (redis, _cleanup) = main.block_on(support::redis());
    // Another thread, with its runtime, while `main` is not being driven: with one pool for
    // both, it would borrow main's idle connection and time out waiting for its I/O task.
    let other = redis.clone();
    std::thread::spawn(move || {
        let rt = runtime();
        let pinged =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), other.ping()).await });
        pinged.expect("answered in time").unwrap();
        // Its runtime ends here, and the I/O tasks of the connections it opened with it.
    })
    .join()
    .expect("the other thread's commands succeed");
    // Back on `main`: its own connection still works, and none of the dead ones is handed out.
    main.block_on(async {
        for _ in 0..3 {
            redis.ping().await.unwrap();
        }
    });
}

/// 64 commands in flight at once, from this thread.
async fn burst(redis: &Redis) {
    let pings: Vec<_> = (0..64).map(|_| redis.ping()).collect();
    for r in futures_util::future::join_all(pings).await {
        r.unwrap();
    }
}

pub(crate) fn the_commands_of_one_thread_share_one_connection_even_after_an_idle_second() {
    runtime().block_on(async {
        let (redis, _cleanup) = support::redis().await;
        // With a connection taken per command the pool would grow to its size (8); shared, every
        // command rides the first one.
        burst(&redis).await;
        assert!(format!("{redis:?}").contains("pool_size: 1,"));
        // Idle for over a second, the connection is checked with a `PING` at its next checkout.
        // Commands arriving meanwhile wait for it: were they to open connections of their own,
        // the thread's later commands would take turns on all of them and leave in smaller
        // batches.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        burst(&redis).await;
        burst(&redis).await;
        let debug = format!("{redis:?}");
        assert!(debug.contains("pool_size: 1,"), "{debug}");
    });
}
