//! Migrations and the schema check.

use phaze_store_postgres::{PgError, Postgres};

use crate::support::{self, config};

const INIT: &str = "20261128000000_init";
const ACCOUNT_CHANGES: &str = "20261128100000_account_changes";
const PENDING_REGISTRATIONS: &str = "20261204120000_pending_registrations";
const SESSION_SUCCESSORS: &str = "20261205000000_session_successors";
const PAYMENTS: &str = "20261206000000_payments";
const TWO_FACTOR: &str = "20261207000000_two_factor";
const DEVICES: &str = "20261208000000_devices";
const AUDIT: &str = "20261209000000_audit";
const ACCOUNT_LOCK: &str = "20261209100000_account_lock";
const SEALED_PII: &str = "20261210000000_sealed_pii";
/// Every migration of this build, oldest first.
const ALL: [&str; 10] = [
    INIT,
    ACCOUNT_CHANGES,
    PENDING_REGISTRATIONS,
    SESSION_SUCCESSORS,
    PAYMENTS,
    TWO_FACTOR,
    DEVICES,
    AUDIT,
    ACCOUNT_LOCK,
    SEALED_PII,
];

pub(crate) async fn check_schema_tells_behind_current_and_ahead() {
    let db = support::unmigrated().await;
    // Nothing there yet, not even the schema.
    let e = db.pg.check_schema().await.unwrap_err();
    assert!(matches!(&e, PgError::SchemaBehind { missing } if missing == &ALL));
    assert_eq!(
        e.to_string(),
        format!(
            "database schema is behind this build (missing {INIT}, {ACCOUNT_CHANGES}, \
             {PENDING_REGISTRATIONS}, {SESSION_SUCCESSORS}, {PAYMENTS}, {TWO_FACTOR}, \
             {DEVICES}, {AUDIT}, {ACCOUNT_LOCK}, {SEALED_PII}): run \
             `phaze-portal migrate`"
        )
    );

    assert_eq!(db.pg.migrate().await.unwrap(), ALL);
    db.pg.check_schema().await.unwrap();
    assert!(
        db.pg.migrate().await.unwrap().is_empty(),
        "a second migrate applies nothing"
    );
    db.pg.check_schema().await.unwrap();

    // A newer build migrated this database.
    db.admin
        .execute(
            &format!(
                "INSERT INTO \"{}\".__diesel_schema_migrations (version) VALUES ('20991231235959')",
                db.schema()
            ),
            &[],
        )
        .await
        .unwrap();
    let e = db.pg.check_schema().await.unwrap_err();
    assert!(matches!(&e, PgError::SchemaAhead { unknown } if unknown == &["20991231235959"]));
    let message = e.to_string();
    assert!(
        message.starts_with("database schema is newer than this build (unknown 20991231235959)"),
        "{message}"
    );
    assert!(!message.contains('\n'));
    // migrate does not "fix" a newer database: it has nothing to apply, and the check still fails.
    assert!(db.pg.migrate().await.unwrap().is_empty());
    assert!(matches!(
        db.pg.check_schema().await,
        Err(PgError::SchemaAhead { .. })
    ));
}

pub(crate) async fn migrate_creates_the_schema_and_its_tables_there() {
    let db = support::unmigrated().await;
    let count = |sql: &'static str| {
        let admin = &db.admin;
        let schema = db.schema().to_owned();
        async move {
            admin
                .query_one(sql, &[&schema])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    const SCHEMAS: &str = "SELECT count(*) FROM pg_namespace WHERE nspname = $1";
    const TABLES: &str = "SELECT count(*) FROM pg_tables WHERE schemaname = $1";
    assert_eq!(count(SCHEMAS).await, 0);
    db.pg.migrate().await.unwrap();
    assert_eq!(count(SCHEMAS).await, 1);
    // The ten tables and diesel's bookkeeping, all inside the schema.
    assert_eq!(count(TABLES).await, 11);
}

pub(crate) async fn concurrent_migrations_apply_each_migration_once() {
    let db = support::unmigrated().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let pg = Postgres::new(&config(Some(db.schema()))).unwrap();
            tokio::spawn(async move { pg.migrate().await })
        })
        .collect();
    let mut applied = Vec::new();
    for t in futures_util::future::join_all(tasks).await {
        applied.extend(t.unwrap().unwrap());
    }
    assert_eq!(applied, ALL);
    db.pg.check_schema().await.unwrap();
}

