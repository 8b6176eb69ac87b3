//! Several processes on one database: the cross-process contract of the ports
//! (`phaze_testkit::processes`), each race in a fresh migrated schema of its own.

use phaze_store_postgres::{PgConfig, Postgres};
use phaze_testkit::processes::{Fresh, Place, Processes};
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
        .processed_events(|schema| Arc::new(postgres(schema).processed_events()))
        .audit(|schema| Arc::new(postgres(schema).audit()))
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
