//! A single-threaded runtime keeps its own connections: a connection's I/O task lives on the
//! runtime that opened it, so one borrowed from another runtime would wait on a thread that is
//! busy elsewhere, or on a runtime that is gone.

use crate::support;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn each_single_threaded_runtime_uses_its_own_connections() {
    let main = runtime();
    // Opens (and pools) connections whose I/O tasks run on `main`.
    let db = main.block_on(support::fresh());
    main.block_on(db.pg.ping()).unwrap();
    // Another thread, with its runtime, while `main` is not being driven: with one pool for
    // both, it would borrow main's idle connection and time out waiting for its I/O task.
    let other = db.pg.clone();
    std::thread::spawn(move || {
        let rt = runtime();
        let pinged =
            rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), other.ping()).await });
        pinged.expect("answered in time").unwrap();
        // Its runtime ends here, and the I/O tasks of the connections it opened with it.
    })
    .join()
    .expect("the other thread's queries succeed");
    // Back on `main`: its own connections still work, and none of the dead ones is handed out.
    main.block_on(async {
        for _ in 0..3 {
            db.pg.ping().await.unwrap();
        }
    });
}