/// The columns the migrations create, with their SQL types, as `schema.rs` declares them; the
/// contract tests exercise every one of them through diesel.
pub(crate) async fn migrated_tables_have_the_declared_columns() {
    let db = support::fresh().await;
    let rows = db
        .admin
        .query(
            "SELECT table_name::text, column_name::text, udt_name::text, is_nullable::text \
             FROM information_schema.columns WHERE table_schema = $1 \
             AND table_name <> '__diesel_schema_migrations' \
             ORDER BY table_name, ordinal_position",
            &[&db.schema()],
        )
        .await
        .unwrap();
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{}.{} {}{}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                if r.get::<_, String>(3) == "YES" {
                    " null"
                } else {
                    ""
                }
            )
        })
        .collect();
    let expected = [
        "accounts.id uuid",
        "accounts.email text null",
        "accounts.email_verified bool",
        "accounts.password_hash text",
        "accounts.display_name text null",
        "accounts.is_admin bool",
        "accounts.created_at timestamptz",
        "accounts.password_changed_at timestamptz",
        "accounts.totp_secret bytea null",
        "accounts.totp_enabled_at timestamptz null",
        "accounts.recovery_codes bytea null",
        "accounts.locked bool",
        "accounts.email_index bytea null",
        "accounts.email_sealed bytea null",
        "accounts.name_sealed bytea null",
        "address_slots.slot int4",
        "address_slots.device_id uuid",
        "audit_log.seq int8",
        "audit_log.at timestamptz",
        "audit_log.actor uuid null",
        "audit_log.action text",
        "audit_log.subject uuid null",
        "audit_log.client text null",
        "audit_log.detail text",
        "audit_log.prev text",
        "audit_log.mac text",
        "devices.id uuid",
        "devices.user_id uuid",
        "devices.name text",
        "devices.public_key bytea",
        "devices.sealed_private_key bytea",
        "devices.slot int4",
        "devices.address_v4 text",
        "devices.address_v6 text",
        "devices.created_at timestamptz",
        "key_checks.name text",
        "key_checks.value bytea",
        "payment_events.id text",
        "payment_events.claim_token text null",
        "payment_events.claimed_until timestamptz null",
        "payment_events.applied_at timestamptz null",
        "rate_limits.key bytea",
        "rate_limits.log _int8",
        "rate_limits.idle_after timestamptz",
        "sessions.key bytea",
        "sessions.user_id bytea",
        "sessions.expires_at timestamptz",
        "sessions.sealed bytea",
        "sessions.successor bytea null",
        "subscriptions.user_id uuid",
        "subscriptions.version int8",
        "subscriptions.customer text null",
        "subscriptions.subscription text null",
        "subscriptions.status text",
        "subscriptions.price text null",
        "subscriptions.current_period_end int8 null",
        "subscriptions.last_event_created int8 null",
        "subscriptions.last_event_id text null",
        "tokens.hash bytea",
        "tokens.purpose text",
        "tokens.user_id uuid",
        "tokens.expires_at timestamptz",
        "tokens.used_at timestamptz null",
        "tokens.subject text null",
        "tokens.password_hash text null",
        "tokens.email_index bytea null",
        "tokens.email_sealed bytea null",
    ];
    assert_eq!(got, expected);
    // The indexes purges and per-user listing rely on.
    let indexes: Vec<String> = db
        .admin
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = $1 ORDER BY 1",
            &[&db.schema()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for wanted in [
        "accounts_email_key",
        "accounts_email_index_key",
        "devices_user_id_idx",
        "sessions_expires_at_idx",
        "sessions_user_id_idx",
        "tokens_expires_at_idx",
        "tokens_live_subject_key",
    ] {
        assert!(indexes.iter().any(|i| i == wanted), "{wanted}: {indexes:?}");
    }
}

/// The portal runs on actix's current-thread runtimes; `migrate` must not need a multi-threaded
/// one (diesel's harness is synchronous and runs on the blocking pool).
pub(crate) async fn migrate_and_the_stores_work_on_a_current_thread_runtime() {
    let db = support::unmigrated().await;
    assert_eq!(db.pg.migrate().await.unwrap(), ALL);
    db.pg.check_schema().await.unwrap();
    let w = phaze_ratelimit::Window::new(2, time::Duration::minutes(1));
    let limits = phaze_ratelimit::RateLimitStore::hit(
        &db.pg.rate_limits(),
        &phaze_testkit::ratelimit::key(1),
        w,
        phaze_testkit::t0(),
    )
    .await
    .unwrap();
    assert_eq!(limits.remaining, 1);
}

