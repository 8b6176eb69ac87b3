//! The embedded migrations (`migrations/` at the workspace root): applying them, and checking
//! that a database has exactly them.

use diesel::dsl::sql;
use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::{Bool, Integer, Text};
use diesel::QueryableByName;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::collections::BTreeSet;

use crate::connect::Connector;
use crate::{BoxError, PgError};

/// Every migration of this build, compiled in.
const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations");

/// First key of the advisory lock `migrate` holds ("PHZE"); the second is the schema's hash.
const LOCK_CLASS: i32 = 0x5048_5a45;

/// The embedded migrations as `(version, name)`, oldest first.
fn embedded() -> Result<Vec<(String, String)>, PgError> {
    let mut all: Vec<(String, String)> = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(PgError::Migration)?
        .iter()
        .map(|m| (m.name().version().to_string(), m.name().to_string()))
        .collect();
    all.sort();
    Ok(all)
}

/// The name of the embedded migration with `version`, or the version itself.
fn name_of(embedded: &[(String, String)], version: &str) -> String {
    embedded
        .iter()
        .find(|(v, _)| v == version)
        .map_or_else(|| version.to_owned(), |(_, name)| name.clone())
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> PgError {
    PgError::Unavailable(Box::new(e))
}

pub(crate) async fn migrate(connector: &Connector) -> Result<Vec<String>, PgError> {
    let embedded = embedded()?;
    // A connection of its own: the harness blocks on it, and the advisory lock lives exactly as
    // long as it does.
    let mut conn = connector.connect().await.map_err(unavailable)?;
    let lock_name = connector.schema.as_deref().unwrap_or("public");
    // Waiting for another migrator (or for a table lock held by live traffic) is bounded too.
    conn.batch_execute("SET lock_timeout = '60s'")
        .await
        .map_err(unavailable)?;
    diesel::sql_query("SELECT pg_advisory_lock($1, hashtext($2))")
        .bind::<Integer, _>(LOCK_CLASS)
        .bind::<Text, _>(lock_name)
        .execute(&mut conn)
        .await
        .map_err(unavailable)?;
    if let Some(schema) = &connector.schema {
        // Checked first, so an existing schema needs no CREATE privilege on the database.
        let exists: bool = diesel::select(
            sql::<Bool>("EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = ")
                .bind::<Text, _>(schema)
                .sql(")"),
        )
        .get_result(&mut conn)
        .await
        .map_err(unavailable)?;
        if !exists {
            // `schema` passed `check_identifier`: quoting cannot be escaped from.
            conn.batch_execute(&format!("CREATE SCHEMA \"{schema}\""))
                .await
                .map_err(|e| PgError::Migration(Box::new(e)))?;
        }
    }
    // diesel's migration harness is synchronous: run it on the blocking pool, where the wrapper
    // drives the async connection with the runtime's handle (this works on a current-thread
    // runtime too, unlike `block_in_place`).
    let applied = tokio::task::spawn_blocking(move || -> Result<Vec<String>, BoxError> {
        let mut conn = AsyncConnectionWrapper::<AsyncPgConnection>::from(conn);
        let versions = conn.run_pending_migrations(MIGRATIONS)?;
        Ok(versions.iter().map(ToString::to_string).collect())
        // Dropping the connection ends the session, which releases the advisory lock.
    })
    .await
    .map_err(|e| PgError::Migration(Box::new(e)))?
    .map_err(PgError::Migration)?;
    Ok(applied.iter().map(|v| name_of(&embedded, v)).collect())
}

#[derive(QueryableByName)]
struct Applied {
    #[diesel(sql_type = Text)]
    version: String,
}

pub(crate) async fn check(conn: &mut AsyncPgConnection) -> Result<(), PgError> {
    let embedded = embedded()?;
    // `to_regclass` resolves through the search path, i.e. in the configured schema.
    let present: bool = diesel::select(sql::<Bool>(
        "to_regclass('__diesel_schema_migrations') IS NOT NULL",
    ))
    .get_result(conn)
    .await
    .map_err(unavailable)?;
    let applied: BTreeSet<String> = if present {
        diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load::<Applied>(conn)
            .await
            .map_err(unavailable)?
            .into_iter()
            .map(|a| a.version)
            .collect()
    } else {
        BTreeSet::new()
    };
    let known: BTreeSet<&str> = embedded.iter().map(|(v, _)| v.as_str()).collect();
    let unknown: Vec<String> = applied
        .iter()
        .filter(|v| !known.contains(v.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        // Migrating cannot fix this one, so it is reported first.
        return Err(PgError::SchemaAhead { unknown });
    }
    let missing: Vec<String> = embedded
        .iter()
        .filter(|(v, _)| !applied.contains(v))
        .map(|(_, name)| name.clone())
        .collect();
    if !missing.is_empty() {
        return Err(PgError::SchemaBehind { missing });
    }
    Ok(())
}
