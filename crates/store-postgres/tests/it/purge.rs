//! The purges the portal runs periodically: what goes and, as much, what stays.

use phaze_auth::TokenStore;
use phaze_ratelimit::{RateLimitStore, Step, Window};
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use time::Duration;

use crate::support;

async fn rows(db: &support::TestDb, table: &str) -> i64 {
    db.admin
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".{table}", db.schema()),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

pub(crate) async fn purge_idle_deletes_exactly_the_logs_no_window_sees() {
    let db = support::fresh().await;
    let limits = db.pg.rate_limits();
    let quarter = Window::new(5, Duration::minutes(15));
    let hour = Window::new(5, Duration::hours(1));
    // Key 1: one hit at t0 (15 min). Key 2: at t0 (15 min), then at +10 min with an hour, which
    // keeps it for the hour. Key 3: a nanosecond after t0 (15 min), which a window ending exactly
    // at t0 + 15 min still sees.
    limits.hit(&key(1), quarter, t0()).await.unwrap();
    limits.hit(&key(2), quarter, t0()).await.unwrap();
    limits
        .hit(&key(2), hour, t0() + Duration::minutes(10))
        .await
        .unwrap();
    limits
        .hit(&key(3), quarter, t0() + Duration::nanoseconds(1))
        .await
        .unwrap();
    // A later hit with the shorter period does not shorten key 2's life.
    limits
        .hit(&key(2), quarter, t0() + Duration::minutes(11))
        .await
        .unwrap();
    assert_eq!(rows(&db, "rate_limits").await, 3);

    assert_eq!(limits.purge_idle(t0()).await.unwrap(), 0);
    let at_quarter = t0() + Duration::minutes(15);
    assert_eq!(
        limits
            .peek(&key(3), quarter, at_quarter)
            .await
            .unwrap()
            .remaining,
        4,
        "key 3's hit is still inside the window"
    );
    assert_eq!(
        limits.purge_idle(at_quarter).await.unwrap(),
        1,
        "key 1 only"
    );
    assert_eq!(
        limits
            .peek(&key(1), quarter, at_quarter)
            .await
            .unwrap()
            .remaining,
        5
    );
    assert_eq!(
        limits
            .peek(&key(3), quarter, at_quarter)
            .await
            .unwrap()
            .remaining,
        4
    );
    assert_eq!(
        limits
            .purge_idle(at_quarter + Duration::microseconds(1))
            .await
            .unwrap(),
        1,
        "key 3"
    );
    let after_hour = t0() + Duration::minutes(70);
    assert_eq!(
        limits
            .peek(&key(2), hour, after_hour - Duration::seconds(1))
            .await
            .unwrap()
            .remaining,
        3,
        "key 2's log (its hits at +10 and +11 min) is kept until the hour is over"
    );
    assert_eq!(limits.purge_idle(after_hour).await.unwrap(), 1);
    assert_eq!(rows(&db, "rate_limits").await, 0);
    // A purged key starts afresh.
    assert_eq!(
        limits
            .hit(&key(2), hour, after_hour)
            .await
            .unwrap()
            .remaining,
        4
    );

    // A row being decided on is skipped, not waited for: a purge that waited while holding the
    // rows it had deleted could close a cycle with a run, which locks rows in key order.
    limits.hit(&key(6), quarter, t0()).await.unwrap();
    limits.hit(&key(7), quarter, t0()).await.unwrap();
    let mut decider = support::admin().await;
    let tx = decider.transaction().await.unwrap();
    let six = *key(6).as_bytes();
    tx.execute(
        &format!(
            "SELECT 1 FROM \"{}\".rate_limits WHERE key = $1 FOR UPDATE",
            db.schema()
        ),
        &[&&six[..]],
    )
    .await
    .unwrap();
    let purge = limits.purge_idle(after_hour);
    let purged = tokio::time::timeout(std::time::Duration::from_secs(2), purge)
        .await
        .expect("the purge skips a locked row instead of waiting for it")
        .unwrap();
    assert_eq!(purged, 1, "key 7; key 6 is being decided on");
    tx.rollback().await.unwrap();
    assert_eq!(limits.purge_idle(after_hour).await.unwrap(), 1, "key 6");
    assert_eq!(rows(&db, "rate_limits").await, 1, "key 2");
}

pub(crate) async fn a_limit_of_zero_stores_nothing() {
    let db = support::fresh().await;
    let limits = db.pg.rate_limits();
    let none = Window::new(0, Duration::minutes(15));
    for _ in 0..3 {
        assert!(!limits.hit(&key(1), none, t0()).await.unwrap().allowed);
    }
    assert_eq!(rows(&db, "rate_limits").await, 0);
    // Nor does a run of peeks and such hits: the rows it inserted to lock absent keys go before
    // it commits. A run that records keeps exactly the rows it recorded in.
    let five = Window::new(5, Duration::minutes(15));
    let steps = [
        Step::peek(key(2), five),
        Step::hit(key(3), none).and_go_on(),
        Step::peek(key(4), five),
    ];
    assert_eq!(limits.run(&steps, t0()).await.unwrap().len(), 3);
    assert_eq!(rows(&db, "rate_limits").await, 0);
    let steps = [Step::peek(key(2), five), Step::hit(key(5), five)];
    assert!(limits.run(&steps, t0()).await.unwrap()[1].allowed);
    assert_eq!(rows(&db, "rate_limits").await, 1);
}

pub(crate) async fn token_purge_takes_used_and_expired_tokens_only() {
    let db = support::fresh().await;
    let tokens = db.pg.tokens();
    let (used, expired, live) = (token(1), token(2), token(3));
    let mut expired = expired;
    expired.expires_at = t0();
    for t in [&used, &expired, &live] {
        tokens.issue(t).await.unwrap();
    }
    assert!(tokens
        .consume(&used.hash, used.purpose, t0())
        .await
        .unwrap()
        .is_some());
    assert_eq!(tokens.purge_expired(t0()).await.unwrap(), 2);
    assert_eq!(rows(&db, "tokens").await, 1);
    assert_eq!(
        tokens
            .consume(&live.hash, live.purpose, t0())
            .await
            .unwrap(),
        Some(live)
    );
}