/// A database migrated by the version before sealing, with accounts and a pending registration
/// in it: `migrate` applies the sealing migration (the pending link, which held its address in
/// the clear, is dropped), the start-up step seals every account, from two processes at once,
/// and afterwards no table holds an address or a name and every account is found again.
pub(crate) async fn the_sealing_migration_keeps_every_account_and_leaves_nothing_in_the_clear() {
    use phaze_auth::{DisplayName, Email};
    use phaze_testkit::accounts::{account, sealed};
    let db = support::unmigrated().await;
    let schema = db.schema();
    let mut sql = format!("CREATE SCHEMA \"{schema}\"; SET search_path TO \"{schema}\";");
    sql.push_str(
        "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL, \
         run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);",
    );
    for name in &ALL[..ALL.len() - 1] {
        let path = format!(
            "{}/../../migrations/{name}/up.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        sql.push_str(&std::fs::read_to_string(path).unwrap());
        let version = name.split('_').next().unwrap();
        sql.push_str(&format!(
            ";INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');"
        ));
    }
    db.admin.batch_execute(&sql).await.unwrap();
    let mut people = Vec::new();
    for (n, name) in ["Zyxwv Qutsr", "<b>O'Brien</b>", "Ünïcødé"]
        .iter()
        .enumerate()
    {
        let mut a = account(&format!("person{n}@example.com"));
        a.display_name = DisplayName::parse(name).unwrap();
        db.admin
            .execute(
                &format!(
                    "INSERT INTO \"{schema}\".accounts (id, email, email_verified, password_hash, \
                     display_name, is_admin, created_at, password_changed_at) \
                     VALUES ($1::text::uuid, $2, true, $3, $4, false, now(), now())"
                ),
                &[
                    &a.id.to_string(),
                    &a.email.as_str(),
                    &a.password_hash,
                    &a.display_name.as_str(),
                ],
            )
            .await
            .unwrap();
        people.push(a);
    }
    db.admin
        .batch_execute(&format!(
            "INSERT INTO \"{schema}\".tokens (hash, purpose, user_id, expires_at, subject, email, \
             password_hash) VALUES (decode(repeat('ab', 32), 'hex'), 'email_verification', \
             gen_random_uuid(), now() + interval '1 day', 'email:pending@example.com', \
             'pending@example.com', 'x')"
        ))
        .await
        .unwrap();

    assert_eq!(db.pg.migrate().await.unwrap(), [SEALED_PII]);
    db.pg.check_schema().await.unwrap();
    let one = sealed(std::sync::Arc::new(db.pg.accounts()));
    let two = sealed(std::sync::Arc::new(
        Postgres::new(&config(Some(schema))).unwrap().accounts(),
    ));
    let (a, b) = tokio::join!(one.seal_clear(), two.seal_clear());
    assert_eq!(a.unwrap() + b.unwrap(), 3, "each account sealed once");
    assert_eq!(one.seal_clear().await.unwrap(), 0);
    for a in &people {
        let found = one.by_email(&a.email).await.unwrap().unwrap();
        assert_eq!(
            (found.id, &found.email, &found.display_name),
            (a.id, &a.email, &a.display_name)
        );
    }
    assert_eq!(
        one.by_email(&Email::parse("pending@example.com").unwrap())
            .await
            .unwrap(),
        None
    );
    for table in ["accounts", "tokens"] {
        let dump: String = db
            .admin
            .query_one(
                &format!(
                    "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM \"{schema}\".{table} t"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        for trace in ["@example.com", "Zyxwv", "Brien", "cødé"] {
            assert!(!dump.contains(trace), "{trace} in {table}: {dump}");
        }
    }
    // The way back refuses to run once addresses are sealed.
    let down = std::fs::read_to_string(format!(
        "{}/../../migrations/{SEALED_PII}/down.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let e = db
        .admin
        .batch_execute(&format!("SET search_path TO \"{schema}\"; {down}"))
        .await
        .unwrap_err();
    assert!(format!("{e:?}").contains("cannot be reverted"), "{e:?}");
}
