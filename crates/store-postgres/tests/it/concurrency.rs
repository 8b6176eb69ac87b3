//! Races over many connections at once: each racer has a pool (and so a connection) of its own,
//! opened before the race, and all start together.

use phaze_auth::{AccountStore, Email, StoreError, TokenStore};
use phaze_ratelimit::{RateLimitStore, Window};
use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::accounts::{account, sealer};
use phaze_testkit::ratelimit::key;
use phaze_testkit::t0;
use phaze_testkit::tokens::token;
use std::sync::Arc;
use tokio::sync::Barrier;

use crate::support::{self, config};

const RACERS: usize = 16;

/// `RACERS` single-connection handles on `schema`, each already connected.
async fn racers(schema: &str) -> Vec<Postgres> {
    let mut out = Vec::new();
    for _ in 0..RACERS {
        let pg = Postgres::new(&PgConfig {
            pool_size: 1,
            ..config(Some(schema))
        })
        .unwrap();
        pg.ping().await.unwrap();
        out.push(pg);
    }
    out
}

pub(crate) async fn sixteen_connections_registering_one_email_admit_exactly_one() {
    let db = support::fresh().await;
    let barrier = Arc::new(Barrier::new(RACERS));
    let tasks: Vec<_> = racers(db.schema())
        .await
        .into_iter()
        .map(|pg| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let a = account("Race@Example.com");
                barrier.wait().await;
                pg.accounts()
                    .insert(&sealer().seal(&a))
                    .await
                    .map(|()| a.id)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in futures_util::future::join_all(tasks).await {
        match t.unwrap() {
            Ok(id) => winners.push(id),
            Err(StoreError::Duplicate) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let email = Email::parse("race@example.com").unwrap();
    let found = db
        .pg
        .accounts()
        .by_email(&sealer().index(&email))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, winners[0]);
    let rows: i64 = db
        .admin
        .query_one(
            &format!("SELECT count(*) FROM \"{}\".accounts", db.schema()),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 1, "the losers left nothing behind");
}

pub(crate) async fn sixteen_connections_consuming_one_token_admit_exactly_one() {
    let db = support::fresh().await;
    let handles = racers(db.schema()).await;
    for round in 0..5u8 {
        let t = token(round);
        db.pg.tokens().issue(&t).await.unwrap();
        let barrier = Arc::new(Barrier::new(RACERS));
        let tasks: Vec<_> = handles
            .iter()
            .map(|pg| {
                let (tokens, barrier, t) = (pg.tokens(), barrier.clone(), t.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    tokens.consume(&t.hash, t.purpose, t0()).await.unwrap()
                })
            })
            .collect();
        let got: Vec<_> = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .filter_map(|r| r.unwrap())
            .collect();
        assert_eq!(got, vec![t], "round {round}");
    }
}

pub(crate) async fn sixteen_connections_hitting_one_key_admit_exactly_the_limit() {
    let db = support::fresh().await;
    let handles = racers(db.schema()).await;
    for (round, limit) in [1u32, 5, 15, 16, 40].into_iter().enumerate() {
        let window = Window::new(limit, time::Duration::minutes(15));
        let k = key(200 + round as u8);
        let barrier = Arc::new(Barrier::new(RACERS));
        // Three hits per connection, so new and existing rows both race.
        let tasks: Vec<_> = handles
            .iter()
            .map(|pg| {
                let (limits, barrier) = (pg.rate_limits(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let mut allowed = 0;
                    for _ in 0..3 {
                        allowed += usize::from(limits.hit(&k, window, t0()).await.unwrap().allowed);
                    }
                    allowed
                })
            })
            .collect();
        let allowed: usize = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .sum();
        assert_eq!(allowed, (3 * RACERS).min(limit as usize), "L={limit}");
        let left = db.pg.rate_limits().peek(&k, window, t0()).await.unwrap();
        assert_eq!(
            left.remaining as usize,
            (limit as usize).saturating_sub(allowed)
        );
    }
}
