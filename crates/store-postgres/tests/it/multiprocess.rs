//! Several processes on one database: the cross-process contract of the ports
//! (`phaze_testkit::processes`), each race in a fresh migrated schema of its own.

use phaze_ratelimit::RateLimitStore;
use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::processes::{Fresh, Place, Processes};
use phaze_testkit::ratelimit::{self, GATE_RACE_ROLE};
use std::sync::Arc;

use crate::support::{self, config};

/// Tasks per child racing on one rate-limit key, and so connections in its pool.
const TASKS: usize = 4;

/// The contract, with every port of this adapter.
pub(crate) fn processes() -> Processes {
    Processes::new(module_path!(), fresh)
        .tasks(TASKS)
        .sessions(|schema| Arc::new(postgres(schema).sessions()))
        .accounts(|schema| Arc::new(postgres(schema).accounts()))
        .tokens(|schema| Arc::new(postgres(schema).tokens()))
        .rate_limits(|schema| Arc::new(postgres(schema).rate_limits()))
        .role(GATE_RACE_ROLE, |child| {
            ratelimit::play_gate_race(child, open_rate_limits, TASKS)
        })
}

fn open_rate_limits(schema: &str) -> Arc<dyn RateLimitStore> {
    Arc::new(postgres(schema).rate_limits())
}

/// Processes running the login gate's steps (client budget, lock, attempt budget) from several
/// tasks each admit exactly the lesser limit, and the rows hold exactly the allowed hits.
pub(crate) fn processes_running_one_gate_admit_exactly_the_limit() {
    ratelimit::gate_race(fresh, open_rate_limits, 6, TASKS);
}

fn fresh() -> Fresh {
    Box::pin(async {
        let db = support::fresh().await;
        Place::new(db.schema().to_owned(), db.guard)
    })
}

fn postgres(schema: &str) -> Postgres {
    Postgres::new(&PgConfig {
        pool_size: TASKS,
        ..config(Some(schema))
    })
    .unwrap()
}
