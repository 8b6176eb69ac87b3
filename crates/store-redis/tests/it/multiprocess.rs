//! Several processes on one Redis: the cross-process contract of the ports
//! (`phaze_testkit::processes`), each race on a fresh key prefix of its own.

use phaze_store_redis::{Redis, RedisConfig};
use phaze_testkit::processes::{Fresh, Place, Processes};
use std::sync::Arc;

use crate::support::{self, config};

/// Tasks per child racing on one rate-limit key, and so connections in its pool.
const TASKS: usize = 12;

/// The contract, with every port of this adapter.
pub(crate) fn processes() -> Processes {
    Processes::new(module_path!(), fresh)
        .tasks(TASKS)
        .sessions(|prefix| Arc::new(redis(prefix).sessions()))
        .rate_limits(|prefix| Arc::new(redis(prefix).rate_limits()))
}

fn fresh() -> Fresh {
    Box::pin(async {
        let (_, cleanup) = support::redis().await;
        Place::new(cleanup.prefix().to_owned(), cleanup)
    })
}

fn redis(prefix: &str) -> Redis {
    Redis::new(&RedisConfig {
        pool_size: TASKS,
        ..config(&phaze_testkit::redis_url(), prefix)
    })
    .unwrap()
}
